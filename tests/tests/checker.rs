//! The write checker (issue 10): clients keep writing while components and nodes are
//! killed and the network is cut; every acknowledged write must survive.
//!
//! One 3-node cluster without a recovery lock (leaders hold a majority lease), started
//! with `CTDB_RS_FAULT_INJECTION=1`. For the run's duration (60 s by default,
//! `CTDB_RS_CHECKER_SECS` for longer) writers run on every node at once:
//!
//! - **volatile**: one client per node increments 8 counters of its own
//!   (`n{pnn}-k{i}`): it reads the record with its header (FETCH_WITH_HEADER, which
//!   migrates it here), then stores the next value with a compare-and-store. Each key
//!   has one writer because a volatile record lives on its dmaster only (Samba's
//!   semantics): a record written on both sides of a cut keeps one side's value, so two
//!   writers of one key across a cut would lose writes by design, not by a bug.
//! - **persistent**: one client per node runs transactions, each writing a new key of
//!   its own (`p{pnn}-t{seq}`) and incrementing a counter of its own (`p{pnn}-count`).
//!
//! A write answered with success is acknowledged; one that failed or timed out may or
//! may not have happened, so the writer reads again before going on (a reconnect when
//! the node's transport died). Every read is checked as it comes: a counter below its
//! last acknowledged value (a lost write, later hidden by new increments), above the
//! highest value ever sent, or a record sequence number (RSN) lower than one seen
//! before, is reported.
//!
//! Meanwhile one fault at a time, in random order (the seed is printed; set
//! `CTDB_RS_CHECKER_SEED` to replay one), each followed by a wait until the cluster is
//! healthy again: SIGKILL of a component (ctdb-db, ctdb-recoverd, ctdb-transport or
//! ctdb-eventd) of a node, a crash of a whole node (every process SIGKILLed) and its
//! restart, and a network cut of one node for 5–8 s (transport's fault point
//! `transport::cut` on all three nodes, see README "Fault points"; keepalives are set to
//! 1 s × 3 so that both sides see the partition) then healed. Bans are off (faults make
//! recoveries fail; a banned node would sit out the rest of a short run).
//!
//! At the end the writers stop and, once all three nodes are healthy, on every node:
//! every volatile counter is at least its last acknowledged value and at most the
//! highest value sent, with an RSN no lower than any its writer saw; every acknowledged
//! persistent key holds its value, every persistent counter is in its range, the
//! sequence number counts at least every acknowledged commit, and the persistent
//! database (PULL_DB, headers included, `__db_sequence_number__` too) is the same
//! byte for byte on every node. It prints one line (written to the terminal even
//! without `--nocapture`), e.g.
//!
//! ```text
//! checker: 1234 acknowledged writes checked (800 volatile, 434 persistent), faults: 5 component kills, 2 node crashes, 2 cuts, 0 lost
//! ```
//!
//! and fails when anything was lost. A longer run is one command:
//!
//! ```sh
//! cargo build --workspace --bins && CTDB_RS_CHECKER_SECS=900 cargo test -p ctdb-tests --test checker -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest, node as node_flags};
use ctdb_protocol::{LtdbHeader, ReqCall, Wire};
use ctdb_tests::{local_copy, TestCluster};

const HERE: u32 = dest::CURRENT_NODE;
const NODES: [u32; 3] = [0, 1, 2];
const FAULT_INJECTION: (&str, &str) = ("CTDB_RS_FAULT_INJECTION", "1");
/// Counters per volatile writer.
const KEYS: usize = 8;
/// How long one read, store or commit may take before the writer gives up on it.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// A writer's pause after a failed attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const COMPONENTS: [&str; 4] = ["ctdb-db", "ctdb-recoverd", "ctdb-transport", "ctdb-eventd"];
const VOLATILE_DB: &str = "checker.tdb";
const PERSISTENT_DB: &str = "checker_persistent.tdb";

