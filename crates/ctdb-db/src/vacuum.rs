//! Vacuuming: deleted records go away, and so does the space they took.
//!
//! A client deletes a volatile record by storing it empty (and sends
//! SCHEDULE_FOR_DELETION); the empty record and the older copies other nodes keep would
//! otherwise stay for ever. Every VacuumInterval ([`VACUUM_EVERY`] by default) each node
//! starts a *pass* over each volatile database (fast or full, see below): it looks for
//! the empty records it is both lmaster and dmaster of
//! (the node that has the last word on them), offers them to every other node of the
//! vnn map (TRY_DELETE_RECORDS with their headers), and deletes its own copy of those
//! no node kept. A node deletes its copy unless it is dmaster of it, holds a newer one,
//! or a local client holds its chain; it answers with the records it kept. So a record
//! is gone everywhere only once no node holds a newer copy.
//!
//! **Bounded work.** A pass goes through the database in slices, each a bounded piece
//! of work done while holding the daemon (other packets run between slices): a slice
//! reads at most [`SCAN_PER_SLICE`] records, resuming after the last key the previous
//! one read (from sled, in key order; each candidate is checked against the TDB file),
//! offers at most [`BATCH_RECORDS`] records and [`BATCH_BYTES`] bytes in one
//! TRY_DELETE_RECORDS per node (far below the 64 MiB packet limit), and deletes at most
//! one such batch (from the file and, in one write, from sled). One batch per database
//! is out at a time; its answers drive the next slice. The timer's task runs slices
//! while there is work that needs no answer, yielding between them. A pass not done
//! after [`MAX_PASS_TIME`] (Samba's VacuumMaxRunTime) is stopped, its batch waiting
//! for answers forgotten; the next pass goes on from where it stopped.
//! A batch whose answers do not all come (a node died) is forgotten at the next vnn
//! map, which a recovery brings, and with it the passes.
//!
//! **Space comes back** at the end of a pass:
//! - The TDB file: libtdb never shrinks a file; deleted records become free-list
//!   entries that later records reuse. When no other process has the file open (no
//!   client of it, see [`ctdb_tdb::Tdb::recreate_if_alone`]) and it is far larger than
//!   its records need (more than [`FILE_SLACK`] over twice an empty file plus twice its
//!   records' bytes) and has at most [`RECREATE_MAX_RECORDS`] records, it is cut to an
//!   empty file and its records are written back in one transaction (they are in sled
//!   first, so a crash meanwhile loses nothing: the file is rebuilt from sled at
//!   start). Otherwise, as Samba does, a file whose free list has [`REPACK_LIMIT`]
//!   entries (Samba's RepackLimit) is repacked (`tdb_repack`), under the whole-file
//!   lock taken without waiting: the free space becomes one block. Neither runs while
//!   a freeze or a recovery transaction holds the file.
//! - sled frees the pages of deleted keys, but its files do not shrink while it runs
//!   (measured: 1,000,000 deleted records left a 300 MB directory; dropping the tree
//!   changed nothing until a restart). When passes have deleted [`REPACK_LIMIT`]
//!   records since the last rewrite, the store takes more than [`STORE_SLACK`] and
//!   all its live entries are under an eighth of that (and under
//!   [`STORE_COPY_LIMIT`]), the whole store is copied into a fresh directory and
//!   switched to ([`crate::store::SledStore`] tells how a crash is survived).
//!
//! **Fast passes and the delete queue** (Samba's fast-path vacuuming). A client that
//! empties a record tells the daemon (SCHEDULE_FOR_DELETION, smbd sends it on every
//! delete), and so does this node when it becomes dmaster of an empty record (a
//! record brought home for vacuuming, or one a client's fetch_locked created): the
//! key and its RSN go into the database's delete queue (at most
//! [`DELETE_QUEUE_LIMIT`] keys; the rest wait for a full pass). Most passes are
//! *fast*: they read only the queued keys, each still empty, held here and with the
//! RSN it was queued with (a key whose chain a client holds is skipped), instead of
//! the whole database; every VacuumFastPathCount-th pass (and the first after a start)
//! is *full* and reads every record.
//!
//! **Records held away from their lmaster** (Samba's VACUUM_FETCH). An empty record
//! this node is dmaster of but not lmaster of cannot be deleted here: a pass sends it
//! to its lmaster in a VACUUM_FETCH (no reply), and the lmaster migrates it home with a
//! NULL call flagged IMMEDIATE and VACUUM_MIGRATION (at most [`FETCHES_IN_FLIGHT`] at
//! once, the rest dropped: the next pass sends them again) and queues it for
//! deletion. A dmaster asked so for a record that has data again keeps it and answers
//! the call. The lmaster's next pass then deletes it everywhere as above.
//!
//! **Tunables**: each pass asks the node for VacuumInterval, VacuumMaxRunTime,
//! RepackLimit and VacuumFastPathCount (transport keeps them; `ctdb setvar` changes
//! them) and the next one follows them. DB_VACUUM runs a pass of one database now,
//! fast or full as asked, and is answered when it is over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::control::{DbVacuum, KeyData, RecBuffer, RecData};
use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::{Body, LtdbHeader, Opcode, ReplyControl, Wire};
use ctdb_rpc::component::Outbox;

