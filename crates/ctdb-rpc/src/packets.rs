//! The packet path between transport and a component: CTDB packets, as they are,
//! framed on a plain Unix socket beside the component's gRPC socket.
//!
//! Measured against the gRPC `Packets` stream this replaced (BENCHMARKS.md, issue 11):
//! a local call or a migration crosses this path twice per node, and h2's framing,
//! prost's encoding and tonic's connection tasks cost more than the packets' own work.
//! Typed coordination (status, statistics, debug level, transport's own service)
//! stays gRPC.
//!
//! # Frames (format 2)
//!
//! A frame is a little-endian `u32` length of what follows, then the [`Envelope`]:
//!
//! ```text
//! offset  size  field
//!      0     4  length of the rest (20 + packet bytes)
//!      4     8  client: the local client it came from or goes to, 0 for none
//!     12     4  from_node: the node it came from, u32::MAX for local packets
//!     16     8  trace: the trace id of the request (see `crate::trace`), 0 for none
//!     24     …  the CTDB packet, byte for byte
//! ```
//!
//! Transport gives every request it reads from a client or a node a trace id and logs
//! it in its span (`trace=…`); the component logs the same id in its span for that
//! packet and sends it back on the packets it answers with, so that grepping a node's
//! log for one id finds each process's lines for that request.
//!
//! # Hello and the version rule
//!
//! Transport and a component restart independently, so the two ends of a packet socket
//! may come from different builds. Before any envelope, each end sends a hello frame,
//!
//! ```text
//!      0     4  16 (the length word)
//!      4     8  the magic "CTDBpkts"
//!     12     4  FORMAT_VERSION (little-endian u32)
//!     16     4  0 (reserved)
//! ```
//!
//! and reads the other's ([`handshake`]). A first frame that is not a hello (a build
//! from before hellos, frame format 1, whose header had no trace id), a different
//! format version, or no hello within the patience is a [`HelloError`]: the connection
//! is refused with a log line that says which, never read with the wrong layout.
//! Any change of the frame layout bumps [`FORMAT_VERSION`]; the two ends must then be
//! restarted from builds of the same format (ctdbd restarts them together).
//! An end of format 1 reading a hello sees a 4-byte packet, which is no CTDB packet
//! (shorter than a header) and is dropped, so the old end misparses nothing either.
//!
//! One connection at a time: transport connects, and a new connection (whose hello
//! checked out) replaces the old. Writers drain everything queued into one write, so a
//! busy path pays one syscall for many packets, and an idle one pays no wait to fill a
//! batch.

use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio_stream::StreamExt;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::queue::QueueRx;
use crate::Envelope;

/// Bytes of a frame's envelope header: the client, the node and the trace id.
pub const ENVELOPE_HEADER: usize = 20;

/// The version of the frame format (see the module): 1 had no hello and a 12-byte
/// envelope header (client, node); 2 added the hello and the trace id.
pub const FORMAT_VERSION: u32 = 2;

/// The first bytes of a hello frame's body.
pub const HELLO_MAGIC: [u8; 8] = *b"CTDBpkts";

/// Bytes of a hello frame's body: the magic, the version, a reserved word.
pub const HELLO_LEN: usize = 16;

/// How long each end waits for the other's hello.
pub const HELLO_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Why a packet socket connection was refused before any envelope crossed it.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error(
        "the other end's first frame is no hello (length word {length}): it speaks a \
         frame format older than {ours} (a build from before hellos); refusing the \
         connection, restart both ends from one build"
    )]
    NotHello { length: u32, ours: u32 },
    #[error(
        "the other end speaks packet frame format {theirs}, this end {ours}: built from \
         different versions; refusing the connection, restart both ends from one build"
    )]
    Version { ours: u32, theirs: u32 },
    #[error("no hello from the other end within {0:?}; refusing the connection")]
    Timeout(std::time::Duration),
    #[error("packet socket hello failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Appends this end's hello frame to `buf`.
pub fn encode_hello(buf: &mut BytesMut) {
    buf.reserve(4 + HELLO_LEN);
    buf.put_u32_le(HELLO_LEN as u32);
    buf.put_slice(&HELLO_MAGIC);
    buf.put_u32_le(FORMAT_VERSION);
    buf.put_u32_le(0);
}

/// Checks the other end's hello frame, its length word included.
pub fn check_hello(frame: &[u8; 4 + HELLO_LEN]) -> Result<(), HelloError> {
    let mut b = &frame[..];
    let length = b.get_u32_le();
    if length as usize != HELLO_LEN || b[..HELLO_MAGIC.len()] != HELLO_MAGIC {
        return Err(HelloError::NotHello {
            length,
            ours: FORMAT_VERSION,
        });
    }
    b.advance(HELLO_MAGIC.len());
    let theirs = b.get_u32_le();
    if theirs != FORMAT_VERSION {
        return Err(HelloError::Version {
            ours: FORMAT_VERSION,
            theirs,
        });
    }
    Ok(())
}

/// Sends this end's hello on `stream` and checks the other end's, which must come
/// within `patience` (see the module). Nothing past the hello is read.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    patience: std::time::Duration,
) -> Result<(), HelloError> {
    let exchange = async {
        let mut hello = BytesMut::new();
        encode_hello(&mut hello);
        stream.write_all(&hello).await?;
        let mut theirs = [0u8; 4 + HELLO_LEN];
        stream.read_exact(&mut theirs).await?;
        check_hello(&theirs)
    };
    match tokio::time::timeout(patience, exchange).await {
        Ok(checked) => checked,
        Err(_) => Err(HelloError::Timeout(patience)),
    }
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
    buf.put_u64_le(envelope.trace);
    buf.put_slice(&envelope.packet);
}

