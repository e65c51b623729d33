//! Attaching databases and what clients ask about them.

use bytes::Bytes;
use ctdb_protocol::control::TunableList;
use ctdb_protocol::flags::control::NOREPLY;
use ctdb_protocol::flags::{db as dbflags, dest, recmode, DB_SEQNUM_KEY};
use ctdb_protocol::{Body, Opcode, Packet, ReqControl};
use ctdb_rpc::component::Outbox;

use super::{done, fail, ok, ControlResult, Request};
use crate::payload::{self, DbMap, DbMapEntry, DbSeqnumRequest, DbStatistics};
use crate::registry::{DbInfo, DbKind};
use crate::{DbDaemon, Origin};
use ctdb_protocol::Wire;

/// The key of the sequence number record: Samba stores it with its NUL.
/// The key of a persistent database's sequence number record (with its NUL).
pub(crate) fn seqnum_key() -> Vec<u8> {
    payload::cstring(DB_SEQNUM_KEY)
}

impl DbDaemon {
    /// The database named by the `uint32` db_id at the start of `data`.
    pub(crate) fn db_arg(&self, data: &[u8]) -> Result<&DbInfo, super::ControlError> {
        let db_id = payload::leading_u32(data)?;
        match self.registry.get(db_id) {
            Some(db) => Ok(db),
            None => fail(format!("unknown database 0x{db_id:08x}")),
        }
    }

    pub(crate) fn db_attach(&mut self, data: &[u8], kind: DbKind) -> ControlResult {
        let Some(name) = payload::name(data) else {
            return fail("DB_ATTACH needs a database name");
        };
        let (db_id, new) = self.registry.attach(self.store.as_ref(), &name, kind)?;
        if new {
            tracing::info!(db = %name, db_id = format_args!("0x{db_id:08x}"), ?kind, "attached");
        }
        // Clients open the file right after attaching: it must be there. (The
        // broadcast to the other nodes is `req_control`'s.)
        self.open_files(Some(db_id))?;
        ok(db_id.to_le_bytes().to_vec())
    }

    pub(crate) fn getdbpath(&self, data: &[u8]) -> ControlResult {
        let db = self.db_arg(data)?;
        ok(payload::cstring(&db.path(&self.dirs, self.pnn)))
    }

    pub(crate) fn get_dbname(&self, data: &[u8]) -> ControlResult {
        ok(payload::cstring(&self.db_arg(data)?.name))
    }

    pub(crate) fn get_dbmap(&self) -> ControlResult {
        let dbs = self
            .registry
            .newest_first()
            .iter()
            .map(|d| DbMapEntry {
                db_id: d.db_id,
                flags: d.flags,
            })
            .collect();
        ok(DbMap { dbs }.to_bytes())
    }

    pub(crate) fn db_open_flags(&self, data: &[u8]) -> ControlResult {
        ok(crate::ltdb::open_flags(self.db_arg(data)?)
            .to_le_bytes()
            .to_vec())
    }

    /// GET_DB_SEQNUM: exactly db_id and 4 pad bytes; answers the `uint64` in the
    /// database's `__db_sequence_number__` record, 0 when there is none.
    pub(crate) fn get_db_seqnum(&self, data: &[u8]) -> ControlResult {
        if data.len() != 8 {
            return fail(format!(
                "GET_DB_SEQNUM needs 8 bytes of data, got {}",
                data.len()
            ));
        }
        let request = DbSeqnumRequest::from_bytes(data)?;
        let db = self.db_arg(&request.db_id.to_le_bytes())?;
        let record = self.fetch_record(db, &seqnum_key())?;
        let seqnum = match <[u8; 8]>::try_from(record.data.as_slice()) {
            Ok(b) => u64::from_le_bytes(b),
            Err(_) => 0,
        };
        ok(seqnum.to_le_bytes().to_vec())
    }

    fn set_volatile_flag(&mut self, data: &[u8], flag: u8, what: &str) -> ControlResult {
        let db = self.db_arg(data)?;
        if !db.is_volatile() {
            return fail(format!(
                "{what} is only for volatile databases ({})",
                db.name
            ));
        }
        let db_id = db.db_id;
        self.registry.set_flag(self.store.as_ref(), db_id, flag)?;
        done()
    }

