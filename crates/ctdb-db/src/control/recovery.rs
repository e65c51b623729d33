//! The data side of recovery: vnn map, generation, recovery mode, freeze and thaw,
//! pulling, wiping and pushing a database (the seed's PULL_DB / WIPE_DATABASE /
//! PUSH_DB), and the per-database recovery transaction.
//!
//! Fault points (`fail` crate, switched on by SET_FAILPOINT in test clusters; see
//! [`ctdb_rpc::faults`] and DESIGN.md). With the action `return` the step fails with
//! "fault injected at <name>" (a failed control: the leader's recovery fails and
//! cancels); with `return(abort)` ctdb-db aborts there and ctdbd restarts it.
//! - `db::transaction_start`: DB_TRANSACTION_START, before anything is staged;
//! - `db::wipe`: WIPE_DATABASE, before the wipe (staged or not);
//! - `db::pull`: PULL_DB_PAGE, before the page is read;
//! - `db::push`: PUSH_DB, before the records are stored;
//! - `db::commit::before`: DB_TRANSACTION_COMMIT, before the staged copy becomes
//!   current;
//! - `db::commit::after_switch` (ltdb.rs, `commit_staging`): the staged copy is current
//!   in sled (durably), the TDB file not yet rewritten;
//! - `db::cancel`: DB_TRANSACTION_CANCEL, before the staged copy is dropped;
//! - `db::flush` (store.rs, `SledStore::flush`): sled's flush, which every durable
//!   write waits for (persistent writes, recovery commits, wipes).

use std::collections::hash_map::{Entry, HashMap};

use bytes::Bytes;
use ctdb_protocol::control::{PullDb, PullDbPage, RecBuffer, RecData, SetFailpoint};
use ctdb_protocol::flags::recmode;
use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::LtdbHeader;
use ctdb_rpc::component::Outbox;

use super::{done, fail, ok, ControlResult};
use crate::payload::{self, TransDb, VnnMap};
use crate::store::BatchOp;
use crate::DbDaemon;
use ctdb_protocol::Wire;

/// The fault points of ctdb-db (the list above), what SET_FAILPOINT accepts.
pub const FAULT_POINTS: &[&str] = &[
    "db::transaction_start",
    "db::wipe",
    "db::pull",
    "db::push",
    "db::commit::before",
    "db::commit::after_switch",
    "db::cancel",
    "db::flush",
];

/// PULL_DB's `lmaster` meaning every record (CTDB_LMASTER_ANY).
pub const LMASTER_ANY: u32 = u32::MAX;

impl DbDaemon {
    /// SET_FAILPOINT for ctdb-db: reads, sets or removes one of [`FAULT_POINTS`];
    /// answers how many times it fired before. Refused unless ctdb-db was started with
    /// CTDB_RS_FAULT_INJECTION=1.
    pub(crate) fn set_failpoint(&self, data: &[u8]) -> ControlResult {
        let request = SetFailpoint::from_bytes(data)
            .map_err(|e| format!("bad SET_FAILPOINT request: {e}"))?;
        if request.component != "db" {
            return fail(format!(
                "SET_FAILPOINT for {:?} reached db",
                request.component
            ));
        }
        let count =
            ctdb_rpc::faults::apply(FAULT_POINTS, &request.name, request.actions.as_deref())?;
        ok(count.to_le_bytes().to_vec())
    }

    pub(crate) fn getvnnmap(&self) -> ControlResult {
        ok(self.vnn_map.to_bytes())
    }

