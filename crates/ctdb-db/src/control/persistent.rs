//! Persistent databases: TRANS3_COMMIT and UPDATE_RECORD.
//!
//! A client commits a transaction as Samba's clients do: one TRANS3_COMMIT to its own
//! node carrying every record it wrote (each with the RSN it read plus one) and the
//! `__db_sequence_number__` record. One node of the vnn map coordinates the commits of
//! each database (`vnn_map[db_id % size]`); any other node passes its clients' commits
//! to it and their answers back.
//!
//! The coordinator runs commits in rounds, one round per database at a time. A round
//! takes every commit queued since the last one, refuses those with a record whose RSN
//! is not above the stored one (or one an earlier commit of the round wrote): status
//! [`TRANS3_CONFLICT`], nothing of it applied, the client may run its transaction
//! again. The sequence number record is not checked but numbered here: each commit
//! that carries it gets the next number, so commits that share nothing else do not
//! conflict over it (Samba's clients serialise all of them with a lock instead). The rest become one UPDATE_RECORD to every node of the vnn map, itself
//! included; each node writes the records and flushes sled before it answers. The
//! coordinator writes its own copy last, once every other node has answered yes; then
//! each commit of the round is answered: several clients committing together share one
//! flush per node (group commit).
//!
//! A node that cannot be reached fails the round's commits (-1). Nodes that did apply
//! it keep it, and the recovery that follows takes the copy with the highest
//! `__db_sequence_number__` whole, as Samba's does, so the commit ends up on every node
//! or on none. A round that failed within its generation asks for that recovery (the
//! coordinator's node enters recovery mode; the leader sees it): without one, the nodes
//! that applied it and those that did not would stay different. A round cut short by a
//! recovery (a node already in another generation refused it, or this node moved on)
//! does not: that recovery makes the copies the same, or the leader sees the
//! generations differ; asking again would start a loop of recoveries under steady
//! commits. The
//! coordinator's own copy is never among those: a coordinator cut off from the others
//! (a minority after a partition) never gets ahead of the majority with a commit it
//! could not acknowledge, which the recovery after the heal would otherwise prefer.
//!
//! A commit belongs to the generation it arrived in. A recovery in between (a new
//! generation: nodes gone or back, copies replaced) fails it (-1, run it again): a
//! commit queued before it, one passed on by a node in another generation, and a round
//! under way, whose UPDATE_RECORDs went to the old vnn map's nodes only and may still
//! wait, held, in a frozen node — an UPDATE_RECORD from another generation is refused,
//! never applied after the recovery that replaced the copy it was meant for.
//! Acknowledging such a round would leave the commit off a node that joined meanwhile,
//! and the next recovery might take that node's copy.
//!
//! UPDATE_RECORD writes a record only when its RSN is above the stored one: a volatile
//! record with a lower RSN is refused as Samba refuses it; for a persistent database a
//! late copy (held over a recovery) is skipped, so it never overwrites newer data.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use ctdb_protocol::control::{RecBuffer, RecData};
use ctdb_protocol::flags::TRANS3_CONFLICT;
use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::{Body, LtdbHeader, Opcode, Packet, ReplyControl, ReqControl, Wire};
use ctdb_rpc::component::Outbox;

use super::{done, fail, ControlResult};
use crate::store::BatchOp;
use crate::{DbDaemon, Origin};

/// Commits in progress, at the node a client asked and at the coordinator.
#[derive(Debug, Default)]
pub struct Commits {
    /// Local clients' commits sent to the coordinator, by the reqid we gave them.
    forwarded: HashMap<u32, Origin>,
    /// At the coordinator: commits waiting for their database's next round.
    queued: HashMap<u32, VecDeque<Queued>>,
    /// At the coordinator: the round in flight of each database.
    rounds: HashMap<u32, Round>,
    /// UPDATE_RECORDs of a round waiting for their answer: reqid -> db_id.
    updates: HashMap<u32, u32>,
    next_reqid: u32,
}

impl Commits {
    /// Commits not answered yet.
    pub fn in_progress(&self) -> usize {
        self.forwarded.len()
            + self.queued.values().map(VecDeque::len).sum::<usize>()
            + self.rounds.values().map(|r| r.origins.len()).sum::<usize>()
    }

    fn alloc_reqid(&mut self) -> u32 {
        loop {
            self.next_reqid = self.next_reqid.wrapping_add(1);
            let r = self.next_reqid;
            if r != 0 && !self.forwarded.contains_key(&r) && !self.updates.contains_key(&r) {
                return r;
            }
        }
    }
}

#[derive(Debug)]
struct Queued {
    origin: Origin,
    records: Vec<RecData>,
    /// The generation it arrived in.
    generation: u32,
}

