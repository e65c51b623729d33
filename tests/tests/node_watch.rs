//! Issue 11, state as streams: transport publishes the nodes' flags and the generation
//! (`Transport.WatchNodes`, a gRPC server stream on its socket in the run directory),
//! and the recovery daemon follows it, so that a node that goes or comes is acted on
//! at once rather than at its next round (RecoverInterval, 1 s by default).

use std::time::{Duration, Instant};

use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_rpc::transport_client::TransportClient;
use ctdb_tests::{bin, TestCluster};

/// Waits for the next message on `stream` that `accept` likes.
async fn next_states<T>(
    stream: &mut tonic::Streaming<T>,
    what: &str,
    accept: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no state with {what} within 30 s"))
            .expect("the stream goes on")
            .expect("a message");
        if accept(&next) {
            return next;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_publishes_every_change_of_the_node_states() {
    let cluster = TestCluster::start(2);
    let clients = cluster.healthy(&[0, 1]).await;
    let node0 = &cluster.nodes[0];
    let channel = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(&node0.run_dir(), "transport"));
    let mut states = TransportClient::new(channel)
        .watch_nodes(ctdb_rpc::Empty {})
        .await
        .expect("WatchNodes")
        .into_inner();

    // The states now first: both nodes connected, a valid generation.
    let generation = clients[0]
        .as_ref()
        .expect("node 0")
        .get_vnnmap(dest::CURRENT_NODE)
        .await
        .expect("vnn map")
        .generation;
    let now = next_states(&mut states, "the current states", |_| true).await;
    assert_eq!(now.flags, [0, 0]);
    assert_eq!(now.generation, generation);

    // A flag set by a control.
    let out = cluster.nodes[1].tool(&bin("ctdb"), &["disable"]);
    assert!(out.status.success(), "{out:?}");
    next_states(&mut states, "node 1 disabled", |s| {
        s.flags
            .get(1)
            .is_some_and(|f| f & node_flags::DISABLED != 0)
    })
    .await;
    let out = cluster.nodes[1].tool(&bin("ctdb"), &["enable"]);
    assert!(out.status.success(), "{out:?}");
    next_states(&mut states, "node 1 enabled", |s| {
        s.flags
            .get(1)
            .is_some_and(|f| f & node_flags::DISABLED == 0)
    })
    .await;

    // A node that goes: DISCONNECTED as soon as its connections close, and the
    // recovery daemon heard it too: a recovery without node 1 follows (a new
    // generation published by transport).
    let clients = cluster.healthy(&[0, 1]).await;
    let before = clients[0]
        .as_ref()
        .expect("node 0")
        .get_vnnmap(dest::CURRENT_NODE)
        .await
        .expect("vnn map")
        .generation;
    let mut cluster = cluster;
    let crashed = Instant::now();
    cluster.nodes[1].crash();
    let recovered = next_states(&mut states, "node 1 gone and a new generation", |s| {
        s.flags
            .get(1)
            .is_some_and(|f| f & node_flags::DISCONNECTED != 0)
            && s.generation != before
            && s.generation != ctdb_protocol::flags::INVALID_GENERATION
    })
    .await;
    eprintln!(
        "node_watch: node 1 crashed, node 0 in generation {} {} ms later",
        recovered.generation,
        crashed.elapsed().as_millis()
    );
}

/// ctdb-db publishes its generation, recovery mode and frozen state
/// (`Component.WatchState` on its gRPC socket), which transport follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_publishes_its_generation_recovery_mode_and_frozen_state() {
    use ctdb_rpc::component_client::ComponentClient;
    let node = ctdb_tests::TestNode::start("");
    let client = node.ready().await;
    let here = dest::CURRENT_NODE;
    let channel = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(&node.run_dir(), "db"));
    let mut states = ComponentClient::new(channel)
        .watch_state(ctdb_rpc::Empty {})
        .await
        .expect("WatchState")
        .into_inner();
    let generation = client.get_vnnmap(here).await.expect("vnn map").generation;
    next_states(
        &mut states,
        "the recovered state",
        |s: &ctdb_rpc::ComponentState| {
            s.generation == generation && s.recovery_mode == 0 && !s.frozen
        },
    )
    .await;

    // Recovery mode set by hand: db says ACTIVE; the recovery daemon then recovers,
    // and db says NORMAL, thawed, in a new generation.
    let active = 1u32.to_le_bytes().to_vec();
    let reply = client
        .control_raw(
            here,
            ctdb_protocol::Opcode::SetRecmode,
            0,
            bytes::Bytes::from(active),
            Duration::from_secs(10),
        )
        .await
        .expect("SET_RECMODE");
    assert_eq!(reply.status, 0, "{reply:?}");
    next_states(
        &mut states,
        "recovery mode active",
        |s: &ctdb_rpc::ComponentState| s.recovery_mode == 1,
    )
    .await;
    let recovered = next_states(
        &mut states,
        "a new generation, normal",
        |s: &ctdb_rpc::ComponentState| {
            s.generation != generation && s.recovery_mode == 0 && !s.frozen
        },
    )
    .await;
    // Transport took the generation from db's stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let channel =
            ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(&node.run_dir(), "transport"));
        let published = TransportClient::new(channel)
            .watch_nodes(ctdb_rpc::Empty {})
            .await
            .expect("WatchNodes")
            .into_inner()
            .message()
            .await
            .expect("node states")
            .expect("a message");
        if published.generation == recovered.generation {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transport has generation {}",
            published.generation
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
