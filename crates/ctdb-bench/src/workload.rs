//! Workloads: each runs N clients, one connection each, one request in flight each,
//! for a fixed time, and reports throughput and latency.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::ReqCall;

/// What one run of a workload measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub ops: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Report {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_us(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// PING control to the local daemon.
    Ping,
    /// REQ_CALL FETCH_FUNC on a record this node is dmaster of.
    Fetch,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Ping => "ping",
            Workload::Fetch => "fetch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ping" => Some(Workload::Ping),
            "fetch" => Some(Workload::Fetch),
            _ => None,
        }
    }
}

const BENCH_DB: &str = "ctdb_bench.tdb";

/// Runs `workload` with `clients` connections to `socket` for `duration`.
pub async fn run(
    socket: &Path,
    workload: Workload,
    clients: usize,
    duration: Duration,
) -> Result<Report, ClientError> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Client::connect(socket).await?);
    }
    let db_id = match workload {
        Workload::Fetch => {
            let id = conns[0].attach(dest::CURRENT_NODE, BENCH_DB, false).await?;
            // Make every client's record exist and be local before timing starts.
            for (i, c) in conns.iter().enumerate() {
                c.call(fetch_call(id, i)).await?;
            }
            id
        }
        Workload::Ping => 0,
    };
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, client) in conns.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let t = Instant::now();
                match workload {
                    Workload::Ping => {
                        client.ping(dest::CURRENT_NODE).await?;
                    }
                    Workload::Fetch => {
                        client.call(fetch_call(db_id, i)).await?;
                    }
                }
                latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Ok::<_, ClientError>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(ClientError::Unexpected(format!("worker failed: {e}"))),
        }
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok(Report {
        ops: all.len() as u64,
        elapsed,
        latencies_us: all,
    })
}

fn fetch_call(db_id: u32, client: usize) -> ReqCall {
    ReqCall {
        flags: 0,
        db_id,
        callid: call::FETCH_FUNC,
        hopcount: 0,
        key: Bytes::from(format!("bench-key-{client}")),
        calldata: Bytes::new(),
    }
}

/// Creates `records` records in a fresh volatile database through `clients`
/// connections (NULL_FUNC calls create them on any CTDB), then asks the node for a
/// recovery the way `ctdb recover` does (SET_RECMODE active) and measures how long
/// until the node is back in normal mode with a new generation.
pub async fn recovery(
    socket: &Path,
    records: u32,
    clients: usize,
    db_name: &str,
) -> Result<Duration, ClientError> {
    let here = dest::CURRENT_NODE;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        conns.push(Client::connect(socket).await?);
    }
    let db_id = conns[0].attach(here, db_name, false).await?;
    // Keys this node is lmaster of: created locally on any CTDB, with no migration.
    let map = conns[0].get_vnnmap(here).await?;
    let me = conns[0].pnn();
    let keys: Vec<Bytes> = (0u64..)
        .map(|k| Bytes::from(format!("recovery-key-{k}")))
        .filter(|key| {
            map.map.is_empty()
                || map.map[(ctdb_db::hash::ctdb_hash(key) as usize) % map.map.len()] == me
        })
        .take(records as usize)
        .collect();
    let keys = std::sync::Arc::new(keys);
    let per = records.div_ceil(conns.len() as u32) as usize;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in conns.iter().cloned().enumerate() {
        let keys = keys.clone();
        tasks.spawn(async move {
            for key in keys.iter().skip(i * per).take(per) {
                c.call(ReqCall {
                    flags: 0,
                    db_id,
                    callid: call::NULL_FUNC,
                    hopcount: 0,
                    key: key.clone(),
                    calldata: Bytes::new(),
                })
                .await?;
            }
            Ok::<_, ClientError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| ClientError::Unexpected(e.to_string()))??;
    }
    let client = &conns[0];
    let before = client.get_vnnmap(here).await?.generation;
    let start = Instant::now();
    client
        .set_recmode(here, ctdb_protocol::flags::recmode::ACTIVE)
        .await?;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mode = client.get_recmode(here).await?;
        let generation = client.get_vnnmap(here).await?.generation;
        if mode == 0 && generation != before {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(300) {
            return Err(ClientError::Timeout(start.elapsed()));
        }
    }
}

/// Times from killing the processes in `pids` (a whole node) until the node behind
/// `socket` marks node `victim` DISCONNECTED, and until it is back in normal mode with
/// a new generation (the cluster recovered without it).
pub async fn failure_detection(
    socket: &Path,
    victim: u32,
    pids: &[i32],
) -> Result<(Duration, Duration), ClientError> {
    use nix::sys::signal::{kill, Signal};
    let here = dest::CURRENT_NODE;
    let client = Client::connect(socket).await?;
    let before = client.get_vnnmap(here).await?.generation;
    let start = Instant::now();
    for &pid in pids {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let mut detected = None;
    loop {
        let map = client.get_nodemap(here).await?;
        let gone = map
            .nodes
            .iter()
            .any(|n| n.pnn == victim && n.flags & ctdb_protocol::flags::node::DISCONNECTED != 0);
        if gone && detected.is_none() {
            detected = Some(start.elapsed());
        }
        if let Some(d) = detected {
            let mode = client.get_recmode(here).await?;
            let generation = client.get_vnnmap(here).await?.generation;
            if mode == 0 && generation != before {
                return Ok((d, start.elapsed()));
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(ClientError::Timeout(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One record fetched in turn from a client on each node (`sockets`), so every call
/// migrates it: Samba's fetch_ring in its simplest form. Returns migrations per second.
pub async fn migrate_ring(
    sockets: &[std::path::PathBuf],
    duration: Duration,
) -> Result<Report, ClientError> {
    let here = dest::CURRENT_NODE;
    let mut clients = Vec::with_capacity(sockets.len());
    for s in sockets {
        clients.push(Client::connect(s).await?);
    }
    let mut db_id = 0;
    for c in &clients {
        db_id = c.attach(here, "ctdb_bench_ring.tdb", false).await?;
    }
    let call = || ReqCall {
        flags: 0,
        db_id,
        callid: call::FETCH_FUNC,
        hopcount: 0,
        key: Bytes::from_static(b"ring-key"),
        calldata: Bytes::new(),
    };
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut i = 0usize;
    while start.elapsed() < duration {
        let t = Instant::now();
        clients[i % clients.len()].call(call()).await?;
        latencies.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        i += 1;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(Report {
        ops: latencies.len() as u64,
        elapsed,
        latencies_us: latencies,
    })
}