#[derive(Debug)]
struct Round {
    origins: Vec<Origin>,
    waiting: usize,
    failure: Option<String>,
    /// The coordinator's own update (UPDATE_RECORD data), sent once the others
    /// applied theirs.
    own: Option<Vec<u8>>,
    /// The generation it started in: it fails if a recovery ends that one.
    generation: u32,
    /// A node failed to apply it within this generation: the copies may differ until
    /// a recovery.
    copies_differ: bool,
}

/// UPDATE_RECORD's status when it comes from a round of another generation (between
/// ctdb-rs nodes; any non-zero status is a failure to Samba's coordinator).
const OTHER_GENERATION: i32 = -2;

/// `record` (a sequence number record) with the RSN and value the round gives it; the
/// rest of its header as the client sent it.
fn numbered(record: &RecData, (rsn, value): (u64, u64)) -> RecData {
    let header = split_record(&record.data).map_or_else(|_| LtdbHeader::default(), |(h, _)| h);
    RecData::with_header(
        record.reqid,
        &record.key,
        &LtdbHeader { rsn, ..header },
        &value.to_le_bytes(),
    )
}

/// The RSN in a record's ltdb header, or why it has none.
fn rsn_of(record: &RecData) -> Result<u64, String> {
    split_record(&record.data)
        .map(|(header, _)| header.rsn)
        .map_err(|_| "a record of the commit has no ltdb header".to_string())
}

impl DbDaemon {
    /// The node that coordinates commits to `db_id` in the current vnn map.
    pub fn coordinator(&self, db_id: u32) -> u32 {
        let map = &self.vnn_map.map;
        if map.is_empty() {
            return self.pnn;
        }
        map[db_id as usize % map.len()]
    }

    /// The persistent database a commit or update names, or why it cannot be one.
    fn commit_target(&self, data: &[u8]) -> Result<RecBuffer, super::ControlError> {
        let buffer = RecBuffer::from_bytes(data)?;
        match self.registry.get(buffer.db_id) {
            None => fail(format!("unknown database 0x{:08x}", buffer.db_id)),
            Some(db) if db.is_volatile() => fail(format!(
                "{} is not persistent: transactions are for persistent databases",
                db.name
            )),
            Some(_) => Ok(buffer),
        }
    }

    /// TRANS3_COMMIT from a client, or from a node passing its client's commit on (in
    /// its `generation`). Answers later (or now when it fails at once).
    pub(crate) fn trans3_commit(
        &mut self,
        origin: Origin,
        generation: u32,
        data: &[u8],
        out: &Outbox,
    ) {
        let buffer = match self.commit_target(data) {
            Ok(b) if b.records.is_empty() => {
                return self.send_control_error(out, &origin, "empty commit");
            }
            Ok(b) => b,
            Err(e) => return self.send_control_error(out, &origin, &e.0),
        };
        let coordinator = self.coordinator(buffer.db_id);
        if !origin.is_local() && generation != self.vnn_map.generation {
            let msg = format!(
                "a commit passed on in generation {generation}, node {} is in generation {}",
                self.pnn, self.vnn_map.generation
            );
            return self.send_control_error(out, &origin, &msg);
        }
        if coordinator != self.pnn {
            if !origin.is_local() {
                let msg = format!(
                    "node {} does not coordinate 0x{:08x} in generation {}",
                    self.pnn, buffer.db_id, self.vnn_map.generation
                );
                return self.send_control_error(out, &origin, &msg);
            }
            let reqid = self.commits.alloc_reqid();
            self.commits.forwarded.insert(reqid, origin);
            let packet = self.control_packet(coordinator, reqid, Opcode::Trans3Commit, data);
            out.to_client(0, packet);
            return;
        }
        let db_id = buffer.db_id;
        self.commits
            .queued
            .entry(db_id)
            .or_default()
            .push_back(Queued {
                origin,
                records: buffer.records,
                generation: self.vnn_map.generation,
            });
        if !self.commits.rounds.contains_key(&db_id) {
            self.start_round(db_id, out);
        }
    }

