//! REQ_CALL: run a call function on a record, migrating it here first when another
//! node is its dmaster.
//!
//! As Samba's `ctdb_call_local` followed by `ctdb_ltdb_store_server`: the call sees the
//! record's current header (a missing record gets an initial header: rsn 0, dmaster =
//! lmaster, flags AUTOMATIC), and the record is stored back afterwards; a volatile
//! record whose dmaster is this node and that has no read-only delegations gets
//! `rsn + 1` on every call. Unlike Samba, a read of a record that does not exist
//! stores nothing, and nothing is queued for an empty record (Samba stores one for
//! every key read and schedules each for deletion: its memory grows with every fetch).
//!
//! Migration, as Samba's `ctdb_call.c`: a call for a record held elsewhere goes to the
//! key's lmaster (REQ_CALL), which sends it on to the dmaster it has on record; the
//! dmaster keeps a copy naming the new dmaster and sends REQ_DMASTER to the lmaster,
//! which records the new dmaster and sends it the record (REPLY_DMASTER); the new
//! dmaster stores it with a higher RSN and runs the call. A dmaster that is also the
//! lmaster sends REPLY_DMASTER itself.
//!
//! A forwarded REQ_CALL keeps the asker's srcnode and reqid, as CTDB's does: the lmaster
//! sends it on to the dmaster it has on record (hopcount + 1) and keeps nothing of it;
//! the dmaster migrates the record straight to the asker (REQ_DMASTER to the lmaster,
//! which sends REPLY_DMASTER to the asker under the asker's reqid) and answers errors
//! to the asker directly. A call whose lmaster is a third node so costs four node
//! packets (asker → lmaster → dmaster → lmaster → asker) and the lmaster stores the
//! record once (it names the new dmaster), never holding it itself on the way.
//!
//! Calls for a record on its way here wait behind it and run in arrival order when it
//! comes (a local client's at any node, and another node's at the lmaster when the
//! record is on its way to the lmaster's own client). A node the lmaster sent a call to
//! but that no longer holds the record returns it to the lmaster, which learnt where it
//! went first (the REQ_DMASTER came on the same link before it). Node packets of
//! another generation are dropped; a new vnn map runs the local clients' calls sent on
//! in the old one again.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use ctdb_protocol::flags::call as callid;
use ctdb_protocol::ltdb::{
    split_record, REC_FLAG_AUTOMATIC, REC_FLAG_MIGRATED_WITH_DATA, REC_FLAG_VACUUM_MIGRATED,
    REC_RO_HAVE_DELEGATIONS, REC_RO_HAVE_READONLY, REC_RO_REVOKE_COMPLETE,
    REC_RO_REVOKING_READONLY,
};
use ctdb_protocol::{
    Body, LtdbHeader, Packet, ReplyCall, ReplyDmaster, ReplyError, ReqCall, ReqDmaster, Wire,
};
use ctdb_rpc::component::PacketHandler;
use ctdb_rpc::component::{record_latency, Outbox};
use ctdb_rpc::Envelope;

use crate::hash::ctdb_hash;
use crate::registry::DbInfo;
use crate::{DbDaemon, Origin, LOCAL, MAX_DEFERRED_CALLS};

pub(crate) const REC_RO_FLAGS: u32 = REC_RO_HAVE_DELEGATIONS
    | REC_RO_HAVE_READONLY
    | REC_RO_REVOKING_READONLY
    | REC_RO_REVOKE_COMPLETE;

/// A record as a call function sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub header: LtdbHeader,
    pub data: Vec<u8>,
    /// False when the record was not in the database (an initial header).
    pub exists: bool,
}

/// The value stored for a record: the 24-byte header, then the data.
pub fn encode_record(header: &LtdbHeader, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(LtdbHeader::SIZE + data.len());
    header.encode(&mut value);
    value.extend_from_slice(data);
    value
}

/// What a call function did: the REPLY_CALL to send, and whether it changed the data.
struct CallOutcome {
    reply: ReplyCall,
    changed: bool,
}