/// Writes to the terminal even when the test harness captures output.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// When the writers started (for the times in reports).
static WRITES_BEGAN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_writes_began() -> f64 {
    WRITES_BEGAN
        .get()
        .map_or(0.0, |t| t.elapsed().as_secs_f64())
}

/// xorshift64*: enough randomness to pick faults, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn counter(data: &[u8]) -> u64 {
    <[u8; 8]>::try_from(data).map_or(0, u64::from_le_bytes)
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// One counter: what its writer knows of it.
#[derive(Debug, Clone, Default)]
struct Counter {
    /// The last value a store or commit of it was acknowledged with.
    acked: u64,
    /// The highest value ever sent.
    attempted: u64,
    /// The highest RSN its writer read.
    rsn: u64,
}

impl Counter {
    /// Checks one read of the record (value, RSN) against what was written before. A
    /// loss is reported once: what was read becomes the new baseline.
    fn observe(&mut self, what: &str, value: u64, rsn: u64, problems: &mut Vec<String>) {
        let what = format!("[{:5.1}s] {what}", since_writes_began());
        if value < self.acked {
            problems.push(format!(
                "{what}: read {value} after {} was acknowledged (rsn {rsn})",
                self.acked
            ));
            self.acked = value;
        }
        if value > self.attempted {
            problems.push(format!(
                "{what}: read {value}, never written (highest sent {})",
                self.attempted
            ));
        }
        if rsn < self.rsn {
            problems.push(format!(
                "{what}: RSN went back from {} to {rsn} (value {value})",
                self.rsn
            ));
            self.rsn = rsn;
        }
        self.rsn = self.rsn.max(rsn);
    }

    /// Notes that a write of `value` was acknowledged: it must be above every value
    /// acknowledged before (an increment made from a stale read would store a value
    /// already acknowledged, and so lose an increment).
    fn acknowledged(&mut self, what: &str, value: u64, problems: &mut Vec<String>) {
        if value <= self.acked {
            problems.push(format!(
                "[{:5.1}s] {what}: {value} acknowledged after {} was (a lost update)",
                since_writes_began(),
                self.acked
            ));
        }
        self.acked = self.acked.max(value);
    }
}

/// The connection of a writer to its node, made again when it is lost.
struct Conn {
    socket: PathBuf,
    client: Option<Client>,
    reconnects: u64,
}

