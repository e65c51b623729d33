//! REQ_CALL: run a call function on a record this node is dmaster of.
//!
//! As Samba's `ctdb_call_local` followed by `ctdb_ltdb_store_server`: the call sees the
//! record's current header (a missing record gets an initial header: rsn 0, dmaster =
//! lmaster, flags AUTOMATIC), and the record is stored back afterwards; a volatile
//! record whose dmaster is this node and that has no read-only delegations gets
//! `rsn + 1` on every call. Unlike Samba, nothing is queued for an empty record
//! (Samba schedules each one for deletion and its memory grows with every fetch).

use std::time::Instant;

use bytes::Bytes;
use ctdb_protocol::flags::call as callid;
use ctdb_protocol::ltdb::{
    split_record, REC_FLAG_AUTOMATIC, REC_FLAG_VACUUM_MIGRATED, REC_RO_HAVE_DELEGATIONS,
    REC_RO_HAVE_READONLY, REC_RO_REVOKE_COMPLETE, REC_RO_REVOKING_READONLY,
};
use ctdb_protocol::{Body, LtdbHeader, ReplyCall, ReqCall, Wire};
use ctdb_rpc::component::{record_latency, Outbox};
use ctdb_rpc::Envelope;

use crate::hash::ctdb_hash;
use crate::registry::DbInfo;
use crate::{DbDaemon, Origin, MAX_DEFERRED_CALLS};

const REC_RO_FLAGS: u32 = REC_RO_HAVE_DELEGATIONS
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

/// What a call function returns to the caller, or why it failed.
fn run_call_function(id: u32, record: &Record) -> Result<Bytes, String> {
    match id {
        callid::NULL_FUNC => Ok(Bytes::new()),
        callid::FETCH_FUNC => Ok(Bytes::copy_from_slice(&record.data)),
        callid::FETCH_WITH_HEADER_FUNC => {
            Ok(Bytes::from(encode_record(&record.header, &record.data)))
        }
        other => Err(format!("Unknown call id 0x{other:08x}")),
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

    /// Reads a record, or the initial header Samba gives a missing one.
    pub fn fetch_record(&self, db: &DbInfo, key: &[u8]) -> Result<Record, String> {
        let stored = self
            .store
            .get(&db.tree(), key)
            .map_err(|e| format!("reading {}: {e}", db.name))?;
        if let Some(value) = stored {
            if let Ok((header, data)) = split_record(&value) {
                return Ok(Record {
                    header,
                    data: data.to_vec(),
                    exists: true,
                });
            }
            tracing::warn!(db = %db.name, "record shorter than its header; treating as missing");
        }
        Ok(Record {
            header: LtdbHeader {
                rsn: 0,
                dmaster: self.lmaster(key),
                reserved1: 0,
                flags: REC_FLAG_AUTOMATIC,
            },
            data: Vec::new(),
            exists: false,
        })
    }

    /// Stores `record` back after a call, as `ctdb_ltdb_store_server` does.
    fn store_after_call(&self, db: &DbInfo, key: &[u8], record: &Record) -> Result<(), String> {
        let mut header = record.header;
        if db.is_volatile() && header.dmaster == self.pnn && header.flags & REC_RO_FLAGS == 0 {
            header.rsn += 1;
        } else if record.exists {
            // Nothing changed: our call functions never modify data.
            return Ok(());
        } else if !db.is_volatile() {
            // Do not create records in persistent or replicated databases on a read.
            return Ok(());
        }
        header.flags &= !(REC_FLAG_AUTOMATIC | REC_FLAG_VACUUM_MIGRATED);
        self.store
            .put(&db.tree(), key, &encode_record(&header, &record.data))
            .map_err(|e| format!("storing into {}: {e}", db.name))
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
            // Samba drops node packets of another generation: the sender resends
            // them after the recovery that changed it.
            if generation != self.vnn_map.generation {
                tracing::debug!(
                    from_node = origin.from_node,
                    generation,
                    ours = self.vnn_map.generation,
                    "dropping a REQ_CALL of another generation"
                );
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
            if self.deferred.len() >= MAX_DEFERRED_CALLS {
                let msg = format!("database {} is frozen and too many calls wait", db.name);
                return self.send_call_error(out, &origin, &msg);
            }
            self.deferred.push_back(envelope);
            return;
        }

        match self.run_call(&db, &call) {
            Ok(data) => {
                self.stats.total_calls += 1;
                self.send(out, &origin, Body::ReplyCall(ReplyCall { status: 0, data }));
                record_latency(
                    &mut self.stats.call_latency,
                    started.elapsed().as_secs_f64(),
                );
            }
            Err(msg) => {
                tracing::warn!(db = %db.name, "call failed: {msg}");
                self.send_call_error(out, &origin, &msg);
            }
        }
    }

    /// Runs `call` on this node, which must be the record's dmaster.
    fn run_call(&mut self, db: &DbInfo, call: &ReqCall) -> Result<Bytes, String> {
        let record = self.fetch_record(db, &call.key)?;
        if record.header.dmaster != self.pnn {
            // TODO(migration): forward to the lmaster / dmaster (REQ_CALL redirect,
            // REQ_DMASTER, REPLY_DMASTER) once multi-node migration lands.
            return Err(format!(
                "record of {} is held by node {}; migration is not implemented yet",
                db.name, record.header.dmaster
            ));
        }
        let reply = run_call_function(call.callid, &record)?;
        self.store_after_call(db, &call.key, &record)?;
        Ok(reply)
    }
}
