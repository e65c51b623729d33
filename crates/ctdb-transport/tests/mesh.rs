//! The node mesh between real nodes: a 3-node cluster of `ctdbd` processes on three
//! 127.0.0.x addresses (port 4379 each), driven through node 0's client socket.
//!
//! Needs the workspace's binaries (`cargo build --workspace --bins`); they are found
//! beside the test executable's directory, as the integration suite does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{dest, node as node_flags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const COMPONENTS: [&str; 4] = ["ctdb-transport", "ctdb-db", "ctdb-recoverd", "ctdb-eventd"];

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/debug/deps/mesh-xxxx -> target/debug
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Three consecutive 127.0.0.x addresses whose port 4379 is free now.
fn free_addresses() -> Vec<String> {
    let start = 20 + (std::process::id() % 70) * 3;
    for i in 0..70 {
        let base = 20 + (start - 20 + i * 3) % 210;
        let addrs: Vec<String> = (0..3).map(|k| format!("127.0.0.{}", base + k)).collect();
        let free = addrs
            .iter()
            .all(|a| std::net::TcpListener::bind((a.as_str(), 4379)).is_ok());
        if free {
            return addrs;
        }
    }
    panic!("no three free 127.0.0.x addresses on port 4379");
}

struct TestNode {
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    fn pid_of(&self, component: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("run").join(format!("{component}.pid")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn signal(&self, component: &str, signal: Signal) {
        let pid = self
            .pid_of(component)
            .unwrap_or_else(|| panic!("no pid file for {component}"));
        kill(Pid::from_raw(pid), signal).expect("signal component");
    }

    /// SIGKILL to the supervisor and every component, as a crash would.
    fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for c in COMPONENTS {
            if let Some(pid) = self.pid_of(c) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log.ctdb")).unwrap_or_default()
    }
}

struct Cluster {
    nodes: Vec<TestNode>,
    _root: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("ctdb-transport-mesh")
            .tempdir()
            .expect("temp dir");
        let addrs = free_addresses();
        let reclock = root.path().join("rec.lock");
        let nodes = (0..3)
            .map(|i| {
                let dir = root.path().join(format!("node.{i}"));
                std::fs::create_dir_all(dir.join("events")).expect("events dir");
                std::fs::write(dir.join("nodes"), addrs.join("\n") + "\n").expect("nodes");
                std::fs::write(
                    dir.join("ctdb.conf"),
                    format!(
                        "[cluster]\n\tnode address = {}\n\trecovery lock = {}\n",
                        addrs[i],
                        reclock.display()
                    ),
                )
                .expect("ctdb.conf");
                let socket = dir.join("ctdb.socket");
                let child = Command::new(bin("ctdbd"))
                    .env("CTDB_BASE", &dir)
                    .env("CTDB_SOCKET", &socket)
                    .env("CTDB_LOG_LEVEL", "INFO")
                    .env(
                        "CTDB_LOGGING_LOCATION",
                        format!("file:{}", dir.join("log.ctdb").display()),
                    )
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start ctdbd");
                TestNode {
                    dir,
                    socket,
                    child: Some(child),
                }
            })
            .collect();
        Self { nodes, _root: root }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!("--- node {i} ---\n{}\n", tail.join("\n")));
        }
        out
    }

    async fn client(&self, pnn: usize) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&self.nodes[pnn].socket).await {
                Ok(c) => return c,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "node {pnn} does not take clients: {e}\n{}",
                    self.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `client`'s node sees each node's DISCONNECTED bit as `want` says.
    async fn wait_connectivity(&self, client: &Client, want: [bool; 3], within: Duration) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            if let Ok(map) = client.get_nodemap(dest::CURRENT_NODE).await {
                seen = map
                    .nodes
                    .iter()
                    .map(|n| n.flags & node_flags::DISCONNECTED == 0)
                    .collect();
                if seen == want {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} sees connected = {seen:?}, want {want:?} within {within:?}\n{}",
                client.pnn(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.crash();
        }
    }
}

/// Sets a tunable on every live node, through node 0 (forwarded controls).
async fn set_everywhere(client: &Client, nodes: &[u32], name: &str, value: u32) {
    for &pnn in nodes {
        client
            .set_tunable(pnn, name, value)
            .await
            .unwrap_or_else(|e| panic!("set {name} on node {pnn}: {e}"));
        assert_eq!(client.get_tunable(pnn, name).await.unwrap(), value);
    }
}