impl Conn {
    fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            client: None,
            reconnects: 0,
        }
    }

    async fn get(&mut self) -> Option<Client> {
        if self.client.is_none() {
            if let Ok(Ok(c)) = tokio::time::timeout(OP_TIMEOUT, Client::connect(&self.socket)).await
            {
                self.reconnects += 1;
                self.client = Some(c);
            }
        }
        self.client.clone()
    }

    /// After a failure: the next attempt connects again (the old connection may be
    /// dead, or stuck behind a node that stopped serving).
    async fn failed(&mut self) {
        self.client = None;
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// A record's header and data, read on the node behind `client` (`flags`: the call's,
/// IMMEDIATE_MIGRATION for a volatile record, none for a persistent one, which is read
/// where it is).
async fn read(
    client: &Client,
    db: u32,
    key: &[u8],
    flags: u32,
) -> Result<(LtdbHeader, Bytes), String> {
    let reply = tokio::time::timeout(
        OP_TIMEOUT,
        client.call(ReqCall {
            flags,
            db_id: db,
            callid: call::FETCH_WITH_HEADER_FUNC,
            hopcount: 0,
            key: Bytes::copy_from_slice(key),
            calldata: Bytes::new(),
        }),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())?;
    if reply.data.len() < LtdbHeader::SIZE {
        return Err(format!("a reply of {} bytes", reply.data.len()));
    }
    let header =
        LtdbHeader::from_bytes(&reply.data[..LtdbHeader::SIZE]).map_err(|e| e.to_string())?;
    Ok((header, reply.data.slice(LtdbHeader::SIZE..)))
}

/// What a writer did and saw.
#[derive(Default)]
struct Report {
    acked: u64,
    attempts: u64,
    failures: u64,
    reconnects: u64,
    /// Volatile: key -> counter; persistent: the counter key -> counter.
    counters: BTreeMap<Vec<u8>, Counter>,
    /// Persistent: the keys of acknowledged commits, with their values and when they
    /// were acknowledged.
    written: BTreeMap<Vec<u8>, (Vec<u8>, f64)>,
    /// What reads during the run showed wrong.
    problems: Vec<String>,
    /// The longest time between two acknowledged writes (from the first write on).
    longest_stall: Duration,
    last_ack: Option<Instant>,
}

impl Report {
    /// One more acknowledged write: counts it and the time since the one before.
    fn ack(&mut self) {
        let now = Instant::now();
        let since = self
            .last_ack
            .unwrap_or(*WRITES_BEGAN.get_or_init(Instant::now));
        self.longest_stall = self.longest_stall.max(now - since);
        self.last_ack = Some(now);
        self.acked += 1;
    }
}

/// Increments `n{pnn}-k{i}`, round robin, until `stop`.
async fn volatile_writer(socket: PathBuf, pnn: u32, db: u32, stop: Arc<AtomicBool>) -> Report {
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("n{pnn}-k{i}").into_bytes())
        .collect();
    let mut report = Report::default();
    let mut conn = Conn::new(socket);
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = &keys[turn % KEYS];
        turn += 1;
        let Some(client) = conn.get().await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        let what = format!("volatile {} through node {pnn}", show(key));
        let state = report.counters.entry(key.clone()).or_default();
        let (header, data) = match read(&client, db, key, call::IMMEDIATE_MIGRATION).await {
            Ok(r) => r,
            Err(_) => {
                report.failures += 1;
                conn.failed().await;
                continue;
            }
        };
        let value = counter(&data);
        state.observe(&what, value, header.rsn, &mut report.problems);
        let next = value + 1;
        state.attempted = state.attempted.max(next);
        report.attempts += 1;
        let stored = tokio::time::timeout(
            OP_TIMEOUT,
            client.compare_store(db, key, Some(&data), &next.to_le_bytes()),
        )
        .await;
        match stored {
            Ok(Ok(Ok(()))) => {
                state.acknowledged(&what, next, &mut report.problems);
                report.ack();
            }
            // Changed since the read: only an unacknowledged write of ours (or a loss)
            // does that; the next read checks it.
            Ok(Ok(Err(_))) => {}
            _ => {
                report.failures += 1;
                conn.failed().await;
            }
        }
    }
    report.reconnects = conn.reconnects;
    report
}

/// Commits transactions writing `p{pnn}-t{seq}` and incrementing `p{pnn}-count` until
/// `stop`.
async fn persistent_writer(socket: PathBuf, pnn: u32, db: u32, stop: Arc<AtomicBool>) -> Report {
    let count_key = format!("p{pnn}-count").into_bytes();
    let what = format!("persistent {} through node {pnn}", show(&count_key));
    let mut report = Report::default();
    let mut conn = Conn::new(socket);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = conn.get().await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        let state = report.counters.entry(count_key.clone()).or_default();
        let (header, data) = match read(&client, db, &count_key, 0).await {
            Ok(r) => r,
            Err(_) => {
                report.failures += 1;
                conn.failed().await;
                continue;
            }
        };
        let value = counter(&data);
        state.observe(&what, value, header.rsn, &mut report.problems);
        seq += 1;
        let key = format!("p{pnn}-t{seq}").into_bytes();
        let data = format!("transaction {seq} of node {pnn}, count {}", value + 1).into_bytes();
        let commit = async {
            let mut t = client.transaction(db);
            // The transaction's own read: the commit is refused if the counter changed
            // since (TRANS3_CONFLICT).
            let current = t.fetch(&count_key).await?.map_or(0, |d| counter(&d));
            if current != value {
                return Err(ClientError::Conflict);
            }
            t.store(&count_key, &(value + 1).to_le_bytes()).await?;
            t.store(&key, &data).await?;
            t.commit().await
        };
        state.attempted = state.attempted.max(value + 1);
        report.attempts += 1;
        match tokio::time::timeout(OP_TIMEOUT * 2, commit).await {
            Ok(Ok(())) => {
                state.acknowledged(&what, value + 1, &mut report.problems);
                report.ack();
                report.written.insert(key, (data, since_writes_began()));
            }
            // Nothing applied: run again (the next read sees why).
            Ok(Err(ClientError::Conflict)) => {}
            _ => {
                report.failures += 1;
                conn.failed().await;
            }
        }
    }
    report.reconnects = conn.reconnects;
    report
}

