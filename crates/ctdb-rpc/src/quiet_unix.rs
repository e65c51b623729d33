//! A Unix stream socket that wakes its task only for what it waits for.
//!
//! tokio registers a `UnixStream` for readability and writability at once, edge
//! triggered, and Linux signals a Unix socket writable every time its peer reads from
//! it: each packet the other side takes wakes this process once more, for nothing
//! (`strace` of transport during a local fetch: three `epoll_wait` returns per request
//! where two carry work). Here the socket is registered for reading only; a write goes
//! straight to the socket, and only one that finds the socket full registers a
//! duplicate of it for writability, until a write succeeds again.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

/// The read half (see the module).
#[derive(Debug)]
pub struct QuietRead(Arc<AsyncFd<StdUnixStream>>);

/// The write half (see the module).
#[derive(Debug)]
pub struct QuietWrite {
    socket: Arc<AsyncFd<StdUnixStream>>,
    /// A duplicate registered for writability while the socket is full.
    full: Option<AsyncFd<StdUnixStream>>,
}

/// Registers `socket` with the runtime for `interest` only.
///
/// tokio 1.54 deprecated its safe constructors in favour of `unsafe` ones, for types
/// that could close the descriptor while it is registered; the socket here is an owned
/// `std` stream that lives exactly as long as its registration, which is the case the
/// safe constructor is sound for (and this workspace forbids `unsafe`).
#[allow(deprecated)]
fn register(socket: StdUnixStream, interest: Interest) -> io::Result<AsyncFd<StdUnixStream>> {
    AsyncFd::with_interest(socket, interest)
}

/// Splits `stream` into halves registered as the module says.
pub fn split(stream: UnixStream) -> io::Result<(QuietRead, QuietWrite)> {
    let std = stream.into_std()?;
    std.set_nonblocking(true)?;
    let socket = Arc::new(register(std, Interest::READABLE)?);
    Ok((QuietRead(socket.clone()), QuietWrite { socket, full: None }))
}

impl AsyncRead for QuietRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match ready.try_io(|socket| socket.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Nothing to read after all: readiness was cleared, wait again.
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for QuietWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.socket.get_ref().write(buf) {
                Ok(n) => {
                    // Room again: the duplicate's registration goes.
                    self.full = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let full = match self.full.take() {
                        Some(full) => full,
                        None => register(self.socket.get_ref().try_clone()?, Interest::WRITABLE)?,
                    };
                    let poll = full
                        .poll_write_ready(cx)
                        .map(|r| r.map(|mut g| g.clear_ready()));
                    self.full = Some(full);
                    ready!(poll)?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.socket.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_full_socket_waits_for_room() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a_read, mut a_write) = split(a).unwrap();
        let (mut b_read, mut b_write) = split(b).unwrap();
        a_write.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b_read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        b_write.write_all(b"pong").await.unwrap();
        a_read.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");

        // Far more than a socket buffer holds: the writer fills the socket, waits for
        // room, and every byte arrives in order.
        let big: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let expected = big.clone();
        let writer = tokio::spawn(async move {
            a_write.write_all(&big).await.unwrap();
            a_write.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        b_read.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected);
    }

    #[tokio::test]
    async fn a_closed_peer_reads_as_the_end() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a_read, _a_write) = split(a).unwrap();
        drop(b);
        let mut buf = [0u8; 8];
        assert_eq!(a_read.read(&mut buf).await.unwrap(), 0);
    }
}
