//! Recovery, run by the leader (holding the recovery lock when one is configured).
//!
//! The seed's way, on every active node: recovery mode ACTIVE, FREEZE, START_RECOVERY;
//! every node gets every database (attached by name where missing); each database is
//! pulled from every node, merged (each record's copy with the highest RSN; ties go to
//! the copy from the node that claims to be its dmaster; the kept copy's dmaster becomes
//! the leader, Samba's rule), wiped and pushed back everywhere; then a new generation and
//! vnn map, recovery mode NORMAL, THAW, END_RECOVERY. Any failure aborts with the node
//! that failed; the next monitoring round retries.
//!
//! Fault points (`fail` crate, switched on by SET_FAILPOINT in test clusters; see
//! [`ctdb_rpc::faults`] and DESIGN.md). With the action `return` the recovery fails
//! at that step (blamed on the leader; inside a database's transaction it is cancelled
//! everywhere first); with `return(abort)` the leader's ctdb-recoverd aborts there and
//! ctdbd restarts it.
//! - `recoverd::after_freeze`: every node is in recovery mode and frozen;
//! - `recoverd::after_transaction_start`: a database's transaction is open everywhere;
//! - `recoverd::after_wipe`: its (staged) wipe is done everywhere, nothing pulled yet;
//! - `recoverd::push`: before each piece of the merged copy is pushed (so also between
//!   pieces);
//! - `recoverd::before_commit`: pulled, merged and pushed everywhere, not committed;
//! - `recoverd::after_commit`: one database committed everywhere, before the next one
//!   (or, after the last, before the new vnn map).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ctdb_protocol::control::db::db_flags;
use ctdb_protocol::control::{DbMap, RecBuffer, RecData, TransDb, VnnMap};
use ctdb_protocol::flags::{recmode, INVALID_GENERATION};
use ctdb_protocol::{LtdbHeader, Opcode, Wire};
use futures::future::join_all;
use tracing::{info, warn};

use crate::nodes::{ok, on_all, NodeError, Nodes};

/// The fault points of ctdb-recoverd (the list above), what SET_FAILPOINT accepts.
pub const FAULT_POINTS: &[&str] = &[
    "recoverd::after_freeze",
    "recoverd::after_transaction_start",
    "recoverd::after_wipe",
    "recoverd::push",
    "recoverd::before_commit",
    "recoverd::after_commit",
];

/// The leader of the recovery running in this process, whom a fault point blames where
/// the plan is out of reach (`recoverd::push`).
static LEADER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// Fault point `$name` (listed above): when switched on, the enclosing function fails
/// with a [`Failure`] at step `$name` blamed on `$leader`, or the process aborts for
/// `return(abort)` (see [`ctdb_rpc::faults`]).
macro_rules! fault_point {
    ($name:literal, $leader:expr) => {
        fail::fail_point!($name, |arg| Err(Failure {
            step: $name,
            culprit: $leader,
            error: ctdb_rpc::faults::fired($name, arg),
        }))
    };
}

/// What one recovery is to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub leader: u32,
    /// The nodes recovered, in pnn order.
    pub active: Vec<u32>,
    /// The vnn map to install.
    pub vnnmap: Vec<u32>,
    /// Generations in use now, that the new one must differ from.
    pub old_generations: Vec<u32>,
    /// The nodes whose copies win (see [`incumbents`]).
    pub incumbents: Vec<u32>,
    /// Time allowed for each control.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub generation: u32,
    pub databases: usize,
    pub records: usize,
    pub duration: Duration,
}

/// A recovery that stopped: at which step, and the node that failed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: &'static str,
    pub culprit: u32,
    pub error: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovery failed at {} on node {}: {}",
            self.step, self.culprit, self.error
        )
    }
}

fn at(step: &'static str) -> impl Fn(NodeError) -> Failure {
    move |e| Failure {
        step,
        culprit: e.pnn,
        error: e.error,
    }
}

