//! The local TDB files ("ltdb") and sled behind them.
//!
//! Every attached database has a real TDB file at the path GETDBPATH reports, written
//! through libtdb ([`ctdb_tdb`]) with the flags DB_OPEN_FLAGS tells clients: Samba's
//! smbd, winbindd and `ctdb` tool open that file and read and write records in it under
//! the record's chain lock, and ask this daemon only to bring a record here (REQ_CALL)
//! or to commit a persistent transaction.
//!
//! Which copy is authoritative when:
//! - **While ctdb-db runs, the TDB file** holds the current records. The daemon reads a
//!   record from the file whenever it serves, moves, pulls or traverses it, because a
//!   local client holding the record as dmaster may have changed it there.
//! - **sled is the durable copy.** Every record the daemon writes goes to the file and
//!   to sled. What local clients change in the file reaches sled when the record
//!   leaves the node (the daemon writes the new header to both), when a traverse or a
//!   recovery reads the database, by a sweep every [`SWEEP_EVERY`], and when ctdb-db
//!   starts. The window that remains: a change a client made in the file in the last
//!   sweep interval, if the file itself is then lost (the file outlives a kill of
//!   ctdb-db or of the client; only a lost file, e.g. a wiped database directory, falls
//!   back to sled).
//! - **At start (and at attach)** what an existing file holds is first brought into
//!   sled (opened without CLEAR_IF_FIRST; a record whose RSN is not below sled's wins).
//!   Then the file is opened with CLEAR_IF_FIRST like Samba's clients, so it is emptied
//!   when nobody has it open and kept when a client still does, and reconciled with
//!   sled: every record sled has and the file lacks, or holds with a lower RSN, is
//!   written to the file. So a restart of ctdb-db under a running smbd keeps the file as
//!   smbd sees it, a restart with no client loses no unswept change, and a lost file is
//!   rebuilt from sled.
//! - Persistent databases change only through the daemon (TRANS3_COMMIT rounds and
//!   recovery): sled is written and flushed first, then the same records are applied to
//!   the file inside one tdb transaction.
//!
//! Locking: fcntl chain locks, not libtdb's robust mutexes. Every opener of a file must
//! use the same scheme, we tell clients which (DB_OPEN_FLAGS without
//! TDB_MUTEX_LOCKING), fcntl locks die with their process so a crashed smbd never
//! wedges a chain, and libtdb's fcntl path works on every file system Samba supports.
//! The daemon never waits for a chain a client holds: calls try the lock without
//! blocking and wait in [`LockWaits`] while it is taken, retried on a short timer.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::ltdb::split_record;
use ctdb_rpc::Envelope;
use ctdb_tdb::{flags, Tdb};

use crate::registry::DbInfo;
use crate::store::{BatchOp, Store};

/// Samba's DatabaseHashSize: the hash chains of a new file.
pub const HASH_SIZE: u32 = 100_001;

/// How often what local clients changed in the files is brought into sled.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Most calls waiting for chain locks held by clients; beyond this they are refused.
pub const MAX_LOCK_WAITS: usize = 10_000;

/// How long a traverse or pull tries for the whole file without blocking before it
/// waits for the clients' chain locks like Samba's traverse does.
const TRAVERSE_TRY_FOR: Duration = Duration::from_millis(200);

/// The tdb flags this daemon opens `db`'s file with, which DB_OPEN_FLAGS hands to
/// clients: Samba's, without TDB_MUTEX_LOCKING (see the module's text).
pub fn open_flags(db: &DbInfo) -> i32 {
    if db.is_persistent() {
        flags::DISALLOW_NESTING
    } else {
        flags::CLEAR_IF_FIRST | flags::NOSYNC | flags::INCOMPATIBLE_HASH | flags::DISALLOW_NESTING
    }
}

/// The open TDB files, by database id.
#[derive(Default)]
pub struct Files {
    files: HashMap<u32, Tdb>,
    /// Files this node holds whole-locked while frozen: clients wait for their chain
    /// locks until the recovery has replaced the database or the thaw, as with Samba's
    /// freeze, so no client writes into a copy the recovery is about to replace.
    locked: std::collections::HashSet<u32>,
}

