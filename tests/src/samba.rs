//! The real Samba beside our nodes: a cluster of Samba's own `ctdbd` (the reference),
//! and Samba's `smbd` clustered on any CTDB's sockets (the user), both started with the
//! scripts in `shared/tools`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `shared/tools/<name>`, beside the checkout.
pub fn shared_tool(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tools")
        .join(name)
}

/// A cluster of Samba's ctdbd on `prefix.1..n`, stopped on drop.
pub struct SambaCluster {
    pub dir: tempfile::TempDir,
    script: PathBuf,
    n: usize,
}

impl SambaCluster {
    pub fn start(n: usize, prefix: &str) -> Self {
        let script = shared_tool("samba-cluster.sh");
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("sh")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg(n.to_string())
            .arg(prefix)
            .stdout(Stdio::null())
            .status()
            .expect("run samba-cluster.sh");
        assert!(status.success(), "Samba cluster did not start");
        Self { dir, script, n }
    }

    /// The client socket of node `pnn` (Samba's test mode puts it in the run dir).
    pub fn socket(&self, pnn: usize) -> PathBuf {
        self.dir.path().join(format!("node.{pnn}/run/ctdbd.socket"))
    }

    pub fn sockets(&self) -> Vec<PathBuf> {
        (0..self.n).map(|i| self.socket(i)).collect()
    }

    /// Runs `ctdb` (ours or Samba's) against node 0 and returns its standard output.
    pub fn tool(&self, ctdb: &Path, args: &[&str]) -> String {
        let out = Command::new(ctdb)
            .args(args)
            .env("CTDB_TEST_MODE", "yes")
            .env("CTDB_BASE", self.dir.path().join("node.0"))
            .env("CTDB_SOCKET", self.socket(0))
            .output()
            .expect("run ctdb");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SambaCluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
        // `ctdb shutdown` returns before the daemons are gone.
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The port every test smbd listens on (each on an address of its own).
pub const SMB_PORT: u16 = 4450;

/// Samba's smbd, one per CTDB socket, clustered and sharing one directory; smbd `i`
/// listens on `prefix.(101 + i)`. Stopped on drop.
pub struct Smbds {
    pub dir: tempfile::TempDir,
    pub addresses: Vec<String>,
}

impl Smbds {
    /// Starts them and waits until each accepts SMB connections.
    pub fn start(sockets: &[PathBuf], prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("sh")
            .arg(shared_tool("smbd-on-cluster.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(prefix)
            .args(sockets)
            .stdout(Stdio::null())
            .status()
            .expect("run smbd-on-cluster.sh");
        assert!(status.success(), "smbd-on-cluster.sh start failed");
        let smbds = Self {
            dir,
            addresses: (0..sockets.len())
                .map(|i| format!("{prefix}.{}", 101 + i))
                .collect(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for addr in &smbds.addresses {
            let target: SocketAddr = format!("{addr}:{SMB_PORT}").parse().expect("address");
            while TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "smbd on {addr} does not listen; its log:\n{}",
                    smbds.log_tail()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        smbds
    }

    /// The end of every smbd's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for i in 0..self.addresses.len() {
            let log = std::fs::read_to_string(self.dir.path().join(format!("smb.{i}/log.smbd")))
                .unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- smbd {i} ---\n{}\n",
                lines[lines.len().saturating_sub(20)..].join("\n")
            ));
        }
        out
    }

    fn checks_command(&self, python: &Path) -> Command {
        let mut cmd = Command::new(python);
        cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smb/smb_checks.py"));
        cmd
    }

    /// Runs every check of `tests/smb/smb_checks.py` through these smbds.
    pub fn checks(&self, python: &Path) -> Output {
        self.checks_command(python)
            .arg(SMB_PORT.to_string())
            .args(&self.addresses)
            .stdin(Stdio::null())
            .output()
            .expect("run smb_checks.py")
    }

    /// Starts the checks' hold mode: a handle and a lock held through smbd 0 until
    /// [`Held::release`].
    pub fn hold(&self, python: &Path) -> Held {
        let mut child = self
            .checks_command(python)
            .arg("--hold")
            .arg(SMB_PORT.to_string())
            .args(&self.addresses)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run smb_checks.py --hold");
        let stdin = child.stdin.take();
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
            seen.push_str(&line);
            assert!(n > 0, "smb_checks.py --hold ended early:\n{seen}");
            if line.trim() == "held" {
                break;
            }
        }
        Held {
            child,
            stdin,
            reader,
            seen,
        }
    }
}

impl Drop for Smbds {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(shared_tool("smbd-on-cluster.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// The checks' hold mode, running.
pub struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: std::io::BufReader<ChildStdout>,
    seen: String,
}

impl Held {
    /// Lets the checks go on and returns whether they passed, with their output.
    pub fn release(mut self) -> (bool, String) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = std::io::Write::write_all(&mut stdin, b"go\n");
        }
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.reader, &mut rest);
        let status = self.child.wait().expect("wait for smb_checks.py");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status.success(), format!("{}{rest}{err}", self.seen))
    }
}

/// The Python with PyPI's `smbprotocol` that runs `tests/smb/smb_checks.py`:
/// `$CTDB_RS_PYTHON`, or the venv `scripts/test.sh` makes in `target/py`. Under CI a
/// missing one fails the test; elsewhere the test says it is skipped.
pub fn smb_python() -> Option<PathBuf> {
    let path = std::env::var_os("CTDB_RS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python")
        });
    let usable = Command::new(&path)
        .args(["-c", "import smbprotocol"])
        .output()
        .is_ok_and(|o| o.status.success());
    let smbd = Path::new("/usr/sbin/smbd").exists();
    if usable && smbd {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide Samba's smbd (Debian package `samba`) and {} with smbprotocol \
         (scripts/test.sh makes it)",
        path.display()
    );
    eprintln!("skipping: smbd or a Python with smbprotocol is missing");
    None
}
