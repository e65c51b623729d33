//! ctdb-db: the databases of one node.
//!
//! [`DbDaemon`] owns the attached databases (records in a [`store::Store`], one tree
//! per database, each value a 24-byte `ctdb_ltdb_header` followed by the data), runs
//! the call protocol, answers the database controls of its one table
//! ([`control::owned_controls`], which it also declares to transport), and keeps the vnn map, generation, recovery mode and
//! frozen state. It is fed the packets transport routes to it through
//! [`ctdb_rpc::component::PacketHandler`].
//!
//! A call on a record another node is dmaster of migrates the record here (see
//! [`call`]): REQ_CALL to the lmaster, on to the dmaster, REQ_DMASTER back to the
//! lmaster, REPLY_DMASTER to the requester, which runs the call.

#![forbid(unsafe_code)]

/// Fault point `$name` (listed in [`control::recovery`]): when a test switched it on,
/// the enclosing function fails with `Err("fault injected at <name>".into())`, or the
/// process aborts for `return(abort)` (see [`ctdb_rpc::faults`]).
macro_rules! fault_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg| Err(ctdb_rpc::faults::fired($name, arg).into()))
    };
}

pub mod call;
pub mod control;
pub mod hash;
pub mod ltdb;
pub mod payload;
pub mod registry;
pub mod store;
pub mod vacuum;

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use ctdb_protocol::flags::{recmode, INVALID_GENERATION};
use ctdb_protocol::packet::{Header, Operation};
use ctdb_protocol::{Body, Packet, ReplyControl, ReplyError};
use ctdb_rpc::component::{Outbox, PacketHandler};
use ctdb_rpc::{Envelope, LatencyCounter, StatisticsPart};

pub use payload::VnnMap;
pub use registry::{DbDirs, DbInfo, DbKind, Registry};
pub use store::{SledStore, Store, StoreError};

/// `from_node` of an envelope that came from this node (a client or a component).
pub const LOCAL: u32 = u32::MAX;

/// Calls held while their database is frozen; beyond this they are refused.
pub const MAX_DEFERRED_CALLS: usize = 10_000;

/// How a [`DbDaemon`] starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub pnn: u32,
    pub dirs: DbDirs,
    /// Samba starts in recovery mode ACTIVE until the first recovery ends; `false`
    /// starts NORMAL (a stand-alone node with no recovery daemon).
    pub start_in_recovery: bool,
}

impl Options {
    pub fn new(pnn: u32, dirs: DbDirs) -> Self {
        Self {
            pnn,
            dirs,
            start_in_recovery: true,
        }
    }
}

/// The call statistics ctdb-db owns (names of `ctdb_statistics` fields).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_calls: u64,
    pub max_hop_count: u64,
    pub client_req_call: u64,
    pub node_req_call: u64,
    pub call_latency: LatencyCounter,
}

/// Where a request came from, and so where its reply goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub client: u64,
    pub from_node: u32,
    pub srcnode: u32,
    pub reqid: u32,
    /// The request's trace id (see `ctdb_rpc::trace`): its answer carries it back.
    pub trace: u64,
}

impl Origin {
    pub fn is_local(&self) -> bool {
        self.from_node == LOCAL
    }
}

/// The database component of one node.
pub struct DbDaemon {
    pnn: u32,
    dirs: DbDirs,
    store: Box<dyn Store>,
    registry: Registry,
    vnn_map: VnnMap,
    recovery_mode: u32,
    /// FREEZE (all databases) until THAW.
    frozen: bool,
    deferred: VecDeque<Envelope>,
    /// Calls of local clients sent to other nodes, by the reqid this node gave them.
    pending: HashMap<u32, call::PendingCall>,
    /// Records being fetched from another node, with the calls waiting for them.
    in_flight: HashMap<(u32, bytes::Bytes), call::InFlight>,
    next_reqid: u32,
    traversals: control::traverse::Traversals,
    commits: control::persistent::Commits,
    stats: Stats,
    debug_level: i32,
    /// The TDB files local clients share (see [`ltdb`]).
    files: ltdb::Files,
    /// Calls waiting for a chain lock a local client holds.
    lock_waits: ltdb::LockWaits,
    lock_wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Where timers (calls that waited for a chain lock, sequence number updates) send
    /// packets: the outbox of the first packet handled.
    outbox: Option<Outbox>,
    /// Databases a client asked for sequence numbers (ENABLE_SEQNUM), with the file's
    /// number last announced to the other nodes.
    seqnums: HashMap<u32, i32>,
    /// The ordered keys of each database a recovery is pulling page by page.
    pull_keys: HashMap<u32, Vec<bytes::Bytes>>,
    /// Where the next sweep of each volatile file starts (records into the file).
    sweep_cursor: HashMap<u32, usize>,
    /// Vacuum passes under way.
    vacuums: vacuum::Vacuums,
    /// Where the daemon rings when a vacuum pass can go on (its batch was answered).
    vacuum_wake: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// DB_DETACHes waiting for the node's tunables (see `control::db`).
    detaches: Vec<control::db::PendingDetach>,
    /// Requests for the node's tunables sent, and answers received (in order).
    tunables_asked: u64,
    tunables_answered: u64,
}