/// Runs call function `id` on `record` with `calldata`, or says why it cannot.
fn run_call_function(id: u32, record: &mut Record, calldata: &[u8]) -> Result<CallOutcome, String> {
    let reply = |data: Bytes| ReplyCall { status: 0, data };
    let unchanged = |r: ReplyCall| {
        Ok(CallOutcome {
            reply: r,
            changed: false,
        })
    };
    match id {
        callid::NULL_FUNC => unchanged(reply(Bytes::new())),
        callid::FETCH_FUNC => unchanged(reply(Bytes::copy_from_slice(&record.data))),
        callid::FETCH_WITH_HEADER_FUNC => unchanged(reply(Bytes::from(encode_record(
            &record.header,
            &record.data,
        )))),
        callid::COMPARE_STORE_FUNC => {
            let (expected, new) = parse_compare_store(calldata)?;
            if expected.is_some_and(|e| e != record.data.as_slice()) {
                return unchanged(ReplyCall {
                    status: callid::COMPARE_MISMATCH,
                    data: Bytes::copy_from_slice(&record.data),
                });
            }
            record.data = new.to_vec();
            Ok(CallOutcome {
                reply: reply(Bytes::copy_from_slice(new)),
                changed: true,
            })
        }
        other => Err(format!("Unknown call id 0x{other:08x}")),
    }
}

/// Splits COMPARE_STORE_FUNC call data into the expected data (none: store anyway)
/// and the new data.
fn parse_compare_store(calldata: &[u8]) -> Result<(Option<&[u8]>, &[u8]), String> {
    let Some((len, rest)) = calldata.split_first_chunk::<4>() else {
        return Err("compare-store call data shorter than its length word".into());
    };
    let len = u32::from_le_bytes(*len);
    if len == callid::STORE_ANYWAY {
        return Ok((None, rest));
    }
    match rest.split_at_checked(len as usize) {
        Some((expected, new)) => Ok((Some(expected), new)),
        None => Err(format!(
            "compare-store expects {len} bytes but carries {}",
            rest.len()
        )),
    }
}

impl DbDaemon {
    /// The lmaster of `key`: `vnn_map[hash % size]`, as Samba's `ctdb_lmaster`.
    pub fn lmaster(&self, key: &[u8]) -> u32 {
        let map = &self.vnn_map.map;
        if map.is_empty() {
            return self.pnn;
        }
        map[(ctdb_hash(key) as usize) % map.len()]
    }

    /// The other nodes of the vnn map (those a round or a vacuum batch goes to).
    pub(crate) fn others_in_map(&self) -> Vec<u32> {
        let me = self.pnn;
        self.vnn_map
            .map
            .iter()
            .copied()
            .filter(|&p| p != me)
            .collect()
    }

    /// Reads a record, or the initial header Samba gives a missing one.
    pub fn fetch_record(&self, db: &DbInfo, key: &[u8]) -> Result<Record, String> {
        if let Some(value) = self.get_value(db, key)? {
            if let Ok((header, data)) = split_record(&value) {
                return Ok(Record {
                    header,
                    data: data.to_vec(),
                    exists: true,
                });
            }
            tracing::warn!(db = %db.name, "record shorter than its header; treating as missing");
        }
        let lmaster = self.lmaster(key);
        Ok(Record {
            header: LtdbHeader {
                // Samba stores a missing volatile record at its lmaster before the call
                // runs, and every store there bumps the RSN: count as if it had, so
                // RSNs stay Samba's (we store nothing for a read, unlike Samba).
                rsn: u64::from(db.is_volatile() && lmaster == self.pnn),
                dmaster: lmaster,
                reserved1: 0,
                flags: REC_FLAG_AUTOMATIC,
            },
            data: Vec::new(),
            exists: false,
        })
    }

    /// Stores `record` back after a call, as `ctdb_ltdb_store_server` does; returns
    /// the header stored, if it stored one.
    fn store_after_call(
        &self,
        db: &DbInfo,
        key: &[u8],
        record: &Record,
        changed: bool,
        migrate: bool,
    ) -> Result<Option<LtdbHeader>, String> {
        if !record.exists && !changed && !migrate {
            // A read of a record that is not there leaves nothing behind (Samba stores
            // an empty record, and its memory grows with every key ever read). But a
            // NULL_FUNC call with IMMEDIATE_MIGRATION is Samba's fetch_locked: the
            // client locks and reads the record in the TDB file next and must find it
            // there, with this node as dmaster, or it asks again for ever.
            return Ok(None);
        }
        let mut header = record.header;
        if db.is_volatile() && header.dmaster == self.pnn && header.flags & REC_RO_FLAGS == 0 {
            // A peer may hand us any RSN, u64::MAX too: it must not wrap to 0.
            header.rsn = header.rsn.saturating_add(1);
        } else if record.exists && !changed {
            return Ok(None);
        }
        header.flags &= !(REC_FLAG_AUTOMATIC | REC_FLAG_VACUUM_MIGRATED);
        self.put_value(db, key, &encode_record(&header, &record.data))?;
        Ok(Some(header))
    }

