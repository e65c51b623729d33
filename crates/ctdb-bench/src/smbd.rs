//! `ctdb-bench smbd`: Samba's smbd on a ctdb-rs cluster beside smbd on a Samba ctdbd
//! cluster, in one run. Each side gets two nodes with one smbd each
//! (shared/tools/smbd-on-cluster.sh); the load is Samba's own benchmark,
//! `smbtorture smb2.bench.path-contention-shared` (Debian package `samba-testsuite`):
//! `connections` SMB connections spread over both smbds, each opening and closing one
//! shared path: every open from the other node than the last moves the path's locking
//! records between the nodes, what a file opened from two nodes pays on every open.
//! Sides alternate for `rounds`; the best round of each is kept.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{OurCluster, SambaCluster};
use crate::workloads;

pub struct SmbdArgs {
    pub rounds: usize,
    pub connections: usize,
    pub seconds: u64,
    pub our_prefix: String,
    pub samba_prefix: String,
    pub samba_script: PathBuf,
    pub smbd_script: PathBuf,
}

/// The smbds of one side, stopped on drop.
struct Smbds {
    dir: tempfile::TempDir,
    script: PathBuf,
    addresses: Vec<String>,
}

impl Smbds {
    fn start(script: &Path, sockets: &[PathBuf], prefix: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("ctdb-bench-smbd")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let smbds = Self {
            dir,
            script: script.to_path_buf(),
            addresses: (0..sockets.len())
                .map(|i| format!("{prefix}.{}", 101 + i))
                .collect(),
        };
        let status = Command::new("sh")
            .arg(script)
            .arg("start")
            .arg(smbds.dir.path())
            .arg(prefix)
            .args(sockets)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!("{} start failed", script.display()));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for addr in &smbds.addresses {
            let target: SocketAddr = format!("{addr}:4450")
                .parse()
                .map_err(|e| format!("{addr}: {e}"))?;
            while TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_err() {
                if Instant::now() > deadline {
                    return Err(format!(
                        "smbd on {addr} does not listen (logs in {})",
                        smbds.dir.path().display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(smbds)
    }
}

impl Drop for Smbds {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Opens per second of one round of the load against `smbds` (smbtorture prints the
/// rate of every second; their mean).
fn load(args: &SmbdArgs, smbds: &Smbds) -> Result<f64, String> {
    let unclist = smbds.dir.path().join("unclist");
    let uncs: String = smbds
        .addresses
        .iter()
        .map(|a| format!("//{a}/share\n"))
        .collect();
    std::fs::write(&unclist, uncs).map_err(|e| format!("{}: {e}", unclist.display()))?;
    let out = Command::new("smbtorture")
        .arg(format!("//{}/share", smbds.addresses[0]))
        .args(["-p", "4450", "-N"])
        .arg(format!("--unclist={}", unclist.display()))
        .arg(format!("--option=torture:timelimit={}", args.seconds))
        .arg(format!("--option=torture:nprocs={}", args.connections))
        .arg("smb2.bench.path-contention-shared")
        .output()
        .map_err(|e| format!("running smbtorture (Debian package samba-testsuite): {e}"))?;
    // The per-second rates go to standard error, the verdict to standard output.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rates: Vec<f64> = text
        .split("open[num/s=")
        .skip(1)
        .filter_map(|rest| rest.split(',').next()?.parse().ok())
        .collect();
    if !out.status.success() || rates.is_empty() || !text.contains("success:") {
        return Err(format!("smbtorture failed:\n{text}"));
    }
    Ok(rates.iter().sum::<f64>() / rates.len() as f64)
}

pub async fn run(args: SmbdArgs) -> Result<(), String> {
    println!(
        "starting 2-node ctdb-rs ({}.x) and Samba ctdbd ({}.x) clusters with smbd on each node",
        args.our_prefix, args.samba_prefix
    );
    let ours = OurCluster::start(2, &args.our_prefix, false, None)?;
    let samba = SambaCluster::start(&args.samba_script, 2, &args.samba_prefix)?;
    let ready = Duration::from_secs(90);
    workloads::wait_healthy(&ours.sockets, ready)
        .await
        .map_err(|e| format!("ctdb-rs: {e}"))?;
    workloads::wait_healthy(&samba.sockets, ready)
        .await
        .map_err(|e| format!("Samba: {e}"))?;
    let sides = [
        (
            "ctdb-rs",
            Smbds::start(&args.smbd_script, &ours.sockets, &args.our_prefix)?,
        ),
        (
            "Samba",
            Smbds::start(&args.smbd_script, &samba.sockets, &args.samba_prefix)?,
        ),
    ];
    let mut best = [0f64; 2];
    for round in 1..=args.rounds {
        for (i, (name, smbds)) in sides.iter().enumerate() {
            let rate = load(&args, smbds)?;
            println!("round {round}: {name:<8} {rate:>8.0} opens/s");
            best[i] = best[i].max(rate);
        }
    }
    println!(
        "\nopen+close of one file, {} connections over 2 nodes, {} s per run (best round):",
        args.connections, args.seconds
    );
    println!("  ctdb-rs {:>8.0} opens/s", best[0]);
    println!("  Samba   {:>8.0} opens/s", best[1]);
    println!("  ratio   {:>8.2}", best[0] / best[1].max(f64::EPSILON));
    Ok(())
}
