//! The component served over gRPC on a Unix socket, as transport reaches it; and a
//! restart of the served component keeps what was written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ctdb_db::{DbDaemon, DbDirs, Options};
use ctdb_protocol::flags::call as callid;
use ctdb_protocol::{Body, Opcode, Packet, ReqCall, ReqControl};
use ctdb_rpc::component::{lock, serve_on, Outbox, PacketComponent};
use ctdb_rpc::packets::PacketClient;
use ctdb_rpc::uds::socket_path;
use ctdb_rpc::Envelope;

fn control(reqid: u32, opcode: Opcode, data: &[u8]) -> Vec<u8> {
    let mut p = Packet::new(Body::ReqControl(ReqControl {
        opcode,
        srvid: 0,
        client_id: 0,
        flags: 0,
        data: Bytes::copy_from_slice(data),
    }));
    p.reqid = reqid;
    p.to_bytes()
}

fn call(reqid: u32, db_id: u32, id: u32, key: &[u8]) -> Vec<u8> {
    call_with(reqid, db_id, id, key, Bytes::new())
}

fn call_with(reqid: u32, db_id: u32, id: u32, key: &[u8], calldata: Bytes) -> Vec<u8> {
    let mut p = Packet::new(Body::ReqCall(ReqCall {
        flags: 0,
        db_id,
        callid: id,
        hopcount: 0,
        key: Bytes::copy_from_slice(key),
        calldata,
    }));
    p.reqid = reqid;
    p.to_bytes()
}

/// COMPARE_STORE_FUNC data that stores `value` whatever the record holds.
fn store_anyway(value: &[u8]) -> Bytes {
    let mut d = callid::STORE_ANYWAY.to_le_bytes().to_vec();
    d.extend_from_slice(value);
    Bytes::from(d)
}

/// Serves a daemon on `dir`, sends `packets` as client 9 in one batch, returns the
/// replies in order, then shuts the server down and flushes the daemon.
async fn session(dir: &std::path::Path, packets: Vec<Vec<u8>>) -> Vec<Packet> {
    // The previous session's stream task may still hold its daemon (and sled's lock)
    // for a moment after the server stops.
    let mut attempts = 0;
    let daemon = loop {
        let dirs = DbDirs {
            volatile: dir.join("volatile"),
            persistent: dir.join("persistent"),
            state: dir.join("state"),
        };
        match DbDaemon::open(&dir.join("db.sled"), Options::new(0, dirs)) {
            Ok(d) => break d,
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot reopen the store: {e}"),
        }
    };
    let handler = Arc::new(Mutex::new(daemon));
    let (outbox, rx) = Outbox::new();
    let component = PacketComponent::with_outbox("db", handler.clone(), outbox, rx);
    let run_dir = dir.join("run");
    let serving = component.serve_packets(&run_dir).unwrap();
    let router = tonic::transport::Server::builder().add_service(component.into_server());
    let socket = socket_path(&dir.join("run"), "db");
    // The previous session leaves its socket file behind: wait for this server's.
    let _ = std::fs::remove_file(&socket);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let socket = socket.clone();
        async move {
            serve_on(&socket, router, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        }
    });
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let expected = packets.len();
    let mut conn = PacketClient::connect(
        &ctdb_rpc::packets::socket_path(&run_dir, "db"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let envelopes: Vec<Envelope> = packets
        .into_iter()
        .map(|packet| Envelope {
            client: 9,
            from_node: u32::MAX,
            packet: packet.into(),
            trace: 0,
        })
        .collect();
    conn.send(&envelopes).await.unwrap();
    let mut replies = Vec::new();
    while replies.len() < expected {
        let env = tokio::time::timeout(Duration::from_secs(10), conn.recv())
            .await
            .expect("replies in time")
            .unwrap()
            .expect("connection open");
        if env.client == 0 {
            // The attach broadcast to other nodes, not a reply.
            continue;
        }
        assert_eq!(env.client, 9);
        replies.push(Packet::from_slice(&env.packet).unwrap());
    }
    drop(conn);
    serving.abort();
    let _ = serving.await;
    let _ = stop_tx.send(());
    server.await.unwrap();
    lock(&handler).flush().unwrap();
    replies
}

fn status_data(p: &Packet) -> (i32, Vec<u8>) {
    match &p.body {
        Body::ReplyControl(r) => (r.status, r.data.to_vec()),
        Body::ReplyCall(r) => (r.status as i32, r.data.to_vec()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_over_grpc_and_durable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let replies = session(
        dir.path(),
        vec![
            control(1, Opcode::DbAttach, b"capture_vol.tdb\0"),
            call_with(
                2,
                0x6896_115a,
                callid::COMPARE_STORE_FUNC,
                b"k",
                store_anyway(b"v"),
            ),
            call(3, 0x6896_115a, callid::NULL_FUNC, b"k"),
        ],
    )
    .await;
    assert_eq!(replies.len(), 3);
    assert_eq!(status_data(&replies[0]), (0, vec![0x5a, 0x11, 0x96, 0x68]));
    assert_eq!(replies[2].reqid, 3);

    // A new process on the same directory: the database and its record are there.
    let replies = session(
        dir.path(),
        vec![
            control(4, Opcode::GetDbmap, &[]),
            call(5, 0x6896_115a, callid::FETCH_WITH_HEADER_FUNC, b"k"),
        ],
    )
    .await;
    assert_eq!(
        status_data(&replies[0]),
        (0, vec![1, 0, 0, 0, 0x5a, 0x11, 0x96, 0x68, 0, 0, 0, 0])
    );
    let (status, data) = status_data(&replies[1]);
    assert_eq!(status, 0);
    // Created (rsn 1 at its lmaster, Samba's count), stored by the call, read again.
    assert_eq!(u64::from_le_bytes(data[..8].try_into().unwrap()), 3);
}
