//! The status parser on real iptables-save output (tests/data/status).
//! The fixtures are real `iptables-save` output: `kube-ferry render --mode iptables`
//! loaded into a network namespace of its own and read back (tests/data/status/make.sh).
use super::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/status").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One line per frontend: `TCP 10.96.0.10:80 -> a, b` or `... -> (reject)`.
fn lines(frontends: &[ProgrammedFrontend]) -> String {
    let mut out = String::new();
    for f in frontends {
        let to = if f.endpoints.is_empty() {
            format!("({})", f.verdict.as_deref().unwrap_or("nothing"))
        } else {
            f.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        out.push_str(&format!("{} {} -> {to}\n", f.protocol, f.frontend_text()));
    }
    out
}

const SMALL_V4: &str = "\
TCP *:30030 -> (reject)
TCP *:30040 -> (drop)
TCP *:30060 -> 10.244.1.61:80, 10.244.2.62:80
TCP *:30080 -> 10.244.1.11:8080, 10.244.1.12:8080, 10.244.2.21:8080
TCP *:30090 -> 10.244.1.91:8080
TCP *:30443 -> 10.244.1.14:8443
TCP 10.96.0.10:80 -> 10.244.1.11:8080, 10.244.1.12:8080, 10.244.2.21:8080
TCP 10.96.0.30:80 -> (reject)
TCP 10.96.0.40:80 -> 10.244.2.41:8080
TCP 10.96.0.53:53 -> 10.244.1.13:5353
TCP 10.96.0.60:8080 -> 10.244.1.61:80, 10.244.2.62:80
TCP 10.96.0.70:80 -> 10.244.1.71:8080
TCP 10.96.0.80:443 -> 10.244.1.14:8443, 10.244.2.24:8443
TCP 10.96.0.90:80 -> 10.244.1.91:8080, 10.244.2.92:8080
TCP 192.0.2.10:80 -> 10.244.1.11:8080, 10.244.1.12:8080, 10.244.2.21:8080
TCP 192.0.2.40:80 -> (drop)
TCP 192.0.2.90:80 -> 10.244.1.91:8080
TCP 203.0.113.60:8080 -> 10.244.1.61:80, 10.244.2.62:80
TCP 203.0.113.80:443 -> 10.244.1.14:8443
UDP *:30050 -> 10.244.1.51:5001, 10.244.2.52:5001
UDP 10.96.0.50:5000 -> 10.244.1.51:5001
UDP 10.96.0.53:53 -> 10.244.1.13:5353
SCTP 10.96.0.75:9000 -> (reject)
";

const SMALL_V6: &str = "\
TCP *:30090 -> [fd00:244:1::91]:8080
TCP [2001:db8::90]:80 -> [fd00:244:1::91]:8080
TCP [fd00:96::90]:80 -> [fd00:244:1::91]:8080, [fd00:244:2::92]:8080
UDP [fd00:96::60]:53 -> (reject)
";

#[test]
fn b32_every_shape_read_back_from_real_save_output_of_both_variants() {
    // ClusterIP, external IP, NodePort; Cluster and Local external policy (Local: the
    // node's own endpoints, or DROP with none here); internal Local policy (ClusterIP:
    // local endpoints; NodePort: KUBE-CLU-, all of them); load-balancer source ranges
    // (KUBE-FW- to KUBE-EXT-); ClientIP affinity; a terminating fallback; no endpoints
    // (REJECT); SCTP, UDP; IPv6.
    for variant in ["nft", "legacy"] {
        let v4 = frontends(&fixture(&format!("small-{variant}.v4.txt")));
        assert_eq!(lines(&v4), SMALL_V4, "{variant} variant, IPv4");
        let v6 = frontends(&fixture(&format!("small-{variant}.v6.txt")));
        assert_eq!(lines(&v6), SMALL_V6, "{variant} variant, IPv6");
    }
}

#[test]
fn b32_comments_are_not_needed() {
    let text = fixture("small-nft.v4.txt");
    let stripped: String = text
        .lines()
        .map(|l| match l.find(" -m comment --comment ") {
            Some(at) => {
                let rest = &l[at + " -m comment --comment ".len()..];
                let skip = if let Some(quoted) = rest.strip_prefix('"') {
                    quoted.find('"').map_or(rest.len(), |e| e + 2)
                } else {
                    rest.find(' ').unwrap_or(rest.len())
                };
                format!("{}{}\n", &l[..at], &rest[skip..])
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert!(!stripped.contains("--comment"), "{stripped}");
    assert_eq!(lines(&frontends(&stripped)), SMALL_V4);
}

/// What tests/data/status/large-nft.v4.txt was rendered from: 1,001 ClusterIP services
/// `s{i}` at 10.97.{i/250}.{i%250+1}:80, the first 40 also NodePort 31000+3i; endpoint
/// 10.244.{1+i%2}.{i%250+1}:8080, every tenth one more at 10.245.{i/250}.{i%250+1}:8080,
/// none when i % 101 == 7.
fn large_expected() -> String {
    let mut rows: Vec<ProgrammedFrontend> = Vec::new();
    for i in 0..1001u32 {
        let endpoints: Vec<SocketAddr> = if i % 101 == 7 {
            Vec::new()
        } else {
            let mut e = vec![format!("10.244.{}.{}:8080", 1 + i % 2, i % 250 + 1).parse().unwrap()];
            if i % 10 == 0 {
                e.push(format!("10.245.{}.{}:8080", i / 250, i % 250 + 1).parse().unwrap());
            }
            e
        };
        let address: IpAddr = format!("10.97.{}.{}", i / 250, i % 250 + 1).parse().unwrap();
        let mut ports = vec![(Some(address), 80)];
        if i < 40 {
            ports.push((None, 31000 + 3 * i as u16));
        }
        for (address, port) in ports {
            let mut f = ProgrammedFrontend::new(Protocol::Tcp, address, port, endpoints.clone());
            if endpoints.is_empty() {
                f.verdict = Some("reject".into());
            }
            rows.push(f);
        }
    }
    rows.sort();
    lines(&rows)
}

#[test]
fn b32_a_large_table_without_comments_through_both_trees() {
    let text = fixture("large-nft.v4.txt");
    // The fixture is what it claims: no per-port comments (above 1,000 ports), an
    // address tree and a NodePort range tree.
    assert!(!text.contains("cluster IP") && !text.contains("node port"));
    assert!(text.contains("-j KUBE-DST-") && text.contains("-j KUBE-NP-TCP-"));
    let found = frontends(&text);
    assert_eq!(found.len(), 1041);
    assert_eq!(lines(&found), large_expected());
    assert!(frontends(&fixture("large-nft.v6.txt")).is_empty());
}

#[test]
fn words_quotes_negations_and_bare_dnat_addresses() {
    let rule = Rule::parse(r#"! -s 10.0.0.0/8 -m comment --comment "a \"b\" c" -j DNAT --to-destination 10.1.2.3"#);
    assert_eq!(rule.matches[0], Opt { name: "-s".into(), negated: true, values: vec!["10.0.0.0/8".into()] });
    assert_eq!(rule.matches[2].values, [r#"a "b" c"#]);
    assert_eq!(rule.target.as_deref(), Some("DNAT"));
    assert_eq!(dnat_destination(&rule, 53), Some("10.1.2.3:53".parse().unwrap()));
    assert_eq!(rule.fits(Protocol::Tcp, "KUBE-SVC-X"), Fit::Yes);
    assert_eq!(Rule::parse("-s 10.0.0.0/8 -j X").fits(Protocol::Tcp, "KUBE-EXT-X"), Fit::No);
    assert_eq!(Rule::parse("-s 10.0.0.0/8 -j X").fits(Protocol::Tcp, "KUBE-FW-X"), Fit::Yes);
    assert_eq!(Rule::parse("-p udp -j X").fits(Protocol::Tcp, "KUBE-SVC-X"), Fit::No);
}

#[test]
fn a_jump_loop_ends() {
    let save = "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n:KUBE-SVC-B - [0:0]\n\
        -A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A\n\
        -A KUBE-SVC-A -j KUBE-SVC-B\n-A KUBE-SVC-B -j KUBE-SVC-A\nCOMMIT\n";
    assert_eq!(lines(&frontends(save)), "TCP 10.96.0.1:80 -> (nothing)\n");
}
