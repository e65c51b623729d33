//! CTDB packets: the 32-byte header and the body of every operation.
//!
//! Lengths follow the C daemon: a packet is `max(offsetof(data) + payload, sizeof(struct))`
//! bytes (the struct's one-byte `data[1]` and tail padding count), rounded up to
//! [`ALIGNMENT`]. So an empty REPLY_CALL is 48 bytes. Decoding only requires the fixed
//! part, so packets made by plain rounding are accepted too.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Result};
use crate::opcode::Opcode;
use crate::wire::{align_up, Reader, ALIGNMENT};

pub const HEADER_SIZE: usize = 32;
pub const MAGIC: u32 = 0x4354_4442;
pub const VERSION: u32 = 1;

/// Operation numbers (`enum ctdb_operation`, plus Samba's REQ_TUNNEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ReqCall = 0,
    ReplyCall = 1,
    ReqDmaster = 2,
    ReplyDmaster = 3,
    ReplyError = 4,
    ReqMessage = 5,
    ReqControl = 7,
    ReplyControl = 8,
    ReqKeepalive = 9,
    /// Samba's later tunnel operation: recognised, never accepted.
    ReqTunnel = 10,
}

impl Operation {
    pub const fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::ReqCall,
            1 => Self::ReplyCall,
            2 => Self::ReqDmaster,
            3 => Self::ReplyDmaster,
            4 => Self::ReplyError,
            5 => Self::ReqMessage,
            7 => Self::ReqControl,
            8 => Self::ReplyControl,
            9 => Self::ReqKeepalive,
            10 => Self::ReqTunnel,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::ReqCall => "CTDB_REQ_CALL",
            Self::ReplyCall => "CTDB_REPLY_CALL",
            Self::ReqDmaster => "CTDB_REQ_DMASTER",
            Self::ReplyDmaster => "CTDB_REPLY_DMASTER",
            Self::ReplyError => "CTDB_REPLY_ERROR",
            Self::ReqMessage => "CTDB_REQ_MESSAGE",
            Self::ReqControl => "CTDB_REQ_CONTROL",
            Self::ReplyControl => "CTDB_REPLY_CONTROL",
            Self::ReqKeepalive => "CTDB_REQ_KEEPALIVE",
            Self::ReqTunnel => "CTDB_REQ_TUNNEL",
        }
    }

    /// `(offsetof(data), sizeof(struct))` of the operation's C struct.
    pub const fn layout(self) -> (usize, usize) {
        match self {
            Self::ReqCall => (56, 60),
            Self::ReplyCall | Self::ReplyError => (40, 44),
            Self::ReqDmaster => (60, 64),
            Self::ReplyDmaster => (56, 64),
            Self::ReqMessage => (44, 48),
            Self::ReqControl => (60, 64),
            Self::ReplyControl => (44, 48),
            Self::ReqKeepalive => (32, 32),
            Self::ReqTunnel => (48, 56),
        }
    }
}

/// The length a C daemon gives a packet of `op` whose meaningful bytes end at `body_len`.
pub const fn wire_length(op: Operation, body_len: usize) -> usize {
    let sizeof = op.layout().1;
    let n = if body_len > sizeof { body_len } else { sizeof };
    align_up(n, ALIGNMENT)
}

/// `struct ctdb_req_header`, with magic and version already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: u32,
    pub generation: u32,
    pub operation: u32,
    pub destnode: u32,
    pub srcnode: u32,
    pub reqid: u32,
}

impl Header {
    /// Reads and checks the header at the start of `buf` (which may hold more).
    ///
    /// Checks, in order: enough bytes for a header, magic, version, and a length that
    /// covers at least the header and is within `max_len`.
    pub fn parse(buf: &[u8], max_len: u32) -> Result<Self> {
        let mut r = Reader::new(buf);
        let length = r.u32()?;
        let magic = r.u32()?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        if (length as usize) < HEADER_SIZE {
            return Err(DecodeError::LengthTooSmall {
                length,
                minimum: HEADER_SIZE as u32,
            });
        }
        if length > max_len {
            return Err(DecodeError::LengthTooLarge {
                length,
                max: max_len,
            });
        }
        Ok(Self {
            length,
            generation: r.u32()?,
            operation: r.u32()?,
            destnode: r.u32()?,
            srcnode: r.u32()?,
            reqid: r.u32()?,
        })
    }

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.length);
        out.put_u32_le(MAGIC);
        out.put_u32_le(VERSION);
        out.put_u32_le(self.generation);
        out.put_u32_le(self.operation);
        out.put_u32_le(self.destnode);
        out.put_u32_le(self.srcnode);
        out.put_u32_le(self.reqid);
    }
}

