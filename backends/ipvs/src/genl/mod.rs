//! A typed client of the kernel's generic netlink family `IPVS` (being written).
