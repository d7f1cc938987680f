# syntax=docker/dockerfile:1
# kube-ferry's image: the binary on Debian bookworm with the tools its backends call.
#   docker build -t ghcr.io/kube-ferry/kube-ferry:0.1.0 .
# (the tag the manifests under manifests/ name; push your own and set it there).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the build between builds; target/ is a cache, so the
# binary is copied out of it in the same step. --strip-debug keeps symbol names for
# backtraces and drops the line tables (the release profile has debug = 1).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kube-ferry \
    && strip --strip-debug target/release/kube-ferry \
    && cp target/release/kube-ferry /usr/local/bin/kube-ferry

FROM debian:bookworm-slim
# nft (nftables mode), iptables-restore (iptables and ipvs modes), conntrack (stale UDP
# flows), ip (addresses, e.g. on kube-ipvs0).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nftables iptables conntrack iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/kube-ferry /usr/local/bin/kube-ferry
# Runs as root: it needs NET_ADMIN (and, per mode, NET_RAW or NET_BIND_SERVICE), which
# the DaemonSet grants after dropping every other capability; it is never privileged.
ENTRYPOINT ["/usr/local/bin/kube-ferry"]
