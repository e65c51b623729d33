//! Traverse of a database across the cluster: TRAVERSE_START(_EXT), TRAVERSE_ALL(_EXT),
//! TRAVERSE_DATA, TRAVERSE_KILL.
//!
//! The node a client asks answers the control at once and becomes the traverse's
//! origin. It asks every node of the vnn map (TRAVERSE_ALL_EXT, no reply) to send it
//! the records it is dmaster of, one TRAVERSE_DATA each and an empty one to end; it
//! hands every record on to the client's srvid as a REQ_MESSAGE holding a
//! `ctdb_rec_data` with the client's reqid, and, once every node has ended, the empty
//! record that ends the traverse for the client. Only the dmaster's copy of a volatile
//! record is sent, so each record comes once. Persistent and replicated databases are
//! alike on every node: only the origin's copy is read.

use bytes::Bytes;
use ctdb_protocol::control::{RecData, TraverseAllExt, TraverseStart, TraverseStartExt};
use ctdb_protocol::flags::control::NOREPLY;
use ctdb_protocol::ltdb::split_record;
use ctdb_protocol::{Body, Opcode, Packet, ReqControl, ReqMessage, Wire};
use ctdb_rpc::component::Outbox;

use super::{done, fail, ControlResult};
use crate::registry::DbInfo;
use crate::DbDaemon;

/// Traverses this node started for its clients, by the traverse's reqid.
#[derive(Debug, Default)]
pub struct Traversals {
    active: std::collections::HashMap<u32, Traversal>,
    next_id: u32,
}

#[derive(Debug)]
struct Traversal {
    client: u64,
    client_reqid: u32,
    srvid: u64,
    /// Nodes that have not sent their end marker yet.
    waiting: Vec<u32>,
}

impl Traversals {
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Forgets every traverse: after a new vnn map their nodes may never end them (the
    /// clients time out, as Samba's do when a node goes away mid-traverse).
    pub fn clear(&mut self) {
        self.active.clear();
    }
}

/// A record for a traverse, or its end (no key, no data).
fn rec(reqid: u32, key: &[u8], value: &[u8]) -> RecData {
    RecData {
        reqid,
        key: Bytes::copy_from_slice(key),
        data: Bytes::copy_from_slice(value),
    }
}

impl DbDaemon {
    /// TRAVERSE_START (the seed's, no empty records) and TRAVERSE_START_EXT from a
    /// local client.
    pub(crate) fn traverse_start(
        &mut self,
        client: u64,
        opcode: Opcode,
        data: &[u8],
        out: &Outbox,
    ) -> ControlResult {
        let start = if opcode == Opcode::TraverseStartExt {
            TraverseStartExt::from_bytes(data)?
        } else {
            let s = TraverseStart::from_bytes(data)?;
            TraverseStartExt {
                db_id: s.db_id,
                reqid: s.reqid,
                srvid: s.srvid,
                withemptyrecords: false,
            }
        };
        if client == 0 {
            return fail("a traverse is started by a client");
        }
        let Some(db) = self.registry.get(start.db_id).cloned() else {
            return fail(format!("unknown database 0x{:08x}", start.db_id));
        };
        let nodes = if db.is_volatile() && !self.vnn_map.map.is_empty() {
            self.vnn_map.map.clone()
        } else {
            vec![self.pnn]
        };
        self.traversals.next_id = self.traversals.next_id.wrapping_add(1);
        let reqid = self.traversals.next_id;
        self.traversals.active.insert(
            reqid,
            Traversal {
                client,
                client_reqid: start.reqid,
                srvid: start.srvid,
                waiting: nodes.clone(),
            },
        );
        let all = TraverseAllExt {
            db_id: db.db_id,
            reqid,
            pnn: self.pnn,
            client_reqid: start.reqid,
            srvid: start.srvid,
            withemptyrecords: start.withemptyrecords,
        };
        tracing::debug!(db = %db.name, reqid, ?nodes, "traverse started");
        for pnn in nodes {
            if pnn == self.pnn {
                self.traverse_local(&db, &all, out);
            } else {
                self.send_control_to(out, pnn, Opcode::TraverseAllExt, all.to_bytes());
            }
        }
        done()
    }

