//! `ctdb event run|status|script list|enable|disable` and `ctdb scriptstatus`: Samba
//! 4.17's event commands, which talk to the event daemon's own socket
//! (`<run dir>/eventd.socket`, the protocol of [`ctdb_protocol::event_daemon`]) rather
//! than to the node, or work on the events directory itself. Output and exit codes are
//! those of Samba's `ctdb-event` helper.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ctdb_protocol::event_daemon::{
    frame_length, Message, Reply, Request, RunRequest, ScriptStatus, StatusRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{CmdResult, Fail};
use crate::format::{ctime, Tz};
use crate::out;

const ENOENT: i32 = 2;
const EIO: i32 = 5;
const ENOEXEC: i32 = 8;
const EINVAL: i32 = 22;
const ECANCELED: i32 = 125;
const ETIMEDOUT: i32 = 110;
/// A reply longer than this is not one (a status of many scripts is a few KiB).
const MAX_REPLY: usize = 4 << 20;

const USAGE_HEAD: &str = "Usage: ctdb-event [-h] [-h|--help]
        [-d|--debug=ERROR|WARNING|NOTICE|INFO|DEBUG] <command> [<args>]

";
const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "run",
        "<timeout> <component> <event> <args>",
        "Run an event",
    ),
    ("status", "<component> <event>", "Get status of an event"),
    ("script list", "<component>", "List event scripts"),
    (
        "script enable",
        "<component> <script>",
        "Enable an event script",
    ),
    (
        "script disable",
        "<component> <script>",
        "Disable an event script",
    ),
];

/// The usage of one subcommand, as the helper prints it.
fn usage_of(name: &str) -> Fail {
    if let Some((cmd, args, help)) = COMMANDS.iter().find(|(c, _, _)| *c == name) {
        let left = format!("{cmd} {args}");
        out(&format!("{USAGE_HEAD}  {left}     {help}\n"));
    }
    Fail::quiet(1)
}

fn usage_all() -> Fail {
    let mut text = String::from(
        "Usage: ctdb-event [<options>] <command> [<args>]

Help Options:
  -h, --help                                      Show this help message

Options:
  -d, --debug=ERROR|WARNING|NOTICE|INFO|DEBUG     debug level

Commands:
",
    );
    for (cmd, args, help) in COMMANDS {
        text.push_str(&format!("  {:<44} {help}\n", format!("{cmd} {args}")));
    }
    out(&text);
    Fail::quiet(1)
}

/// Where the node's configuration puts the event daemon's socket and the scripts.
struct Paths {
    socket: PathBuf,
    /// `events/` of the configuration directory.
    events: PathBuf,
    /// Scripts shipped to be enabled by a link (Samba's data directory).
    shipped: PathBuf,
}

