//! The packet path between transport and a component: CTDB packets, as they are,
//! framed on a plain Unix socket beside the component's gRPC socket.
//!
//! Measured against the gRPC `Packets` stream this replaced (BENCHMARKS.md, issue 11):
//! a local call or a migration crosses this path twice per node, and h2's framing,
//! prost's encoding and tonic's connection tasks cost more than the packets' own work.
//! Typed coordination (status, statistics, debug level, transport's own service)
//! stays gRPC.
//!
//! A frame is a little-endian `u32` length of what follows, then the [`Envelope`]: the
//! local client (`u64`), the node it came from (`u32`), and the packet's bytes. One
//! connection at a time: transport connects, and a new connection replaces the old.
//! Writers drain everything queued into one write, so a busy path pays one syscall for
//! many packets, and an idle one pays no wait to fill a batch.

use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio_stream::StreamExt;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::queue::QueueRx;
use crate::Envelope;

/// Bytes of a frame's envelope header: the client and the node.
pub const ENVELOPE_HEADER: usize = 12;

/// Largest frame accepted: a packet at the largest size a node accepts, and its
/// envelope header.
pub const MAX_FRAME: usize = ctdb_protocol_max_packet() + ENVELOPE_HEADER;

/// A write carries at most about this many bytes of queued frames.
const WRITE_BATCH: usize = 256 * 1024;

/// Same value as `ctdb_protocol::DEFAULT_MAX_PACKET_LEN` (this crate does not depend
/// on the protocol crate).
const fn ctdb_protocol_max_packet() -> usize {
    64 * 1024 * 1024
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("packet frame of {0} bytes is shorter than its envelope header")]
    Short(usize),
}

/// The packet socket of `component` in `run_dir`.
pub fn socket_path(run_dir: &Path, component: &str) -> PathBuf {
    run_dir.join(format!("{component}.packets.sock"))
}

/// The codec of the packet socket's frames (their length word; see the module).
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Appends `envelope` as one frame to `buf`.
pub fn encode(envelope: &Envelope, buf: &mut BytesMut) {
    buf.reserve(4 + ENVELOPE_HEADER + envelope.packet.len());
    buf.put_u32_le((ENVELOPE_HEADER + envelope.packet.len()) as u32);
    buf.put_u64_le(envelope.client);
    buf.put_u32_le(envelope.from_node);
    buf.put_slice(&envelope.packet);
}

/// The envelope in a frame's body (its length word already taken off by [`codec`]).
pub fn decode(mut frame: BytesMut) -> Result<Envelope, FrameError> {
    if frame.len() < ENVELOPE_HEADER {
        return Err(FrameError::Short(frame.len()));
    }
    let client = frame.get_u64_le();
    let from_node = frame.get_u32_le();
    Ok(Envelope {
        client,
        from_node,
        packet: frame.to_vec(),
    })
}

/// Writes what `queue` holds to `out`, everything ready at once in one write, until
/// the queue closes (`Ok`) or a write fails.
pub async fn write_from(
    queue: &mut QueueRx<Envelope>,
    out: &mut (impl AsyncWrite + Unpin),
) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = queue.recv().await {
        encode(&first, &mut buf);
        while buf.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(more) => encode(&more, &mut buf),
                Err(_) => break,
            }
        }
        out.write_all(&buf).await?;
        buf.clear();
    }
    Ok(())
}

/// One end of a packet socket connection, as transport holds it (tests and tools use
/// it to talk to a component directly).
pub struct PacketClient {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    write: OwnedWriteHalf,
}

impl PacketClient {
    /// Connects to the packet socket at `path`, retrying for up to `patience` while it
    /// is not there yet.
    pub async fn connect(path: &Path, patience: std::time::Duration) -> std::io::Result<Self> {
        let deadline = tokio::time::Instant::now() + patience;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(stream) => break stream,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        let (read, write) = stream.into_split();
        Ok(Self {
            frames: FramedRead::new(read, codec()),
            write,
        })
    }

    /// Sends `envelopes`, in one write.
    pub async fn send(&mut self, envelopes: &[Envelope]) -> std::io::Result<()> {
        let mut buf = BytesMut::new();
        for e in envelopes {
            encode(e, &mut buf);
        }
        self.write.write_all(&buf).await
    }

    /// The next envelope the component sent; `None` when it closed the connection.
    pub async fn recv(&mut self) -> std::io::Result<Option<Envelope>> {
        match self.frames.next().await {
            None => Ok(None),
            Some(frame) => decode(frame?)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn frames_round_trip_through_the_codec() {
        let envelopes = [
            Envelope {
                client: 7,
                from_node: u32::MAX,
                packet: b"a packet".to_vec(),
            },
            Envelope {
                client: 0,
                from_node: 2,
                packet: Vec::new(),
            },
        ];
        let mut wire = BytesMut::new();
        for e in &envelopes {
            encode(e, &mut wire);
        }
        let mut codec = codec();
        for e in &envelopes {
            let frame = codec.decode(&mut wire).unwrap().expect("a whole frame");
            assert_eq!(&decode(frame).unwrap(), e);
        }
        assert!(wire.is_empty());
    }

    #[test]
    fn short_and_oversized_frames_are_refused() {
        assert!(matches!(
            decode(BytesMut::from(&[1u8, 2, 3][..])),
            Err(FrameError::Short(3))
        ));
        let mut wire = BytesMut::new();
        wire.put_u32_le((MAX_FRAME + 1) as u32);
        assert!(codec().decode(&mut wire).is_err());
    }
}
