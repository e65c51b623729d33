//! The backup file of `backupdb`, `restoredb` and `dumpdbbackup`, in Samba's layout
//! (x86-64, little-endian):
//!
//! - a 104-byte header: version (u64, 3), the backup's time (i64, UNIX seconds), the
//!   database's flags (u64), how many record buffers follow (u64), how many records
//!   they hold in all (u64), the database's name (64 bytes, NUL-terminated);
//! - the buffers, each db_id (u32), count (u32), length (u64), then `count`
//!   `ctdb_rec_data` entries filling `length` bytes, whose data is the 24-byte ltdb
//!   header followed by the record's value.
//!
//! Samba starts a new buffer once one reaches 100,000 bytes.

use bytes::Bytes;
use ctdb_protocol::control::RecData;
use ctdb_protocol::{Reader, Wire};

/// The only version Samba writes and reads.
pub const VERSION: u64 = 3;
/// Bytes of the name field, its NUL included.
const NAME_SIZE: usize = 64;
pub const HEADER_SIZE: usize = 40 + NAME_SIZE;
/// A buffer is written once it reaches this size (its db_id and count included).
const BUFFER_LIMIT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupHeader {
    pub version: u64,
    pub timestamp: i64,
    pub flags: u64,
    pub nbuf: u64,
    pub nrec: u64,
    pub name: String,
}

/// A backup file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub header: BackupHeader,
    /// The records of every buffer, in file order.
    pub records: Vec<RecData>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("the file is shorter than a backup header")]
    ShortHeader,
    #[error("Wrong version of backup file, expected {VERSION}, got {0}")]
    WrongVersion(u64),
    #[error("record buffer {index} is malformed: {why}")]
    BadBuffer { index: u64, why: String },
}

impl BackupHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.nbuf.to_le_bytes());
        out.extend_from_slice(&self.nrec.to_le_bytes());
        // As strncpy() of at most 63 bytes into a zeroed field.
        let name = self.name.as_bytes();
        let n = name.len().min(NAME_SIZE - 1);
        let mut field = [0u8; NAME_SIZE];
        field[..n].copy_from_slice(&name[..n]);
        out.extend_from_slice(&field);
    }

    /// Reads the header at the start of `file`, checking its version as Samba does.
    /// A file too short for a header is refused, with Samba's complaint about the
    /// version when its first bytes (zero-filled) do not say 3.
    pub fn decode(file: &[u8]) -> Result<Self, BackupError> {
        let mut head = [0u8; HEADER_SIZE];
        let n = file.len().min(HEADER_SIZE);
        head[..n].copy_from_slice(&file[..n]);
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let version = word(0);
        if version != VERSION {
            return Err(BackupError::WrongVersion(version));
        }
        if file.len() < HEADER_SIZE {
            return Err(BackupError::ShortHeader);
        }
        // Samba ends the name at the field's last byte whatever it holds.
        let raw = &head[40..HEADER_SIZE - 1];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(Self {
            version,
            timestamp: word(1) as i64,
            flags: word(2),
            nbuf: word(3),
            nrec: word(4),
            name: String::from_utf8_lossy(&raw[..end]).into_owned(),
        })
    }
}

/// A backup of `records` (each with its ltdb header in its data) of database `name`.
pub fn encode(name: &str, db_id: u32, flags: u8, timestamp: i64, records: &[RecData]) -> Vec<u8> {
    let mut buffers: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut current: Option<(u32, Vec<u8>)> = None;
    for rec in records {
        let (count, buf) = current.get_or_insert_with(|| (0, Vec::new()));
        rec.encode(buf);
        *count += 1;
        if 8 + buf.len() >= BUFFER_LIMIT {
            buffers.extend(current.take());
        }
    }
    buffers.extend(current);
    let header = BackupHeader {
        version: VERSION,
        timestamp,
        flags: u64::from(flags),
        nbuf: buffers.len() as u64,
        nrec: records.len() as u64,
        name: name.to_string(),
    };
    let mut out =
        Vec::with_capacity(HEADER_SIZE + buffers.iter().map(|(_, b)| 16 + b.len()).sum::<usize>());
    header.encode(&mut out);
    for (count, buf) in buffers {
        out.extend_from_slice(&db_id.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&(buf.len() as u64).to_le_bytes());
        out.extend_from_slice(&buf);
    }
    out
}

/// Reads a whole backup file. Bytes after the last buffer are ignored: Samba's
/// `backupdb` does not truncate a file it overwrites.
pub fn decode(file: &[u8]) -> Result<Backup, BackupError> {
    let header = BackupHeader::decode(file)?;
    let mut r = Reader::new(&file[HEADER_SIZE..]);
    let mut records = Vec::new();
    for index in 0..header.nbuf {
        let bad = |why: String| BackupError::BadBuffer { index, why };
        let (count, len) = buffer_head(&mut r).map_err(|e| bad(e.to_string()))?;
        let len = usize::try_from(len).map_err(|_| bad(format!("length {len}")))?;
        let buf = r.bytes(len).map_err(|e| bad(e.to_string()))?;
        let mut rb = Reader::new(buf);
        for _ in 0..count {
            records.push(RecData::decode(&mut rb).map_err(|e| bad(e.to_string()))?);
        }
        rb.finish().map_err(|e| bad(e.to_string()))?;
    }
    Ok(Backup { header, records })
}

/// A buffer's count and length (its db_id is not used: Samba's `backupdb` leaves it
/// unset).
fn buffer_head(r: &mut Reader<'_>) -> Result<(u32, u64), ctdb_protocol::DecodeError> {
    let _db_id = r.u32()?;
    Ok((r.u32()?, r.u64()?))
}