/// The flags word of a REQ_CONTROL still in its raw bytes (offset 52), for a packet
/// whose body does not decode but may still deserve an error reply.
pub fn raw_control_flags(packet: &[u8]) -> Option<u32> {
    packet
        .get(52..56)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// REQ_CALL: run a call function on a record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReqCall {
    pub flags: u32,
    pub db_id: u32,
    pub callid: u32,
    pub hopcount: u32,
    pub key: Bytes,
    pub calldata: Bytes,
}

/// REPLY_CALL: the call's status and reply data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyCall {
    pub status: u32,
    pub data: Bytes,
}

/// REPLY_ERROR: a call that failed, with a message (NUL included when C sent one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyError {
    pub status: u32,
    pub msg: Bytes,
}

/// REQ_DMASTER: asks the lmaster to make `dmaster` the record's new data master.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReqDmaster {
    pub db_id: u32,
    pub rsn: u64,
    pub dmaster: u32,
    pub key: Bytes,
    pub data: Bytes,
    /// Samba 4.17 appends the record's ltdb flags after key and data; the seed does not.
    /// Decoded when present, sent only when set.
    pub rec_flags: Option<u32>,
}

/// REPLY_DMASTER: hands the record to its new data master.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyDmaster {
    pub db_id: u32,
    pub rsn: u64,
    pub key: Bytes,
    pub data: Bytes,
    /// As in [`ReqDmaster::rec_flags`].
    pub rec_flags: Option<u32>,
}

/// REQ_MESSAGE: a message for whoever registered `srvid`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReqMessage {
    pub srvid: u64,
    pub data: Bytes,
}

/// REQ_CONTROL. The C struct's `pad` word is always zero and not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqControl {
    pub opcode: Opcode,
    pub srvid: u64,
    pub client_id: u32,
    pub flags: u32,
    pub data: Bytes,
}

/// REPLY_CONTROL: status, reply data, and an optional error message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyControl {
    pub status: i32,
    pub data: Bytes,
    pub errmsg: Bytes,
}

/// The version and uptime words Samba 4.17 appends to a keepalive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveInfo {
    pub version: u32,
    pub uptime: u32,
}

/// REQ_KEEPALIVE: the seed's is a bare header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keepalive {
    pub samba: Option<KeepaliveInfo>,
}

/// The operation-specific part of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    ReqCall(ReqCall),
    ReplyCall(ReplyCall),
    ReqDmaster(ReqDmaster),
    ReplyDmaster(ReplyDmaster),
    ReplyError(ReplyError),
    ReqMessage(ReqMessage),
    ReqControl(ReqControl),
    ReplyControl(ReplyControl),
    Keepalive(Keepalive),
}

/// A whole CTDB packet. `length`, magic and version are derived when encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub generation: u32,
    pub destnode: u32,
    pub srcnode: u32,
    pub reqid: u32,
    pub body: Body,
}

/// Takes `n` bytes from `r` as a zero-copy slice of `buf` (which `r` reads).
fn take(buf: &Bytes, r: &mut Reader<'_>, n: usize) -> Result<Bytes> {
    let start = r.position();
    r.skip(n)?;
    Ok(buf.slice(start..start + n))
}

/// Reads two `uint32` lengths and then the two byte strings they announce.
fn take_two(buf: &Bytes, r: &mut Reader<'_>) -> Result<(Bytes, Bytes)> {
    let a = r.u32()? as usize;
    let b = r.u32()? as usize;
    let first = take(buf, r, a)?;
    let second = take(buf, r, b)?;
    Ok((first, second))
}

/// The optional trailing record-flags word of Samba's dmaster packets.
fn trailing_flags(r: &mut Reader<'_>) -> Result<Option<u32>> {
    if r.remaining() >= 4 {
        r.u32().map(Some)
    } else {
        Ok(None)
    }
}

impl Body {
    pub fn operation(&self) -> Operation {
        match self {
            Body::ReqCall(_) => Operation::ReqCall,
            Body::ReplyCall(_) => Operation::ReplyCall,
            Body::ReqDmaster(_) => Operation::ReqDmaster,
            Body::ReplyDmaster(_) => Operation::ReplyDmaster,
            Body::ReplyError(_) => Operation::ReplyError,
            Body::ReqMessage(_) => Operation::ReqMessage,
            Body::ReqControl(_) => Operation::ReqControl,
            Body::ReplyControl(_) => Operation::ReplyControl,
            Body::Keepalive(_) => Operation::ReqKeepalive,
        }
    }

