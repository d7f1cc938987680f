//! Numbers of the kernel's IPVS generic netlink interface, from
//! `include/uapi/linux/ip_vs.h` (checked against Debian's linux-libc-dev 6.1 header).
//! Only what kube-ferry sends or reads is listed.

/// The generic netlink family name the IPVS module registers.
pub(crate) const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub(crate) const IPVS_GENL_VERSION: u8 = 1;

// enum ipvs_cmd (genlmsghdr.cmd)
pub(crate) const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub(crate) const IPVS_CMD_SET_SERVICE: u8 = 2;
pub(crate) const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub(crate) const IPVS_CMD_GET_SERVICE: u8 = 4;
pub(crate) const IPVS_CMD_NEW_DEST: u8 = 5;
pub(crate) const IPVS_CMD_SET_DEST: u8 = 6;
pub(crate) const IPVS_CMD_DEL_DEST: u8 = 7;
pub(crate) const IPVS_CMD_GET_DEST: u8 = 8;
pub(crate) const IPVS_CMD_SET_CONFIG: u8 = 12;
pub(crate) const IPVS_CMD_GET_CONFIG: u8 = 13;
pub(crate) const IPVS_CMD_FLUSH: u8 = 17;

// enum ipvs_cmd_attr (top level attributes)
pub(crate) const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub(crate) const IPVS_CMD_ATTR_DEST: u16 = 2;
pub(crate) const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub(crate) const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub(crate) const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// enum ipvs_svc_attr (inside IPVS_CMD_ATTR_SERVICE)
pub(crate) const IPVS_SVC_ATTR_AF: u16 = 1; // u16
pub(crate) const IPVS_SVC_ATTR_PROTOCOL: u16 = 2; // u16
pub(crate) const IPVS_SVC_ATTR_ADDR: u16 = 3; // union nf_inet_addr, 16 bytes
pub(crate) const IPVS_SVC_ATTR_PORT: u16 = 4; // __be16
pub(crate) const IPVS_SVC_ATTR_FWMARK: u16 = 5; // u32
pub(crate) const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6; // NUL-terminated string
pub(crate) const IPVS_SVC_ATTR_FLAGS: u16 = 7; // struct ip_vs_flags { u32 flags; u32 mask; }
pub(crate) const IPVS_SVC_ATTR_TIMEOUT: u16 = 8; // u32 seconds
pub(crate) const IPVS_SVC_ATTR_NETMASK: u16 = 9; // __be32 (IPv4 mask) or prefix length (IPv6)

// enum ipvs_dest_attr (inside IPVS_CMD_ATTR_DEST)
pub(crate) const IPVS_DEST_ATTR_ADDR: u16 = 1; // 16 bytes
pub(crate) const IPVS_DEST_ATTR_PORT: u16 = 2; // __be16
pub(crate) const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3; // u32
pub(crate) const IPVS_DEST_ATTR_WEIGHT: u16 = 4; // u32
pub(crate) const IPVS_DEST_ATTR_U_THRESH: u16 = 5; // u32
pub(crate) const IPVS_DEST_ATTR_L_THRESH: u16 = 6; // u32
pub(crate) const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7; // u32
pub(crate) const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8; // u32
pub(crate) const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9; // u32
pub(crate) const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11; // u16

// Virtual service flags (struct ip_vs_flags.flags)
pub(crate) const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
pub(crate) const IP_VS_SVC_F_HASHED: u32 = 0x0002;

// Forwarding methods (IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_FWD_MASK bits)
pub(crate) const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
pub(crate) const IP_VS_CONN_F_MASQ: u32 = 0x0000;
pub(crate) const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
pub(crate) const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
pub(crate) const IP_VS_CONN_F_DROUTE: u32 = 0x0003;

// Address families as IPVS carries them (u16).
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;

// IP protocol numbers as IPVS carries them (u16).
pub(crate) const IPPROTO_TCP: u16 = 6;
pub(crate) const IPPROTO_UDP: u16 = 17;
pub(crate) const IPPROTO_SCTP: u16 = 132;

// The generic netlink controller (include/uapi/linux/genetlink.h).
pub(crate) const GENL_ID_CTRL: u16 = 0x10;
pub(crate) const CTRL_CMD_GETFAMILY: u8 = 3;
pub(crate) const CTRL_VERSION: u8 = 2;
pub(crate) const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub(crate) const CTRL_ATTR_FAMILY_NAME: u16 = 2;
pub(crate) const CTRL_ATTR_VERSION: u16 = 3;
