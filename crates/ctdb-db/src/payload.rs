//! Small helpers for control payloads that are a db_id or a name; the structured ones
//! come from `ctdb_protocol::control`.

use ctdb_protocol::wire::Reader;
use ctdb_protocol::DecodeError;

pub use ctdb_protocol::control::{
    DbMap, DbMapEntry, DbSeqnumRequest, DbStatistics, TransDb, VnnMap,
};

/// The leading `uint32` of a payload (a db_id, a mode, ...); extra bytes are ignored.
pub fn leading_u32(buf: &[u8]) -> Result<u32, DecodeError> {
    Reader::new(buf).u32()
}

/// A NUL-terminated name (the NUL is optional here; anything after it is ignored).
pub fn name(buf: &[u8]) -> Option<String> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// `s` and its terminating NUL, as CTDB sends names and paths.
pub fn cstring(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 1);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_leading_words() {
        assert_eq!(
            name(b"capture_vol.tdb\0").as_deref(),
            Some("capture_vol.tdb")
        );
        assert_eq!(name(b"x"), Some("x".to_string()));
        assert_eq!(name(b"\0"), None);
        assert_eq!(name(&[0xff, 0]), None);
        assert_eq!(cstring("ab"), b"ab\0");
        assert_eq!(leading_u32(&[1, 0, 0, 0, 9]), Ok(1));
        assert!(leading_u32(&[1, 0]).is_err());
    }
}