/// The store tree of this node's own state, and its key of the last vnn map set.
pub const NODE_TREE: &str = "ctdb-db/node";
pub const VNNMAP_KEY: &[u8] = b"vnnmap";

/// The vnn map of the last recovery this node took part in, kept across restarts: its
/// generation tells the next recovery's leader whether this node's copies are current
/// (see ctdb-recoverd's `recovery::incumbents`).
fn stored_vnnmap(store: &dyn Store) -> Option<VnnMap> {
    let bytes = store.get(NODE_TREE, VNNMAP_KEY).ok()??;
    match <VnnMap as ctdb_protocol::Wire>::from_bytes(&bytes) {
        Ok(map) if !map.map.is_empty() => Some(map),
        _ => {
            tracing::warn!("ignoring an unreadable stored vnn map");
            None
        }
    }
}

impl DbDaemon {
    /// A daemon over `store`, with the attachments recorded in it.
    pub fn new(store: Box<dyn Store>, options: Options) -> Result<Self, StoreError> {
        let registry = Registry::load(store.as_ref())?;
        let vnn_map = stored_vnnmap(store.as_ref()).unwrap_or(VnnMap {
            generation: INVALID_GENERATION,
            map: vec![options.pnn],
        });
        tracing::info!(
            pnn = options.pnn,
            databases = registry.len(),
            "database component ready"
        );
        let mut daemon = Self {
            pnn: options.pnn,
            dirs: options.dirs,
            store,
            registry,
            vnn_map,
            recovery_mode: if options.start_in_recovery {
                recmode::ACTIVE
            } else {
                recmode::NORMAL
            },
            frozen: false,
            deferred: VecDeque::new(),
            pending: HashMap::new(),
            in_flight: HashMap::new(),
            next_reqid: 1,
            traversals: Default::default(),
            commits: Default::default(),
            stats: Stats::default(),
            debug_level: 0,
            files: ltdb::Files::default(),
            lock_waits: ltdb::LockWaits::default(),
            lock_wake: None,
            outbox: None,
            seqnums: HashMap::new(),
            pull_keys: HashMap::new(),
            sweep_cursor: HashMap::new(),
            vacuums: Default::default(),
            vacuum_wake: None,
            detaches: Vec::new(),
            tunables_asked: 0,
            tunables_answered: 0,
        };
        // A file that cannot be opened is logged; its database is served from sled.
        let _ = daemon.open_files(None);
        Ok(daemon)
    }

    /// A daemon over the sled database at `path` (created if missing).
    pub fn open(path: &Path, options: Options) -> Result<Self, StoreError> {
        Self::new(Box::new(SledStore::open(path)?), options)
    }

