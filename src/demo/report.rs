//! The demo's table of requests and its summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kube_ferry::cli::Mode;

use super::requests::{Ask, Outcome, Row, Sender};
use super::table::Table;
use super::{secs, DemoLab, CLUSTER_CIDR, WEB_EXTERNAL, WEB_NODE_PORT};

/// Prints the table and the summary; an error if a request got no answer.
pub(super) fn print(
    mode: Mode,
    lab: &DemoLab,
    asks: &[Ask],
    rows: &[Row],
    took: Duration,
    bridge: IpAddr,
    total: Instant,
) -> anyhow::Result<()> {
    let name_of = |from: Sender| match from {
        Sender::Client => "client".to_owned(),
        Sender::Pod(i) => lab.lab.pod(i).name().to_owned(),
        Sender::Node => "node".to_owned(),
    };
    // The table.
    let cidr: ipnet::IpNet = CLUSTER_CIDR.parse().context("the cluster CIDR")?;
    let mut table = Table::new(&["n", "from", "to", "proto", "answered by", "pod saw", "source address"]);
    let (mut asked, mut failed) = (0, 0);
    let mut by_pod: BTreeMap<String, usize> = BTreeMap::new();
    let (mut outside, mut hairpins, mut kept): (Vec<String>, Vec<String>, Vec<String>) = Default::default();
    let note = |list: &mut Vec<String>, what: String| {
        if !list.contains(&what) {
            list.push(what);
        }
    };
    for r in rows {
        let a = &asks[r.ask];
        asked += r.count;
        let sender = name_of(r.from);
        let from = match r.sent_from {
            Some(ip) => format!("{sender} {ip}"),
            None => sender.clone(),
        };
        let to = format!("{} {} {}", a.service, a.kind, a.to);
        let proto = a.proto.as_str().to_owned();
        let (answered, saw, source) = match &r.outcome {
            Outcome::Answered { pod, saw } => {
                *by_pod.entry(pod.clone()).or_default() += r.count;
                let saw_text = if *saw == bridge { format!("{saw} (node)") } else { saw.to_string() };
                let source = if Some(*saw) == r.sent_from {
                    note(&mut kept, format!("{sender} to {pod}"));
                    "kept".to_owned()
                } else if mode == Mode::Userspace {
                    note(&mut outside, format!("{sender} to {pod}"));
                    "proxied: the userspace proxy connects from the node".to_owned()
                } else if sender == *pod {
                    note(&mut hairpins, sender.clone());
                    "masqueraded: hairpin (the pod reached itself)".to_owned()
                } else if r.sent_from.is_some_and(|ip| !cidr.contains(&ip)) {
                    note(&mut outside, format!("the {sender}"));
                    "masqueraded: from outside the cluster CIDR".to_owned()
                } else {
                    note(&mut outside, format!("{sender} to {pod}"));
                    "masqueraded".to_owned()
                };
                (pod.clone(), saw_text, source)
            }
            Outcome::Failed(why) => {
                failed += r.count;
                ("-".to_owned(), "-".to_owned(), format!("FAILED: {why}"))
            }
        };
        table.row(vec![r.count.to_string(), from, to, proto, answered, saw, source]);
    }
    println!("requests: n requests per row; \"pod saw\" is the source address the answering pod saw");
    print!("{}", table.render("  "));
    println!();

    // The summary.
    let mut summary = String::new();
    let answered: Vec<String> = by_pod.iter().map(|(pod, n)| format!("{pod} {n}")).collect();
    let _ = writeln!(
        summary,
        "  {asked} requests in {}, {}; answers: {}",
        secs(took),
        if failed == 0 { "all answered".to_owned() } else { format!("{failed} NOT answered") },
        if answered.is_empty() { "no pod".to_owned() } else { answered.join(", ") }
    );
    let and = |list: &[String]| match list {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let mut masq = Vec::new();
    if !outside.is_empty() {
        masq.push(format!("requests from {} (outside {CLUSTER_CIDR})", and(&outside)));
    }
    if !hairpins.is_empty() {
        masq.push(format!(
            "hairpins ({} reaching {})",
            and(&hairpins),
            if hairpins.len() == 1 { "itself" } else { "themselves" }
        ));
    }
    if !masq.is_empty() {
        let _ = writeln!(summary, "  masqueraded, so the pod saw the node's {bridge}: {}", masq.join("; "));
    }
    if !kept.is_empty() {
        let _ = writeln!(
            summary,
            "  source kept, so the pod saw the sender's own address: {} (pod to pod needs no NAT)",
            and(&kept)
        );
    }
    let _ = writeln!(
        summary,
        "  one kube-ferry (--mode {}) in the node served the ClusterIP (TCP and UDP), the NodePort {WEB_NODE_PORT} and the external IP {}",
        mode.name(),
        WEB_EXTERNAL.ip()
    );
    println!("summary ({} in all):", secs(total.elapsed()));
    print!("{summary}");
    if failed > 0 {
        bail!("{failed} of {asked} requests got no answer");
    }
    Ok(())
}
