//! docker-compose clusters of real containers for fault tests.
//!
//! The image is built from this workspace's binaries by `deploy/build-image.sh` (once per
//! test process); each [`ComposeCluster`] is `docker-compose.yml` under a project name, a
//! subnet and a configuration directory of its own, so runs on one machine never meet,
//! and it is taken down with `down -v` (containers, network, volumes) when it drops,
//! also when a test fails. Everything goes through the `docker` and `docker-compose`
//! commands; the `ctdb` tool runs inside the node's containers (`docker exec`).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Nodes in `docker-compose.yml`.
pub const NODES: u32 = 3;
/// The components of a node, each a service `nodeN-<component>`.
pub const COMPONENTS: [&str; 4] = ["transport", "db", "recoverd", "eventd"];
/// The tag tests build; containers start from the image id, which cannot move.
pub const TEST_TAG: &str = "ctdb-rs:test";

/// The workspace root, where `docker-compose.yml` and `deploy/` are.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs a command to completion, killing it after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: no answer within {limit:?}"));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Reads a child's pipe to the end on a thread of its own, so a full pipe never stalls it.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Like [`run`], but a non-zero exit is an error; returns stdout.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = run(cmd, limit)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `docker` with `args`; stdout, or an error with the output.
pub fn docker(args: &[&str]) -> Result<String, String> {
    run_ok(Command::new("docker").args(args), Duration::from_secs(60))
}

/// How to run compose here: `docker-compose`, or the `docker compose` plugin.
fn compose_command() -> Option<(&'static str, &'static [&'static str])> {
    let candidates: [(&'static str, &'static [&'static str]); 2] =
        [("docker-compose", &[]), ("docker", &["compose"])];
    candidates.into_iter().find(|(prog, pre)| {
        run(
            Command::new(prog).args(*pre).arg("version"),
            Duration::from_secs(30),
        )
        .is_ok_and(|o| o.status.success())
    })
}

/// Why docker-compose clusters cannot run here, or None when they can.
pub fn unusable() -> Option<String> {
    match run(
        Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]),
        Duration::from_secs(30),
    ) {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`docker info` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("`docker info` failed: {e}")),
    }
    if compose_command().is_none() {
        return Some("neither `docker-compose` nor `docker compose` works".into());
    }
    None
}

/// Whether docker-compose clusters can run here. Under CI they must: the test fails
/// saying why not; elsewhere the test is skipped, saying why.
pub fn can_run() -> bool {
    let Some(why) = unusable() else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must be able to run docker-compose clusters: {why}"
    );
    eprintln!("skipping: {why}");
    false
}

/// Runs an image build script (`script` relative to the workspace, then `args` and
/// `--tag TAG --iidfile FILE`) and returns the id of the image it made.
fn build_image(script: &str, args: &[&std::ffi::OsStr], tag: &str) -> Result<String, String> {
    let iid = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    run_ok(
        Command::new("bash")
            .arg(workspace().join(script))
            .args(args)
            .args(["--tag", tag, "--iidfile"])
            .arg(iid.path()),
        Duration::from_secs(300),
    )?;
    let id = std::fs::read_to_string(iid.path()).map_err(|e| e.to_string())?;
    Ok(id.trim().to_string())
}

/// Builds the image from the binaries beside the test (`target/debug`), once per test
/// process, and returns its id.
pub fn image() -> Result<String, String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let bins = crate::bin_dir();
            // Fails with a clear message when a binary is missing.
            crate::bin("ctdbd");
            build_image(
                "deploy/build-image.sh",
                &["--bin-dir".as_ref(), bins.as_os_str()],
                TEST_TAG,
            )
        })
        .clone()
}

/// The tag of the image of Samba's own ctdbd the failover test builds.
pub const SAMBA_TEST_TAG: &str = "ctdb-samba:test";

/// Builds the image of Samba's ctdbd from the host's Debian `ctdb` package
/// (`deploy/samba-image/build.sh`), once per test process, and returns its id.
pub fn samba_image() -> Result<String, String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_image("deploy/samba-image/build.sh", &[], SAMBA_TEST_TAG))
        .clone()
}