/// Runs one recovery of the nodes of `plan`.
pub async fn recover<N: Nodes>(nodes: &N, plan: &Plan) -> Result<Outcome, Failure> {
    let began = Instant::now();
    let (active, t) = (&plan.active[..], plan.timeout);
    let generation = pick_generation(random_u32(), &plan.old_generations);
    LEADER.store(plan.leader, std::sync::atomic::Ordering::Relaxed);
    info!(
        leader = plan.leader,
        ?active,
        vnnmap = ?plan.vnnmap,
        "recovery starting"
    );

    let active_mode = Bytes::from(recmode::ACTIVE.to_bytes());
    on_all(nodes, active, Opcode::SetRecmode, active_mode, t)
        .await
        .map_err(at("SET_RECMODE active"))?;
    on_all(nodes, active, Opcode::Freeze, Bytes::new(), t)
        .await
        .map_err(at("FREEZE"))?;
    fault_point!("recoverd::after_freeze", plan.leader);
    on_all(nodes, active, Opcode::StartRecovery, Bytes::new(), t)
        .await
        .map_err(at("START_RECOVERY"))?;

    let databases = create_missing_databases(nodes, active, t).await?;
    let mut records = 0;
    for (&db_id, &flags) in &databases {
        let persistent = flags & db_flags::PERSISTENT != 0;
        records += recover_database(nodes, plan, db_id, persistent, generation).await?;
    }

    let map = VnnMap {
        generation,
        map: plan.vnnmap.clone(),
    };
    on_all(nodes, active, Opcode::Setvnnmap, map.to_bytes().into(), t)
        .await
        .map_err(at("SETVNNMAP"))?;
    let normal = Bytes::from(recmode::NORMAL.to_bytes());
    on_all(nodes, active, Opcode::SetRecmode, normal, t)
        .await
        .map_err(at("SET_RECMODE normal"))?;
    on_all(nodes, active, Opcode::Thaw, Bytes::new(), t)
        .await
        .map_err(at("THAW"))?;
    on_all(nodes, active, Opcode::EndRecovery, Bytes::new(), t)
        .await
        .map_err(at("END_RECOVERY"))?;

    let outcome = Outcome {
        generation,
        databases: databases.len(),
        records,
        duration: began.elapsed(),
    };
    info!(
        generation,
        databases = outcome.databases,
        records,
        duration_ms = outcome.duration.as_millis() as u64,
        "recovery finished"
    );
    Ok(outcome)
}

/// Every database any node has, attached on every node that lacks it. Returns db_id →
/// db map flags.
async fn create_missing_databases<N: Nodes>(
    nodes: &N,
    active: &[u32],
    t: Duration,
) -> Result<BTreeMap<u32, u8>, Failure> {
    let maps = on_all(nodes, active, Opcode::GetDbmap, Bytes::new(), t)
        .await
        .map_err(at("GET_DBMAP"))?;
    let mut maps_by_node = Vec::new();
    for (&pnn, data) in active.iter().zip(maps) {
        let map = DbMap::from_bytes(&data).map_err(|e| Failure {
            step: "GET_DBMAP",
            culprit: pnn,
            error: e.to_string(),
        })?;
        maps_by_node.push((pnn, map));
    }
    let union = union_of_dbmaps(&maps_by_node);
    for (&db_id, &(flags, holder)) in &union {
        let missing: Vec<u32> = maps_by_node
            .iter()
            .filter(|(_, m)| !m.dbs.iter().any(|d| d.db_id == db_id))
            .map(|(pnn, _)| *pnn)
            .collect();
        if missing.is_empty() {
            continue;
        }
        let name = ok(nodes, holder, Opcode::GetDbname, db_id.to_bytes().into(), t)
            .await
            .map_err(at("GET_DBNAME"))?;
        let name = String::from_bytes(&name).map_err(|e| Failure {
            step: "GET_DBNAME",
            culprit: holder,
            error: e.to_string(),
        })?;
        let opcode = attach_opcode(flags);
        info!(db = %name, ?missing, "creating a missing database");
        let replies = on_all(nodes, &missing, opcode, name.to_bytes().into(), t)
            .await
            .map_err(at("DB_ATTACH"))?;
        for (&pnn, reply) in missing.iter().zip(replies) {
            let got = u32::from_bytes(&reply).unwrap_or(0);
            if got != db_id {
                return Err(Failure {
                    step: "DB_ATTACH",
                    culprit: pnn,
                    error: format!("{name} attached as {got:#x}, not {db_id:#x}"),
                });
            }
        }
    }
    Ok(union
        .into_iter()
        .map(|(id, (flags, _))| (id, flags))
        .collect())
}