fn paths() -> Paths {
    let config = ctdb_common::Config::load().ok();
    let run_dir = config
        .as_ref()
        .map(|c| c.run_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/run/ctdb"));
    let events = config
        .as_ref()
        .map(|c| c.event.events_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/etc/ctdb/events"));
    let base = std::env::var_os("CTDB_BASE").map(PathBuf::from);
    let shipped = match (&base, std::env::var_os("CTDB_TEST_MODE")) {
        (Some(base), Some(_)) => base.join("share/events"),
        _ => PathBuf::from("/usr/share/ctdb/events"),
    };
    Paths {
        socket: run_dir.join("eventd.socket"),
        events,
        shipped,
    }
}

/// Samba's `ctdb` runs its event helper as a child and reads the child's exit code as
/// its own helpers report errors: 64 and above is an error code plus 64 (so the
/// helper's ETIMEDOUT, 110, comes out as 46, with a line on stderr). Users' scripts see
/// those codes; ours gives the same.
fn as_helper_exit(result: CmdResult) -> CmdResult {
    match result {
        Ok(code) if (64..255).contains(&code) => Err(Fail::new(
            format!("event daemon helper failed with error {}", code - 64),
            code - 64,
        )),
        other => other,
    }
}

/// `ctdb event ...`; `args` follow the word `event`.
pub async fn event(args: &[String], tz: Tz) -> CmdResult {
    as_helper_exit(event_helper(&paths(), args, tz).await)
}

async fn event_helper(p: &Paths, args: &[String], tz: Tz) -> CmdResult {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["run", rest @ ..] => {
            if rest.len() < 3 {
                return Err(usage_of("run"));
            }
            run(p, rest).await
        }
        ["status", rest @ ..] => match rest {
            [component, event] => status(p, component, event, tz).await,
            _ => Err(usage_of("status")),
        },
        ["script", "list", rest @ ..] => match rest {
            [component] => script_list(p, component),
            _ => Err(usage_of("script list")),
        },
        ["script", "enable", rest @ ..] => match rest {
            [component, script] => script_enable(p, component, script),
            _ => Err(usage_of("script enable")),
        },
        ["script", "disable", rest @ ..] => match rest {
            [component, script] => script_disable(p, component, script),
            _ => Err(usage_of("script disable")),
        },
        _ => Err(usage_all()),
    }
}

/// `ctdb scriptstatus [event]`: the legacy component's last run of the event
/// (`monitor`), always exit code 0 once the daemon answered, as Samba's.
pub async fn scriptstatus(event: &str, tz: Tz) -> CmdResult {
    match as_helper_exit(status(&paths(), "legacy", event, tz).await) {
        Ok(_) => Ok(0),
        // Samba's tool ignores the helper's exit code here, once it has said why.
        Err(f) => {
            if !f.msg.is_empty() {
                crate::err(&format!("{}\n", f.msg));
            }
            Ok(0)
        }
    }
}

async fn exchange(p: &Paths, request: Request) -> Result<Reply, Fail> {
    let socket = &p.socket;
    let mut stream = UnixStream::connect(&socket).await.map_err(|_| {
        Fail::new(
            format!(
                "socket connect failed - {}\nFailed to initialize event client, ret={EIO}",
                socket.display()
            ),
            EIO,
        )
    })?;
    let reqid = std::process::id();
    let message = Message {
        version: 0,
        reqid,
        body: request,
    };
    let broken = |what: &str| Fail::new(format!("event daemon {what}"), EIO);
    stream
        .write_all(&message.to_bytes())
        .await
        .map_err(|_| broken("connection lost"))?;
    let mut buf = vec![0u8; 4];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|_| broken("connection lost"))?;
    let len = frame_length(&buf).unwrap_or(0);
    if !(12..=MAX_REPLY).contains(&len) {
        return Err(broken("sent a malformed reply"));
    }
    buf.resize(len, 0);
    stream
        .read_exact(&mut buf[4..])
        .await
        .map_err(|_| broken("connection lost"))?;
    let reply = Message::<Reply>::from_bytes(&buf).map_err(|_| broken("sent a malformed reply"))?;
    if reply.reqid != reqid {
        return Err(broken("answered another request"));
    }
    Ok(reply.body)
}

async fn run(p: &Paths, args: &[&str]) -> CmdResult {
    let (timeout, component, event) = (args[0], args[1], args[2]);
    let rest = &args[3..];
    // Like atoi(): a number, or 0.
    let timeout = timeout
        .parse::<i64>()
        .unwrap_or(0)
        .clamp(0, i64::from(u32::MAX)) as u32;
    let request = Request::Run(RunRequest {
        component: component.to_string(),
        event: event.to_string(),
        args: (!rest.is_empty()).then(|| rest.join(" ")),
        timeout,
        flags: 0,
    });
    let Reply::Run { result } = exchange(p, request).await? else {
        return Err(Fail::new("event daemon answered another command", EIO));
    };
    match result {
        0 => {}
        ENOENT => out(&format!("Event dir for {component} does not exist\n")),
        ETIMEDOUT => out(&format!("Event {event} in {component} timed out\n")),
        ECANCELED => out(&format!("Event {event} in {component} got cancelled\n")),
        ENOEXEC => out(&format!("Event {event} in {component} failed\n")),
        r => out(&format!(
            "Failed to run event {event} in {component}, result={r}\n"
        )),
    }
    Ok(result.abs())
}

