//! Finding and running the event scripts of the events directory.
//!
//! Scripts live where Samba 4.17 keeps them, `<events_dir>/legacy/NN.name.script`, and,
//! for simplicity, directly in `<events_dir>/` as `NN.name` (or `NN.name.script`). A
//! script is *enabled* when its owner-execute bit is set (Samba checks `S_IXUSR`); a
//! disabled one is listed with status [`STATUS_DISABLED`] and not run. Enabled scripts run
//! in name order as `script <event> <args...>`, stdout and stderr on one pipe, and the
//! first one that fails ends the run: later scripts are neither run nor listed (as in
//! Samba's `run_event`).
//!
//! The timeout covers the whole run (Samba's event timeout): the script running when it
//! expires is killed with its whole process group and gets [`STATUS_TIMEDOUT`].
//!
//! Status values follow Samba 4.17 rather than the seed's `MONITOR_SCRIPT_TIMEOUT` (1),
//! which a script exiting with 1 could not be told apart from: an exit status, or a
//! negative errno: `-ETIMEDOUT` timed out, `-ENOEXEC` disabled, `-ECANCELED` cancelled
//! (another event pre-empted a monitor run, or the daemon is stopping), `-EINTR` killed
//! by a signal, `-EPERM` not trusted (below), `-errno` could not be started.
//!
//! **Only trusted scripts run.** A script (the file itself, after symbolic links), the
//! directory it is listed in and the directory it really lives in must belong to root
//! or the daemon's user and not be writable by group or others, and so must every
//! directory above them (writable by others only if sticky; see
//! `ctdb_common::secure`). Otherwise the script is not run: it gets
//! [`STATUS_UNTRUSTED`], its output says which path and why, the log too, and the run
//! fails as for a script that cannot be started.
//!
//! **Scripts get a clean environment**: nothing of the daemon's but the `CTDB_*`
//! variables (Samba's scripts read `CTDB_BASE`, `CTDB_SOCKET`, `CTDB_SCRIPT_VARDIR`,
//! ...), `CTDB_BASE` set to Samba's `/etc/ctdb` when the daemon has none, and `PATH`
//! set to [`SCRIPT_PATH`].

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ctdb_protocol::control::{Script, ScriptList, Timeval};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `MAX_SCRIPT_NAME`: longest script name on the wire.
pub const MAX_SCRIPT_NAME: usize = 31;
/// `MAX_SCRIPT_OUTPUT`: bytes of output kept per script.
pub const MAX_SCRIPT_OUTPUT: usize = 511;

/// The script ran past the event's timeout and was killed.
pub const STATUS_TIMEDOUT: i32 = -(Errno::ETIMEDOUT as i32);
/// The script is not executable: skipped.
pub const STATUS_DISABLED: i32 = -(Errno::ENOEXEC as i32);
/// The run was cancelled (monitor pre-empted by another event, or shutdown).
pub const STATUS_CANCELED: i32 = -(Errno::ECANCELED as i32);
/// The script was killed by a signal it did not get from us.
pub const STATUS_SIGNALED: i32 = -(Errno::EINTR as i32);
/// The script, or a directory it is in, could be changed by another user: not run.
pub const STATUS_UNTRUSTED: i32 = -(Errno::EPERM as i32);

/// `PATH` of every script.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment of every script (see the module documentation).
pub fn script_env() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let mut env: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| k.as_encoded_bytes().starts_with(b"CTDB_"))
        .collect();
    if !env.iter().any(|(k, _)| k == "CTDB_BASE") {
        env.push(("CTDB_BASE".into(), ctdb_common::config::SYSTEM_BASE.into()));
    }
    env.push(("PATH".into(), SCRIPT_PATH.into()));
    env
}