/// db_id → (flags, a node that has it).
pub fn union_of_dbmaps(maps: &[(u32, DbMap)]) -> BTreeMap<u32, (u8, u32)> {
    let mut union = BTreeMap::new();
    for (pnn, map) in maps {
        for db in &map.dbs {
            union.entry(db.db_id).or_insert((db.flags, *pnn));
        }
    }
    union
}

fn attach_opcode(flags: u8) -> Opcode {
    if flags & db_flags::REPLICATED != 0 {
        Opcode::DbAttachReplicated
    } else if flags & db_flags::PERSISTENT != 0 {
        Opcode::DbAttachPersistent
    } else {
        Opcode::DbAttach
    }
}

/// Pull, merge, wipe, push one database; returns the number of records pushed.
/// Largest page a node sends at once (PULL_DB_PAGE) and largest piece pushed (PUSH_DB):
/// what the leader holds of a database is about (nodes + 1) of these, whatever its size.
pub const PAGE_BYTES: u32 = 4 << 20;

async fn recover_database<N: Nodes>(
    nodes: &N,
    plan: &Plan,
    db_id: u32,
    persistent: bool,
    generation: u32,
) -> Result<usize, Failure> {
    let (active, t) = (&plan.active[..], plan.timeout);
    let sources = if persistent {
        highest_seqnum_nodes(nodes, &plan.incumbents, db_id, t).await?
    } else {
        active.to_vec()
    };
    // One transaction per node: the wipe and the pushes are staged, and the database is
    // replaced only by the commit, once every node holds the whole merged copy. Any
    // failure before that cancels it everywhere: every node keeps its old records, and
    // the next recovery starts again from them.
    let txn = Bytes::from(
        TransDb {
            db_id,
            tid: generation,
        }
        .to_bytes(),
    );
    let began = Instant::now();
    let staged = async {
        on_all(nodes, active, Opcode::DbTransactionStart, txn.clone(), t)
            .await
            .map_err(at("DB_TRANSACTION_START"))?;
        fault_point!("recoverd::after_transaction_start", plan.leader);
        on_all(nodes, active, Opcode::WipeDatabase, txn.clone(), t)
            .await
            .map_err(at("WIPE_DATABASE"))?;
        fault_point!("recoverd::after_wipe", plan.leader);
        let count = stream_merge(nodes, plan, &sources, db_id).await?;
        fault_point!("recoverd::before_commit", plan.leader);
        Ok(count)
    }
    .await;
    let streamed = began.elapsed();
    let count = match staged {
        Ok(count) => count,
        Err(failure) => {
            let cancel = Bytes::from(db_id.to_bytes());
            if let Err(e) = on_all(nodes, active, Opcode::DbTransactionCancel, cancel, t).await {
                tracing::warn!(db_id, "cancelling the recovery transaction: {}", e.error);
            }
            return Err(failure);
        }
    };
    on_all(nodes, active, Opcode::DbTransactionCommit, txn, t)
        .await
        .map_err(at("DB_TRANSACTION_COMMIT"))?;
    fault_point!("recoverd::after_commit", plan.leader);
    tracing::info!(
        db_id = format_args!("0x{db_id:08x}"),
        records = count,
        streamed_ms = streamed.as_millis() as u64,
        committed_ms = (began.elapsed() - streamed).as_millis() as u64,
        "database recovered"
    );
    Ok(count)
}

