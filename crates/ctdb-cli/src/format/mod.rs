//! Pure formatters: typed payloads in, the exact text Samba 4.17's `ctdb` prints out.
//!
//! Nothing here talks to a daemon, so every command's output is unit-testable. Times are
//! printed the way C's `ctime()` prints them, in the time zone given by a [`Tz`]
//! function (seconds east of UTC for a given instant): the binary passes
//! [`crate::localtime::offset`] (the process's local time zone, honouring `TZ`, as Samba
//! does); tests pass [`utc`].

pub mod dbs;
pub mod ips;
pub mod misc;
pub mod nodes;
pub mod records;
pub mod stats;

/// Gives the offset from UTC, in seconds, of local time at a UNIX time.
pub type Tz = fn(i64) -> i64;

/// The UTC time zone.
#[cfg(test)]
pub fn utc(_t: i64) -> i64 {
    0
}

/// How machine-readable (`-X`/`-Y`) output is wanted: `None` for human output, else
/// the separator (`|` unless `-x` changed it).
pub type Machine<'a> = Option<&'a str>;

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `ctime()` without its trailing newline: `Wed Nov 25 02:47:57 2026`.
pub fn ctime(t: i64, tz: Tz) -> String {
    let local = t + tz(t);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let wday = (days + 4).rem_euclid(7) as usize;
    format!(
        "{} {}{:3} {:02}:{:02}:{:02} {}",
        DAYS[wday],
        MONTHS[m as usize - 1],
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        y
    )
}

/// `strftime("%Y/%m/%d %H:%M:%S")` of local time: how backups give their date.
pub fn backup_time(t: i64, tz: Tz) -> String {
    let local = t + tz(t);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Samba's `(DDD HH:MM:SS)` for an interval in seconds (C integer arithmetic).
pub fn interval(secs: i64) -> String {
    let mut tmp = secs;
    let seconds = tmp % 60;
    tmp /= 60;
    let minutes = tmp % 60;
    tmp /= 60;
    let hours = tmp % 24;
    tmp /= 24;
    format!("({tmp:03} {hours:02}:{minutes:02}:{seconds:02})")
}

/// A boolean as Samba's machine-readable output prints it.
pub(crate) fn bit(b: bool) -> u8 {
    u8::from(b)
}

/// One machine-readable line: `|a|b|c|` with the separator.
pub(crate) fn machine_line<S: AsRef<str>>(sep: &str, fields: &[S]) -> String {
    let mut s = String::from(sep);
    for f in fields {
        s.push_str(f.as_ref());
        s.push_str(sep);
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_matches_c() {
        // 2026-11-25 02:47:57 UTC, from the reference capture.
        assert_eq!(ctime(1_795_574_877, utc), "Wed Nov 25 02:47:57 2026");
        assert_eq!(ctime(0, utc), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(951_782_400, utc), "Tue Feb 29 00:00:00 2000");
        // One hour east of UTC.
        assert_eq!(ctime(0, |_| 3600), "Thu Jan  1 01:00:00 1970");
    }

    #[test]
    fn backup_times() {
        // The capture's restoredb: backed up at 2026/11/25 02:47:58 UTC.
        assert_eq!(backup_time(1_795_574_878, utc), "2026/11/25 02:47:58");
        assert_eq!(backup_time(0, |_| -3600), "1969/12/31 23:00:00");
    }

    #[test]
    fn intervals() {
        assert_eq!(interval(27 * 60 + 24), "(000 00:27:24)");
        assert_eq!(interval(3 * 86_400 + 3661), "(003 01:01:01)");
    }

    #[test]
    fn machine_lines() {
        assert_eq!(machine_line("|", &["a", "b"]), "|a|b|\n");
        assert_eq!(machine_line(":", &["x"]), ":x:\n");
    }
}
