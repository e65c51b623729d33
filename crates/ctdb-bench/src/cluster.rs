//! The clusters a comparison runs against, each stopped when dropped (also when the
//! comparison fails or panics).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `n` addresses `prefix.1` .. `prefix.n` (prefix: the first three octets).
pub fn addresses(prefix: &str, n: usize) -> Result<Vec<String>, String> {
    let octets: Vec<&str> = prefix.split('.').collect();
    if octets.len() != 3 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
        return Err(format!(
            "address prefix {prefix:?} is not three octets (e.g. 127.0.9)"
        ));
    }
    if n == 0 || n > 254 {
        return Err(format!("cannot place {n} nodes on {prefix}.1-254"));
    }
    Ok((1..=n).map(|i| format!("{prefix}.{i}")).collect())
}

/// Fails when something already listens on the CTDB port of one of `addrs` (another
/// cluster on the same addresses would take our nodes' places).
pub fn check_free(addrs: &[String]) -> Result<(), String> {
    for a in addrs {
        let port = ctdb_protocol::flags::DEFAULT_PORT;
        if std::net::TcpListener::bind((a.as_str(), port)).is_err() {
            return Err(format!(
                "{a}:{port} is in use (another cluster?): choose other addresses"
            ));
        }
    }
    Ok(())
}

/// An `n`-node ctdb-rs cluster on `prefix.1..n`, started from the `ctdbd` beside this
/// binary, the way scripts/cluster.sh starts one.
pub struct OurCluster {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    pub sockets: Vec<PathBuf>,
}

impl OurCluster {
    /// `tls`: a directory of `scripts/tls-certs.sh` (ca.pem, node.N.pem, node.N.key):
    /// the nodes talk TLS to each other.
    pub fn start(
        n: usize,
        prefix: &str,
        db_in_transport: bool,
        tls: Option<&Path>,
    ) -> Result<Self, String> {
        let addrs = addresses(prefix, n)?;
        check_free(&addrs)?;
        let ctdbd = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("ctdbd")))
            .filter(|p| p.exists())
            .ok_or("ctdbd not found beside ctdb-bench: build the node's binaries too")?;
        let dir = tempfile::Builder::new()
            .prefix("ctdb-bench-rs")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let mut cluster = Self {
            dir,
            children: Vec::new(),
            sockets: Vec::new(),
        };
        let reclock = cluster.dir.path().join("rec.lock");
        for (i, addr) in addrs.iter().enumerate() {
            let base = cluster.dir.path().join(format!("node.{i}"));
            let db = base.join("db");
            let tls_conf = tls.map_or_else(String::new, |d| {
                format!(
                    "\ttls certificate = {}\n\ttls key = {}\n\ttls ca = {}\n",
                    d.join(format!("node.{i}.pem")).display(),
                    d.join(format!("node.{i}.key")).display(),
                    d.join("ca.pem").display()
                )
            });
            let conf = format!(
                "[logging]\n\tlocation = file:{log}\n\tlog level = NOTICE\n\
                 [cluster]\n\tnode address = {addr}\n\trecovery lock = {reclock}\n{tls_conf}\
                 [database]\n\tvolatile database directory = {v}\n\
                 \tpersistent database directory = {p}\n\tstate database directory = {s}\n\
                 \tin transport process = {colo}\n",
                log = base.join("log.ctdb").display(),
                reclock = reclock.display(),
                v = db.join("volatile").display(),
                p = db.join("persistent").display(),
                s = db.join("state").display(),
                colo = if db_in_transport { "yes" } else { "no" },
            );
            let write = |name: &str, text: String| {
                std::fs::write(base.join(name), text)
                    .map_err(|e| format!("writing {}: {e}", base.join(name).display()))
            };
            std::fs::create_dir_all(base.join("events"))
                .map_err(|e| format!("creating {}: {e}", base.display()))?;
            write("nodes", addrs.join("\n") + "\n")?;
            write("ctdb.conf", conf)?;
            let socket = base.join("ctdb.socket");
            let child = Command::new(&ctdbd)
                .env("CTDB_BASE", &base)
                .env("CTDB_SOCKET", &socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting {}: {e}", ctdbd.display()))?;
            cluster.children.push(child);
            cluster.sockets.push(socket);
        }
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OurCluster {
    fn drop(&mut self) {
        for child in &self.children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.children {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An `n`-node cluster of Samba's ctdbd, started and stopped with
/// shared/tools/samba-cluster.sh.
pub struct SambaCluster {
    dir: tempfile::TempDir,
    script: PathBuf,
    pub sockets: Vec<PathBuf>,
}

impl SambaCluster {
    pub fn start(script: &Path, n: usize, prefix: &str) -> Result<Self, String> {
        check_free(&addresses(prefix, n)?)?;
        if !script.exists() {
            return Err(format!(
                "{} not found (give --samba-script)",
                script.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("ctdb-bench-samba")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let cluster = Self {
            sockets: (0..n)
                .map(|i| dir.path().join(format!("node.{i}/run/ctdbd.socket")))
                .collect(),
            dir,
            script: script.to_path_buf(),
        };
        // From here on, dropping `cluster` stops whatever did start.
        let status = Command::new("sh")
            .arg(script)
            .arg("start")
            .arg(cluster.dir.path())
            .arg(n.to_string())
            .arg(prefix)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!(
                "{} start failed ({status}); logs: {}/node.*/log.ctdb",
                script.display(),
                cluster.dir.path().display()
            ));
        }
        Ok(cluster)
    }
}

impl Drop for SambaCluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `ctdb shutdown` returns before the daemons are gone; let them go before the
        // directory does.
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_a_prefix() {
        assert_eq!(
            addresses("127.0.9", 3).unwrap(),
            ["127.0.9.1", "127.0.9.2", "127.0.9.3"]
        );
        assert!(addresses("127.0", 3).is_err());
        assert!(addresses("127.0.256", 3).is_err());
        assert!(addresses("127.0.9.1", 3).is_err());
        assert!(addresses("127.0.9", 0).is_err());
    }
}