    /// Drops node packets of another generation, as Samba does: the sender resends its
    /// calls after the recovery that changed it. True when `origin`'s packet may run.
    fn current_generation(&self, origin: &Origin, generation: u32, what: &str) -> bool {
        if origin.is_local() || generation == self.vnn_map.generation {
            return true;
        }
        tracing::debug!(
            from_node = origin.from_node,
            generation,
            ours = self.vnn_map.generation,
            "dropping a {what} of another generation"
        );
        false
    }

    /// Hands `body` to transport for node `destnode` (our own pnn loops back to us).
    /// `srcnode` is this node, or the asker of a REQ_CALL sent on: transport keeps it.
    fn send_node(&self, out: &Outbox, destnode: u32, srcnode: u32, reqid: u32, body: Body) {
        let packet = Packet {
            generation: self.vnn_map.generation,
            destnode,
            srcnode,
            reqid,
            body,
        };
        out.to_client(0, packet.to_bytes());
    }

    /// Holds `envelope` until the thaw (refused when too many wait).
    fn defer(&mut self, out: &Outbox, origin: &Origin, db: &DbInfo, envelope: Envelope) {
        if self.deferred.len() >= MAX_DEFERRED_CALLS {
            let msg = format!("database {} is frozen and too many calls wait", db.name);
            return self.send_call_error(out, origin, &msg);
        }
        self.deferred.push_back(envelope);
    }

