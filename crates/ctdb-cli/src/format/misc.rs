//! Small commands: `ping`, `uptime`, `getvar`/`listvars`, `getdebug`,
//! `getcapabilities`, `runstate`.

use ctdb_common::logging::samba_level_name;
use ctdb_protocol::control::{Timeval, Uptime};
use ctdb_protocol::flags::capability;

use super::{bit, ctime, interval, machine_line, Machine, Tz};

/// `ctdb ping`.
pub fn ping_text(pnn: u32, elapsed_secs: f64, clients: u32) -> String {
    format!("response from {pnn} time={elapsed_secs:.6} sec  ({clients} clients)\n")
}

fn delta(later: &Timeval, earlier: &Timeval) -> f64 {
    (later.sec - earlier.sec) as f64 + (later.usec - earlier.usec) as f64 * 1.0e-6
}

/// `ctdb uptime` (Samba prints the same with `-X`).
pub fn uptime_text(pnn: u32, u: &Uptime, tz: Tz) -> String {
    let now = u.current_time.sec;
    let mut out = format!(
        "Current time of node {pnn:<4}     :                {}\n",
        ctime(now, tz)
    );
    out.push_str(&format!(
        "Ctdbd start time              : {} {}\n",
        interval(now - u.ctdbd_start_time.sec),
        ctime(u.ctdbd_start_time.sec, tz)
    ));
    out.push_str(&format!(
        "Time of last recovery/failover: {} {}\n",
        interval(now - u.last_recovery_finished.sec),
        ctime(u.last_recovery_finished.sec, tz)
    ));
    out.push_str(&format!(
        "Duration of last recovery/failover: {:.6} seconds\n",
        delta(&u.last_recovery_finished, &u.last_recovery_started)
    ));
    out
}

/// One `getvar` line: the name as the user typed it, padded to 26.
pub fn var_line(name: &str, value: u32) -> String {
    format!("{name:<26} = {value}\n")
}

/// `ctdb listvars`.
pub fn listvars_text(vars: &[(String, u32)]) -> String {
    vars.iter().map(|(n, v)| var_line(n, *v)).collect()
}

/// Finds `name` among the daemon's tunables, ignoring case as Samba does.
pub fn find_var<'a>(vars: &'a [String], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|v| v.eq_ignore_ascii_case(name))
        .map(String::as_str)
}

/// `ctdb getdebug`.
pub fn getdebug_text(level: i32) -> String {
    format!("{}\n", samba_level_name(level))
}

/// `ctdb getcapabilities` (Samba 4.17 says LEADER where older ones said RECMASTER).
pub fn capabilities_text(caps: u32, machine: Machine<'_>) -> String {
    let leader = caps & capability::RECMASTER != 0;
    let lmaster = caps & capability::LMASTER != 0;
    match machine {
        Some(sep) => {
            let mut out = machine_line(sep, &["LEADER", "LMASTER"]);
            out.push_str(&machine_line(
                sep,
                &[bit(leader).to_string(), bit(lmaster).to_string()],
            ));
            out
        }
        None => format!(
            "LEADER: {}\nLMASTER: {}\n",
            if leader { "YES" } else { "NO" },
            if lmaster { "YES" } else { "NO" }
        ),
    }
}

/// Samba's run states (`enum ctdb_runstate`), by number.
pub const RUNSTATES: [&str; 7] = [
    "UNKNOWN",
    "INIT",
    "SETUP",
    "FIRST_RECOVERY",
    "STARTUP",
    "RUNNING",
    "SHUTDOWN",
];

pub fn runstate_name(n: u32) -> &'static str {
    RUNSTATES.get(n as usize).copied().unwrap_or("UNKNOWN")
}

/// `ctdb_runstate_from_string`: case-insensitive; `None` for UNKNOWN or junk.
pub fn runstate_from_name(s: &str) -> Option<u32> {
    RUNSTATES
        .iter()
        .position(|r| r.eq_ignore_ascii_case(s))
        .filter(|&i| i != 0)
        .map(|i| i as u32)
}

/// `ctdb runstate [STATE...]`: the text and the exit code.
pub fn runstate_check(current: u32, wanted: &[String]) -> (String, i32) {
    let mut found = wanted.is_empty();
    for w in wanted {
        match runstate_from_name(w) {
            None => return (format!("Invalid run state ({w})\n"), 1),
            Some(n) if n == current => {
                found = true;
                break;
            }
            Some(_) => {}
        }
    }
    if !found {
        return (
            format!(
                "CTDB not in required run state (got {})\n",
                runstate_name(current)
            ),
            1,
        );
    }
    (format!("{}\n", runstate_name(current)), 0)
}

