//! A panic in a component ends the process (it is logged first), and ctdbd starts it
//! again: a panic in a tokio task must not leave a component up but deaf. 3 real nodes
//! on 127.A.B.1-3 with fault injection on; the panic is the `fail` crate's `panic`
//! action at ctdb-db's `db::pull`, run by the next recovery.

use std::time::{Duration, Instant};

use ctdb_protocol::flags::{dest, recmode};
use ctdb_tests::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_component_is_restarted() {
    let cluster = TestCluster::start_with_env(3, &[("CTDB_RS_FAULT_INJECTION", "1")]);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let c1 = clients[1].as_ref().expect("node 1");
    let c0 = clients[0].as_ref().expect("node 0");
    // A database for the recovery to pull (attached on every node).
    c0.attach(dest::CURRENT_NODE, "panics.tdb", false)
        .await
        .expect("attach");
    let before = cluster.nodes[1].component_pid("ctdb-db").expect("db pid");

    ctdb_tests::failpoint(c1, "db", "db::pull", Some("panic"))
        .await
        .expect("SET_FAILPOINT");
    // A recovery pulls from every node: node 1's ctdb-db panics there.
    c0.set_recmode(dest::CURRENT_NODE, recmode::ACTIVE)
        .await
        .expect("SET_RECMODE");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cluster.nodes[1].component_pid("ctdb-db") {
            Some(pid) if pid != before => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "node 1's ctdb-db panicked but was not restarted\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cluster.nodes[1]
            .log()
            .contains("aborting so that ctdbd restarts it"),
        "the panic was not logged\n{}",
        cluster.nodes[1].log()
    );
    // The new process has no fault point: the next recovery brings everyone back.
    cluster.healthy(&[0, 1, 2]).await;
}