    /// Makes every write durable (called on shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush()
    }

    pub fn pnn(&self) -> u32 {
        self.pnn
    }

    pub fn generation(&self) -> u32 {
        self.vnn_map.generation
    }

    pub fn vnn_map(&self) -> &VnnMap {
        &self.vnn_map
    }

    pub fn recovery_mode(&self) -> u32 {
        self.recovery_mode
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn debug_level(&self) -> i32 {
        self.debug_level
    }

    /// Samba's `ctdb_db_all_frozen` for the `frozen` statistic: FREEZE is in force, or
    /// every attached database is frozen by DB_FREEZE (false with no database).
    pub fn all_frozen(&self) -> bool {
        self.frozen || (!self.registry.is_empty() && self.registry.iter().all(|d| d.frozen))
    }

    /// Calls waiting for a thaw.
    pub fn pending_calls(&self) -> usize {
        self.deferred.len()
    }

    /// Calls of local clients waiting for another node (a migration or a reply).
    pub fn remote_calls(&self) -> usize {
        self.pending.len()
    }

    /// Persistent commits not answered yet.
    pub fn commits_in_progress(&self) -> usize {
        self.commits.in_progress()
    }

    /// Traverses this node runs for its clients.
    pub fn traversals(&self) -> usize {
        self.traversals.len()
    }

    /// Encodes a reply to `origin` and hands it to transport. Replies to a local client
    /// carry destnode 0 (as Samba's do); replies to a node go back to its srcnode.
    pub(crate) fn send(&self, out: &Outbox, origin: &Origin, body: Body) {
        let to_client = origin.is_local() && origin.client != 0;
        let packet = Packet {
            generation: self.vnn_map.generation,
            destnode: if to_client { 0 } else { origin.srcnode },
            srcnode: self.pnn,
            reqid: origin.reqid,
            body,
        };
        let trace = match origin.trace {
            0 => ctdb_rpc::trace::current(),
            trace => trace,
        };
        out.to_client_traced(
            if to_client { origin.client } else { 0 },
            trace,
            packet.to_bytes(),
        );
    }

    pub(crate) fn send_call_error(&self, out: &Outbox, origin: &Origin, msg: &str) {
        self.send(
            out,
            origin,
            Body::ReplyError(ReplyError::new(u32::MAX, msg)),
        );
    }

    pub(crate) fn send_control_error(&self, out: &Outbox, origin: &Origin, msg: &str) {
        self.send(
            out,
            origin,
            Body::ReplyControl(ReplyControl::error(-1, msg)),
        );
    }

    /// A packet that did not decode: log it, and answer it if it is a request with a
    /// reply whose header can still be read.
    fn refuse(&mut self, envelope: &Envelope, error: ctdb_protocol::DecodeError, out: &Outbox) {
        tracing::warn!(
            client = envelope.client,
            from_node = envelope.from_node,
            len = envelope.packet.len(),
            %error,
            "dropping a packet that does not decode"
        );
        let Ok(header) = Header::parse(&envelope.packet, u32::MAX) else {
            return;
        };
        let origin = Origin {
            client: envelope.client,
            from_node: envelope.from_node,
            srcnode: header.srcnode,
            reqid: header.reqid,
            trace: envelope.trace,
        };
        let msg = format!("malformed packet: {error}");
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqCall) => self.send_call_error(out, &origin, &msg),
            Some(Operation::ReqControl) => {
                // Honour NOREPLY when the flags word is there.
                let flags = ctdb_protocol::packet::raw_control_flags(&envelope.packet).unwrap_or(0);
                if flags & ctdb_protocol::flags::control::NOREPLY == 0 {
                    self.send_control_error(out, &origin, &msg);
                }
            }
            _ => {}
        }
    }

    /// Hands a decoded packet to the code of its operation.
    fn dispatch(
        &mut self,
        origin: Origin,
        generation: u32,
        body: Body,
        envelope: Envelope,
        out: &Outbox,
    ) {
        match body {
            Body::ReqCall(c) => self.req_call(origin, generation, c, envelope, out),
            Body::ReqControl(c) => self.req_control(origin, c, envelope, out),
            Body::ReplyControl(r) if !origin.is_local() => {
                if !self.tunables_reply(origin.reqid, &r, out)
                    && !self.vacuum_reply(origin.reqid, &r, out)
                    && !self.commit_reply(origin.reqid, r, out)
                {
                    tracing::debug!(reqid = origin.reqid, "control reply for nothing waiting");
                }
            }
            Body::ReqDmaster(c) => self.req_dmaster(origin, generation, c, envelope, out),
            Body::ReplyDmaster(c) => self.reply_dmaster(origin, generation, c, envelope, out),
            body @ (Body::ReplyCall(_) | Body::ReplyError(_)) if !origin.is_local() => {
                self.node_reply(origin, generation, body, out)
            }
            other => tracing::debug!(
                operation = other.operation().name(),
                from_node = envelope.from_node,
                "ignoring a packet ctdb-db does not handle yet"
            ),
        }
    }

    /// Parks a packet whose record's chain a local client holds; it runs when the lock
    /// is free (see [`retry_lock_waits`](Self::retry_lock_waits)).
    fn wait_for_lock(
        &mut self,
        db_id: u32,
        key: bytes::Bytes,
        envelope: Envelope,
        origin: Origin,
        out: &Outbox,
    ) {
        if self.lock_waits.len() >= ltdb::MAX_LOCK_WAITS {
            let msg = "too many calls wait for records local clients hold locked";
            tracing::warn!(db_id, "{msg}");
            return self.send_call_error(out, &origin, msg);
        }
        self.lock_waits.push(db_id, key, envelope);
        if let Some(wake) = &self.lock_wake {
            wake.notify_one();
        }
    }

    /// Runs the calls that waited for a thaw (those still frozen wait again).
    pub(crate) fn replay_deferred(&mut self, out: &Outbox) {
        let waiting = std::mem::take(&mut self.deferred);
        for envelope in waiting {
            self.handle(envelope, out);
        }
    }
}

impl PacketHandler for DbDaemon {
    fn ownership(&self) -> ctdb_rpc::Ownership {
        control::CONTROLS.ownership()
    }