    /// Bytes after the fixed part: keys, data, trailers.
    fn variable_len(&self) -> usize {
        let flags_len = |f: &Option<u32>| if f.is_some() { 4 } else { 0 };
        match self {
            Body::ReqCall(b) => b.key.len() + b.calldata.len(),
            Body::ReplyCall(b) => b.data.len(),
            Body::ReqDmaster(b) => b.key.len() + b.data.len() + flags_len(&b.rec_flags),
            Body::ReplyDmaster(b) => b.key.len() + b.data.len() + flags_len(&b.rec_flags),
            Body::ReplyError(b) => b.msg.len(),
            Body::ReqMessage(b) => b.data.len(),
            Body::ReqControl(b) => b.data.len(),
            Body::ReplyControl(b) => b.data.len() + b.errmsg.len(),
            Body::Keepalive(b) => b.samba.map_or(0, |_| 8),
        }
    }

    /// Where the meaningful bytes of the encoded packet end.
    pub fn body_len(&self) -> usize {
        self.operation().layout().0 + self.variable_len()
    }

    fn encode<B: BufMut>(&self, out: &mut B) {
        let len32 = |b: &Bytes| b.len() as u32;
        match self {
            Body::ReqCall(b) => {
                out.put_u32_le(b.flags);
                out.put_u32_le(b.db_id);
                out.put_u32_le(b.callid);
                out.put_u32_le(b.hopcount);
                out.put_u32_le(len32(&b.key));
                out.put_u32_le(len32(&b.calldata));
                out.put_slice(&b.key);
                out.put_slice(&b.calldata);
            }
            Body::ReplyCall(b) => {
                out.put_u32_le(b.status);
                out.put_u32_le(len32(&b.data));
                out.put_slice(&b.data);
            }
            Body::ReplyError(b) => {
                out.put_u32_le(b.status);
                out.put_u32_le(len32(&b.msg));
                out.put_slice(&b.msg);
            }
            Body::ReqDmaster(b) => {
                out.put_u32_le(b.db_id);
                out.put_u32_le(0); // C alignment padding before the u64
                out.put_u64_le(b.rsn);
                out.put_u32_le(b.dmaster);
                out.put_u32_le(len32(&b.key));
                out.put_u32_le(len32(&b.data));
                out.put_slice(&b.key);
                out.put_slice(&b.data);
                if let Some(flags) = b.rec_flags {
                    out.put_u32_le(flags);
                }
            }
            Body::ReplyDmaster(b) => {
                out.put_u32_le(b.db_id);
                out.put_u32_le(0);
                out.put_u64_le(b.rsn);
                out.put_u32_le(len32(&b.key));
                out.put_u32_le(len32(&b.data));
                out.put_slice(&b.key);
                out.put_slice(&b.data);
                if let Some(flags) = b.rec_flags {
                    out.put_u32_le(flags);
                }
            }
            Body::ReqMessage(b) => {
                out.put_u64_le(b.srvid);
                out.put_u32_le(len32(&b.data));
                out.put_slice(&b.data);
            }
            Body::ReqControl(b) => {
                out.put_u32_le(b.opcode.as_u32());
                out.put_u32_le(0);
                out.put_u64_le(b.srvid);
                out.put_u32_le(b.client_id);
                out.put_u32_le(b.flags);
                out.put_u32_le(len32(&b.data));
                out.put_slice(&b.data);
            }
            Body::ReplyControl(b) => {
                out.put_i32_le(b.status);
                out.put_u32_le(len32(&b.data));
                out.put_u32_le(len32(&b.errmsg));
                out.put_slice(&b.data);
                out.put_slice(&b.errmsg);
            }
            Body::Keepalive(b) => {
                if let Some(info) = b.samba {
                    out.put_u32_le(info.version);
                    out.put_u32_le(info.uptime);
                }
            }
        }
    }