/// What `ctdb status` on one node says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// (pnn, flags as printed: `OK`, `DISCONNECTED|INACTIVE`, ...), in pnn order.
    pub nodes: Vec<(u32, String)>,
    /// None when the node prints `INVALID`.
    pub generation: Option<u32>,
    pub vnn_size: usize,
    pub recovery_normal: bool,
    pub leader: Option<u32>,
}

impl Status {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut s = Status {
            nodes: Vec::new(),
            generation: None,
            vnn_size: 0,
            recovery_normal: false,
            leader: None,
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pnn:") {
                let mut words = rest.split_whitespace();
                let pnn = words.next().and_then(|p| p.parse().ok());
                let flags = words.nth(1);
                match (pnn, flags) {
                    (Some(pnn), Some(flags)) => s.nodes.push((pnn, flags.to_string())),
                    _ => return Err(format!("unreadable node line {line:?}")),
                }
            } else if let Some(g) = line.strip_prefix("Generation:") {
                s.generation = g.trim().parse().ok();
            } else if let Some(n) = line.strip_prefix("Size:") {
                s.vnn_size = n.trim().parse().unwrap_or(0);
            } else if let Some(m) = line.strip_prefix("Recovery mode:") {
                s.recovery_normal = m.trim().starts_with("NORMAL");
            } else if let Some(l) = line.strip_prefix("Leader:") {
                s.leader = l.trim().parse().ok();
            }
        }
        if s.nodes.is_empty() {
            return Err(format!("no nodes in `ctdb status`:\n{text}"));
        }
        Ok(s)
    }

    pub fn flags(&self, pnn: u32) -> &str {
        self.nodes
            .iter()
            .find(|(p, _)| *p == pnn)
            .map_or("", |(_, f)| f.as_str())
    }
}

/// The records `ctdb catdb` printed, key to data, as the tool escapes them. Persistent
/// databases' sequence-number record is left out.
pub fn parse_catdb(text: &str) -> BTreeMap<String, String> {
    fn quoted(line: &str) -> Option<String> {
        let start = line.find(" = \"")? + 4;
        line.get(start..line.len().checked_sub(1)?)
            .map(str::to_string)
    }
    let mut records = BTreeMap::new();
    let mut key = None;
    for line in text.lines() {
        if line.starts_with("key(") {
            key = quoted(line);
        } else if line.starts_with("data(") {
            if let (Some(k), Some(d)) = (key.take(), quoted(line)) {
                if !k.starts_with("__db_sequence_number__") {
                    records.insert(k, d);
                }
            }
        }
    }
    records
}

/// What a cluster is made of: compose files, configuration and services.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Compose files, relative to the workspace root, passed with `-f` in this order.
    pub files: Vec<&'static str>,
    /// The configuration directory copied for each cluster (relative to the workspace
    /// root); its `nodes` is written for the cluster's subnet and the default subnet's
    /// `172.30.0.` in its `public_addresses` becomes the cluster's.
    pub config: &'static str,
    /// The variable the compose files take the configuration directory from.
    pub config_env: &'static str,
    /// The services of node N besides `nodeN`, which holds its network namespace:
    /// `nodeN-<suffix>` for each suffix.
    pub node_services: Vec<&'static str>,
    /// Services of no node (a client).
    pub other_services: Vec<&'static str>,
    /// More environment for docker-compose (more images).
    pub env: Vec<(&'static str, String)>,
}