impl Files {
    /// Opens `db`'s file at `path` (creating its directory) and reconciles it with
    /// sled as the module's text says. Returns how many records went each way.
    pub fn open(
        &mut self,
        db: &DbInfo,
        path: &Path,
        store: &dyn Store,
    ) -> Result<(usize, usize), String> {
        if self.files.contains_key(&db.db_id) {
            return Ok((0, 0));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let salvaged = if path.exists() {
            salvage(db, path, store)?
        } else {
            0
        };
        let tdb = Tdb::open(path, HASH_SIZE, open_flags(db)).map_err(|e| e.to_string())?;
        // What only the file held is in sled now (salvage); sled's newer copies go to
        // the file, streamed, in one transaction.
        let txn = tdb.transaction().map_err(|e| e.to_string())?;
        let mut to_file = 0;
        let mut failed = None;
        store
            .scan(&db.tree(), &mut |key, value| {
                let written = tdb.fetch(key).and_then(|in_file| {
                    if newer(value, in_file.as_deref()) {
                        to_file += 1;
                        txn.store(key, value)
                    } else {
                        Ok(())
                    }
                });
                match written {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e.to_string());
                        false
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
        txn.commit().map_err(|e| e.to_string())?;
        let to_sled = salvaged;
        self.files.insert(db.db_id, tdb);
        Ok((to_file, to_sled))
    }

    pub fn get(&self, db_id: u32) -> Option<&Tdb> {
        self.files.get(&db_id)
    }

    /// Locks clients out of `db_id`'s file (FREEZE). False while a client holds a
    /// chain: try again later (nothing waits here).
    pub fn lock_out_clients(&mut self, db_id: u32) -> Result<bool, String> {
        if self.locked.contains(&db_id) {
            return Ok(true);
        }
        let Some(tdb) = self.files.get(&db_id) else {
            return Ok(true);
        };
        let locked = tdb.try_lock_all().map_err(|e| e.to_string())?;
        if locked {
            self.locked.insert(db_id);
        }
        Ok(locked)
    }

    /// Reads every record of `db_id`'s file (see [`read_all`]); under this node's
    /// whole-file lock at once.
    pub fn read(
        &self,
        db_id: u32,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Option<Result<(), String>> {
        let tdb = self.files.get(&db_id)?;
        Some(if self.locked.contains(&db_id) {
            tdb.for_each(f).map(|_| ()).map_err(|e| e.to_string())
        } else {
            read_all(tdb, f)
        })
    }

    /// Lets clients at `db_id`'s file again (THAW).
    pub fn let_clients_in(&mut self, db_id: u32) {
        if self.locked.remove(&db_id) {
            if let Some(tdb) = self.files.get(&db_id) {
                if let Err(e) = tdb.unlock_all() {
                    tracing::warn!(path = %tdb.path().display(), "cannot let clients in: {e}");
                }
            }
        }
    }

    /// Runs `write` (one tdb transaction) on `db_id`'s file, if it has one. A file
    /// locked against clients stays so until `write` is done and is free after it.
    pub fn write(
        &mut self,
        db_id: u32,
        write: impl FnOnce(&Tdb) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(tdb) = self.files.get(&db_id) else {
            return Ok(());
        };
        if self.locked.remove(&db_id) {
            tdb.with_lock_all_released_after(|| write(tdb))
                .map_err(|e| e.to_string())?
        } else {
            write(tdb)
        }
    }

    /// Closes `db_id`'s file; its database is then served from sled alone.
    pub fn close(&mut self, db_id: u32) -> Option<Tdb> {
        self.locked.remove(&db_id);
        self.files.remove(&db_id)
    }

    pub fn is_open(&self, db_id: u32) -> bool {
        self.files.contains_key(&db_id)
    }

    /// True while this node holds `db_id`'s file whole-locked (frozen).
    pub fn is_locked(&self, db_id: u32) -> bool {
        self.locked.contains(&db_id)
    }

    /// Takes `tdb` as `db_id`'s open file again (after [`close`](Self::close)).
    pub fn reinsert(&mut self, db_id: u32, tdb: Tdb) {
        self.files.insert(db_id, tdb);
    }
}

/// Before the file is opened as clients open it (CLEAR_IF_FIRST, which empties it when
/// nobody else has it open), brings what it holds into sled: every record sled lacks or
/// holds with a lower or equal RSN (clients write without bumping it). So a restart of
/// ctdb-db loses no change a client made in the file, swept or not.
fn salvage(db: &DbInfo, path: &Path, store: &dyn Store) -> Result<usize, String> {
    let flags = open_flags(db) & !flags::CLEAR_IF_FIRST;
    let tdb = match Tdb::open(path, 0, flags) {
        Ok(tdb) => tdb,
        Err(e) => {
            tracing::warn!(db = %db.name, "cannot read the old TDB file, rebuilding it from sled: {e}");
            return Ok(0);
        }
    };
    let tree = db.tree();
    let mut changed = Vec::new();
    let mut failed = None;
    tdb.for_each(&mut |k, v| {
        match store.get(&tree, k) {
            Ok(Some(stored)) if stored == v || newer(&stored, Some(v)) => {}
            Ok(_) => changed.push(BatchOp::Put(k.to_vec(), v.to_vec())),
            Err(e) => failed = Some(e.to_string()),
        }
        true
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    let n = changed.len();
    if n > 0 {
        store.batch(&tree, changed).map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// True when the sled copy `value` must replace the file's `in_file`: the file lacks
/// the record, or holds a copy with a lower RSN (on a tie the file wins: clients write
/// there without bumping the RSN).
fn newer(value: &[u8], in_file: Option<&[u8]>) -> bool {
    let Some(in_file) = in_file else {
        return true;
    };
    match (split_record(value), split_record(in_file)) {
        (Ok((ours, _)), Ok((theirs, _))) => ours.rsn > theirs.rsn,
        (Ok(_), Err(_)) => true,
        _ => false,
    }
}

/// Reads every record of `tdb`: without blocking while clients hold chains, for up to
/// [`TRAVERSE_TRY_FOR`], then waiting for them.
pub fn read_all(tdb: &Tdb, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), String> {
    let deadline = std::time::Instant::now() + TRAVERSE_TRY_FOR;
    loop {
        match tdb.try_for_each(f).map_err(|e| e.to_string())? {
            Some(_) => return Ok(()),
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            None => {
                tracing::debug!(path = %tdb.path().display(), "traverse waits for clients' chain locks");
                return tdb.for_each(f).map(|_| ()).map_err(|e| e.to_string());
            }
        }
    }
}

/// Calls whose record's chain a local client holds, in arrival order, with the record
/// each waits for.
#[derive(Default)]
pub struct LockWaits {
    queue: VecDeque<(u32, Bytes, Envelope)>,
}

impl LockWaits {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when a call for this record already waits (later ones wait behind it).
    pub fn waits_for(&self, db_id: u32, key: &[u8]) -> bool {
        self.queue.iter().any(|(d, k, _)| *d == db_id && k == key)
    }

    pub fn push(&mut self, db_id: u32, key: Bytes, envelope: Envelope) {
        self.queue.push_back((db_id, key, envelope));
    }

    pub fn take(&mut self) -> VecDeque<(u32, Bytes, Envelope)> {
        std::mem::take(&mut self.queue)
    }
}

/// How many records of a file one sweep compares with sled (see
/// [`DbDaemon::sweep`](crate::DbDaemon::sweep)).
pub const SWEEP_SLICE: usize = 10_000;

impl crate::DbDaemon {
    /// Opens the TDB file of every attached database (at start) or of `db_id` (at
    /// attach). A file that cannot be opened leaves its database served from sled only,
    /// and says so.
    pub(crate) fn open_files(&mut self, only: Option<u32>) -> Result<(), String> {
        let dbs: Vec<DbInfo> = self
            .registry
            .iter()
            .filter(|d| only.is_none_or(|id| id == d.db_id))
            .cloned()
            .collect();
        let mut failed = None;
        for db in dbs {
            let path = db.path(&self.dirs, self.pnn);
            match self.files.open(&db, Path::new(&path), self.store.as_ref()) {
                Ok((to_file, to_sled)) => {
                    if to_file + to_sled > 0 {
                        tracing::info!(db = %db.name, to_file, to_sled, "TDB file reconciled with sled");
                    }
                }
                Err(e) => {
                    tracing::error!(db = %db.name, %path, "cannot open the TDB file clients share: {e}");
                    failed = Some(e);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// The stored value (ltdb header + data) of `key`: the file's copy.
    pub(crate) fn get_value(&self, db: &DbInfo, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match self.files.get(db.db_id) {
            Some(tdb) => tdb.fetch(key).map_err(|e| e.to_string()),
            None => self
                .store
                .get(&db.tree(), key)
                .map_err(|e| format!("reading {}: {e}", db.name)),
        }
    }

    /// Writes `value` for `key` to the file and to sled.
    pub(crate) fn put_value(&self, db: &DbInfo, key: &[u8], value: &[u8]) -> Result<(), String> {
        if let Some(tdb) = self.files.get(db.db_id) {
            tdb.store(key, value).map_err(|e| e.to_string())?;
        }
        self.store
            .put(&db.tree(), key, value)
            .map_err(|e| format!("storing into {}: {e}", db.name))
    }

    /// Deletes `key` from the file and from sled (the caller holds its chain lock).
    pub(crate) fn delete_value(&self, db: &DbInfo, key: &[u8]) -> Result<(), String> {
        if let Some(tdb) = self.files.get(db.db_id) {
            tdb.delete(key).map_err(|e| e.to_string())?;
        }
        self.store
            .delete(&db.tree(), key)
            .map_err(|e| format!("deleting from {}: {e}", db.name))
    }

    /// Applies `ops` to sled (flushed when `durable`), then to the file in one tdb
    /// transaction.
    pub(crate) fn apply_batch(
        &mut self,
        db: &DbInfo,
        ops: Vec<BatchOp>,
        durable: bool,
    ) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let file_ops = self.files.is_open(db.db_id).then(|| ops.clone());
        self.store
            .batch(&db.tree(), ops)
            .map_err(|e| format!("storing into {}: {e}", db.name))?;
        if durable {
            self.store
                .flush()
                .map_err(|e| format!("flushing {}: {e}", db.name))?;
        }
        if let Some(ops) = file_ops {
            self.files.write(db.db_id, |tdb| {
                let txn = tdb.transaction().map_err(|e| e.to_string())?;
                for op in ops {
                    match op {
                        BatchOp::Put(k, v) => txn.store(&k, &v),
                        BatchOp::Delete(k) => txn.delete(&k),
                    }
                    .map_err(|e| e.to_string())?;
                }
                txn.commit().map_err(|e| e.to_string())
            })?;
        }
        Ok(())
    }

    /// Makes the staging copy a recovery transaction pushed into `db`'s records: sled
    /// flushed, the staging tree made current in one durable write, then the file
    /// replaced in one tdb transaction, then the old tree dropped. A kill before the
    /// durable write leaves the old records; after it, the file is rebuilt from the new
    /// ones when ctdb-db starts again (salvage keeps only file records at least as new).
    pub(crate) fn commit_staging(&mut self, db: &DbInfo) -> Result<(), String> {
        let began = std::time::Instant::now();
        self.store
            .flush()
            .map_err(|e| format!("flushing {}: {e}", db.name))?;
        let old = self
            .registry
            .set_tree_gen(self.store.as_ref(), db.db_id)
            .map_err(|e| format!("committing {}: {e}", db.name))?;
        let Some(current) = self.registry.get(db.db_id).cloned() else {
            return Ok(());
        };
        fault_point!("db::commit::after_switch");
        let durable = began.elapsed();
        let store = &self.store;
        self.files.write(db.db_id, |tdb| {
            let txn = tdb.transaction().map_err(|e| e.to_string())?;
            txn.wipe_all().map_err(|e| e.to_string())?;
            let mut failed = None;
            store
                .scan(&current.tree(), &mut |k, v| match txn.store(k, v) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e.to_string());
                        false
                    }
                })
                .map_err(|e| format!("reading {}: {e}", db.name))?;
            if let Some(e) = failed {
                return Err(e);
            }
            txn.commit().map_err(|e| e.to_string())
        })?;
        let file = began.elapsed() - durable;
        if let Some(old) = old {
            if let Err(e) = self.store.clear(&old) {
                tracing::warn!(db = %db.name, "cannot drop the replaced records: {e}");
            }
        }
        tracing::info!(
            db = %db.name,
            durable_ms = durable.as_millis() as u64,
            file_ms = file.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "recovered copy committed"
        );
        Ok(())
    }

    /// Calls `f` with every record of `db` (the file's copies) and brings what local
    /// clients changed into sled on the way.
    pub(crate) fn scan_values(
        &self,
        db: &DbInfo,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), String> {
        if !self.files.is_open(db.db_id) {
            return self
                .store
                .scan(&db.tree(), f)
                .map_err(|e| format!("reading {}: {e}", db.name));
        }
        let tree = db.tree();
        let mut changed = Vec::new();
        let mut failed = None;
        let read = self.files.read(db.db_id, &mut |k, v| {
            match self.store.get(&tree, k) {
                Ok(Some(stored)) if stored == v => {}
                Ok(_) => changed.push(BatchOp::Put(k.to_vec(), v.to_vec())),
                Err(e) => failed = Some(e.to_string()),
            }
            f(k, v)
        });
        read.unwrap_or(Ok(()))?;
        if let Some(e) = failed {
            return Err(format!("reading {}: {e}", db.name));
        }
        if !changed.is_empty() {
            self.store
                .batch(&tree, changed)
                .map_err(|e| format!("storing into {}: {e}", db.name))?;
        }
        Ok(())
    }

    /// The keys of every record of `db` (the file's, where it has one), unordered.
    pub(crate) fn record_keys(&self, db: &DbInfo) -> Result<Vec<Bytes>, String> {
        let mut keys = Vec::new();
        let mut collect = |k: &[u8], v: &[u8]| {
            if v.len() >= ctdb_protocol::LtdbHeader::SIZE {
                keys.push(Bytes::copy_from_slice(k));
            }
            true
        };
        match self.files.read(db.db_id, &mut collect) {
            Some(read) => read?,
            None => self
                .store
                .scan(&db.tree(), &mut collect)
                .map_err(|e| format!("reading {}: {e}", db.name))?,
        }
        Ok(keys)
    }

    /// Brings what local clients changed in the volatile files into sled, without
    /// waiting for a chain a client holds (a busy file is swept next time). Returns how
    /// many records changed.
    ///
    /// Each call compares at most [`SWEEP_SLICE`] records of each file with sled (the
    /// next window, in the file's order): a sweep runs every second under the daemon's
    /// lock, and comparing a large database whole each time would stall every call
    /// behind it. A database of N records is swept whole every N / SWEEP_SLICE calls;
    /// the file itself stays the copy clients and recoveries read, and reopening it
    /// brings everything into sled at once.
    pub fn sweep(&mut self) -> usize {
        let mut total = 0;
        // A frozen database is being recovered: the recovery rewrites sled and file.
        let swept_dbs: Vec<DbInfo> = self
            .registry
            .iter()
            .filter(|d| d.is_volatile() && !d.frozen && !self.frozen)
            .cloned()
            .collect();
        for db in swept_dbs {
            let Some(tdb) = self.files.get(db.db_id) else {
                continue;
            };
            let tree = db.tree();
            let from = self.sweep_cursor.get(&db.db_id).copied().unwrap_or(0);
            let until = from + SWEEP_SLICE;
            let mut index = 0usize;
            let mut changed = Vec::new();
            let swept = tdb.try_for_each(&mut |k, v| {
                let here = index;
                index += 1;
                if here < from {
                    return true;
                }
                if here >= until {
                    return false;
                }
                // Clients write only records this node is dmaster of.
                if split_record(v).is_ok_and(|(h, _)| h.dmaster != self.pnn) {
                    return true;
                }
                if !matches!(self.store.get(&tree, k), Ok(Some(stored)) if stored == v) {
                    changed.push(BatchOp::Put(k.to_vec(), v.to_vec()));
                }
                true
            });
            match swept {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(db = %db.name, "sweep cannot read the TDB file: {e}");
                    continue;
                }
            }
            // Past the end of the file: the next sweep starts again at its beginning.
            let next = if index > until { until } else { 0 };
            self.sweep_cursor.insert(db.db_id, next);
            total += changed.len();
            if let Err(e) = self.store.batch(&tree, changed) {
                tracing::warn!(db = %db.name, "sweep cannot write sled: {e}");
            }
        }
        total
    }

    /// Takes the chain lock of the record a call or migration packet is about, if its
    /// database has a file: `Ok(true)` taken, `Ok(false)` no lock needed (no file),
    /// `Err(())` a client holds it (or a call for it already waits).
    pub(crate) fn lock_record(&self, db_id: u32, key: &[u8]) -> Result<bool, ()> {
        let Some(tdb) = self.files.get(db_id) else {
            return Ok(false);
        };
        if self.lock_waits.waits_for(db_id, key) {
            return Err(());
        }
        match tdb.try_lock_chain(key) {
            Ok(true) => Ok(true),
            Ok(false) => Err(()),
            Err(e) => {
                tracing::warn!(path = %tdb.path().display(), "chain lock failed: {e}");
                Ok(false)
            }
        }
    }

    pub(crate) fn unlock_record(&self, db_id: u32, key: &[u8]) {
        if let Some(tdb) = self.files.get(db_id) {
            if let Err(e) = tdb.unlock_chain(key) {
                tracing::warn!(path = %tdb.path().display(), "chain unlock failed: {e}");
            }
        }
    }

    /// Runs again the calls that waited for chain locks (those still locked wait again,
    /// in order). Returns how many still wait.
    pub fn retry_lock_waits(&mut self) -> usize {
        use ctdb_rpc::component::PacketHandler;
        let Some(out) = self.outbox.clone() else {
            return self.lock_waits.len();
        };
        for (_, _, envelope) in self.lock_waits.take() {
            self.handle(envelope, &out);
        }
        self.lock_waits.len()
    }

    /// The calls waiting for chain locks that local clients hold.
    pub fn lock_waiting(&self) -> usize {
        self.lock_waits.len()
    }

    /// Where the daemon rings when a call starts waiting for a chain lock.
    pub fn set_lock_wake(&mut self, wake: std::sync::Arc<tokio::sync::Notify>) {
        self.lock_wake = Some(wake);
    }
}

/// Starts the daemon's timers on the current tokio runtime: calls that wait for a chain
/// lock are retried (after 0.5 ms, backing off to 20 ms while the lock stays taken);
/// every [`SWEEP_EVERY`] the volatile files are swept into sled and changed sequence
/// numbers announced; every VacuumInterval (see [`crate::vacuum`]) a vacuum pass
/// starts, run in bounded slices with other tasks let in between.
pub fn spawn_background(daemon: std::sync::Arc<std::sync::Mutex<crate::DbDaemon>>) {
    use ctdb_rpc::component::lock;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    lock(&daemon).set_lock_wake(wake.clone());
    let retrying = daemon.clone();
    tokio::spawn(async move {
        loop {
            wake.notified().await;
            let mut backoff = Duration::from_micros(500);
            loop {
                tokio::time::sleep(backoff).await;
                if lock(&retrying).retry_lock_waits() == 0 {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_millis(20));
            }
        }
    });
    let vacuuming = daemon.clone();
    let vacuum_wake = std::sync::Arc::new(tokio::sync::Notify::new());
    lock(&daemon).set_vacuum_wake(vacuum_wake.clone());
    tokio::spawn(async move {
        // The first pass at once; then VacuumInterval, as the node's tunables say when
        // each wait begins.
        let mut next = tokio::time::Instant::now();
        loop {
            let start = tokio::select! {
                _ = tokio::time::sleep_until(next) => true,
                _ = vacuum_wake.notified() => false,
            };
            if start {
                next = tokio::time::Instant::now() + lock(&vacuuming).vacuum_interval();
            }
            // One bounded slice at a time, letting the packets waiting meanwhile in
            // between (this runtime has one thread).
            let mut more = {
                let mut d = lock(&vacuuming);
                match d.outbox.clone() {
                    Some(out) if start => d.vacuum(&out),
                    Some(out) => d.vacuum_slice(&out),
                    None => false,
                }
            };
            while more {
                tokio::task::yield_now().await;
                let mut d = lock(&vacuuming);
                more = match d.outbox.clone() {
                    Some(out) => d.vacuum_slice(&out),
                    None => false,
                };
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let swept = {
                let mut d = lock(&daemon);
                d.announce_seqnums();
                d.sweep()
            };
            if swept > 0 {
                tracing::debug!(records = swept, "swept clients' changes into sled");
            }
        }
    });
}
