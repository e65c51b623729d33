//! Leadership without a recovery lock (the default): a leader holds a lease from a
//! majority of the nodes file. 3-node clusters of real processes on 127.A.B.1-3 with no
//! `recovery lock` configured.
//!
//! Locally a node is "cut off" by killing the others: what it sees is what a node in a
//! minority sees (no peer answers). The docker-compose test cuts a real network.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::control::PublicIpList;
use ctdb_protocol::flags::{dest, recmode};
use ctdb_protocol::{Opcode, Wire};
use ctdb_tests::{agreed_leader, leader_of, TestCluster};

const HERE: u32 = dest::CURRENT_NODE;

const ADDRESSES: &str = "10.78.0.1/24 ctdbtest0\n10.78.0.2/24 ctdbtest0\n10.78.0.3/24 ctdbtest0\n";

/// How many public addresses this node says it holds itself.
async fn held_by(client: &Client, pnn: u32) -> usize {
    let data = client
        .control(HERE, Opcode::GetPublicIps, 0, Bytes::new())
        .await
        .expect("GET_PUBLIC_IPS");
    let list = PublicIpList::from_bytes(&data).expect("public ip list");
    list.ips.iter().filter(|ip| ip.pnn == pnn).count()
}

async fn pstore(client: &Client, db_id: u32, key: &str, value: &str) {
    client
        .persistent_store(db_id, key.as_bytes(), value.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("commit of {key}: {e}"));
}

async fn pfetch(client: &Client, db_id: u32, key: &str) -> Vec<u8> {
    client
        .fetch(db_id, key.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("fetch of {key}: {e}"))
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_majority_stops_serving_and_rejoins_through_a_recovery() {
    let mut cluster =
        TestCluster::start_without_lock_with_files(3, &[("public_addresses", ADDRESSES)]);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let leader = agreed_leader(&all).await;
    eprintln!("leader {leader} holds a majority lease");
    // Node 2 serves a public address (one each, once placed).
    let deadline = Instant::now() + Duration::from_secs(60);
    while held_by(all[2], 2).await == 0 {
        assert!(
            Instant::now() < deadline,
            "node 2 never got a public address"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let db = all[0]
        .attach(HERE, "majority.tdb", true)
        .await
        .expect("attach");
    for (i, c) in all.iter().enumerate() {
        pstore(c, db, &format!("before-{i}"), "kept").await;
    }

    // Node 2 loses the others: it must stop serving and must not lead.
    let cut = Instant::now();
    cluster.nodes[0].crash();
    cluster.nodes[1].crash();
    let lone = Client::connect(&cluster.nodes[2].socket)
        .await
        .expect("node 2");
    let deadline = cut + Duration::from_secs(30);
    loop {
        let mode = lone.get_recmode(HERE).await.expect("GET_RECMODE");
        let held = held_by(&lone, 2).await;
        if mode == recmode::ACTIVE && leader_of(&lone).await.is_none() && held == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 alone still serves (recovery mode {mode}, {held} public addresses)\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "node 2 alone stopped serving and released its public addresses {:.1} s after \
         losing the others",
        cut.elapsed().as_secs_f32()
    );
    // A commit there is not acknowledged: it waits for a recovery that cannot come.
    let attempt = tokio::time::timeout(
        Duration::from_secs(3),
        lone.persistent_store(db, b"while-alone", b"never"),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(()))),
        "a node without a majority acknowledged a commit"
    );
    // It stays that way (no leader of its own appears later).
    assert_eq!(leader_of(&lone).await, None);

    // The others come back: one leader, one generation, every commit everywhere.
    cluster.nodes[0].restart();
    cluster.nodes[1].restart();
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    agreed_leader(&all).await;
    for c in &all {
        for i in 0..3 {
            assert_eq!(pfetch(c, db, &format!("before-{i}")).await, b"kept");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_majority_elects_a_new_leader_when_the_leader_is_lost() {
    let mut cluster = TestCluster::start_without_lock(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let old = agreed_leader(&all).await;
    let db = all[0]
        .attach(HERE, "majority.tdb", true)
        .await
        .expect("attach");
    pstore(all[0], db, "first", "1").await;

    let lost = Instant::now();
    cluster.nodes[old as usize].crash();
    let rest: Vec<u32> = (0..3).filter(|&p| p != old).collect();
    let clients = cluster.healthy(&rest).await;
    let survivors: Vec<&Client> = clients.iter().flatten().collect();
    let new = agreed_leader(&survivors).await;
    assert_ne!(new, old, "the lost leader still leads");
    eprintln!(
        "node {new} leads the majority {:.1} s after leader {old} was lost",
        lost.elapsed().as_secs_f32()
    );
    // The majority goes on committing.
    pstore(survivors[0], db, "second", "2").await;

    cluster.nodes[old as usize].restart();
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    agreed_leader(&all).await;
    for c in &all {
        assert_eq!(pfetch(c, db, "first").await, b"1");
        assert_eq!(pfetch(c, db, "second").await, b"2");
    }
}

/// Every vnn map the nodes' logs show installed, as (node, map size).
fn installed_maps(cluster: &TestCluster) -> Vec<(u32, usize)> {
    let mut maps = Vec::new();
    for node in &cluster.nodes {
        for line in node.log().lines().filter(|l| l.contains("new vnn map")) {
            if let Some(map) = line.split("map=[").nth(1) {
                let size = map
                    .trim_end_matches(']')
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .count();
                maps.push((node.pnn, size));
            }
        }
    }
    maps
}

/// A leader whose transport restarts holds its lease still, but sees its peers
/// disconnected until its new transport reaches them: it must not recover with itself
/// alone (a generation of one node would let it acknowledge commits the next recovery
/// drops — the write checker lost 400 that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_transport_restarts_never_recovers_without_a_majority() {
    let cluster = TestCluster::start_without_lock(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let all: Vec<&Client> = clients.iter().flatten().collect();
    let leader = agreed_leader(&all).await;
    drop(clients);
    for _ in 0..3 {
        cluster.nodes[leader as usize]
            .kill_and_wait_restart("ctdb-transport")
            .await;
        cluster.healthy(&[0, 1, 2]).await;
    }
    let maps = installed_maps(&cluster);
    assert!(!maps.is_empty());
    let small: Vec<_> = maps.iter().filter(|(_, size)| *size < 2).collect();
    assert!(
        small.is_empty(),
        "vnn maps of fewer than a majority installed: {small:?}\n{}",
        cluster.logs()
    );
}
