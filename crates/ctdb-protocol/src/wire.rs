//! Little-endian primitives shared by every packet and payload type.
//!
//! Encoding writes into any [`BufMut`]; decoding reads through [`Reader`], which checks
//! every length before it touches a byte so no input can make it panic or over-allocate.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Result};

/// `CTDB_DS_ALIGNMENT`: every packet length is a multiple of this.
pub const ALIGNMENT: usize = 8;

/// Rounds `n` up to the next multiple of `align` (a power of two).
pub const fn align_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// A bounds-checked cursor over a payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: self.pos.saturating_add(n),
                available: self.buf.len(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_le_bytes)
    }
    pub fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub fn i32(&mut self) -> Result<i32> {
        self.array().map(i32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }
    pub fn i64(&mut self) -> Result<i64> {
        self.array().map(i64::from_le_bytes)
    }
    pub fn f64(&mut self) -> Result<f64> {
        self.array().map(f64::from_le_bytes)
    }
    /// A big-endian (network order) u16, as in `sockaddr` ports.
    pub fn u16_be(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    /// A `uint32` length followed by that many bytes.
    pub fn len_prefixed(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// Capacity to reserve for `count` items of at least `min_size` bytes each, never
    /// more than the remaining input could hold (a forged count must not allocate).
    pub fn capacity_for(&self, count: u32, min_size: usize) -> usize {
        (count as usize).min(self.remaining() / min_size.max(1))
    }
}

/// A value with a fixed CTDB wire layout.
pub trait Wire: Sized {
    fn encode<B: BufMut>(&self, out: &mut B);
    fn decode(r: &mut Reader<'_>) -> Result<Self>;

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a value that must fill `buf` exactly.
    fn from_bytes(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

macro_rules! wire_int {
    ($($t:ty => $get:ident, $put:ident;)*) => {$(
        impl Wire for $t {
            fn encode<B: BufMut>(&self, out: &mut B) {
                out.$put(*self);
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self> {
                r.$get()
            }
        }
    )*};
}

wire_int! {
    u32 => u32, put_u32_le;
    i32 => i32, put_i32_le;
    u64 => u64, put_u64_le;
}

/// Raw bytes: the whole remaining payload.
impl Wire for Bytes {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Bytes::copy_from_slice(r.rest()))
    }
}

/// Writes `n` zero bytes.
pub fn put_zeros<B: BufMut>(out: &mut B, n: usize) {
    out.put_bytes(0, n);
}

/// A fixed-size NUL-padded character field (`char name[N]`), read up to the first NUL.
pub fn get_fixed_str(r: &mut Reader<'_>, n: usize) -> Result<String> {
    let raw = r.bytes(n)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// Writes `s` into a `char[n]` field, truncated so that a NUL always ends it.
pub fn put_fixed_str<B: BufMut>(out: &mut B, s: &str, n: usize) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(n.saturating_sub(1));
    out.put_slice(&bytes[..len]);
    put_zeros(out, n - len);
}

/// A NUL-terminated string filling the rest of a payload (`char data[]` with its NUL
/// counted in the length), as CTDB sends database names and paths.
pub fn get_cstring(r: &mut Reader<'_>, n: usize) -> Result<String> {
    let raw = r.bytes(n)?;
    let Some((&0, body)) = raw.split_last() else {
        return Err(DecodeError::UnterminatedString);
    };
    if body.contains(&0) {
        return Err(DecodeError::InvalidValue {
            what: "string with an embedded NUL",
            value: n as u64,
        });
    }
    String::from_utf8(body.to_vec()).map_err(|_| DecodeError::InvalidValue {
        what: "string that is not UTF-8",
        value: n as u64,
    })
}

/// Writes `s` and its terminating NUL.
pub fn put_cstring<B: BufMut>(out: &mut B, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// A whole payload that is one NUL-terminated string.
impl Wire for String {
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_cstring(out, self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.remaining();
        get_cstring(r, n)
    }
}