/// Why `script` may not run, if it may not (see the module documentation).
pub fn untrusted(script: &Path) -> Option<ctdb_common::secure::UnsafePath> {
    use ctdb_common::secure::{check_dir, check_owner_mode, Owners, UnsafePath};
    let check = || -> Result<(), UnsafePath> {
        if let Some(listed_in) = script.parent() {
            check_dir(listed_in, Owners::RootOrDaemon)?;
        }
        let real = std::fs::canonicalize(script).map_err(|source| UnsafePath::Io {
            path: script.to_path_buf(),
            source,
        })?;
        if let Some(lives_in) = real.parent() {
            check_dir(lives_in, Owners::RootOrDaemon)?;
        }
        let meta = std::fs::metadata(&real).map_err(|source| UnsafePath::Io {
            path: real.clone(),
            source,
        })?;
        check_owner_mode(&real, &meta, Owners::RootOrDaemon)
    };
    check().err()
}

/// How long output is still read after a script has exited (a background child that
/// kept the pipe open must not hold the run).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);
/// Longest run of the debug script on a timeout.
const DEBUG_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The subdirectory Samba 4.17 keeps its event scripts in.
pub const LEGACY_DIR: &str = "legacy";
const SCRIPT_SUFFIX: &str = ".script";
/// Left-overs of package managers and editors, never run.
const IGNORED_SUFFIXES: &[&str] = &[
    ".rpmnew",
    ".rpmsave",
    ".rpmorig",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".swp",
    ".orig",
    ".bak",
];

/// One script of the events directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// `NN.name`: what `ctdb scriptstatus` shows.
    pub name: String,
    pub path: PathBuf,
    pub enabled: bool,
}

/// Errors of [`set_script_enabled`].
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("invalid script name {0:?}")]
    InvalidName(String),
    #[error("no event script {0:?}")]
    NotFound(String),
    #[error("script {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// `NN.name`: two digits, a dot, then letters, digits, `_`, `-` or `.`.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 3
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b'.'
        && b[3..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && !IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The scripts of one directory: `(name, path, enabled)`, unsorted.
fn scan(dir: &Path, legacy: bool) -> io::Result<Vec<ScriptInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let name = match file_name.strip_suffix(SCRIPT_SUFFIX) {
            Some(stem) => stem.to_owned(),
            None if legacy => continue,
            None => file_name.clone(),
        };
        if !valid_name(&name) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks (Samba's legacy scripts are often links); broken ones are
        // not scripts.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(ScriptInfo {
            name,
            path,
            enabled: meta.permissions().mode() & 0o100 != 0,
        });
    }
    Ok(out)
}

