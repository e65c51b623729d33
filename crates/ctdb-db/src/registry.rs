//! The attached databases of this node, kept in the store's metadata tree so that
//! attachments survive a restart of ctdb-db.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ctdb_protocol::flags::db as dbflags;

use crate::hash;
use crate::store::{Store, StoreError, StoreResult};

/// The store tree that holds one entry per attached database.
pub const META_TREE: &str = "ctdb-db/databases";
/// Version 1 had no tree generation (always 0); version 2 adds it.
const META_VERSION: u8 = 2;

/// Where the TDB files of this node live (Samba's naming; GETDBPATH answers with
/// these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbDirs {
    pub volatile: PathBuf,
    pub persistent: PathBuf,
    pub state: PathBuf,
}

impl Default for DbDirs {
    /// Samba's defaults.
    fn default() -> Self {
        Self {
            volatile: PathBuf::from("/var/lib/ctdb/volatile"),
            persistent: PathBuf::from("/var/lib/ctdb/persistent"),
            state: PathBuf::from("/var/lib/ctdb/state"),
        }
    }
}

/// Which attach control made a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Volatile,
    Persistent,
    Replicated,
}

impl DbKind {
    pub fn flags(self) -> u8 {
        match self {
            DbKind::Volatile => 0,
            DbKind::Persistent => dbflags::PERSISTENT,
            DbKind::Replicated => dbflags::REPLICATED,
        }
    }
}

/// One attached database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    pub db_id: u32,
    pub name: String,
    /// `ctdb_protocol::flags::db` bits.
    pub flags: u8,
    /// Attach order: GET_DBMAP lists the newest first, as Samba does.
    pub seq: u64,
    /// Not persisted: frozen by DB_FREEZE until DB_THAW.
    pub frozen: bool,
    /// Not persisted: a DB_TRANSACTION_START is open.
    pub transaction: Option<u32>,
    /// Which store tree holds the records: a recovery fills the next one and makes it
    /// current in one durable write (see [`Registry::set_tree_gen`]).
    pub tree_gen: u32,
    /// Not persisted: the open recovery transaction wiped the database, so pushes go
    /// to [`staging_tree`](Self::staging_tree) until it commits.
    pub staging: bool,
}

impl DbInfo {
    pub fn is_persistent(&self) -> bool {
        self.flags & dbflags::PERSISTENT != 0
    }

    pub fn is_replicated(&self) -> bool {
        self.flags & dbflags::REPLICATED != 0
    }

    /// Neither persistent nor replicated.
    pub fn is_volatile(&self) -> bool {
        !self.is_persistent() && !self.is_replicated()
    }

    /// The store tree holding this database's records.
    pub fn tree(&self) -> String {
        generation_tree(self.db_id, self.tree_gen)
    }

    /// The tree a recovery transaction fills before it replaces [`tree`](Self::tree).
    pub fn staging_tree(&self) -> String {
        generation_tree(self.db_id, self.tree_gen.wrapping_add(1))
    }

