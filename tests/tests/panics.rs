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

/// A control in flight when its component dies gets an error reply at once, not
/// silence until the asker's timeout: here a client's PULL_DB_PAGE, on which node 0's
/// ctdb-db panics. (Without that, the reply would never come: the client's timeout is
/// far beyond the restart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_in_flight_when_its_component_dies_gets_an_error() {
    use ctdb_protocol::control::PullDbPage;
    use ctdb_protocol::{Opcode, Wire};

    let cluster = TestCluster::start_with_env(1, &[("CTDB_RS_FAULT_INJECTION", "1")]);
    let clients = cluster.healthy(&[0]).await;
    let client = clients[0].as_ref().expect("node 0");
    let db = client
        .attach(dest::CURRENT_NODE, "in_flight.tdb", false)
        .await
        .expect("attach");
    let before = cluster.nodes[0].component_pid("ctdb-db").expect("db pid");
    ctdb_tests::failpoint(client, "db", "db::pull", Some("panic"))
        .await
        .expect("SET_FAILPOINT");

    let page = PullDbPage {
        db_id: db,
        lmaster: u32::MAX, // CTDB_LMASTER_ANY
        max_bytes: 1024,
        after: None,
    };
    let reply = client
        .control_raw(
            dest::CURRENT_NODE,
            Opcode::PullDbPage,
            0,
            page.to_bytes().into(),
            Duration::from_secs(600),
        )
        .await
        .expect("an answer, not a timeout");
    assert_eq!(reply.status, -1, "{reply:?}");
    assert!(
        String::from_utf8_lossy(&reply.errmsg).contains("db"),
        "{reply:?}"
    );
    ctdb_tests::wait_for("ctdb-db restarted", || {
        cluster.nodes[0]
            .component_pid("ctdb-db")
            .is_some_and(|pid| pid != before)
    })
    .await;
    assert!(
        cluster.nodes[0]
            .log()
            .contains("the component went away before answering"),
        "{}",
        cluster.nodes[0].log()
    );
}
