//! Issue 13: nodes by name. The nodes file lists DNS names (here from `/etc/hosts`,
//! as a StatefulSet's pods have stable names); a node that comes back with another
//! address rejoins under its name, and the others show its new address. Needs root
//! (it writes `/etc/hosts`), which CI has.

use std::time::{Duration, Instant};

use ctdb_protocol::flags::dest;
use ctdb_tests::TestCluster;

const TAG: &str = "# ctdb-rs nodes_by_name test";

/// Lines of `/etc/hosts` for this test, removed on drop.
struct Hosts;

impl Hosts {
    fn set(entries: &[(String, String)]) -> Self {
        write_hosts(entries);
        Self
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        write_hosts(&[]);
    }
}

/// `/etc/hosts` without this test's lines, then `entries` as this test's.
fn write_hosts(entries: &[(String, String)]) {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut kept: Vec<String> = text
        .lines()
        .filter(|l| !l.ends_with(TAG))
        .map(str::to_owned)
        .collect();
    for (addr, name) in entries {
        kept.push(format!("{addr} {name} {TAG}"));
    }
    std::fs::write("/etc/hosts", kept.join("\n") + "\n").expect("write /etc/hosts");
}

fn names() -> Vec<String> {
    (0..3)
        .map(|i| format!("ctdbname{i}.ctdb-rs.test"))
        .collect()
}

async fn address_of(client: &ctdb_client::Client, pnn: u32) -> Option<std::net::IpAddr> {
    let map = client.get_nodemap(dest::CURRENT_NODE).await.ok()?;
    map.nodes
        .iter()
        .find(|n| n.pnn == pnn)
        .and_then(|n| n.addr.socket_addr())
        .map(|a| a.ip())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_with_a_new_address_rejoins_by_name() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        eprintln!("skipped: not root");
        return;
    }
    let subnet = ctdb_tests::loopback_subnet();
    let addrs: Vec<String> = (1..=3).map(|i| format!("{subnet}.{i}")).collect();
    let names = names();
    let entries: Vec<(String, String)> = addrs.iter().cloned().zip(names.clone()).collect();
    let _hosts = Hosts::set(&entries);

    let mut cluster = TestCluster::start_by_name(&names, &addrs);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let c0 = clients[0].as_ref().expect("node 0");
    let db = c0
        .attach(dest::CURRENT_NODE, "byname.tdb", true)
        .await
        .expect("attach");
    c0.persistent_store(db, b"before", b"kept")
        .await
        .expect("commit");
    assert_eq!(
        address_of(c0, 2).await.map(|a| a.to_string()),
        Some(addrs[2].clone()),
        "node 2 as its name resolved"
    );
    drop(clients);

    // Node 2 comes back elsewhere: its name now resolves to a new address.
    cluster.nodes[2].crash();
    let moved = format!("{subnet}.9");
    let mut entries = entries;
    entries[2].0 = moved.clone();
    let _hosts = Hosts::set(&entries);
    let conf = cluster.nodes[2].dir().join("ctdb.conf");
    let text = std::fs::read_to_string(&conf).expect("ctdb.conf");
    std::fs::write(&conf, text.replace(&addrs[2], &moved)).expect("ctdb.conf");
    let back = Instant::now();
    cluster.nodes[2].restart();

    let clients = cluster.healthy(&[0, 1, 2]).await;
    eprintln!(
        "node 2 rejoined from {moved} after {:.1} s",
        back.elapsed().as_secs_f32()
    );
    for (pnn, c) in clients.iter().enumerate() {
        let c = c.as_ref().expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while address_of(c, 2).await.map(|a| a.to_string()) != Some(moved.clone()) {
            assert!(
                Instant::now() < deadline,
                "node {pnn} does not show node 2 at {moved}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c.attach(dest::CURRENT_NODE, "byname.tdb", true)
            .await
            .expect("attach");
        assert_eq!(
            &c.fetch(db, b"before").await.expect("fetch")[..],
            b"kept",
            "node {pnn}"
        );
    }
}
