//! Issue 12's acceptance test: a node holding a public address dies, and another node
//! takes the address over; measured on our docker-compose cluster and, the same way, on
//! a cluster of Samba's own ctdbd (4.17, the host's Debian package).
//!
//! Each cluster has three nodes with six public addresses (`.101`-`.106` of its subnet
//! on eth0), a TCP server on port 445 of every node (`nodeN-smb`, busybox nc in the
//! node's network namespace) and a client container (`.21`). Ours is
//! `docker-compose.yml` with `deploy/compose/failover/docker-compose.override.yml`
//! (root, NET_ADMIN for eventd, NET_RAW for recoverd) and the configuration of
//! `deploy/compose/failover/`; Samba's is `deploy/samba-image/docker-compose.yml` on the
//! image `deploy/samba-image/build.sh` makes.
//!
//! Once every address is placed, the client opens a connection to a public address's
//! port 445 and keeps it; the connection is registered on every node as smbd would
//! (`ctdb addtickle`). Then the address's holder dies: a blackhole route to the client first, so that
//! nothing the dying node's kernel sends (the server's FIN as its process is killed)
//! reaches the client, as from a machine that crashed; then `docker kill` of all its
//! containers. The test measures from the kill (a) when the address answers the
//! client's pings again (from the new holder: the old one can no longer reach it) and
//! (b) when the client's connection ends, and how: a reset is the new holder's doing
//! (its tickle ACK draws the client's ACK, which the new holder's stack answers with a
//! RST). The other nodes see the dead node's connections close at once (its processes'
//! sockets are closed by the kernel), as when ctdbd crashes on a live machine.
//!
//! This runs twice on each cluster: first the holder is a node other than the leader
//! (a takeover), then, with that node started again, the leader (an election first).
//!
//! Asserted for ours, both times: the address answers from another node within
//! [`BOUND`] and the client's connection is reset within it. Samba's numbers are
//! printed, not asserted; a Samba cluster that cannot be set up fails the test. Skipped
//! where docker is unusable (and Samba's part where Samba's ctdb is not installed),
//! except under CI, where both must run.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctdb_tests::compose::{self, docker, ComposeCluster, Layout, NODES};

/// How long the address may take to answer again, and the connection to be reset.
const BOUND: Duration = Duration::from_secs(30);
/// How long the measurement waits (Samba's numbers may be larger than ours).
const WATCH: Duration = Duration::from_secs(45);
/// The client's address: `.21` of the subnet.
const CLIENT_HOST: u32 = 21;

fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn ours_layout() -> Layout {
    let mut layout = Layout {
        files: vec![
            "docker-compose.yml",
            "deploy/compose/failover/docker-compose.override.yml",
        ],
        config: "deploy/compose/failover",
        ..Layout::default()
    };
    layout.node_services.push("smb");
    layout.other_services.push("client");
    layout
}

fn samba_layout(samba_image: &str) -> Layout {
    Layout {
        files: vec!["deploy/samba-image/docker-compose.yml"],
        config: "deploy/samba-image/config",
        config_env: "CTDB_SAMBA_CONFIG",
        node_services: vec!["smb"],
        other_services: vec!["client"],
        env: vec![("CTDB_SAMBA_IMAGE", samba_image.to_string())],
    }
}

/// What one failover did, timed from the kill.
struct Measurement {
    address: String,
    holder: u32,
    leader: Option<u32>,
    new_holder: Option<u32>,
    answers_after: Option<Duration>,
    /// When the client's connection ended, and whether by a reset.
    client_end: Option<(Duration, bool)>,
}

impl Measurement {
    fn reset(&self) -> Option<Duration> {
        self.client_end.filter(|(_, reset)| *reset).map(|(t, _)| t)
    }

    fn describe(&self) -> String {
        let answers = self
            .answers_after
            .map_or(format!("no answer within {WATCH:?}"), |t| {
                format!("{:.1} s", t.as_secs_f64())
            });
        let client = match &self.client_end {
            None => format!("open after {WATCH:?}"),
            Some((t, true)) => format!("reset {:.1} s", t.as_secs_f64()),
            Some((t, false)) => format!("closed without a reset {:.1} s", t.as_secs_f64()),
        };
        format!(
            "{} answers {answers} after the kill, client {client} (holder node {} -> {:?}, leader {:?})",
            self.address, self.holder, self.new_holder, self.leader
        )
    }
}