    /// Starts the next round of commits to `db_id` (at the coordinator).
    fn start_round(&mut self, db_id: u32, out: &Outbox) {
        let Some(db) = self.registry.get(db_id).cloned() else {
            return;
        };
        let queued = self.commits.queued.remove(&db_id).unwrap_or_default();
        let seqnum_key = Bytes::from(super::db::seqnum_key());
        let mut written: HashMap<Bytes, u64> = HashMap::new();
        let mut merged: BTreeMap<Bytes, RecData> = BTreeMap::new();
        let mut origins = Vec::new();
        // The sequence number record as the round leaves it: (rsn, value).
        let mut seqnum: Option<(u64, u64)> = None;
        for mut commit in queued {
            if commit.generation != self.vnn_map.generation {
                let msg = format!(
                    "a recovery ran while the commit waited (generation {} is now {})",
                    commit.generation, self.vnn_map.generation
                );
                let reply = ReplyControl::error(-1, &msg);
                self.send(out, &commit.origin, Body::ReplyControl(reply));
                continue;
            }
            let checked: Vec<RecData> = commit
                .records
                .iter()
                .filter(|r| r.key != seqnum_key)
                .cloned()
                .collect();
            if let Err((status, msg)) = self.validate(&db, &checked, &written) {
                tracing::debug!(db = %db.name, "commit refused: {msg}");
                let reply = ReplyControl::error(status, &msg);
                self.send(out, &commit.origin, Body::ReplyControl(reply));
                continue;
            }
            for r in &mut commit.records {
                if r.key == seqnum_key {
                    let (rsn, value) = match seqnum {
                        Some(s) => s,
                        None => self.stored_seqnum(&db, &seqnum_key),
                    };
                    let next = (rsn.saturating_add(1), value.saturating_add(1));
                    *r = numbered(r, next);
                    seqnum = Some(next);
                }
            }
            for r in commit.records {
                if let Ok(rsn) = rsn_of(&r) {
                    written.insert(r.key.clone(), rsn);
                }
                merged.insert(r.key.clone(), RecData { reqid: 0, ..r });
            }
            origins.push(commit.origin);
        }
        if origins.is_empty() {
            return;
        }
        let update = RecBuffer {
            db_id,
            records: merged.into_values().collect(),
        }
        .to_bytes();
        let others: Vec<u32> = self.others_in_map();
        tracing::debug!(db = %db.name, commits = origins.len(), ?others, "commit round");
        let own = update.clone();
        self.commits.rounds.insert(
            db_id,
            Round {
                origins,
                waiting: others.len(),
                failure: None,
                own: Some(own),
                generation: self.vnn_map.generation,
                copies_differ: false,
            },
        );
        if others.is_empty() {
            self.send_own_update(db_id, out);
        }
        for pnn in others {
            let reqid = self.commits.alloc_reqid();
            self.commits.updates.insert(reqid, db_id);
            let packet = self.control_packet(pnn, reqid, Opcode::UpdateRecord, &update);
            out.to_client(0, packet);
        }
    }

    /// The coordinator's own UPDATE_RECORD of a round, through transport like the
    /// others' (so that it is answered like theirs).
    fn send_own_update(&mut self, db_id: u32, out: &Outbox) {
        let reqid = self.commits.alloc_reqid();
        let Some(round) = self.commits.rounds.get_mut(&db_id) else {
            return;
        };
        let Some(update) = round.own.take() else {
            return;
        };
        round.waiting += 1;
        self.commits.updates.insert(reqid, db_id);
        let packet = self.control_packet(self.pnn, reqid, Opcode::UpdateRecord, &update);
        out.to_client(0, packet);
    }

