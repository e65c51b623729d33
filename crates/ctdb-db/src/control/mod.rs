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
use ctdb_rpc::component::{ControlTable, Outbox};
use ctdb_rpc::Envelope;

use crate::{DbDaemon, Origin};

/// One control of ctdb-db's: its result now, or `None` when it is answered later
/// (TRANS3_COMMIT once the commit is on every node, DB_VACUUM when the pass is over).
type Handler = fn(&mut DbDaemon, &Request<'_>) -> Option<ControlResult>;

/// A control as its handler sees it.
pub(crate) struct Request<'a> {
    pub origin: Origin,
    pub opcode: Opcode,
    pub data: &'a [u8],
    /// The generation in the packet's header (that of the vnn map its sender had).
    pub generation: u32,
    /// The control's flags (NOREPLY: nobody waits for an answer).
    pub flags: u32,
    pub out: &'a Outbox,
}

/// Every control ctdb-db answers, and its handler: what ctdb-db dispatches and what it
/// declares to transport (which routes these here) are this one table.
pub(crate) static CONTROLS: ControlTable<Handler> = ControlTable::new(&[
    // databases (db.rs)
    (Opcode::Getdbpath, |d, r| Some(d.getdbpath(r.data))),
    (Opcode::GetDbmap, |d, _| Some(d.get_dbmap())),
    (Opcode::GetDbname, |d, r| Some(d.get_dbname(r.data))),
    (Opcode::DbAttach, |d, r| {
        Some(d.db_attach(r.data, crate::DbKind::Volatile))
    }),
    (Opcode::DbAttachPersistent, |d, r| {
        Some(d.db_attach(r.data, crate::DbKind::Persistent))
    }),
    (Opcode::DbAttachReplicated, |d, r| {
        Some(d.db_attach(r.data, crate::DbKind::Replicated))
    }),
    (Opcode::DbOpenFlags, |d, r| Some(d.db_open_flags(r.data))),
    (Opcode::GetDbSeqnum, |d, r| Some(d.get_db_seqnum(r.data))),
    (Opcode::EnableSeqnum, |d, r| Some(d.enable_seqnum(r.data))),
    (Opcode::UpdateSeqnum, |d, r| {
        Some(d.update_seqnum(r.origin.srcnode, r.data))
    }),
    (Opcode::ScheduleForDeletion, |d, r| {
        Some(d.schedule_for_deletion(r.data))
    }),
    (Opcode::SetDbReadonly, |d, r| {
        Some(d.set_db_readonly(r.data))
    }),
    (Opcode::SetDbSticky, |d, r| Some(d.set_db_sticky(r.data))),
    (Opcode::DbGetHealth, |d, r| Some(d.db_get_health(r.data))),
    (Opcode::DbSetHealthy, |d, r| Some(d.db_set_healthy(r.data))),
    (Opcode::GetDbStatistics, |d, r| {
        Some(d.get_db_statistics(r.data))
    }),
    (Opcode::DbDetach, |d, r| d.db_detach(r)),
    // recovery (recovery.rs)
    (Opcode::Getvnnmap, |d, _| Some(d.getvnnmap())),
    (Opcode::Setvnnmap, |d, r| Some(d.setvnnmap(r.data))),
    (Opcode::GetRecmode, |d, _| {
        Some(Ok((d.recovery_mode as i32, Vec::new())))
    }),
    (Opcode::SetRecmode, |d, r| Some(d.set_recmode(r.data))),
    (Opcode::Freeze, |d, _| Some(d.freeze())),
    (Opcode::Thaw, |d, r| Some(d.thaw(r.out))),
    (Opcode::DbFreeze, |d, r| Some(d.db_freeze(r.data))),
    (Opcode::DbThaw, |d, r| Some(d.db_thaw(r.data, r.out))),
    (Opcode::DbTransactionStart, |d, r| {
        Some(d.db_transaction_start(r.data))
    }),
    (Opcode::DbTransactionCommit, |d, r| {
        Some(d.db_transaction_commit(r.data))
    }),
    (Opcode::DbTransactionCancel, |d, r| {
        Some(d.db_transaction_cancel(r.data))
    }),
    (Opcode::WipeDatabase, |d, r| Some(d.wipe_database(r.data))),
    (Opcode::PullDb, |d, r| Some(d.pull_db(r.data))),
    (Opcode::PullDbPage, |d, r| Some(d.pull_db_page(r.data))),
    (Opcode::PushDb, |d, r| Some(d.push_db(r.data))),
    // traverse (traverse.rs)
    (Opcode::TraverseStart, |d, r| {
        Some(d.traverse_start(r.origin.client, r.opcode, r.data, r.out))
    }),
    (Opcode::TraverseStartExt, |d, r| {
        Some(d.traverse_start(r.origin.client, r.opcode, r.data, r.out))
    }),
    (Opcode::TraverseAll, |d, r| {
        Some(d.traverse_all(r.opcode, r.data, r.out))
    }),
    (Opcode::TraverseAllExt, |d, r| {
        Some(d.traverse_all(r.opcode, r.data, r.out))
    }),
    (Opcode::TraverseData, |d, r| {
        Some(d.traverse_data(r.origin.srcnode, r.data, r.out))
    }),
    (Opcode::TraverseKill, |d, r| {
        Some(d.traverse_kill(r.origin.client, r.data))
    }),
    // persistent databases (persistent.rs)
    (Opcode::Trans3Commit, |d, r| {
        d.trans3_commit(r.origin, r.generation, r.data, r.out);
        None
    }),
    (Opcode::UpdateRecord, |d, r| {
        Some(d.update_record(&r.origin, r.generation, r.data))
    }),
    // vacuuming (vacuum.rs)
    (Opcode::TryDeleteRecords, |d, r| {
        Some(d.try_delete_records(r.data))
    }),
    (Opcode::VacuumFetch, |d, r| {
        Some(d.vacuum_fetch(r.data, r.out))
    }),
    (Opcode::DbVacuum, |d, r| {
        d.db_vacuum(r.origin, r.data, r.out).err().map(Err)
    }),
    // fault injection in test clusters (recovery.rs; transport routes it by its data)
    (Opcode::SetFailpoint, |d, r| Some(d.set_failpoint(r.data))),
]);

/// The opcodes of the controls ctdb-db owns.
pub fn owned_controls() -> Vec<Opcode> {
    CONTROLS.opcodes().collect()
}

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
        let request = Request {
            origin,
            opcode,
            data: &c.data,
            generation: packet_generation(&envelope),
            flags: c.flags,
            out,
        };
        let result = match CONTROLS.get(opcode) {
            Some(handler) => match handler(self, &request) {
                Some(result) => result,
                // Answered later.
                None => return,
            },
            None => fail(opcode.unhandled_by("ctdb-db")),
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
        self.answer_control(out, &origin, opcode, c.flags, result);
    }

    /// Answers a control from `origin` with `result` (only logged when the control
    /// was sent with NOREPLY).
    pub(crate) fn answer_control(
        &self,
        out: &Outbox,
        origin: &Origin,
        opcode: Opcode,
        flags: u32,
        result: ControlResult,
    ) {
        if flags & NOREPLY != 0 {
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
        self.send(out, origin, Body::ReplyControl(reply));
    }

    /// Whether a request on the database its data starts with must wait for a thaw.
    fn holds(&self, data: &[u8]) -> bool {
        let db_frozen = crate::payload::leading_u32(data)
            .ok()
            .and_then(|id| self.registry.get(id))
            .is_some_and(|db| db.frozen);
        self.frozen || db_frozen
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