    /// SETVNNMAP: only while recovering, as Samba insists.
    pub(crate) fn setvnnmap(&mut self, data: &[u8]) -> ControlResult {
        if self.recovery_mode == recmode::NORMAL {
            return fail("SETVNNMAP is only allowed in recovery mode");
        }
        let map = VnnMap::from_bytes(data)?;
        if map.map.is_empty() {
            return fail("SETVNNMAP with an empty map");
        }
        tracing::info!(generation = map.generation, map = ?map.map, "new vnn map");
        // Kept across restarts: the generation says which recovery this node's copies
        // last took part in (the leader prefers the copies of the nodes that share it).
        let durable = self
            .store
            .put(crate::NODE_TREE, crate::VNNMAP_KEY, &map.to_bytes())
            .and_then(|()| self.store.flush());
        if let Err(e) = durable {
            return fail(format!("cannot keep the vnn map: {e}"));
        }
        let changed = map.generation != self.vnn_map.generation;
        self.vnn_map = map;
        if changed {
            self.requeue_remote_calls();
            // Answers to vacuum rounds of the old generation will not come.
            self.vacuum_new_generation();
            self.traversals.clear();
        }
        done()
    }

    pub(crate) fn set_recmode(&mut self, data: &[u8]) -> ControlResult {
        let mode = payload::leading_u32(data)?;
        if mode != recmode::NORMAL && mode != recmode::ACTIVE {
            return fail(format!("invalid recovery mode {mode}"));
        }
        if mode != self.recovery_mode {
            tracing::info!(mode, "recovery mode changed");
        }
        self.recovery_mode = mode;
        done()
    }

    pub(crate) fn freeze(&mut self) -> ControlResult {
        self.frozen = true;
        let ids: Vec<u32> = self.registry.iter().map(|d| d.db_id).collect();
        for db_id in ids {
            self.lock_out_clients(db_id);
        }
        done()
    }

    /// Keeps clients out of a frozen database's file from now on, or as soon as none
    /// holds a chain: the first pull of a recovery insists (see
    /// [`pull_db_page`](Self::pull_db_page)).
    fn lock_out_clients(&mut self, db_id: u32) -> bool {
        match self.files.lock_out_clients(db_id) {
            Ok(locked) => locked,
            Err(e) => {
                tracing::warn!(db_id, "cannot lock clients out: {e}");
                false
            }
        }
    }

    /// THAW: every database thaws (also while the recovery mode is still ACTIVE: we are
    /// more liberal than Samba), open recovery transactions end, and the calls held
    /// while frozen run again in arrival order.
    pub(crate) fn thaw(&mut self, out: &Outbox) -> ControlResult {
        self.frozen = false;
        for db in self.registry.iter_mut() {
            db.frozen = false;
            db.transaction = None;
            self.files.let_clients_in(db.db_id);
        }
        self.replay_deferred(out);
        done()
    }

    pub(crate) fn db_freeze(&mut self, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.frozen = true;
        }
        self.lock_out_clients(db_id);
        done()
    }

    pub(crate) fn db_thaw(&mut self, data: &[u8], out: &Outbox) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.frozen = false;
            db.transaction = None;
        }
        if !self.frozen {
            self.files.let_clients_in(db_id);
        }
        self.replay_deferred(out);
        done()
    }

    fn is_db_frozen(&self, db_id: u32) -> bool {
        self.frozen || self.registry.get(db_id).is_some_and(|d| d.frozen)
    }

    /// DB_TRANSACTION_START (`ctdb_transdb`): a recovery transaction on a frozen
    /// database. A WIPE_DATABASE inside it stages instead of wiping: the pushes that
    /// follow fill a staging copy, which replaces the database only at
    /// DB_TRANSACTION_COMMIT. A cancel, a new start, or a restart of ctdb-db leaves the
    /// database as it was.
    pub(crate) fn db_transaction_start(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, tid } = TransDb::from_bytes(data)?;
        self.db_arg(data)?;
        if !self.is_db_frozen(db_id) {
            return fail(format!("database 0x{db_id:08x} is not frozen"));
        }
        fault_point!("db::transaction_start");
        self.drop_staging(db_id)?;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = Some(tid);
        }
        done()
    }

    pub(crate) fn db_transaction_commit(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, tid } = TransDb::from_bytes(data)?;
        let db = self.db_arg(data)?.clone();
        if db.transaction != Some(tid) {
            return fail(format!(
                "no transaction {tid} open on database 0x{db_id:08x}"
            ));
        }
        fault_point!("db::commit::before");
        if db.staging {
            self.commit_staging(&db)?;
        } else {
            self.store.flush()?;
        }
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = None;
            db.staging = false;
        }
        done()
    }

    pub(crate) fn db_transaction_cancel(&mut self, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        fault_point!("db::cancel");
        self.drop_staging(db_id)?;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = None;
        }
        done()
    }

    /// Forgets what a recovery transaction staged for `db_id`.
    fn drop_staging(&mut self, db_id: u32) -> ControlResult {
        if let Some(db) = self.registry.get_mut(db_id) {
            db.staging = false;
            let staging = db.staging_tree();
            self.store.clear(&staging)?;
        }
        done()
    }

    /// WIPE_DATABASE (`ctdb_transdb`): inside the recovery transaction of the same tid on
    /// a frozen database, starts its staging copy empty (the database is replaced when
    /// the transaction commits).
    pub(crate) fn wipe_database(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, tid } = TransDb::from_bytes(data)?;
        let db = self.db_arg(data)?;
        if !self.is_db_frozen(db_id) {
            return fail(format!("cannot wipe {}: database is not frozen", db.name));
        }
        fault_point!("db::wipe");
        let db = db.clone();
        // Only inside the recovery transaction it names, as Samba insists: a wipe that
        // arrives outside it (a late packet of an abandoned recovery, a transaction
        // another recovery replaced) must not empty the database for real.
        if db.transaction != Some(tid) {
            tracing::warn!(
                db = %db.name,
                tid,
                open = ?db.transaction,
                "WIPE_DATABASE outside its transaction refused"
            );
            return fail(format!(
                "cannot wipe {}: no transaction {tid} open on it",
                db.name
            ));
        }
        self.store.clear(&db.staging_tree())?;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.staging = true;
        }
        tracing::debug!(db = %db.name, "wipe staged until the transaction commits");
        done()
    }
}

