//! The recovery lock: only the node that holds it may lead, so two leaders never both
//! run recovery.
//!
//! Two forms, as in Samba's `recovery lock` setting:
//! - a path: an fcntl write lock (F_SETLK, byte 0, length 1, as Samba's
//!   `ctdb_mutex_fcntl_helper` takes it) on a file opened or created at the path, held by
//!   this process for as long as it leads. The kernel releases it when the process dies.
//! - `!helper args`: the helper is run with its args; it prints `0` when it holds the
//!   lock and keeps holding it while it runs. Any other first byte (`1` contended, `2`
//!   timeout, `3` error in Samba's helpers) or an exit means we do not hold it. Killing it
//!   releases the lock. It runs in its own process group, killed as a whole.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};

/// What the `recovery lock` setting names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockSpec {
    File(PathBuf),
    Helper(Vec<String>),
}

impl LockSpec {
    /// Parses the setting; `None` for an empty one (no lock).
    pub fn parse(setting: &str) -> Option<Self> {
        let setting = setting.trim();
        if let Some(command) = setting.strip_prefix('!') {
            let argv: Vec<String> = command.split_whitespace().map(str::to_string).collect();
            return (!argv.is_empty()).then_some(LockSpec::Helper(argv));
        }
        (!setting.is_empty()).then(|| LockSpec::File(PathBuf::from(setting)))
    }
}

/// The result of one attempt to take the lock.
#[derive(Debug)]
pub enum Attempt {
    Held(RecoveryLock),
    /// Someone else holds it.
    Contended,
    Failed(String),
}

/// A held recovery lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RecoveryLock {
    spec: LockSpec,
    held: Held,
}

#[derive(Debug)]
enum Held {
    File(File),
    Helper(Box<Helper>),
}

/// A running lock helper; its stdout stays open so that it never gets SIGPIPE.
#[derive(Debug)]
struct Helper {
    child: Child,
    _stdout: ChildStdout,
}

impl RecoveryLock {
    pub fn spec(&self) -> &LockSpec {
        &self.spec
    }

    /// Whether we still hold it: the helper still runs, or the lock file is still the
    /// file we locked (not removed or replaced).
    pub fn still_held(&mut self) -> Result<(), String> {
        match (&mut self.held, &self.spec) {
            (Held::File(file), LockSpec::File(path)) => {
                let ours = file.metadata().map_err(|e| e.to_string())?;
                let now = std::fs::metadata(path)
                    .map_err(|e| format!("lock file {}: {e}", path.display()))?;
                if (ours.dev(), ours.ino()) != (now.dev(), now.ino()) {
                    return Err(format!("lock file {} was replaced", path.display()));
                }
                Ok(())
            }
            (Held::Helper(helper), _) => match helper.child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!("lock helper exited ({status})")),
                Err(e) => Err(format!("lock helper: {e}")),
            },
            (Held::File(_), LockSpec::Helper(_)) => Err("inconsistent lock".into()),
        }
    }
}

impl Drop for RecoveryLock {
    fn drop(&mut self) {
        if let Held::Helper(helper) = &mut self.held {
            kill_helper(&mut helper.child);
        }
        // A file lock goes with its file descriptor.
    }
}

fn kill_helper(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let _ = child.start_kill();
}

/// Tries once to take the lock; a helper has `timeout` to answer.
pub async fn try_take(spec: &LockSpec, timeout: Duration) -> Attempt {
    let held = match spec {
        LockSpec::File(path) => lock_file(path),
        LockSpec::Helper(argv) => run_helper(argv, timeout).await,
    };
    match held {
        Ok(held) => Attempt::Held(RecoveryLock {
            spec: spec.clone(),
            held,
        }),
        Err(attempt) => attempt,
    }
}