    pub(crate) fn req_call(
        &mut self,
        origin: Origin,
        generation: u32,
        call: ReqCall,
        envelope: Envelope,
        out: &Outbox,
    ) {
        let started = Instant::now();
        if origin.is_local() {
            self.stats.client_req_call += 1;
        } else {
            self.stats.node_req_call += 1;
            if !self.current_generation(&origin, generation, "REQ_CALL") {
                return;
            }
        }
        self.stats.max_hop_count = self.stats.max_hop_count.max(u64::from(call.hopcount));

        let Some(db) = self.registry.get(call.db_id).cloned() else {
            // Samba never answers this one; the caller would wait for its timeout.
            let msg = format!("Unknown database in request. db_id==0x{:08x}", call.db_id);
            tracing::warn!(
                client = origin.client,
                from_node = origin.from_node,
                "{msg}"
            );
            return self.send_call_error(out, &origin, &msg);
        };

        if self.frozen || db.frozen {
            return self.defer(out, &origin, &db, envelope);
        }

        // A call this node sent on (its srcnode and reqid) come back: never queued
        // behind itself.
        let own = !origin.is_local()
            && origin.srcnode == self.pnn
            && self.pending.contains_key(&origin.reqid);
        if !origin.is_local() && origin.srcnode == self.pnn && !own {
            // A call of ours that nobody waits for any more (run again after a
            // recovery): migrating the record to ourselves would only go round.
            tracing::debug!(
                reqid = origin.reqid,
                "dropping a call of ours nobody waits for"
            );
            return;
        }
        let lmaster = self.lmaster(&call.key);
        // Local calls wait for a record on its way here; so do calls from other nodes at
        // the lmaster (a record in flight there is for its own client). Anywhere else a
        // node's call is sent on at once: waiting there could wait for the lmaster.
        if db.is_volatile() && !own && (origin.is_local() || lmaster == self.pnn) {
            if let Some(flight) = self.in_flight.get_mut(&(call.db_id, call.key.clone())) {
                flight.queue.push_back(envelope);
                return;
            }
        }

        let record = match self.fetch_record(&db, &call.key) {
            Ok(r) => r,
            Err(msg) => return self.send_call_error(out, &origin, &msg),
        };

        // Replicated and persistent records live on every node: read them here.
        if record.header.dmaster == self.pnn || !db.is_volatile() {
            if origin.is_local() || !db.is_volatile() {
                return self.answer_local(&db, &call, record, &origin, started, out);
            }
            if own {
                return self.serve_pending(&db, origin.reqid, record, out);
            }
            if call.flags & ctdb_protocol::flags::call::VACUUM_MIGRATION != 0
                && !record.data.is_empty()
            {
                // Filled again since it was offered for vacuuming: it stays where it
                // is used, and the lmaster hears so.
                let reply = ReplyCall {
                    status: 0,
                    data: Bytes::new(),
                };
                return self.send(out, &origin, Body::ReplyCall(reply));
            }
            // Samba migrates a normal record to every remote caller.
            if let Err(msg) = self.migrate(&db, &call.key, record, &origin, out) {
                tracing::warn!(db = %db.name, "migration failed: {msg}");
                self.send_call_error(out, &origin, &msg);
            }
            return;
        }

        // As CTDB: the asker's node sends its client's call with hopcount 0, and each
        // node that sends it on counts one more.
        let hops = call.hopcount;
        let mut forward = call;
        forward.hopcount = if origin.is_local() {
            0
        } else {
            hops.saturating_add(1)
        };

        if !origin.is_local() && !own && lmaster != self.pnn {
            // The lmaster sent it here, but the record has left: back to the lmaster,
            // which learnt where it went first (REQ_DMASTER came on the same link).
            tracing::debug!(db = %db.name, lmaster, "returning a call to the lmaster");
            return self.send_node(
                out,
                lmaster,
                origin.srcnode,
                origin.reqid,
                Body::ReqCall(forward),
            );
        }
        if hops >= MAX_HOPCOUNT {
            let msg = format!(
                "call on {} forwarded {} times without reaching the dmaster",
                db.name, hops
            );
            tracing::warn!("{msg}");
            if own {
                return self.complete_pending(origin.reqid, Err(msg), out);
            }
            return self.send_call_error(out, &origin, &msg);
        }

        // Not the dmaster: the lmaster knows who is; anyone else asks the lmaster.
        let dest = if lmaster == self.pnn {
            record.header.dmaster
        } else {
            lmaster
        };
        if !origin.is_local() && !own {
            // Another node's call at its lmaster: on to the dmaster as it came (its
            // srcnode and reqid), which migrates the record to the asker directly.
            tracing::debug!(
                db = %db.name,
                dest,
                srcnode = origin.srcnode,
                hopcount = forward.hopcount,
                "sending a call on"
            );
            return self.send_node(
                out,
                dest,
                origin.srcnode,
                origin.reqid,
                Body::ReqCall(forward),
            );
        }
        let reqid = if own {
            origin.reqid
        } else {
            let reqid = self.alloc_reqid();
            self.pending.insert(
                reqid,
                PendingCall {
                    asker: Asker::Client {
                        client: origin.client,
                        reqid: origin.reqid,
                    },
                    db_id: forward.db_id,
                    key: forward.key.clone(),
                    call: forward.clone(),
                    started,
                    envelope: Some(envelope),
                },
            );
            self.in_flight.insert(
                (forward.db_id, forward.key.clone()),
                InFlight {
                    reqid,
                    queue: VecDeque::new(),
                },
            );
            reqid
        };
        tracing::debug!(db = %db.name, dest, reqid, hopcount = forward.hopcount, "forwarding a call");
        self.send_node(out, dest, self.pnn, reqid, Body::ReqCall(forward));
    }

    /// The record of pending call `reqid` is here: run the call for the local client, or
    /// note it for vacuuming.
    fn serve_pending(&mut self, db: &DbInfo, reqid: u32, record: Record, out: &Outbox) {
        let Some(p) = self.pending.get(&reqid) else {
            return;
        };
        let call = p.call.clone();
        match p.asker {
            Asker::Client { .. } => {
                let result = self.run_call(db, &call, record);
                self.complete_pending(reqid, result, out);
            }
            Asker::Vacuum => {
                // Home for vacuuming: the next pass deletes it if it is still empty.
                if record.data.is_empty() && record.header.dmaster == self.pnn {
                    self.schedule_deletion(db.db_id, call.key.clone(), record.header.rsn);
                }
                if let Some(p) = self.pending.remove(&reqid) {
                    self.vacuums.fetch_done();
                    self.drain(reqid, p.db_id, p.key, out);
                }
            }
        }
    }