    /// What transport follows (`WatchState`): the generation of the vnn map, the
    /// recovery mode, frozen or not.
    fn state(&self) -> Option<ctdb_rpc::ComponentState> {
        Some(ctdb_rpc::ComponentState {
            generation: self.vnn_map.generation,
            recovery_mode: self.recovery_mode,
            frozen: self.frozen,
        })
    }

    fn handle(&mut self, envelope: Envelope, out: &Outbox) {
        if self.outbox.is_none() {
            self.outbox = Some(out.clone());
        }
        let packet = match Packet::from_slice(&envelope.packet) {
            Ok(p) => p,
            Err(e) => return self.refuse(&envelope, e, out),
        };
        let origin = Origin {
            client: envelope.client,
            from_node: envelope.from_node,
            srcnode: packet.srcnode,
            reqid: packet.reqid,
            trace: envelope.trace,
        };
        let generation = packet.generation;
        // A call or migration works on one record: hold its chain lock meanwhile, or
        // wait while a local client holds it.
        let record = match &packet.body {
            Body::ReqCall(c) => Some((c.db_id, c.key.clone())),
            Body::ReqDmaster(c) => Some((c.db_id, c.key.clone())),
            Body::ReplyDmaster(c) => Some((c.db_id, c.key.clone())),
            _ => None,
        };
        // One span per request, under the trace id transport gave it and logs in its
        // own span, so that the two sides of the hop line up; the id is current while
        // the packet is handled (a call run again later from a queue included), so
        // what is sent meanwhile carries it back.
        let _span = tracing::debug_span!(
            "request",
            trace = %ctdb_rpc::trace::TraceId(envelope.trace),
            op = %packet.body.operation().name(),
            reqid = packet.reqid,
            client = envelope.client,
            from_node = envelope.from_node,
            db_id = record.as_ref().map(|(id, _)| *id),
        )
        .entered();
        let _trace = ctdb_rpc::trace::enter(envelope.trace);
        tracing::trace!("from transport");
        let mut locked = None;
        if let Some((db_id, key)) = record {
            match self.lock_record(db_id, &key) {
                Ok(true) => locked = Some((db_id, key)),
                Ok(false) => {}
                Err(()) => return self.wait_for_lock(db_id, key, envelope, origin, out),
            }
        }
        self.dispatch(origin, generation, packet.body, envelope, out);
        if let Some((db_id, key)) = locked {
            self.unlock_record(db_id, &key);
        }
    }

    fn statistics(&self) -> StatisticsPart {
        let s = &self.stats;
        let mut part = StatisticsPart::default();
        for (name, value) in [
            ("total_calls", s.total_calls),
            (
                "pending_calls",
                (self.deferred.len() + self.pending.len()) as u64,
            ),
            ("max_hop_count", s.max_hop_count),
            ("client.req_call", s.client_req_call),
            ("node.req_call", s.node_req_call),
            ("frozen", u64::from(self.all_frozen())),
            (
                "recovering",
                u64::from(self.recovery_mode == recmode::ACTIVE),
            ),
        ] {
            part.counters.insert(name.to_string(), value);
        }
        part.latencies
            .insert("call_latency".to_string(), s.call_latency);
        part
    }

    fn reset_statistics(&mut self) {
        self.stats = Stats::default();
    }

    fn set_debug(&mut self, level: i32) {
        self.debug_level = level;
    }
}

#[cfg(test)]
mod tests;

/// Opens this node's databases as its configuration says: one sled database in the
/// state directory, the directories Samba's paths name. From here on the process
/// creates its files 0600 (sled's files, TDB files: see
/// `ctdb_common::secure::private_files`).
pub fn open_from_config(config: &ctdb_common::Config) -> Result<DbDaemon, String> {
    ctdb_common::secure::private_files();
    let pnn = config.pnn().map_err(|e| e.to_string())?;
    let dirs = DbDirs {
        volatile: config.database.volatile_dir.clone(),
        persistent: config.database.persistent_dir.clone(),
        state: config.database.state_dir.clone(),
    };
    let state = &config.database.state_dir;
    ctdb_common::secure::ensure_dir(state, 0o700).map_err(|e| e.to_string())?;
    let sled_path = state.join("ctdb-rs.sled");
    let mut daemon = DbDaemon::open(&sled_path, Options::new(pnn, dirs))
        .map_err(|e| format!("cannot open {}: {e}", sled_path.display()))?;
    // As Samba's ctdbd: start frozen and let the first recovery thaw. Until then this
    // node's copies and vnn map may be stale (it was down, or cut off, while the others
    // went on): a call served from them, or a commit coordinated from a stale vnn map
    // (UPDATE_RECORD skips what the others hold newer, yet answers yes), could be
    // acknowledged without reaching every node.
    let _ = daemon.freeze();
    Ok(daemon)
}