fn lock_file(path: &Path) -> Result<Held, Attempt> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Attempt::Failed(format!("cannot open {}: {e}", path.display())))?;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    };
    match fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&lock)) {
        Ok(_) => Ok(Held::File(file)),
        Err(Errno::EAGAIN | Errno::EACCES) => Err(Attempt::Contended),
        Err(e) => Err(Attempt::Failed(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

async fn run_helper(argv: &[String], timeout: Duration) -> Result<Held, Attempt> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Attempt::Failed(format!("cannot run lock helper {}: {e}", argv[0])))?;
    let Some(mut stdout) = child.stdout.take() else {
        kill_helper(&mut child);
        return Err(Attempt::Failed("lock helper has no stdout".into()));
    };
    let mut byte = [0u8; 1];
    let answer = tokio::time::timeout(timeout, stdout.read(&mut byte)).await;
    let result = match answer {
        Ok(Ok(1)) if byte[0] == b'0' => {
            return Ok(Held::Helper(Box::new(Helper {
                child,
                _stdout: stdout,
            })))
        }
        Ok(Ok(1)) if byte[0] == b'1' => Attempt::Contended,
        Ok(Ok(1)) => Attempt::Failed(format!("lock helper answered {:?}", char::from(byte[0]))),
        Ok(Ok(_)) => Attempt::Failed("lock helper exited without answering".into()),
        Ok(Err(e)) => Attempt::Failed(format!("reading the lock helper: {e}")),
        Err(_) => Attempt::Failed(format!("lock helper did not answer within {timeout:?}")),
    };
    kill_helper(&mut child);
    let _ = child.wait().await;
    Err(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::Stdio;

    fn held(a: &Attempt) -> bool {
        matches!(a, Attempt::Held(_))
    }

    #[test]
    fn the_setting_names_a_file_or_a_helper() {
        assert_eq!(LockSpec::parse(""), None);
        assert_eq!(LockSpec::parse("  "), None);
        assert_eq!(LockSpec::parse("!"), None);
        assert_eq!(
            LockSpec::parse("/shared/.reclock"),
            Some(LockSpec::File("/shared/.reclock".into()))
        );
        assert_eq!(
            LockSpec::parse("!/usr/bin/helper  a b"),
            Some(LockSpec::Helper(vec![
                "/usr/bin/helper".into(),
                "a".into(),
                "b".into()
            ]))
        );
    }

    /// Another process holds the fcntl lock: we cannot take it until it goes.
    #[tokio::test]
    async fn a_file_lock_held_by_another_process_is_contended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reclock");
        let spec = LockSpec::File(path.clone());
        let script = "import fcntl,os,sys,time\n\
                      fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT,0o600)\n\
                      fcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB,1,0)\n\
                      print('locked',flush=True)\n\
                      time.sleep(60)\n";
        let mut other = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(other.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("python answers");
        assert_eq!(line.trim(), "locked");

        let attempt = try_take(&spec, Duration::from_secs(5)).await;
        assert!(matches!(attempt, Attempt::Contended), "{attempt:?}");

        other.kill().expect("kill");
        other.wait().expect("wait");
        let attempt = try_take(&spec, Duration::from_secs(5)).await;
        let Attempt::Held(mut lock) = attempt else {
            panic!("lock not taken: {attempt:?}")
        };
        lock.still_held().expect("held");

        // Now another process cannot take it from us.
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl,os,sys\n\
                 fd=os.open(sys.argv[1],os.O_RDWR)\n\
                 fcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB,1,0)\n",
            ])
            .arg(&path)
            .stderr(Stdio::null())
            .status()
            .expect("python3");
        assert!(!status.success(), "another process took our lock");

        // Removing the lock file means the lock is lost.
        std::fs::remove_file(&path).expect("rm");
        assert!(lock.still_held().is_err());
        drop(lock);
        assert!(held(&try_take(&spec, Duration::from_secs(5)).await));
    }

    fn helper(dir: &Path, name: &str, body: &str) -> LockSpec {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write helper");
        let mut perm = std::fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).expect("chmod");
        LockSpec::parse(&format!("!{} {}", path.display(), dir.display())).expect("spec")
    }

    /// A helper that prints 0 holds the lock while it runs; one that prints 1 or exits
    /// does not give it; killing it releases it.
    #[tokio::test]
    async fn the_helper_form_holds_the_lock_while_the_helper_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The helper's own lock: a marker directory (mkdir is atomic); it runs `sleep`
        // children, which must die with it.
        let spec = helper(
            dir.path(),
            "mkdir.sh",
            "if mkdir \"$1/held\" 2>/dev/null; then\n\
             echo 0\n\
             while :; do sleep 0.1; done\n\
             else echo 1; fi",
        );
        let Attempt::Held(mut lock) = try_take(&spec, Duration::from_secs(5)).await else {
            panic!("helper lock not taken")
        };
        lock.still_held().expect("helper runs");
        assert!(dir.path().join("held").exists());
        let second = try_take(&spec, Duration::from_secs(5)).await;
        assert!(matches!(second, Attempt::Contended), "{second:?}");
        drop(lock);
        // SIGKILL leaves the marker behind: remove it, as a real helper's lock would go.
        std::fs::remove_dir(dir.path().join("held")).expect("marker");
        let again = try_take(&spec, Duration::from_secs(5)).await;
        assert!(held(&again), "{again:?}");
        drop(again);

        let failing = helper(dir.path(), "fail.sh", "exit 3");
        assert!(matches!(
            try_take(&failing, Duration::from_secs(5)).await,
            Attempt::Failed(_)
        ));
        let silent = helper(dir.path(), "silent.sh", "sleep 30");
        assert!(matches!(
            try_take(&silent, Duration::from_millis(300)).await,
            Attempt::Failed(_)
        ));
        let dies = helper(dir.path(), "dies.sh", "echo 0; sleep 0.2");
        let Attempt::Held(mut lock) = try_take(&dies, Duration::from_secs(5)).await else {
            panic!("helper lock not taken")
        };
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(lock.still_held().is_err(), "a dead helper holds nothing");
    }
}