/// Every script of `events_dir`, sorted by name. A name in both `legacy/` and the
/// directory itself is taken from `legacy/`. A missing directory has no scripts.
pub fn list_scripts(events_dir: &Path) -> io::Result<Vec<ScriptInfo>> {
    let mut by_name: HashMap<String, ScriptInfo> = HashMap::new();
    for (dir, legacy) in [
        (events_dir.to_path_buf(), false),
        (events_dir.join(LEGACY_DIR), true),
    ] {
        match scan(&dir, legacy) {
            Ok(scripts) => {
                for s in scripts {
                    by_name.insert(s.name.clone(), s);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut scripts: Vec<ScriptInfo> = by_name.into_values().collect();
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scripts)
}

/// Finds a script by its name (`NN.name`) or file name (`NN.name.script`).
pub fn find_script(events_dir: &Path, name: &str) -> Result<ScriptInfo, ScriptError> {
    let wanted = name.strip_suffix(SCRIPT_SUFFIX).unwrap_or(name);
    if name.contains('/') || !valid_name(wanted) {
        return Err(ScriptError::InvalidName(name.to_owned()));
    }
    let scripts = list_scripts(events_dir).map_err(|source| ScriptError::Io {
        name: name.to_owned(),
        source,
    })?;
    scripts
        .into_iter()
        .find(|s| s.name == wanted)
        .ok_or_else(|| ScriptError::NotFound(name.to_owned()))
}

/// ENABLE_SCRIPT / DISABLE_SCRIPT: sets the owner-execute bit, or clears every execute
/// bit, as Samba's ctdbd did.
pub fn set_script_enabled(
    events_dir: &Path,
    name: &str,
    enabled: bool,
) -> Result<ScriptInfo, ScriptError> {
    let script = find_script(events_dir, name)?;
    let io_err = |source| ScriptError::Io {
        name: script.name.clone(),
        source,
    };
    let mode = std::fs::metadata(&script.path)
        .map_err(io_err)?
        .permissions()
        .mode();
    let new_mode = if enabled { mode | 0o100 } else { mode & !0o111 };
    if new_mode != mode {
        std::fs::set_permissions(&script.path, std::fs::Permissions::from_mode(new_mode))
            .map_err(io_err)?;
    }
    Ok(ScriptInfo { enabled, ..script })
}

/// The outcome of one script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptResult {
    pub name: String,
    pub start: SystemTime,
    pub finished: SystemTime,
    /// 0, an exit status, or a negative errno (see the module documentation).
    pub status: i32,
    /// stdout and stderr, at most [`MAX_SCRIPT_OUTPUT`] bytes.
    pub output: String,
}

impl ScriptResult {
    /// A disabled script does not fail a run.
    pub fn failed(&self) -> bool {
        self.status != 0 && self.status != STATUS_DISABLED
    }

    /// Samba's word for the status, as `ctdb scriptstatus` prints it.
    pub fn status_text(&self) -> String {
        match self.status {
            0 => "OK".into(),
            STATUS_DISABLED => "DISABLED".into(),
            STATUS_TIMEDOUT => "TIMEDOUT".into(),
            STATUS_CANCELED => "CANCELLED".into(),
            s => format!("ERROR({s})"),
        }
    }

    /// The seed's `ctdb_script_wire`.
    pub fn to_wire(&self) -> Script {
        Script {
            name: truncate_str(&self.name, MAX_SCRIPT_NAME),
            start: timeval(self.start),
            finished: timeval(self.finished),
            status: self.status,
            output: truncate_str(&self.output, MAX_SCRIPT_OUTPUT),
        }
    }
}

/// The outcome of one event run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub event: String,
    pub args: Vec<String>,
    /// The scripts that ran (or were skipped as disabled), up to the first failure.
    pub scripts: Vec<ScriptResult>,
    /// 0 when every enabled script succeeded, else the failing script's status (or a
    /// negative errno when the events directory could not be read).
    pub status: i32,
}

impl RunResult {
    pub fn failed_script(&self) -> Option<&ScriptResult> {
        self.scripts.iter().find(|s| s.failed())
    }

    pub fn cancelled(&self) -> bool {
        self.status == STATUS_CANCELED
    }

    /// The seed's `ctdb_scripts_wire`.
    pub fn to_wire(&self) -> ScriptList {
        ScriptList {
            scripts: self.scripts.iter().map(ScriptResult::to_wire).collect(),
        }
    }

    /// One line for logs and health reasons: which script failed and what it said.
    pub fn summary(&self) -> String {
        match self.failed_script() {
            None if self.status == 0 => format!("event {} OK", self.event),
            None => format!("event {} failed with status {}", self.event, self.status),
            Some(s) => {
                let mut msg = format!(
                    "event {}: script {} failed: {}",
                    self.event,
                    s.name,
                    s.status_text()
                );
                let out = s.output.trim();
                if !out.is_empty() {
                    msg.push_str(": ");
                    msg.push_str(out);
                }
                msg
            }
        }
    }

    /// What a caller of RunEvent gets: the failing script's output, or else the output
    /// of every script that printed something.
    pub fn output(&self) -> String {
        match self.failed_script() {
            Some(s) => s.output.clone(),
            None => self
                .scripts
                .iter()
                .map(|s| s.output.as_str())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

fn timeval(t: SystemTime) -> Timeval {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timeval {
        sec: d.as_secs() as i64,
        usec: i64::from(d.subsec_micros()),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Captured bytes as text of at most [`MAX_SCRIPT_OUTPUT`] bytes.
fn output_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_SCRIPT_OUTPUT)];
    truncate_str(&String::from_utf8_lossy(bytes), MAX_SCRIPT_OUTPUT)
}

/// How long a script past its timeout has between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(1);

/// How to run an event.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Deadline for the whole run.
    pub timeout: Duration,
    /// Run as `debug_script <pid> <event>` before a timed-out script is killed.
    pub debug_script: Option<PathBuf>,
}

/// Kills a script's process group unless disarmed: on timeout, on cancellation, and
/// when the run's future is dropped.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    /// A script past its timeout: SIGTERM to its process group, so that it can clean
    /// up, then SIGKILL to whatever of the group is left once the script exited or
    /// [`TERM_GRACE`] passed.
    async fn terminate(&mut self, child: &mut tokio::process::Child) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGTERM);
            let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
        }
        self.kill();
    }
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Outcome {
    Exited(io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Reads the script's pipe to its end, keeping the first [`MAX_SCRIPT_OUTPUT`] bytes
/// and draining the rest so the script never blocks on a full pipe.
async fn read_output(mut pipe: tokio::net::unix::pipe::Receiver, buf: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                let room = MAX_SCRIPT_OUTPUT.saturating_sub(b.len());
                b.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

async fn run_debug_script(debug_script: &Path, pid: u32, event: &str) {
    if let Some(why) = untrusted(debug_script) {
        tracing::error!(script = %debug_script.display(), "debug script not run: {why}");
        return;
    }
    let child = Command::new(debug_script)
        .env_clear()
        .envs(script_env())
        .arg(pid.to_string())
        .arg(event)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(mut child) => {
            if tokio::time::timeout(DEBUG_SCRIPT_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                tracing::warn!(script = %debug_script.display(), "debug script timed out");
            }
        }
        Err(e) => {
            tracing::warn!(script = %debug_script.display(), error = %e, "cannot run debug script")
        }
    }
}

fn errno_status(e: &io::Error) -> i32 {
    -e.raw_os_error().unwrap_or(Errno::EIO as i32)
}

/// Runs one script until it exits, the deadline passes, or `cancel` fires.
async fn run_script(
    script: &ScriptInfo,
    event: &str,
    args: &[String],
    deadline: Instant,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> ScriptResult {
    let start = SystemTime::now();
    let done = |status: i32, output: String| ScriptResult {
        name: script.name.clone(),
        start,
        finished: SystemTime::now(),
        status,
        output,
    };
    if cancel.is_cancelled() {
        return done(STATUS_CANCELED, String::new());
    }
    if Instant::now() >= deadline {
        return done(STATUS_TIMEDOUT, String::new());
    }
    if let Some(why) = untrusted(&script.path) {
        tracing::error!(script = %script.name, "event script not run: {why}");
        return done(STATUS_UNTRUSTED, format!("not run: {why}"));
    }

    // One pipe for stdout and stderr, so the output keeps the order it was written in.
    let (read_fd, write_fd) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(fds) => fds,
        Err(e) => return done(-(e as i32), format!("cannot create a pipe: {e}")),
    };
    let write_fd2 = match write_fd.try_clone() {
        Ok(fd) => fd,
        Err(e) => return done(errno_status(&e), format!("cannot create a pipe: {e}")),
    };
    let mut cmd = Command::new(&script.path);
    cmd.env_clear()
        .envs(script_env())
        .arg(event)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_fd))
        .stderr(Stdio::from(write_fd2))
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = script.path.parent() {
        cmd.current_dir(dir);
    }
    // A script being written by someone else (or by a test) while another thread
    // forks can be briefly "text file busy": try again a few times.
    let mut spawned = cmd.spawn();
    for _ in 0..5 {
        match &spawned {
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                spawned = cmd.spawn();
            }
            _ => break,
        }
    }
    // The command holds our copies of the pipe's write end: drop them so the reader
    // sees the end of the output when the script (and its children) are gone.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return done(errno_status(&e), format!("cannot run {}: {e}", script.name)),
    };
    let pid = child.id().unwrap_or(0);
    let mut group = GroupKill(i32::try_from(pid).ok().map(Pid::from_raw));

    let buf = Arc::new(Mutex::new(Vec::new()));
    let reader = match tokio::net::unix::pipe::Receiver::from_owned_fd(read_fd) {
        Ok(pipe) => Some(tokio::spawn(read_output(pipe, buf.clone()))),
        Err(e) => {
            tracing::warn!(script = %script.name, error = %e, "cannot read script output");
            None
        }
    };

    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status),
        () = tokio::time::sleep_until(deadline) => Outcome::TimedOut,
        () = cancel.cancelled() => Outcome::Cancelled,
    };
    let status = match outcome {
        Outcome::Exited(Ok(st)) => {
            group.disarm();
            match (st.code(), st.signal()) {
                (Some(code), _) => code,
                _ => STATUS_SIGNALED,
            }
        }
        Outcome::Exited(Err(e)) => {
            group.kill();
            errno_status(&e)
        }
        Outcome::TimedOut => {
            tracing::warn!(script = %script.name, event, pid, "event script timed out");
            if let Some(debug) = &opts.debug_script {
                run_debug_script(debug, pid, event).await;
            }
            group.terminate(&mut child).await;
            let _ = child.wait().await;
            STATUS_TIMEDOUT
        }
        Outcome::Cancelled => {
            group.kill();
            let _ = child.wait().await;
            STATUS_CANCELED
        }
    };

    if let Some(reader) = reader {
        let abort = reader.abort_handle();
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            abort.abort();
        }
    }
    let bytes = std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()));
    done(status, output_text(&bytes))
}

