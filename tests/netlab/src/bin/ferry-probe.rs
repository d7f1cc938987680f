//! `ferry-probe tcp|udp|sctp ADDR TIMEOUT_MS [--bind ADDR]`: the lab's client, run inside
//! a namespace by `ferry_netlab::request` (see [`ferry_netlab::probe_main`]).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferry_netlab::probe_main(std::env::args().skip(1))
}