impl DbDaemon {
    /// PULL_DB (`ctdb_pulldb` → `ctdb_rec_buffer`): every record of the database as
    /// stored (24-byte ltdb header + data, reqid 0), in key order; with an `lmaster`
    /// other than CTDB_LMASTER_ANY only the records whose lmaster over the current vnn
    /// map is that node. Allowed whether or not the database is frozen.
    pub(crate) fn pull_db(&self, data: &[u8]) -> ControlResult {
        let request = PullDb::from_bytes(data)?;
        let db = self.db_arg(data)?;
        let mut records = Vec::new();
        let mut bad = 0usize;
        self.scan_values(db, &mut |key, value| {
            if value.len() < LtdbHeader::SIZE {
                bad += 1;
            } else if request.lmaster == LMASTER_ANY || self.lmaster(key) == request.lmaster {
                records.push(RecData {
                    reqid: 0,
                    key: Bytes::copy_from_slice(key),
                    data: Bytes::copy_from_slice(value),
                });
            }
            true
        })?;
        // Key order, whatever order the file keeps them in.
        records.sort_by(|a, b| a.key.cmp(&b.key));
        if bad > 0 {
            tracing::warn!(db = %db.name, bad, "PULL_DB left out records shorter than their header");
        }
        tracing::debug!(db = %db.name, lmaster = request.lmaster, records = records.len(), "pulled");
        ok(RecBuffer {
            db_id: request.db_id,
            records,
        }
        .to_bytes())
    }

