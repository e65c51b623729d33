//! Record migration on a real 3-node cluster: after a recovery the leader is dmaster of
//! every record, and a call from any node brings the record to that node (REQ_CALL to
//! the lmaster, on to the dmaster, REQ_DMASTER, REPLY_DMASTER).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::flags::{call as callid, dest, recmode};
use ctdb_protocol::{LtdbHeader, ReqCall, Wire};
use ctdb_tests::{create_records, TestCluster};

const HERE: u32 = dest::CURRENT_NODE;

/// FETCH_WITH_HEADER on `client`: the record's header and data as the dmaster saw them.
async fn fetch_with_header(
    cluster: &TestCluster,
    client: &Client,
    db_id: u32,
    key: &[u8],
) -> (LtdbHeader, Vec<u8>) {
    let call = client.call(ReqCall {
        flags: callid::IMMEDIATE_MIGRATION,
        db_id,
        callid: callid::FETCH_WITH_HEADER_FUNC,
        hopcount: 0,
        key: Bytes::copy_from_slice(key),
        calldata: Bytes::new(),
    });
    let reply = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "call on node {} timed out\nlogs:\n{}",
                client.pnn(),
                cluster.logs()
            )
        })
        .unwrap_or_else(|e| panic!("call on node {} failed: {e}", client.pnn()));
    assert_eq!(reply.status, 0);
    assert!(reply.data.len() >= LtdbHeader::SIZE, "{:?}", reply.data);
    let header = LtdbHeader::from_bytes(&reply.data[..LtdbHeader::SIZE]).expect("header");
    (header, reply.data[LtdbHeader::SIZE..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_fetches_every_record_and_becomes_its_dmaster() {
    let cluster = TestCluster::start(3);
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let mut db = 0;
    for c in clients.iter().flatten() {
        db = c
            .attach(HERE, "migration.tdb", false)
            .await
            .expect("attach");
    }
    let keys: Vec<Vec<u8>> = (0..12u32)
        .map(|i| format!("migrate-{i}").into_bytes())
        .collect();
    create_records(&clients, db, &keys).await;

    // A recovery makes the leader dmaster of every record.
    let c0 = clients[0].as_ref().expect("node 0").clone();
    c0.set_recmode(HERE, recmode::ACTIVE)
        .await
        .expect("ask for a recovery");
    drop(c0);
    drop(clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients = cluster.healthy(&[0, 1, 2]).await;
    let clients: Vec<Client> = clients.into_iter().flatten().collect();
    assert_eq!(clients.len(), 3);

    let mut last_rsn: HashMap<Vec<u8>, u64> = HashMap::new();
    // Twice round, so each record moves between every pair of nodes.
    for round in 0..2 {
        for client in &clients {
            let pnn = client.pnn();
            for key in &keys {
                let (header, data) = fetch_with_header(&cluster, client, db, key).await;
                assert_eq!(&data, key, "each record holds its key");
                assert_eq!(
                    header.dmaster, pnn,
                    "round {round}: node {pnn} is not dmaster of {key:?} after its call"
                );
                if let Some(before) = last_rsn.get(key) {
                    assert!(
                        header.rsn > *before,
                        "round {round}: RSN of {key:?} went from {before} to {} on node {pnn}",
                        header.rsn
                    );
                }
                last_rsn.insert(key.clone(), header.rsn);
                // A second call on the same node is local and still sees it as dmaster.
                let (again, _) = fetch_with_header(&cluster, client, db, key).await;
                assert_eq!(again.dmaster, pnn);
                assert!(again.rsn > header.rsn);
                last_rsn.insert(key.clone(), again.rsn);
            }
        }
    }

    // Concurrent calls on the same keys from every node all succeed, and each sees
    // itself dmaster when its call runs.
    let hot: Vec<Vec<u8>> = keys[..3].to_vec();
    let run = |c: &Client| {
        let cluster = &cluster;
        let hot = hot.clone();
        let c = c.clone();
        async move {
            for _ in 0..20 {
                for key in &hot {
                    let (header, _) = fetch_with_header(cluster, &c, db, key).await;
                    assert_eq!(header.dmaster, c.pnn());
                }
            }
        }
    };
    tokio::join!(run(&clients[0]), run(&clients[1]), run(&clients[2]));

    // Afterwards the RSNs still only went up.
    for key in &keys {
        let (header, _) = fetch_with_header(&cluster, &clients[0], db, key).await;
        assert!(header.rsn > last_rsn[key], "{key:?}");
        assert_eq!(header.dmaster, clients[0].pnn());
    }
}