    /// Decodes the body of `op` from `buf`, the packet's first `length` bytes, with `r`
    /// positioned just after the header.
    fn decode(op: Operation, buf: &Bytes, r: &mut Reader<'_>) -> Result<Self> {
        Ok(match op {
            Operation::ReqCall => {
                let flags = r.u32()?;
                let db_id = r.u32()?;
                let callid = r.u32()?;
                let hopcount = r.u32()?;
                let (key, calldata) = take_two(buf, r)?;
                Body::ReqCall(ReqCall {
                    flags,
                    db_id,
                    callid,
                    hopcount,
                    key,
                    calldata,
                })
            }
            Operation::ReplyCall => {
                let status = r.u32()?;
                let n = r.u32()? as usize;
                Body::ReplyCall(ReplyCall {
                    status,
                    data: take(buf, r, n)?,
                })
            }
            Operation::ReplyError => {
                let status = r.u32()?;
                let n = r.u32()? as usize;
                Body::ReplyError(ReplyError {
                    status,
                    msg: take(buf, r, n)?,
                })
            }
            Operation::ReqDmaster => {
                let db_id = r.u32()?;
                r.skip(4)?;
                let rsn = r.u64()?;
                let dmaster = r.u32()?;
                let (key, data) = take_two(buf, r)?;
                Body::ReqDmaster(ReqDmaster {
                    db_id,
                    rsn,
                    dmaster,
                    key,
                    data,
                    rec_flags: trailing_flags(r)?,
                })
            }
            Operation::ReplyDmaster => {
                let db_id = r.u32()?;
                r.skip(4)?;
                let rsn = r.u64()?;
                let (key, data) = take_two(buf, r)?;
                Body::ReplyDmaster(ReplyDmaster {
                    db_id,
                    rsn,
                    key,
                    data,
                    rec_flags: trailing_flags(r)?,
                })
            }
            Operation::ReqMessage => {
                let srvid = r.u64()?;
                let n = r.u32()? as usize;
                Body::ReqMessage(ReqMessage {
                    srvid,
                    data: take(buf, r, n)?,
                })
            }
            Operation::ReqControl => {
                let opcode = Opcode::from_u32(r.u32()?);
                r.skip(4)?; // pad
                let srvid = r.u64()?;
                let client_id = r.u32()?;
                let flags = r.u32()?;
                let n = r.u32()? as usize;
                Body::ReqControl(ReqControl {
                    opcode,
                    srvid,
                    client_id,
                    flags,
                    data: take(buf, r, n)?,
                })
            }
            Operation::ReplyControl => {
                let status = r.i32()?;
                let (data, errmsg) = take_two(buf, r)?;
                Body::ReplyControl(ReplyControl {
                    status,
                    data,
                    errmsg,
                })
            }
            Operation::ReqKeepalive => {
                let samba = if r.remaining() >= 8 {
                    Some(KeepaliveInfo {
                        version: r.u32()?,
                        uptime: r.u32()?,
                    })
                } else {
                    None
                };
                Body::Keepalive(Keepalive { samba })
            }
            Operation::ReqTunnel => return Err(DecodeError::TunnelUnsupported),
        })
    }
}

impl Packet {
    pub fn new(body: Body) -> Self {
        Self {
            generation: 0,
            destnode: 0,
            srcnode: 0,
            reqid: 0,
            body,
        }
    }

    pub fn operation(&self) -> Operation {
        self.body.operation()
    }

    /// The total length on the wire, padding included.
    pub fn encoded_len(&self) -> usize {
        wire_length(self.operation(), self.body.body_len())
    }

    pub fn header(&self) -> Header {
        Header {
            length: self.encoded_len() as u32,
            generation: self.generation,
            operation: self.operation() as u32,
            destnode: self.destnode,
            srcnode: self.srcnode,
            reqid: self.reqid,
        }
    }

    pub fn encode<B: BufMut>(&self, out: &mut B) {
        let header = self.header();
        header.encode(out);
        self.body.encode(out);
        out.put_bytes(0, header.length as usize - self.body.body_len());
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    /// Decodes the packet at the start of `buf`, refusing lengths above `max_len`.
    /// Bytes after the packet's own length are ignored; fields are zero-copy slices.
    pub fn decode_bounded(buf: &Bytes, max_len: u32) -> Result<Self> {
        let header = Header::parse(buf, max_len)?;
        let length = header.length as usize;
        if buf.len() < length {
            return Err(DecodeError::Truncated {
                needed: length,
                available: buf.len(),
            });
        }
        Self::decode_frame(header, &buf.slice(..length))
    }

    /// Decodes the packet at the start of `buf`, with no length limit but `buf` itself.
    pub fn decode(buf: &Bytes) -> Result<Self> {
        Self::decode_bounded(buf, u32::MAX)
    }

    /// Copies `buf` and decodes it.
    pub fn from_slice(buf: &[u8]) -> Result<Self> {
        Self::decode(&Bytes::copy_from_slice(buf))
    }

    /// Decodes a frame whose header is already parsed and which is exactly
    /// `header.length` bytes long.
    pub fn decode_frame(header: Header, frame: &Bytes) -> Result<Self> {
        let op = Operation::from_u32(header.operation)
            .ok_or(DecodeError::UnknownOperation(header.operation))?;
        let minimum = op.layout().0;
        if frame.len() < minimum {
            return Err(DecodeError::LengthTooSmall {
                length: header.length,
                minimum: minimum as u32,
            });
        }
        let mut r = Reader::new(frame);
        r.skip(HEADER_SIZE)?;
        let body = Body::decode(op, frame, &mut r)?;
        Ok(Self {
            generation: header.generation,
            destnode: header.destnode,
            srcnode: header.srcnode,
            reqid: header.reqid,
            body,
        })
    }
}

impl ReplyControl {
    /// A failed control with a message; the message is sent NUL-terminated.
    pub fn error(status: i32, msg: &str) -> Self {
        let mut errmsg = Vec::with_capacity(msg.len() + 1);
        errmsg.extend_from_slice(msg.as_bytes());
        errmsg.push(0);
        Self {
            status,
            data: Bytes::new(),
            errmsg: errmsg.into(),
        }
    }

