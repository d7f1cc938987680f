//! `ferry-podserver --name NAME [--tcp PORT]... [--udp PORT]... [--sctp PORT]...`: the
//! lab's pod server (see [`ferry_netlab::podserver_main`]).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferry_netlab::podserver_main(std::env::args().skip(1))
}
