//! Issue 11: `ctdb setdebug` changes the log level of every component of the node,
//! live: a debug line of ctdb-db appears only after SET_DEBUG DEBUG reached the node,
//! and a component restarted afterwards logs at that level too.

use std::time::{Duration, Instant};

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_protocol::Opcode;
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

/// A component restarted after `ctdb setdebug` logs at the node's live level, not at
/// the configured one it starts with: transport gives it the level again when its
/// packet socket connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_restarted_after_setdebug_gets_the_live_level() {
    let cluster = TestCluster::start(1);
    let clients = cluster.healthy(&[0]).await;
    let client = clients[0].as_ref().expect("client");
    client
        .set_debug(CURRENT_NODE, 10)
        .await
        .expect("setdebug DEBUG");
    let node = &cluster.nodes[0];
    for (component, opcode) in [
        ("db", Opcode::GetDbmap),
        ("recoverd", Opcode::GetIfaces),
        ("eventd", Opcode::GetMonmode),
    ] {
        let process = format!("ctdb-{component}");
        node.kill_and_wait_restart(&process).await;
        let pid = node
            .component_pid(&process)
            .expect("pid of the new process");
        // A line each component logs at DEBUG only, for every packet it handles.
        let debug_line = format!("{component}[{pid}]: ");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !node
            .log()
            .lines()
            .any(|l| l.contains(&debug_line) && l.contains("from transport"))
        {
            assert!(
                Instant::now() < deadline,
                "the restarted {component} logs no debug line\n{}",
                cluster.logs()
            );
            // A control it owns (answered or not while it starts).
            let _ = client
                .control_raw(
                    CURRENT_NODE,
                    opcode,
                    0,
                    bytes::Bytes::new(),
                    Duration::from_secs(2),
                )
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