/// Who holds each public address, from `ctdb ip all`: (address, pnn or -1).
fn placement(cluster: &ComposeCluster, pnn: u32) -> Result<Vec<(String, i64)>, String> {
    let out = cluster.ctdb(pnn, &["ip", "all"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let address = words.next()?;
            let holder = words.next()?.parse().ok()?;
            address
                .starts_with(&cluster.subnet)
                .then(|| (address.to_string(), holder))
        })
        .collect())
}

/// `a.b.c.d:port` as /proc/net/tcp prints it (the address's bytes in host order).
fn proc_net_tcp_endpoint(address: &str, port: u16) -> String {
    let octets: Vec<u8> = address.split('.').filter_map(|o| o.parse().ok()).collect();
    let hex: String = octets.iter().rev().map(|o| format!("{o:02X}")).collect();
    format!("{hex}:{port:04X}")
}

/// The client's count of connections reset (`Tcp: ... EstabResets` of /proc/net/snmp
/// in its network namespace): established connections that a RST closed.
fn client_resets(cluster: &ComposeCluster) -> Result<u64, String> {
    let snmp = docker(&["exec", cluster.container("client"), "cat", "/proc/net/snmp"])?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next(), tcp.next());
    names
        .zip(values)
        .and_then(|(names, values)| {
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(name, _)| *name == "EstabResets")
                .and_then(|(_, v)| v.parse().ok())
        })
        .ok_or(format!("no Tcp EstabResets in /proc/net/snmp:\n{snmp}"))
}

/// The client's port of its established connection to `server`:445.
fn client_port(cluster: &ComposeCluster, server: &str) -> Result<u16, String> {
    let table = docker(&["exec", cluster.container("client"), "cat", "/proc/net/tcp"])?;
    let remote = proc_net_tcp_endpoint(server, 445);
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == remote && f[3] == "01")
        .and_then(|f| f[1].rsplit_once(':'))
        .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        .ok_or(format!(
            "no established connection to {server}:445:\n{table}"
        ))
}

/// Which node dies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Victim {
    /// The holder of the first address (from .101) held by a node that is not the
    /// leader: a takeover only.
    NotLeader,
    /// The leader, holding the first address it holds: an election, then a takeover.
    Leader,
}