/// `ctdb process-exists <pid> [<srvid>]`: the answer line (status 0: it exists).
pub fn process_exists_text(pid: i32, srvid: u64, status: i32) -> String {
    let verdict = if status == 0 {
        "exists"
    } else {
        "does not exist"
    };
    if srvid == 0 {
        format!("PID {pid} {verdict}\n")
    } else {
        format!("PID {pid} with SRVID 0x{srvid:x} {verdict}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::utc;

    fn tv(sec: i64, usec: i64) -> Timeval {
        Timeval { sec, usec }
    }

    #[test]
    fn uptime_matches_samba_in_utc() {
        // The reference host ran in UTC; these are its times.
        let now = 1_795_574_877; // Wed Nov 25 02:47:57 2026
        let u = Uptime {
            current_time: tv(now, 0),
            ctdbd_start_time: tv(now - (27 * 60 + 24), 0),
            last_recovery_started: tv(now - (27 * 60 + 19), 100_000),
            last_recovery_finished: tv(now - (27 * 60 + 19), 120_620),
        };
        let expected = "Current time of node 0        :                Wed Nov 25 02:47:57 2026
Ctdbd start time              : (000 00:27:24) Wed Nov 25 02:20:33 2026
Time of last recovery/failover: (000 00:27:19) Wed Nov 25 02:20:38 2026
Duration of last recovery/failover: 0.020620 seconds
";
        assert_eq!(uptime_text(0, &u, utc), expected);
        assert!(uptime_text(2, &u, utc).starts_with("Current time of node 2        :"));
    }

    #[test]
    fn ping_line() {
        assert_eq!(
            ping_text(0, 0.000237, 2),
            "response from 0 time=0.000237 sec  (2 clients)\n"
        );
    }

    #[test]
    fn vars_match_samba() {
        assert_eq!(
            var_line("RecoverInterval", 1),
            "RecoverInterval            = 1\n"
        );
        assert_eq!(
            var_line("KeepaliveInterval", 5),
            "KeepaliveInterval          = 5\n"
        );
        let vars = vec![
            ("SeqnumInterval".to_string(), 1000),
            ("DatabaseHashSize".to_string(), 100_001),
            ("AllowMixedVersions".to_string(), 0),
        ];
        assert_eq!(
            listvars_text(&vars),
            "SeqnumInterval             = 1000
DatabaseHashSize           = 100001
AllowMixedVersions         = 0
"
        );
        let names = vec!["RecoverInterval".to_string()];
        assert_eq!(find_var(&names, "recoverinterval"), Some("RecoverInterval"));
        assert_eq!(find_var(&names, "Nope"), None);
    }

    #[test]
    fn debug_levels() {
        assert_eq!(getdebug_text(3), "NOTICE\n");
        assert_eq!(getdebug_text(0), "ERROR\n");
        assert_eq!(getdebug_text(10), "DEBUG\n");
    }

    #[test]
    fn capabilities_match_samba() {
        assert_eq!(
            capabilities_text(capability::DEFAULT, None),
            "LEADER: YES\nLMASTER: YES\n"
        );
        assert_eq!(
            capabilities_text(capability::DEFAULT, Some("|")),
            "|LEADER|LMASTER|\n|1|1|\n"
        );
        assert_eq!(
            capabilities_text(capability::LMASTER, None),
            "LEADER: NO\nLMASTER: YES\n"
        );
    }

    #[test]
    fn runstates_match_samba() {
        assert_eq!(runstate_check(5, &[]), ("RUNNING\n".into(), 0));
        assert_eq!(
            runstate_check(5, &["running".into()]),
            ("RUNNING\n".into(), 0)
        );
        assert_eq!(
            runstate_check(5, &["startup".into(), "RUNNING".into()]),
            ("RUNNING\n".into(), 0)
        );
        assert_eq!(
            runstate_check(5, &["startup".into()]),
            ("CTDB not in required run state (got RUNNING)\n".into(), 1)
        );
        assert_eq!(
            runstate_check(5, &["foo".into()]),
            ("Invalid run state (foo)\n".into(), 1)
        );
        assert_eq!(runstate_name(3), "FIRST_RECOVERY");
        assert_eq!(runstate_name(99), "UNKNOWN");
    }

    #[test]
    fn process_exists_lines_match_samba() {
        assert_eq!(process_exists_text(42, 0, 0), "PID 42 exists\n");
        assert_eq!(process_exists_text(-1, 0, -1), "PID -1 does not exist\n");
        assert_eq!(
            process_exists_text(7, 0xF100_0000_0000_00AB, 0),
            "PID 7 with SRVID 0xf1000000000000ab exists\n"
        );
        assert_eq!(
            process_exists_text(7, 1, -1),
            "PID 7 with SRVID 0x1 does not exist\n"
        );
    }
}
