//! Harness for integration tests: runs real ctdb-rs nodes from the built binaries.
//!
//! The binaries come from the same target directory as the test (`cargo build --bins`
//! first; `scripts/test.sh` does). Every node lives in its own temporary CTDB_BASE and
//! is stopped when its handle drops, also when a test fails.

pub mod checker;
pub mod compose;
pub mod samba;
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
    pub pnn: u32,
    pub socket: PathBuf,
    dir: PathBuf,
    /// Owns the directory of a stand-alone node (none for a cluster member).
    _own_dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    /// Extra environment of ctdbd (and so of its components), kept for restarts.
    env: Vec<(String, String)>,
    /// The network namespace ctdbd runs in (`ip netns exec`), if not the test's own.
    netns: Option<String>,
}

impl TestNode {
    /// Starts a one-node cluster on a loopback address of its own, with `ctdb.conf`
    /// holding `extra_conf` (which must not have a `[cluster]` section).
    pub fn start(extra_conf: &str) -> Self {
        let base = tempfile::Builder::new()
            .prefix("ctdb-rs-test")
            .tempdir()
            .expect("temp dir");
        let dir = base.path().to_path_buf();
        let addr = loopback_subnet() + ".1";
        let conf = format!("[cluster]\n\tnode address = {addr}\n{extra_conf}");
        let mut node = Self::start_in(&dir, 0, &[addr], &conf);
        node._own_dir = Some(base);
        node
    }

    /// Starts node `pnn` of the cluster whose addresses are `nodes`, in `dir`.
    pub fn start_in(dir: &Path, pnn: u32, nodes: &[String], extra_conf: &str) -> Self {
        Self::start_in_with_env(dir, pnn, nodes, extra_conf, &[])
    }

    /// As [`Self::start_in`], with `env` added to ctdbd's environment, which its
    /// components inherit (e.g. `CTDB_RS_FAULT_INJECTION=1`).
    pub fn start_in_with_env(
        dir: &Path,
        pnn: u32,
        nodes: &[String],
        extra_conf: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut node = Self::prepare(dir, pnn, nodes, extra_conf, env);
        node.spawn();
        node
    }

    /// Writes the node's files; not started yet.
    fn prepare(
        dir: &Path,
        pnn: u32,
        nodes: &[String],
        extra_conf: &str,
        env: &[(&str, &str)],
    ) -> Self {
        std::fs::create_dir_all(dir.join("events")).expect("events dir");
        std::fs::write(dir.join("nodes"), nodes.join("\n") + "\n").expect("nodes file");
        std::fs::write(dir.join("ctdb.conf"), extra_conf).expect("ctdb.conf");
        Self {
            pnn,
            socket: dir.join("ctdb.socket"),
            dir: dir.to_path_buf(),
            _own_dir: None,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            netns: None,
        }
    }