use crate::call::REC_RO_FLAGS;
use crate::control::{done, fail, ok, ControlError, ControlResult};
use crate::registry::DbInfo;
use crate::store::BatchOp;
use crate::{DbDaemon, Origin};

/// Samba's VacuumInterval default.
pub const VACUUM_EVERY: Duration = Duration::from_secs(10);

/// Most records one slice reads.
pub const SCAN_PER_SLICE: usize = 20_000;

/// Most records offered in one TRY_DELETE_RECORDS, and deleted in one slice.
pub const BATCH_RECORDS: usize = 2_000;

/// Most bytes of records in one TRY_DELETE_RECORDS.
pub const BATCH_BYTES: usize = 1 << 20;

/// Samba's VacuumMaxRunTime: a pass still under way after this is dropped.
pub const MAX_PASS_TIME: Duration = Duration::from_secs(120);

/// Samba's RepackLimit: free-list entries at which a TDB file is repacked; also the
/// records deleted after which the store is considered for a rewrite.
pub const REPACK_LIMIT: usize = 10_000;

/// A TDB file is recreated only when it holds at most this many records (they are
/// held in memory meanwhile).
pub const RECREATE_MAX_RECORDS: usize = 100_000;

/// A TDB file is recreated only when it is this much larger than twice what an empty
/// file and its records need.
pub const FILE_SLACK: u64 = 4 << 20;

/// The store is rewritten only when it takes more than this on disk.
pub const STORE_SLACK: u64 = 8 << 20;

/// The store is rewritten only when its live entries are under this many bytes (what
/// one rewrite copies while holding the daemon).
pub const STORE_COPY_LIMIT: u64 = 64 << 20;

/// Most keys in one database's delete queue.
pub const DELETE_QUEUE_LIMIT: usize = 100_000;

/// Most migrations home for vacuuming (VACUUM_FETCH) under way at once on a node.
pub const FETCHES_IN_FLIGHT: usize = 2_000;

/// Samba's VacuumFastPathCount default: fast passes between two full ones.
pub const FAST_PATH_COUNT: u32 = 60;

/// Reqids of vacuum batches carry these top bits (calls use the pnn, commits count up).
const REQID_TAG: u32 = 0xC000_0000;

/// The reqid of this node's request for its tunables (batches use the ones above).
const TUNABLES_REQID: u32 = REQID_TAG;

/// The tunables vacuuming follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VacuumSettings {
    /// VacuumInterval: time between two passes.
    pub interval: Duration,
    /// VacuumMaxRunTime.
    pub max_run: Duration,
    /// RepackLimit.
    pub repack_limit: usize,
    /// VacuumFastPathCount: fast passes between two full ones (0: every pass full).
    pub fast_path_count: u32,
}

impl Default for VacuumSettings {
    fn default() -> Self {
        Self {
            interval: VACUUM_EVERY,
            max_run: MAX_PASS_TIME,
            repack_limit: REPACK_LIMIT,
            fast_path_count: FAST_PATH_COUNT,
        }
    }
}

impl VacuumSettings {
    /// The settings in a GET_ALL_TUNABLES answer (a zero interval or run time is
    /// taken as one second).
    fn from_tunables(list: &ctdb_protocol::control::TunableList) -> Self {
        let d = Self::default();
        let secs = |name, default: Duration| {
            list.get(name)
                .map_or(default, |s| Duration::from_secs(u64::from(s.max(1))))
        };
        Self {
            interval: secs("VacuumInterval", d.interval),
            max_run: secs("VacuumMaxRunTime", d.max_run),
            repack_limit: list
                .get("RepackLimit")
                .map_or(d.repack_limit, |n| n.max(1) as usize),
            fast_path_count: list.get("VacuumFastPathCount").unwrap_or(d.fast_path_count),
        }
    }
}

/// Bytes of a RecData beyond its key and data (length, reqid, key and data lengths)
/// and of the header it carries.
const REC_OVERHEAD: usize = 16 + LtdbHeader::SIZE;

/// A batch offered to the other nodes, waiting for their answers.
struct Offer {
    reqid: u32,
    /// Offered keys and the RSN offered.
    offered: HashMap<Bytes, u64>,
    waiting: usize,
    kept: HashSet<Bytes>,
    failed: bool,
}

/// What a pass reads.
enum Source {
    /// Every record (a full pass), in key order from sled.
    Scan,
    /// The keys queued for deletion when it began (a fast pass), from `next` on.
    Queue {
        keys: Vec<(Bytes, u64)>,
        next: usize,
    },
}

/// One pass over one database.
struct Pass {
    began: Instant,
    source: Source,
    /// DB_VACUUM requests answered when the pass is over.
    waiters: Vec<Origin>,
    /// The next slice reads the records after this key (from the first if `None`).
    cursor: Option<Bytes>,
    read_all: bool,
    offer: Option<Offer>,
    /// Answered (or offered to nobody): offered keys with their RSN, and those kept.
    answered: Option<(HashMap<Bytes, u64>, HashSet<Bytes>)>,
    /// Records and bytes (keys and values) read, and deleted.
    records: usize,
    bytes: u64,
    deleted: usize,
    deleted_bytes: u64,
}