    /// Runs the calls queued behind pending call `reqid`, in arrival order.
    fn drain(&mut self, reqid: u32, db_id: u32, key: Bytes, out: &Outbox) {
        let key = (db_id, key);
        if self.in_flight.get(&key).is_some_and(|f| f.reqid == reqid) {
            if let Some(flight) = self.in_flight.remove(&key) {
                for envelope in flight.queue {
                    self.handle(envelope, out);
                }
            }
        }
    }

    /// A reqid for a call this node sends on: its pnn in the top byte, so that it knows
    /// the call again when it comes back.
    fn alloc_reqid(&mut self) -> u32 {
        loop {
            let reqid = (self.pnn & 0xff) << 24 | self.next_reqid;
            self.next_reqid = (self.next_reqid + 1) & 0x00ff_ffff;
            if !self.pending.contains_key(&reqid) {
                return reqid;
            }
        }
    }

    /// Runs a call on a record held here and answers `origin` (the client, or the node
    /// of a call that does not migrate).
    fn answer_local(
        &mut self,
        db: &DbInfo,
        call: &ReqCall,
        record: Record,
        origin: &Origin,
        started: Instant,
        out: &Outbox,
    ) {
        match self.run_call(db, call, record) {
            Ok(reply) => {
                self.send(out, origin, Body::ReplyCall(reply));
                record_latency(
                    &mut self.stats.call_latency,
                    started.elapsed().as_secs_f64(),
                );
            }
            Err(msg) => {
                tracing::warn!(db = %db.name, "call failed: {msg}");
                self.send_call_error(out, origin, &msg);
            }
        }
    }

    /// Runs `call` on `record`, which this node holds, and stores the record back.
    fn run_call(
        &mut self,
        db: &DbInfo,
        call: &ReqCall,
        mut record: Record,
    ) -> Result<ReplyCall, String> {
        if call.callid == callid::COMPARE_STORE_FUNC && !db.is_volatile() {
            // Replicated copies must stay alike: those change by transaction only.
            return Err(format!(
                "{} is not volatile: write it in a transaction",
                db.name
            ));
        }
        let outcome = run_call_function(call.callid, &mut record, &call.calldata)?;
        // Samba's fetch_locked: NULL_FUNC with IMMEDIATE_MIGRATION.
        let migrate = call.callid == callid::NULL_FUNC
            && call.flags & ctdb_protocol::flags::call::IMMEDIATE_MIGRATION != 0;
        let created = !record.exists;
        let stored = self.store_after_call(db, &call.key, &record, outcome.changed, migrate)?;
        if let Some(header) = stored.filter(|h| record.data.is_empty() && h.dmaster == self.pnn) {
            // An empty record left here (a fetch_locked of a new key, or emptied by a
            // call) goes when nobody fills it: Samba queues such records too.
            if created || outcome.changed {
                self.schedule_deletion(db.db_id, call.key.clone(), header.rsn);
            }
        }
        if outcome.changed {
            // A write the client is told about survives a crash of this process, as
            // DESIGN.md promises (RSN bumps of reads reach disk within FLUSH_EVERY_MS).
            self.store
                .flush()
                .map_err(|e| format!("flushing {}: {e}", db.name))?;
        }
        self.stats.total_calls += 1;
        Ok(outcome.reply)
    }