    pub(crate) fn set_db_readonly(&mut self, data: &[u8]) -> ControlResult {
        self.set_volatile_flag(data, dbflags::READONLY, "READONLY")
    }

    pub(crate) fn set_db_sticky(&mut self, data: &[u8]) -> ControlResult {
        self.set_volatile_flag(data, dbflags::STICKY, "STICKY")
    }

    /// GET_DB_STATISTICS: Samba 4.17's `ctdb_db_statistics`. Lock, vacuum and hot-key
    /// statistics do not exist here; the hop count buckets are not kept per database
    /// yet, so all counters are zero.
    pub(crate) fn get_db_statistics(&self, data: &[u8]) -> ControlResult {
        self.db_arg(data)?;
        ok(DbStatistics::default().to_bytes())
    }

    /// Every database is healthy: an empty reason.
    pub(crate) fn db_get_health(&self, data: &[u8]) -> ControlResult {
        self.db_arg(data)?;
        done()
    }

    pub(crate) fn db_set_healthy(&self, data: &[u8]) -> ControlResult {
        self.db_arg(data)?;
        done()
    }

    /// ENABLE_SEQNUM (db_id): a client (smbd's brlock and locking databases) watches
    /// the file's sequence number; changes here are announced to the other nodes.
    pub(crate) fn enable_seqnum(&mut self, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(tdb) = self.files.get(db_id) {
            tdb.enable_seqnum();
            self.seqnums.entry(db_id).or_insert_with(|| tdb.seqnum());
        }
        done()
    }

    /// UPDATE_SEQNUM (db_id) from another node whose copy changed: bump ours, so that
    /// local clients' caches see the change, without announcing it back.
    pub(crate) fn update_seqnum(&mut self, from: u32, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if from == self.pnn {
            return done();
        }
        if let Some(tdb) = self.files.get(db_id) {
            tdb.increment_seqnum();
            if let Some(seen) = self.seqnums.get_mut(&db_id) {
                *seen = tdb.seqnum();
            }
        }
        done()
    }

    /// Tells the other nodes about every watched database whose file changed since the
    /// last time (Samba does this every SeqnumInterval).
    pub fn announce_seqnums(&mut self) {
        let Some(out) = self.outbox.clone() else {
            return;
        };
        let mut changed = Vec::new();
        for (db_id, seen) in self.seqnums.iter_mut() {
            if let Some(tdb) = self.files.get(*db_id) {
                let now = tdb.seqnum();
                if now != *seen {
                    *seen = now;
                    changed.push(*db_id);
                }
            }
        }
        for db_id in changed {
            self.send_control_to(
                &out,
                ctdb_protocol::flags::dest::BROADCAST_CONNECTED,
                ctdb_protocol::Opcode::UpdateSeqnum,
                db_id.to_le_bytes().to_vec(),
            );
        }
    }
}

/// A DB_DETACH waiting for the node's tunables: AllowClientDBAttach decides whether
/// it may go on, and ctdb-db asks transport for it (transport keeps the tunables).
pub(crate) struct PendingDetach {
    origin: Origin,
    db_id: u32,
    flags: u32,
    /// The number of tunables requests sent before this one's: the answer after them
    /// is this one's (transport answers in order).
    after: u64,
}

impl DbDaemon {
    /// DB_DETACH, as Samba's: refused for an unknown or persistent database, during a
    /// recovery, and while clients may attach databases (AllowClientDBAttach = 1,
    /// asked of transport: answered later). A client's detach is done here and sent
    /// on to every node.
    pub(crate) fn db_detach(&mut self, r: &Request<'_>) -> Option<ControlResult> {
        let own_broadcast = !r.origin.is_local() && r.origin.srcnode == self.pnn;
        if own_broadcast && self.db_arg(r.data).is_err() {
            // This node's own broadcast of a detach it has done already.
            return Some(done());
        }
        let db_id = match self.detachable(r.data) {
            Ok(db) => db.db_id,
            Err(e) => return Some(Err(e)),
        };
        if self.detaches.len() >= MAX_PENDING_DETACHES {
            return Some(fail("too many DB_DETACHes wait for the tunables"));
        }
        self.detaches.push(PendingDetach {
            origin: r.origin,
            db_id,
            flags: r.flags,
            after: self.tunables_asked,
        });
        self.request_tunables(r.out);
        None
    }

