//! The backend's picture of what IPVS holds of kube-ferry's: read from the kernel on the
//! first sync (and after a failure), then kept up to date operation by operation, so a
//! sync sends only differences without dumping the table (B26).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::desired::{key_of, ServiceKey};
use crate::genl::{IpvsError, RealServer, VirtualService};
use crate::kernel::IpvsTable;

/// The port range whose virtual services on node addresses are kube-ferry's NodePorts
/// (the API server's default `--service-node-port-range`).
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// One virtual service as the kernel holds it, with its real servers' weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceImage {
    /// The service (scheduler and persistence as the kernel reported them).
    pub service: VirtualService,
    /// Real servers by (address, port): their weight (0 while draining).
    pub servers: BTreeMap<(IpAddr, u16), u32>,
}

/// kube-ferry's virtual services, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelImage {
    /// The services.
    pub services: BTreeMap<ServiceKey, ServiceImage>,
}

/// Which virtual services are kube-ferry's (B27): those on an address of `kube-ipvs0`,
/// and those on a node address with a port in [`NODE_PORT_RANGE`]; never one whose
/// address is in `excluded`.
#[derive(Clone, Debug)]
pub struct Ownership<'a> {
    /// Addresses of `kube-ipvs0` (and the ones about to be).
    pub link_addresses: &'a BTreeSet<IpAddr>,
    /// The node's own addresses.
    pub node_addresses: &'a [IpAddr],
    /// `--ipvs-exclude-cidrs`.
    pub excluded: &'a [ipnet::IpNet],
}

impl Ownership<'_> {
    /// Whether `service` is kube-ferry's to change and delete.
    pub fn owns(&self, service: &VirtualService) -> bool {
        if self.excluded.iter().any(|c| c.contains(&service.address)) {
            return false;
        }
        self.link_addresses.contains(&service.address)
            || (self.node_addresses.contains(&service.address) && NODE_PORT_RANGE.contains(&service.port))
    }
}

impl KernelImage {
    /// Reads kube-ferry's services and their real servers from the kernel (one dump of
    /// the services, one of each owned service's real servers).
    pub fn read(table: &mut dyn IpvsTable, owner: &Ownership<'_>) -> Result<KernelImage, IpvsError> {
        let mut image = KernelImage::default();
        for service in table.services()? {
            if !owner.owns(&service) {
                continue;
            }
            let servers = table.real_servers(&service)?;
            image.services.insert(key_of(&service), ServiceImage { servers: weights(&servers), service });
        }
        Ok(image)
    }

    /// Real servers over all services.
    pub fn real_server_count(&self) -> usize {
        self.services.values().map(|s| s.servers.len()).sum()
    }
}

/// Weights by (address, port).
pub fn weights(servers: &[RealServer]) -> BTreeMap<(IpAddr, u16), u32> {
    servers.iter().map(|s| ((s.address, s.port), s.weight)).collect()
}
