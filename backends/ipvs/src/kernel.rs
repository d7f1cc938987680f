//! What the IPVS backend needs of the kernel, as traits, so the backend's sync logic
//! (adoption, differences, graceful termination) is tested against fakes in memory; the
//! real implementations are [`IpvsClient`] and [`crate::link::DummyLink`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::genl::{IpvsClient, IpvsError, RealServer, Timeouts, VirtualService};

/// IPVS's table: virtual services and real servers.
pub trait IpvsTable: Send {
    /// Every virtual service.
    fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError>;
    /// One service's real servers, with their connection counters.
    fn real_servers(&mut self, service: &VirtualService) -> Result<Vec<RealServer>, IpvsError>;
    /// Adds a virtual service.
    fn add_service(&mut self, service: &VirtualService) -> Result<(), IpvsError>;
    /// Changes a virtual service's scheduler or persistence.
    fn update_service(&mut self, service: &VirtualService) -> Result<(), IpvsError>;
    /// Deletes a virtual service with its real servers.
    fn delete_service(&mut self, service: &VirtualService) -> Result<(), IpvsError>;
    /// Adds a real server.
    fn add_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError>;
    /// Changes a real server's weight.
    fn update_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError>;
    /// Deletes a real server.
    fn delete_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError>;
    /// Sets the session timeouts (0 leaves one).
    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError>;
    /// Netlink messages sent so far (for the benchmark).
    fn messages_sent(&self) -> u64;
}

impl IpvsTable for IpvsClient {
    fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError> {
        IpvsClient::services(self)
    }
    fn real_servers(&mut self, service: &VirtualService) -> Result<Vec<RealServer>, IpvsError> {
        IpvsClient::real_servers(self, service)
    }
    fn add_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        IpvsClient::add_service(self, service)
    }
    fn update_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        IpvsClient::update_service(self, service)
    }
    fn delete_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        IpvsClient::delete_service(self, service)
    }
    fn add_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        IpvsClient::add_real_server(self, service, server)
    }
    fn update_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        IpvsClient::update_real_server(self, service, server)
    }
    fn delete_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        IpvsClient::delete_real_server(self, service, server)
    }
    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError> {
        IpvsClient::set_timeouts(self, timeouts)
    }
    fn messages_sent(&self) -> u64 {
        IpvsClient::messages_sent(self)
    }
}

/// The link service addresses live on (`kube-ipvs0`), and the node's own addresses.
pub trait AddressLink: Send {
    /// Creates the link if missing; true if it did.
    fn ensure(&mut self) -> Result<bool, String>;
    /// The addresses on the link.
    fn addresses(&mut self) -> Result<BTreeSet<IpAddr>, String>;
    /// Adds and removes addresses (idempotent).
    fn change(&mut self, add: &[IpAddr], remove: &[IpAddr]) -> Result<(), String>;
    /// Deletes the link; true if it existed.
    fn delete(&mut self) -> Result<bool, String>;
    /// The node's addresses on every other link (not loopback, not link-local), for
    /// NodePorts.
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, String>;
}
