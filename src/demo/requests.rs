//! The demo's requests: who asks what, and what each got.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferry_netlab::{request, Answer, Netns, ProbeError, Proto};

use super::{signals, DemoLab, DNS, REQUEST_TIMEOUT, WEB, WEB_EXTERNAL, WEB_NODE_PORT};

/// Who sends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sender {
    Client,
    Pod(usize),
    Node,
}

/// One kind of request, made `times` times (or, for `until_both`, until both pods answered).
pub(super) struct Ask {
    pub(super) from: Sender,
    pub(super) service: &'static str,
    pub(super) kind: String,
    pub(super) to: SocketAddr,
    pub(super) proto: Proto,
    pub(super) times: usize,
    pub(super) until_both: bool,
}

/// What one request got.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Outcome {
    Answered { pod: String, saw: IpAddr },
    Failed(String),
}

/// One line of the table: `count` requests of one [`Ask`] with the same outcome.
pub(super) struct Row {
    pub(super) from: Sender,
    pub(super) sent_from: Option<IpAddr>,
    pub(super) ask: usize,
    pub(super) outcome: Outcome,
    pub(super) count: usize,
}

/// The source address `ns` would send from to `to` (`ip route get`).
pub(super) fn source_address(ns: &Netns, to: IpAddr) -> Option<IpAddr> {
    let out = ns.ip(["route", "get", &to.to_string()]).ok()?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next()?.parse().ok();
        }
    }
    None
}

pub(super) fn ask(ns: &Netns, proto: Proto, to: SocketAddr) -> Outcome {
    match request(ns, proto, to, None, REQUEST_TIMEOUT) {
        Ok(line) => match Answer::parse(&line) {
            Some(a) => Outcome::Answered { pod: a.name, saw: a.peer.ip() },
            None => Outcome::Failed(format!("not an answer: {line:?}")),
        },
        Err(ProbeError::Refused) => Outcome::Failed("refused".into()),
        Err(ProbeError::TimedOut) => Outcome::Failed("no answer (timed out)".into()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

impl Ask {
    fn new(from: Sender, service: &'static str, kind: &str, to: SocketAddr, proto: Proto, times: usize) -> Ask {
        Ask { from, service, kind: kind.to_owned(), to, proto, times, until_both: false }
    }
}

/// Sends every request and groups the outcomes into rows.
pub(super) fn send(lab: &DemoLab, node_ip: Ipv4Addr, pods: usize) -> anyhow::Result<(Vec<Ask>, Vec<Row>, Duration)> {
    let pod_ips_len = pods;
    // The requests.
    let node_port = SocketAddr::new(IpAddr::V4(node_ip), WEB_NODE_PORT);
    let asks = [
        Ask::new(Sender::Client, "web", "ClusterIP", WEB, Proto::Tcp, 6),
        Ask::new(Sender::Client, "dns", "ClusterIP", DNS, Proto::Udp, 2),
        Ask { until_both: true, ..Ask::new(Sender::Pod(0), "web", "ClusterIP", WEB, Proto::Tcp, 4) },
        Ask::new(Sender::Pod(1), "dns", "ClusterIP", DNS, Proto::Udp, 2),
        Ask::new(Sender::Node, "web", "ClusterIP", WEB, Proto::Tcp, 2),
        Ask::new(Sender::Client, "web", "NodePort", node_port, Proto::Tcp, 2),
        Ask::new(Sender::Client, "web", "external IP", WEB_EXTERNAL, Proto::Tcp, 2),
    ];
    let ns_of = |from: Sender| match from {
        Sender::Client => lab.lab.client().ns(),
        Sender::Pod(i) => lab.lab.pod(i).ns(),
        Sender::Node => lab.lab.node(0).ns(),
    };
    let start = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for (i, a) in asks.iter().enumerate() {
        let ns = ns_of(a.from);
        let sent_from = source_address(ns, a.to.ip());
        let mut answered_by = std::collections::BTreeSet::new();
        let mut n = 0;
        while n < a.times || (a.until_both && answered_by.len() < pod_ips_len && n < 40) {
            signals::check()?;
            let outcome = ask(ns, a.proto, a.to);
            if let Outcome::Answered { pod, .. } = &outcome {
                answered_by.insert(pod.clone());
            }
            match rows.iter_mut().find(|r| r.ask == i && r.outcome == outcome) {
                Some(r) => r.count += 1,
                None => rows.push(Row { from: a.from, sent_from, ask: i, outcome, count: 1 }),
            }
            n += 1;
        }
    }
    let took = start.elapsed();

    Ok((asks.into(), rows, took))
}
