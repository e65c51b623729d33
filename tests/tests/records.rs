//! The data path of a real 3-node cluster: concurrent increments of one record from
//! every node, traverse, persistent transactions (also across a node kill), and
//! messages between clients on different nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::dest;
use ctdb_tests::TestCluster;
use tokio::task::JoinHandle;

const HERE: u32 = dest::CURRENT_NODE;

/// A healthy 3-node cluster, a client on each node, and `name` attached everywhere.
async fn three_nodes_with(name: &str, persistent: bool) -> (TestCluster, Vec<Client>, u32) {
    let cluster = TestCluster::start(3);
    let clients: Vec<Client> = cluster
        .healthy(&[0, 1, 2])
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut db = 0;
    for c in &clients {
        db = c.attach(HERE, name, persistent).await.expect("attach");
    }
    (cluster, clients, db)
}

fn counter(data: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(data) {
        Ok(b) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

/// Adds one to the u64 in `key` with compare-and-store, as often as it takes.
async fn increment(client: &Client, db_id: u32, key: &[u8]) {
    let mut seen = client.fetch_with_header(db_id, key).await.expect("fetch").1;
    loop {
        let next = (counter(&seen) + 1).to_le_bytes();
        match client
            .compare_store(db_id, key, Some(&seen), &next)
            .await
            .expect("compare_store")
        {
            Ok(()) => return,
            Err(current) => seen = current,
        }
    }
}

async fn within<T>(
    what: &str,
    cluster: &TestCluster,
    f: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out\nlogs:\n{}", cluster.logs()))
}

/// Waits (within the time limit) for every task and returns what each returned.
async fn finish<T>(what: &str, cluster: &TestCluster, tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    within(what, cluster, async {
        let mut results = Vec::with_capacity(tasks.len());
        for t in tasks {
            results.push(
                t.await
                    .unwrap_or_else(|e| panic!("{what}: a task failed: {e}")),
            );
        }
        results
    })
    .await
}

/// Each record of a traverse on `client`: key -> (rsn, data).
async fn traverse(client: &Client, db_id: u32) -> BTreeMap<Vec<u8>, (u64, Vec<u8>)> {
    let records = client.traverse(db_id, false).await.expect("traverse");
    let mut map = BTreeMap::new();
    for r in records {
        let previous = map.insert(r.key.to_vec(), (r.header.rsn, r.data.to_vec()));
        assert!(previous.is_none(), "{:?} traversed twice", r.key);
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_records_count_exactly_and_traverse_once() {
    let (cluster, clients, db) = three_nodes_with("counters.tdb", false).await;

    // Two clients per node increment one shared counter concurrently.
    const EACH: u64 = 40;
    let mut tasks = Vec::new();
    for node in &cluster.nodes {
        for _ in 0..2 {
            let c = Client::connect(&node.socket).await.expect("connect");
            tasks.push(tokio::spawn(async move {
                for _ in 0..EACH {
                    increment(&c, db, b"shared-counter").await;
                }
            }));
        }
    }
    finish("increments", &cluster, tasks).await;
    let (header, data) = clients[1]
        .fetch_with_header(db, b"shared-counter")
        .await
        .expect("fetch");
    assert_eq!(counter(&data), 6 * EACH, "every increment counted once");
    assert_eq!(header.dmaster, clients[1].pnn());

    // Records written on every node (so with three dmasters), one deleted: a traverse
    // from any node returns each live record once, with its latest data.
    let mut want = BTreeMap::new();
    for (i, c) in clients.iter().enumerate() {
        for k in 0..10 {
            let key = format!("rec-{i}-{k}").into_bytes();
            let value = format!("value {i} {k}").into_bytes();
            c.store(db, &key, &value).await.expect("store");
            want.insert(key, value);
        }
    }
    clients[2].delete(db, b"rec-0-0").await.expect("delete");
    want.remove(&b"rec-0-0"[..]);
    want.insert(
        b"shared-counter".to_vec(),
        (6 * EACH).to_le_bytes().to_vec(),
    );
    for c in &clients {
        let got = traverse(c, db).await;
        let got_values: BTreeMap<Vec<u8>, Vec<u8>> =
            got.into_iter().map(|(k, (_, v))| (k, v)).collect();
        assert_eq!(got_values, want, "traverse from node {}", c.pnn());
    }
}

/// One transaction: reads `keys`, writes `value` to each. Retries on conflict; an
/// error other than a conflict (a node lost mid-commit) is returned.
async fn write_all(
    client: &Client,
    db: u32,
    keys: &[&[u8]],
    value: &[u8],
) -> Result<(), ClientError> {
    loop {
        let mut t = client.transaction(db);
        for k in keys {
            t.fetch(k).await?;
            t.store(k, value).await?;
        }
        match t.commit().await {
            Err(ClientError::Conflict) => continue,
            other => return other,
        }
    }
}

/// Every record of the persistent database `db` as `client`'s node holds it.
async fn persistent_contents(client: &Client, db: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    traverse(client, db)
        .await
        .into_iter()
        .map(|(k, (_, v))| (k, v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_databases_stay_identical_under_concurrent_transactions() {
    let (cluster, clients, db) = three_nodes_with("registry.tdb", true).await;
    const EACH: u64 = 15;
    let mut tasks = Vec::new();
    for c in &clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("client-{}", c.pnn()).into_bytes();
            for i in 0..EACH {
                loop {
                    let mut t = c.transaction(db);
                    let total = t.fetch(b"total").await.expect("read").unwrap_or_default();
                    t.store(b"total", &(counter(&total) + 1).to_le_bytes())
                        .await
                        .expect("write");
                    t.store(&own, &(i + 1).to_le_bytes()).await.expect("write");
                    match t.commit().await {
                        Ok(()) => break,
                        Err(ClientError::Conflict) => continue,
                        Err(e) => panic!("commit on node {}: {e}", c.pnn()),
                    }
                }
            }
        }));
    }
    finish("transactions", &cluster, tasks).await;

    let first = persistent_contents(&clients[0], db).await;
    assert_eq!(counter(&first[&b"total"[..]]), 3 * EACH);
    for c in &clients {
        assert_eq!(persistent_contents(c, db).await, first, "node {}", c.pnn());
        assert_eq!(c.get_db_seqnum(HERE, db).await.expect("seqnum"), 3 * EACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_cut_by_a_node_kill_is_on_every_node_or_none() {
    let (mut cluster, clients, db) = three_nodes_with("locking.tdb", true).await;
    let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
    // The node that coordinates this database's commits (vnn_map[db_id % 3]) is killed
    // while writers on the other two keep committing through it.
    let victim = db % 3;
    let survivors: Vec<u32> = (0..3).filter(|&n| n != victim).collect();
    let mut tasks = Vec::new();
    for c in &clients {
        if c.pnn() == victim {
            continue;
        }
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for i in 0..60u32 {
                let value = format!("{}-{i}", c.pnn()).into_bytes();
                while write_all(&c, db, &keys, &value).await.is_err() {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.nodes[victim as usize].crash();
    let failures: u32 = finish("writers", &cluster, tasks).await.iter().sum();
    eprintln!("commits that failed and were retried: {failures}");

    let check = |contents: &BTreeMap<Vec<u8>, Vec<u8>>| {
        let a = &contents[&b"a"[..]];
        assert_eq!(
            &contents[&b"b"[..]],
            a,
            "a transaction was split: {contents:?}"
        );
        assert_eq!(
            &contents[&b"c"[..]],
            a,
            "a transaction was split: {contents:?}"
        );
    };
    let clients: Vec<Client> = cluster
        .healthy(&survivors)
        .await
        .into_iter()
        .flatten()
        .collect();
    let survivor = persistent_contents(&clients[0], db).await;
    check(&survivor);
    assert_eq!(persistent_contents(&clients[1], db).await, survivor);

    // The killed node comes back and gets the same database.
    cluster.nodes[victim as usize].restart();
    let clients: Vec<Client> = cluster
        .healthy(&[0, 1, 2])
        .await
        .into_iter()
        .flatten()
        .collect();
    let all = persistent_contents(&clients[0], db).await;
    check(&all);
    for c in &clients {
        assert_eq!(persistent_contents(c, db).await, all, "node {}", c.pnn());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_clients_on_other_nodes() {
    let cluster = TestCluster::start(3);
    let clients: Vec<Client> = cluster
        .healthy(&[0, 1, 2])
        .await
        .into_iter()
        .flatten()
        .collect();
    const SRVID: u64 = 0xbe00_0000_0000_4242;
    let mut inboxes = Vec::new();
    for c in &clients {
        inboxes.push(c.register_srvid(SRVID).await.expect("register"));
    }
    // CTDB_SRVID_ALL catches what no one registered exactly.
    let mut catch_all = clients[1]
        .register_srvid(ctdb_protocol::srvid::ALL)
        .await
        .expect("register all");

    // To one node.
    clients[2]
        .send_message(0, SRVID, Bytes::from_static(b"to node 0"))
        .expect("send");
    let m = within("message to node 0", &cluster, inboxes[0].recv())
        .await
        .expect("message");
    assert_eq!(
        (&m.data[..], m.srvid, m.srcnode),
        (&b"to node 0"[..], SRVID, 2)
    );

    // To every node, the sender's own included.
    clients[0]
        .send_message(dest::BROADCAST_ALL, SRVID, Bytes::from_static(b"everyone"))
        .expect("broadcast");
    for inbox in &mut inboxes {
        let m = within("broadcast", &cluster, inbox.recv())
            .await
            .expect("message");
        assert_eq!(&m.data[..], b"everyone");
    }

    // A srvid nobody registered on node 1 reaches its CTDB_SRVID_ALL handler.
    clients[0]
        .send_message(1, 0xbe00_0000_0000_9999, Bytes::from_static(b"anyone?"))
        .expect("send");
    let m = within("catch-all", &cluster, catch_all.recv())
        .await
        .expect("message");
    assert_eq!(&m.data[..], b"anyone?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_running_through_recoveries_are_neither_lost_nor_doubled() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (cluster, clients, db) = three_nodes_with("through.tdb", false).await;
    // Every node's client increments until both recoveries are over, counting its
    // acknowledged increments.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for node in &cluster.nodes {
        let c = Client::connect(&node.socket).await.expect("connect");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                increment(&c, db, b"through-recovery").await;
                done += 1;
            }
            done
        }));
    }
    // Two recoveries while they run: calls wait while the databases are frozen and go
    // on after the thaw.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let generation = clients[0]
            .get_vnnmap(HERE)
            .await
            .expect("vnn map")
            .generation;
        clients[0]
            .set_recmode(HERE, ctdb_protocol::flags::recmode::ACTIVE)
            .await
            .expect("ask for a recovery");
        within("the recovery", &cluster, async {
            while clients[0].get_vnnmap(HERE).await.map(|m| m.generation).ok() == Some(generation) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let total: u64 = finish("increments through recoveries", &cluster, tasks)
        .await
        .iter()
        .sum();
    eprintln!("{total} increments through two recoveries");
    assert!(total > 0);
    let (_, data) = clients[2]
        .fetch_with_header(db, b"through-recovery")
        .await
        .expect("fetch");
    assert_eq!(counter(&data), total);
}

/// A recovery in the middle of steady commits from every node ends there: rounds it
/// cut short fail and are run again, and they do not ask for recovery after recovery
/// (which once banned a node within seconds of one restart of ctdb-db).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_commits_across_a_recovery_start_no_recovery_loop() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    let (cluster, clients, db) = three_nodes_with("steady.tdb", true).await;
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for c in &clients {
        let (c, stop, committed) = (c.clone(), stop.clone(), committed.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("n{}-{i}", c.pnn());
                let put = c.persistent_store(db, key.as_bytes(), b"v");
                match tokio::time::timeout(Duration::from_secs(10), put).await {
                    Ok(Ok(())) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.nodes[0].restart_component("ctdb-db").await;

    // Within 30 s the cluster is healthy and keeps one generation for 3 s while the
    // commits go on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stable_since: Option<(u32, Instant)> = None;
    loop {
        let generation = match tokio::time::timeout(
            Duration::from_secs(5),
            cluster.healthy_generation(&[0, 1, 2]),
        )
        .await
        {
            Ok(Some(g)) => Some(g),
            _ => None,
        };
        stable_since = match (generation, stable_since) {
            (Some(g), Some((s, t))) if g == s => Some((s, t)),
            (Some(g), _) => Some((g, Instant::now())),
            (None, _) => None,
        };
        if let Some((_, t)) = stable_since {
            if t.elapsed() >= Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no stable generation 30 s after one restart of ctdb-db (a recovery loop?)\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = committed.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        committed.load(Ordering::Relaxed) > before,
        "commits stopped"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
}
