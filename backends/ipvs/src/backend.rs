//! [`IpvsBackend`]: the model rendered into IPVS virtual services, `kube-ipvs0`
//! addresses and the helper table, sending only differences.
//!
//! Each sync: (1) new service addresses go on `kube-ipvs0`; (2) virtual services and real
//! servers are changed to match ([`crate::desired`]) against the picture of the kernel
//! ([`crate::image`]; read from the kernel on the first sync and after a failure); a
//! removed TCP real server is set to weight 0 and deleted once its connections drained or
//! `graceful_period` passed (UDP ones at once: their counters never drain); (3) addresses
//! no longer used leave the link; (4) the helper sets change by element. A virtual service
//! the kernel refuses is reported (B34) and the rest still programmed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use ferry_model::{Backend, BackendError, CleanupReport, IpFamily, ProxyState, Refusal, SyncReport, SyncRequest};
use ferry_nftables::nft::NftRunner;
use tracing::{debug, info, warn};

use crate::config::IpvsConfig;
use crate::desired::{desired, DesiredIpvs, HelperSets, ServiceKey, WantedService};
use crate::genl::{IpvsError, Protocol, RealServer};
use crate::helpers;
use crate::image::{KernelImage, Ownership, ServiceImage};
use crate::kernel::{AddressLink, IpvsTable};

/// Writes one sysctl (`net/ipv4/vs/conntrack`, value): the real one writes under
/// `/proc/sys`; tests record.
pub type SysctlWriter = Box<dyn FnMut(&str, &str) -> Result<(), String> + Send>;

/// The sysctls IPVS needs, as kube-proxy sets them: connection tracking of IPVS
/// connections (so masquerade rules see them), expiry of connections whose real server
/// is gone (so a client moves on at once), and of persistence templates of weight-0
/// servers.
pub const IPVS_SYSCTLS: [(&str, &str); 3] =
    [("net/ipv4/vs/conntrack", "1"), ("net/ipv4/vs/expire_nodest_conn", "1"), ("net/ipv4/vs/expire_quiescent_template", "1")];

/// The IPVS backend.
pub struct IpvsBackend {
    config: IpvsConfig,
    table: Box<dyn IpvsTable>,
    link: Box<dyn AddressLink>,
    nft: Box<dyn NftRunner>,
    sysctl: SysctlWriter,
    udp: Option<ferry_conntrack::StaleUdpCleaner>,
    prepared: bool,
    /// What the kernel holds of ours; `None`: read it at the next sync.
    image: Option<KernelImage>,
    /// Addresses on `kube-ipvs0` after the last sync.
    addresses: Option<BTreeSet<IpAddr>>,
    /// The helper sets after the last sync, per family; `None`: replace the tables.
    sets: Option<(HelperSets, HelperSets)>,
    /// Real servers at weight 0 waiting for their connections to drain, since when.
    draining: BTreeMap<(ServiceKey, (IpAddr, u16)), Instant>,
    /// The node's addresses NodePorts answer on, read again at each full sync.
    node_addresses: Option<Vec<IpAddr>>,
}

impl std::fmt::Debug for IpvsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpvsBackend").field("config", &self.config).field("draining", &self.draining.len()).finish()
    }
}

/// The real sysctl writer: `/proc/sys/<path>` of this network namespace.
pub fn proc_sysctl(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/sys/{path}"), value).map_err(|e| format!("cannot set {path}={value}: {e}"))
}

fn refused(e: &IpvsError) -> BackendError {
    BackendError::Refused { detail: e.to_string() }
}

impl IpvsBackend {
    /// A backend over the given kernel parts (the real ones, or fakes in tests).
    pub fn with_parts(
        config: IpvsConfig,
        table: Box<dyn IpvsTable>,
        link: Box<dyn AddressLink>,
        nft: Box<dyn NftRunner>,
        sysctl: SysctlWriter,
    ) -> IpvsBackend {
        IpvsBackend {
            config,
            table,
            link,
            nft,
            sysctl,
            udp: None,
            prepared: false,
            image: None,
            addresses: None,
            sets: None,
            draining: BTreeMap::new(),
            node_addresses: None,
        }
    }

    /// Also deletes stale UDP conntrack entries after each sync (B25), with the
    /// `conntrack` tool.
    pub fn with_udp_cleanup(mut self) -> IpvsBackend {
        self.udp = Some(ferry_conntrack::StaleUdpCleaner::default());
        self
    }

    /// Netlink messages sent to IPVS so far.
    pub fn messages_sent(&self) -> u64 {
        self.table.messages_sent()
    }

