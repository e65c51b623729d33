//! Vacuuming: deleted records go away.
//!
//! A client deletes a volatile record by storing it empty (and sends
//! SCHEDULE_FOR_DELETION); the empty record and the older copies other nodes keep would
//! otherwise stay for ever. Every [`VACUUM_EVERY`] each node looks at the empty records
//! it is both lmaster and dmaster of (the node that has the last word on them), offers
//! them to every other node of the vnn map (TRY_DELETE_RECORDS with their headers), and
//! deletes its own copy of those no node kept. A node deletes its copy unless it is
//! dmaster of it, holds a newer one, or a local client holds its chain; it answers with
//! the records it kept. So a record is gone everywhere only once no node holds a newer
//! copy, and a database's size follows its live records, in sled and in the TDB file.
//!
//! A round whose answers do not all come (a node died) is forgotten at the next vnn map,
//! which a recovery brings.
//!
//! Not (yet) as Samba's: an empty record whose dmaster is not its lmaster is not
//! migrated home first (Samba's VACUUM_FETCH), so it stays until a call brings it to
//! its lmaster; no fast path on SCHEDULE_FOR_DELETION.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::control::{RecBuffer, RecData};
use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::{Opcode, ReplyControl, Wire};
use ctdb_rpc::component::Outbox;

use crate::control::{ok, ControlResult};
use crate::registry::DbInfo;
use crate::DbDaemon;

/// Samba's VacuumInterval default.
pub const VACUUM_EVERY: Duration = Duration::from_secs(10);

/// Most records offered in one round per database.
const MAX_PER_ROUND: usize = 10_000;

/// Reqids of vacuum rounds carry these top bits (calls use the pnn, commits count up).
const REQID_TAG: u32 = 0xC000_0000;

/// One database's offer to the other nodes, waiting for their answers.
struct Round {
    db_id: u32,
    /// Offered keys and the RSN offered.
    offered: HashMap<Bytes, u64>,
    waiting: usize,
    kept: HashSet<Bytes>,
    failed: bool,
}

#[derive(Default)]
pub struct Vacuums {
    rounds: HashMap<u32, Round>,
    next: u32,
}

impl DbDaemon {
    /// Starts a vacuum round on every volatile database (not while recovering).
    pub fn vacuum(&mut self, out: &Outbox) {
        if self.frozen || self.recovery_mode != ctdb_protocol::flags::recmode::NORMAL {
            return;
        }
        let dbs: Vec<DbInfo> = self
            .registry
            .iter()
            .filter(|d| d.is_volatile() && !d.frozen)
            .filter(|d| !self.vacuums.rounds.values().any(|r| r.db_id == d.db_id))
            .cloned()
            .collect();
        for db in dbs {
            let candidates = self.empty_records_held_here(&db);
            if candidates.is_empty() {
                continue;
            }
            let others: Vec<u32> = self
                .vnn_map
                .map
                .iter()
                .copied()
                .filter(|&p| p != self.pnn)
                .collect();
            let offered: HashMap<Bytes, u64> = candidates
                .iter()
                .map(|r| (r.key.clone(), rsn_of(r)))
                .collect();
            if others.is_empty() {
                self.delete_unkept(&db, &offered, &HashSet::new());
                continue;
            }
            self.vacuums.next = (self.vacuums.next + 1) & !REQID_TAG;
            let reqid = REQID_TAG | self.vacuums.next;
            let data = RecBuffer {
                db_id: db.db_id,
                records: candidates,
            }
            .to_bytes();
            for &pnn in &others {
                let packet = self.control_packet(pnn, reqid, Opcode::TryDeleteRecords, &data);
                out.to_client(0, packet);
            }
            self.vacuums.rounds.insert(
                reqid,
                Round {
                    db_id: db.db_id,
                    offered,
                    waiting: others.len(),
                    kept: HashSet::new(),
                    failed: false,
                },
            );
        }
    }