    /// The error message without its NUL, if any was sent.
    pub fn error_message(&self) -> Option<String> {
        text_without_nul(&self.errmsg)
    }
}

impl ReplyError {
    pub fn new(status: u32, msg: &str) -> Self {
        let mut bytes = Vec::with_capacity(msg.len() + 1);
        bytes.extend_from_slice(msg.as_bytes());
        bytes.push(0);
        Self {
            status,
            msg: bytes.into(),
        }
    }

    pub fn message(&self) -> String {
        text_without_nul(&self.msg).unwrap_or_default()
    }
}

fn text_without_nul(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_reply_call_is_48_bytes() {
        let p = Packet::new(Body::ReplyCall(ReplyCall::default()));
        assert_eq!(p.encoded_len(), 48);
        let bytes = p.to_bytes();
        assert_eq!(bytes.len(), 48);
        assert_eq!(Packet::from_slice(&bytes), Ok(p));
    }

    #[test]
    fn seed_keepalive_is_a_bare_header() {
        let p = Packet::new(Body::Keepalive(Keepalive::default()));
        assert_eq!(p.to_bytes().len(), 32);
        let samba = Packet::new(Body::Keepalive(Keepalive {
            samba: Some(KeepaliveInfo {
                version: 0x0004_0011,
                uptime: 5,
            }),
        }));
        assert_eq!(samba.to_bytes().len(), 40);
    }

    #[test]
    fn seed_dmaster_has_no_trailer() {
        let body = ReqDmaster {
            db_id: 1,
            rsn: 2,
            dmaster: 1,
            key: Bytes::from_static(b"mk1"),
            data: Bytes::from_static(b"from-node0-mk1"),
            rec_flags: None,
        };
        // 60 + 3 + 14 = 77, padded to 80; Samba's form with the flags word is 88.
        let seed = Packet::new(Body::ReqDmaster(body.clone()));
        assert_eq!(seed.to_bytes().len(), 80);
        let samba = Packet::new(Body::ReqDmaster(ReqDmaster {
            rec_flags: Some(0x0001_0000),
            ..body
        }));
        assert_eq!(samba.to_bytes().len(), 88);
    }

    #[test]
    fn distinct_errors_for_distinct_faults() {
        let good = Packet::new(Body::ReqMessage(ReqMessage {
            srvid: 7,
            data: Bytes::from_static(b"hello"),
        }))
        .to_bytes();
        let mut magic = good.clone();
        magic[4] = b'X';
        assert!(matches!(
            Packet::from_slice(&magic),
            Err(DecodeError::BadMagic(_))
        ));
        let mut version = good.clone();
        version[8] = 2;
        assert_eq!(
            Packet::from_slice(&version),
            Err(DecodeError::BadVersion(2))
        );
        let mut small = good.clone();
        small[0] = 16;
        assert!(matches!(
            Packet::from_slice(&small),
            Err(DecodeError::LengthTooSmall { length: 16, .. })
        ));
        assert!(matches!(
            Packet::from_slice(&good[..good.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Packet::decode_bounded(&Bytes::from(good.clone()), 40),
            Err(DecodeError::LengthTooLarge { max: 40, .. })
        ));
        let mut op = good.clone();
        op[16] = 6;
        assert_eq!(
            Packet::from_slice(&op),
            Err(DecodeError::UnknownOperation(6))
        );
        op[16] = 10;
        assert_eq!(Packet::from_slice(&op), Err(DecodeError::TunnelUnsupported));
        // A datalen that runs past the packet's length is a truncated body.
        let mut datalen = good;
        datalen[40] = 200;
        assert!(matches!(
            Packet::from_slice(&datalen),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
