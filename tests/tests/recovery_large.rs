//! A database larger than the 64 MiB packet limit recovers: pulls come in pages and
//! pushes go in pieces, so the limit is a guard on packets, not a ceiling on databases.
//! (Before, PULL_DB of the whole database failed and the cluster stayed in recovery.)

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_tests::TestCluster;

/// MiB of data (1 MiB records): 72 in CI; `CTDB_RS_RECOVERY_MIB=200 cargo test -p
/// ctdb-tests --test recovery_large -- --nocapture` runs the 200 MiB case of issue 10.
fn records() -> usize {
    std::env::var("CTDB_RS_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(72)
}
const RECORD_BYTES: usize = 1 << 20;

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![(i % 251) as u8; RECORD_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v
}

/// What the processes of node 0 hold at most, from /proc (kB).
fn peaks(node: &ctdb_tests::TestNode) -> String {
    ["ctdb-recoverd", "ctdb-db", "ctdb-transport"]
        .iter()
        .filter_map(|c| {
            let pid = node.component_pid(c)?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map_or("?".to_string(), |v| v.trim().to_string())
            };
            Some(format!(
                "{c}: peak {} (now anonymous {}, file-backed {})",
                field("VmHWM:"),
                field("RssAnon:"),
                field("RssFile:")
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_above_the_packet_limit_recovers_onto_a_returning_node() {
    let mut cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let c0 = clients[0].as_ref().expect("client of node 0");
    let db = c0
        .attach(CURRENT_NODE, "big.tdb", false)
        .await
        .expect("attach");
    for i in 0..records() {
        c0.store(db, format!("rec-{i}").as_bytes(), &value(i))
            .await
            .unwrap_or_else(|e| panic!("store {i}: {e}"));
    }
    drop(clients);

    // Node 2 goes away and comes back: the recovery that takes it in pulls all of it
    // (72 MiB by default) from nodes 0 and 1 and pushes it to every node.
    cluster.nodes[2].crash();
    cluster.healthy(&[0, 1]).await;
    cluster.nodes[2].restart();
    let clients = cluster.healthy(&[0, 1, 2]).await;
    println!(
        "{} MiB recovered; node 0 peak RSS after the recoveries: {}",
        records(),
        peaks(&cluster.nodes[0])
    );

    let c2 = clients[2].as_ref().expect("client of node 2");
    for i in 0..records() {
        let got = c2
            .fetch(db, format!("rec-{i}").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("fetch {i} through node 2: {e}"));
        assert!(got[..] == value(i)[..], "record {i} differs");
    }
}