    /// Whether the database `data` names may be detached now (the tunable aside).
    fn detachable(&self, data: &[u8]) -> Result<&DbInfo, super::ControlError> {
        if data.len() != 4 {
            return fail(format!(
                "DB_DETACH needs 4 bytes of data (a db_id), got {}",
                data.len()
            ));
        }
        let db = self.db_arg(data)?;
        if !db.is_volatile() {
            return fail(format!(
                "DB_DETACH of {}: only volatile databases can be detached",
                db.name
            ));
        }
        if self.recovery_mode == recmode::ACTIVE {
            return fail(format!(
                "DB_DETACH of {}: refused during a recovery",
                db.name
            ));
        }
        Ok(db)
    }

    /// Answers the DB_DETACHes whose tunables came (`list`: none when transport could
    /// not say).
    pub(crate) fn decide_detaches(&mut self, list: Option<&TunableList>, out: &Outbox) {
        if self.detaches.is_empty() {
            return;
        }
        let answered = self.tunables_answered;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.detaches)
            .into_iter()
            .partition(|d| d.after < answered);
        self.detaches = waiting;
        let allowed = list.and_then(|l| l.get("AllowClientDBAttach"));
        for d in ready {
            let result = match allowed {
                None => fail("DB_DETACH: the node's tunables cannot be read"),
                Some(0) => self.detach_now(&d, out),
                Some(_) => fail(format!(
                    "DB_DETACH of 0x{:08x} refused: clients may attach databases \
                     (AllowClientDBAttach = 1)",
                    d.db_id
                )),
            };
            self.answer_control(out, &d.origin, Opcode::DbDetach, d.flags, result);
        }
    }

    fn detach_now(&mut self, d: &PendingDetach, out: &Outbox) -> ControlResult {
        // Checked again: a recovery may have started, or the database gone, meanwhile.
        let db_id = self.detachable(&d.db_id.to_le_bytes())?.db_id;
        self.detach(db_id)?;
        if d.origin.is_local() && d.origin.client != 0 {
            // A client asked: every other node detaches too, as with Samba. This one
            // detached first, so the client's next request sees the database gone.
            let packet = Packet {
                generation: self.vnn_map.generation,
                destnode: dest::BROADCAST_ALL,
                srcnode: self.pnn,
                reqid: 0,
                body: Body::ReqControl(ReqControl {
                    opcode: Opcode::DbDetach,
                    srvid: 0,
                    client_id: 0,
                    flags: NOREPLY,
                    data: Bytes::copy_from_slice(&db_id.to_le_bytes()),
                }),
            };
            out.to_client(0, packet.to_bytes());
        }
        done()
    }

    /// Forgets database `db_id` on this node: its entry, its records in sled, its TDB
    /// file (a later attach starts empty), its queued vacuuming and sequence numbers.
    fn detach(&mut self, db_id: u32) -> Result<(), super::ControlError> {
        let Some(db) = self.registry.detach(self.store.as_ref(), db_id)? else {
            return Ok(());
        };
        self.files.close(db_id);
        let path = db.path(&self.dirs, self.pnn);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(db = %db.name, %path, "detached, but its file stays: {e}"),
        }
        for tree in [db.tree(), db.staging_tree()] {
            if let Err(e) = self.store.clear(&tree) {
                tracing::warn!(db = %db.name, "detached, but its records stay in sled: {e}");
            }
        }
        self.forget_vacuuming(db_id);
        self.seqnums.remove(&db_id);
        self.pull_keys.remove(&db_id);
        self.sweep_cursor.remove(&db_id);
        tracing::info!(db = %db.name, db_id = format_args!("0x{db_id:08x}"), "detached");
        Ok(())
    }
}

/// Most DB_DETACHes waiting for the tunables at once.
const MAX_PENDING_DETACHES: usize = 64;