/// Runs the failover on `cluster`: see the module's comment. `net_admin` is the
/// service suffix of a node's container that may change its routes ("" for `nodeN`).
fn measure(cluster: &ComposeCluster, name: &str, net_admin: &str, victim: Victim) -> Measurement {
    let started = Instant::now();
    let client_address = format!("{}.{CLIENT_HOST}", cluster.subnet);

    // Every node up and holding an address, every address placed, and nothing moved
    // for 2 s (a node that has just come back gets its share in a later takeover run);
    // the address is chosen by `victim`.
    let mut settling: Option<(Vec<(String, i64)>, Instant)> = None;
    let (address, holder, leader) = cluster.wait_for(
        &format!("{name}: every public address placed"),
        Duration::from_secs(120),
        || {
            let status = cluster.status(0)?;
            for pnn in 0..NODES {
                if status.flags(pnn) != "OK" {
                    return Err(format!("node {pnn} is {:?}", status.flags(pnn)));
                }
            }
            if !status.recovery_normal {
                return Err("recovering".into());
            }
            let mut placed = placement(cluster, 0)?;
            placed.sort();
            if placed.len() != 6 || placed.iter().any(|(_, h)| *h < 0) {
                return Err(format!("placement {placed:?}"));
            }
            if (0..NODES).any(|pnn| !placed.iter().any(|(_, h)| *h == i64::from(pnn))) {
                return Err(format!("a node holds no address: {placed:?}"));
            }
            match &settling {
                Some((before, since)) if *before == placed => {
                    if since.elapsed() < Duration::from_secs(2) {
                        return Err(format!("settling: {placed:?}"));
                    }
                }
                _ => {
                    settling = Some((placed.clone(), Instant::now()));
                    return Err(format!("settling: {placed:?}"));
                }
            }
            placed
                .iter()
                .find(|(_, h)| {
                    (Some(*h) == status.leader.map(i64::from)) == (victim == Victim::Leader)
                })
                .and_then(|(a, h)| Some((a.clone(), u32::try_from(*h).ok()?, status.leader)))
                .ok_or(format!(
                    "no address for {victim:?} (leader {:?}): {placed:?}",
                    status.leader
                ))
        },
    );
    eprintln!(
        "failover {name}: addresses placed, {address} on node {holder} ({:.1}s)",
        started.elapsed().as_secs_f64()
    );

    // The client's connection, shown to work by an echo through the server.
    let mut nc = Command::new("docker")
        .args([
            "exec",
            "-i",
            cluster.container("client"),
            "nc",
            &address,
            "445",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec nc");
    let mut nc_in = nc.stdin.take().expect("nc stdin");
    let nc_out = nc.stdout.take().expect("nc stdout");
    let mut nc_err = nc.stderr.take().expect("nc stderr");
    let (echo_tx, echo_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(nc_out).lines() {
            let Ok(line) = line else { break };
            let _ = echo_tx.send(line);
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = nc_err.read_to_string(&mut text);
        text
    });
    nc_in.write_all(b"hello\n").expect("write to nc");
    nc_in.flush().expect("flush nc");
    let echo = echo_rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        echo.as_deref(),
        Ok("hello"),
        "{name}: no echo from {address}:445"
    );
    let port = cluster.wait_for(
        &format!("{name}: the client's connection in /proc/net/tcp"),
        Duration::from_secs(10),
        || client_port(cluster, &address),
    );
    let connection = format!("{client_address}:{port}");
    let server = format!("{address}:445");

    // Registered on every node, as smbd's TCP_CLIENT would.
    for pnn in 0..NODES {
        cluster
            .ctdb(pnn, &["addtickle", &connection, &server])
            .unwrap_or_else(|e| panic!("{name}: addtickle on node {pnn}: {e}"));
    }
    for pnn in (0..NODES).filter(|p| *p != holder) {
        cluster.wait_for(
            &format!("{name}: node {pnn} lists the connection"),
            Duration::from_secs(10),
            || {
                let out = cluster.ctdb(pnn, &["gettickles", &address])?;
                out.contains(&connection)
                    .then_some(())
                    .ok_or(format!("gettickles: {out}"))
            },
        );
    }

    // The client watches its connection from here on (busybox nc ends alike on a FIN
    // and on a reset: the client's kernel's count of resets tells them apart).
    let resets_before = client_resets(cluster).expect("the client's TCP counters");
    let (end_tx, end_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = nc.wait();
        let ended = Instant::now();
        let _ = err_reader.join();
        drop(nc_in);
        let _ = end_tx.send(ended);
    });

    // The holder dies: first nothing from it reaches the client, then every container.
    let admin = if net_admin.is_empty() {
        format!("node{holder}")
    } else {
        format!("node{holder}-{net_admin}")
    };
    docker(&[
        "exec",
        cluster.container(&admin),
        "ip",
        "route",
        "add",
        "blackhole",
        &format!("{client_address}/32"),
    ])
    .unwrap_or_else(|e| panic!("{name}: blackhole route on node {holder}: {e}"));
    let victims = cluster.node_containers(holder);
    let mut kill = vec!["kill"];
    kill.extend(victims.iter().map(String::as_str));
    let killed = Instant::now();
    docker(&kill).unwrap_or_else(|e| panic!("{name}: docker kill: {e}"));

    // Pings every 0.1 s; busybox's ping prints each reply at once.
    let mut ping = Command::new("docker")
        .args([
            "exec",
            cluster.container("client"),
            "ping",
            "-i",
            "0.1",
            "-w",
            &WATCH.as_secs().to_string(),
            &address,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker exec ping");
    let ping_out = ping.stdout.take().expect("ping stdout");
    let (answer_tx, answer_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(ping_out).lines() {
            let Ok(line) = line else { break };
            if line.contains("bytes from") {
                let _ = answer_tx.send(Instant::now());
                break;
            }
        }
    });

    let deadline = killed + WATCH;
    let mut answered = None;
    let mut ended = None;
    while Instant::now() < deadline && (answered.is_none() || ended.is_none()) {
        if answered.is_none() {
            answered = answer_rx.try_recv().ok();
        }
        if ended.is_none() {
            ended = end_rx.try_recv().ok();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = ping.kill();
    let _ = ping.wait();

    let survivor = (0..NODES).find(|p| *p != holder).unwrap_or(0);
    let new_holder = placement(cluster, survivor).ok().and_then(|placed| {
        placed
            .iter()
            .find(|(a, _)| *a == address)
            .and_then(|(_, h)| u32::try_from(*h).ok())
    });
    let reset = client_resets(cluster).is_ok_and(|n| n > resets_before);
    Measurement {
        address,
        holder,
        leader,
        new_holder,
        answers_after: answered.map(|t| t.saturating_duration_since(killed)),
        client_end: ended.map(|t| (t.saturating_duration_since(killed), reset)),
    }
}

/// Both failovers on one cluster: a node that is not the leader dies, is started again
/// (`docker start` of its containers), then the leader dies.
fn measure_both(cluster: &ComposeCluster, name: &str, net_admin: &str) -> [Measurement; 2] {
    let first = measure(cluster, name, net_admin, Victim::NotLeader);
    eprintln!("failover {name}: {}", first.describe());
    for container in cluster.node_containers(first.holder) {
        docker(&["start", &container])
            .unwrap_or_else(|e| panic!("{name}: docker start {container}: {e}"));
    }
    let second = measure(cluster, name, net_admin, Victim::Leader);
    eprintln!("failover {name}, leader killed: {}", second.describe());
    [first, second]
}

/// What must hold for ours after a failover.
fn check_ours(m: &Measurement, what: &str) {
    let answers = m
        .answers_after
        .unwrap_or_else(|| panic!("{what}: the address never answered again"));
    assert!(
        answers <= BOUND,
        "{what}: the address answered only {answers:?} after the kill"
    );
    assert!(
        m.new_holder.is_some_and(|h| h != m.holder),
        "{what}: the address is not on another node: {:?}",
        m.new_holder
    );
    let reset = m.reset().unwrap_or_else(|| {
        panic!(
            "{what}: the client's connection was not reset: {:?}",
            m.client_end
        )
    });
    assert!(
        reset <= BOUND,
        "{what}: the client's connection was reset only {reset:?} after the kill"
    );
}

#[test]
fn failover_ours_beside_sambas_ctdbd() {
    // The override's configuration is the one shipped: the interface script is ours.
    let shipped =
        std::fs::read(compose::workspace().join("deploy/events/legacy/10.interface.script"))
            .expect("deploy/events/legacy/10.interface.script");
    let copy = std::fs::read(
        compose::workspace().join("deploy/compose/failover/events/legacy/10.interface.script"),
    )
    .expect("deploy/compose/failover/events/legacy/10.interface.script");
    assert!(
        shipped == copy,
        "deploy/compose/failover/events/legacy/10.interface.script differs from deploy/events/legacy/10.interface.script"
    );

    if !compose::can_run() {
        return;
    }
    let image = compose::image().expect("build the image with deploy/build-image.sh");

    let ours = {
        let cluster = ComposeCluster::up_with(&image, ours_layout()).expect("docker-compose up");
        eprintln!(
            "failover ctdb-rs: project {} on {}.0/24",
            cluster.project, cluster.subnet
        );
        // The node's directories are root's and not group/world-writable, as a node
        // running as root may require of them.
        for (service, dir) in [
            ("node0-eventd", "/run/ctdb"),
            ("node0-eventd", "/etc/ctdb/events/legacy"),
            ("node0-db", "/var/lib/ctdb"),
        ] {
            let mode = docker(&[
                "exec",
                cluster.container(service),
                "stat",
                "-c",
                "%u %a",
                dir,
            ])
            .unwrap_or_else(|e| panic!("stat {dir} in {service}: {e}"));
            assert_eq!(mode.trim(), "0 755", "owner and mode of {dir} in {service}");
        }
        let [first, leader] = measure_both(&cluster, "ctdb-rs", "eventd");
        check_ours(&first, "a node other than the leader killed");
        check_ours(&leader, "the leader killed");
        [first, leader]
    };

    let samba = if !std::path::Path::new("/usr/sbin/ctdbd").exists() {
        assert!(
            !in_ci(),
            "CI must have Samba's ctdb installed (apt-get install ctdb ethtool)"
        );
        None
    } else {
        let samba_image = compose::samba_image()
            .unwrap_or_else(|e| panic!("the image of Samba's ctdbd cannot be built: {e}"));
        let cluster = ComposeCluster::up_with(&image, samba_layout(&samba_image))
            .unwrap_or_else(|e| panic!("Samba's ctdbd cluster did not start: {e}"));
        eprintln!(
            "failover Samba: project {} on {}.0/24",
            cluster.project, cluster.subnet
        );
        Some(measure_both(&cluster, "Samba", ""))
    };

    let seconds =
        |t: Option<Duration>| t.map_or("-".to_string(), |t| format!("{:.1} s", t.as_secs_f64()));
    let both = |[first, leader]: &[Measurement; 2]| {
        format!(
            "{} / {} (leader killed: {} / {})",
            seconds(first.answers_after),
            seconds(first.reset()),
            seconds(leader.answers_after),
            seconds(leader.reset())
        )
    };
    eprintln!(
        "failover (address answers / client reset, after the kill): ctdb-rs {}; {}",
        both(&ours),
        match &samba {
            Some(m) => format!("Samba 4.17 ctdbd {}", both(m)),
            None => "Samba's ctdbd not measured (not installed)".to_string(),
        }
    );
}
