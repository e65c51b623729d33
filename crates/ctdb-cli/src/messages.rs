//! Payloads of the messages the tool sends to the recovery daemons, and the parsing
//! of command arguments that Samba reads with `smb_strtoul()`.

use ctdb_protocol::srvid::samba::TOOL_RANGE;

/// Samba's `SRVID_CTDB_TOOL`: the tool's own srvids are this, the process id shifted
/// left by 16 bits, plus a counter.
pub const TOOL_SRVID: u64 = TOOL_RANGE | 0x0001_0000_0000_0000;

/// Samba's `SRVID_CTDB_PUSHDB`: where `restoredb` sends records after DB_PUSH_START.
pub const PUSHDB_SRVID: u64 = TOOL_RANGE | 0x0002_0000_0000_0000;

/// The `n`th reply srvid of process `pid` (Samba's `next_srvid()`, counting from 1).
pub fn tool_srvid(pid: u32, n: u64) -> u64 {
    (TOOL_SRVID | (u64::from(pid) << 16)) + n
}

/// `ctdb_srvid_message`: where to send the answer (TAKEOVER_RUN and friends).
pub fn srvid_message(pnn: u32, srvid: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&pnn.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&srvid.to_le_bytes());
    b
}

/// `ctdb_disable_message` (DISABLE_RECOVERIES): the answer's address and for how many
/// seconds (0: enable again).
pub fn disable_message(pnn: u32, srvid: u64, timeout: u32) -> Vec<u8> {
    let mut b = srvid_message(pnn, srvid);
    b.extend_from_slice(&timeout.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b
}

/// The `int` a recovery daemon answers with (a pnn, or a negative error), if the
/// payload is one.
pub fn int_reply(data: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(data.try_into().ok()?))
}

/// GET_RECLOCK_FILE's answer: the path, or `None` (no data) when there is no lock.
pub fn reclock_path(data: &[u8]) -> Option<String> {
    if data.is_empty() {
        return None;
    }
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    Some(String::from_utf8_lossy(&data[..end]).into_owned())
}

const EINVAL: i32 = 22;
const ERANGE: i32 = 34;

/// Samba's `smb_strtoul(s, NULL, 0, &err, SMB_STR_STANDARD)`: C `strtoul` in base 0
/// (leading blanks, `0x` hex, leading-0 octal, trailing text ignored) that refuses a
/// string without digits and a negative number (EINVAL) and overflow (ERANGE).
pub fn smb_strtoul(s: &str) -> Result<u64, i32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if t.starts_with('-') {
        return Err(EINVAL);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (radix, digits) = match t.get(..2) {
        Some("0x") | Some("0X") if t[2..].starts_with(|c: char| c.is_ascii_hexdigit()) => {
            (16, &t[2..])
        }
        _ if t.starts_with('0') => (8, t),
        _ => (10, t),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return Err(EINVAL);
    }
    u64::from_str_radix(&digits[..len], radix).map_err(|_| ERANGE)
}

/// C's `atoi(s)` as glibc does it: `strtol(s, NULL, 10)` (clamped to a long) cut to
/// an int.
pub fn c_atoi(s: &str) -> i32 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let len = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let magnitude = t[..len]
        .parse::<i128>()
        .unwrap_or(if len == 0 { 0 } else { i128::MAX });
    let value = if negative { -magnitude } else { magnitude };
    let long = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    long as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn takeover_run_payload_matches_samba() {
        // client.jsonl, step "disable -n 2": the tool (pid 0x1c28) on node 0 asks for
        // a takeover run, answer to its first srvid.
        let srvid = tool_srvid(0x1c28, 1);
        assert_eq!(srvid, 0xce01_0000_1c28_0001);
        assert_eq!(
            hex(&srvid_message(0, srvid)),
            "00000000000000000100281c000001ce"
        );
    }

    #[test]
    fn disable_message_layout() {
        let m = disable_message(1, 0x1122_3344_5566_7788, 20);
        assert_eq!(m.len(), 24);
        assert_eq!(&m[..4], &[1, 0, 0, 0]);
        assert_eq!(&m[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&m[16..20], &[20, 0, 0, 0]);
    }

    #[test]
    fn replies() {
        assert_eq!(int_reply(&1i32.to_le_bytes()), Some(1));
        assert_eq!(int_reply(&(-5i32).to_le_bytes()), Some(-5));
        assert_eq!(int_reply(&[0; 8]), None);
        assert_eq!(reclock_path(b"REF/rec.lock\0"), Some("REF/rec.lock".into()));
        assert_eq!(reclock_path(b""), None);
    }

    #[test]
    fn strtoul_like_samba() {
        assert_eq!(smb_strtoul("30"), Ok(30));
        assert_eq!(smb_strtoul(" 0x1e"), Ok(30));
        assert_eq!(smb_strtoul("036"), Ok(30));
        assert_eq!(smb_strtoul("30s"), Ok(30));
        assert_eq!(smb_strtoul("0"), Ok(0));
        assert_eq!(smb_strtoul("abc"), Err(EINVAL));
        assert_eq!(smb_strtoul(""), Err(EINVAL));
        assert_eq!(smb_strtoul("-1"), Err(EINVAL));
        assert_eq!(smb_strtoul("99999999999999999999999"), Err(ERANGE));
    }

    #[test]
    fn c_numbers() {
        assert_eq!(c_atoi("42"), 42);
        assert_eq!(c_atoi(" -7x"), -7);
        assert_eq!(c_atoi("junk"), 0);
        assert_eq!(c_atoi("4294967297"), 1);
        assert_eq!(c_atoi("99999999999999999999"), -1);
    }
}
