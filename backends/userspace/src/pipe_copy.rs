//! The zero-copy way of moving a TCP connection's bytes: `splice(2)` from the reading
//! socket into a pipe and from the pipe into the writing socket, so the bytes never
//! enter user space. The same guarantees as the buffered copy (half-close, idle
//! timeout, nothing allocated until bytes flow) with one pipe per direction (two file
//! descriptors, created when the first byte arrives) instead of a buffer.
//!
//! Used from the start by `CopyMethod::Splice`, and by `CopyMethod::Adaptive` once a
//! direction has moved bulk data; which pays is measured by the proxy benchmark
//! (docs/performance.md).

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::fcntl::{OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::tcp::Activity;

/// Bytes asked of one `splice` call: a default pipe's capacity (16 pages).
const CHUNK: usize = 64 * 1024;

/// Copies both ways between `client` and `upstream` with `splice(2)` until both
/// directions ended, or nothing moved for `idle`. Returns the bytes copied (to upstream,
/// to client).
pub async fn splice_both_ways(client: TcpStream, upstream: TcpStream, idle: Duration) -> (u64, u64) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let activity = Activity::new();
    let up = async {
        let n = one_way(&client, &upstream, idle, &activity).await;
        let _ = socket2::SockRef::from(&upstream).shutdown(std::net::Shutdown::Write);
        n
    };
    let down = async {
        let n = one_way(&upstream, &client, idle, &activity).await;
        let _ = socket2::SockRef::from(&client).shutdown(std::net::Shutdown::Write);
        n
    };
    tokio::join!(up, down)
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// Moves `from`'s bytes to `to` through a pipe until `from` ends, an error, or neither
/// direction moved for `idle` (per `activity`). The caller shuts `to`'s write side
/// (half-close). Returns the bytes moved.
pub(crate) async fn one_way(from: &TcpStream, to: &TcpStream, idle: Duration, activity: &Activity) -> u64 {
    let mut pipe_ends: Option<(OwnedFd, OwnedFd)> = None;
    let mut total = 0u64;
    'copy: loop {
        match tokio::time::timeout(idle, from.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) if activity.idle_for() >= idle => break,
            Err(_) => continue,
        }
        if pipe_ends.is_none() {
            match pipe() {
                Ok(p) => pipe_ends = Some(p),
                Err(_) => break,
            }
        }
        let Some((pipe_read, pipe_write)) = pipe_ends.as_ref() else { break };
        let filled = from.try_io(Interest::READABLE, || {
            nix::fcntl::splice(from, None, pipe_write, None, CHUNK, flags()).map_err(io::Error::from)
        });
        let mut pending = match filled {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        while pending > 0 {
            if to.writable().await.is_err() {
                break 'copy;
            }
            let drained = to.try_io(Interest::WRITABLE, || {
                nix::fcntl::splice(pipe_read, None, to, None, pending, flags()).map_err(io::Error::from)
            });
            match drained {
                Ok(n) => {
                    pending -= n;
                    total += n as u64;
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break 'copy,
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn bytes_flow_both_ways_with_half_close_through_pipes() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(format!("{} bytes", got.len()).as_bytes()).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let proxy = tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let u = TcpStream::connect(server_addr).await.unwrap();
            splice_both_ways(c, u, Duration::from_secs(5)).await
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        let big = vec![7u8; 3 * 1024 * 1024 + 5];
        c.write_all(&big).await.unwrap();
        c.shutdown().await.unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, format!("{} bytes", big.len()));
        let (up, down) = proxy.await.unwrap();
        assert_eq!((up, down), (big.len() as u64, answer.len() as u64));
    }
}