async fn status(p: &Paths, component: &str, event: &str, tz: Tz) -> CmdResult {
    let request = Request::Status(StatusRequest {
        component: component.to_string(),
        event: event.to_string(),
    });
    let Reply::Status { result, status } = exchange(p, request).await? else {
        return Err(Fail::new("event daemon answered another command", EIO));
    };
    let status = match (result, status) {
        (0, Some(status)) => status,
        (ENOENT, _) => {
            out(&format!("Event dir for {component} does not exist\n"));
            return Ok(result);
        }
        (EINVAL, _) => {
            out(&format!("Event {event} has never run in {component}\n"));
            return Ok(result);
        }
        (r, _) => {
            out(&format!(
                "Unknown error ({r}) for event {event} in {component}\n"
            ));
            return Ok(r);
        }
    };
    let mut text = String::new();
    for script in &status.scripts {
        text.push_str(&status_line(script, tz));
    }
    out(&text);
    Ok(status.summary.abs())
}

fn seconds(s: &ScriptStatus) -> f64 {
    (s.end.sec - s.begin.sec) as f64 + (s.end.usec - s.begin.usec) as f64 * 1.0e-6
}

/// One script of `event status`: name, state, duration and start time, and the output
/// of one that did not succeed.
fn status_line(s: &ScriptStatus, tz: Tz) -> String {
    let started = ctime(s.begin.sec, tz);
    let mut line = match s.result {
        r if r == -ETIMEDOUT => format!("{:<20} {:<10} {started}\n", s.name, "TIMEDOUT"),
        r if r == -ENOEXEC => format!("{:<20} {:<10}\n", s.name, "DISABLED"),
        r if r < 0 => format!("{:<20} {:<10} ({})\n", s.name, "CANNOT RUN", errno_text(-r)),
        0 => format!("{:<20} {:<10} {:.3} {started}\n", s.name, "OK", seconds(s)),
        _ => format!(
            "{:<20} {:<10} {:.3} {started}\n",
            s.name,
            "ERROR",
            seconds(s)
        ),
    };
    if s.result != 0 && s.result != -ENOEXEC {
        line.push_str(&format!("  OUTPUT: {}\n", s.output));
    }
    line
}

fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    text.split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The scripts (`NN.name.script`) of one directory, sorted, with whether each is
/// executable; a missing directory is `Err(ENOENT)`.
fn scripts_in(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, i32> {
    let entries = std::fs::read_dir(dir).map_err(|e| e.raw_os_error().unwrap_or(EIO))?;
    let mut scripts = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".script") else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        scripts.push((
            name.to_string(),
            path,
            meta.permissions().mode() & 0o100 != 0,
        ));
    }
    scripts.sort();
    Ok(scripts)
}

/// `event script list <component>`: the shipped scripts (`*` when linked into the
/// configuration), a blank line, then the configuration's own (`*` when executable).
fn script_list(p: &Paths, component: &str) -> CmdResult {
    let shipped = match scripts_in(&p.shipped.join(component)) {
        Ok(list) => Some(list),
        Err(ENOENT) => None,
        Err(e) => {
            return Err(Fail::new(
                format!("Command script list finished with result={e}"),
                e,
            ))
        }
    };
    let local = scripts_in(&p.events.join(component))
        .map_err(|e| Fail::new(format!("Command script list finished with result={e}"), e))?;
    let mut text = String::new();
    let mut linked = Vec::new();
    if let Some(shipped) = &shipped {
        for (name, path, _) in shipped {
            let enabled = local.iter().any(|(n, p, _)| {
                n == name && std::fs::read_link(p).is_ok_and(|target| &target == path)
            });
            if enabled {
                linked.push(name.clone());
            }
            text.push_str(&format!("{} {name}\n", if enabled { '*' } else { ' ' }));
        }
        if !shipped.is_empty() && linked.len() != local.len() {
            text.push('\n');
        }
    }
    for (name, _, enabled) in &local {
        if linked.contains(name) {
            continue;
        }
        text.push_str(&format!("{} {name}\n", if *enabled { '*' } else { ' ' }));
    }
    out(&text);
    Ok(0)
}