    /// As [`Self::start_in`], ctdbd running in network namespace `netns`.
    pub fn start_in_netns(
        dir: &Path,
        pnn: u32,
        nodes: &[String],
        extra_conf: &str,
        netns: &str,
    ) -> Self {
        let mut node = Self::prepare(dir, pnn, nodes, extra_conf, &[]);
        node.netns = Some(netns.to_string());
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        // `ip netns exec` enters the namespace and execs ctdbd: the pid stays ctdbd's.
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("ctdbd"));
                c
            }
            None => Command::new(bin("ctdbd")),
        };
        let child = command
            .env("CTDB_BASE", &self.dir)
            .env("CTDB_SOCKET", &self.socket)
            .env(
                "CTDB_LOGGING_LOCATION",
                format!("file:{}", self.dir.join("log.ctdb").display()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ctdbd");
        self.child = Some(child);
    }

    /// Stops the node gracefully (SIGTERM to its supervisor).
    pub fn stop(&mut self) {
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

    /// Kills the node as a crash would: SIGKILL to the supervisor and every component.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for c in ["ctdb-transport", "ctdb-db", "ctdb-recoverd", "ctdb-eventd"] {
            if let Some(pid) = self.component_pid(c) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// Starts a stopped or crashed node again from the same directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The addresses of the nodes file, in pnn order.
    pub fn addresses(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("nodes"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
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

    /// Kills one component and waits until its supervisor has started a new one.
    pub async fn kill_and_wait_restart(&self, component: &str) {
        let old = self.kill_component(component);
        self.wait_restarted(component, old).await;
    }

    /// Stops one component as an operator's restart does (SIGTERM: it finishes what it
    /// can and exits) and waits until its supervisor has started a new one.
    pub async fn restart_component(&self, component: &str) {
        let old = self
            .component_pid(component)
            .unwrap_or_else(|| panic!("no pid file for {component}"));
        kill(Pid::from_raw(old), Signal::SIGTERM).expect("stop component");
        self.wait_restarted(component, old).await;
    }

    async fn wait_restarted(&self, component: &str, old: i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.component_pid(component) == Some(old) {
            assert!(Instant::now() < deadline, "{component} was not restarted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
        self.stop();
    }
}

/// A fresh `127.A.B` prefix for each node or cluster a test process starts, so that
/// tests running at the same time never share an address (every node listens on port
/// 4379 of its own address).
pub fn loopback_subnet() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let a = 100 + std::process::id() % 100;
    format!("127.{a}.{}", n % 250 + 1)
}

/// A cluster of `n` nodes on `127.A.B.1..n`, sharing one recovery lock file (unless
/// started [without one](Self::start_without_lock)).
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub root: tempfile::TempDir,
}

impl TestCluster {
    pub fn start(n: usize) -> Self {
        Self::start_with(n, "")
    }

    /// As [`Self::start`], with `public_addresses` (Samba's format) written into every
    /// node's directory first, when not empty.
    pub fn start_with(n: usize, public_addresses: &str) -> Self {
        let files: &[(&str, &str)] = if public_addresses.is_empty() {
            &[]
        } else {
            &[("public_addresses", public_addresses)]
        };
        Self::start_with_files(n, files)
    }

    /// As [`Self::start`], with `files` (a path in the node's directory, its contents)
    /// written into every node's directory first; those under `events/` are made
    /// executable (enabled event scripts).
    pub fn start_with_files(n: usize, files: &[(&str, &str)]) -> Self {
        Self::start_with_files_env(n, files, &[])
    }

    /// As [`Self::start`], with `env` added to every node's environment (e.g.
    /// `CTDB_RS_FAULT_INJECTION=1`, which lets a test switch fault points on).
    pub fn start_with_env(n: usize, env: &[(&str, &str)]) -> Self {
        Self::start_with_files_env(n, &[], env)
    }

    /// As [`Self::start_with_files`], with `env` added to every node's environment.
    pub fn start_with_files_env(n: usize, files: &[(&str, &str)], env: &[(&str, &str)]) -> Self {
        Self::start_configured(n, files, env, true)
    }

    /// A cluster with no recovery lock: leaders hold a lease from a majority.
    pub fn start_without_lock(n: usize) -> Self {
        Self::start_without_lock_with_env(n, &[])
    }

    /// As [`Self::start_without_lock`], with `files` written into every node's directory
    /// (as [`Self::start_with_files`] does).
    pub fn start_without_lock_with_files(n: usize, files: &[(&str, &str)]) -> Self {
        Self::start_configured(n, files, &[], false)
    }

    /// As [`Self::start_without_lock`], with `env` added to every node's environment.
    pub fn start_without_lock_with_env(n: usize, env: &[(&str, &str)]) -> Self {
        Self::start_configured(n, &[], env, false)
    }

    /// A cluster of one node per network namespace of `namespaces` (made by the test),
    /// node `i` on `addresses[i]` there, with `files` in every node's directory and no
    /// recovery lock. The test reaches the nodes through their client sockets, which
    /// are files.
    pub fn start_in_namespaces(
        namespaces: &[String],
        addresses: &[String],
        files: &[(&str, &str)],
    ) -> Self {
        Self::start_on(
            addresses.to_vec(),
            None,
            Some(namespaces),
            files,
            &[],
            false,
        )
    }

    /// A cluster whose nodes file gives `names` (DNS names; node `i` runs on
    /// `addresses[i]`), with no recovery lock.
    pub fn start_by_name(names: &[String], addresses: &[String]) -> Self {
        Self::start_on(addresses.to_vec(), Some(names), None, &[], &[], false)
    }

    fn start_configured(
        n: usize,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        with_lock: bool,
    ) -> Self {
        let subnet = loopback_subnet();
        let addrs: Vec<String> = (1..=n).map(|i| format!("{subnet}.{i}")).collect();
        Self::start_on(addrs, None, None, files, env, with_lock)
    }

    /// Node `i` on `addrs[i]`; the nodes file lists `names` if given, else `addrs`.
    fn start_on(
        addrs: Vec<String>,
        names: Option<&[String]>,
        namespaces: Option<&[String]>,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        with_lock: bool,
    ) -> Self {
        let n = addrs.len();
        let root = tempfile::Builder::new()
            .prefix("ctdb-rs-cluster")
            .tempdir()
            .expect("temp dir");
        let reclock = root.path().join("rec.lock");
        let nodes = (0..n)
            .map(|i| {
                let mut conf = format!("[cluster]\n\tnode address = {}\n", addrs[i]);
                if with_lock {
                    conf += &format!("\trecovery lock = {}\n", reclock.display());
                }
                let dir = root.path().join(format!("node.{i}"));
                for (name, contents) in files {
                    let path = dir.join(name);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).expect("node dir");
                    }
                    std::fs::write(&path, contents).expect("node file");
                    if name.starts_with("events/") {
                        use std::os::unix::fs::PermissionsExt;
                        let mode = std::fs::Permissions::from_mode(0o755);
                        std::fs::set_permissions(&path, mode).expect("chmod");
                    }
                }
                let lines = names.map_or_else(|| addrs.clone(), <[String]>::to_vec);
                match namespaces {
                    None => TestNode::start_in_with_env(&dir, i as u32, &lines, &conf, env),
                    Some(ns) => TestNode::start_in_netns(&dir, i as u32, &lines, &conf, &ns[i]),
                }
            })
            .collect();
        Self { nodes, root }
    }

    /// Waits until every node of `active` reports the same healthy picture: those
    /// nodes OK, one generation, the vnn map `active`, normal recovery mode. Returns a
    /// client per node (None for nodes not in `active`).
    pub async fn healthy(&self, active: &[u32]) -> Vec<Option<Client>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let why = match self.check(active).await {
                Ok(clients) => return clients,
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "cluster not healthy: {why}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The one generation of the nodes of `active` when they are healthy now (as
    /// [`Self::healthy`] waits for), else `None`; does not wait.
    pub async fn healthy_generation(&self, active: &[u32]) -> Option<u32> {
        let clients = self.check(active).await.ok()?;
        let client = clients.iter().flatten().next()?;
        let here = ctdb_protocol::flags::dest::CURRENT_NODE;
        client.get_vnnmap(here).await.ok().map(|m| m.generation)
    }

    async fn check(&self, active: &[u32]) -> Result<Vec<Option<Client>>, String> {
        let here = ctdb_protocol::flags::dest::CURRENT_NODE;
        let mut clients = Vec::new();
        let mut generation = None;
        for node in &self.nodes {
            if !active.contains(&node.pnn) {
                clients.push(None);
                continue;
            }
            let c = Client::connect(&node.socket)
                .await
                .map_err(|e| format!("node {}: {e}", node.pnn))?;
            let map = c.get_nodemap(here).await.map_err(|e| e.to_string())?;
            for n in &map.nodes {
                if active.contains(&n.pnn) && n.flags != 0 {
                    return Err(format!(
                        "node {} sees node {} with flags {:#x}",
                        node.pnn, n.pnn, n.flags
                    ));
                }
            }
            if c.get_recmode(here).await.map_err(|e| e.to_string())? != 0 {
                return Err(format!("node {} is recovering", node.pnn));
            }
            let vnn = c.get_vnnmap(here).await.map_err(|e| e.to_string())?;
            if vnn.map != active {
                return Err(format!("node {} has vnn map {:?}", node.pnn, vnn.map));
            }
            match generation {
                None => generation = Some(vnn.generation),
                Some(g) if g != vnn.generation => {
                    return Err(format!("generations differ: {g} and {}", vnn.generation))
                }
                _ => {}
            }
            clients.push(Some(c));
        }
        Ok(clients)
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- node {} ---\n{}\n", n.pnn, tail.join("\n")));
        }
        out
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

/// The lmaster of `key` under `map`: the node where a new record is local until
/// record migration lets any node write any key.
pub fn lmaster(key: &[u8], map: &ctdb_protocol::control::VnnMap) -> u32 {
    map.map[(ctdb_db::hash::ctdb_hash(key) as usize) % map.map.len()]
}

/// Creates one record per key, holding the key as its data, on the key's lmaster node.
pub async fn create_records(clients: &[Option<Client>], db_id: u32, keys: &[Vec<u8>]) {
    let here = ctdb_protocol::flags::dest::CURRENT_NODE;
    let any = clients.iter().flatten().next().expect("a client");
    let map = any.get_vnnmap(here).await.expect("vnn map");
    for key in keys {
        let node = lmaster(key, &map) as usize;
        let client = clients[node].as_ref().expect("client of the lmaster");
        client
            .store(db_id, key, key)
            .await
            .unwrap_or_else(|e| panic!("creating a record on node {node}: {e}"));
    }
}

/// The leader the node behind `client` knows, if any (GET_RECMASTER; -1 is "none").
pub async fn leader_of(client: &Client) -> Option<u32> {
    match client
        .control_status(
            ctdb_protocol::flags::dest::CURRENT_NODE,
            ctdb_protocol::Opcode::GetRecmaster,
            bytes::Bytes::new(),
        )
        .await
    {
        Ok(pnn) => Some(pnn as u32),
        Err(ctdb_client::ClientError::ControlFailed { status: -1, .. }) => None,
        Err(e) => panic!("GET_RECMASTER: {e}"),
    }
}

/// Waits (30 s at most) until every client names the same leader, and returns it.
pub async fn agreed_leader(clients: &[&Client]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leaders = Vec::new();
        for c in clients {
            leaders.push(leader_of(c).await);
        }
        if let Some(Some(first)) = leaders.first() {
            if leaders.iter().all(|l| *l == Some(*first)) {
                return *first;
            }
        }
        assert!(Instant::now() < deadline, "leaders disagree: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A control from local client 5 with no data, as a component's handler gets it from
/// transport (tests that drive a component's handler directly).
pub fn control_envelope(opcode: ctdb_protocol::Opcode) -> ctdb_rpc::Envelope {
    use ctdb_protocol::{Body, Packet, ReqControl};
    let mut p = Packet::new(Body::ReqControl(ReqControl {
        opcode,
        srvid: 0,
        client_id: 0,
        flags: 0,
        data: bytes::Bytes::new(),
    }));
    p.reqid = 77;
    ctdb_rpc::Envelope {
        client: 5,
        from_node: u32::MAX,
        packet: p.to_bytes().into(),
        trace: 0,
    }
}

/// Every record of `db` on the node behind `client`, its own copy (PULL_DB of every
/// lmaster): key → the whole record, ltdb header and data.
pub async fn local_copy(client: &Client, db: u32) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    use ctdb_protocol::control::{PullDb, RecBuffer};
    use ctdb_protocol::Wire;
    let request = PullDb {
        db_id: db,
        lmaster: u32::MAX,
    };
    let data = client
        .control(
            ctdb_protocol::flags::dest::CURRENT_NODE,
            ctdb_protocol::Opcode::PullDb,
            0,
            request.to_bytes().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("PULL_DB on node {}: {e}", client.pnn()));
    RecBuffer::from_bytes(&data)
        .expect("record buffer")
        .records
        .iter()
        .map(|r| (r.key.to_vec(), r.data.to_vec()))
        .collect()
}

/// Sends SET_FAILPOINT (test clusters run with CTDB_RS_FAULT_INJECTION=1) to the node behind `client`; the fire count, or the error text.
pub async fn failpoint(
    client: &Client,
    component: &str,
    name: &str,
    actions: Option<&str>,
) -> Result<u64, String> {
    failpoint_raw(
        client,
        ctdb_protocol::Wire::to_bytes(&ctdb_protocol::control::SetFailpoint {
            component: component.into(),
            name: name.into(),
            actions: actions.map(Into::into),
        }),
    )
    .await
}

/// SET_FAILPOINT with `data` as its payload, well formed or not.
pub async fn failpoint_raw(client: &Client, data: Vec<u8>) -> Result<u64, String> {
    let reply = client
        .control_raw(
            ctdb_protocol::flags::dest::CURRENT_NODE,
            ctdb_protocol::Opcode::SetFailpoint,
            0,
            data.into(),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| format!("SET_FAILPOINT: {e}"))?;
    if reply.status != 0 {
        return Err(String::from_utf8_lossy(&reply.errmsg).into_owned());
    }
    let count = <[u8; 8]>::try_from(&reply.data[..])
        .map_err(|_| format!("SET_FAILPOINT reply of {} bytes", reply.data.len()))?;
    Ok(u64::from_le_bytes(count))
}

/// Waits (up to a minute, checking every quarter second) until `check` holds; panics
/// naming `what` when it never does.
pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