impl Pass {
    fn new(source: Source) -> Self {
        Self {
            began: Instant::now(),
            source,
            waiters: Vec::new(),
            cursor: None,
            read_all: false,
            offer: None,
            answered: None,
            records: 0,
            bytes: 0,
            deleted: 0,
            deleted_bytes: 0,
        }
    }
}

/// What one slice of a pass left.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// More to do now.
    More,
    /// Waiting for answers, or paused (frozen, recovering).
    Waiting,
    /// The pass is over.
    Done,
}

/// Passes asked for by DB_VACUUM while another pass of the database ran.
struct Requested {
    full: bool,
    waiters: Vec<Origin>,
}

#[derive(Default)]
pub struct Vacuums {
    passes: BTreeMap<u32, Pass>,
    next: u32,
    /// Records deleted since the store was last rewritten.
    deleted_since_rewrite: usize,
    /// Where the next full pass over a database starts, after one that ran out of time.
    resume: HashMap<u32, Bytes>,
    /// Keys to look at in the next fast pass, with the RSN they were queued with.
    queues: HashMap<u32, HashMap<Bytes, u64>>,
    /// Keys not queued because a queue was full (a full pass finds them).
    pub queue_overflow: u64,
    /// Fast passes since the last full one, per database (none yet: the next is full).
    fast_passes: HashMap<u32, u32>,
    requested: HashMap<u32, Requested>,
    settings: VacuumSettings,
    /// Migrations home for vacuuming under way.
    fetching: usize,
}

impl Vacuums {
    /// Databases with a pass under way.
    pub fn passes(&self) -> usize {
        self.passes.len()
    }

    /// Keys queued for deletion in `db_id`.
    pub fn queued(&self, db_id: u32) -> usize {
        self.queues.get(&db_id).map_or(0, HashMap::len)
    }

    pub fn settings(&self) -> VacuumSettings {
        self.settings
    }

    /// A migration home for vacuuming ended.
    pub(crate) fn fetch_done(&mut self) {
        self.fetching = self.fetching.saturating_sub(1);
    }

    /// Whether `db_id`'s next pass started by the timer is full, counting it.
    fn next_is_full(&mut self, db_id: u32) -> bool {
        let every = self.settings.fast_path_count;
        match self.fast_passes.get_mut(&db_id) {
            Some(n) if *n < every => {
                *n += 1;
                false
            }
            _ => {
                self.fast_passes.insert(db_id, 0);
                true
            }
        }
    }
}

/// What the end of a pass did to the TDB file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCompaction {
    Nothing,
    Repacked,
    Recreated,
}

impl DbDaemon {
    /// Starts a vacuum pass on every volatile database without one (not while
    /// recovering) and runs one slice; true while a slice can run now (call
    /// [`vacuum_slice`](Self::vacuum_slice) until false).
    pub fn vacuum(&mut self, out: &Outbox) -> bool {
        self.request_tunables(out);
        if self.vacuum_paused() {
            return false;
        }
        let starting: Vec<u32> = self
            .registry
            .iter()
            .filter(|d| d.is_volatile() && !self.vacuums.passes.contains_key(&d.db_id))
            .map(|d| d.db_id)
            .collect();
        for db_id in starting {
            match self.vacuums.requested.remove(&db_id) {
                Some(r) => self.start_pass(db_id, r.full, r.waiters),
                None => {
                    let full = self.vacuums.next_is_full(db_id);
                    self.start_pass(db_id, full, Vec::new());
                }
            }
        }
        self.vacuum_slice(out)
    }

    /// How long the timer waits between two passes (VacuumInterval).
    pub fn vacuum_interval(&self) -> Duration {
        self.vacuums.settings.interval
    }

    fn start_pass(&mut self, db_id: u32, full: bool, waiters: Vec<Origin>) {
        let mut pass = if full {
            let mut pass = Pass::new(Source::Scan);
            pass.cursor = self.vacuums.resume.remove(&db_id);
            pass
        } else {
            let keys = self.vacuums.queues.remove(&db_id).unwrap_or_default();
            Pass::new(Source::Queue {
                keys: keys.into_iter().collect(),
                next: 0,
            })
        };
        pass.waiters = waiters;
        self.vacuums.passes.insert(db_id, pass);
    }

    /// Asks transport for the tunables (answered to [`Self::tunables_reply`]).
    pub(crate) fn request_tunables(&mut self, out: &Outbox) {
        let packet = self.control_packet(self.pnn, TUNABLES_REQID, Opcode::GetAllTunables, &[]);
        out.to_client(0, packet);
        self.tunables_asked += 1;
    }

    /// The node's answer to [`Self::request_tunables`]; false when `reqid` is not it.
    /// Transport answers these in order, so the `n`th answer is that of the `n`th
    /// request.
    pub(crate) fn tunables_reply(
        &mut self,
        reqid: u32,
        reply: &ReplyControl,
        out: &Outbox,
    ) -> bool {
        if reqid != TUNABLES_REQID {
            return false;
        }
        let list = ctdb_protocol::control::TunableList::from_bytes(&reply.data)
            .ok()
            .filter(|_| reply.status == 0);
        match &list {
            Some(list) => {
                let settings = VacuumSettings::from_tunables(list);
                if settings != self.vacuums.settings {
                    tracing::info!(?settings, "vacuuming follows new tunables");
                    self.vacuums.settings = settings;
                }
            }
            None => tracing::debug!(status = reply.status, "no tunables for vacuuming"),
        }
        self.tunables_answered += 1;
        self.decide_detaches(list.as_ref(), out);
        true
    }

