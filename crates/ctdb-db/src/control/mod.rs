//! The controls ctdb-db owns: one readable table, one module per family.
//!
//! - [`db`]: attaching databases and what a client asks about them.
//! - [`recovery`]: vnn map, recovery mode, freeze/thaw, wipe, recovery transactions.
//! - [`traverse`]: traversing a database across the cluster.
//! - [`persistent`]: transactions of persistent databases (TRANS3_COMMIT,
//!   UPDATE_RECORD).

pub mod db;
pub mod persistent;
pub mod recovery;
pub mod traverse;

use bytes::Bytes;
use ctdb_protocol::flags::control::NOREPLY;
use ctdb_protocol::{Body, Opcode, ReplyControl, ReqControl};
use ctdb_rpc::component::Outbox;
use ctdb_rpc::Envelope;

use crate::{DbDaemon, Origin};

/// Every control ctdb-db answers (transport's routing table should send these here).
pub const OWNED_CONTROLS: &[Opcode] = &[
    // databases (db.rs)
    Opcode::Getdbpath,
    Opcode::GetDbmap,
    Opcode::GetDbname,
    Opcode::DbAttach,
    Opcode::DbAttachPersistent,
    Opcode::DbAttachReplicated,
    Opcode::DbOpenFlags,
    Opcode::GetDbSeqnum,
    Opcode::EnableSeqnum,
    Opcode::UpdateSeqnum,
    Opcode::ScheduleForDeletion,
    Opcode::SetDbReadonly,
    Opcode::SetDbSticky,
    Opcode::DbGetHealth,
    Opcode::DbSetHealthy,
    Opcode::GetDbStatistics,
    // recovery (recovery.rs)
    Opcode::Getvnnmap,
    Opcode::Setvnnmap,
    Opcode::GetRecmode,
    Opcode::SetRecmode,
    Opcode::Freeze,
    Opcode::Thaw,
    Opcode::DbFreeze,
    Opcode::DbThaw,
    Opcode::DbTransactionStart,
    Opcode::DbTransactionCommit,
    Opcode::DbTransactionCancel,
    Opcode::WipeDatabase,
    Opcode::PullDb,
    Opcode::PullDbPage,
    Opcode::PushDb,
    // traverse (traverse.rs)
    Opcode::TraverseStart,
    Opcode::TraverseStartExt,
    Opcode::TraverseAll,
    Opcode::TraverseAllExt,
    Opcode::TraverseData,
    Opcode::TraverseKill,
    // persistent databases (persistent.rs)
    Opcode::Trans3Commit,
    Opcode::UpdateRecord,
    // vacuuming (vacuum.rs)
    Opcode::TryDeleteRecords,
    Opcode::VacuumFetch,
    Opcode::DbVacuum,
    // fault injection in test clusters (recovery.rs; transport routes it by its data)
    Opcode::SetFailpoint,
];

/// Controls that change records: held while their database is frozen, like calls.
const HELD_WHILE_FROZEN: &[Opcode] = &[
    Opcode::Trans3Commit,
    Opcode::UpdateRecord,
    Opcode::TryDeleteRecords,
];

/// What a control handler answers: a status and reply data, or a failure.
pub type ControlResult = Result<(i32, Vec<u8>), ControlError>;

/// A failed control: status -1 and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError(pub String);

impl<T: std::fmt::Display> From<T> for ControlError {
    fn from(e: T) -> Self {
        ControlError(e.to_string())
    }
}

/// Success with data.
pub fn ok(data: Vec<u8>) -> ControlResult {
    Ok((0, data))
}

/// Success with nothing to say.
pub fn done() -> ControlResult {
    Ok((0, Vec::new()))
}

/// Fails with `msg`.
pub fn fail<T>(msg: impl Into<String>) -> Result<T, ControlError> {
    Err(ControlError(msg.into()))
}

/// The generation in a packet's header (that of the vnn map its sender had).
fn packet_generation(envelope: &Envelope) -> u32 {
    ctdb_protocol::packet::Header::parse(&envelope.packet, u32::MAX)
        .map_or(ctdb_protocol::flags::INVALID_GENERATION, |h| h.generation)
}

