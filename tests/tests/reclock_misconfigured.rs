//! A recovery lock that is not shared: each node's `recovery lock` names a file on its
//! own disk, so every node takes "the" lock. Two leaders must not stay: the one with
//! the higher pnn hears the other lead, says why, and yields. Two real nodes on
//! 127.A.B.1-2.

use std::time::{Duration, Instant};

use ctdb_client::Client;
use ctdb_tests::{leader_of, loopback_subnet, TestNode};

async fn leader_at(socket: &std::path::Path) -> Option<u32> {
    leader_of(&Client::connect(socket).await.ok()?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holders_of_an_unshared_lock_resolve_to_one_leader() {
    let root = tempfile::Builder::new()
        .prefix("ctdb-rs-reclock")
        .tempdir()
        .expect("temp dir");
    let subnet = loopback_subnet();
    let addrs: Vec<String> = (1..=2).map(|i| format!("{subnet}.{i}")).collect();
    let nodes: Vec<TestNode> = (0..2)
        .map(|i| {
            let dir = root.path().join(format!("node.{i}"));
            // Each node's own lock file: both can hold "the" lock.
            let conf = format!(
                "[cluster]\n\tnode address = {}\n\trecovery lock = {}\n",
                addrs[i],
                dir.join("own.lock").display()
            );
            TestNode::start_in(&dir, i as u32, &addrs, &conf)
        })
        .collect();

    // One leader, the same on both, and it stays so. Which one is the election's
    // choice: node 0 usually, node 1 when it was up and leading first (the longer
    // running node wins, as in Samba's election).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut agreed_since: Option<Instant> = None;
    let leader = loop {
        let seen = [
            leader_at(&nodes[0].socket).await,
            leader_at(&nodes[1].socket).await,
        ];
        match seen {
            [Some(a), Some(b)] if a == b => {
                let since = *agreed_since.get_or_insert_with(Instant::now);
                // Several election rounds (ElectionTimeout is 3 s) without a change.
                if since.elapsed() > Duration::from_secs(8) {
                    break a;
                }
            }
            _ => agreed_since = None,
        }
        assert!(
            Instant::now() < deadline,
            "no single leader: {seen:?}\n{}\n{}",
            nodes[0].log(),
            nodes[1].log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(leader < 2, "leader {leader}");
    // The other node either took its own lock and yielded, saying why, or heard the
    // leader lead (its announcement, or its recovery) before it tried the lock at all.
    let other = &nodes[1 - leader as usize];
    let log = other.log();
    if log.contains("took the recovery lock") {
        assert!(
            log.contains("holding the recovery lock too"),
            "node {} did not say why it yielded:\n{log}",
            other.pnn
        );
    }
}