    /// DB_DETACH: the database's queued vacuuming goes with it (a pass under way
    /// ends at its next slice, answering its waiters that the database went away).
    pub(crate) fn forget_vacuuming(&mut self, db_id: u32) {
        let v = &mut self.vacuums;
        v.resume.remove(&db_id);
        v.queues.remove(&db_id);
        v.fast_passes.remove(&db_id);
    }

    /// Queues `key` of `db_id` for the next fast pass, if it is volatile and its queue
    /// has room.
    pub(crate) fn schedule_deletion(&mut self, db_id: u32, key: Bytes, rsn: u64) {
        if !self.registry.get(db_id).is_some_and(DbInfo::is_volatile) {
            return;
        }
        let queue = self.vacuums.queues.entry(db_id).or_default();
        if queue.len() >= DELETE_QUEUE_LIMIT && !queue.contains_key(&key) {
            self.vacuums.queue_overflow += 1;
            return;
        }
        queue.insert(key, rsn);
    }

    /// SCHEDULE_FOR_DELETION: a client emptied a record (smbd sends it on every
    /// delete, without a reply); the next fast pass looks at it.
    pub(crate) fn schedule_for_deletion(&mut self, data: &[u8]) -> ControlResult {
        let req = KeyData::from_bytes(data)?;
        match self.registry.get(req.db_id) {
            None => {
                return fail(format!(
                    "schedule for deletion: unknown database 0x{:08x}",
                    req.db_id
                ))
            }
            Some(db) if !db.is_volatile() => {
                return fail(format!(
                    "schedule for deletion: {} is not volatile",
                    db.name
                ))
            }
            Some(_) => {}
        }
        self.schedule_deletion(req.db_id, req.key, req.header.rsn);
        done()
    }

    /// DB_VACUUM: a pass over one database now, fast or full, answered when it is over
    /// (after the pass under way, if any).
    pub(crate) fn db_vacuum(
        &mut self,
        origin: Origin,
        data: &[u8],
        out: &Outbox,
    ) -> Result<(), ControlError> {
        let req = DbVacuum::from_bytes(data)?;
        match self.registry.get(req.db_id) {
            None => return fail(format!("DB_VACUUM: unknown database 0x{:08x}", req.db_id)),
            Some(db) if !db.is_volatile() => {
                return fail(format!("DB_VACUUM: {} is not volatile", db.name))
            }
            Some(_) => {}
        }
        if self.vacuums.passes.contains_key(&req.db_id) {
            let r = self
                .vacuums
                .requested
                .entry(req.db_id)
                .or_insert(Requested {
                    full: false,
                    waiters: Vec::new(),
                });
            r.full |= req.full_vacuum_run;
            r.waiters.push(origin);
        } else {
            self.start_pass(req.db_id, req.full_vacuum_run, vec![origin]);
            if self.vacuum_db_slice(req.db_id, out) == Step::More {
                if let Some(wake) = &self.vacuum_wake {
                    wake.notify_one();
                }
            }
        }
        Ok(())
    }

    /// A pass ended: its DB_VACUUM requests are answered (`Err`: why it stopped), and
    /// a pass asked for meanwhile starts.
    fn pass_over(
        &mut self,
        db_id: u32,
        waiters: Vec<Origin>,
        result: Result<(), String>,
        out: &Outbox,
    ) {
        let reply = match &result {
            Ok(()) => ReplyControl {
                status: 0,
                data: Bytes::new(),
                errmsg: Bytes::new(),
            },
            Err(msg) => ReplyControl::error(-1, msg),
        };
        for origin in waiters {
            self.send(out, &origin, Body::ReplyControl(reply.clone()));
        }
        if let Some(r) = self.vacuums.requested.remove(&db_id) {
            if self.registry.get(db_id).is_some() {
                self.start_pass(db_id, r.full, r.waiters);
                if let Some(wake) = &self.vacuum_wake {
                    wake.notify_one();
                }
            } else {
                self.pass_over(db_id, r.waiters, Err("the database went away".into()), out);
            }
        }
    }

    /// A new vnn map: answers to batches of the old generation will not come, so the
    /// passes stop (their requests are told); the delete queues stay.
    pub(crate) fn vacuum_new_generation(&mut self) {
        let passes = std::mem::take(&mut self.vacuums.passes);
        let requested = std::mem::take(&mut self.vacuums.requested);
        self.vacuums.fetching = 0;
        let Some(out) = self.outbox.clone() else {
            return;
        };
        let waiters = passes
            .into_values()
            .flat_map(|p| p.waiters)
            .chain(requested.into_values().flat_map(|r| r.waiters));
        let reply = ReplyControl::error(-1, "a recovery stopped the vacuuming pass");
        for origin in waiters.collect::<Vec<_>>() {
            self.send(&out, &origin, Body::ReplyControl(reply.clone()));
        }
    }