    /// Creates `kube-ipvs0`, sets the sysctls and the timeouts: once, before the first sync.
    fn prepare(&mut self) -> Result<(), BackendError> {
        let created = self.link.ensure().map_err(|e| BackendError::Unavailable {
            what: format!("the {} dummy link", crate::link::LINK_NAME),
            hint: format!("{e} (the kernel needs the dummy module: `modprobe dummy`)"),
        })?;
        if created {
            info!(link = crate::link::LINK_NAME, "created the service-address link");
        }
        let mut sysctls: Vec<(&str, &str)> = IPVS_SYSCTLS.to_vec();
        if self.config.strict_arp {
            sysctls.extend([("net/ipv4/conf/all/arp_ignore", "1"), ("net/ipv4/conf/all/arp_announce", "2")]);
        }
        for (path, value) in sysctls {
            if let Err(e) = (self.sysctl)(path, value) {
                warn!(error = %e, "a sysctl IPVS needs could not be set; masquerade or failover may not work");
            }
        }
        let t = self.config.timeouts;
        if t.tcp != 0 || t.tcp_fin != 0 || t.udp != 0 {
            self.table.set_timeouts(&t).map_err(|e| refused(&e))?;
        }
        self.prepared = true;
        Ok(())
    }

    /// The node's addresses NodePorts answer on: read on full syncs (every
    /// `--sync-period`), kept between them.
    fn node_addresses(&mut self) -> Result<Vec<IpAddr>, BackendError> {
        if let Some(known) = &self.node_addresses {
            return Ok(known.clone());
        }
        let all = self.link.node_addresses().map_err(BackendError::Other)?;
        let cidrs = &self.config.nodeport_cidrs;
        let mine: Vec<IpAddr> =
            all.into_iter().filter(|a| cidrs.is_empty() || cidrs.iter().any(|c| c.contains(a))).collect();
        self.node_addresses = Some(mine.clone());
        Ok(mine)
    }

    fn sync_inner(&mut self, state: &ProxyState) -> Result<SyncReport, BackendError> {
        if !self.prepared {
            self.prepare()?;
        }
        let messages_before = self.table.messages_sent();
        let node_addresses = self.node_addresses()?;
        let want = desired(state, &self.config, &node_addresses);

        // (1) New addresses first: a new virtual service's address must be local.
        let current = match self.addresses.take() {
            Some(a) => a,
            None => self.link.addresses().map_err(BackendError::Other)?,
        };
        let add: Vec<IpAddr> = want.addresses.difference(&current).copied().collect();
        self.link.change(&add, &[]).map_err(|e| BackendError::Refused { detail: e })?;
        let mut on_link: BTreeSet<IpAddr> = current.union(&want.addresses).copied().collect();

        // (2) Virtual services and real servers.
        let mut image = match self.image.take() {
            Some(image) => image,
            None => {
                let owner = Ownership {
                    link_addresses: &on_link,
                    node_addresses: &node_addresses,
                    excluded: &self.config.exclude_cidrs,
                };
                let image = KernelImage::read(self.table.as_mut(), &owner).map_err(|e| refused(&e))?;
                debug!(services = image.services.len(), "read kube-ferry's virtual services from the kernel");
                image
            }
        };
        let mut refusals = Vec::new();
        self.apply_services(&want, &mut image, &mut refusals)?;
        self.finish_draining(&mut image)?;

        // (3) Addresses no longer used.
        let remove: Vec<IpAddr> = on_link.difference(&want.addresses).copied().collect();
        self.link.change(&[], &remove).map_err(|e| BackendError::Refused { detail: e })?;
        on_link = want.addresses.clone();

        // (4) The helper table.
        let element_ops = self.apply_helpers(&want)?;

        if let Some(udp) = self.udp.as_mut() {
            udp.after_sync(state);
        }
        let operations = (self.table.messages_sent() - messages_before) as usize + add.len() + remove.len() + element_ops;
        let kernel_objects =
            image.services.len() + image.real_server_count() + on_link.len() + 2 * helpers::rule_count(&self.config);
        self.image = Some(image);
        self.addresses = Some(on_link);
        Ok(SyncReport {
            service_ports: state.len(),
            endpoints: state.endpoint_count(),
            operations,
            kernel_objects,
            refused: refusals,
            events: vec![("real_servers_draining", self.draining.len() as u64)],
        })
    }