    /// The dmaster's half of a migration to `origin.srcnode`: keep a copy naming the new
    /// dmaster and tell the lmaster (REQ_DMASTER), or, being the lmaster, hand the record
    /// over directly (REPLY_DMASTER), as Samba's `ctdb_call_send_dmaster`.
    fn migrate(
        &mut self,
        db: &DbInfo,
        key: &Bytes,
        record: Record,
        origin: &Origin,
        out: &Outbox,
    ) -> Result<(), String> {
        let new_dmaster = origin.srcnode;
        let lmaster = self.lmaster(key);
        let mut header = record.header;
        header.dmaster = new_dmaster;
        header.flags &= !(REC_FLAG_AUTOMATIC | REC_FLAG_VACUUM_MIGRATED);
        if !record.data.is_empty() {
            // As Samba: vacuuming must not drop a record that once moved with data.
            header.flags |= REC_FLAG_MIGRATED_WITH_DATA;
        }
        self.put_value(db, key, &encode_record(&header, &record.data))?;
        let data = Bytes::from(record.data);
        tracing::debug!(db = %db.name, new_dmaster, lmaster, rsn = header.rsn, "migrating a record");
        if lmaster == self.pnn {
            self.send_node(
                out,
                new_dmaster,
                self.pnn,
                origin.reqid,
                Body::ReplyDmaster(ReplyDmaster {
                    db_id: db.db_id,
                    rsn: header.rsn,
                    key: key.clone(),
                    data,
                    rec_flags: None,
                }),
            );
        } else {
            self.send_node(
                out,
                lmaster,
                self.pnn,
                origin.reqid,
                Body::ReqDmaster(ReqDmaster {
                    db_id: db.db_id,
                    rsn: header.rsn,
                    dmaster: new_dmaster,
                    key: key.clone(),
                    data,
                    rec_flags: None,
                }),
            );
        }
        Ok(())
    }

    /// REQ_DMASTER at the lmaster: record the new dmaster and hand it the record.
    pub(crate) fn req_dmaster(
        &mut self,
        origin: Origin,
        generation: u32,
        req: ReqDmaster,
        envelope: Envelope,
        out: &Outbox,
    ) {
        if !self.current_generation(&origin, generation, "REQ_DMASTER") {
            return;
        }
        // Failures go to the node that waits for the record.
        let requester = Origin {
            client: 0,
            from_node: origin.from_node,
            srcnode: req.dmaster,
            reqid: origin.reqid,
            trace: origin.trace,
        };
        let Some(db) = self.registry.get(req.db_id).cloned() else {
            let msg = format!(
                "Unknown database in REQ_DMASTER. db_id==0x{:08x}",
                req.db_id
            );
            tracing::warn!(from_node = origin.from_node, "{msg}");
            return self.send_call_error(out, &requester, &msg);
        };
        if self.frozen || db.frozen {
            return self.defer(out, &requester, &db, envelope);
        }
        if let Err(msg) = self.become_lmaster_of(&db, &req, &origin, out) {
            tracing::warn!(db = %db.name, from_node = origin.from_node, "REQ_DMASTER: {msg}");
            self.send_call_error(out, &requester, &msg);
        }
    }

    fn become_lmaster_of(
        &mut self,
        db: &DbInfo,
        req: &ReqDmaster,
        origin: &Origin,
        out: &Outbox,
    ) -> Result<(), String> {
        let lmaster = self.lmaster(&req.key);
        if lmaster != self.pnn {
            return Err(format!(
                "dmaster request to node {} for a record of {} whose lmaster is {lmaster}",
                self.pnn, db.name
            ));
        }
        let record = self.fetch_record(db, &req.key)?;
        if record.exists {
            if record.header.dmaster != origin.srcnode {
                return Err(format!(
                    "dmaster request for a record of {} from node {}, but node {} is its dmaster",
                    db.name, origin.srcnode, record.header.dmaster
                ));
            }
            if record.header.rsn > req.rsn {
                return Err(format!(
                    "dmaster request for a record of {} with rsn {} below the lmaster's {}",
                    db.name, req.rsn, record.header.rsn
                ));
            }
        }
        let header = LtdbHeader {
            rsn: req.rsn,
            dmaster: req.dmaster,
            reserved1: 0,
            flags: record.header.flags & !(REC_FLAG_AUTOMATIC | REC_FLAG_VACUUM_MIGRATED),
        };
        let reply = ReplyDmaster {
            db_id: req.db_id,
            rsn: req.rsn,
            key: req.key.clone(),
            data: req.data.clone(),
            rec_flags: None,
        };
        if req.dmaster == self.pnn {
            // The lmaster asked for it: take the record now rather than through the
            // loopback, where a call from another node could find this node named
            // dmaster before it holds the record.
            self.take_record(db, reply, origin.reqid, out);
            return Ok(());
        }
        self.put_value(db, &req.key, &encode_record(&header, &req.data))?;
        self.send_node(
            out,
            req.dmaster,
            self.pnn,
            origin.reqid,
            Body::ReplyDmaster(reply),
        );
        Ok(())
    }