/// Samba's backups carry the ltdb header in each record's data; a record too short for
/// one cannot be restored or dumped.
pub fn check_records(records: &[RecData]) -> Result<(), Bytes> {
    match records.iter().find(|r| r.header().is_err()) {
        Some(r) => Err(r.key.clone()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctdb_protocol::LtdbHeader;

    fn rec(key: &str, rsn: u64, value: &[u8]) -> RecData {
        let h = LtdbHeader {
            rsn,
            dmaster: 1,
            reserved1: 0,
            flags: 0x0001_0000,
        };
        RecData::with_header(0, key.as_bytes(), &h, value)
    }

    #[test]
    fn header_layout_is_samba_s() {
        let file = encode(
            "capture_vol.tdb",
            0x6896115a,
            0,
            1_795_574_878,
            &[rec("k", 2, b"v")],
        );
        assert_eq!(&file[0..8], &3u64.to_le_bytes());
        assert_eq!(&file[8..16], &1_795_574_878i64.to_le_bytes());
        assert_eq!(&file[16..24], &0u64.to_le_bytes());
        assert_eq!(&file[24..32], &1u64.to_le_bytes()); // nbuf
        assert_eq!(&file[32..40], &1u64.to_le_bytes()); // nrec
        assert_eq!(&file[40..55], b"capture_vol.tdb");
        assert!(file[55..104].iter().all(|&b| b == 0));
        // The buffer: db_id, count, length, then the record.
        assert_eq!(&file[104..108], &0x6896115au32.to_le_bytes());
        assert_eq!(&file[108..112], &1u32.to_le_bytes());
        let rec_len = 16 + 1 + 24 + 1;
        assert_eq!(&file[112..120], &(rec_len as u64).to_le_bytes());
        assert_eq!(file.len(), 120 + rec_len);
        let h = BackupHeader::decode(&file).unwrap();
        assert_eq!(
            h,
            BackupHeader {
                version: 3,
                timestamp: 1_795_574_878,
                flags: 0,
                nbuf: 1,
                nrec: 1,
                name: "capture_vol.tdb".into()
            }
        );
    }

    #[test]
    fn round_trip_with_many_buffers() {
        let records: Vec<RecData> = (0..300)
            .map(|i| rec(&format!("key{i}"), i, &vec![i as u8; 1000]))
            .collect();
        let file = encode("big.tdb", 7, 1, 42, &records);
        let backup = decode(&file).unwrap();
        assert_eq!(backup.records, records);
        assert_eq!(backup.header.nrec, 300);
        assert_eq!(backup.header.flags, 1);
        // About 1 KiB a record: four buffers, each closed once past 100,000 bytes.
        assert_eq!(backup.header.nbuf, 4);
        let first_len = u64::from_le_bytes(file[112..120].try_into().unwrap()) as usize;
        assert!(first_len + 8 >= BUFFER_LIMIT && first_len + 8 < BUFFER_LIMIT + 1100);
        // Trailing bytes are ignored, as Samba leaves them.
        let mut longer = file.clone();
        longer.extend_from_slice(&[0xaa; 37]);
        assert_eq!(decode(&longer).unwrap().records.len(), 300);
        // An empty database: no buffer at all.
        let empty = encode("e.tdb", 7, 0, 42, &[]);
        assert_eq!(empty.len(), HEADER_SIZE);
        assert_eq!(decode(&empty).unwrap().records, vec![]);
    }

    #[test]
    fn names_are_cut_to_63_bytes() {
        let long = "n".repeat(80);
        let file = encode(&long, 1, 0, 0, &[]);
        assert_eq!(BackupHeader::decode(&file).unwrap().name, "n".repeat(63));
        // A name field without a NUL still ends at its last byte.
        let mut bad = file.clone();
        bad[40..104].fill(b'x');
        assert_eq!(BackupHeader::decode(&bad).unwrap().name, "x".repeat(63));
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let file = encode("db", 1, 0, 5, &[rec("a", 1, b"1"), rec("b", 2, b"22")]);
        for n in 8..HEADER_SIZE {
            assert_eq!(decode(&file[..n]), Err(BackupError::ShortHeader), "{n}");
        }
        // Shorter than the version: Samba's complaint about the version.
        assert_eq!(decode(&file[..0]), Err(BackupError::WrongVersion(0)));
        assert_eq!(
            decode(b"abc\n"),
            Err(BackupError::WrongVersion(0x0a63_6261))
        );
        for n in HEADER_SIZE + 1..file.len() {
            assert!(
                matches!(decode(&file[..n]), Err(BackupError::BadBuffer { .. })),
                "{n}"
            );
        }
        let mut v2 = file.clone();
        v2[0] = 2;
        assert_eq!(decode(&v2), Err(BackupError::WrongVersion(2)));
        assert_eq!(
            BackupError::WrongVersion(2).to_string(),
            "Wrong version of backup file, expected 3, got 2"
        );
        // A forged count or length.
        let mut forged = file.clone();
        forged[108..112].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&forged).is_err());
        let mut forged = file.clone();
        forged[112..120].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&forged).is_err());
        let mut forged = file.clone();
        forged[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&forged).is_err());
        // A buffer whose records do not fill its length exactly.
        let mut short_count = file.clone();
        short_count[108..112].copy_from_slice(&1u32.to_le_bytes());
        assert!(decode(&short_count).is_err());
    }

    #[test]
    fn records_need_a_header() {
        let ok = vec![rec("a", 1, b"")];
        assert_eq!(check_records(&ok), Ok(()));
        let bad = vec![
            rec("a", 1, b""),
            RecData {
                reqid: 0,
                key: Bytes::from_static(b"b"),
                data: Bytes::from_static(b"short"),
            },
        ];
        assert_eq!(check_records(&bad), Err(Bytes::from_static(b"b")));
    }
}
