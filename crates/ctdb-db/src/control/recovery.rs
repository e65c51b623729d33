//! The data side of recovery: vnn map, generation, recovery mode, freeze and thaw,
//! wiping a database, and the per-database recovery transaction.

use ctdb_protocol::flags::recmode;
use ctdb_rpc::component::Outbox;

use super::{done, fail, ok, ControlResult};
use crate::payload::{self, TransDb, VnnMap};
use crate::DbDaemon;
use ctdb_protocol::Wire;

impl DbDaemon {
    pub(crate) fn getvnnmap(&self) -> ControlResult {
        ok(self.vnn_map.to_bytes())
    }

    /// SETVNNMAP: only while recovering, as Samba insists.
    pub(crate) fn setvnnmap(&mut self, data: &[u8]) -> ControlResult {
        if self.recovery_mode == recmode::NORMAL {
            return fail("SETVNNMAP is only allowed in recovery mode");
        }
        let map = VnnMap::from_bytes(data)?;
        if map.map.is_empty() {
            return fail("SETVNNMAP with an empty map");
        }
        tracing::info!(generation = map.generation, map = ?map.map, "new vnn map");
        self.vnn_map = map;
        done()
    }

    pub(crate) fn set_recmode(&mut self, data: &[u8]) -> ControlResult {
        let mode = payload::leading_u32(data)?;
        if mode != recmode::NORMAL && mode != recmode::ACTIVE {
            return fail(format!("invalid recovery mode {mode}"));
        }
        if mode != self.recovery_mode {
            tracing::info!(mode, "recovery mode changed");
        }
        self.recovery_mode = mode;
        done()
    }

    pub(crate) fn freeze(&mut self) -> ControlResult {
        self.frozen = true;
        done()
    }

    /// THAW: every database thaws; waiting calls run.
    pub(crate) fn thaw(&mut self, out: &Outbox) -> ControlResult {
        self.frozen = false;
        for db in self.registry.iter_mut() {
            db.frozen = false;
            db.transaction = None;
        }
        self.replay_deferred(out);
        done()
    }

    pub(crate) fn db_freeze(&mut self, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.frozen = true;
        }
        done()
    }

    pub(crate) fn db_thaw(&mut self, data: &[u8], out: &Outbox) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.frozen = false;
            db.transaction = None;
        }
        self.replay_deferred(out);
        done()
    }

    fn is_db_frozen(&self, db_id: u32) -> bool {
        self.frozen || self.registry.get(db_id).is_some_and(|d| d.frozen)
    }

    pub(crate) fn db_transaction_start(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, tid } = TransDb::from_bytes(data)?;
        self.db_arg(data)?;
        if !self.is_db_frozen(db_id) {
            return fail(format!("database 0x{db_id:08x} is not frozen"));
        }
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = Some(tid);
        }
        done()
    }

    pub(crate) fn db_transaction_commit(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, tid } = TransDb::from_bytes(data)?;
        let db = self.db_arg(data)?;
        if db.transaction != Some(tid) {
            return fail(format!(
                "no transaction {tid} open on database 0x{db_id:08x}"
            ));
        }
        self.store.flush()?;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = None;
        }
        done()
    }

    pub(crate) fn db_transaction_cancel(&mut self, data: &[u8]) -> ControlResult {
        let db_id = self.db_arg(data)?.db_id;
        if let Some(db) = self.registry.get_mut(db_id) {
            db.transaction = None;
        }
        done()
    }

    /// WIPE_DATABASE (`ctdb_transdb`): empties a frozen database.
    pub(crate) fn wipe_database(&mut self, data: &[u8]) -> ControlResult {
        let TransDb { db_id, .. } = TransDb::from_bytes(data)?;
        let db = self.db_arg(data)?;
        if !self.is_db_frozen(db_id) {
            return fail(format!("cannot wipe {}: database is not frozen", db.name));
        }
        let (tree, name, persistent) = (db.tree(), db.name.clone(), !db.is_volatile());
        self.store.clear(&tree)?;
        if persistent {
            self.store.flush()?;
        }
        tracing::info!(db = %name, "wiped");
        done()
    }
}
