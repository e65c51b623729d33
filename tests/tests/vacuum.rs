//! Deleted records go away from every node's TDB file (as Samba's `ctdb cattdb` shows
//! them) within a vacuum interval or two.

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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| {
                let out = n.tool(&ctdb, &["cattdb", "vacuum.tdb"]);
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
            "records left after a minute: {counts:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