    /// PULL_DB_PAGE (ctdb-rs's paged pull): the records after the page's key, in key
    /// order, up to about `max_bytes`. The first page brings what local clients changed
    /// in the file into sled; the pages are then read from sled, which the freeze keeps
    /// still, so a database of any size leaves in bounded pieces.
    pub(crate) fn pull_db_page(&mut self, data: &[u8]) -> ControlResult {
        let request = PullDbPage::from_bytes(data)?;
        let db = self.db_arg(data)?.clone();
        fault_point!("db::pull");
        // The first page lists the database's keys in order (keys only: the values are
        // read page by page); a later page without that list (ctdb-db restarted in the
        // middle) lists them again.
        // A frozen database is pulled only with the clients locked out of its file:
        // what they could still write would be lost to the recovery's copy.
        if self.is_db_frozen(db.db_id) && !self.lock_out_clients(db.db_id) {
            return fail(format!(
                "local clients hold chains of {}: the recovery tries again",
                db.name
            ));
        }
        if request.after.is_none() || !self.pull_keys.contains_key(&db.db_id) {
            let mut keys = self.record_keys(&db)?;
            if request.lmaster != LMASTER_ANY {
                keys.retain(|k| self.lmaster(k) == request.lmaster);
            }
            keys.sort_unstable();
            self.pull_keys.insert(db.db_id, keys);
        }
        let keys = self
            .pull_keys
            .get(&db.db_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let start = match &request.after {
            Some(after) => keys.partition_point(|k| k <= after),
            None => 0,
        };
        let mut records = Vec::new();
        let mut size = 0usize;
        let mut next = start;
        for key in &keys[start..] {
            next += 1;
            let Some(value) = self.get_value(&db, key)? else {
                continue;
            };
            if value.len() < LtdbHeader::SIZE {
                continue;
            }
            size += key.len() + value.len() + 16;
            records.push(RecData {
                reqid: 0,
                key: key.clone(),
                data: Bytes::from(value),
            });
            if size >= request.max_bytes as usize {
                break;
            }
        }
        if next >= keys.len() {
            self.pull_keys.remove(&db.db_id);
        }
        ok(RecBuffer {
            db_id: request.db_id,
            records,
        }
        .to_bytes())
    }

    /// PUSH_DB (`ctdb_rec_buffer`): stores each record (header as given, then data)
    /// when there is no local copy or the pushed RSN is strictly higher than the local
    /// one; within one buffer, the highest RSN of a key wins. The database must be
    /// frozen (FREEZE or DB_FREEZE). All or nothing: one record without a header fails
    /// the whole push. Persistent and replicated databases are flushed before the reply.
    pub(crate) fn push_db(&mut self, data: &[u8]) -> ControlResult {
        let buffer = RecBuffer::from_bytes(data)?;
        let db = self.db_arg(&buffer.db_id.to_le_bytes())?;
        if !self.is_db_frozen(buffer.db_id) {
            return fail(format!(
                "cannot push into {}: database is not frozen",
                db.name
            ));
        }
        fault_point!("db::push");
        let db = db.clone();
        let (name, durable) = (db.name.clone(), !db.is_volatile());
        let staging = db.staging.then(|| db.staging_tree());
        // Per key: the RSN to beat (the local copy's, or that of an earlier record of
        // this buffer) and the value to store, if any.
        struct Pending<'a> {
            rsn: Option<u64>,
            value: Option<&'a [u8]>,
        }
        let mut chosen: HashMap<&[u8], Pending<'_>> = HashMap::new();
        for rec in &buffer.records {
            let Ok((header, _)) = rec.header() else {
                return fail(format!(
                    "cannot push into {name}: a record of {} bytes has no ltdb header",
                    rec.data.len()
                ));
            };
            let pending = match chosen.entry(&rec.key[..]) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    // A staged copy starts empty and the leader pushes each key once:
                    // only this buffer's own copies compete.
                    let current = match &staging {
                        Some(_) => None,
                        None => self.get_value(&db, &rec.key)?,
                    };
                    let rsn = current.and_then(|old| split_record(&old).ok().map(|(h, _)| h.rsn));
                    e.insert(Pending { rsn, value: None })
                }
            };
            if pending.rsn.is_none_or(|rsn| header.rsn > rsn) {
                *pending = Pending {
                    rsn: Some(header.rsn),
                    value: Some(&rec.data[..]),
                };
            }
        }
        let ops: Vec<BatchOp> = chosen
            .into_iter()
            .filter_map(|(key, p)| Some(BatchOp::Put(key.to_vec(), p.value?.to_vec())))
            .collect();
        let stored = ops.len();
        match &staging {
            // Staged: durable only with the commit, which flushes.
            Some(tree) => self.store.batch(tree, ops)?,
            None => self.apply_batch(&db, ops, durable)?,
        }
        tracing::debug!(db = %name, received = buffer.records.len(), stored, "pushed");
        done()
    }
}