/// The nodes whose copy of a persistent database to merge: those with the highest
/// sequence number, as Samba recovers them. Every commit bumps it and is applied whole
/// on each node, so the copy with the most commits is taken whole and a commit that
/// reached only some nodes is kept or dropped as a unit, never split across records.
/// Copies with the same number (databases written without one) merge record by record.
async fn highest_seqnum_nodes<N: Nodes>(
    nodes: &N,
    active: &[u32],
    db_id: u32,
    t: Duration,
) -> Result<Vec<u32>, Failure> {
    let mut request = db_id.to_le_bytes().to_vec();
    request.extend_from_slice(&[0; 4]);
    let request = Bytes::from(request);
    let replies = join_all(
        active
            .iter()
            .map(|&pnn| ok(nodes, pnn, Opcode::GetDbSeqnum, request.clone(), t)),
    )
    .await;
    let mut seqnums = Vec::with_capacity(active.len());
    for (&pnn, reply) in active.iter().zip(replies) {
        let data = reply.map_err(at("GET_DB_SEQNUM"))?;
        let seqnum = <[u8; 8]>::try_from(&data[..]).map_or(0, u64::from_le_bytes);
        seqnums.push((pnn, seqnum));
    }
    let top = seqnums.iter().map(|&(_, s)| s).max().unwrap_or(0);
    Ok(seqnums
        .into_iter()
        .filter(|&(_, s)| s == top)
        .map(|(pnn, _)| pnn)
        .collect())
}

/// One node's copy of a database, arriving page by page in key order.
struct Source {
    pnn: u32,
    page: std::collections::VecDeque<RecData>,
    after: Option<Bytes>,
    done: bool,
}

/// Merges the copies of `sources` key by key as their pages arrive (a k-way merge of
/// key-ordered streams, each key by [`merge`]'s rules) and pushes the result to every
/// active node in pieces of [`PAGE_BYTES`]. Returns how many records were pushed.
async fn stream_merge<N: Nodes>(
    nodes: &N,
    plan: &Plan,
    sources: &[u32],
    db_id: u32,
) -> Result<usize, Failure> {
    let (active, t) = (&plan.active[..], plan.timeout);
    let mut sources: Vec<Source> = sources
        .iter()
        .map(|&pnn| Source {
            pnn,
            page: Default::default(),
            after: None,
            done: false,
        })
        .collect();
    let mut piece = RecBuffer {
        db_id,
        records: Vec::new(),
    };
    let mut piece_bytes = 0usize;
    let mut pushed = 0usize;
    loop {
        for source in sources.iter_mut().filter(|s| s.page.is_empty() && !s.done) {
            let request = ctdb_protocol::control::PullDbPage {
                db_id,
                lmaster: u32::MAX,
                max_bytes: PAGE_BYTES,
                after: source.after.clone(),
            };
            let data = ok(
                nodes,
                source.pnn,
                Opcode::PullDbPage,
                request.to_bytes().into(),
                t,
            )
            .await
            .map_err(at("PULL_DB_PAGE"))?;
            let page = RecBuffer::from_bytes(&data).map_err(|e| Failure {
                step: "PULL_DB_PAGE",
                culprit: source.pnn,
                error: e.to_string(),
            })?;
            match page.records.last() {
                None => source.done = true,
                Some(last) => {
                    source.after = Some(last.key.clone());
                    source.page = page.records.into();
                }
            }
        }
        let Some(key) = sources
            .iter()
            .filter_map(|s| s.page.front())
            .map(|r| r.key.clone())
            .min()
        else {
            break;
        };
        let copies: Vec<(u32, RecBuffer)> = sources
            .iter_mut()
            .filter(|s| s.page.front().is_some_and(|r| r.key == key))
            .filter_map(|s| {
                let record = s.page.pop_front()?;
                Some((
                    s.pnn,
                    RecBuffer {
                        db_id,
                        records: vec![record],
                    },
                ))
            })
            .collect();
        for record in merge(db_id, &copies, plan.leader).records {
            piece_bytes += record.key.len() + record.data.len() + 16;
            piece.records.push(record);
        }
        if piece_bytes >= PAGE_BYTES as usize {
            pushed += push_piece(nodes, active, &mut piece, t).await?;
            piece_bytes = 0;
        }
    }
    pushed += push_piece(nodes, active, &mut piece, t).await?;
    Ok(pushed)
}

