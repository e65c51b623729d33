//! `scriptstatus`: the monitor event's scripts (GET_EVENT_SCRIPT_STATUS).
//!
//! Samba 4.17's `ctdb scriptstatus` runs `ctdb event status legacy monitor` against
//! its event daemon; ctdb-rs answers GET_EVENT_SCRIPT_STATUS instead, so this prints
//! the format the `ctdb` tool used for that control (Samba 4.2 and before):
//!
//! ```text
//! 2 scripts were executed last monitor cycle
//! 00.ctdb              Status:OK    Duration:0.012 Wed Nov 25 02:47:57 2026
//! 10.interface         Status:ERROR    Duration:0.003 Wed Nov 25 02:47:57 2026
//!    OUTPUT:ip link failed
//! ```
//!
//! Status: OK (0), ERROR (> 0), TIMEDOUT (-ETIME), DISABLED (-ENOEXEC, no duration or
//! time), or `CANNOT RUN (errno text)` for any other negative errno.

use ctdb_protocol::control::{Script, ScriptList, Timeval};

use super::{ctime, Machine, Tz};

const ETIME: i32 = 62;
const ENOEXEC: i32 = 8;

fn delta(later: &Timeval, earlier: &Timeval) -> f64 {
    (later.sec - earlier.sec) as f64 + (later.usec - earlier.usec) as f64 * 1.0e-6
}

fn status_word(s: &Script) -> Option<&'static str> {
    match s.status {
        0 => Some("OK"),
        x if x == -ETIME => Some("TIMEDOUT"),
        x if x == -ENOEXEC => Some("DISABLED"),
        x if x > 0 => Some("ERROR"),
        _ => None,
    }
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `ctdb scriptstatus` for `event` (`monitor`).
pub fn scriptstatus_text(event: &str, list: &ScriptList, tz: Tz, machine: Machine<'_>) -> String {
    if let Some(sep) = machine {
        let mut out = machine_header(sep);
        for s in &list.scripts {
            let fields = [
                event.to_string(),
                s.name.clone(),
                s.status.to_string(),
                status_word(s).unwrap_or("CANNOT RUN").to_string(),
                format!("{}.{:06}", s.start.sec, s.start.usec),
                format!("{}.{:06}", s.finished.sec, s.finished.usec),
                s.output.clone(),
            ];
            out.push_str(&super::machine_line(sep, &fields));
        }
        return out;
    }
    let mut out = format!(
        "{} scripts were executed last {event} cycle\n",
        list.scripts.len()
    );
    for s in &list.scripts {
        match status_word(s) {
            Some(w) => out.push_str(&format!("{:<20} Status:{w}    ", s.name)),
            None => out.push_str(&format!(
                "{:<20} Status:CANNOT RUN ({})",
                s.name,
                errno_text(-s.status)
            )),
        }
        if s.status >= 0 {
            out.push_str(&format!("Duration:{:.3} ", delta(&s.finished, &s.start)));
        }
        if s.status != -ENOEXEC {
            out.push_str(&ctime(s.start.sec, tz));
            out.push('\n');
            if s.status != 0 {
                out.push_str(&format!("   OUTPUT:{}\n", s.output));
            }
        } else {
            out.push('\n');
        }
    }
    out
}

fn machine_header(sep: &str) -> String {
    super::machine_line(
        sep,
        &[
            "Type",
            "Name",
            "Code",
            "Status",
            "Start",
            "End",
            "Error Output...",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::utc;

    fn script(name: &str, status: i32, output: &str) -> Script {
        Script {
            name: name.into(),
            start: Timeval {
                sec: 1_795_574_877,
                usec: 0,
            },
            finished: Timeval {
                sec: 1_795_574_877,
                usec: 12_000,
            },
            status,
            output: output.into(),
        }
    }

    #[test]
    fn human_form() {
        let list = ScriptList {
            scripts: vec![
                script("00.ctdb", 0, ""),
                script("10.interface", 1, "ip link failed"),
                script("20.multipathd", -ENOEXEC, ""),
                script("30.slow", -ETIME, "timed out"),
            ],
        };
        let expected = "4 scripts were executed last monitor cycle
00.ctdb              Status:OK    Duration:0.012 Wed Nov 25 02:47:57 2026
10.interface         Status:ERROR    Duration:0.012 Wed Nov 25 02:47:57 2026
   OUTPUT:ip link failed
20.multipathd        Status:DISABLED    
30.slow              Status:TIMEDOUT    Wed Nov 25 02:47:57 2026
   OUTPUT:timed out
";
        assert_eq!(scriptstatus_text("monitor", &list, utc, None), expected);
        assert_eq!(
            scriptstatus_text("monitor", &ScriptList::default(), utc, None),
            "0 scripts were executed last monitor cycle\n"
        );
    }

    #[test]
    fn machine_form() {
        let list = ScriptList {
            scripts: vec![script("00.ctdb", 0, "")],
        };
        assert_eq!(
            scriptstatus_text("monitor", &list, utc, Some("|")),
            "|Type|Name|Code|Status|Start|End|Error Output...|
|monitor|00.ctdb|0|OK|1795574877.000000|1795574877.012000||
"
        );
    }
}