impl DbDaemon {
    pub(crate) fn req_control(
        &mut self,
        origin: Origin,
        c: ReqControl,
        envelope: Envelope,
        out: &Outbox,
    ) {
        let opcode = c.opcode;
        if HELD_WHILE_FROZEN.contains(&opcode) && self.holds(&c.data) {
            if self.deferred.len() < crate::MAX_DEFERRED_CALLS {
                self.deferred.push_back(envelope);
            } else if c.flags & NOREPLY == 0 {
                self.send_control_error(out, &origin, "frozen, and too many requests wait");
            }
            return;
        }
        if opcode == Opcode::DbVacuum {
            // Answered when the pass is over.
            if let Err(ControlError(msg)) = self.db_vacuum(origin, &c.data, out) {
                if c.flags & NOREPLY == 0 {
                    self.send_control_error(out, &origin, &msg);
                }
            }
            return;
        }
        if opcode == Opcode::Trans3Commit {
            // Answered when the commit is on every node.
            let generation = packet_generation(&envelope);
            return self.trans3_commit(origin, generation, &c.data, out);
        }
        let result = if opcode == Opcode::UpdateRecord {
            self.update_record(&origin, packet_generation(&envelope), &c.data)
        } else {
            self.run_control(&origin, &c, out)
        };
        let attach = matches!(
            opcode,
            Opcode::DbAttach | Opcode::DbAttachPersistent | Opcode::DbAttachReplicated
        );
        if attach && result.is_ok() && origin.is_local() && c.flags & NOREPLY == 0 {
            // As Samba does: every other node attaches the database too, so that any
            // node can be the lmaster of its records.
            self.broadcast_attach(&c, out);
        }
        if c.flags & NOREPLY != 0 {
            if let Err(ControlError(msg)) = &result {
                tracing::warn!(control = %opcode, "{msg}");
            }
            return;
        }
        let reply = match result {
            Ok((status, data)) => ReplyControl {
                status,
                data: Bytes::from(data),
                errmsg: Bytes::new(),
            },
            Err(ControlError(msg)) => {
                tracing::info!(control = %opcode, client = origin.client, "control failed: {msg}");
                ReplyControl::error(-1, &msg)
            }
        };
        self.send(out, &origin, Body::ReplyControl(reply));
    }

    /// Whether a request on the database its data starts with must wait for a thaw.
    fn holds(&self, data: &[u8]) -> bool {
        let db_frozen = crate::payload::leading_u32(data)
            .ok()
            .and_then(|id| self.registry.get(id))
            .is_some_and(|db| db.frozen);
        self.frozen || db_frozen
    }

    fn run_control(&mut self, origin: &Origin, c: &ReqControl, out: &Outbox) -> ControlResult {
        let data = &c.data[..];
        match c.opcode {
            Opcode::Getdbpath => self.getdbpath(data),
            Opcode::GetDbmap => self.get_dbmap(),
            Opcode::GetDbname => self.get_dbname(data),
            Opcode::DbAttach => self.db_attach(data, crate::DbKind::Volatile),
            Opcode::DbAttachPersistent => self.db_attach(data, crate::DbKind::Persistent),
            Opcode::DbAttachReplicated => self.db_attach(data, crate::DbKind::Replicated),
            Opcode::DbOpenFlags => self.db_open_flags(data),
            Opcode::GetDbSeqnum => self.get_db_seqnum(data),
            Opcode::SetDbReadonly => self.set_db_readonly(data),
            Opcode::SetDbSticky => self.set_db_sticky(data),
            Opcode::DbGetHealth => self.db_get_health(data),
            Opcode::DbSetHealthy => self.db_set_healthy(data),
            Opcode::GetDbStatistics => self.get_db_statistics(data),
            Opcode::Getvnnmap => self.getvnnmap(),
            Opcode::Setvnnmap => self.setvnnmap(data),
            Opcode::GetRecmode => Ok((self.recovery_mode as i32, Vec::new())),
            Opcode::SetRecmode => self.set_recmode(data),
            Opcode::Freeze => self.freeze(),
            Opcode::Thaw => self.thaw(out),
            Opcode::DbFreeze => self.db_freeze(data),
            Opcode::DbThaw => self.db_thaw(data, out),
            Opcode::DbTransactionStart => self.db_transaction_start(data),
            Opcode::DbTransactionCommit => self.db_transaction_commit(data),
            Opcode::DbTransactionCancel => self.db_transaction_cancel(data),
            Opcode::WipeDatabase => self.wipe_database(data),
            Opcode::PullDb => self.pull_db(data),
            Opcode::PullDbPage => self.pull_db_page(data),
            Opcode::PushDb => self.push_db(data),
            Opcode::TraverseStart | Opcode::TraverseStartExt => {
                self.traverse_start(origin.client, c.opcode, data, out)
            }
            Opcode::TraverseAll | Opcode::TraverseAllExt => self.traverse_all(c.opcode, data, out),
            Opcode::TraverseData => self.traverse_data(origin.srcnode, data, out),
            Opcode::TraverseKill => self.traverse_kill(origin.client, data),
            Opcode::EnableSeqnum => self.enable_seqnum(data),
            Opcode::TryDeleteRecords => self.try_delete_records(data),
            Opcode::VacuumFetch => self.vacuum_fetch(data, out),
            Opcode::UpdateSeqnum => self.update_seqnum(origin.srcnode, data),
            Opcode::ScheduleForDeletion => self.schedule_for_deletion(data),
            Opcode::SetFailpoint => self.set_failpoint(data),
            other => fail(other.unhandled_by("ctdb-db")),
        }
    }
}

impl DbDaemon {
    /// Sends a client's attach on to every connected node, without a reply.
    fn broadcast_attach(&self, c: &ReqControl, out: &Outbox) {
        let packet = ctdb_protocol::Packet {
            generation: self.vnn_map.generation,
            destnode: ctdb_protocol::flags::dest::BROADCAST_CONNECTED,
            srcnode: self.pnn,
            reqid: 0,
            body: Body::ReqControl(ReqControl {
                flags: c.flags | NOREPLY,
                ..c.clone()
            }),
        };
        out.to_client(0, packet.to_bytes());
    }
}