    /// Changes the kernel's services to `want`'s, keeping `image` equal to the kernel.
    fn apply_services(
        &mut self,
        want: &DesiredIpvs,
        image: &mut KernelImage,
        refusals: &mut Vec<Refusal>,
    ) -> Result<(), BackendError> {
        let gone: Vec<ServiceKey> = image.services.keys().filter(|k| !want.services.contains_key(*k)).copied().collect();
        for key in gone {
            if let Some(old) = image.services.get(&key) {
                match self.table.delete_service(&old.service) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(refused(&e)),
                }
            }
            image.services.remove(&key);
            self.draining.retain(|(k, _), _| *k != key);
        }
        for (key, wanted) in &want.services {
            if let Err(e) = self.apply_service(key, wanted, image) {
                let detail = e.to_string();
                warn!(port = %wanted.owner, error = %detail, "the kernel refused a virtual service; the others are programmed");
                refusals.push(Refusal { object: wanted.owner.to_string(), detail });
            }
        }
        Ok(())
    }

    /// Makes one virtual service and its real servers as wanted.
    fn apply_service(&mut self, key: &ServiceKey, wanted: &WantedService, image: &mut KernelImage) -> Result<(), IpvsError> {
        let entry = match image.services.get_mut(key) {
            Some(entry) => entry,
            None => {
                match self.table.add_service(&wanted.service) {
                    Ok(()) => {}
                    // Made by an earlier run but not in the image (excluded from the
                    // dump's ownership): take it over.
                    Err(e) if e.is_already_exists() => self.table.update_service(&wanted.service)?,
                    Err(e) => return Err(e),
                }
                image.services.entry(*key).or_insert(ServiceImage { service: wanted.service.clone(), servers: BTreeMap::new() })
            }
        };
        if entry.service.scheduler != wanted.service.scheduler || entry.service.persistence != wanted.service.persistence {
            self.table.update_service(&wanted.service)?;
            entry.service = wanted.service.clone();
        }
        let wanted_servers: BTreeSet<(IpAddr, u16)> = wanted.servers.iter().map(|s| (s.address, s.port)).collect();
        for server in &wanted.servers {
            let id = (server.address, server.port);
            match entry.servers.get(&id) {
                Some(1) => {}
                Some(_) => {
                    self.table.update_real_server(&wanted.service, server)?;
                    entry.servers.insert(id, 1);
                    self.draining.remove(&(*key, id));
                }
                None => {
                    match self.table.add_real_server(&wanted.service, server) {
                        Ok(()) => {}
                        Err(e) if e.is_already_exists() => self.table.update_real_server(&wanted.service, server)?,
                        Err(e) => return Err(e),
                    }
                    entry.servers.insert(id, 1);
                }
            }
        }
        let unwanted: Vec<((IpAddr, u16), u32)> =
            entry.servers.iter().filter(|(id, _)| !wanted_servers.contains(*id)).map(|(id, w)| (*id, *w)).collect();
        for (id, weight) in unwanted {
            let server = RealServer::new(id.0, id.1, 0);
            if wanted.service.protocol == Protocol::Udp || self.config.graceful_period.is_zero() {
                delete_real_server(self.table.as_mut(), &wanted.service, &server)?;
                entry.servers.remove(&id);
            } else if weight != 0 {
                self.table.update_real_server(&wanted.service, &server)?;
                entry.servers.insert(id, 0);
                self.draining.entry((*key, id)).or_insert_with(Instant::now);
            } else {
                self.draining.entry((*key, id)).or_insert_with(Instant::now);
            }
        }
        Ok(())
    }

    /// Deletes draining real servers whose connections are gone or whose time is up.
    fn finish_draining(&mut self, image: &mut KernelImage) -> Result<(), BackendError> {
        if self.draining.is_empty() {
            return Ok(());
        }
        let services: BTreeSet<ServiceKey> = self.draining.keys().map(|(k, _)| *k).collect();
        for key in services {
            let Some(entry) = image.services.get_mut(&key) else {
                self.draining.retain(|(k, _), _| *k != key);
                continue;
            };
            let live = self.table.real_servers(&entry.service).map_err(|e| refused(&e))?;
            let counts: BTreeMap<(IpAddr, u16), u32> = live
                .iter()
                .map(|s| ((s.address, s.port), s.active_connections.saturating_add(s.inactive_connections)))
                .collect();
            let mine: Vec<((IpAddr, u16), Instant)> =
                self.draining.iter().filter(|((k, _), _)| *k == key).map(|((_, id), t)| (*id, *t)).collect();
            for (id, since) in mine {
                let connections = counts.get(&id).copied();
                let expired = since.elapsed() >= self.config.graceful_period;
                if connections.is_none_or(|n| n == 0) || expired {
                    let server = RealServer::new(id.0, id.1, 0);
                    delete_real_server(self.table.as_mut(), &entry.service, &server).map_err(|e| refused(&e))?;
                    entry.servers.remove(&id);
                    self.draining.remove(&(key, id));
                    debug!(service = %entry.service, server = %server, expired, "drained real server deleted");
                }
            }
        }
        Ok(())
    }

    /// Replaces the helper tables on the first sync, else changes their elements.
    /// Returns the elements changed.
    fn apply_helpers(&mut self, want: &DesiredIpvs) -> Result<usize, BackendError> {
        let (v4, v6) = (want.sets(IpFamily::V4).clone(), want.sets(IpFamily::V6).clone());
        let ops = match self.sets.take() {
            None => {
                let mut script = helpers::replace_table(IpFamily::V4, &self.config, &v4);
                script.push_str(&helpers::replace_table(IpFamily::V6, &self.config, &v6));
                self.nft.apply(&script)?;
                v4.len() + v6.len() + 2
            }
            Some((old4, old6)) => {
                let mut script = helpers::update_elements(IpFamily::V4, &old4, &v4);
                script.push_str(&helpers::update_elements(IpFamily::V6, &old6, &v6));
                if !script.is_empty() {
                    if let Err(e) = self.nft.apply(&script) {
                        self.sets = Some((old4, old6));
                        return Err(e);
                    }
                }
                helpers::changed_elements(&old4, &v4) + helpers::changed_elements(&old6, &v6)
            }
        };
        self.sets = Some((v4, v6));
        Ok(ops)
    }
}

