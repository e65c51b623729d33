//! The workloads, one module each, and what they share: connecting clients, the
//! closed loop of N clients with one request in flight each, and the ring of one
//! client per node that passes messages.

pub mod detect;
pub mod fetch;
pub mod fetch_lock_ring;
pub mod fetch_ring;
pub mod memory;
pub mod message_ring;
pub mod ping;
pub mod recovery;
pub mod transaction_loop;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctdb_client::{Client, ClientError, Message};
use ctdb_protocol::flags::dest;
use tokio::sync::{mpsc, watch};

use crate::stats::{Histogram, Report};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

pub fn fail<T>(msg: impl Into<String>) -> Result<T> {
    Err(BenchError::Other(msg.into()))
}

/// The workloads `run` and `compare` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// PING control to the local daemon.
    Ping,
    /// REQ_CALL FETCH_FUNC on a record this node is dmaster of.
    Fetch,
    /// One record migrating around every node, a token passed by messages.
    FetchRing,
    /// fetch_ring with Samba's fetch_locked: the client reads and writes the record in
    /// the node's TDB file under its chain lock, and asks only for the migration.
    FetchLockRing,
    /// Messages passed around a ring of one client per node.
    MessageRing,
    /// TRANS3_COMMIT of each client's own record in a persistent database.
    TransactionLoop,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Ping,
        Workload::Fetch,
        Workload::FetchRing,
        Workload::FetchLockRing,
        Workload::MessageRing,
        Workload::TransactionLoop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::Fetch => "fetch",
            Workload::FetchRing => "fetch_ring",
            Workload::FetchLockRing => "fetch_lock_ring",
            Workload::MessageRing => "message_ring",
            Workload::TransactionLoop => "transaction_loop",
        }
    }

    /// What one operation of the workload is, for reports.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Ping => "pings",
            Workload::Fetch => "fetches",
            Workload::FetchRing | Workload::FetchLockRing => "migrations",
            Workload::MessageRing => "messages",
            Workload::TransactionLoop => "commits",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == s)
    }

    /// Whether the workload needs one socket per node.
    pub fn is_ring(self) -> bool {
        matches!(
            self,
            Workload::FetchRing | Workload::FetchLockRing | Workload::MessageRing
        )
    }
}

/// How to run a workload.
#[derive(Debug, Clone)]
pub struct Options {
    /// One socket per node; the single-node workloads use the first.
    pub sockets: Vec<PathBuf>,
    /// Clients (connections) of the closed-loop workloads.
    pub clients: usize,
    /// Messages in flight around the ring (message_ring).
    pub in_flight: usize,
    /// transaction_loop: one commit at a time among the clients (what Samba needs).
    pub one_commit_at_a_time: bool,
    pub duration: Duration,
}

/// Runs `workload` once.
pub async fn run(workload: Workload, opts: &Options) -> Result<Report> {
    let Some(first) = opts.sockets.first() else {
        return fail("no socket given");
    };
    if workload.is_ring() && opts.sockets.len() < 2 {
        return fail(format!(
            "{} needs one socket per node (at least 2), got 1",
            workload.name()
        ));
    }
    match workload {
        Workload::Ping => ping::run(first, opts.clients, opts.duration).await,
        Workload::Fetch => fetch::run(first, opts.clients, opts.duration).await,
        Workload::FetchRing => fetch_ring::run(&opts.sockets, opts.duration).await,
        Workload::FetchLockRing => fetch_lock_ring::run(&opts.sockets, opts.duration).await,
        Workload::MessageRing => {
            message_ring::run(&opts.sockets, opts.in_flight, opts.duration).await
        }
        Workload::TransactionLoop => {
            let serial = opts.one_commit_at_a_time;
            transaction_loop::run(first, opts.clients, serial, opts.duration).await
        }
    }
}

/// A name no earlier run used: keys and srvids of this run never meet an old one.
pub fn run_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 40)
}

pub async fn connect_many(socket: &Path, n: usize) -> Result<Vec<Client>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        conns.push(Client::connect(socket).await?);
    }
    Ok(conns)
}

/// One operation of a closed-loop client; `Ok(retries)` when it completed.
pub trait Op: Send + 'static {
    fn once(&mut self) -> impl Future<Output = Result<u64>> + Send;
}

/// How long a closed loop runs.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Time(Duration),
    /// This many operations in all, shared among the clients.
    Ops(u64),
}

