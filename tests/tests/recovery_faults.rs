//! A failure at any step of recovery loses nothing (DESIGN.md, "Fault points").
//!
//! One 3-node cluster started with CTDB_RS_FAULT_INJECTION=1. Volatile records are
//! written from every node and persistent transactions committed (TRANS3_COMMIT); then,
//! for each fault point of ctdb-db (on the leader and on another node) and of
//! ctdb-recoverd (on the leader), the test switches the point on with SET_FAILPOINT,
//! forces a recovery (recovery mode ACTIVE, what `ctdb recover` sends), waits until the
//! point fired (the recovery failed) or the component it aborted was restarted,
//! switches it off, waits for a healthy cluster with one generation, and checks that
//! every record written so far is on every node with its value, that the persistent
//! database is identical on every node, and that its sequence number counts every
//! commit. Before each case one more volatile record (held by one node only until the
//! recovery spreads it) and one more transaction are written, so each recovery has
//! something new to lose.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{dest, recmode};
use ctdb_protocol::Opcode;
use ctdb_tests::{failpoint, failpoint_raw, TestCluster, TestNode};

const HERE: u32 = dest::CURRENT_NODE;
const NODES: [u32; 3] = [0, 1, 2];
const FAULT_INJECTION: (&str, &str) = ("CTDB_RS_FAULT_INJECTION", "1");
/// How long a fault may take to fire, or a component to come back.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// The node a fault is set on, relative to the leader at the time.
#[derive(Debug, Clone, Copy)]
enum At {
    Leader,
    /// The node after the leader (pnn order, wrapping).
    Next,
    /// The node before the leader.
    Prev,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    /// `return`: the step fails; wait until `fires` has fired.
    Fail,
    /// `return(abort)`: the component dies; wait until ctdbd has restarted it.
    Abort,
}

struct Case {
    component: &'static str,
    at: At,
    action: Action,
    /// The points switched on together.
    points: Vec<&'static str>,
    /// The point whose firing shows the recovery failed there.
    fires: &'static str,
}

fn fail(component: &'static str, at: At, point: &'static str) -> Case {
    Case {
        component,
        at,
        action: Action::Fail,
        points: vec![point],
        fires: point,
    }
}

fn abort(component: &'static str, at: At, point: &'static str) -> Case {
    Case {
        action: Action::Abort,
        ..fail(component, at, point)
    }
}

fn cases() -> Vec<Case> {
    use At::*;
    let db = [
        "db::transaction_start",
        "db::wipe",
        "db::pull",
        "db::push",
        "db::commit::before",
        "db::commit::after_switch",
        "db::flush",
    ];
    let mut cases = Vec::new();
    for point in db {
        cases.push(fail("db", Leader, point));
        cases.push(fail("db", Next, point));
    }
    // A cancel runs only after another failure: a push fails, then the cancel too.
    for at in [Leader, Next] {
        cases.push(Case {
            points: vec!["db::push", "db::cancel"],
            fires: "db::cancel",
            ..fail("db", at, "db::cancel")
        });
    }
    for point in [
        "recoverd::after_freeze",
        "recoverd::after_transaction_start",
        "recoverd::after_wipe",
        "recoverd::push",
        "recoverd::before_commit",
        "recoverd::after_commit",
    ] {
        cases.push(fail("recoverd", Leader, point));
    }
    // Crashes in the middle, on different nodes so that no component dies over and
    // over (ctdbd gives up on one that keeps dying within seconds of starting).
    cases.push(abort("db", Prev, "db::wipe"));
    cases.push(abort("db", Leader, "db::commit::after_switch"));
    cases.push(abort("db", Next, "db::push"));
    cases.push(abort("recoverd", Leader, "recoverd::push"));
    cases.push(abort("recoverd", Leader, "recoverd::after_commit"));
    cases
}

/// What the test wrote and must find again.
#[derive(Default)]
struct Written {
    volatile: BTreeMap<Vec<u8>, Vec<u8>>,
    persistent: BTreeMap<Vec<u8>, Vec<u8>>,
    commits: u64,
}

impl Written {
    async fn volatile_record(&mut self, client: &Client, db: u32, key: String) {
        let value = format!("{key} written through node {}", client.pnn()).into_bytes();
        client
            .store(db, key.as_bytes(), &value)
            .await
            .unwrap_or_else(|e| panic!("storing {key} through node {}: {e}", client.pnn()));
        self.volatile.insert(key.into_bytes(), value);
    }

    /// One persistent transaction storing `keys`, retried on conflict.
    async fn transaction(&mut self, client: &Client, db: u32, keys: &[String]) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map(|k| {
                let value = format!("{k} committed through node {}", client.pnn());
                (k.clone().into_bytes(), value.into_bytes())
            })
            .collect();
        loop {
            let mut t = client.transaction(db);
            for (k, v) in &pairs {
                t.store(k, v).await.expect("transaction store");
            }
            match t.commit().await {
                Ok(()) => break,
                Err(ClientError::Conflict) => continue,
                Err(e) => panic!("commit through node {}: {e}", client.pnn()),
            }
        }
        self.commits += 1;
        self.persistent.extend(pairs);
    }
}