/// SET_FAILPOINT `transport::cut` on the node behind `client`: cuts it off `peers`
/// (none: heals). Returns how many packets its cut dropped so far.
async fn cut(client: &Client, peers: &[u32]) -> Result<u64, String> {
    let actions = if peers.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = peers.iter().map(u32::to_string).collect();
        format!("return({})", list.join(","))
    };
    ctdb_tests::failpoint(client, "transport", "transport::cut", Some(&actions)).await
}

/// Tunables live in transport (a restarted one has the defaults again): keepalives
/// that notice a cut in 3 s, and no bans.
async fn tune(clients: &[Option<Client>]) {
    for c in clients.iter().flatten() {
        for (name, value) in [
            ("KeepaliveInterval", 1),
            ("KeepaliveLimit", 3),
            ("EnableBans", 0),
        ] {
            c.set_tunable(HERE, name, value)
                .await
                .unwrap_or_else(|e| panic!("{name} on node {}: {e}", c.pnn()));
        }
    }
}

/// Waits until `active` are healthy (TestCluster::healthy: a generous timeout, with
/// the logs when it runs out), then sets the tunables again.
async fn heal(cluster: &TestCluster, active: &[u32]) -> Vec<Option<Client>> {
    let clients = cluster.healthy(active).await;
    tune(&clients).await;
    clients
}

#[derive(Default)]
struct Faults {
    kills: u64,
    crashes: u64,
    cuts: u64,
    restarts: u64,
}

/// One fault at a time for `run_for`: each kind once first, in random order, then at
/// random; each followed by a wait until the cluster is healthy again.
async fn random_faults(
    cluster: &mut TestCluster,
    run_for: Duration,
    seed: u64,
    faults: &mut Faults,
) {
    let mut rng = Rng(seed);
    let writes_began = *WRITES_BEGAN.get_or_init(Instant::now);
    let mut first = vec![0u64, 1, 2];
    while writes_began.elapsed() < run_for {
        // Writers work undisturbed a moment between faults.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
        let kind = if first.is_empty() {
            // Component kills half the time, crashes and cuts a quarter each.
            [0, 0, 1, 2][rng.below(4) as usize]
        } else {
            first.remove(rng.below(first.len() as u64) as usize)
        };
        let victim = rng.below(3) as u32;
        let at = writes_began.elapsed().as_secs_f64();
        let t = Instant::now();
        let what = match kind {
            0 => {
                let component = COMPONENTS[rng.below(4) as usize];
                cluster.nodes[victim as usize]
                    .kill_and_wait_restart(component)
                    .await;
                heal(cluster, &NODES).await;
                faults.kills += 1;
                format!("{component} of node {victim} killed")
            }
            1 => {
                cluster.nodes[victim as usize].crash();
                let others: Vec<u32> = NODES.iter().copied().filter(|&p| p != victim).collect();
                heal(cluster, &others).await;
                let alone = t.elapsed();
                cluster.nodes[victim as usize].restart();
                heal(cluster, &NODES).await;
                faults.crashes += 1;
                format!(
                    "node {victim} crashed (the others healthy after {:.1}s) and restarted",
                    alone.as_secs_f64()
                )
            }
            _ => {
                let what = cut_one(cluster, victim, 5000 + rng.below(3000)).await;
                heal(cluster, &NODES).await;
                faults.cuts += 1;
                what
            }
        };
        say(&format!(
            "checker: [{at:5.1}s] {what}; healthy again after {:.1}s",
            t.elapsed().as_secs_f64()
        ));
    }
}