fn is_control_error(r: &Result<u32, ClientError>, node: u32) -> bool {
    matches!(r, Err(ClientError::ControlFailed { status: -1, message: Some(m), .. })
        if m.contains(&format!("node {node}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_connect_forward_and_notice_failures() {
    let mut cluster = Cluster::start();
    let c0 = cluster.client(0).await;
    assert_eq!(c0.pnn(), 0);

    // The mesh forms: node 0 sees everyone, and so do the others.
    cluster
        .wait_connectivity(&c0, [true; 3], Duration::from_secs(15))
        .await;
    let c1 = cluster.client(1).await;
    let c2 = cluster.client(2).await;
    cluster
        .wait_connectivity(&c1, [true; 3], Duration::from_secs(10))
        .await;
    cluster
        .wait_connectivity(&c2, [true; 3], Duration::from_secs(10))
        .await;

    // Controls to another pnn run there and come back to our client.
    assert_eq!(c0.get_pnn(1).await.unwrap(), 1);
    assert_eq!(c0.get_pnn(2).await.unwrap(), 2);
    c0.ping(1).await.expect("ping node 1");
    let pid1 = cluster.nodes[1].pid_of("ctdb-transport").unwrap() as u32;
    assert_eq!(c0.get_pid(1).await.unwrap(), pid1, "GET_PID ran on node 1");
    // Many at once, from one client with its own reqids: each finds its reply.
    let many: Vec<_> = (0..60u32)
        .map(|i| {
            let c = c0.clone();
            tokio::spawn(async move { (i % 3, c.get_pnn(i % 3).await.unwrap()) })
        })
        .collect();
    for h in many {
        let (asked, got) = h.await.unwrap();
        assert_eq!(asked, got);
    }
    // A control owned by another component on the other node (db's GETVNNMAP).
    // Its db may still be starting: until then the answer is an error, not silence.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = c0.get_vnnmap(2).await {
        assert!(Instant::now() < deadline, "db control on node 2: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Messages to another node's registered srvid, and broadcast ones.
    let srvid = 0xF00D_0000_0000_0001;
    let mut on2 = c2.register_srvid(srvid).await.unwrap();
    let mut on1 = c1.register_srvid(srvid).await.unwrap();
    c0.send_message(2, srvid, Bytes::from_static(b"to two"))
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), on2.recv())
        .await
        .expect("message to node 2 arrives")
        .unwrap();
    assert_eq!(
        (m.srvid, &m.data[..], m.srcnode),
        (srvid, &b"to two"[..], 0)
    );
    c0.send_message(dest::BROADCAST_CONNECTED, srvid, Bytes::from_static(b"all"))
        .unwrap();
    for rx in [&mut on1, &mut on2] {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("broadcast message arrives")
            .unwrap();
        assert_eq!(&m.data[..], b"all");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on1.recv())
            .await
            .is_err(),
        "node 1 got nothing meant for node 2 only"
    );

    // Keepalives with short tunables; a silent (stopped) peer is dropped by them.
    set_everywhere(&c0, &[0, 1, 2], "KeepaliveInterval", 1).await;
    set_everywhere(&c0, &[0, 1, 2], "KeepaliveLimit", 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = c0.statistics(dest::CURRENT_NODE).await.unwrap();
    assert!(stats.keepalive_packets_sent > 0, "{stats:?}");
    assert!(stats.keepalive_packets_recv > 0, "{stats:?}");
    assert!(stats.node_packets_sent > 0 && stats.node_packets_recv > 0);

    cluster.nodes[1].signal("ctdb-transport", Signal::SIGSTOP);
    let stopped = Instant::now();
    // A control that is on its way when the node goes silent is answered when node 0
    // gives up on the node, long before the control timeout (60 s).
    let waiting = {
        let c = c0.clone();
        tokio::spawn(async move { c.get_pnn(1).await })
    };
    cluster
        .wait_connectivity(&c0, [true, false, true], Duration::from_secs(8))
        .await;
    // Its last keepalive came up to ~1.25 s before the stop: 3 s of silence ends at
    // least 1.5 s after it (and not at once: its sockets stay open).
    let silence = stopped.elapsed();
    assert!(
        silence >= Duration::from_millis(1500),
        "dropped after {silence:?}"
    );
    let r = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the waiting control is answered")
        .unwrap();
    assert!(is_control_error(&r, 1), "{r:?}");
    // Node 1 comes back by itself once it runs again.
    cluster.nodes[1].signal("ctdb-transport", Signal::SIGCONT);
    cluster
        .wait_connectivity(&c0, [true; 3], Duration::from_secs(15))
        .await;
    assert_eq!(c0.get_pnn(1).await.unwrap(), 1);

    // A crash closes node 2's sockets: node 0 notices at once, not after keepalives.
    set_everywhere(&c0, &[0, 1, 2], "KeepaliveLimit", 60).await;
    drop(c2);
    cluster.nodes[2].crash();
    cluster
        .wait_connectivity(&c0, [true, true, false], Duration::from_secs(3))
        .await;
    // A control to the disconnected node gets an error, at once.
    let asked = Instant::now();
    let r = c0.get_pnn(2).await;
    assert!(is_control_error(&r, 2), "{r:?}");
    assert!(asked.elapsed() < Duration::from_secs(1));
    // ... and one to a node that does not exist, too.
    let r = c0.get_pnn(7).await;
    assert!(is_control_error(&r, 7), "{r:?}");
    // The rest of the cluster still talks.
    assert_eq!(c0.get_pnn(1).await.unwrap(), 1);
}
