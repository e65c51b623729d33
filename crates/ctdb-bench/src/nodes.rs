//! The two nodes a comparison runs against, each stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A one-node ctdb-rs started from the `ctdbd` beside this binary.
pub struct OurNode {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl OurNode {
    /// `db_in_transport`: run the database component inside transport's process.
    pub fn start(db_in_transport: bool) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("ctdb-bench-rs")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("nodes"), "127.0.0.1\n").map_err(|e| e.to_string())?;
        let socket = dir.path().join("ctdb.socket");
        let ctdbd = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("ctdbd")))
            .ok_or("cannot find ctdbd beside ctdb-bench")?;
        let child = Command::new(&ctdbd)
            .env("CTDB_BASE", dir.path())
            .env("CTDB_SOCKET", &socket)
            .env("CTDB_LOG_LEVEL", "ERROR")
            .env(
                "CTDB_DB_IN_TRANSPORT",
                if db_in_transport { "yes" } else { "no" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", ctdbd.display()))?;
        Ok(Self {
            _dir: dir,
            socket,
            child,
        })
    }

    pub async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(c) = ctdb_client::Client::connect(&self.socket).await {
                let here = ctdb_protocol::flags::dest::CURRENT_NODE;
                if matches!(c.get_recmode(here).await, Ok(0)) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("ctdb-rs node did not become ready".into())
    }
}

impl Drop for OurNode {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A one-node Samba ctdbd started with shared/tools/samba-cluster.sh on 127.0.5.1.
pub struct SambaNode {
    dir: tempfile::TempDir,
    script: PathBuf,
    pub socket: PathBuf,
}

impl SambaNode {
    pub fn start(script: &Path) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("ctdb-bench-samba")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let status = Command::new("sh")
            .arg(script)
            .args(["start"])
            .arg(dir.path())
            .args(["1", "127.0.5"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!("{} start failed: {status}", script.display()));
        }
        let socket = dir.path().join("node.0/run/ctdbd.socket");
        Ok(Self {
            dir,
            script: script.to_path_buf(),
            socket,
        })
    }
}

impl Drop for SambaNode {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(500));
    }
}