    /// TRAVERSE_ALL(_EXT) from the origin of a traverse: send it our records.
    pub(crate) fn traverse_all(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        out: &Outbox,
    ) -> ControlResult {
        let all = if opcode == Opcode::TraverseAllExt {
            TraverseAllExt::from_bytes(data)?
        } else {
            let a = ctdb_protocol::control::TraverseAll::from_bytes(data)?;
            TraverseAllExt {
                db_id: a.db_id,
                reqid: a.reqid,
                pnn: a.pnn,
                client_reqid: a.client_reqid,
                srvid: a.srvid,
                withemptyrecords: false,
            }
        };
        let Some(db) = self.registry.get(all.db_id).cloned() else {
            // Still end our part, so that the origin does not wait for us.
            let end = rec(all.reqid, &[], &[]).to_bytes();
            self.send_control_to(out, all.pnn, Opcode::TraverseData, end);
            return fail(format!("unknown database 0x{:08x}", all.db_id));
        };
        self.traverse_local(&db, &all, out);
        done()
    }

    /// Reads this node's part of a traverse and sends it to the origin (or, being the
    /// origin, hands it on at once).
    fn traverse_local(&mut self, db: &DbInfo, all: &TraverseAllExt, out: &Outbox) {
        let mut records = Vec::new();
        let volatile = db.is_volatile();
        let pnn = self.pnn;
        let scanned = self.scan_values(db, &mut |key, value| {
            let Ok((header, data)) = split_record(value) else {
                return true;
            };
            let mine = !volatile || header.dmaster == pnn;
            if mine && (all.withemptyrecords || !data.is_empty()) {
                records.push(rec(all.reqid, key, value));
            }
            true
        });
        if let Err(e) = scanned {
            tracing::warn!(db = %db.name, "traverse cannot read the database: {e}");
        }
        // Key order, whatever order the file keeps them in.
        records.sort_by(|a, b| a.key.cmp(&b.key));
        records.push(rec(all.reqid, &[], &[]));
        for record in records {
            if all.pnn == self.pnn {
                self.traverse_record(self.pnn, record, out);
            } else {
                self.send_control_to(out, all.pnn, Opcode::TraverseData, record.to_bytes());
            }
        }
    }

    /// TRAVERSE_DATA from node `from`: a record for one of our traverses, or its end.
    pub(crate) fn traverse_data(&mut self, from: u32, data: &[u8], out: &Outbox) -> ControlResult {
        let record = RecData::from_bytes(data)?;
        self.traverse_record(from, record, out);
        done()
    }

    fn traverse_record(&mut self, from: u32, record: RecData, out: &Outbox) {
        let Some(t) = self.traversals.active.get_mut(&record.reqid) else {
            tracing::debug!(reqid = record.reqid, from, "data for no traverse");
            return;
        };
        let srvid = t.srvid;
        let end = record.key.is_empty() && record.data.is_empty();
        let message = if end {
            t.waiting.retain(|&n| n != from);
            if !t.waiting.is_empty() {
                return;
            }
            let reqid = t.client_reqid;
            self.traversals.active.remove(&record.reqid);
            rec(reqid, &[], &[])
        } else {
            RecData {
                reqid: t.client_reqid,
                ..record
            }
        };
        self.message_to_srvid(out, srvid, message.to_bytes());
    }

    /// TRAVERSE_KILL: the client no longer wants its traverse.
    pub(crate) fn traverse_kill(&mut self, client: u64, data: &[u8]) -> ControlResult {
        let kill = TraverseStart::from_bytes(data)?;
        self.traversals.active.retain(|_, t| {
            !(t.client == client && t.client_reqid == kill.reqid && t.srvid == kill.srvid)
        });
        done()
    }

    /// A REQ_MESSAGE for whoever registered `srvid` on this node.
    fn message_to_srvid(&self, out: &Outbox, srvid: u64, data: Vec<u8>) {
        let packet = Packet {
            generation: self.vnn_map.generation,
            destnode: self.pnn,
            srcnode: self.pnn,
            reqid: 0,
            body: Body::ReqMessage(ReqMessage {
                srvid,
                data: Bytes::from(data),
            }),
        };
        out.to_client(0, packet.to_bytes());
    }

    /// A control to node `pnn` that needs no reply.
    pub(crate) fn send_control_to(&self, out: &Outbox, pnn: u32, opcode: Opcode, data: Vec<u8>) {
        let packet = Packet {
            generation: self.vnn_map.generation,
            destnode: pnn,
            srcnode: self.pnn,
            reqid: 0,
            body: Body::ReqControl(ReqControl {
                opcode,
                srvid: 0,
                client_id: 0,
                flags: NOREPLY,
                data: Bytes::from(data),
            }),
        };
        out.to_client(0, packet.to_bytes());
    }
}