/// Runs every enabled script of `events_dir` for `event`, in order, stopping at the
/// first failure.
pub async fn run_event(
    events_dir: &Path,
    event: &str,
    args: &[String],
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> RunResult {
    let deadline = Instant::now() + opts.timeout;
    let mut result = RunResult {
        event: event.to_owned(),
        args: args.to_vec(),
        scripts: Vec::new(),
        status: 0,
    };
    let scripts = match list_scripts(events_dir) {
        Ok(scripts) => scripts,
        Err(e) => {
            tracing::error!(dir = %events_dir.display(), error = %e, "cannot list event scripts");
            result.status = errno_status(&e);
            return result;
        }
    };
    for script in &scripts {
        if !script.enabled {
            let now = SystemTime::now();
            result.scripts.push(ScriptResult {
                name: script.name.clone(),
                start: now,
                finished: now,
                status: STATUS_DISABLED,
                output: String::new(),
            });
            continue;
        }
        let r = run_script(script, event, args, deadline, opts, cancel).await;
        let status = r.status;
        result.scripts.push(r);
        if status != 0 {
            result.status = status;
            break;
        }
    }
    result
}

/// Shared state of the runs: one event at a time, a monitor run pre-empted by any
/// other event, and the last completed run of each event.
#[derive(Debug)]
pub struct Runner {
    events_dir: PathBuf,
    opts: RunOptions,
    /// Held for the whole of a run: events never overlap.
    run_lock: tokio::sync::Mutex<()>,
    state: Mutex<RunnerState>,
    /// Cancels every run: the daemon is stopping.
    shutdown: CancellationToken,
}

#[derive(Debug, Default)]
struct RunnerState {
    last: HashMap<String, RunResult>,
    /// The monitor run in flight, to be cancelled when another event comes.
    monitor: Option<CancellationToken>,
    /// Non-monitor events waiting or running: a monitor that gets the lock while any
    /// wait is skipped.
    pending: usize,
}

impl Runner {
    pub fn new(events_dir: impl Into<PathBuf>, opts: RunOptions) -> Self {
        Self {
            events_dir: events_dir.into(),
            opts,
            run_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(RunnerState::default()),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn events_dir(&self) -> &Path {
        &self.events_dir
    }

    pub fn default_timeout(&self) -> Duration {
        self.opts.timeout
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RunnerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `event` now: a monitor run in flight is cancelled, any other event is
    /// waited for. `timeout` `None` is the configured script timeout. A `monitor` event
    /// asked for this way runs like a periodic one (and may be pre-empted too).
    pub async fn run(&self, event: &str, args: &[String], timeout: Option<Duration>) -> RunResult {
        if event == "monitor" {
            return self
                .monitor_run(args, timeout, false)
                .await
                .unwrap_or_else(|| cancelled_result(event, args));
        }
        let _pending = Pending::new(self);
        {
            let st = self.state();
            if let Some(monitor) = &st.monitor {
                tracing::info!(event, "cancelling the monitor run in flight");
                monitor.cancel();
            }
        }
        let _running = self.run_lock.lock().await;
        let cancel = self.shutdown.child_token();
        let result = self.run_locked(event, args, timeout, &cancel).await;
        if !result.cancelled() {
            self.state().last.insert(event.to_owned(), result.clone());
        }
        result
    }

    /// A periodic monitor run. `None` when it was skipped because another event is
    /// waiting, or cancelled by one (the run then counts for nothing: health and the
    /// last monitor status are left as they were, as in Samba).
    pub async fn run_monitor(&self) -> Option<RunResult> {
        self.monitor_run(&[], None, true).await
    }

    async fn monitor_run(
        &self,
        args: &[String],
        timeout: Option<Duration>,
        skip_if_busy: bool,
    ) -> Option<RunResult> {
        let _running = self.run_lock.lock().await;
        let cancel = {
            let mut st = self.state();
            if skip_if_busy && st.pending > 0 {
                tracing::debug!("monitor skipped: another event is waiting");
                return None;
            }
            let token = self.shutdown.child_token();
            st.monitor = Some(token.clone());
            token
        };
        let result = self.run_locked("monitor", args, timeout, &cancel).await;
        let mut st = self.state();
        st.monitor = None;
        if result.cancelled() {
            tracing::info!("monitor run cancelled");
            return None;
        }
        st.last.insert("monitor".to_owned(), result.clone());
        Some(result)
    }

    async fn run_locked(
        &self,
        event: &str,
        args: &[String],
        timeout: Option<Duration>,
        cancel: &CancellationToken,
    ) -> RunResult {
        let mut opts = self.opts.clone();
        if let Some(t) = timeout {
            opts.timeout = t;
        }
        let started = std::time::Instant::now();
        let result = run_event(&self.events_dir, event, args, &opts, cancel).await;
        let elapsed = started.elapsed();
        if result.status == 0 {
            tracing::debug!(event, ?args, ?elapsed, "event OK");
        } else if result.cancelled() {
            tracing::info!(event, ?args, ?elapsed, "event cancelled");
        } else {
            tracing::warn!(event, ?args, ?elapsed, "{}", result.summary());
        }
        result
    }

    /// The last completed run of `event`, if any.
    pub fn last_run(&self, event: &str) -> Option<RunResult> {
        self.state().last.get(event).cloned()
    }

    /// Cancels every run, now and later: scripts in flight are killed.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Counts a non-monitor event as pending for as long as it lives, even when the future
/// running it is dropped half-way.
struct Pending<'a>(&'a Runner);

impl<'a> Pending<'a> {
    fn new(runner: &'a Runner) -> Self {
        runner.state().pending += 1;
        Self(runner)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.state().pending -= 1;
    }
}

fn cancelled_result(event: &str, args: &[String]) -> RunResult {
    RunResult {
        event: event.to_owned(),
        args: args.to_vec(),
        scripts: Vec::new(),
        status: STATUS_CANCELED,
    }
}