/// One network cut of `victim` for `secs`, then healed; checks that the others saw it
/// DISCONNECTED meanwhile (the cut is a real partition).
async fn cut_one(cluster: &TestCluster, victim: u32, millis: u64) -> String {
    let clients = heal(cluster, &NODES).await;
    let others: Vec<u32> = NODES.iter().copied().filter(|&p| p != victim).collect();
    let started = Instant::now();
    for &pnn in &NODES {
        let peers = if pnn == victim {
            others.clone()
        } else {
            vec![victim]
        };
        let c = clients[pnn as usize].as_ref().expect("client");
        cut(c, &peers)
            .await
            .unwrap_or_else(|e| panic!("cutting node {pnn} off {peers:?}: {e}"));
    }
    let watcher = clients[others[0] as usize].as_ref().expect("client");
    let mut noticed = None;
    while started.elapsed() < Duration::from_millis(millis) {
        if noticed.is_none() {
            let map = tokio::time::timeout(OP_TIMEOUT, watcher.get_nodemap(HERE)).await;
            if let Ok(Ok(map)) = map {
                if map
                    .nodes
                    .iter()
                    .any(|n| n.pnn == victim && n.flags & node_flags::DISCONNECTED != 0)
                {
                    noticed = Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut dropped = 0;
    for &pnn in &NODES {
        let c = clients[pnn as usize].as_ref().expect("client");
        dropped += cut(c, &[])
            .await
            .unwrap_or_else(|e| panic!("healing the cut on node {pnn}: {e}"));
    }
    let noticed = noticed.unwrap_or_else(|| {
        panic!(
            "node {} never saw node {victim} DISCONNECTED in a {millis} ms cut\nlogs:\n{}",
            others[0],
            cluster.logs()
        )
    });
    format!(
        "node {victim} cut off for {:.1}s (node {} saw it DISCONNECTED after {:.1}s; {dropped} \
         packets dropped)",
        millis as f64 / 1000.0,
        others[0],
        noticed.as_secs_f64()
    )
}

/// A node's copy of a database: key -> the whole record (ltdb header and data).
type DbCopy = BTreeMap<Vec<u8>, Vec<u8>>;

/// The checks at the end, on every node; what is wrong.
async fn check_all(
    clients: &[Client],
    vdb: u32,
    pdb: u32,
    volatile: &[Report],
    persistent: &[Report],
) -> Vec<String> {
    let mut problems = Vec::new();
    let in_range = |what: String, value: u64, rsn: u64, c: &Counter, problems: &mut Vec<String>| {
        if value < c.acked {
            problems.push(format!("{what}: {value}, but {} was acknowledged", c.acked));
        }
        if value > c.attempted {
            problems.push(format!(
                "{what}: {value}, never written (highest sent {})",
                c.attempted
            ));
        }
        if rsn < c.rsn {
            problems.push(format!("{what}: RSN {rsn}, but {} was seen", c.rsn));
        }
    };
    let commits: u64 = persistent.iter().map(|r| r.acked).sum();
    let mut first: Option<(u32, DbCopy)> = None;
    for client in clients {
        let pnn = client.pnn();
        for report in volatile {
            for (key, c) in &report.counters {
                match read(client, vdb, key, call::IMMEDIATE_MIGRATION).await {
                    Ok((h, data)) => in_range(
                        format!("volatile {} on node {pnn}", show(key)),
                        counter(&data),
                        h.rsn,
                        c,
                        &mut problems,
                    ),
                    Err(e) => problems.push(format!(
                        "volatile {} on node {pnn}: cannot read: {e}",
                        show(key)
                    )),
                }
            }
        }
        let copy = local_copy(client, pdb).await;
        let value = |key: &[u8]| {
            copy.get(key).map(|record| {
                let (h, v) = record.split_at(LtdbHeader::SIZE.min(record.len()));
                (LtdbHeader::from_bytes(h).map_or(0, |h| h.rsn), v.to_vec())
            })
        };
        for report in persistent {
            for (key, (data, at)) in &report.written {
                match value(key) {
                    Some((_, v)) if v == *data => {}
                    Some((_, v)) => problems.push(format!(
                        "persistent {} on node {pnn}: {:?}, but {:?} was acknowledged at \
                         {at:.1}s",
                        show(key),
                        show(&v),
                        show(data)
                    )),
                    None => problems.push(format!(
                        "persistent {} on node {pnn}: missing ({:?} acknowledged at {at:.1}s)",
                        show(key),
                        show(data)
                    )),
                }
            }
            for (key, c) in &report.counters {
                let (rsn, v) = value(key).unwrap_or_default();
                in_range(
                    format!("persistent {} on node {pnn}", show(key)),
                    counter(&v),
                    rsn,
                    c,
                    &mut problems,
                );
            }
        }
        match client.get_db_seqnum(HERE, pdb).await {
            Ok(seqnum) if seqnum >= commits => {}
            Ok(seqnum) => problems.push(format!(
                "sequence number on node {pnn}: {seqnum}, but {commits} commits were acknowledged"
            )),
            Err(e) => problems.push(format!("GET_DB_SEQNUM on node {pnn}: {e}")),
        }
        match &first {
            None => first = Some((pnn, copy)),
            Some((other, theirs)) if *theirs != copy => {
                let differ: Vec<String> = theirs
                    .keys()
                    .chain(copy.keys())
                    .filter(|k| theirs.get(*k) != copy.get(*k))
                    .map(|k| show(k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                problems.push(format!(
                    "the persistent database of node {pnn} differs from node {other}'s at {differ:?}"
                ));
            }
            Some(_) => {}
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kills_crashes_and_cuts() {
    let run_for = Duration::from_secs(
        std::env::var("CTDB_RS_CHECKER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let seed = std::env::var("CTDB_RS_CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    say(&format!(
        "checker: {}s of writes and faults, seed {seed} (CTDB_RS_CHECKER_SEED replays it)",
        run_for.as_secs()
    ));
    run_checker(Plan::Random { run_for, seed }).await;
}

/// Issue 13's rolling restart: every component of every node restarted in turn, as an
/// operator (or a Kubernetes rollout) does, while the writers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_rolling_restart_of_every_component() {
    say("checker: rolling restart of the 12 components under load");
    run_checker(Plan::Rolling).await;
}

/// What happens to the cluster while the writers write.
enum Plan {
    /// One fault at a time, at random (from `seed`), for `run_for`.
    Random { run_for: Duration, seed: u64 },
    /// Node by node, each component stopped (SIGTERM) and restarted by its supervisor,
    /// the cluster healthy again before the next.
    Rolling,
}

async fn run_checker(plan: Plan) {
    let began = Instant::now();
    let mut cluster = TestCluster::start_without_lock_with_env(3, &[FAULT_INJECTION]);
    let clients = heal(&cluster, &NODES).await;
    let c0 = clients[0].as_ref().expect("client");
    let vdb = c0.attach(HERE, VOLATILE_DB, false).await.expect("attach");
    let pdb = c0.attach(HERE, PERSISTENT_DB, true).await.expect("attach");
    for c in clients.iter().flatten() {
        assert_eq!(
            c.attach(HERE, VOLATILE_DB, false).await.expect("attach"),
            vdb
        );
        assert_eq!(
            c.attach(HERE, PERSISTENT_DB, true).await.expect("attach"),
            pdb
        );
    }
    // Transport refuses a bad cut clearly.
    let e = cut(c0, &[0]).await.unwrap_err();
    assert!(e.contains("not another live node"), "{e}");
    drop(clients);

    WRITES_BEGAN.get_or_init(Instant::now);
    let stop = Arc::new(AtomicBool::new(false));
    let mut volatile = Vec::new();
    let mut persistent = Vec::new();
    for node in &cluster.nodes {
        volatile.push(tokio::spawn(volatile_writer(
            node.socket.clone(),
            node.pnn,
            vdb,
            stop.clone(),
        )));
        persistent.push(tokio::spawn(persistent_writer(
            node.socket.clone(),
            node.pnn,
            pdb,
            stop.clone(),
        )));
    }

    let writes_began = *WRITES_BEGAN.get_or_init(Instant::now);
    let mut faults = Faults::default();
    let seed = match plan {
        Plan::Random { run_for, seed } => {
            random_faults(&mut cluster, run_for, seed, &mut faults).await;
            seed
        }
        Plan::Rolling => {
            for pnn in NODES {
                for component in COMPONENTS {
                    // Writers work undisturbed a moment between restarts.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let at = writes_began.elapsed().as_secs_f64();
                    let t = Instant::now();
                    cluster.nodes[pnn as usize]
                        .restart_component(component)
                        .await;
                    heal(&cluster, &NODES).await;
                    faults.restarts += 1;
                    say(&format!(
                        "checker: [{at:5.1}s] {component} of node {pnn} restarted; healthy \
                         again after {:.1}s",
                        t.elapsed().as_secs_f64()
                    ));
                }
            }
            0
        }
    };

    stop.store(true, Ordering::Relaxed);
    let mut volatile_reports = Vec::new();
    for task in volatile {
        volatile_reports.push(task.await.expect("volatile writer"));
    }
    let mut persistent_reports = Vec::new();
    for task in persistent {
        persistent_reports.push(task.await.expect("persistent writer"));
    }
    let clients: Vec<Client> = heal(&cluster, &NODES).await.into_iter().flatten().collect();
    let mut problems: Vec<String> = volatile_reports
        .iter()
        .chain(&persistent_reports)
        .flat_map(|r| r.problems.iter().cloned())
        .collect();
    problems.extend(check_all(&clients, vdb, pdb, &volatile_reports, &persistent_reports).await);

    for (kind, reports) in [
        ("volatile", &volatile_reports),
        ("persistent", &persistent_reports),
    ] {
        for (pnn, r) in reports.iter().enumerate() {
            say(&format!(
                "checker: {kind} writer of node {pnn}: {} acknowledged of {} attempts, {} \
                 failed or timed out, {} connections",
                r.acked, r.attempts, r.failures, r.reconnects
            ));
        }
    }
    let v: u64 = volatile_reports.iter().map(|r| r.acked).sum();
    let p: u64 = persistent_reports.iter().map(|r| r.acked).sum();
    const SHOWN: usize = 40;
    for problem in problems.iter().take(SHOWN) {
        say(&format!("checker: LOST: {problem}"));
    }
    if problems.len() > SHOWN {
        say(&format!("checker: ... and {} more", problems.len() - SHOWN));
    }
    let stall = volatile_reports
        .iter()
        .chain(&persistent_reports)
        .map(|r| r.longest_stall)
        .max()
        .unwrap_or_default();
    say(&format!(
        "checker: {} acknowledged writes checked ({v} volatile, {p} persistent), faults: {} \
         component kills, {} node crashes, {} cuts, {} component restarts, {} lost, longest \
         stall of a writer {:.1}s ({:.0}s)",
        v + p,
        faults.kills,
        faults.crashes,
        faults.cuts,
        faults.restarts,
        problems.len(),
        stall.as_secs_f64(),
        began.elapsed().as_secs_f64()
    ));
    if !problems.is_empty() {
        // The nodes' logs outlive the cluster's directory, for a look at what happened.
        let kept = std::env::temp_dir().join(format!("ctdb-rs-checker-{seed}"));
        let _ = std::fs::create_dir_all(&kept);
        for node in &cluster.nodes {
            let _ = std::fs::write(kept.join(format!("node{}.log", node.pnn)), node.log());
        }
        panic!(
            "{} problems (seed {seed}), the first: {}\nevery node's log: {}",
            problems.len(),
            problems[0],
            kept.display()
        );
    }
    assert!(
        v > 0 && p > 0,
        "the writers acknowledged nothing: {v} volatile, {p} persistent"
    );
}
