//! `fetch_lock_ring`: fetch_ring as Samba's clients migrate records. The token holder
//! does what smbd's `fetch_locked` does: lock the record's chain in the node's TDB file
//! (the path GETDBPATH names, opened with DB_OPEN_FLAGS), and while another node is
//! dmaster, unlock, ask the daemon to migrate the record here (NULL_FUNC with
//! IMMEDIATE_MIGRATION) and look again; then bump a counter in the record, in the file,
//! and unlock. Every operation is a migration plus the client's own reads and writes of
//! the file; its latency is the whole fetch_locked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::{LtdbHeader, Opcode, ReqCall};
use ctdb_tdb::Tdb;

use super::{fail, next_message, run_ring, BenchError, Result, Ring};
use crate::stats::Report;

const DB: &str = "fetch_lock_ring.tdb";
const KEY: &[u8] = b"ctdb-bench-fetch-lock-ring";
/// How long a member waits for the token before it calls it lost.
const PATIENCE: Duration = Duration::from_secs(10);
/// Migrations one fetch_locked may ask for before it gives up.
const MAX_ATTEMPTS: u32 = 1000;

fn migrate_call(db_id: u32) -> ReqCall {
    ReqCall {
        flags: call::IMMEDIATE_MIGRATION,
        db_id,
        callid: call::NULL_FUNC,
        hopcount: 0,
        key: Bytes::from_static(KEY),
        calldata: Bytes::new(),
    }
}

fn tdb_error(e: ctdb_tdb::TdbError) -> BenchError {
    BenchError::Other(e.to_string())
}

/// The record's header and counter when this node is its dmaster, with the chain
/// locked (the caller unlocks); None, unlocked, when it must migrate first.
fn read_locked(tdb: &Tdb, pnn: u32) -> Result<Option<(LtdbHeader, u64)>> {
    tdb.lock_chain(KEY).map_err(tdb_error)?;
    let value = match tdb.fetch(KEY) {
        Ok(v) => v,
        Err(e) => {
            let _ = tdb.unlock_chain(KEY);
            return Err(tdb_error(e));
        }
    };
    let parsed = value.as_deref().and_then(|v| {
        let (header, data) = ctdb_protocol::ltdb::split_record(v).ok()?;
        let count = data
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        Some((header, count))
    });
    match parsed {
        Some((header, count)) if header.dmaster == pnn => Ok(Some((header, count))),
        _ => {
            let _ = tdb.unlock_chain(KEY);
            Ok(None)
        }
    }
}

pub async fn run(sockets: &[PathBuf], duration: Duration) -> Result<Report> {
    let (ring, id) = Ring::join_distinct(sockets, DB).await?;
    let addrs = ring.addresses();
    let mut files = Vec::new();
    for m in &ring.members {
        let here = dest::CURRENT_NODE;
        let path = m.client.get_dbpath(here, id).await?;
        let flags = m
            .client
            .control(
                here,
                Opcode::DbOpenFlags,
                0,
                Bytes::copy_from_slice(&id.to_le_bytes()),
            )
            .await?;
        let flags = flags
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, i32::from_le_bytes);
        files.push(Some(Tdb::open(path.as_ref(), 0, flags).map_err(tdb_error)?));
    }
    let db_id = id;
    // Each member takes its node's file (one open per file and process: libtdb's rule).
    let files = std::sync::Mutex::new(files);
    let first = addrs[0];
    ring.members[0]
        .client
        .send_message(first.pnn, first.srvid, Bytes::new())?;
    run_ring(ring, duration, move |i, mut member, mut stop| {
        let next = addrs[(i + 1) % addrs.len()];
        let tdb = files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(i)
            .and_then(Option::take);
        async move {
            let Some(tdb) = tdb else {
                return fail("no TDB file for a ring member");
            };
            let mut report = Report::default();
            while next_message(&mut member.inbox, &mut stop, PATIENCE)
                .await?
                .is_some()
            {
                let t = Instant::now();
                let mut attempts = 0;
                let (header, count) = loop {
                    if let Some(found) = read_locked(&tdb, member.pnn)? {
                        break found;
                    }
                    attempts += 1;
                    if attempts > MAX_ATTEMPTS {
                        return fail("the record never became local");
                    }
                    member.client.call(migrate_call(db_id)).await?;
                };
                let mut value = Vec::with_capacity(LtdbHeader::SIZE + 8);
                ctdb_protocol::Wire::encode(&header, &mut value);
                value.extend_from_slice(&(count + 1).to_le_bytes());
                let stored = tdb.store(KEY, &value);
                let _ = tdb.unlock_chain(KEY);
                stored.map_err(tdb_error)?;
                report.latency.record(t.elapsed());
                report.ops += 1;
                member
                    .client
                    .send_message(next.pnn, next.srvid, Bytes::new())?;
            }
            Ok(report)
        }
    })
    .await
}