/// `<dir>/<component>/<script>.script`.
fn script_file(dir: &Path, component: &str, script: &str) -> PathBuf {
    dir.join(component).join(format!("{script}.script"))
}

/// `event script enable`: sets the execute bit of a local script, or links a shipped
/// one into the configuration.
fn script_enable(p: &Paths, component: &str, script: &str) -> CmdResult {
    let path = script_file(&p.events, component, script);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(0),
        Ok(meta) if meta.is_file() => set_exec(&path, component, script, true),
        Ok(_) => {
            out(&format!(
                "Script {} is not a file or a link\n",
                path.display()
            ));
            Ok(EINVAL)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let shipped = script_file(&p.shipped, component, script);
            if !shipped.exists() {
                out(&format!("Script {script} does not exist in {component}\n"));
                return Ok(ENOENT);
            }
            if std::os::unix::fs::symlink(&shipped, &path).is_err() {
                out(&format!("Failed to create symlink {}\n", path.display()));
                return Ok(EIO);
            }
            Ok(0)
        }
        Err(_) => {
            out(&format!("Script {} does not exist\n", path.display()));
            Ok(EINVAL)
        }
    }
}

/// `event script disable`: removes a link to a shipped script, or clears the execute
/// bits of a local one. A script that is not there is already disabled.
fn script_disable(p: &Paths, component: &str, script: &str) -> CmdResult {
    let path = script_file(&p.events, component, script);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::remove_file(&path).is_err() {
                out(&format!("Failed to remove symlink {}\n", path.display()));
                return Ok(EIO);
            }
            Ok(0)
        }
        Ok(meta) if meta.is_file() => set_exec(&path, component, script, false),
        Ok(_) => {
            out(&format!(
                "Script {} is not a file or a link\n",
                path.display()
            ));
            Ok(EINVAL)
        }
        Err(_) => Ok(0),
    }
}

fn set_exec(path: &Path, component: &str, script: &str, enable: bool) -> CmdResult {
    let valid = script.len() > 3
        && script.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && script.as_bytes()[2] == b'.';
    if !valid {
        out(&format!("Script {script} is invalid in {component}\n"));
        return Ok(EINVAL);
    }
    let result = std::fs::metadata(path).and_then(|meta| {
        let mode = meta.permissions().mode();
        let mode = if enable { mode | 0o111 } else { mode & !0o111 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    });
    match result {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out(&format!("Script {script} does not exist in {component}\n"));
            Ok(ENOENT)
        }
        Err(e) => Ok(e.raw_os_error().unwrap_or(EIO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctdb_protocol::control::Timeval;

    fn script(name: &str, result: i32, output: &str) -> ScriptStatus {
        ScriptStatus {
            name: name.into(),
            begin: Timeval {
                sec: 1_796_000_000,
                usec: 100_000,
            },
            end: Timeval {
                sec: 1_796_000_000,
                usec: 107_000,
            },
            result,
            output: output.into(),
        }
    }

    #[test]
    fn status_lines_are_samba_s() {
        let utc = crate::format::utc;
        // Samba 4.17's ctdb-event printed these for the same results (times aside).
        assert_eq!(
            status_line(&script("01.hello", 0, "hi\n"), utc),
            "01.hello             OK         0.007 Mon Nov 30 00:53:20 2026\n"
        );
        assert_eq!(
            status_line(&script("02.off", -8, ""), utc),
            "02.off               DISABLED  \n"
        );
        assert_eq!(
            status_line(&script("05.failmon", 3, "bad thing\n"), utc),
            "05.failmon           ERROR      0.007 Mon Nov 30 00:53:20 2026\n  OUTPUT: bad thing\n\n"
        );
        assert_eq!(
            status_line(&script("03.slow", -110, ""), utc),
            "03.slow              TIMEDOUT   Mon Nov 30 00:53:20 2026\n  OUTPUT: \n"
        );
    }
}