impl IpvsBackend {
    /// kube-ferry's virtual services as the kernel holds them now (for status and
    /// cleanup, which must not trust this process's picture).
    fn read_ours(&mut self) -> Result<KernelImage, BackendError> {
        let link_addresses = self.link.addresses().unwrap_or_default();
        let node_addresses = self.link.node_addresses().unwrap_or_default();
        let owner = Ownership {
            link_addresses: &link_addresses,
            node_addresses: &node_addresses,
            excluded: &self.config.exclude_cidrs,
        };
        KernelImage::read(self.table.as_mut(), &owner).map_err(|e| refused(&e))
    }
}

fn delete_real_server(
    table: &mut dyn IpvsTable,
    service: &crate::genl::VirtualService,
    server: &RealServer,
) -> Result<(), IpvsError> {
    match table.delete_real_server(service, server) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

impl Backend for IpvsBackend {
    fn mode(&self) -> &'static str {
        "ipvs"
    }

    fn sync(&mut self, state: &ProxyState, request: SyncRequest<'_>) -> Result<SyncReport, BackendError> {
        if matches!(request, SyncRequest::Full) && self.image.is_some() {
            // A full sync repairs drift: the kernel is read again.
            self.image = None;
            self.addresses = None;
            self.node_addresses = None;
        }
        let result = self.sync_inner(state);
        if result.is_err() {
            // What the kernel holds is not known after a failure: read it next time.
            self.image = None;
            self.addresses = None;
            self.sets = None;
            self.node_addresses = None;
        }
        result
    }

    fn status(&mut self) -> Result<Vec<ferry_model::ProgrammedFrontend>, BackendError> {
        let mut out = Vec::new();
        for entry in self.read_ours()?.services.into_values() {
            // Weight 0: draining, takes no new connection.
            let endpoints = entry.servers.iter().filter(|(_, w)| **w > 0).map(|((a, p), _)| std::net::SocketAddr::new(*a, *p));
            let s = entry.service;
            out.push(ferry_model::ProgrammedFrontend::new(s.protocol, Some(s.address), s.port, endpoints.collect()));
        }
        for family in [IpFamily::V4, IpFamily::V6] {
            for (set, verdict) in [("no-endpoint-reject", "reject"), ("no-endpoint-drop", "drop")] {
                let fam = helpers::nft_family(family);
                let Ok(text) = self.nft.output(&["list", "set", fam, helpers::TABLE, set]) else { continue };
                for (protocol, address, port) in helpers::parse_frontend_elements(&text) {
                    let mut f = ferry_model::ProgrammedFrontend::new(protocol, Some(address), port, Vec::new());
                    f.verdict = Some(verdict.to_owned());
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    fn cleanup(&mut self) -> Result<CleanupReport, BackendError> {
        let mut report = CleanupReport::default();
        let image = self.read_ours()?;
        for entry in image.services.values() {
            match self.table.delete_service(&entry.service) {
                Ok(()) => report.removed.push(format!("virtual service {}", entry.service)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(refused(&e)),
            }
        }
        if self.link.delete().map_err(BackendError::Other)? {
            report.removed.push(format!("link {}", crate::link::LINK_NAME));
        }
        let tables = self.nft.output(&["list", "tables"]).unwrap_or_default();
        for family in [IpFamily::V4, IpFamily::V6] {
            let name = format!("table {} {}", helpers::nft_family(family), helpers::TABLE);
            if tables.lines().any(|l| l.trim() == name) {
                self.nft.apply(&helpers::delete_table(family))?;
                report.removed.push(name);
            }
        }
        self.image = None;
        self.addresses = None;
        self.sets = None;
        self.prepared = false;
        Ok(report)
    }
}
