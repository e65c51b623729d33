//! Harness for integration tests: runs real ctdb-rs nodes from the built binaries.
//!
//! The binaries come from the same target directory as the test (`cargo build --bins`
//! first; `scripts/test.sh` does). Every node lives in its own temporary CTDB_BASE and
//! is stopped when its handle drops, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctdb_client::Client;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The directory holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// One ctdb-rs node run by its supervisor `ctdbd`.
pub struct TestNode {
    pub base: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    /// Starts a one-node cluster on 127.0.0.1 with `ctdb.conf` holding `extra_conf`.
    pub fn start(extra_conf: &str) -> Self {
        let base = tempfile::Builder::new()
            .prefix("ctdb-rs-test")
            .tempdir()
            .expect("temp dir");
        let dir = base.path();
        std::fs::write(dir.join("nodes"), "127.0.0.1\n").expect("nodes file");
        std::fs::write(dir.join("ctdb.conf"), extra_conf).expect("ctdb.conf");
        std::fs::create_dir_all(dir.join("events")).expect("events dir");
        let socket = dir.join("ctdb.socket");
        let child = Command::new(bin("ctdbd"))
            .env("CTDB_BASE", dir)
            .env("CTDB_SOCKET", &socket)
            .env(
                "CTDB_LOGGING_LOCATION",
                format!("file:{}", dir.join("log.ctdb").display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ctdbd");
        Self {
            base,
            socket,
            child: Some(child),
        }
    }

    pub fn dir(&self) -> &Path {
        self.base.path()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir().join("run")
    }

    /// The pid of one component, from the pid file its supervisor writes.
    pub fn component_pid(&self, component: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir().join(format!("{component}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Kills one component with SIGKILL and returns its old pid.
    pub fn kill_component(&self, component: &str) -> i32 {
        let pid = self
            .component_pid(component)
            .unwrap_or_else(|| panic!("no pid file for {component}"));
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill component");
        pid
    }

    /// Waits until a client can connect and the node has finished its first recovery.
    pub async fn ready(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = Client::connect(&self.socket).await {
                let here = ctdb_protocol::flags::dest::CURRENT_NODE;
                if let (Ok(0), Ok(map)) = (
                    client.get_recmode(here).await,
                    client.get_vnnmap(here).await,
                ) {
                    if map.generation != ctdb_protocol::flags::INVALID_GENERATION {
                        return client;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "node did not become ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("log.ctdb")).unwrap_or_default()
    }

    /// Runs a `ctdb` tool (ours or Samba's) against this node.
    pub fn tool(&self, program: &Path, args: &[&str]) -> std::process::Output {
        Command::new(program)
            .args(args)
            .env("CTDB_SOCKET", &self.socket)
            .env("CTDB_BASE", self.dir())
            .stdin(Stdio::null())
            .output()
            .expect("run ctdb tool")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Samba's `ctdb` tool, when installed (CI installs the Debian package `ctdb`).
pub fn samba_ctdb() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/ctdb");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Samba's ctdb tool (Debian package `ctdb`)"
    );
    eprintln!("skipping: Samba's ctdb tool is not installed");
    None
}