    /// REPLY_DMASTER: the record is ours now. Store it with a higher RSN, run the call
    /// that asked for it, then the calls that queued behind it.
    pub(crate) fn reply_dmaster(
        &mut self,
        origin: Origin,
        generation: u32,
        reply: ReplyDmaster,
        envelope: Envelope,
        out: &Outbox,
    ) {
        if origin.is_local() || !self.current_generation(&origin, generation, "REPLY_DMASTER") {
            return;
        }
        let Some(db) = self.registry.get(reply.db_id).cloned() else {
            tracing::warn!(db_id = reply.db_id, "REPLY_DMASTER for an unknown database");
            return;
        };
        if self.frozen || db.frozen {
            return self.defer(out, &origin, &db, envelope);
        }
        self.take_record(&db, reply, origin.reqid, out);
    }

    /// Becomes dmaster of the record in `reply` and runs call `reqid` that asked for it.
    fn take_record(&mut self, db: &DbInfo, reply: ReplyDmaster, reqid: u32, out: &Outbox) {
        let stored = self.become_dmaster(db, &reply);
        let Some(p) = self.pending.get(&reqid) else {
            tracing::debug!(reqid, "REPLY_DMASTER for no waiting call");
            return;
        };
        if p.db_id != reply.db_id || p.key != reply.key {
            let msg = "REPLY_DMASTER for another record".to_string();
            return self.complete_pending(reqid, Err(msg), out);
        }
        match stored {
            Ok(record) => self.serve_pending(db, reqid, record, out),
            Err(msg) => self.complete_pending(reqid, Err(msg), out),
        }
    }

    fn become_dmaster(&mut self, db: &DbInfo, reply: &ReplyDmaster) -> Result<Record, String> {
        let current = self.fetch_record(db, &reply.key)?;
        // The RSN only grows, whatever copy this node held before.
        let rsn = if current.exists {
            reply.rsn.max(current.header.rsn)
        } else {
            reply.rsn
        }
        .saturating_add(1);
        let with_data = if reply.data.is_empty() {
            0
        } else {
            REC_FLAG_MIGRATED_WITH_DATA
        };
        let header = LtdbHeader {
            rsn,
            dmaster: self.pnn,
            reserved1: 0,
            flags: (current.header.flags & REC_FLAG_MIGRATED_WITH_DATA) | with_data,
        };
        self.put_value(db, &reply.key, &encode_record(&header, &reply.data))?;
        tracing::debug!(db = %db.name, rsn, "became dmaster of a record");
        Ok(Record {
            header,
            data: reply.data.to_vec(),
            exists: true,
        })
    }

    /// REPLY_CALL or REPLY_ERROR from another node for a call of a local client.
    pub(crate) fn node_reply(&mut self, origin: Origin, generation: u32, body: Body, out: &Outbox) {
        if !self.current_generation(&origin, generation, body.operation().name()) {
            return;
        }
        let Some(p) = self.pending.remove(&origin.reqid) else {
            tracing::debug!(
                reqid = origin.reqid,
                from_node = origin.from_node,
                "reply for no waiting call"
            );
            return;
        };
        self.answer_pending(origin.reqid, p, body, out);
    }

    /// Answers the local client of pending call `reqid` with `result`.
    fn complete_pending(&mut self, reqid: u32, result: Result<ReplyCall, String>, out: &Outbox) {
        let Some(p) = self.pending.remove(&reqid) else {
            return;
        };
        let body = match result {
            Ok(reply) => Body::ReplyCall(reply),
            Err(msg) => {
                tracing::warn!("call failed: {msg}");
                Body::ReplyError(ReplyError::new(u32::MAX, &msg))
            }
        };
        self.answer_pending(reqid, p, body, out);
    }