    /// Samba's `<dir>/<name>.<pnn>`; persistent databases live in the persistent dir.
    pub fn path(&self, dirs: &DbDirs, pnn: u32) -> String {
        let dir: &Path = if self.is_persistent() {
            &dirs.persistent
        } else {
            // Samba 4.17 reported replicated databases in the volatile dir too.
            &dirs.volatile
        };
        format!("{}/{}.{}", dir.display(), self.name, pnn)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.name.len());
        out.push(META_VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.tree_gen.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    fn decode(db_id: u32, value: &[u8]) -> Option<Self> {
        let (tree_gen, name_at) = match value.first() {
            Some(1) => (0, 10),
            Some(2) => (u32::from_le_bytes(value.get(10..14)?.try_into().ok()?), 14),
            _ => return None,
        };
        let flags = *value.get(1)?;
        let seq = u64::from_le_bytes(value.get(2..10)?.try_into().ok()?);
        let name = String::from_utf8(value.get(name_at..)?.to_vec()).ok()?;
        Some(Self {
            db_id,
            name,
            flags,
            seq,
            frozen: false,
            transaction: None,
            tree_gen,
            staging: false,
        })
    }
}

/// The tree name of database `db_id` (its first tree generation).
pub fn tree_name(db_id: u32) -> String {
    generation_tree(db_id, 0)
}

/// The tree of generation `gen` of database `db_id`.
fn generation_tree(db_id: u32, gen: u32) -> String {
    if gen == 0 {
        format!("ctdb-db/db/{db_id:08x}")
    } else {
        format!("ctdb-db/db/{db_id:08x}.{gen}")
    }
}

/// Why an attach failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("invalid database name {0:?}")]
    BadName(String),
    #[error("db_id 0x{db_id:08x} hash collision: {existing:?} and {name:?}")]
    Collision {
        db_id: u32,
        existing: String,
        name: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every attached database, by id.
#[derive(Debug, Default)]
pub struct Registry {
    dbs: BTreeMap<u32, DbInfo>,
    next_seq: u64,
}

impl Registry {
    /// Loads the attachments recorded in `store`. Entries that cannot be read are
    /// logged and skipped.
    pub fn load(store: &dyn Store) -> StoreResult<Self> {
        let mut reg = Registry::default();
        store.scan(META_TREE, &mut |key, value| {
            let db_id = match <[u8; 4]>::try_from(key) {
                Ok(k) => u32::from_be_bytes(k),
                Err(_) => {
                    tracing::warn!(?key, "ignoring malformed database metadata key");
                    return true;
                }
            };
            match DbInfo::decode(db_id, value) {
                Some(info) => {
                    reg.next_seq = reg.next_seq.max(info.seq + 1);
                    reg.dbs.insert(db_id, info);
                }
                None => tracing::warn!(db_id, "ignoring unreadable database metadata"),
            }
            true
        })?;
        Ok(reg)
    }

    pub fn get(&self, db_id: u32) -> Option<&DbInfo> {
        self.dbs.get(&db_id)
    }

    pub fn get_mut(&mut self, db_id: u32) -> Option<&mut DbInfo> {
        self.dbs.get_mut(&db_id)
    }

    pub fn by_name(&self, name: &str) -> Option<&DbInfo> {
        self.dbs.values().find(|d| d.name == name)
    }

    pub fn len(&self) -> usize {
        self.dbs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty()
    }

    /// Every database, newest attachment first (Samba's db_list order).
    pub fn newest_first(&self) -> Vec<&DbInfo> {
        let mut all: Vec<&DbInfo> = self.dbs.values().collect();
        all.sort_by_key(|d| std::cmp::Reverse(d.seq));
        all
    }

    pub fn iter(&self) -> impl Iterator<Item = &DbInfo> {
        self.dbs.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut DbInfo> {
        self.dbs.values_mut()
    }

    /// Attaches `name` as `kind`, or returns the existing database of that name
    /// (whatever its kind, as Samba does). Returns the id and whether it is new.
    pub fn attach(
        &mut self,
        store: &dyn Store,
        name: &str,
        kind: DbKind,
    ) -> Result<(u32, bool), AttachError> {
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(AttachError::BadName(name.to_string()));
        }
        if let Some(existing) = self.by_name(name) {
            return Ok((existing.db_id, false));
        }
        let db_id = hash::db_id(name);
        if let Some(other) = self.dbs.get(&db_id) {
            return Err(AttachError::Collision {
                db_id,
                existing: other.name.clone(),
                name: name.to_string(),
            });
        }
        let info = DbInfo {
            db_id,
            name: name.to_string(),
            flags: kind.flags(),
            seq: self.next_seq,
            frozen: false,
            transaction: None,
            tree_gen: 0,
            staging: false,
        };
        store.put(META_TREE, &db_id.to_be_bytes(), &info.encode())?;
        store.flush()?;
        self.next_seq += 1;
        self.dbs.insert(db_id, info);
        Ok((db_id, true))
    }

    /// Forgets `db_id` (DB_DETACH), durably; what it was.
    pub fn detach(&mut self, store: &dyn Store, db_id: u32) -> StoreResult<Option<DbInfo>> {
        if !self.dbs.contains_key(&db_id) {
            return Ok(None);
        }
        store.delete(META_TREE, &db_id.to_be_bytes())?;
        store.flush()?;
        Ok(self.dbs.remove(&db_id))
    }

    /// Makes the staging tree of `db_id` its current one, durably: one write of the
    /// database's entry, flushed. Returns the tree that was current before.
    pub fn set_tree_gen(&mut self, store: &dyn Store, db_id: u32) -> StoreResult<Option<String>> {
        let Some(info) = self.dbs.get_mut(&db_id) else {
            return Ok(None);
        };
        let old = info.tree();
        info.tree_gen = info.tree_gen.wrapping_add(1);
        store.put(META_TREE, &db_id.to_be_bytes(), &info.encode())?;
        store.flush()?;
        Ok(Some(old))
    }

    /// Sets `flag` on `db_id` and records it durably.
    pub fn set_flag(&mut self, store: &dyn Store, db_id: u32, flag: u8) -> StoreResult<bool> {
        let Some(info) = self.dbs.get_mut(&db_id) else {
            return Ok(false);
        };
        if info.flags & flag == flag {
            return Ok(true);
        }
        info.flags |= flag;
        store.put(META_TREE, &db_id.to_be_bytes(), &info.encode())?;
        store.flush()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[test]
    fn attachments_and_flags_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sled");
        {
            let store = SledStore::open(&path).unwrap();
            let mut reg = Registry::load(&store).unwrap();
            let (id, new) = reg
                .attach(&store, "capture_vol.tdb", DbKind::Volatile)
                .unwrap();
            assert!(new);
            assert_eq!(id, 0x6896_115a);
            reg.attach(&store, "capture_pers.tdb", DbKind::Persistent)
                .unwrap();
            // Attaching again by any control gives the same id.
            assert_eq!(
                reg.attach(&store, "capture_pers.tdb", DbKind::Volatile)
                    .unwrap(),
                (0x6ef9_1a74, false)
            );
            assert!(reg.set_flag(&store, id, dbflags::STICKY).unwrap());
        }
        let store = SledStore::open(&path).unwrap();
        let reg = Registry::load(&store).unwrap();
        assert_eq!(reg.len(), 2);
        let names: Vec<&str> = reg.newest_first().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["capture_pers.tdb", "capture_vol.tdb"]);
        assert_eq!(reg.get(0x6896_115a).unwrap().flags, dbflags::STICKY);
        assert!(reg.get(0x6ef9_1a74).unwrap().is_persistent());
    }

    #[test]
    fn version_1_entries_still_load_and_the_tree_generation_persists() {
        let mut v1 = vec![1, dbflags::PERSISTENT];
        v1.extend_from_slice(&3u64.to_le_bytes());
        v1.extend_from_slice(b"old.tdb");
        let info = DbInfo::decode(9, &v1).expect("version 1");
        assert_eq!(
            (info.name.as_str(), info.seq, info.tree_gen),
            ("old.tdb", 3, 0)
        );
        assert_eq!(info.tree(), tree_name(9));

        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("s.sled")).unwrap();
        let mut reg = Registry::load(&store).unwrap();
        let (id, _) = reg.attach(&store, "g.tdb", DbKind::Volatile).unwrap();
        let staging = reg.get(id).unwrap().staging_tree();
        assert_eq!(reg.set_tree_gen(&store, id).unwrap(), Some(tree_name(id)));
        let reg = Registry::load(&store).unwrap();
        assert_eq!(reg.get(id).unwrap().tree(), staging);
        assert!(DbInfo::decode(9, &[3, 0]).is_none());
    }

    #[test]
    fn paths_follow_samba() {
        let dirs = DbDirs {
            volatile: "/tmp/rc/node.0/db/volatile".into(),
            persistent: "/tmp/rc/node.0/db/persistent".into(),
            state: "/tmp/rc/node.0/db/state".into(),
        };
        let mut info = DbInfo {
            db_id: 0x6896_115a,
            name: "capture_vol.tdb".into(),
            flags: 0,
            seq: 0,
            frozen: false,
            transaction: None,
            tree_gen: 0,
            staging: false,
        };
        assert_eq!(
            info.path(&dirs, 0),
            "/tmp/rc/node.0/db/volatile/capture_vol.tdb.0"
        );
        info.flags = dbflags::PERSISTENT;
        info.name = "capture_pers.tdb".into();
        assert_eq!(
            info.path(&dirs, 0),
            "/tmp/rc/node.0/db/persistent/capture_pers.tdb.0"
        );
        info.flags = dbflags::REPLICATED;
    }
}
