//! A local client's call that ctdb-db had taken but not answered when it restarted is
//! answered by the new ctdb-db: transport sends it the calls in flight again, so a
//! client such as smbd does not wait for an answer that died with the old process.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::ReqCall;
use ctdb_rpc::component_client::ComponentClient;
use ctdb_tests::TestCluster;

const HERE: u32 = dest::CURRENT_NODE;

/// ctdb-db's count of calls waiting (deferred while frozen, or migrating).
async fn pending_calls(cluster: &TestCluster) -> u64 {
    let channel = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(
        &cluster.nodes[0].run_dir(),
        "db",
    ));
    match ComponentClient::new(channel)
        .statistics(ctdb_rpc::Empty {})
        .await
    {
        Ok(part) => part
            .into_inner()
            .counters
            .get("pending_calls")
            .copied()
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_across_a_db_restart_is_answered() {
    let cluster = TestCluster::start(1);
    let clients = cluster.healthy(&[0]).await;
    let client = clients[0].clone().expect("node 0");
    let db = client
        .attach(HERE, "replay.tdb", false)
        .await
        .expect("attach");

    // The database frozen (DB_FREEZE, as a recovery freezes it): a call waits in
    // ctdb-db.
    let reply = client
        .control_raw(
            HERE,
            ctdb_protocol::Opcode::DbFreeze,
            0,
            Bytes::from(db.to_le_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .await
        .expect("DB_FREEZE");
    assert_eq!(reply.status, 0, "{reply:?}");

    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller
            .call(ReqCall {
                flags: 0,
                db_id: db,
                callid: call::NULL_FUNC,
                hopcount: 0,
                key: Bytes::from_static(b"in flight"),
                calldata: Bytes::new(),
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending_calls(&cluster).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the call never waited in ctdb-db"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // ctdb-db restarts with the call in it; the new one is thawed by a recovery.
    cluster.nodes[0].restart_component("ctdb-db").await;

    // Answered by the new ctdb-db well within the client's own timeout (30 s).
    let answered = call.await.expect("the call's task");
    assert!(answered.is_ok(), "the call was not answered: {answered:?}");
    cluster.healthy(&[0]).await;
}