/// Pushes `piece` to every active node (if it holds anything) and empties it.
async fn push_piece<N: Nodes>(
    nodes: &N,
    active: &[u32],
    piece: &mut RecBuffer,
    t: Duration,
) -> Result<usize, Failure> {
    if piece.records.is_empty() {
        return Ok(0);
    }
    fault_point!(
        "recoverd::push",
        LEADER.load(std::sync::atomic::Ordering::Relaxed)
    );
    on_all(nodes, active, Opcode::PushDb, piece.to_bytes().into(), t)
        .await
        .map_err(at("PUSH_DB"))?;
    let n = piece.records.len();
    piece.records.clear();
    Ok(n)
}

/// The nodes whose copy of a persistent database a recovery takes: those that took part
/// in the last recovery of the cluster as it is now — the largest group of active nodes
/// that share a generation (on a tie, the leader's). A node that comes back from a
/// partition or a long absence still holds an older generation: a commit only it applied
/// was never acknowledged (a commit needs every node of the vnn map), and its copy must
/// not win over the commits the others went on acknowledging — not even with a higher
/// sequence number. When no node holds a valid generation (the whole cluster starts),
/// every node is an incumbent. Volatile records are merged by RSN from every node, as
/// Samba does: a record lives on its dmaster, and a returning node's newer copy of a
/// record nobody else wrote meanwhile is the one to keep.
/// `generations`: `(pnn, generation)` of each active node.
pub fn incumbents(generations: &[(u32, u32)], leader: u32) -> Vec<u32> {
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    for &(_, g) in generations.iter().filter(|(_, g)| *g != INVALID_GENERATION) {
        *count.entry(g).or_default() += 1;
    }
    let leaders = generations
        .iter()
        .find(|(p, _)| *p == leader)
        .map(|(_, g)| *g);
    let best = count
        .iter()
        .max_by_key(|(g, n)| (**n, Some(**g) == leaders))
        .map(|(g, _)| *g);
    let mut pnns: Vec<u32> = match best {
        Some(best) => generations
            .iter()
            .filter(|(_, g)| *g == best)
            .map(|(p, _)| *p)
            .collect(),
        None => generations.iter().map(|(p, _)| *p).collect(),
    };
    pnns.sort_unstable();
    pnns
}

/// Merges the record buffers pulled from each node (`(source pnn, buffer)`): per key,
/// the copy with the highest RSN; on equal RSNs, the copy from the node its header names
/// as dmaster. The kept copies get `leader` as dmaster. Records come out in key order.
pub fn merge(db_id: u32, pulled: &[(u32, RecBuffer)], leader: u32) -> RecBuffer {
    struct Best<'a> {
        header: LtdbHeader,
        value: &'a [u8],
        from_dmaster: bool,
    }
    impl Best<'_> {
        fn rank(&self) -> (u64, bool) {
            (self.header.rsn, self.from_dmaster)
        }
    }
    let mut best: HashMap<&[u8], Best<'_>> = HashMap::new();
    let mut bad = 0usize;
    for (source, buffer) in pulled {
        for record in &buffer.records {
            let Ok((header, value)) = record.header() else {
                bad += 1;
                continue;
            };
            let candidate = Best {
                header,
                value,
                from_dmaster: header.dmaster == *source,
            };
            match best.get(&record.key[..]) {
                Some(kept) if kept.rank() >= candidate.rank() => {}
                _ => {
                    best.insert(&record.key[..], candidate);
                }
            }
        }
    }
    if bad > 0 {
        warn!(db_id, bad, "records without an ltdb header were left out");
    }
    let mut keys: Vec<&[u8]> = best.keys().copied().collect();
    keys.sort_unstable();
    let records = keys
        .into_iter()
        .map(|key| {
            let kept = &best[key];
            let header = LtdbHeader {
                dmaster: leader,
                ..kept.header
            };
            RecData::with_header(0, key, &header, kept.value)
        })
        .collect();
    RecBuffer { db_id, records }
}

/// A fresh generation: never 0, never the invalid one (1), never one in use.
pub fn pick_generation(mut random: u32, in_use: &[u32]) -> u32 {
    loop {
        if random > INVALID_GENERATION && !in_use.contains(&random) {
            return random;
        }
        random = random.wrapping_mul(0x9E37_79B9).wrapping_add(0x7F4A_7C15);
    }
}

fn random_u32() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (RandomState::new().hash_one(nanos) >> 16) as u32
}

#[cfg(test)]
mod tests;
