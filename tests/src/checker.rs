//! The write checker's writers and checks (issue 10), shared by the checker on local
//! processes (`tests/tests/checker.rs`, which describes them) and the rolling restart of
//! the docker-compose cluster (`tests/tests/compose_rolling.rs`): clients that keep
//! writing volatile and persistent records through a node's client socket, keep account
//! of every acknowledged write, and the checks at the end that none was lost.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::{LtdbHeader, ReqCall, Wire};

use crate::local_copy;

const HERE: u32 = dest::CURRENT_NODE;

/// Counters per volatile writer.
pub const KEYS: usize = 8;
/// How long one read, store or commit may take before the writer gives up on it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// A writer's pause after a failed attempt.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub const VOLATILE_DB: &str = "checker.tdb";
pub const PERSISTENT_DB: &str = "checker_persistent.tdb";

/// Attaches the checker's two databases on every node of `clients` (the same ids
/// everywhere); returns (volatile, persistent).
pub async fn attach_databases(clients: &[&Client]) -> (u32, u32) {
    let here = dest::CURRENT_NODE;
    let mut ids = None;
    for c in clients {
        let vdb = c.attach(here, VOLATILE_DB, false).await.expect("attach");
        let pdb = c.attach(here, PERSISTENT_DB, true).await.expect("attach");
        match ids {
            None => ids = Some((vdb, pdb)),
            Some(first) => assert_eq!((vdb, pdb), first, "database ids differ between nodes"),
        }
    }
    ids.expect("at least one node")
}

/// Writes to the terminal even when the test harness captures output.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// When the writers started (for the times in reports).
pub static WRITES_BEGAN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

pub fn since_writes_began() -> f64 {
    WRITES_BEGAN
        .get()
        .map_or(0.0, |t| t.elapsed().as_secs_f64())
}

pub fn counter(data: &[u8]) -> u64 {
    <[u8; 8]>::try_from(data).map_or(0, u64::from_le_bytes)
}

pub fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// One counter: what its writer knows of it.
#[derive(Debug, Clone, Default)]
pub struct Counter {
    /// The last value a store or commit of it was acknowledged with.
    pub acked: u64,
    /// The highest value ever sent.
    pub attempted: u64,
    /// The highest RSN its writer read.
    pub rsn: u64,
}

