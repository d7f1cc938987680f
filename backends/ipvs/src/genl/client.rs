//! The socket side: one generic netlink socket, requests sent one at a time, each
//! waited for (ACK, reply or end of dump) before the next.

use neli::consts::nl::NlmF;
use neli::consts::socket::NlFamily;
use neli::nl::{NlPayload, NlmsghdrBuilder};
use neli::socket::synchronous::NlSocketHandle;
use neli::types::Buffer;
use neli::utils::Groups;

use super::encode::{self, GenlMsg};
use super::error::command_name;
use super::reply::{self, Failure, Step};
use super::uapi::*;
use super::{decode, IpvsError, RealServer, Timeouts, VirtualService};

/// A connection to the kernel's IPVS over generic netlink.
///
/// Guarantees: every request is acknowledged or answered before the call returns, so a
/// returned `Ok` means the kernel applied it; a refusal comes back as
/// [`IpvsError::Refused`] naming the object, the command and the errno. The client talks
/// to the IPVS of the network namespace the calling thread was in at [`IpvsClient::connect`]
/// (IPVS state is per namespace). Calls block; there is no timeout, the kernel always answers.
pub struct IpvsClient {
    socket: NlSocketHandle,
    family_id: u16,
    seq: u32,
    sent: u64,
}

/// What a request waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Await {
    /// `NLM_F_ACK`: replies (if any) then the ACK.
    Ack,
    /// `NLM_F_DUMP`: replies until `NLMSG_DONE`.
    Dump,
}

