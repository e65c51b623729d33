//! Issue 11: `ctdb setdebug` changes the log level of every component of the node,
//! live: a debug line of ctdb-db appears only after SET_DEBUG DEBUG reached the node.

use std::time::{Duration, Instant};

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_tests::TestCluster;

const LINE: &str = "became dmaster of a record";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setdebug_reaches_the_database_component() {
    let cluster = TestCluster::start(2);
    let clients = cluster.healthy(&[0, 1]).await;
    let (c0, c1) = (
        clients[0].as_ref().expect("client"),
        clients[1].as_ref().expect("client"),
    );
    let db = c0
        .attach(CURRENT_NODE, "setdebug.tdb", false)
        .await
        .expect("attach");
    c1.attach(CURRENT_NODE, "setdebug.tdb", false)
        .await
        .expect("attach");
    let node1 = &cluster.nodes[1];

    // At the default level, a migration to node 1 logs no debug line there.
    c0.store(db, b"before", b"v").await.expect("store");
    c1.fetch(db, b"before").await.expect("fetch");
    c0.store(db, b"before", b"w").await.expect("store");
    assert!(
        !node1.log().contains(LINE),
        "debug lines logged at the default level"
    );

    c1.set_debug(CURRENT_NODE, 10)
        .await
        .expect("setdebug DEBUG");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while !node1.log().contains(LINE) {
        assert!(
            Instant::now() < deadline,
            "no debug line of ctdb-db after setdebug\n{}",
            cluster.logs()
        );
        // Each round migrates the record to node 1 again.
        n += 1;
        c0.store(db, b"after", format!("{n}").as_bytes())
            .await
            .expect("store");
        c1.fetch(db, b"after").await.expect("fetch");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