    /// Runs one bounded slice of every pass that needs no answer; true while there is
    /// more such work.
    pub fn vacuum_slice(&mut self, out: &Outbox) -> bool {
        let dbs: Vec<u32> = self.vacuums.passes.keys().copied().collect();
        let mut more = false;
        for db_id in dbs {
            more |= self.vacuum_db_slice(db_id, out) == Step::More;
        }
        more
    }

    /// Where the daemon rings when a pass can go on without waiting for the timer.
    pub fn set_vacuum_wake(&mut self, wake: std::sync::Arc<tokio::sync::Notify>) {
        self.vacuum_wake = Some(wake);
    }

    fn vacuum_paused(&self) -> bool {
        self.frozen || self.recovery_mode != ctdb_protocol::flags::recmode::NORMAL
    }

    fn vacuum_db_slice(&mut self, db_id: u32, out: &Outbox) -> Step {
        let db = match self.registry.get(db_id) {
            Some(db) if db.is_volatile() => db.clone(),
            _ => {
                if let Some(pass) = self.vacuums.passes.remove(&db_id) {
                    let why = Err("the database went away".to_string());
                    self.pass_over(db_id, pass.waiters, why, out);
                }
                return Step::Done;
            }
        };
        if self.vacuum_paused() || db.frozen || db.transaction.is_some() || db.staging {
            return Step::Waiting;
        }
        let max_run = self.vacuums.settings.max_run;
        let Some(pass) = self.vacuums.passes.get_mut(&db_id) else {
            return Step::Done;
        };
        if pass.began.elapsed() > max_run {
            // The next pass goes on from here (a batch whose answers never came is
            // offered again then).
            tracing::warn!(db = %db.name, "vacuuming pass not done in {max_run:?}: stopped");
            if let Some(pass) = self.vacuums.passes.remove(&db_id) {
                if let Some(cursor) = pass.cursor.filter(|_| !pass.read_all) {
                    self.vacuums.resume.insert(db_id, cursor);
                }
                let why = Err(format!("vacuuming pass not done in {max_run:?}"));
                self.pass_over(db_id, pass.waiters, why, out);
            }
            return Step::Done;
        }
        if pass.offer.is_some() {
            return Step::Waiting;
        }
        if let Some((offered, kept)) = pass.answered.take() {
            let (deleted, bytes) = self.delete_unkept(&db, &offered, &kept);
            if let Some(pass) = self.vacuums.passes.get_mut(&db_id) {
                pass.deleted += deleted;
                pass.deleted_bytes += bytes;
            }
            self.vacuums.deleted_since_rewrite += deleted;
            return Step::More;
        }
        if pass.read_all {
            let Some(pass) = self.vacuums.passes.remove(&db_id) else {
                return Step::Done;
            };
            self.end_pass(&db, &pass);
            self.pass_over(db_id, pass.waiters, Ok(()), out);
            return Step::Done;
        }
        // Taken out while it is read (put back below).
        let mut source = std::mem::replace(&mut pass.source, Source::Scan);
        let cursor = pass.cursor.clone();
        let read = match &mut source {
            Source::Scan => self.next_candidates(&db, cursor),
            Source::Queue { keys, next } => {
                let c = self.next_queued(&db, &keys[*next..]);
                *next += c.consumed;
                Ok(c)
            }
        };
        if let Some(pass) = self.vacuums.passes.get_mut(&db_id) {
            pass.source = source;
        }
        let candidates = match read {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(db = %db.name, "vacuuming cannot read the database: {e}");
                if let Some(pass) = self.vacuums.passes.remove(&db_id) {
                    let why = Err(format!("cannot read the database: {e}"));
                    self.pass_over(db_id, pass.waiters, why, out);
                }
                return Step::Done;
            }
        };
        let Some(pass) = self.vacuums.passes.get_mut(&db_id) else {
            return Step::Done;
        };
        pass.cursor = candidates.cursor.or(pass.cursor.take());
        pass.read_all = candidates.read_all;
        pass.records += candidates.records;
        pass.bytes += candidates.bytes;
        self.send_vacuum_fetches(db_id, candidates.fetch, out);
        if candidates.found.is_empty() {
            return Step::More;
        }
        let offered: HashMap<Bytes, u64> = candidates
            .found
            .iter()
            .map(|r| (r.key.clone(), rsn_of(r)))
            .collect();
        let others: Vec<u32> = self.others_in_map();
        let Some(pass) = self.vacuums.passes.get_mut(&db_id) else {
            return Step::Done;
        };
        if others.is_empty() {
            pass.answered = Some((offered, HashSet::new()));
            return Step::More;
        }
        self.vacuums.next = self.vacuums.next % (REQID_TAG - 1) + 1;
        let reqid = REQID_TAG | self.vacuums.next;
        let data = RecBuffer {
            db_id,
            records: candidates.found,
        }
        .to_bytes();
        for &pnn in &others {
            let packet = self.control_packet(pnn, reqid, Opcode::TryDeleteRecords, &data);
            out.to_client(0, packet);
        }
        if let Some(pass) = self.vacuums.passes.get_mut(&db_id) {
            pass.offer = Some(Offer {
                reqid,
                offered,
                waiting: others.len(),
                kept: HashSet::new(),
                failed: false,
            });
        }
        Step::Waiting
    }

    /// Tells each lmaster which of its records this node holds empty (VACUUM_FETCH,
    /// no reply): it brings them home and deletes them.
    fn send_vacuum_fetches(&self, db_id: u32, lists: BTreeMap<u32, Vec<RecData>>, out: &Outbox) {
        for (lmaster, records) in lists {
            tracing::debug!(db_id, lmaster, records = records.len(), "vacuum fetch");
            let data = RecBuffer { db_id, records }.to_bytes();
            self.send_control_to(out, lmaster, Opcode::VacuumFetch, data);
        }
    }

    /// VACUUM_FETCH from a node holding empty records this node is lmaster of: bring
    /// them home, where the next pass deletes them.
    pub(crate) fn vacuum_fetch(&mut self, data: &[u8], out: &Outbox) -> ControlResult {
        let buffer = RecBuffer::from_bytes(data)?;
        let Some(db) = self.registry.get(buffer.db_id).cloned() else {
            return fail(format!(
                "VACUUM_FETCH: unknown database 0x{:08x}",
                buffer.db_id
            ));
        };
        if !db.is_volatile() {
            return fail(format!("VACUUM_FETCH: {} is not volatile", db.name));
        }
        if self.vacuum_paused() || db.frozen {
            // The sender offers them again at its next pass.
            return done();
        }
        for record in buffer.records {
            if self.vacuums.fetching >= FETCHES_IN_FLIGHT {
                tracing::debug!(db = %db.name, "too many vacuum fetches under way");
                break;
            }
            if self.fetch_home(&db, record.key, out) {
                self.vacuums.fetching += 1;
            }
        }
        done()
    }

    /// `key`'s value if no other process holds its chain (`Ok(None)`: missing;
    /// `Err(None)`: locked, or a wait queued on it).
    pub(crate) fn read_unlocked(
        &self,
        db: &DbInfo,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, Option<String>> {
        let locked = self.lock_record(db.db_id, key).map_err(|()| None)?;
        let value = self.get_value(db, key);
        if locked {
            self.unlock_record(db.db_id, key);
        }
        value.map_err(Some)
    }

    /// The next batch of queued keys still empty, held here with the RSN they were
    /// queued with: those this node is lmaster of to offer, the others to send home.
    fn next_queued(&self, db: &DbInfo, keys: &[(Bytes, u64)]) -> Candidates {
        let mut c = Candidates::default();
        let mut batch_bytes = 0;
        for (key, rsn) in keys {
            c.consumed += 1;
            if let Ok(Some(value)) = self.read_unlocked(db, key) {
                if let Ok((header, data)) = split_record(&value) {
                    let deletable = data.is_empty()
                        && header.dmaster == self.pnn
                        && header.rsn == *rsn
                        && header.flags & REC_RO_FLAGS == 0;
                    if deletable {
                        batch_bytes += key.len() + REC_OVERHEAD;
                        c.add(self.lmaster(key), self.pnn, key, &header);
                    }
                }
            }
            if c.found.len() >= BATCH_RECORDS || batch_bytes >= BATCH_BYTES {
                break;
            }
        }
        c.read_all = c.consumed == keys.len();
        c
    }

    /// The next batch of empty records of `db` this node is dmaster of, read from sled
    /// after `cursor` and checked against the file: those it is lmaster of to offer,
    /// the others to send home.
    fn next_candidates(&self, db: &DbInfo, cursor: Option<Bytes>) -> Result<Candidates, String> {
        let mut c = Candidates::default();
        let mut batch_bytes = 0;
        let mut read = 0;
        let mut last: Option<Bytes> = None;
        let mut stopped = false;
        let mut failed = None;
        self.store
            .scan_after(&db.tree(), cursor.as_deref(), &mut |k, v| {
                read += 1;
                c.records += 1;
                c.bytes += (k.len() + v.len()) as u64;
                last = Some(Bytes::copy_from_slice(k));
                let empty_here = |v: &[u8]| {
                    matches!(split_record(v), Ok((h, data))
                        if data.is_empty() && h.dmaster == self.pnn && h.flags & REC_RO_FLAGS == 0)
                };
                if empty_here(v) {
                    // The file's copy is the current one (a chain a client holds is
                    // left for the next pass).
                    let current = match self.read_unlocked(db, k) {
                        Ok(found) => found,
                        Err(None) => None,
                        Err(Some(e)) => {
                            failed = Some(e);
                            return false;
                        }
                    };
                    if let Some(value) = current.filter(|value| empty_here(value)) {
                        if let Ok((header, _)) = split_record(&value) {
                            batch_bytes += k.len() + REC_OVERHEAD;
                            c.add(self.lmaster(k), self.pnn, k, &header);
                        }
                    }
                }
                stopped = read >= SCAN_PER_SLICE
                    || c.found.len() >= BATCH_RECORDS
                    || batch_bytes >= BATCH_BYTES;
                !stopped
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
        c.read_all = !stopped;
        c.cursor = last;
        Ok(c)
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

    /// A node's answer to a vacuum batch; false when `reqid` is not one. The last
    /// answer lets the pass go on: its batch is deleted here and now and the next one
    /// offered; the rest is left to the vacuuming task.
    pub(crate) fn vacuum_reply(&mut self, reqid: u32, reply: &ReplyControl, out: &Outbox) -> bool {
        let Some((&db_id, pass)) = self
            .vacuums
            .passes
            .iter_mut()
            .find(|(_, p)| p.offer.as_ref().is_some_and(|o| o.reqid == reqid))
        else {
            return false;
        };
        let Some(offer) = pass.offer.as_mut() else {
            return false;
        };
        offer.waiting = offer.waiting.saturating_sub(1);
        match RecBuffer::from_bytes(&reply.data) {
            Ok(kept) if reply.status == 0 => {
                offer.kept.extend(kept.records.into_iter().map(|r| r.key))
            }
            _ => offer.failed = true,
        }
        if offer.waiting > 0 {
            return true;
        }
        let Some(offer) = pass.offer.take() else {
            return true;
        };
        if offer.failed {
            tracing::debug!(db_id, "a node did not take the vacuum batch");
            pass.answered = Some((HashMap::new(), HashSet::new()));
        } else {
            pass.answered = Some((offer.offered, offer.kept));
        }
        // Delete the batch, then read and offer the next (two bounded slices); what
        // is left is the vacuuming task's.
        if self.vacuum_db_slice(db_id, out) == Step::More
            && self.vacuum_db_slice(db_id, out) == Step::More
        {
            if let Some(wake) = &self.vacuum_wake {
                wake.notify_one();
            }
        }
        true
    }

    /// Deletes the offered records no node kept, if they are still the empty copy
    /// offered and held here: from the file one by one under their chain locks, from
    /// sled in one write. Returns how many records and bytes went.
    fn delete_unkept(
        &mut self,
        db: &DbInfo,
        offered: &HashMap<Bytes, u64>,
        kept: &HashSet<Bytes>,
    ) -> (usize, u64) {
        let mut gone = Vec::new();
        let mut bytes = 0u64;
        for (key, &rsn) in offered {
            if kept.contains(key) {
                continue;
            }
            let value = self.get_value(db, key).ok().flatten();
            let still = matches!(
                value.as_deref().map(split_record),
                Some(Ok((h, data))) if data.is_empty() && h.rsn == rsn && h.dmaster == self.pnn
            );
            if !still {
                continue;
            }
            let Ok(locked) = self.lock_record(db.db_id, key) else {
                continue;
            };
            let deleted = match self.files.get(db.db_id) {
                Some(tdb) => tdb.delete(key),
                None => Ok(()),
            };
            if locked {
                self.unlock_record(db.db_id, key);
            }
            match deleted {
                Ok(()) => {
                    bytes += (key.len() + value.map_or(0, |v| v.len())) as u64;
                    gone.push(BatchOp::Delete(key.to_vec()));
                }
                Err(e) => tracing::warn!(db = %db.name, "vacuum cannot delete a record: {e}"),
            }
        }
        let deleted = gone.len();
        if deleted > 0 {
            if let Err(e) = self.store.batch(&db.tree(), gone) {
                // The file's copy is gone: the next sweep or start finds sled's again.
                tracing::warn!(db = %db.name, "vacuum cannot delete records from sled: {e}");
                return (0, 0);
            }
            tracing::debug!(db = %db.name, deleted, "vacuumed");
        }
        (deleted, bytes)
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

    /// The end of a pass: space comes back (see the module's text).
    fn end_pass(&mut self, db: &DbInfo, pass: &Pass) {
        let records = pass.records.saturating_sub(pass.deleted);
        let bytes = pass.bytes.saturating_sub(pass.deleted_bytes);
        if pass.deleted > 0 {
            tracing::info!(
                db = %db.name,
                deleted = pass.deleted,
                records,
                ms = pass.began.elapsed().as_millis() as u64,
                "vacuuming pass done"
            );
        }
        // A fast pass does not know what the file holds: it only repacks.
        let left = matches!(pass.source, Source::Scan).then_some((records, bytes));
        match self.compact_file(db, left) {
            Ok(_) => {}
            Err(e) => tracing::warn!(db = %db.name, "cannot compact the TDB file: {e}"),
        }
        if self.vacuums.deleted_since_rewrite >= self.vacuums.settings.repack_limit {
            match self.compact_store() {
                Ok(true) => self.vacuums.deleted_since_rewrite = 0,
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot rewrite the store: {e}"),
            }
        }
    }

    /// Recreates or repacks `db`'s file if it is worth it (see the module's text);
    /// `left` is the records and bytes a full pass left in it (a file is recreated
    /// only then).
    pub(crate) fn compact_file(
        &mut self,
        db: &DbInfo,
        left: Option<(usize, u64)>,
    ) -> Result<FileCompaction, String> {
        if self.vacuum_paused()
            || db.frozen
            || db.transaction.is_some()
            || self.files.is_locked(db.db_id)
        {
            return Ok(FileCompaction::Nothing);
        }
        let Some(tdb) = self.files.get(db.db_id) else {
            return Ok(FileCompaction::Nothing);
        };
        let size = std::fs::metadata(tdb.path()).map_or(0, |m| m.len());
        let empty = empty_file_size(tdb.hash_size());
        let worth_recreating = left.is_some_and(|(records, bytes)| {
            let needed = 2 * (empty + bytes + (records * REC_OVERHEAD) as u64) + FILE_SLACK;
            size > needed && records <= RECREATE_MAX_RECORDS
        });
        if worth_recreating {
            if let Some(done) = self.recreate_file(db)? {
                let after = self
                    .files
                    .get(db.db_id)
                    .and_then(|t| std::fs::metadata(t.path()).ok())
                    .map_or(0, |m| m.len());
                tracing::info!(db = %db.name, before = size, after, records = done, "TDB file recreated at its smallest");
                return Ok(FileCompaction::Recreated);
            }
        }
        let Some(tdb) = self.files.get(db.db_id) else {
            return Ok(FileCompaction::Nothing);
        };
        let free = tdb.freelist_size().map_err(|e| e.to_string())?;
        if free < self.vacuums.settings.repack_limit
            || !tdb.try_lock_all().map_err(|e| e.to_string())?
        {
            return Ok(FileCompaction::Nothing);
        }
        let began = Instant::now();
        tdb.with_lock_all_released_after(|| tdb.repack())
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        tracing::info!(db = %db.name, free, ms = began.elapsed().as_millis() as u64, "TDB file repacked");
        Ok(FileCompaction::Repacked)
    }

    /// Cuts `db`'s file to an empty one and writes its records back, if no other
    /// process has it open and it holds at most [`RECREATE_MAX_RECORDS`]. Every record
    /// read is in sled before the file is cut. Returns how many were written back, or
    /// `None` when the file was left as it was.
    fn recreate_file(&mut self, db: &DbInfo) -> Result<Option<usize>, String> {
        let Some(tdb) = self.files.close(db.db_id) else {
            return Ok(None);
        };
        let tree = db.tree();
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut failed = None;
        let store = &self.store;
        let recreated = tdb.recreate_if_alone(
            crate::ltdb::HASH_SIZE,
            crate::ltdb::open_flags(db),
            &mut |k, v| {
                if records.len() >= RECREATE_MAX_RECORDS {
                    return false;
                }
                // What a client changed in the file and the sweep has not brought over.
                match store.get(&tree, k) {
                    Ok(Some(stored)) if stored == v => {}
                    Ok(_) => {
                        if let Err(e) = store.put(&tree, k, v) {
                            failed = Some(e.to_string());
                            return false;
                        }
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        return false;
                    }
                }
                records.push((k.to_vec(), v.to_vec()));
                true
            },
        );
        let tdb = match recreated {
            Ok(Ok(fresh)) => fresh,
            Ok(Err(unchanged)) => {
                self.files.reinsert(db.db_id, unchanged);
                return match failed {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            Err(e) => {
                // The file may be cut: open it again, rebuilt from sled.
                let _ = self.open_files(Some(db.db_id));
                return Err(e.to_string());
            }
        };
        let n = records.len();
        let written = tdb.transaction().and_then(|txn| {
            for (k, v) in &records {
                txn.store(k, v)?;
            }
            txn.commit()
        });
        self.files.reinsert(db.db_id, tdb);
        if let Err(e) = written {
            // sled has every record: the next start writes them into the file.
            return Err(e.to_string());
        }
        Ok(Some(n))
    }

    /// Rewrites the store into a fresh copy when it is far larger than its live
    /// entries (see the module's text); true when it did.
    fn compact_store(&mut self) -> Result<bool, String> {
        let size = self.store.size_on_disk().map_err(|e| e.to_string())?;
        if size <= STORE_SLACK {
            return Ok(false);
        }
        let began = Instant::now();
        let Some(live) = self
            .store
            .live_bytes((size / 8).min(STORE_COPY_LIMIT))
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        self.store.flush().map_err(|e| e.to_string())?;
        if !self.store.rewrite().map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let after = self.store.size_on_disk().map_err(|e| e.to_string())?;
        tracing::info!(
            before = size,
            after,
            live,
            ms = began.elapsed().as_millis() as u64,
            "store rewritten"
        );
        Ok(true)
    }
}

/// One slice's read of a database.
#[derive(Default)]
struct Candidates {
    /// Empty records this node is lmaster of.
    found: Vec<RecData>,
    /// Empty records held here for other lmasters, by lmaster.
    fetch: BTreeMap<u32, Vec<RecData>>,
    /// Queued keys looked at.
    consumed: usize,
    /// The last key read.
    cursor: Option<Bytes>,
    read_all: bool,
    records: usize,
    bytes: u64,
}

/// The size of a new TDB file of `hash_size` chains: its header and one offset per
/// chain and for the free list (libtdb's `TDB_DATA_START`).
pub fn empty_file_size(hash_size: u32) -> u64 {
    168 + 4 * (u64::from(hash_size) + 1)
}

/// The size of `path`'s file, 0 when it cannot be read.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl Candidates {
    fn add(&mut self, lmaster: u32, pnn: u32, key: &[u8], header: &LtdbHeader) {
        let record = RecData::with_header(0, key, header, &[]);
        if lmaster == pnn {
            self.found.push(record);
        } else {
            self.fetch.entry(lmaster).or_default().push(record);
        }
    }
}

fn rsn_of(record: &RecData) -> u64 {
    record.header().map_or(0, |(h, _)| h.rsn)
}
