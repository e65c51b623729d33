//! `struct ctdb_ltdb_header`: the header CTDB keeps in front of every record.

use bytes::BufMut;

use crate::error::Result;
use crate::wire::{put_zeros, Reader, Wire};

pub const REC_FLAG_DEFAULT: u32 = 0x0000_0000;
pub const REC_FLAG_MIGRATED_WITH_DATA: u32 = 0x0001_0000;
pub const REC_FLAG_VACUUM_MIGRATED: u32 = 0x0002_0000;
pub const REC_FLAG_AUTOMATIC: u32 = 0x0004_0000;
/// Samba's read-only delegation flags.
pub const REC_RO_HAVE_DELEGATIONS: u32 = 0x0100_0000;
pub const REC_RO_HAVE_READONLY: u32 = 0x0200_0000;
pub const REC_RO_REVOKING_READONLY: u32 = 0x0400_0000;
pub const REC_RO_REVOKE_COMPLETE: u32 = 0x0800_0000;

/// The record header: 24 bytes on the wire (the C struct's 4 bytes of tail padding
/// included, since it holds a `uint64_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LtdbHeader {
    /// Record sequence number: grows every time the record changes or moves.
    pub rsn: u64,
    /// The node that holds the authoritative copy.
    pub dmaster: u32,
    pub reserved1: u32,
    pub flags: u32,
}

impl LtdbHeader {
    pub const SIZE: usize = 24;
}

impl Wire for LtdbHeader {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u64_le(self.rsn);
        out.put_u32_le(self.dmaster);
        out.put_u32_le(self.reserved1);
        out.put_u32_le(self.flags);
        put_zeros(out, 4);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let header = Self {
            rsn: r.u64()?,
            dmaster: r.u32()?,
            reserved1: r.u32()?,
            flags: r.u32()?,
        };
        r.skip(4)?;
        Ok(header)
    }
}

/// Splits a stored record into its header and data.
pub fn split_record(value: &[u8]) -> Result<(LtdbHeader, &[u8])> {
    let mut r = Reader::new(value);
    let header = LtdbHeader::decode(&mut r)?;
    Ok((header, r.rest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_24_bytes_little_endian() {
        let h = LtdbHeader {
            rsn: 0x0102030405060708,
            dmaster: 2,
            reserved1: 0,
            flags: REC_FLAG_MIGRATED_WITH_DATA,
        };
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), LtdbHeader::SIZE);
        assert_eq!(&bytes[..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[16..20], &[0, 0, 1, 0]);
        assert_eq!(LtdbHeader::from_bytes(&bytes), Ok(h));
        assert!(LtdbHeader::from_bytes(&bytes[..23]).is_err());
    }
}
