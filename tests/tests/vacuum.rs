//! Deleted records go away from every node's TDB file (as Samba's `ctdb cattdb` shows
//! them) within a vacuum interval or two: deleted through their lmaster, and deleted
//! through another node (which only VACUUM_FETCH brings home to be deleted).

use std::time::{Duration, Instant};

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_tests::{lmaster, samba_ctdb, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_are_vacuumed_from_every_node() {
    let Some(ctdb) = samba_ctdb() else { return };
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let any = clients[0].as_ref().expect("client");
    let db = any
        .attach(CURRENT_NODE, "vacuum.tdb", false)
        .await
        .expect("attach");
    for c in clients.iter().flatten() {
        c.attach(CURRENT_NODE, "vacuum.tdb", false)
            .await
            .expect("attach");
    }
    let map = any.get_vnnmap(CURRENT_NODE).await.expect("vnn map");
    // Written through another node first (so older copies are left elsewhere), then
    // deleted through the key's lmaster.
    for i in 0..30 {
        let key = format!("vacuum-{i}");
        let home = lmaster(key.as_bytes(), &map) as usize;
        let other = clients[(home + 1) % 3].as_ref().expect("client");
        other
            .store(db, key.as_bytes(), b"value")
            .await
            .expect("write");
        let owner = clients[home].as_ref().expect("client");
        owner.store(db, key.as_bytes(), b"").await.expect("delete");
    }
    wait_until_empty(&cluster, &ctdb, "vacuum.tdb", Duration::from_secs(60)).await;
}

/// Every node's copy of `db` holds no record, within `limit`.
async fn wait_until_empty(
    cluster: &TestCluster,
    ctdb: &std::path::Path,
    db: &str,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let counts: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| {
                let out = n.tool(ctdb, &["cattdb", db]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.lines()
                    .find(|l| l.starts_with("Dumped"))
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        if counts.iter().all(|c| c == "Dumped 0 record(s)") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records left after {limit:?}: {counts:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_away_from_their_lmaster_are_brought_home_and_vacuumed() {
    let Some(ctdb) = samba_ctdb() else { return };
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let mut db = 0;
    for c in clients.iter().flatten() {
        db = c
            .attach(CURRENT_NODE, "vacuum_fetch.tdb", false)
            .await
            .expect("attach");
        // A pass every second (the default is 10 s); a full pass only every hour, so
        // that only the delete queue and VACUUM_FETCH can clear these records.
        c.set_tunable(CURRENT_NODE, "VacuumInterval", 1)
            .await
            .expect("setvar");
        c.set_tunable(CURRENT_NODE, "VacuumFastPathCount", 3600)
            .await
            .expect("setvar");
    }
    let any = clients[0].as_ref().expect("client");
    let map = any.get_vnnmap(CURRENT_NODE).await.expect("vnn map");
    // Written and deleted through a node that is not the key's lmaster: that node is
    // left dmaster of an empty record it cannot delete itself.
    for i in 0..30 {
        let key = format!("away-{i}");
        let home = lmaster(key.as_bytes(), &map) as usize;
        let away = clients[(home + 1) % 3].as_ref().expect("client");
        away.store(db, key.as_bytes(), b"value")
            .await
            .expect("write");
        away.store(db, key.as_bytes(), b"").await.expect("delete");
    }
    wait_until_empty(&cluster, &ctdb, "vacuum_fetch.tdb", Duration::from_secs(60)).await;
}