    /// Answers the client of pending call `reqid`, then runs the calls that queued
    /// behind it for its record, in arrival order.
    fn answer_pending(&mut self, reqid: u32, p: PendingCall, body: Body, out: &Outbox) {
        let to = match p.asker {
            Asker::Client { client, reqid } => {
                if matches!(body, Body::ReplyCall(_)) {
                    record_latency(
                        &mut self.stats.call_latency,
                        p.started.elapsed().as_secs_f64(),
                    );
                }
                Origin {
                    client,
                    from_node: LOCAL,
                    srcnode: self.pnn,
                    reqid,
                    // The client's request, not the packet that brought its answer.
                    trace: p.envelope.as_ref().map_or(0, |e| e.trace),
                }
            }
            Asker::Vacuum => {
                // Refused or failed: the record stays where it is for now.
                self.vacuums.fetch_done();
                return self.drain(reqid, p.db_id, p.key, out);
            }
        };
        self.send(out, &to, body);
        self.drain(reqid, p.db_id, p.key, out);
    }

    /// Brings `key` home from the node its copy here names as dmaster, for vacuuming:
    /// a NULL call flagged IMMEDIATE and VACUUM_MIGRATION, as Samba's lmaster sends.
    /// False when there is nothing to bring (not its lmaster, already here, a call on
    /// it under way, or its chain held by a client).
    pub(crate) fn fetch_home(&mut self, db: &DbInfo, key: Bytes, out: &Outbox) -> bool {
        if self.lmaster(&key) != self.pnn || self.in_flight.contains_key(&(db.db_id, key.clone())) {
            return false;
        }
        let Ok(Some(value)) = self.read_unlocked(db, &key) else {
            return false;
        };
        let Ok((header, data)) = split_record(&value) else {
            return false;
        };
        if header.dmaster == self.pnn {
            if data.is_empty() {
                self.schedule_deletion(db.db_id, key, header.rsn);
            }
            return false;
        }
        let call = ReqCall {
            flags: ctdb_protocol::flags::call::IMMEDIATE_MIGRATION
                | ctdb_protocol::flags::call::VACUUM_MIGRATION,
            db_id: db.db_id,
            callid: callid::NULL_FUNC,
            hopcount: 0,
            key: key.clone(),
            calldata: Bytes::new(),
        };
        let reqid = self.alloc_reqid();
        self.pending.insert(
            reqid,
            PendingCall {
                asker: Asker::Vacuum,
                db_id: db.db_id,
                key: key.clone(),
                call: call.clone(),
                started: Instant::now(),
                envelope: None,
            },
        );
        self.in_flight.insert(
            (db.db_id, key),
            InFlight {
                reqid,
                queue: VecDeque::new(),
            },
        );
        self.send_node(out, header.dmaster, self.pnn, reqid, Body::ReqCall(call));
        true
    }

    /// A new vnn map: calls sent to other nodes in the old generation are lost (their
    /// packets are dropped), so they run again, first among the calls held for the thaw.
    pub(crate) fn requeue_remote_calls(&mut self) {
        let mut flights: Vec<(u32, InFlight)> =
            self.in_flight.drain().map(|(_, f)| (f.reqid, f)).collect();
        flights.sort_by_key(|(r, _)| *r);
        let mut again = VecDeque::new();
        for (reqid, flight) in flights {
            if let Some(envelope) = self.pending.remove(&reqid).and_then(|p| p.envelope) {
                again.push_back(envelope);
            }
            again.extend(flight.queue);
        }
        let mut rest: Vec<(u32, PendingCall)> = self.pending.drain().collect();
        rest.sort_by_key(|(r, _)| *r);
        again.extend(rest.into_iter().filter_map(|(_, p)| p.envelope));
        again.append(&mut self.deferred);
        self.deferred = again;
    }
}

/// Forwards after which a call is refused rather than passed on again.
pub const MAX_HOPCOUNT: u32 = 64;

/// Who a call this node sent on is for.
#[derive(Debug, Clone, Copy)]
enum Asker {
    /// A local client and its reqid: runs the call here.
    Client { client: u64, reqid: u32 },
    /// This node's vacuuming, bringing an empty record home (VACUUM_FETCH).
    Vacuum,
}

/// A call this node sent on to another node, by the reqid it gave it.
pub(crate) struct PendingCall {
    asker: Asker,
    db_id: u32,
    key: Bytes,
    call: ReqCall,
    started: Instant,
    /// A local client's request, to run again after a recovery.
    envelope: Option<Envelope>,
}

/// A record on its way to this node: the call that asked for it and those after it.
pub(crate) struct InFlight {
    reqid: u32,
    queue: VecDeque<Envelope>,
}
