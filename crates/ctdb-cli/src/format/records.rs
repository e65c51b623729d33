//! Records: `catdb`, `cattdb` and `dumpdbbackup` dumps, `readkey`, `pfetch`,
//! `getdbseqnum`.

use ctdb_protocol::ltdb::{
    REC_FLAG_AUTOMATIC, REC_FLAG_MIGRATED_WITH_DATA, REC_FLAG_VACUUM_MIGRATED,
    REC_RO_HAVE_DELEGATIONS, REC_RO_HAVE_READONLY, REC_RO_REVOKE_COMPLETE,
    REC_RO_REVOKING_READONLY,
};
use ctdb_protocol::LtdbHeader;

/// Record flags Samba names after the hex value, in its order.
const FLAG_NAMES: [(u32, &str); 7] = [
    (REC_FLAG_MIGRATED_WITH_DATA, "MIGRATED_WITH_DATA"),
    (REC_FLAG_VACUUM_MIGRATED, "VACUUM_MIGRATED"),
    (REC_FLAG_AUTOMATIC, "AUTOMATIC"),
    (REC_RO_HAVE_DELEGATIONS, "RO_HAVE_DELEGATIONS"),
    (REC_RO_HAVE_READONLY, "RO_HAVE_READONLY"),
    (REC_RO_REVOKING_READONLY, "RO_REVOKING_READONLY"),
    (REC_RO_REVOKE_COMPLETE, "RO_REVOKE_COMPLETE"),
];

/// `name(N) = "..."`: printable ASCII as is, except `"` and `\`, every other byte as
/// `\XX` (upper-case hex), as C's `isprint()` in the C locale decides.
pub fn tdb_data(name: &str, data: &[u8]) -> String {
    let mut s = format!("{name}({}) = \"", data.len());
    for &b in data {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\{b:02X}"));
        }
    }
    s.push_str("\"\n");
    s
}

/// The header lines of a dumped record.
pub fn ltdb_header(h: &LtdbHeader) -> String {
    let mut s = format!(
        "dmaster: {}\nrsn: {}\nflags: 0x{:08x}",
        h.dmaster, h.rsn, h.flags
    );
    for (flag, name) in FLAG_NAMES {
        if h.flags & flag != 0 {
            s.push(' ');
            s.push_str(name);
        }
    }
    s.push('\n');
    s
}

/// One record of a dump, with the blank line after it.
pub fn record(key: &[u8], h: &LtdbHeader, data: &[u8]) -> String {
    format!(
        "{}{}{}\n",
        tdb_data("key", key),
        ltdb_header(h),
        tdb_data("data", data)
    )
}

/// The last line of `catdb` (`records`) or of `cattdb` and `dumpdbbackup`
/// (`record(s)`).
pub fn dumped(count: usize, local: bool) -> String {
    if local {
        format!("Dumped {count} record(s)\n")
    } else {
        format!("Dumped {count} records\n")
    }
}

/// C's `%.*s` of data: the bytes before the first NUL.
fn c_string(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

/// `readkey`: `Data: size:N ptr:[...]`, the data printed as a C string.
pub fn readkey(data: &[u8]) -> Vec<u8> {
    let mut out = format!("Data: size:{} ptr:[", data.len()).into_bytes();
    out.extend_from_slice(c_string(data));
    out.extend_from_slice(b"]\n");
    out
}

/// `pfetch`: the data as a C string, then a newline.
pub fn pfetch(data: &[u8]) -> Vec<u8> {
    let mut out = c_string(data).to_vec();
    out.push(b'\n');
    out
}

/// `getdbseqnum`.
pub fn seqnum(n: u64) -> String {
    format!("0x{n:x}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(dmaster: u32, rsn: u64, flags: u32) -> LtdbHeader {
        LtdbHeader {
            rsn,
            dmaster,
            reserved1: 0,
            flags,
        }
    }

    #[test]
    fn catdb_volatile_matches_samba() {
        let records: [(&[u8], LtdbHeader, &[u8]); 3] = [
            (b"key2", h(0, 2, 0), b"value-two"),
            (b"key3", h(0, 3, 0), b"v3"),
            (b"key1", h(0, 2, 0), b"value1"),
        ];
        let mut s = String::new();
        for (k, hh, d) in &records {
            s.push_str(&record(k, hh, d));
        }
        s.push_str(&dumped(records.len(), false));
        assert_eq!(
            s,
            "key(4) = \"key2\"
dmaster: 0
rsn: 2
flags: 0x00000000
data(9) = \"value-two\"

key(4) = \"key3\"
dmaster: 0
rsn: 3
flags: 0x00000000
data(2) = \"v3\"

key(4) = \"key1\"
dmaster: 0
rsn: 2
flags: 0x00000000
data(6) = \"value1\"

Dumped 3 records
"
        );
    }

    #[test]
    fn catdb_persistent_escapes_like_samba() {
        let s = record(
            b"__db_sequence_number__\0",
            &h(0, 3, 0),
            &3u64.to_le_bytes(),
        );
        assert_eq!(
            s,
            "key(23) = \"__db_sequence_number__\\00\"
dmaster: 0
rsn: 3
flags: 0x00000000
data(8) = \"\\03\\00\\00\\00\\00\\00\\00\\00\"

"
        );
        // Quotes, backslashes, DEL and high bytes are escaped, upper-case.
        assert_eq!(
            tdb_data("k", b"a\"b\\c\x7f\xfe~ "),
            "k(9) = \"a\\22b\\5Cc\\7F\\FE~ \"\n"
        );
    }

    #[test]
    fn cattdb_with_flags_and_empty_records_matches_samba() {
        let s = format!(
            "{}{}{}",
            record(b"mk0", &h(2, 4, 0x0001_0000), b"from-node1-mk0"),
            record(b"nosuchkey", &h(0, 3, 0), b""),
            dumped(2, true)
        );
        assert_eq!(
            s,
            "key(3) = \"mk0\"
dmaster: 2
rsn: 4
flags: 0x00010000 MIGRATED_WITH_DATA
data(14) = \"from-node1-mk0\"

key(9) = \"nosuchkey\"
dmaster: 0
rsn: 3
flags: 0x00000000
data(0) = \"\"

Dumped 2 record(s)
"
        );
        assert_eq!(
            ltdb_header(&h(1, 1, 0x0f07_0000)),
            "dmaster: 1\nrsn: 1\nflags: 0x0f070000 MIGRATED_WITH_DATA VACUUM_MIGRATED \
             AUTOMATIC RO_HAVE_DELEGATIONS RO_HAVE_READONLY RO_REVOKING_READONLY \
             RO_REVOKE_COMPLETE\n"
        );
    }

    #[test]
    fn readkey_pfetch_and_seqnum_match_samba() {
        assert_eq!(readkey(b"value1"), b"Data: size:6 ptr:[value1]\n");
        assert_eq!(readkey(b""), b"Data: size:0 ptr:[]\n");
        assert_eq!(readkey(b"ab\0cd"), b"Data: size:5 ptr:[ab]\n");
        assert_eq!(pfetch(b"pvalue1"), b"pvalue1\n");
        assert_eq!(pfetch(b""), b"\n");
        assert_eq!(pfetch(b"\xffx\0y"), b"\xffx\n");
        assert_eq!(seqnum(3), "0x3\n");
        assert_eq!(seqnum(0), "0x0\n");
        assert_eq!(seqnum(255), "0xff\n");
    }
}