/// The envelope in a frame's body (its length word already taken off by [`codec`]).
pub fn decode(mut frame: BytesMut) -> Result<Envelope, FrameError> {
    if frame.len() < ENVELOPE_HEADER {
        return Err(FrameError::Short(frame.len()));
    }
    let client = frame.get_u64_le();
    let from_node = frame.get_u32_le();
    let trace = frame.get_u64_le();
    Ok(Envelope {
        client,
        from_node,
        packet: frame.freeze(),
        trace,
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
    /// is not there yet, and exchanges hellos (a [`HelloError`] comes back as an
    /// `InvalidData` error).
    pub async fn connect(path: &Path, patience: std::time::Duration) -> std::io::Result<Self> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut stream = loop {
            match UnixStream::connect(path).await {
                Ok(stream) => break stream,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        handshake(&mut stream, HELLO_PATIENCE)
            .await
            .map_err(|e| match e {
                HelloError::Io(e) => e,
                other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
            })?;
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
                packet: bytes::Bytes::from_static(b"a packet"),
                trace: 0x0123_4567_89ab_cdef,
            },
            Envelope {
                client: 0,
                from_node: 2,
                packet: bytes::Bytes::new(),
                trace: 0,
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
    fn the_trace_id_has_its_place_in_the_header() {
        let mut wire = BytesMut::new();
        encode(
            &Envelope {
                client: 0x1122_3344_5566_7788,
                from_node: 3,
                packet: vec![0xaau8; 8].into(),
                trace: 0x0102_0304_0506_0708,
            },
            &mut wire,
        );
        let mut expected = Vec::new();
        expected.extend_from_slice(&28u32.to_le_bytes());
        expected.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        expected.extend_from_slice(&3u32.to_le_bytes());
        expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        expected.extend_from_slice(&[0xaa; 8]);
        assert_eq!(&wire[..], &expected[..]);
        // A header cut before the end of the trace id is short.
        assert!(matches!(
            decode(BytesMut::from(&expected[4..4 + 19])),
            Err(FrameError::Short(19))
        ));
    }

    /// What an end of frame format 1 sent: no hello, a 12-byte header.
    fn format_1_frame(client: u64, from_node: u32, packet: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((12 + packet.len()) as u32).to_le_bytes());
        v.extend_from_slice(&client.to_le_bytes());
        v.extend_from_slice(&from_node.to_le_bytes());
        v.extend_from_slice(packet);
        v
    }

    #[tokio::test]
    async fn two_ends_of_one_format_shake_hands_and_then_carry_envelopes() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let (ra, rb) = tokio::join!(
            handshake(&mut a, HELLO_PATIENCE),
            handshake(&mut b, HELLO_PATIENCE)
        );
        ra.unwrap();
        rb.unwrap();
        // Nothing past the hello was taken: the first envelope reads whole.
        let sent = Envelope {
            client: 4,
            from_node: u32::MAX,
            packet: bytes::Bytes::from_static(b"after the hello"),
            trace: 99,
        };
        let mut buf = BytesMut::new();
        encode(&sent, &mut buf);
        a.write_all(&buf).await.unwrap();
        let mut frames = FramedRead::new(b, codec());
        let frame = frames.next().await.unwrap().unwrap();
        assert_eq!(decode(frame).unwrap(), sent);
    }

    #[tokio::test]
    async fn another_format_version_is_refused() {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let mut hello = Vec::new();
        hello.extend_from_slice(&(HELLO_LEN as u32).to_le_bytes());
        hello.extend_from_slice(&HELLO_MAGIC);
        hello.extend_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        hello.extend_from_slice(&0u32.to_le_bytes());
        theirs.write_all(&hello).await.unwrap();
        let err = handshake(&mut ours, HELLO_PATIENCE).await.unwrap_err();
        assert!(
            matches!(err, HelloError::Version { ours: FORMAT_VERSION, theirs } if theirs == FORMAT_VERSION + 1),
            "{err}"
        );
        assert!(err.to_string().contains("different versions"), "{err}");
    }

    #[tokio::test]
    async fn an_end_from_before_hellos_is_refused_not_misparsed() {
        // Format 1 ends send envelopes at once; the first is taken for no hello.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs
            .write_all(&format_1_frame(5, u32::MAX, &[0u8; 40]))
            .await
            .unwrap();
        let err = handshake(&mut ours, HELLO_PATIENCE).await.unwrap_err();
        assert!(
            matches!(err, HelloError::NotHello { length: 52, .. }),
            "{err}"
        );
        // Even one whose length word happens to be a hello's: the magic decides.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs
            .write_all(&format_1_frame(5, 1, &[0u8; 4]))
            .await
            .unwrap();
        let err = handshake(&mut ours, HELLO_PATIENCE).await.unwrap_err();
        assert!(matches!(err, HelloError::NotHello { .. }), "{err}");
        // And one that sends nothing (a format 1 component waits for packets).
        let (mut ours, _theirs) = tokio::io::duplex(1024);
        let patience = std::time::Duration::from_millis(50);
        let err = handshake(&mut ours, patience).await.unwrap_err();
        assert!(matches!(err, HelloError::Timeout(_)), "{err}");
    }

    #[test]
    fn a_format_1_end_takes_a_hello_for_no_packet() {
        // What a format 1 end decodes of our hello: a 4-byte packet, shorter than any
        // CTDB header (so dropped there, never handled).
        let mut hello = BytesMut::new();
        encode_hello(&mut hello);
        let body = &hello[4..];
        assert_eq!(body.len() - 12, 4);
        assert!(body.len() - 12 < 32);
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
