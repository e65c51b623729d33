//! A 3-node cluster of real processes on 127.A.B.1-3: it forms, elects one leader,
//! recovers when nodes or components go away, and heals when they come back.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::control::{PullDb, RecBuffer};
use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_protocol::{Opcode, Wire};
use ctdb_tests::{agreed_leader, create_records, TestCluster};

const HERE: u32 = dest::CURRENT_NODE;

fn all(clients: &[Option<Client>]) -> Vec<&Client> {
    clients.iter().flatten().collect()
}

/// Waits until the node behind `client` has database `db` attached (`attached`) or
/// not.
async fn wait_attached(client: &Client, db: u32, attached: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let map = client.get_dbmap(HERE).await.expect("dbmap");
        if map.dbs.iter().any(|d| d.db_id == db) == attached {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {}: database 0x{db:08x} still {}",
            client.pnn(),
            if attached { "not attached" } else { "attached" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every record of `db_id` on the node behind `client`, as (key, rsn).
async fn records(client: &Client, db_id: u32) -> Vec<(Vec<u8>, u64)> {
    let data = client
        .control(
            HERE,
            Opcode::PullDb,
            0,
            PullDb {
                db_id,
                lmaster: u32::MAX,
            }
            .to_bytes()
            .into(),
        )
        .await
        .expect("PULL_DB");
    let buffer = RecBuffer::from_bytes(&data).expect("record buffer");
    let mut out: Vec<(Vec<u8>, u64)> = buffer
        .records
        .iter()
        .map(|r| (r.key.to_vec(), r.header().map(|(h, _)| h.rsn).unwrap_or(0)))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_one_cluster_with_one_leader() {
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let leader = agreed_leader(&all(&clients)).await;
    assert!(leader < 3);
    // Controls and messages reach other nodes.
    let c0 = clients[0].as_ref().expect("node 0");
    assert_eq!(c0.get_pnn(2).await.expect("pnn of node 2"), 2);
    assert!(c0.ping(1).await.is_ok());
    // An attach on one node reaches every node, as with Samba.
    let db = c0
        .attach(HERE, "everywhere.tdb", false)
        .await
        .expect("attach");
    for c in all(&clients) {
        wait_attached(c, db, true).await;
    }
    // And a detach from another node leaves every node, once clients may no longer
    // attach (`ctdb detach` checks AllowClientDBAttach on every node; so does each
    // node).
    let tool = ctdb_tests::bin("ctdb");
    for node in &cluster.nodes {
        let out = node.tool(&tool, &["setvar", "AllowClientDBAttach", "0"]);
        assert!(out.status.success(), "{out:?}");
    }
    let out = cluster.nodes[1].tool(&tool, &["detach", "everywhere.tdb"]);
    assert!(out.status.success(), "{out:?}");
    for c in all(&clients) {
        wait_attached(c, db, false).await;
    }
    // Every node ran its startup event once, however quick its first recovery was.
    for node in &cluster.nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        let startups = || node.log().matches("event ran event=\"startup\"").count();
        while startups() == 0 {
            assert!(
                Instant::now() < deadline,
                "node {} never ran startup:\n{}",
                node.pnn,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(startups(), 1, "node {}", node.pnn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_and_rejoins() {
    let mut cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let leader = agreed_leader(&all(&clients)).await;
    drop(clients);

    cluster.nodes[leader as usize].crash();
    let rest: Vec<u32> = (0..3).filter(|&p| p != leader).collect();
    let clients = cluster.healthy(&rest).await;
    let new_leader = agreed_leader(&all(&clients)).await;
    assert_ne!(new_leader, leader);
    let c = all(&clients)[0].clone();
    let map = c.get_nodemap(HERE).await.expect("nodemap");
    assert_ne!(
        map.nodes[leader as usize].flags & node_flags::DISCONNECTED,
        0
    );
    drop(clients);

    cluster.nodes[leader as usize].restart();
    let clients = cluster.healthy(&[0, 1, 2]).await;
    agreed_leader(&all(&clients)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_stopped_and_banned_nodes_leave_the_vnn_map_and_return() {
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let c0 = clients[0].as_ref().expect("node 0").clone();
    drop(clients);

    let steps: [(Opcode, Bytes, Opcode, Bytes); 3] = [
        (
            Opcode::DisableNode,
            Bytes::new(),
            Opcode::EnableNode,
            Bytes::new(),
        ),
        (
            Opcode::StopNode,
            Bytes::new(),
            Opcode::ContinueNode,
            Bytes::new(),
        ),
        (
            Opcode::SetBanState,
            ctdb_protocol::control::BanState { pnn: 2, time: 300 }
                .to_bytes()
                .into(),
            Opcode::SetBanState,
            ctdb_protocol::control::BanState { pnn: 2, time: 0 }
                .to_bytes()
                .into(),
        ),
    ];
    for (leave, leave_data, back, back_data) in steps {
        c0.control(2, leave, 0, leave_data).await.expect("leave");
        cluster.healthy(&[0, 1]).await;
        if leave == Opcode::SetBanState {
            // A banned node stops serving: recovery mode, databases frozen.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while c0.get_recmode(2).await.ok() != Some(ctdb_protocol::flags::recmode::ACTIVE) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "banned node 2 still serves"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        c0.control(2, back, 0, back_data).await.expect("come back");
        cluster.healthy(&[0, 1, 2]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_any_component_ends_in_a_healthy_cluster_with_every_record() {
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let mut db = 0;
    let mut pdb = 0;
    for c in all(&clients) {
        db = c
            .attach(HERE, "kill_test.tdb", false)
            .await
            .expect("attach");
        pdb = c
            .attach(HERE, "kill_test_p.tdb", true)
            .await
            .expect("attach p");
    }
    let keys: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_le_bytes().to_vec()).collect();
    create_records(&clients, db, &keys).await;
    // A recovery merges what each lmaster holds onto every node.
    let c0 = clients[0].as_ref().expect("node 0").clone();
    c0.set_recmode(HERE, ctdb_protocol::flags::recmode::ACTIVE)
        .await
        .expect("ask for a recovery");
    drop(clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let before = records(all(&clients)[0], db).await;
    assert_eq!(before.len(), 50);
    drop(clients);
    // Let sled write the last updates out (its flush interval) before any SIGKILL.
    tokio::time::sleep(Duration::from_millis(600)).await;

    for (pnn, component) in [
        (1usize, "ctdb-db"),
        (2, "ctdb-recoverd"),
        (0, "ctdb-eventd"),
        (1, "ctdb-transport"),
    ] {
        let node = &cluster.nodes[pnn];
        node.kill_and_wait_restart(component).await;
        let clients = cluster.healthy(&[0, 1, 2]).await;
        for c in all(&clients) {
            let map = c.get_dbmap(HERE).await.expect("dbmap");
            assert!(map.dbs.iter().any(|d| d.db_id == db), "volatile db lost");
            assert!(map.dbs.iter().any(|d| d.db_id == pdb), "persistent db lost");
            let after = records(c, db).await;
            let keys = |v: &[(Vec<u8>, u64)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
            assert_eq!(
                keys(&after),
                keys(&before),
                "records lost after killing {component}"
            );
            for ((_, rsn_before), (_, rsn_after)) in before.iter().zip(&after) {
                assert!(
                    rsn_after >= rsn_before,
                    "RSN went back after killing {component}"
                );
            }
        }
    }
}

/// Drops every packet from and to one loopback address while it lives.
struct Cut {
    chain: String,
}

impl Cut {
    fn isolate(addr: &str) -> Option<Self> {
        let chain = format!("CTDBRS{}", std::process::id());
        let ipt = |args: &[&str]| {
            std::process::Command::new("iptables")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ipt(&["-N", &chain]) {
            return None;
        }
        let ok = ipt(&["-A", &chain, "-s", addr, "-j", "DROP"])
            && ipt(&["-A", &chain, "-d", addr, "-j", "DROP"])
            && ipt(&["-I", "INPUT", "-j", &chain]);
        let cut = Self { chain };
        ok.then_some(cut)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for args in [
            vec!["-D", "INPUT", "-j", &self.chain],
            vec!["-F", &self.chain],
            vec!["-X", &self.chain],
        ] {
            let _ = std::process::Command::new("iptables").args(&args).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_rejoins_after_the_cut_heals_with_nothing_lost() {
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    for c in all(&clients) {
        // Notice a silent peer in 3 s instead of Samba's default 25 s.
        c.set_tunable(HERE, "KeepaliveInterval", 1)
            .await
            .expect("setvar");
        c.set_tunable(HERE, "KeepaliveLimit", 3)
            .await
            .expect("setvar");
    }
    let leader = agreed_leader(&all(&clients)).await;
    let victim = (0..3u32)
        .rev()
        .find(|&p| p != leader)
        .expect("a non-leader");
    let mut db = 0;
    for c in all(&clients) {
        db = c
            .attach(HERE, "partition.tdb", false)
            .await
            .expect("attach");
    }
    let keys: Vec<Vec<u8>> = (0..20u32).map(|i| i.to_le_bytes().to_vec()).collect();
    create_records(&clients, db, &keys).await;
    let c = all(&clients)[0].clone();
    c.set_recmode(HERE, ctdb_protocol::flags::recmode::ACTIVE)
        .await
        .expect("ask for a recovery");
    drop(clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let before = records(all(&clients)[0], db).await;
    assert_eq!(before.len(), 20);
    drop(clients);

    let addr = cluster.nodes[victim as usize].addresses()[victim as usize].clone();
    let Some(cut) = Cut::isolate(&addr) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to use iptables"
        );
        eprintln!("skipping: iptables is not usable here");
        return;
    };
    let rest: Vec<u32> = (0..3).filter(|&p| p != victim).collect();
    cluster.healthy(&rest).await;
    drop(cut);

    let clients = cluster.healthy(&[0, 1, 2]).await;
    agreed_leader(&all(&clients)).await;
    for c in all(&clients) {
        let now = records(c, db).await;
        assert_eq!(now.len(), before.len(), "records lost across the partition");
    }
}