    /// Empty records of `db` this node is lmaster and dmaster of (read without waiting
    /// for clients: a busy file is vacuumed next time).
    fn empty_records_held_here(&self, db: &DbInfo) -> Vec<RecData> {
        let Some(tdb) = self.files.get(db.db_id) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let read = tdb.try_for_each(&mut |k, v| {
            if let Ok((header, data)) = split_record(v) {
                if data.is_empty() && header.dmaster == self.pnn && self.lmaster(k) == self.pnn {
                    found.push(RecData::with_header(0, k, &header, &[]));
                }
            }
            found.len() < MAX_PER_ROUND
        });
        match read {
            Ok(Some(_)) => found,
            _ => Vec::new(),
        }
    }

    /// TRY_DELETE_RECORDS from the lmaster: delete each offered record here unless this
    /// node is its dmaster, holds a newer copy, or a client holds its chain; answer with
    /// those kept.
    pub(crate) fn try_delete_records(&mut self, data: &[u8]) -> ControlResult {
        let buffer = RecBuffer::from_bytes(data)?;
        let Some(db) = self.registry.get(buffer.db_id).cloned() else {
            // Nothing here to keep.
            return ok(RecBuffer {
                db_id: buffer.db_id,
                records: Vec::new(),
            }
            .to_bytes());
        };
        let mut kept = Vec::new();
        for record in buffer.records {
            let offered = rsn_of(&record);
            let deleted = match self.get_value(&db, &record.key)? {
                None => true,
                Some(local) => match split_record(&local) {
                    Ok((h, _)) if h.dmaster == self.pnn || h.rsn > offered => false,
                    _ => self.delete_record(&db, &record.key),
                },
            };
            if !deleted {
                kept.push(record);
            }
        }
        ok(RecBuffer {
            db_id: buffer.db_id,
            records: kept,
        }
        .to_bytes())
    }

    /// A node's answer to a vacuum round; false when `reqid` is not one.
    pub(crate) fn vacuum_reply(&mut self, reqid: u32, reply: &ReplyControl) -> bool {
        let Some(round) = self.vacuums.rounds.get_mut(&reqid) else {
            return false;
        };
        round.waiting = round.waiting.saturating_sub(1);
        match RecBuffer::from_bytes(&reply.data) {
            Ok(kept) if reply.status == 0 => {
                round.kept.extend(kept.records.into_iter().map(|r| r.key))
            }
            _ => round.failed = true,
        }
        if round.waiting > 0 {
            return true;
        }
        let Some(round) = self.vacuums.rounds.remove(&reqid) else {
            return true;
        };
        if round.failed {
            tracing::debug!(
                db_id = round.db_id,
                "a node did not answer the vacuum round"
            );
            return true;
        }
        if let Some(db) = self.registry.get(round.db_id).cloned() {
            self.delete_unkept(&db, &round.offered, &round.kept);
        }
        true
    }

    /// Deletes the offered records no node kept, if they are still the empty copy
    /// offered and held here.
    fn delete_unkept(&mut self, db: &DbInfo, offered: &HashMap<Bytes, u64>, kept: &HashSet<Bytes>) {
        let mut deleted = 0;
        for (key, &rsn) in offered {
            if kept.contains(key) {
                continue;
            }
            let still = matches!(
                self.get_value(db, key).ok().flatten().as_deref().map(split_record),
                Some(Ok((h, data))) if data.is_empty() && h.rsn == rsn && h.dmaster == self.pnn
            );
            if still && self.delete_record(db, key) {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::debug!(db = %db.name, deleted, "vacuumed");
        }
    }

    /// Deletes one record from the file (if no client holds its chain) and from sled.
    fn delete_record(&mut self, db: &DbInfo, key: &[u8]) -> bool {
        match self.lock_record(db.db_id, key) {
            Err(()) => return false,
            Ok(locked) => {
                let done = self.delete_value(db, key);
                if locked {
                    self.unlock_record(db.db_id, key);
                }
                if let Err(e) = done {
                    tracing::warn!(db = %db.name, "vacuum cannot delete a record: {e}");
                    return false;
                }
            }
        }
        true
    }
}

fn rsn_of(record: &RecData) -> u64 {
    record.header().map_or(0, |(h, _)| h.rsn)
}
