//! `transaction_loop`: persistent commits. N clients, each committing its own record
//! of one persistent database in a loop with one TRANS3_COMMIT control per commit (the
//! record with its ltdb header, rsn one above the last) and, as Samba's clients send
//! it, the database's `__db_sequence_number__` record bumped by one. Records of
//! different clients never conflict; ctdb-rs numbers the sequence record itself, so
//! it may group concurrent commits.
//!
//! Samba's ctdbd refuses (status -1) a TRANS3_COMMIT on a database while another one
//! is in progress: its clients hold the database's transaction lock (a g_lock record)
//! around a commit. With `one_at_a_time` the clients of this run take a lock of the
//! bench's own instead, so that Samba can be measured with several clients; it costs
//! less than Samba's real lock, which migrates a record per transaction.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::{Client, DEFAULT_TIMEOUT};
use ctdb_protocol::control::{RecBuffer, RecData};
use ctdb_protocol::flags::{dest, DB_SEQNUM_KEY, TRANS3_CONFLICT};
use ctdb_protocol::{LtdbHeader, Opcode, Wire};

use super::{closed_loop, connect_many, fail, run_id, Limit, Op, Result};
use crate::stats::Report;

const DB: &str = "ctdb_bench_persistent.tdb";
/// Conflicts in a row after which a commit is given up.
const MAX_RETRIES: u64 = 100;

struct Commit {
    client: Client,
    db_id: u32,
    key: Bytes,
    /// RSN of the last commit sent.
    rsn: u64,
    /// Commits that succeeded: the record's value.
    commits: u64,
    /// Held around each commit when commits go one at a time.
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The database's sequence number as last committed by this run (exact when the
    /// commits go one at a time; ctdb-rs renumbers it anyway).
    seqnum: Arc<AtomicU64>,
}

impl Commit {
    /// The TRANS3_COMMIT payload for the next attempt.
    fn payload(&self, rsn: u64) -> Bytes {
        let header = LtdbHeader {
            rsn,
            dmaster: self.client.pnn(),
            reserved1: 0,
            flags: 0,
        };
        let value = (self.commits + 1).to_le_bytes();
        // Samba's clients store the sequence number with rsn = value.
        let next = self.seqnum.load(Ordering::Relaxed) + 1;
        let seq_header = LtdbHeader {
            rsn: next,
            ..header
        };
        let mut seq_key = DB_SEQNUM_KEY.as_bytes().to_vec();
        seq_key.push(0);
        RecBuffer {
            db_id: self.db_id,
            records: vec![
                RecData::with_header(0, &self.key, &header, &value),
                RecData::with_header(0, &seq_key, &seq_header, &next.to_le_bytes()),
            ],
        }
        .to_bytes()
        .into()
    }
}

impl Op for Commit {
    async fn once(&mut self) -> Result<u64> {
        let lock = self.lock.clone();
        let _held = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let mut retries = 0;
        loop {
            let rsn = self.rsn + 1;
            let reply = self
                .client
                .control_raw(
                    dest::CURRENT_NODE,
                    Opcode::Trans3Commit,
                    0,
                    self.payload(rsn),
                    DEFAULT_TIMEOUT,
                )
                .await?;
            // After a conflict the next attempt must also be above what is stored.
            self.rsn = rsn;
            match reply.status {
                0 => {
                    self.commits += 1;
                    self.seqnum.fetch_add(1, Ordering::Relaxed);
                    return Ok(retries);
                }
                TRANS3_CONFLICT if retries < MAX_RETRIES => retries += 1,
                status => {
                    let why = reply.error_message().map(|m| format!(": {m}"));
                    return fail(format!(
                        "TRANS3_COMMIT failed with status {status}{} after {retries} retries",
                        why.unwrap_or_default()
                    ));
                }
            }
        }
    }
}

pub async fn run(
    socket: &Path,
    clients: usize,
    one_at_a_time: bool,
    duration: Duration,
) -> Result<Report> {
    let conns = connect_many(socket, clients).await?;
    let db_id = conns[0].attach(dest::CURRENT_NODE, DB, true).await?;
    // Keys of this run only, so every record starts at rsn 1.
    let run = run_id();
    let lock = one_at_a_time.then(|| Arc::new(tokio::sync::Mutex::new(())));
    let seqnum = Arc::new(AtomicU64::new(
        conns[0].get_db_seqnum(dest::CURRENT_NODE, db_id).await?,
    ));
    let ops = conns
        .into_iter()
        .enumerate()
        .map(|(i, client)| Commit {
            client,
            db_id,
            key: Bytes::from(format!("trans-{run:016x}-{i}")),
            rsn: 0,
            commits: 0,
            lock: lock.clone(),
            seqnum: seqnum.clone(),
        })
        .collect();
    closed_loop(ops, Limit::Time(duration)).await
}