/// Runs every `op` (one per client, each with its own connection) in a loop, one
/// request in flight each, until `limit`.
pub async fn closed_loop<O: Op>(ops: Vec<O>, limit: Limit) -> Result<Report> {
    let start = Instant::now();
    let claimed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut op in ops {
        let claimed = claimed.clone();
        tasks.spawn(async move {
            let mut report = Report::default();
            loop {
                let more = match limit {
                    Limit::Time(d) => start.elapsed() < d,
                    Limit::Ops(n) => claimed.fetch_add(1, Ordering::Relaxed) < n,
                };
                if !more {
                    break;
                }
                let t = Instant::now();
                report.retries += op.once().await?;
                report.latency.record(t.elapsed());
                report.ops += 1;
            }
            Ok::<_, BenchError>(report)
        });
    }
    let mut total = Report::default();
    while let Some(joined) = tasks.join_next().await {
        let r = joined.map_err(|e| BenchError::Other(format!("client task failed: {e}")))??;
        total.ops += r.ops;
        total.retries += r.retries;
        total.latency.merge(&r.latency);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One client per node, each with a srvid of its own registered, for the ring
/// workloads: client `i` passes to client `i + 1` by a message to that client's node
/// and srvid.
pub struct Ring {
    pub members: Vec<Member>,
}

pub struct Member {
    pub client: Client,
    pub pnn: u32,
    pub srvid: u64,
    pub inbox: mpsc::Receiver<Message>,
}

/// Where a ring member sends.
#[derive(Debug, Clone, Copy)]
pub struct Address {
    pub pnn: u32,
    pub srvid: u64,
}

impl Ring {
    pub async fn join(sockets: &[PathBuf]) -> Result<Self> {
        // Samba's ring tests use srvid 0 on every node; ours differ per member so that
        // two members may share a node, and per run so that stale messages are ignored.
        let base = (run_id() & 0x0000_ffff_ffff_ff00) | 0x0100_0000_0000_0000;
        let mut members = Vec::with_capacity(sockets.len());
        for (i, socket) in sockets.iter().enumerate() {
            let client = Client::connect(socket).await?;
            let srvid = base + i as u64;
            let inbox = client.register_srvid(srvid).await?;
            members.push(Member {
                pnn: client.pnn(),
                client,
                srvid,
                inbox,
            });
        }
        Ok(Self { members })
    }

    /// Joins a ring of one member per node (every socket of a distinct node), with
    /// volatile database `db` attached on each; returns it and the database's id.
    pub async fn join_distinct(sockets: &[PathBuf], db: &str) -> Result<(Self, u32)> {
        let ring = Self::join(sockets).await?;
        let mut pnns: Vec<u32> = ring.members.iter().map(|m| m.pnn).collect();
        pnns.sort_unstable();
        pnns.dedup();
        if pnns.len() != ring.members.len() {
            return fail("a ring of migrations needs the sockets of distinct nodes");
        }
        let mut db_id = None;
        for m in &ring.members {
            let id = m.client.attach(dest::CURRENT_NODE, db, false).await?;
            if *db_id.get_or_insert(id) != id {
                return fail(format!("{db} has different ids on different nodes"));
            }
        }
        Ok((ring, db_id.unwrap_or_default()))
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.members
            .iter()
            .map(|m| Address {
                pnn: m.pnn,
                srvid: m.srvid,
            })
            .collect()
    }
}

/// Stops ring members: set once the run's time is up.
pub fn stop_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// The next message for a ring member, `None` once `stop` is set; an error when
/// nothing arrives for `patience` (a message was lost).
pub async fn next_message(
    inbox: &mut mpsc::Receiver<Message>,
    stop: &mut watch::Receiver<bool>,
    patience: Duration,
) -> Result<Option<Message>> {
    if *stop.borrow() {
        return Ok(None);
    }
    tokio::select! {
        m = tokio::time::timeout(patience, inbox.recv()) => match m {
            Ok(Some(m)) => Ok(Some(m)),
            Ok(None) => Err(ClientError::Disconnected.into()),
            Err(_) => fail(format!("no message for {patience:?}: the ring lost its messages")),
        },
        _ = stop.changed() => Ok(None),
    }
}

/// Runs one task per ring member until `duration` has passed, then stops them and
/// merges what they measured.
pub async fn run_ring<F, Fut>(ring: Ring, duration: Duration, member_task: F) -> Result<Report>
where
    F: Fn(usize, Member, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<Report>> + Send + 'static,
{
    let (stop_tx, stop_rx) = stop_signal();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, m) in ring.members.into_iter().enumerate() {
        tasks.spawn(member_task(i, m, stop_rx.clone()));
    }
    let mut total = Report::default();
    let mut latency = Histogram::default();
    let mut failure = None;
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        Some(joined) = tasks.join_next() => {
            // A member ended before the time was up: that is a failure.
            failure = Some(match joined {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => BenchError::Other("a ring member stopped early".into()),
                Err(e) => BenchError::Other(format!("ring task failed: {e}")),
            });
        }
    }
    total.elapsed = start.elapsed();
    let _ = stop_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(r)) => {
                total.ops += r.ops;
                latency.merge(&r.latency);
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(BenchError::Other(format!("ring task failed: {e}")));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    total.latency = latency;
    Ok(total)
}

/// Whether every node `socket`'s daemon knows of is healthy and in normal recovery
/// mode, with one generation.
pub async fn cluster_healthy(sockets: &[PathBuf]) -> Result<bool> {
    let here = dest::CURRENT_NODE;
    let mut generation = None;
    for s in sockets {
        let c = Client::connect(s).await?;
        if c.get_recmode(here).await? != 0 {
            return Ok(false);
        }
        let map = c.get_nodemap(here).await?;
        if map.nodes.iter().any(|n| n.flags != 0) {
            return Ok(false);
        }
        let vnn = c.get_vnnmap(here).await?;
        if vnn.map.len() != map.nodes.len()
            || *generation.get_or_insert(vnn.generation) != vnn.generation
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Waits until [`cluster_healthy`], up to `timeout`.
pub async fn wait_healthy(sockets: &[PathBuf], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("not yet asked");
    while Instant::now() < deadline {
        match cluster_healthy(sockets).await {
            Ok(true) => return Ok(()),
            Ok(false) => last = "not every node is OK in normal mode".into(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fail(format!("cluster not healthy after {timeout:?}: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        assert_eq!(Workload::parse("fetch-ring"), None);
    }
}
