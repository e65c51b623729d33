//! Placeholder tdb files at the paths GETDBPATH reports.
//!
//! Records live in sled, but Samba's client library opens the database file itself
//! right after attaching (`ctdb attach` fails without it). A volatile database is
//! opened with TDB_CLEAR_IF_FIRST, which initialises an empty file; a persistent one is
//! not, so it gets a valid empty tdb: the 168-byte header and a zeroed hash table.

use std::io::Write;
use std::path::Path;

/// `TDB_VERSION`.
const TDB_VERSION: u32 = 0x2601_196d;
/// tdb's default hash size.
const HASH_SIZE: u32 = 131;
/// The default hash function's hashes of tdb's magic strings, which mark the file as
/// using that function.
const MAGIC1_HASH: u32 = 0xf67d_9f0d;
const MAGIC2_HASH: u32 = 0x3afe_f920;
const HEADER_SIZE: usize = 168;

/// The bytes of an empty tdb file with the default hash function.
pub fn empty_tdb() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + 4 * (HASH_SIZE as usize + 1));
    let mut magic = [0u8; 32];
    magic[..9].copy_from_slice(b"TDB file\n");
    out.extend_from_slice(&magic);
    for word in [TDB_VERSION, HASH_SIZE, 0, 0, 0, MAGIC1_HASH, MAGIC2_HASH] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.resize(HEADER_SIZE, 0);
    // The free list head and every hash chain head: empty.
    out.resize(HEADER_SIZE + 4 * (HASH_SIZE as usize + 1), 0);
    out
}

/// Creates the placeholder file at `path` unless something is already there.
pub fn ensure_placeholder(path: &Path, persistent: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    if persistent {
        file.write_all(&empty_tdb())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tdb_has_the_layout_tdbtool_writes() {
        let bytes = empty_tdb();
        // tdbtool's `create` makes a 696-byte file for the default hash size.
        assert_eq!(bytes.len(), 696);
        assert_eq!(&bytes[..9], b"TDB file\n");
        assert_eq!(&bytes[32..36], &[0x6d, 0x19, 0x01, 0x26]);
        assert_eq!(&bytes[36..40], &[0x83, 0, 0, 0]);
        assert_eq!(&bytes[52..56], &[0x0d, 0x9f, 0x7d, 0xf6]);
        assert!(bytes[HEADER_SIZE..].iter().all(|&b| b == 0));
    }

    #[test]
    fn an_existing_file_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x/p.tdb.0");
        ensure_placeholder(&path, true).expect("create");
        assert_eq!(std::fs::read(&path).expect("read").len(), 696);
        std::fs::write(&path, b"keep").expect("write");
        ensure_placeholder(&path, true).expect("again");
        assert_eq!(std::fs::read(&path).expect("read"), b"keep");
    }
}