    /// Whether a commit may be applied: each record's RSN above the stored one and any
    /// an earlier commit of the round wrote.
    fn validate(
        &self,
        db: &crate::DbInfo,
        records: &[RecData],
        written: &HashMap<Bytes, u64>,
    ) -> Result<(), (i32, String)> {
        for r in records {
            let rsn = rsn_of(r).map_err(|m| (-1, m))?;
            let current = match written.get(&r.key) {
                Some(&rsn) => rsn,
                None => {
                    let stored = self.fetch_record(db, &r.key).map_err(|m| (-1, m))?;
                    if stored.exists {
                        stored.header.rsn
                    } else {
                        0
                    }
                }
            };
            if rsn <= current {
                return Err((
                    TRANS3_CONFLICT,
                    format!(
                        "record {:?} of {} changed since it was read (rsn {rsn} <= {current})",
                        String::from_utf8_lossy(&r.key),
                        db.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The stored sequence number record of `db`: (rsn, value), zeros without one.
    fn stored_seqnum(&self, db: &crate::DbInfo, key: &[u8]) -> (u64, u64) {
        match self.fetch_record(db, key) {
            Ok(r) if r.exists => {
                let value = <[u8; 8]>::try_from(r.data.as_slice()).map_or(0, u64::from_le_bytes);
                (r.header.rsn, value)
            }
            _ => (0, 0),
        }
    }

    /// UPDATE_RECORD: write the records whose RSN is above the stored one, durably. One
    /// from a node (a commit round's) must be of this node's generation: a round of
    /// another has already failed or will (see the module's notes).
    pub(crate) fn update_record(
        &mut self,
        origin: &Origin,
        generation: u32,
        data: &[u8],
    ) -> ControlResult {
        if !origin.is_local() && generation != self.vnn_map.generation {
            tracing::info!(
                generation,
                current = self.vnn_map.generation,
                "UPDATE_RECORD of another generation refused"
            );
            return Ok((OTHER_GENERATION, Vec::new()));
        }
        let buffer = RecBuffer::from_bytes(data)?;
        let Some(db) = self.registry.get(buffer.db_id).cloned() else {
            return fail(format!("unknown database 0x{:08x}", buffer.db_id));
        };
        let mut ops = Vec::with_capacity(buffer.records.len());
        for r in &buffer.records {
            let rsn = rsn_of(r)?;
            let stored = self.fetch_record(&db, &r.key)?;
            if stored.exists && rsn <= stored.header.rsn {
                if db.is_volatile() {
                    return fail(format!(
                        "existing header has larger RSN ({} >= {rsn})",
                        stored.header.rsn
                    ));
                }
                continue;
            }
            ops.push(BatchOp::Put(r.key.to_vec(), r.data.to_vec()));
        }
        self.apply_batch(&db, ops, !db.is_volatile())?;
        done()
    }

    /// A REPLY_CONTROL from another node for a control this component sent; false when
    /// it is not one of ours.
    pub(crate) fn commit_reply(&mut self, reqid: u32, reply: ReplyControl, out: &Outbox) -> bool {
        if let Some(origin) = self.commits.forwarded.remove(&reqid) {
            self.send(out, &origin, Body::ReplyControl(reply));
            return true;
        }
        let Some(db_id) = self.commits.updates.remove(&reqid) else {
            return false;
        };
        let Some(round) = self.commits.rounds.get_mut(&db_id) else {
            return true;
        };
        round.waiting = round.waiting.saturating_sub(1);
        if reply.status == OTHER_GENERATION {
            // A recovery has moved that node on (or left it behind): the recovery that
            // did makes every copy the same, or the leader sees the generations differ.
            round.failure.get_or_insert_with(|| {
                "a node refused it: it is in another generation (a recovery ran)".into()
            });
        } else if reply.status != 0 {
            let why = reply
                .error_message()
                .unwrap_or_else(|| format!("status {}", reply.status));
            round.failure = Some(format!("the commit did not reach every node: {why}"));
            round.copies_differ = true;
        }
        if round.waiting > 0 {
            return true;
        }
        if round.failure.is_none() && round.generation != self.vnn_map.generation {
            round.failure = Some(format!(
                "a recovery ran during the commit (generation {} is now {})",
                round.generation, self.vnn_map.generation
            ));
        }
        if round.failure.is_none() && round.own.is_some() {
            self.send_own_update(db_id, out);
            return true;
        }
        if let Some(round) = self.commits.rounds.remove(&db_id) {
            match &round.failure {
                // Some nodes may hold the commit and others not, in one generation: a
                // recovery makes every copy the same again (the highest sequence number
                // wins, whole).
                Some(why) if round.copies_differ => {
                    tracing::warn!(
                        db_id = format_args!("0x{db_id:08x}"),
                        "commit round failed ({why}): asking for a recovery"
                    );
                    self.recovery_mode = ctdb_protocol::flags::recmode::ACTIVE;
                }
                // A recovery already ran (or runs) across this round: asking for one
                // more would only start a loop of recoveries under steady commits.
                Some(why) => tracing::info!(
                    db_id = format_args!("0x{db_id:08x}"),
                    "commit round failed ({why}); the client runs it again"
                ),
                None => {}
            }
            for origin in round.origins {
                let body = match &round.failure {
                    None => Body::ReplyControl(ReplyControl {
                        status: 0,
                        data: Bytes::new(),
                        errmsg: Bytes::new(),
                    }),
                    Some(msg) => Body::ReplyControl(ReplyControl::error(-1, msg)),
                };
                self.send(out, &origin, body);
            }
        }
        if self.commits.queued.contains_key(&db_id) {
            self.start_round(db_id, out);
        }
        true
    }

    /// A control to node `pnn` whose reply comes back to this component under `reqid`.
    pub(crate) fn control_packet(
        &self,
        pnn: u32,
        reqid: u32,
        opcode: Opcode,
        data: &[u8],
    ) -> Vec<u8> {
        Packet {
            generation: self.vnn_map.generation,
            destnode: pnn,
            srcnode: self.pnn,
            reqid,
            body: Body::ReqControl(ReqControl {
                opcode,
                srvid: 0,
                client_id: 0,
                flags: 0,
                data: Bytes::copy_from_slice(data),
            }),
        }
        .to_bytes()
    }
}