impl Default for Layout {
    /// `docker-compose.yml`: the pod shape, configuration `deploy/compose/`.
    fn default() -> Self {
        Layout {
            files: vec!["docker-compose.yml"],
            config: "deploy/compose",
            config_env: "CTDB_RS_CONFIG",
            node_services: COMPONENTS.to_vec(),
            other_services: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// One docker-compose cluster of [`NODES`] nodes; `down -v` when it drops.
pub struct ComposeCluster {
    pub project: String,
    /// The first three octets of the cluster's /24; node N is `.{11 + N}` unless moved
    /// ([`Self::start_node`]).
    pub subnet: String,
    /// The last octet of each node's address (`CTDB_RS_NODE<N>_HOST`).
    hosts: Vec<u32>,
    image: String,
    layout: Layout,
    compose: (&'static str, &'static [&'static str]),
    config: tempfile::TempDir,
    /// Service name to container name.
    containers: HashMap<String, String>,
    network: String,
    up: bool,
}

impl ComposeCluster {
    /// Starts the cluster of `docker-compose.yml` from `image` on a free subnet of
    /// 172.30.0.0/16.
    pub fn up(image: &str) -> Result<Self, String> {
        Self::up_with(image, Layout::default())
    }

    /// Starts a cluster of `layout` from `image` (`CTDB_RS_IMAGE`) on a free subnet of
    /// 172.30.0.0/16.
    pub fn up_with(image: &str, layout: Layout) -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let compose = compose_command().ok_or("no docker-compose")?;
        let mut last = String::new();
        for attempt in 0..12 {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let project = format!("ctdbrstest{}x{n}", std::process::id());
            // 172.30.0 is the default cluster's; tests take one of 1..=250.
            let third = 1 + (std::process::id() + n * 37 + attempt * 53) % 250;
            let mut cluster = ComposeCluster {
                project,
                subnet: format!("172.30.{third}"),
                hosts: (0..NODES).map(|n| 11 + n).collect(),
                image: image.to_string(),
                layout: layout.clone(),
                compose,
                config: tempfile::Builder::new()
                    .prefix("ctdb-rs-compose")
                    .tempdir()
                    .map_err(|e| e.to_string())?,
                containers: HashMap::new(),
                network: String::new(),
                up: false,
            };
            cluster.write_config()?;
            cluster.up = true; // from here on, Drop takes down whatever was made
            match cluster.compose(&["up", "-d"], Duration::from_secs(300)) {
                Ok(_) => {
                    cluster.find_containers()?;
                    return Ok(cluster);
                }
                // Another cluster (or network) holds this subnet: take another.
                Err(e) if e.contains("overlap") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(format!("no free subnet found: {last}"))
    }

    /// The layout's configuration with a nodes file (and public addresses) for this
    /// cluster's subnet. A nodes file that gives the nodes by name (the services'
    /// names, which docker's DNS resolves) is kept as it is.
    fn write_config(&self) -> Result<(), String> {
        fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
            std::fs::create_dir_all(to)?;
            for entry in std::fs::read_dir(from)? {
                let entry = entry?;
                let target = to.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    // A directory with a ctdb.conf of its own is another cluster's
                    // configuration (deploy/compose/failover/), one with a compose
                    // file of its own a variant of the cluster (deploy/compose/rundirs/).
                    if entry.path().join("ctdb.conf").exists()
                        || entry.path().join("docker-compose.override.yml").exists()
                    {
                        continue;
                    }
                    copy_dir(&entry.path(), &target)?;
                } else {
                    // Keeps the mode: event scripts stay executable.
                    std::fs::copy(entry.path(), &target)?;
                }
            }
            Ok(())
        }
        let dir = self.config.path();
        copy_dir(&workspace().join(self.layout.config), dir).map_err(|e| e.to_string())?;
        if !self.nodes_by_name() {
            let nodes: String = (0..NODES)
                .map(|n| format!("{}\n", self.address(n)))
                .collect();
            std::fs::write(dir.join("nodes"), nodes).map_err(|e| e.to_string())?;
        }
        let public = dir.join("public_addresses");
        if public.exists() {
            let text = std::fs::read_to_string(&public).map_err(|e| e.to_string())?;
            let text = text.replace("172.30.0.", &format!("{}.", self.subnet));
            std::fs::write(&public, text).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether the layout's nodes file lists the nodes by name (a line that is not an
    /// address, a comment or empty).
    pub fn nodes_by_name(&self) -> bool {
        let nodes = workspace().join(self.layout.config).join("nodes");
        std::fs::read_to_string(nodes).is_ok_and(|text| {
            text.lines().map(str::trim).any(|l| {
                !l.is_empty() && !l.starts_with('#') && l.parse::<std::net::IpAddr>().is_err()
            })
        })
    }

    /// Looks up the containers of the project's services again (after a test started
    /// more of them).
    pub fn find_containers(&mut self) -> Result<(), String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &label,
            "--format",
            "{{.Label \"com.docker.compose.service\"}} {{.Names}}",
        ])?;
        for line in out.lines() {
            if let Some((service, name)) = line.split_once(' ') {
                self.containers
                    .insert(service.to_string(), name.to_string());
            }
        }
        let expected = NODES as usize * (1 + self.layout.node_services.len())
            + self.layout.other_services.len();
        // More when the test started services of its own (a fourth node).
        if self.containers.len() < expected {
            return Err(format!(
                "expected {expected} containers, found {:?}",
                self.containers
            ));
        }
        let infra = self.container("node0").to_string();
        self.network = docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
            &infra,
        ])?
        .trim()
        .to_string();
        Ok(())
    }

    /// Runs `docker-compose` for this cluster.
    pub fn compose(&self, args: &[&str], limit: Duration) -> Result<String, String> {
        let (prog, pre) = self.compose;
        let mut cmd = Command::new(prog);
        cmd.args(pre).args(["-p", &self.project]);
        for file in &self.layout.files {
            cmd.arg("-f").arg(workspace().join(file));
        }
        cmd.args(args)
            .env("CTDB_RS_IMAGE", &self.image)
            .env("CTDB_RS_SUBNET", &self.subnet)
            .env(self.layout.config_env, self.config.path());
        for (pnn, host) in self.hosts.iter().enumerate() {
            cmd.env(format!("CTDB_RS_NODE{pnn}_HOST"), host.to_string());
        }
        for (key, value) in &self.layout.env {
            cmd.env(key, value);
        }
        run_ok(&mut cmd, limit)
    }

    /// The cluster's configuration directory (`/etc/ctdb` of every container): a
    /// test may rewrite its nodes file.
    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// Node `pnn`'s address.
    pub fn address(&self, pnn: u32) -> String {
        let host = self.hosts.get(pnn as usize).copied().unwrap_or(11 + pnn);
        format!("{}.{host}", self.subnet)
    }

    /// The services of node `pnn`: `nodeN` first.
    pub fn node_services(&self, pnn: u32) -> Vec<String> {
        std::iter::once(format!("node{pnn}"))
            .chain(
                self.layout
                    .node_services
                    .iter()
                    .map(|c| format!("node{pnn}-{c}")),
            )
            .collect()
    }

    /// Stops and removes node `pnn`'s containers (`docker-compose rm -sf`); its
    /// volumes stay, as a StatefulSet's volume claims do.
    pub fn remove_node(&self, pnn: u32) -> Result<(), String> {
        let services = self.node_services(pnn);
        let mut args = vec!["rm", "-s", "-f"];
        args.extend(services.iter().map(String::as_str));
        self.compose(&args, Duration::from_secs(120)).map(drop)
    }

    /// Creates and starts node `pnn`'s containers (`docker-compose up -d`) with the
    /// address `.{host}` of the subnet (`CTDB_RS_NODE<N>_HOST`).
    pub fn start_node(&mut self, pnn: u32, host: u32) -> Result<(), String> {
        if let Some(h) = self.hosts.get_mut(pnn as usize) {
            *h = host;
        }
        let services = self.node_services(pnn);
        let mut args = vec!["up", "-d"];
        args.extend(services.iter().map(String::as_str));
        self.compose(&args, Duration::from_secs(120))?;
        self.find_containers()
    }

    /// Node `pnn`'s address on the cluster's network as docker has it.
    pub fn container_address(&self, pnn: u32) -> Result<String, String> {
        self.inspect(
            &format!("node{pnn}"),
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        )
    }

    /// The container of a service: `node1`, `node1-db`, ...
    pub fn container(&self, service: &str) -> &str {
        self.containers
            .get(service)
            .unwrap_or_else(|| panic!("no service {service}"))
    }

    /// The containers of node `pnn`: the namespace holder first.
    pub fn node_containers(&self, pnn: u32) -> Vec<String> {
        self.node_services(pnn)
            .iter()
            .map(|s| self.container(s).to_string())
            .collect()
    }

    /// Runs our `ctdb` tool on node `pnn`; stdout, or an error with the output.
    pub fn ctdb(&self, pnn: u32, args: &[&str]) -> Result<String, String> {
        let node = self.container(&format!("node{pnn}")).to_string();
        run_ok(
            Command::new("docker")
                .args(["exec", &node, "ctdb"])
                .args(args),
            Duration::from_secs(30),
        )
    }

    pub fn status(&self, pnn: u32) -> Result<Status, String> {
        Status::parse(&self.ctdb(pnn, &["status"])?)
    }

    /// Whether every node of `active` agrees: they see each other OK and every other
    /// node DISCONNECTED, one generation, a vnn map of `active`'s size, normal
    /// recovery mode, one leader among them. Returns that generation.
    pub fn agreed(&self, active: &[u32]) -> Result<u32, String> {
        let mut seen: Option<(u32, Option<u32>)> = None;
        for &pnn in active {
            let s = self.status(pnn)?;
            // Every node the status lists (deleted nodes are not listed), and each of
            // `active`.
            let mut listed: Vec<u32> = s.nodes.iter().map(|(p, _)| *p).collect();
            for &p in active {
                if !listed.contains(&p) {
                    listed.push(p);
                }
            }
            for p in listed {
                let flags = s.flags(p);
                if active.contains(&p) && flags != "OK" {
                    return Err(format!("node {pnn} sees node {p} as {flags:?}"));
                }
                if !active.contains(&p) && !flags.contains("DISCONNECTED") {
                    return Err(format!("node {pnn} sees node {p} as {flags:?}"));
                }
            }
            let generation = s
                .generation
                .ok_or(format!("node {pnn} has no valid generation"))?;
            if !s.recovery_normal {
                return Err(format!("node {pnn} is recovering"));
            }
            if s.vnn_size != active.len() {
                return Err(format!("node {pnn} has a vnn map of {}", s.vnn_size));
            }
            if !s.leader.is_some_and(|l| active.contains(&l)) {
                return Err(format!("node {pnn} has leader {:?}", s.leader));
            }
            match seen {
                None => seen = Some((generation, s.leader)),
                Some(x) if x == (generation, s.leader) => {}
                Some(x) => {
                    return Err(format!(
                        "node {pnn} has generation {generation} leader {:?}, another {x:?}",
                        s.leader
                    ))
                }
            }
        }
        seen.map(|(g, _)| g).ok_or_else(|| "no active node".into())
    }

    /// Waits until [`Self::agreed`] holds and `accept` likes the generation; panics
    /// after `limit` (the cluster's logs are printed when it drops).
    pub fn wait_agreed(
        &self,
        active: &[u32],
        limit: Duration,
        accept: impl Fn(u32) -> bool,
    ) -> u32 {
        let deadline = Instant::now() + limit;
        loop {
            let why = match self.agreed(active) {
                Ok(g) if accept(g) => return g,
                Ok(g) => format!("still generation {g}"),
                Err(why) => why,
            };
            assert!(
                Instant::now() < deadline,
                "nodes {active:?} did not agree within {limit:?}: {why}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits until `check` passes; panics with its last error after `limit`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            match check() {
                Ok(v) => return v,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "{what}: not within {limit:?}: {why}"
                ),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `docker inspect` of one service's container with a Go template.
    pub fn inspect(&self, service: &str, template: &str) -> Result<String, String> {
        docker(&["inspect", "-f", template, self.container(service)]).map(|s| s.trim().to_string())
    }

    /// Crashes a service's container: SIGKILL to its main process from the host, which
    /// docker's restart policy answers by starting it again (`docker kill` would count
    /// as a deliberate stop). Where this process may not signal it, `docker kill` and
    /// `docker start` instead. Returns when the container runs again.
    pub fn crash(&self, service: &str, limit: Duration) -> Result<(), String> {
        use nix::sys::signal::{kill, Signal};
        let started = self.inspect(service, "{{.State.StartedAt}}")?;
        let pid: i32 = self
            .inspect(service, "{{.State.Pid}}")?
            .parse()
            .map_err(|e| format!("pid: {e}"))?;
        if pid <= 0 || kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_err() {
            eprintln!("cannot signal pid {pid} of {service}: docker kill and docker start");
            docker(&["kill", self.container(service)])?;
            docker(&["start", self.container(service)])?;
        }
        let deadline = Instant::now() + limit;
        loop {
            let now = self.inspect(service, "{{.State.Status}} {{.State.StartedAt}}")?;
            if now.starts_with("running ") && !now.ends_with(&started) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{service} is not running again: {now}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Cuts node `pnn` off the cluster's network.
    pub fn disconnect(&self, pnn: u32) -> Result<(), String> {
        let node = self.container(&format!("node{pnn}")).to_string();
        docker(&["network", "disconnect", &self.network, &node]).map(drop)
    }

    /// Reconnects node `pnn` with its address.
    pub fn connect(&self, pnn: u32) -> Result<(), String> {
        let node = self.container(&format!("node{pnn}")).to_string();
        let ip = self.address(pnn);
        docker(&["network", "connect", "--ip", &ip, &self.network, &node]).map(drop)
    }

    /// The last lines of every container's log.
    pub fn logs(&self) -> String {
        self.compose(
            &["logs", "--no-color", "--tail", "80"],
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| e)
    }
}

impl Drop for ComposeCluster {
    fn drop(&mut self) {
        if !self.up {
            return;
        }
        if std::thread::panicking() && !self.containers.is_empty() {
            eprintln!("--- logs of {} ---\n{}", self.project, self.logs());
        }
        if let Err(e) = self.compose(
            &["down", "-v", "--remove-orphans", "-t", "5"],
            Duration::from_secs(180),
        ) {
            eprintln!("docker-compose down failed for {}: {e}", self.project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_catdb_are_read() {
        let s = Status::parse(
            "Number of nodes:3\npnn:0 172.30.0.11      OK (THIS NODE)\n\
             pnn:1 172.30.0.12      DISCONNECTED|INACTIVE\npnn:2 172.30.0.13      OK\n\
             Generation:2196364416\nSize:2\nhash:0 lmaster:0\nhash:1 lmaster:2\n\
             Recovery mode:NORMAL (0)\nLeader:2\n",
        )
        .expect("parse");
        assert_eq!(s.flags(0), "OK");
        assert_eq!(s.flags(1), "DISCONNECTED|INACTIVE");
        assert_eq!(s.generation, Some(2196364416));
        assert_eq!(s.vnn_size, 2);
        assert!(s.recovery_normal);
        assert_eq!(s.leader, Some(2));
        let s = Status::parse("pnn:0 1.2.3.4 OK\nGeneration:INVALID\nRecovery mode:RECOVERY (1)\n")
            .expect("parse");
        assert_eq!(s.generation, None);
        assert!(!s.recovery_normal);

        let records = parse_catdb(
            "key(23) = \"__db_sequence_number__\\00\"\ndmaster: 0\nrsn: 1\n\
             data(8) = \"\\01\\00\\00\\00\\00\\00\\00\\00\"\n\nkey(2) = \"pk\"\n\
             dmaster: 0\nrsn: 1\nflags: 0x00000000\ndata(7) = \"p value\"\n\nDumped 2 records\n",
        );
        assert_eq!(records.len(), 1);
        assert_eq!(records["pk"], "p value");
    }
}
