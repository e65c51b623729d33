//! Issue 12: Samba's smbclient through a public address keeps working after the node
//! that serves it is killed. Three ctdb-rs nodes, each in a network namespace of its
//! own behind a bridge (10.83.0.1-3), two public addresses placed on their `eth0` by the
//! interface event script ctdb-rs ships, Samba's smbd clustered on each node and
//! listening on every address of its namespace. A file is written through an address;
//! its holder dies (processes killed, link down); the same address serves the file
//! again from another node, through a new connection. Needs root (namespaces, bridge,
//! addresses), which CI has.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::control::PublicIpList;
use ctdb_protocol::flags::dest;
use ctdb_protocol::{Opcode, Wire};
use ctdb_tests::TestCluster;

const SCRIPT: &str = include_str!("../../deploy/events/legacy/10.interface.script");
const SUBNET: &str = "10.83.0";
const BRIDGE: &str = "ctdbsfbr";
const PUBLIC: [&str; 2] = ["10.83.0.101", "10.83.0.102"];
const SMB_PORT: &str = "4450";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// The namespaces, their links to the bridge, the bridge and the firewall rule that
/// lets bridged traffic through (docker's FORWARD policy drops it); all removed on drop.
struct Net {
    namespaces: Vec<String>,
}

impl Net {
    fn new(n: usize) -> Self {
        let net = Self {
            namespaces: (0..n).map(|i| format!("ctdbsf{i}")).collect(),
        };
        net.remove();
        ip(&["link", "add", BRIDGE, "type", "bridge"]);
        ip(&["addr", "add", &format!("{SUBNET}.254/24"), "dev", BRIDGE]);
        ip(&["link", "set", BRIDGE, "up"]);
        let _ = Command::new("iptables")
            .args(["-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"])
            .output();
        for (i, ns) in net.namespaces.iter().enumerate() {
            let outside = format!("{ns}h");
            ip(&["netns", "add", ns]);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ip(&["link", "set", &outside, "master", BRIDGE]);
            ip(&["link", "set", &outside, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{SUBNET}.{}/24", i + 1),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn remove(&self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = Command::new("ip")
                .args(["link", "del", &format!("{ns}h")])
                .output();
        }
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"])
            .output();
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// smbd, clustered on one node's socket, in that node's namespace; killed on drop.
struct Smbd(Child);

impl Smbd {
    fn start(dir: &Path, share: &Path, ns: &str, socket: &Path) -> Self {
        for sub in ["lock", "state", "cache", "private", "pid", "ncalrpc"] {
            std::fs::create_dir_all(dir.join(sub)).expect("smbd dir");
        }
        let d = |sub: &str| dir.join(sub).display().to_string();
        let conf = format!(
            "[global]\n\tclustering = yes\n\tctdbd socket = {}\n\tctdb timeout = 20000\n\
             \tnetbios name = CTDBFO\n\tworkgroup = TESTGRP\n\tsecurity = user\n\
             \tmap to guest = Bad User\n\tserver role = standalone server\n\
             \tbind interfaces only = no\n\tsmb ports = {SMB_PORT}\n\
             \tlock directory = {}\n\tstate directory = {}\n\tcache directory = {}\n\
             \tprivate dir = {}\n\tpid directory = {}\n\tncalrpc dir = {}\n\
             \tlog file = {}\n\tlog level = 1\n\tdisable spoolss = yes\n\
             \tload printers = no\n\tprinting = bsd\n\tprintcap name = /dev/null\n\
             [share]\n\tpath = {}\n\tguest ok = yes\n\tread only = no\n",
            socket.display(),
            d("lock"),
            d("state"),
            d("cache"),
            d("private"),
            d("pid"),
            d("ncalrpc"),
            d("log.smbd"),
            share.display(),
        );
        let conf_path = dir.join("smb.conf");
        std::fs::write(&conf_path, conf).expect("smb.conf");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "smbd",
                "-F",
                "--no-process-group",
                "-s",
            ])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smbd");
        Self(child)
    }
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One smbclient run against `addr`'s share; its output on failure.
fn smbclient(addr: &str, command: &str) -> Result<(), String> {
    let out = Command::new("timeout")
        .args([
            "15",
            "smbclient",
            &format!("//{addr}/share"),
            "-p",
            SMB_PORT,
            "-N",
        ])
        .args(["-c", command])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Retries `what` until it succeeds or `limit` passes; how long it took.
fn until_ok(what: &str, limit: Duration, f: impl Fn() -> Result<(), String>) -> Duration {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return start.elapsed(),
            Err(e) if start.elapsed() > limit => panic!("{what}: still failing: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The holder of `addr` as node `client`'s view says.
async fn holder(client: &ctdb_client::Client, addr: &str) -> Option<u32> {
    let data = client
        .control(dest::CURRENT_NODE, Opcode::GetPublicIps, 0, Bytes::new())
        .await
        .ok()?;
    let list = PublicIpList::from_bytes(&data).ok()?;
    let want: std::net::IpAddr = addr.parse().ok()?;
    list.ips
        .iter()
        .find(|ip| ip.addr.socket_addr().map(|a| a.ip()) == Some(want))
        .map(|ip| ip.pnn)
        .filter(|&p| p != dest::UNKNOWN_PNN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smbclient_through_a_public_address_survives_its_node() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        eprintln!("skipped: not root");
        return;
    }
    let _net = Net::new(3);
    let namespaces: Vec<String> = (0..3).map(|i| format!("ctdbsf{i}")).collect();
    let addresses: Vec<String> = (1..=3).map(|i| format!("{SUBNET}.{i}")).collect();
    let public = format!("{}/24 eth0\n{}/24 eth0\n", PUBLIC[0], PUBLIC[1]);
    let mut cluster = TestCluster::start_in_namespaces(
        &namespaces,
        &addresses,
        &[
            ("public_addresses", &public),
            ("events/legacy/10.interface.script", SCRIPT),
        ],
    );
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let first = clients[0].as_ref().expect("node 0");
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        if let (Some(a), Some(_)) = (
            holder(first, PUBLIC[0]).await,
            holder(first, PUBLIC[1]).await,
        ) {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "addresses never placed\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(clients);

    let smb_root = tempfile::tempdir().expect("temp dir");
    let share = smb_root.path().join("share");
    std::fs::create_dir_all(&share).expect("share");
    std::fs::set_permissions(&share, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("share mode");
    let mut smbds: Vec<Option<Smbd>> = (0..3)
        .map(|i| {
            Some(Smbd::start(
                &smb_root.path().join(format!("smb.{i}")),
                &share,
                &namespaces[i],
                &cluster.nodes[i].socket,
            ))
        })
        .collect();

    let file: PathBuf = smb_root.path().join("in.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).expect("file");
    let put = format!("put {} f.bin", file.display());
    until_ok(
        "put through the public address",
        Duration::from_secs(60),
        || smbclient(PUBLIC[0], &put),
    );

    // The holder of the address dies: its processes are killed, its link goes down.
    eprintln!("killing node {victim}, which holds {}", PUBLIC[0]);
    cluster.nodes[victim as usize].crash();
    smbds[victim as usize] = None;
    ip(&[
        "-n",
        &namespaces[victim as usize],
        "link",
        "set",
        "eth0",
        "down",
    ]);

    let got = smb_root.path().join("out.bin");
    let get = format!("get f.bin {}", got.display());
    let took = until_ok(
        "get through the public address after the kill",
        Duration::from_secs(90),
        || {
            smbclient(PUBLIC[0], &get)?;
            match std::fs::read(&got) {
                Ok(b) if b == bytes => Ok(()),
                _ => Err("the file read back differs".into()),
            }
        },
    );
    eprintln!(
        "failover: smbclient through {} works again {:.1} s after node {victim} was killed",
        PUBLIC[0],
        took.as_secs_f32()
    );
    // The cluster goes on: a file written through one address is read through the other.
    until_ok("put after the failover", Duration::from_secs(30), || {
        smbclient(PUBLIC[1], &format!("put {} g.bin", file.display()))
    });
    let again = smb_root.path().join("again.bin");
    until_ok("get after the failover", Duration::from_secs(30), || {
        smbclient(PUBLIC[0], &format!("get g.bin {}", again.display()))
    });
    assert_eq!(std::fs::read(&again).expect("read back"), bytes);
    drop(smbds);
}
