//! `tokio_util::codec` framing for a stream of CTDB packets.
//!
//! [`FrameCodec`] checks the header and cuts the stream into whole packets without
//! touching the body, which is all a router needs; [`PacketCodec`] also decodes the
//! body. Header faults (magic, version, length) are fatal to the stream because the
//! next packet boundary can no longer be trusted.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::DecodeError;
use crate::packet::{Header, Packet, HEADER_SIZE};

/// The default largest packet accepted: recovery moves whole databases in one packet.
pub const DEFAULT_MAX_PACKET_LEN: u32 = 64 * 1024 * 1024;

/// How much buffer to reserve ahead for a packet still arriving: enough for typical
/// packets in one read, never the whole announced length of a huge one.
const RESERVE_AHEAD: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("bad packet: {0}")]
    Decode(#[from] DecodeError),
}

/// One whole packet whose header has been checked; the body is not decoded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    /// The whole packet, header and padding included.
    pub bytes: Bytes,
}

impl Frame {
    /// Checks the header of a packet already in memory.
    pub fn new(bytes: Bytes, max_len: u32) -> Result<Self, DecodeError> {
        let header = Header::parse(&bytes, max_len)?;
        if bytes.len() != header.length as usize {
            return Err(DecodeError::Truncated {
                needed: header.length as usize,
                available: bytes.len(),
            });
        }
        Ok(Self { header, bytes })
    }

    /// Decodes the body.
    pub fn packet(&self) -> Result<Packet, DecodeError> {
        Packet::decode_frame(self.header, &self.bytes)
    }
}

impl From<&Packet> for Frame {
    fn from(packet: &Packet) -> Self {
        Self {
            header: packet.header(),
            bytes: packet.to_bytes().into(),
        }
    }
}

/// Splits a byte stream into [`Frame`]s.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_len: u32,
}

impl FrameCodec {
    pub fn new(max_len: u32) -> Self {
        Self { max_len }
    }

    pub fn max_len(&self) -> u32 {
        self.max_len
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET_LEN)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if src.len() < HEADER_SIZE {
            return Ok(None);
        }
        let header = Header::parse(src, self.max_len)?;
        let length = header.length as usize;
        if src.len() < length {
            src.reserve((length - src.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        let bytes = src.split_to(length).freeze();
        Ok(Some(Frame { header, bytes }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => {
                let available = src.len();
                let needed = if available >= 4 {
                    (&src[..4]).get_u32_le() as usize
                } else {
                    HEADER_SIZE
                };
                src.clear();
                Err(DecodeError::Truncated { needed, available }.into())
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&frame.bytes);
        Ok(())
    }
}

impl Encoder<&Packet> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(packet.encoded_len());
        packet.encode(dst);
        Ok(())
    }
}

/// Splits a byte stream into fully decoded [`Packet`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketCodec {
    frames: FrameCodec,
}

impl PacketCodec {
    pub fn new(max_len: u32) -> Self {
        Self {
            frames: FrameCodec::new(max_len),
        }
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        match self.frames.decode(src)? {
            Some(frame) => Ok(Some(frame.packet()?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, CodecError> {
        match self.frames.decode_eof(src)? {
            Some(frame) => Ok(Some(frame.packet()?)),
            None => Ok(None),
        }
    }
}

impl Encoder<&Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.frames.encode(packet, dst)
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = CodecError;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.frames.encode(&packet, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Body, ReqMessage};

    fn message(n: u8) -> Packet {
        Packet::new(Body::ReqMessage(ReqMessage {
            srvid: u64::from(n),
            data: Bytes::from(vec![n; n as usize]),
        }))
    }

    #[test]
    fn splits_a_stream_fed_byte_by_byte() {
        let mut wire = BytesMut::new();
        let mut codec = PacketCodec::default();
        let sent: Vec<Packet> = (0..20).map(message).collect();
        for p in &sent {
            codec.encode(p, &mut wire).expect("encode");
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            while let Some(p) = codec.decode(&mut buf).expect("decode") {
                got.push(p);
            }
        }
        assert_eq!(got, sent);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_a_length_over_the_maximum_before_it_arrives() {
        let mut codec = FrameCodec::new(1024);
        let mut header = message(1).to_bytes();
        header[..4].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let mut buf = BytesMut::from(&header[..HEADER_SIZE]);
        let err = codec.decode(&mut buf).expect_err("too large");
        assert!(matches!(
            err,
            CodecError::Decode(DecodeError::LengthTooLarge { max: 1024, .. })
        ));
    }

    #[test]
    fn a_stream_that_ends_mid_packet_is_truncated() {
        let mut codec = FrameCodec::default();
        let bytes = message(9).to_bytes();
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 3]);
        assert!(codec.decode(&mut buf).expect("partial").is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(CodecError::Decode(DecodeError::Truncated { .. }))
        ));
    }
}