/// Every record of `db` on the node behind `client` (its own copy), as key → data.
async fn local_data(client: &Client, db: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    ctdb_tests::local_copy(client, db)
        .await
        .into_iter()
        .map(|(key, record)| {
            let (_, data) = ctdb_protocol::ltdb::split_record(&record).expect("an ltdb header");
            (key, data.to_vec())
        })
        .collect()
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Every record written is on every node with its value; the persistent database is
/// the same everywhere and its sequence number counts every commit.
async fn check(clients: &[Client], written: &Written, vdb: u32, pdb: u32, after: &str) {
    let mut first: Option<BTreeMap<Vec<u8>, Vec<u8>>> = None;
    for c in clients {
        let pnn = c.pnn();
        let volatile = local_data(c, vdb).await;
        for (key, value) in &written.volatile {
            match volatile.get(key) {
                Some(v) if v == value => {}
                Some(v) => panic!(
                    "after {after}: node {pnn} holds volatile {} as {:?}",
                    show(key),
                    show(v)
                ),
                None => panic!("after {after}: node {pnn} lost volatile {}", show(key)),
            }
        }
        let persistent = local_data(c, pdb).await;
        for (key, value) in &written.persistent {
            assert_eq!(
                persistent.get(key).map(|v| show(v)),
                Some(show(value)),
                "after {after}: persistent {} on node {pnn}",
                show(key)
            );
        }
        let seqnum = c.get_db_seqnum(HERE, pdb).await.expect("GET_DB_SEQNUM");
        assert_eq!(
            seqnum, written.commits,
            "after {after}: sequence number on node {pnn}"
        );
        match &first {
            None => first = Some(persistent),
            Some(other) => assert!(
                *other == persistent,
                "after {after}: the persistent database of node {pnn} differs from node {}'s",
                clients[0].pnn()
            ),
        }
    }
}

/// The leader every node names (asked until they agree).
async fn leader(clients: &[Client]) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut seen = Vec::new();
        for c in clients {
            seen.push(
                c.control_status(HERE, Opcode::GetRecmaster, Bytes::new())
                    .await
                    .map(|l| l as u32)
                    .map_err(|e| format!("node {}: {e}", c.pnn())),
            );
        }
        if let Ok(first) = &seen[0] {
            if seen.iter().all(|l| l.as_ref() == Ok(first)) {
                return *first;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
        tokio::time::sleep(POLL).await;
    }
}

async fn healthy(cluster: &TestCluster) -> Vec<Client> {
    cluster
        .healthy(&NODES)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Runs one case; returns what it waited for, for the report.
async fn run_case(cluster: &TestCluster, clients: &[Client], case: &Case) -> String {
    let leader = leader(clients).await;
    let target = match case.at {
        At::Leader => leader,
        At::Next => (leader + 1) % 3,
        At::Prev => (leader + 2) % 3,
    } as usize;
    let node = &cluster.nodes[target];
    let client = &clients[target];
    let process = format!("ctdb-{}", case.component);
    let old_pid = node.component_pid(&process);
    let actions = match case.action {
        Action::Fail => "return",
        Action::Abort => "return(abort)",
    };
    let mut before = 0;
    for &point in &case.points {
        let count = failpoint(client, case.component, point, Some(actions))
            .await
            .unwrap_or_else(|e| panic!("switching {point} on, node {target}: {e}"));
        if point == case.fires {
            before = count;
        }
    }
    // What `ctdb recover` does: recovery mode ACTIVE; the leader recovers.
    clients[leader as usize]
        .set_recmode(HERE, recmode::ACTIVE)
        .await
        .expect("SET_RECMODE active");
    let deadline = Instant::now() + WAIT;
    match case.action {
        Action::Fail => loop {
            let count = failpoint(client, case.component, case.fires, None)
                .await
                .unwrap_or_else(|e| panic!("reading {}: {e}", case.fires));
            if count > before {
                for &point in &case.points {
                    failpoint(client, case.component, point, Some(""))
                        .await
                        .unwrap_or_else(|e| panic!("switching {point} off: {e}"));
                }
                break format!("{} fired on node {target}", case.fires);
            }
            assert!(
                Instant::now() < deadline,
                "{} on node {target} (leader {leader}) never fired; logs:\n{}",
                case.fires,
                cluster.logs()
            );
            tokio::time::sleep(POLL).await;
        },
        Action::Abort => loop {
            let pid = node.component_pid(&process);
            if pid.is_some() && pid != old_pid {
                break format!(
                    "{process} of node {target} aborted at {} and restarted",
                    case.fires
                );
            }
            assert!(
                Instant::now() < deadline,
                "{process} of node {target} did not abort at {} and restart; logs:\n{}",
                case.fires,
                cluster.logs()
            );
            tokio::time::sleep(POLL).await;
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_of_recovery_loses_nothing() {
    let began = Instant::now();
    let cluster = TestCluster::start_with_env(3, &[FAULT_INJECTION]);
    let mut clients = healthy(&cluster).await;
    for c in &clients {
        // Every case makes recoveries fail; no node may be banned for it.
        c.set_tunable(HERE, "EnableBans", 0)
            .await
            .expect("EnableBans");
        // A control in flight when its component aborts is never answered: the leader
        // gives up on it after RecoverTimeout (30 s by default).
        c.set_tunable(HERE, "RecoverTimeout", 5)
            .await
            .expect("RecoverTimeout");
    }
    let vdb = clients[0]
        .attach(HERE, "faults.tdb", false)
        .await
        .expect("attach");
    let pdb = clients[0]
        .attach(HERE, "faults_persistent.tdb", true)
        .await
        .expect("attach persistent");
    for c in &clients {
        assert_eq!(
            c.attach(HERE, "faults.tdb", false).await.expect("attach"),
            vdb
        );
        let p = c.attach(HERE, "faults_persistent.tdb", true).await;
        assert_eq!(p.expect("attach persistent"), pdb);
    }

    // Bad requests get clear errors, from a running node.
    let c0 = &clients[0];
    let e = failpoint(c0, "db", "db::no_such_point", Some("return"))
        .await
        .unwrap_err();
    assert!(e.contains("unknown fault point"), "{e}");
    let e = failpoint(c0, "db", "db::wipe", Some("not-an-action"))
        .await
        .unwrap_err();
    assert!(e.contains("db::wipe"), "{e}");
    let e = failpoint(c0, "eventd", "x", Some("return"))
        .await
        .unwrap_err();
    assert!(e.contains("no fault points"), "{e}");
    let e = failpoint_raw(c0, b"db".to_vec()).await.unwrap_err();
    assert!(e.contains("SET_FAILPOINT"), "{e}");
    assert_eq!(
        failpoint(c0, "recoverd", "recoverd::push", None).await,
        Ok(0)
    );
    // Our tool sends it too.
    let tool = ctdb_tests::bin("ctdb");
    let out = cluster.nodes[0].tool(&tool, &["failpoint", "db", "db::wipe"]);
    assert!(out.status.success(), "ctdb failpoint: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "db::wipe: fired 0 times\n"
    );
    let out = cluster.nodes[0].tool(&tool, &["failpoint", "db", "db::nope", "return"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("unknown fault point"),
        "{out:?}"
    );

    let mut written = Written::default();
    for (i, c) in clients.iter().enumerate() {
        for k in 0..10 {
            written
                .volatile_record(c, vdb, format!("v-first-{i}-{k}"))
                .await;
        }
        let keys: Vec<String> = (0..4).map(|k| format!("p-first-{i}-{k}")).collect();
        written.transaction(c, pdb, &keys).await;
    }
    // A recovery without faults spreads every record to every node.
    let l = leader(&clients).await as usize;
    clients[l]
        .set_recmode(HERE, recmode::ACTIVE)
        .await
        .expect("SET_RECMODE active");
    clients = healthy(&cluster).await;
    check(&clients, &written, vdb, pdb, "a recovery without faults").await;

    let cases = cases();
    for (n, case) in cases.iter().enumerate() {
        let case_began = Instant::now();
        let writer = &clients[n % 3];
        written
            .volatile_record(writer, vdb, format!("v-case-{n}"))
            .await;
        let committer = &clients[(n + 1) % 3];
        written
            .transaction(committer, pdb, &[format!("p-case-{n}")])
            .await;

        let waited = run_case(&cluster, &clients, case).await;
        clients = healthy(&cluster).await;
        let label = format!("case {n} ({waited})");
        check(&clients, &written, vdb, pdb, &label).await;
        println!(
            "{label}: recovered, nothing lost ({} ms)",
            case_began.elapsed().as_millis()
        );
    }
    println!(
        "{} cases, {} volatile records, {} persistent commits, {} s in all",
        cases.len(),
        written.volatile.len(),
        written.commits,
        began.elapsed().as_secs()
    );
}

/// A node started without CTDB_RS_FAULT_INJECTION=1 refuses SET_FAILPOINT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_points_cannot_be_switched_on_without_the_variable() {
    let node = TestNode::start("");
    let client = node.ready().await;
    for component in ["db", "recoverd"] {
        let name = format!("{component}::push");
        let e = failpoint(&client, component, &name, Some("return"))
            .await
            .unwrap_err();
        assert!(e.contains("CTDB_RS_FAULT_INJECTION=1"), "{component}: {e}");
    }
}