impl Counter {
    /// Checks one read of the record (value, RSN) against what was written before. A
    /// loss is reported once: what was read becomes the new baseline.
    pub fn observe(&mut self, what: &str, value: u64, rsn: u64, problems: &mut Vec<String>) {
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
    pub fn acknowledged(&mut self, what: &str, value: u64, problems: &mut Vec<String>) {
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
pub struct Conn {
    pub socket: PathBuf,
    pub client: Option<Client>,
    pub reconnects: u64,
}

impl Conn {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            client: None,
            reconnects: 0,
        }
    }

    pub async fn get(&mut self) -> Option<Client> {
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
    pub async fn failed(&mut self) {
        self.client = None;
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// A record's header and data, read on the node behind `client` (`flags`: the call's,
/// IMMEDIATE_MIGRATION for a volatile record, none for a persistent one, which is read
/// where it is).
pub async fn read(
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
pub struct Report {
    pub acked: u64,
    pub attempts: u64,
    pub failures: u64,
    pub reconnects: u64,
    /// Volatile: key -> counter; persistent: the counter key -> counter.
    pub counters: BTreeMap<Vec<u8>, Counter>,
    /// Persistent: the keys of acknowledged commits, with their values and when they
    /// were acknowledged.
    pub written: BTreeMap<Vec<u8>, (Vec<u8>, f64)>,
    /// What reads during the run showed wrong.
    pub problems: Vec<String>,
    /// The longest time between two acknowledged writes (from the first write on).
    pub longest_stall: Duration,
    /// When the longest stall ended (seconds since the writes began).
    pub longest_stall_ended: f64,
    pub last_ack: Option<Instant>,
}

impl Report {
    /// One more acknowledged write: counts it and the time since the one before.
    pub fn ack(&mut self) {
        let now = Instant::now();
        let since = self
            .last_ack
            .unwrap_or(*WRITES_BEGAN.get_or_init(Instant::now));
        if now - since > self.longest_stall {
            self.longest_stall = now - since;
            self.longest_stall_ended = since_writes_began();
        }
        self.last_ack = Some(now);
        self.acked += 1;
    }
}

/// Increments `n{pnn}-k{i}`, round robin, until `stop`.
pub async fn volatile_writer(socket: PathBuf, pnn: u32, db: u32, stop: Arc<AtomicBool>) -> Report {
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
pub async fn persistent_writer(
    socket: PathBuf,
    pnn: u32,
    db: u32,
    stop: Arc<AtomicBool>,
) -> Report {
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

/// A node's copy of a database: key -> the whole record (ltdb header and data).
pub type DbCopy = BTreeMap<Vec<u8>, Vec<u8>>;

/// The checks at the end, on every node; what is wrong.
pub async fn check_all(
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

/// The writers of a run: one volatile and one persistent writer per node.
pub struct Writers {
    stop: Arc<AtomicBool>,
    volatile: Vec<tokio::task::JoinHandle<Report>>,
    persistent: Vec<tokio::task::JoinHandle<Report>>,
}

impl Writers {
    /// Starts the writers of every node of `nodes` (pnn, client socket) on the volatile
    /// database `vdb` and the persistent `pdb`; the writes' clock starts (the first
    /// call's).
    pub fn start(nodes: &[(u32, PathBuf)], vdb: u32, pdb: u32) -> Self {
        WRITES_BEGAN.get_or_init(Instant::now);
        let stop = Arc::new(AtomicBool::new(false));
        let mut volatile = Vec::new();
        let mut persistent = Vec::new();
        for (pnn, socket) in nodes {
            volatile.push(tokio::spawn(volatile_writer(
                socket.clone(),
                *pnn,
                vdb,
                stop.clone(),
            )));
            persistent.push(tokio::spawn(persistent_writer(
                socket.clone(),
                *pnn,
                pdb,
                stop.clone(),
            )));
        }
        Self {
            stop,
            volatile,
            persistent,
        }
    }

    /// Stops the writers; their reports, volatile and persistent, in node order.
    pub async fn stop(self) -> (Vec<Report>, Vec<Report>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut volatile_reports = Vec::new();
        for task in self.volatile {
            volatile_reports.push(task.await.expect("volatile writer"));
        }
        let mut persistent_reports = Vec::new();
        for task in self.persistent {
            persistent_reports.push(task.await.expect("persistent writer"));
        }
        (volatile_reports, persistent_reports)
    }
}

/// What [`verify`] found.
pub struct Verdict {
    /// Acknowledged writes, volatile and persistent.
    pub volatile: u64,
    pub persistent: u64,
    /// Every lost or wrong write, from the run and from the checks at the end.
    pub problems: Vec<String>,
    /// The longest time a writer went without an acknowledged write.
    pub longest_stall: Duration,
}

/// The checks at the end ([`check_all`] on every node of `clients`) and what the
/// writers saw during the run; prints one line per writer (prefixed with `prefix`).
pub async fn verify(
    prefix: &str,
    clients: &[Client],
    vdb: u32,
    pdb: u32,
    volatile_reports: &[Report],
    persistent_reports: &[Report],
) -> Verdict {
    let mut problems: Vec<String> = volatile_reports
        .iter()
        .chain(persistent_reports)
        .flat_map(|r| r.problems.iter().cloned())
        .collect();
    problems.extend(check_all(clients, vdb, pdb, volatile_reports, persistent_reports).await);

    for (kind, reports) in [
        ("volatile", volatile_reports),
        ("persistent", persistent_reports),
    ] {
        for (pnn, r) in reports.iter().enumerate() {
            say(&format!(
                "{prefix}: {kind} writer of node {pnn}: {} acknowledged of {} attempts, {} \
                 failed or timed out, {} connections",
                r.acked, r.attempts, r.failures, r.reconnects
            ));
        }
    }
    Verdict {
        volatile: volatile_reports.iter().map(|r| r.acked).sum(),
        persistent: persistent_reports.iter().map(|r| r.acked).sum(),
        problems,
        longest_stall: volatile_reports
            .iter()
            .chain(persistent_reports)
            .map(|r| r.longest_stall)
            .max()
            .unwrap_or_default(),
    }
}

/// Prints the first 40 of `problems`, each as `{prefix}: {label}: {problem}`.
pub fn print_problems(prefix: &str, label: &str, problems: &[String]) {
    const SHOWN: usize = 40;
    for problem in problems.iter().take(SHOWN) {
        say(&format!("{prefix}: {label}: {problem}"));
    }
    if problems.len() > SHOWN {
        say(&format!(
            "{prefix}: ... and {} more",
            problems.len() - SHOWN
        ));
    }
}

/// Whether a problem is a record sequence number (RSN) lower than one read before,
/// with a value no lower than the last acknowledged: a write that was never
/// acknowledged was seen and then undone. (An acknowledged write lost is a problem of
/// its own.)
pub fn is_undone_unacknowledged(problem: &str) -> bool {
    problem.contains(": RSN went back from ")
        || (problem.contains(": RSN ") && problem.ends_with(" was seen"))
}