impl IpvsClient {
    /// Opens a generic netlink socket and resolves the family `IPVS` (the kernel loads
    /// `ip_vs` on demand if it can).
    ///
    /// Returns [`IpvsError::NotAvailable`] if the family does not exist: the kernel has no
    /// IPVS, and the caller should fall back to nftables.
    pub fn connect() -> Result<IpvsClient, IpvsError> {
        let socket = NlSocketHandle::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| IpvsError::socket("open (socket(AF_NETLINK, NETLINK_GENERIC))", e))?;
        let mut client = IpvsClient { socket, family_id: GENL_ID_CTRL, seq: 0, sent: 0 };
        let object = format!("generic netlink family {IPVS_GENL_NAME}");
        let replies = match client.transact(
            GENL_ID_CTRL,
            "CTRL_CMD_GETFAMILY",
            encode::get_family(IPVS_GENL_NAME)?,
            Await::Ack,
        ) {
            Ok(replies) => replies,
            Err(Failure::Kernel(libc::ENOENT)) => {
                return Err(IpvsError::NotAvailable { detail: "the generic netlink controller answered ENOENT".into() })
            }
            Err(Failure::Kernel(errno)) => return Err(refused(object, "CTRL_CMD_GETFAMILY", errno, "")),
            Err(Failure::Client(e)) => return Err(e.in_context(&object)),
        };
        let reply = replies.first().ok_or_else(|| IpvsError::malformed(&object, "no reply to GETFAMILY"))?;
        let (id, version) = decode::family(reply).map_err(|e| IpvsError::malformed(&object, e))?;
        tracing::debug!(family_id = id, version, "resolved generic netlink family IPVS");
        client.family_id = id;
        Ok(client)
    }

    /// The number of netlink messages sent on this socket so far (requests, including the
    /// family lookup of `connect`; the kernel's replies are not counted). The benchmark
    /// reports the difference across a sync as "netlink messages per sync".
    pub fn messages_sent(&self) -> u64 {
        self.sent
    }

    /// All virtual services of the namespace, IPv4 and IPv6, in the kernel's order (one
    /// dump). Services this client cannot represent (firewall-mark services, other
    /// protocols) are skipped, with a debug log.
    pub fn services(&mut self) -> Result<Vec<VirtualService>, IpvsError> {
        let object = "IPVS virtual services (dump)";
        let replies = self.request(encode::get_services()?, Await::Dump, object, "")?;
        let mut services = Vec::with_capacity(replies.len());
        for reply in &replies {
            match decode::service(reply).map_err(|e| IpvsError::malformed(object, e))? {
                Some(svc) => services.push(svc),
                None => tracing::debug!(
                    "skipping an IPVS virtual service kube-ferry does not manage (fwmark or other protocol)"
                ),
            }
        }
        Ok(services)
    }

    /// Adds a virtual service (`NEW_SERVICE`). `EEXIST` if one with this identity exists
    /// ([`IpvsError::is_already_exists`]); `ENOENT` if the kernel has no such scheduler.
    pub fn add_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let object = format!("virtual service {service}");
        self.request(encode::new_service(service)?, Await::Ack, &object, service.scheduler.name()).map(drop)
    }

    /// Changes scheduler, persistence and flags of the service with this identity
    /// (`SET_SERVICE`); its real servers and connections stay. `ESRCH` if it does not exist.
    pub fn update_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let object = format!("virtual service {service}");
        self.request(encode::set_service(service)?, Await::Ack, &object, service.scheduler.name()).map(drop)
    }

    /// Deletes the service with this identity and all its real servers (`DEL_SERVICE`);
    /// only address, protocol and port are used. `ESRCH` if it does not exist
    /// ([`IpvsError::is_not_found`]).
    pub fn delete_service(&mut self, service: &VirtualService) -> Result<(), IpvsError> {
        let object = format!("virtual service {service}");
        self.request(encode::del_service(service)?, Await::Ack, &object, "").map(drop)
    }

    /// The real servers of a service, with their connection counters (one dump; only the
    /// service's identity is used). A service that does not exist has none.
    pub fn real_servers(&mut self, service: &VirtualService) -> Result<Vec<RealServer>, IpvsError> {
        let object = format!("real servers of virtual service {service} (dump)");
        let replies = self.request(encode::get_dests(service)?, Await::Dump, &object, "")?;
        let af = encode::family(service.address);
        replies.iter().map(|r| decode::real_server(r, af).map_err(|e| IpvsError::malformed(&object, e))).collect()
    }

    /// Adds a real server to a service (`NEW_DEST`). `EEXIST` if the service already has
    /// one with this address and port; `ESRCH` if the service does not exist.
    pub fn add_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let object = format!("real server {server} of virtual service {service}");
        self.request(encode::new_dest(service, server)?, Await::Ack, &object, "").map(drop)
    }

    /// Changes the weight (and forwarding method) of a real server (`SET_DEST`); its
    /// connections stay. `ENOENT` if the service has no such server.
    pub fn update_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let object = format!("real server {server} of virtual service {service}");
        self.request(encode::set_dest(service, server)?, Await::Ack, &object, "").map(drop)
    }

    /// Removes a real server from a service (`DEL_DEST`); only address and port are used.
    /// `ENOENT` if the service has no such server ([`IpvsError::is_not_found`]).
    pub fn delete_real_server(&mut self, service: &VirtualService, server: &RealServer) -> Result<(), IpvsError> {
        let object = format!("real server {server} of virtual service {service}");
        self.request(encode::del_dest(service, server)?, Await::Ack, &object, "").map(drop)
    }

    /// Sets the global connection timeouts (`SET_CONFIG`); a 0 field leaves that timeout
    /// as it is.
    pub fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError> {
        self.request(encode::set_config(timeouts)?, Await::Ack, "IPVS timeouts", "").map(drop)
    }

    /// The global connection timeouts (`GET_CONFIG`).
    pub fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let object = "IPVS timeouts";
        let replies = self.request(encode::get_config()?, Await::Ack, object, "")?;
        let reply = replies.first().ok_or_else(|| IpvsError::malformed(object, "no reply to GET_CONFIG"))?;
        decode::timeouts(reply).map_err(|e| IpvsError::malformed(object, e))
    }

    /// Deletes every virtual service (and real server) of the namespace (`FLUSH`,
    /// `ipvsadm -C`), including ones kube-ferry did not create.
    pub fn flush(&mut self) -> Result<(), IpvsError> {
        self.request(encode::flush()?, Await::Ack, "IPVS table (flush)", "").map(drop)
    }

    /// Sends an IPVS request and turns a kernel refusal into [`IpvsError::Refused`].
    fn request(&mut self, msg: GenlMsg, wait: Await, object: &str, hint: &str) -> Result<Vec<GenlMsg>, IpvsError> {
        let command = command_name(*msg.cmd());
        self.transact(self.family_id, command, msg, wait).map_err(|failure| match failure {
            Failure::Kernel(errno) => refused(object.to_string(), command, errno, hint),
            Failure::Client(e) => e.in_context(object),
        })
    }

    /// Sends one message and collects the replies to it, up to the ACK or the end of the dump.
    fn transact(&mut self, nl_type: u16, command: &str, msg: GenlMsg, wait: Await) -> Result<Vec<GenlMsg>, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let flags = match wait {
            Await::Ack => NlmF::REQUEST | NlmF::ACK,
            Await::Dump => NlmF::REQUEST | NlmF::DUMP,
        };
        let nlmsg = NlmsghdrBuilder::default()
            .nl_type(nl_type)
            .nl_flags(flags)
            .nl_seq(seq)
            .nl_payload(NlPayload::Payload(msg))
            .build()
            .map_err(|e| IpvsError::Encode { context: command.into(), detail: e.to_string() })?;
        self.socket.send(&nlmsg).map_err(|e| IpvsError::socket(format!("send {command}"), e))?;
        self.sent += 1;
        let mut replies = Vec::new();
        loop {
            let (messages, _) = self
                .socket
                .recv::<u16, Buffer>()
                .map_err(|e| IpvsError::socket(format!("receive the answer to {command}"), e))?;
            for message in messages {
                let message = message.map_err(|e| IpvsError::malformed(command, format!("netlink message: {e}")))?;
                if reply::absorb(&message, seq, command, &mut replies)? == Step::Finished {
                    return Ok(replies);
                }
            }
        }
    }
}

fn refused(object: String, command: &'static str, errno: i32, hint: &str) -> IpvsError {
    IpvsError::Refused { object, command, errno, hint: hint.to_string() }
}

impl IpvsError {
    /// Prefixes the context of socket and decoding errors with the object.
    fn in_context(self, object: &str) -> IpvsError {
        match self {
            IpvsError::Socket { action, detail } => IpvsError::Socket { action: format!("{object}: {action}"), detail },
            IpvsError::Malformed { context, detail } => {
                IpvsError::Malformed { context: format!("{object}: {context}"), detail }
            }
            other => other,
        }
    }
}
