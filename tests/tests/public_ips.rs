//! Public addresses on a 3-node cluster of real processes: the leader's takeover runs
//! place every address on exactly one node, every node agrees on who holds what, and
//! a crashed node's addresses move to the others.
//!
//! The addresses are in a private range on an interface that need not exist: the
//! events directory is empty, so `takeip` / `releaseip` configure nothing on the host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::control::PublicIpList;
use ctdb_protocol::flags::dest;
use ctdb_protocol::{srvid, Opcode, Wire};
use ctdb_tests::{bin, samba_ctdb, TestCluster};

const ADDRESSES: &str = "10.77.0.1/24 ctdbtest0\n10.77.0.2/24 ctdbtest0\n\
                         10.77.0.3/24 ctdbtest0\n10.77.0.4/24 ctdbtest0\n\
                         10.77.0.5/24 ctdbtest0\n10.77.0.6/24 ctdbtest0\n";

/// One node's view: each address and the node it says holds it.
async fn view(client: &Client) -> Result<BTreeMap<IpAddr, u32>, String> {
    let data = client
        .control(dest::CURRENT_NODE, Opcode::GetPublicIps, 0, Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    let list = PublicIpList::from_bytes(&data).map_err(|e| e.to_string())?;
    Ok(list
        .ips
        .iter()
        .filter_map(|ip| ip.addr.socket_addr().map(|a| (a.ip(), ip.pnn)))
        .collect())
}

/// Waits until the nodes behind `clients` agree on one holder for each of the six
/// addresses, every holder in `holders`, no holder with two more than another;
/// returns the placement.
async fn placed(clients: &[&Client], holders: &[u32]) -> BTreeMap<IpAddr, u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views = Vec::new();
        for c in clients {
            views.push(view(c).await);
        }
        let why = match views.first() {
            Some(Ok(first)) if views.iter().all(|v| v.as_ref() == Ok(first)) => {
                let mut load: BTreeMap<u32, usize> = holders.iter().map(|&p| (p, 0)).collect();
                for p in first.values() {
                    if let Some(n) = load.get_mut(p) {
                        *n += 1;
                    }
                }
                let (min, max) = (load.values().min(), load.values().max());
                if first.len() == 6
                    && first.values().all(|p| holders.contains(p))
                    && max.zip(min).is_some_and(|(a, b)| a - b <= 1)
                {
                    return first.clone();
                }
                format!("placement {first:?}")
            }
            _ => format!("views differ: {views:?}"),
        };
        assert!(Instant::now() < deadline, "addresses not placed: {why}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_address_has_one_holder_and_a_crashed_node_s_move() {
    let mut cluster = TestCluster::start_with(3, ADDRESSES);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let first = placed(&all, &[0, 1, 2]).await;
    // Each holder claims its addresses on its own interface list.
    let ours = bin("ctdb");
    let node0 = &cluster.nodes[0];
    let out = node0.tool(&ours, &["ip", "all"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut expected = String::from("Public IPs on ALL nodes\n");
    for (addr, pnn) in &first {
        expected.push_str(&format!("{addr} {pnn}\n"));
    }
    assert_eq!(text, expected);
    let out = node0.tool(&ours, &["ifaces"]);
    let ifaces = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        ifaces,
        format!(
            "Interfaces on node 0\nname:ctdbtest0 link:up references:{}\n",
            first.values().filter(|&&p| p == 0).count()
        )
    );
    if let Some(samba) = samba_ctdb() {
        for args in [
            &["ip"][..],
            &["ip", "all"],
            &["-v", "ip"],
            &["-v", "ip", "all"],
            &["-X", "ip", "all"],
            &["ifaces"],
            &["-X", "ifaces"],
            &["-n", "2", "ifaces"],
            &["-n", "1", "ip"],
            &["-X", "-v", "ip"],
            &["ipinfo", "10.77.0.1"],
            &["-n", "1", "ipinfo", "10.77.0.2"],
            &["ipinfo", "10.77.9.9"],
        ] {
            let a = node0.tool(&ours, args);
            let b = node0.tool(&samba, args);
            assert_eq!(
                String::from_utf8_lossy(&a.stdout),
                String::from_utf8_lossy(&b.stdout),
                "ctdb {args:?}"
            );
            assert_eq!(a.status.code(), b.status.code(), "ctdb {args:?}");
        }
    }
    // A restarted recovery daemon starts knowing no holders: the leader notices and
    // its node gets its addresses back.
    let leader = all[0]
        .control_status(dest::CURRENT_NODE, Opcode::GetRecmaster, Bytes::new())
        .await
        .expect("GET_RECMASTER") as u32;
    let other = (0..3).find(|&p| p != leader).expect("a non-leader");
    cluster.nodes[other as usize]
        .kill_and_wait_restart("ctdb-recoverd")
        .await;
    let again = placed(&all, &[0, 1, 2]).await;
    assert_eq!(again, first, "a restarted recovery daemon moved addresses");

    // moveip: an address of node 0 goes to node 1, and every node knows it at once.
    let (moved, _) = first
        .iter()
        .find(|(_, &p)| p == 0)
        .expect("node 0 holds an address");
    let mut released = all[0]
        .register_srvid(srvid::RELEASE_IP)
        .await
        .expect("register RELEASE_IP");
    let mut taken = all[1]
        .register_srvid(srvid::TAKE_IP)
        .await
        .expect("register TAKE_IP");
    let out = node0.tool(&ours, &["moveip", &moved.to_string(), "1"]);
    assert!(out.status.success(), "moveip: {out:?}");
    for c in &all {
        assert_eq!(view(c).await.expect("view")[moved], 1);
    }
    // Clients of the two nodes heard of it, as Samba's smbd does.
    let said = format!("{moved}\0").into_bytes();
    for (rx, what) in [(&mut released, "RELEASE_IP"), (&mut taken, "TAKE_IP")] {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} message"))
            .expect("message");
        assert_eq!(m.data.to_vec(), said, "{what}");
    }
    // Not a public address of node 1: five tries, then Samba's words.
    let out = node0.tool(&ours, &["moveip", "10.77.9.9", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Node 1 CANNOT host IP address 10.77.9.9\n".repeat(5)
            + "Failed to move IP 10.77.9.9 to node 1\n"
    );
    drop(clients);

    // Node 2 crashes: its addresses go to nodes 0 and 1, three each.
    cluster.nodes[2].crash();
    let clients = cluster.healthy(&[0, 1]).await;
    let rest: Vec<&Client> = clients.iter().flatten().collect();
    let after = placed(&rest, &[0, 1]).await;
    for (addr, pnn) in &first {
        if *pnn != 2 && addr != moved {
            assert_eq!(after[addr], *pnn, "{addr} moved though its holder stayed");
        }
    }

    // addip on node 0: only node 0 can host the new address, and gets it; delip
    // releases it and forgets it.
    let node0 = &cluster.nodes[0];
    let out = node0.tool(&ours, &["addip", "10.77.0.7/24", "ctdbtest0"]);
    assert!(out.status.success(), "addip: {out:?}");
    let new: IpAddr = "10.77.0.7".parse().expect("ip");
    let deadline = Instant::now() + Duration::from_secs(30);
    while view(rest[0]).await.expect("view").get(&new) != Some(&0) {
        assert!(
            Instant::now() < deadline,
            "the added address was not placed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let out = node0.tool(&ours, &["ip"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\n10.77.0.7 0\n"));
    let out = node0.tool(&ours, &["delip", "10.77.0.7"]);
    assert!(out.status.success(), "delip: {out:?}");
    assert!(!view(rest[0]).await.expect("view").contains_key(&new));
    let out = node0.tool(&ours, &["delip", "10.77.0.7"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Node does not know about IP address 10.77.0.7\n"
    );
}

/// An event script that notes every event but `monitor` with its arguments in
/// `events.log` beside the events directory.
const RECORDER: &str = "#!/bin/sh\n\
    [ \"$1\" = monitor ] && exit 0\n\
    echo \"$@\" >> \"$(dirname \"$0\")/../events.log\"\n\
    exit 0\n";

fn events(cluster: &TestCluster, pnn: usize) -> Vec<String> {
    std::fs::read_to_string(cluster.nodes[pnn].dir().join("events.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeip_gets_samba_s_arguments_and_recovered_comes_before_ipreallocated() {
    let mut cluster = TestCluster::start_with_files(
        3,
        &[
            ("public_addresses", ADDRESSES),
            ("events/10.recorder", RECORDER),
        ],
    );
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let first = placed(&all, &[0, 1, 2]).await;
    // Each node ran `takeip IFACE ADDR BITS` for what it holds.
    for pnn in 0..3u32 {
        let log = events(&cluster, pnn as usize);
        for (addr, _) in first.iter().filter(|(_, &p)| p == pnn) {
            let line = format!("takeip ctdbtest0 {addr} 24");
            assert!(log.contains(&line), "node {pnn} has no '{line}': {log:?}");
        }
    }
    // A disabled node releases its addresses to the others, and gets its share back
    // when enabled again (failback).
    let ours = bin("ctdb");
    let out = cluster.nodes[0].tool(&ours, &["-n", "1", "disable"]);
    assert!(out.status.success(), "disable: {out:?}");
    placed(&all, &[0, 2]).await;
    let log = events(&cluster, 1);
    for (addr, _) in first.iter().filter(|(_, &p)| p == 1) {
        let line = format!("releaseip ctdbtest0 {addr} 24");
        assert!(log.contains(&line), "node 1 has no '{line}': {log:?}");
    }
    let out = cluster.nodes[0].tool(&ours, &["-n", "1", "enable"]);
    assert!(out.status.success(), "enable: {out:?}");
    let first = placed(&all, &[0, 1, 2]).await;
    drop(clients);
    cluster.nodes[2].crash();
    let clients = cluster.healthy(&[0, 1]).await;
    let rest: Vec<&Client> = clients.iter().flatten().collect();
    let after = placed(&rest, &[0, 1]).await;
    // The recovery after the crash, then the takeover run: on each survivor, the
    // `takeip` of an address node 2 had comes after the last `recovered`, and an
    // `ipreallocated` after both.
    let deadline = Instant::now() + Duration::from_secs(30);
    for pnn in 0..2u32 {
        let gained: Vec<String> = first
            .iter()
            .filter(|(a, &p)| p == 2 && after[a] == pnn)
            .map(|(a, _)| format!("takeip ctdbtest0 {a} 24"))
            .collect();
        loop {
            let log = events(&cluster, pnn as usize);
            let last = |word: &str| log.iter().rposition(|l| l.starts_with(word));
            let recovered = last("recovered");
            let realloc = last("ipreallocated");
            let took: Vec<Option<usize>> = gained
                .iter()
                .map(|g| log.iter().rposition(|l| l == g))
                .collect();
            let ordered = recovered.is_some()
                && took.iter().all(|t| t.is_some() && *t > recovered)
                && took.iter().all(|t| realloc > *t)
                && realloc > recovered;
            if ordered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {pnn}: events out of order: {log:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // Node 1's interface link goes down: its addresses are no longer available there,
    // and the leader moves them to node 0. Samba's tool (when installed) sets it up
    // again.
    let ours = bin("ctdb");
    let out = cluster.nodes[1].tool(&ours, &["setifacelink", "ctdbtest0", "down"]);
    assert!(out.status.success(), "setifacelink: {out:?}");
    let out = cluster.nodes[1].tool(&ours, &["ifaces"]);
    // (references: however many it still holds at this moment)
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("Interfaces on node 1\nname:ctdbtest0 link:down references:"));
    placed(&rest, &[0]).await;
    let tool = samba_ctdb().unwrap_or_else(|| ours.clone());
    let out = cluster.nodes[1].tool(&tool, &["setifacelink", "ctdbtest0", "up"]);
    assert!(out.status.success(), "setifacelink: {out:?}");
    let out = cluster.nodes[1].tool(&tool, &["ifaces"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Interfaces on node 1\nname:ctdbtest0 link:up references:0\n"
    );
    let out = cluster.nodes[1].tool(&tool, &["setifacelink", "eth9", "up"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Interface eth9 not configured on node 1\n"
    );
    // Link up again: node 1 gets its share at the next takeover run, which
    // `ctdb ipreallocate` asks for.
    let out = cluster.nodes[1].tool(&ours, &["ipreallocate"]);
    assert!(out.status.success(), "ipreallocate: {out:?}");
    placed(&rest, &[0, 1]).await;
}

/// The addresses every node agrees are placed (each held by some node), once they
/// are exactly `want`.
async fn placed_exactly(clients: &[&Client], want: &[&str]) -> BTreeMap<IpAddr, u32> {
    let want: Vec<IpAddr> = want.iter().map(|a| a.parse().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut views = Vec::new();
        for c in clients {
            views.push(view(c).await);
        }
        if let Some(Ok(first)) = views.first() {
            let same = views.iter().all(|v| v.as_ref() == Ok(first));
            let keys: Vec<IpAddr> = first.keys().copied().collect();
            if same && keys == want && first.values().all(|&p| p != dest::UNKNOWN_PNN) {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "addresses never became {want:?}: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloadips_adds_and_removes_addresses() {
    let cluster = TestCluster::start_with(3, "10.78.0.1/24 ctdbtest0\n10.78.0.2/24 ctdbtest0\n");
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    placed_exactly(&all, &["10.78.0.1", "10.78.0.2"]).await;

    // A third address in every node's file, then `ctdb reloadips all` (ours).
    let three = "10.78.0.1/24 ctdbtest0\n10.78.0.2/24 ctdbtest0\n10.78.0.3/24 ctdbtest0\n";
    for n in &cluster.nodes {
        std::fs::write(n.dir().join("public_addresses"), three).unwrap();
    }
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["reloadips", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    placed_exactly(&all, &["10.78.0.1", "10.78.0.2", "10.78.0.3"]).await;

    // One address leaves every file: gone from every node after Samba's own tool
    // asked each node in turn (its default is the node it talks to).
    let two = "10.78.0.1/24 ctdbtest0\n10.78.0.3/24 ctdbtest0\n";
    for n in &cluster.nodes {
        std::fs::write(n.dir().join("public_addresses"), two).unwrap();
    }
    let tool = samba_ctdb().unwrap_or_else(|| bin("ctdb"));
    for n in &cluster.nodes {
        let out = n.tool(&tool, &["reloadips"]);
        assert!(
            out.status.success(),
            "{}: {}",
            tool.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    placed_exactly(&all, &["10.78.0.1", "10.78.0.3"]).await;
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["reloadips", "7"]);
    assert!(!out.status.success(), "an unknown node");
}

/// Three nodes with the six addresses and the event recorder, every address placed;
/// also the addresses node 1 holds.
async fn recorded_cluster() -> (TestCluster, Vec<IpAddr>) {
    let cluster = TestCluster::start_with_files(
        3,
        &[
            ("public_addresses", ADDRESSES),
            ("events/10.recorder", RECORDER),
        ],
    );
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let first = placed(&all, &[0, 1, 2]).await;
    let held: Vec<IpAddr> = first
        .iter()
        .filter(|(_, &p)| p == 1)
        .map(|(a, _)| *a)
        .collect();
    assert!(!held.is_empty(), "{first:?}");
    (cluster, held)
}

/// Waits until node 1's event log has a `releaseip` for each of `held`.
async fn released_by_node_1(cluster: &TestCluster, held: &[IpAddr]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = events(cluster, 1);
        if held
            .iter()
            .all(|a| log.contains(&format!("releaseip ctdbtest0 {a} 24")))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 did not release {held:?}: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_on_purpose_hands_its_addresses_over_first() {
    let (mut cluster, held) = recorded_cluster().await;
    // SIGTERM to node 1's ctdbd (as systemd, docker or Kubernetes stop it).
    let began = Instant::now();
    cluster.nodes[1].stop();
    let stopped_after = began.elapsed();
    // Node 1 released each of its addresses itself before it stopped (a node that is
    // simply gone never runs `releaseip`).
    released_by_node_1(&cluster, &held).await;
    let clients = cluster.healthy(&[0, 2]).await;
    let rest: Vec<&Client> = clients.iter().flatten().collect();
    placed(&rest, &[0, 2]).await;
    println!(
        "node 1 handed over {} addresses and stopped in {stopped_after:?}",
        held.len()
    );
}

/// A monitor script that fails while a `sick` file is beside the events directory.
const HEALTH: &str = "#!/bin/sh\n\
    [ \"$1\" = monitor ] && [ -e \"$(dirname \"$0\")/../sick\" ] && { echo sick; exit 1; }\n\
    exit 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_monitor_moves_the_addresses_away_and_a_passing_one_brings_them_back() {
    let cluster = TestCluster::start_with_files_env(
        3,
        &[
            ("public_addresses", ADDRESSES),
            ("events/10.health", HEALTH),
        ],
        &[("CTDB_MONITOR_INTERVAL", "1")],
    );
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    placed(&all, &[0, 1, 2]).await;

    std::fs::write(cluster.nodes[1].dir().join("sick"), "").unwrap();
    placed(&all, &[0, 2]).await;
    let map = all[0]
        .get_nodemap(dest::CURRENT_NODE)
        .await
        .expect("node map");
    let flags = map.nodes.iter().find(|n| n.pnn == 1).expect("node 1").flags;
    assert_ne!(
        flags & ctdb_protocol::flags::node::UNHEALTHY,
        0,
        "node 1 is not UNHEALTHY: flags {flags:#x}"
    );

    std::fs::remove_file(cluster.nodes[1].dir().join("sick")).unwrap();
    placed(&all, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickle_lists_are_kept_replicated_and_printed_as_samba_does() {
    use ctdb_protocol::control::{Connection, SockAddr};
    let cluster = TestCluster::start_with(3, ADDRESSES);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    placed(&all, &[0, 1, 2]).await;
    let ours = bin("ctdb");
    let node0 = &cluster.nodes[0];
    let text = |o: &std::process::Output| {
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code(),
        )
    };

    let (stdout, _, code) = text(&node0.tool(&ours, &["gettickles", "10.77.0.1"]));
    assert_eq!(
        (stdout.as_str(), code),
        (
            "Connections for IP: 10.77.0.1\nNum connections: 0\n",
            Some(0)
        )
    );
    // Not a public address: Samba's words and status (its capture has them).
    let (_, stderr, code) = text(&node0.tool(&ours, &["gettickles", "127.0.0.1"]));
    assert_eq!(
        (stderr.as_str(), code),
        (
            "Control GET_TCP_TICKLE_LIST failed, ret=1\nFailed to get list of connections\n",
            Some(1)
        )
    );
    let out = node0.tool(&ours, &["addtickle", "192.168.9.5:40000", "10.77.0.1:445"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _, _) = text(&node0.tool(&ours, &["gettickles", "10.77.0.1"]));
    assert_eq!(
        stdout,
        "Connections for IP: 10.77.0.1\nNum connections: 1\n\
         SRC: 192.168.9.5:40000   DST: 10.77.0.1:445\n"
    );
    if let Some(samba) = samba_ctdb() {
        let (theirs, _, _) = text(&node0.tool(&samba, &["gettickles", "10.77.0.1"]));
        assert_eq!(theirs, stdout, "Samba's tool prints the same");
    }
    // A client's TCP_CLIENT on node 0 reaches every node's list.
    let conn = Connection {
        src: SockAddr::from("192.168.9.6:40001".parse::<std::net::SocketAddr>().unwrap()),
        dst: SockAddr::from("10.77.0.2:445".parse::<std::net::SocketAddr>().unwrap()),
    };
    all[0]
        .control(
            dest::CURRENT_NODE,
            Opcode::TcpClient,
            0,
            Bytes::from(conn.to_bytes()),
        )
        .await
        .expect("TCP_CLIENT");
    for n in ["0", "1", "2"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (stdout, _, _) =
                text(&node0.tool(&ours, &["-n", n, "gettickles", "10.77.0.2", "445"]));
            if stdout.contains("SRC: 192.168.9.6:40001   DST: 10.77.0.2:445") {
                break;
            }
            assert!(Instant::now() < deadline, "node {n}: {stdout}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let out = node0.tool(&ours, &["deltickle", "192.168.9.5:40000", "10.77.0.1:445"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _, _) = text(&node0.tool(&ours, &["gettickles", "10.77.0.1"]));
    assert!(stdout.ends_with("Num connections: 0\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctdb_shutdown_hands_the_addresses_over_too() {
    let (cluster, held) = recorded_cluster().await;
    let out = cluster.nodes[1].tool(&bin("ctdb"), &["shutdown"]);
    assert!(out.status.success(), "{out:?}");
    // Node 1 released its addresses itself before it went away.
    released_by_node_1(&cluster, &held).await;
    let clients = cluster.healthy(&[0, 2]).await;
    let rest: Vec<&Client> = clients.iter().flatten().collect();
    placed(&rest, &[0, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_sends_its_tickle_lists_to_the_others() {
    let cluster = TestCluster::start_with(3, ADDRESSES);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let first = placed(&all, &[0, 1, 2]).await;
    for c in &all {
        c.set_tunable(dest::CURRENT_NODE, "TickleUpdateInterval", 1)
            .await
            .expect("setvar");
    }
    let (addr, holder) = first
        .iter()
        .next()
        .map(|(a, p)| (*a, *p))
        .expect("an address");
    // `addtickle` tells the holder only; its next update tells the others.
    let ours = bin("ctdb");
    let node0 = &cluster.nodes[0];
    let holder_arg = holder.to_string();
    let out = node0.tool(
        &ours,
        &[
            "-n",
            &holder_arg,
            "addtickle",
            "192.168.9.7:40002",
            &format!("{addr}:445"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let line = format!("SRC: 192.168.9.7:40002   DST: {addr}:445");
    for n in 0..3u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = node0.tool(
                &ours,
                &["-n", &n.to_string(), "gettickles", &addr.to_string()],
            );
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if stdout.contains(&line) {
                break;
            }
            assert!(Instant::now() < deadline, "node {n} never got it: {stdout}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
