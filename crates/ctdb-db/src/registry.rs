//! The attached databases of this node, kept in the store's metadata tree so that
//! attachments survive a restart of ctdb-db.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ctdb_protocol::flags::db as dbflags;

use crate::hash;
use crate::store::{Store, StoreError, StoreResult};

/// The store tree that holds one entry per attached database.
pub const META_TREE: &str = "ctdb-db/databases";
const META_VERSION: u8 = 1;

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
        tree_name(self.db_id)
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
        let mut out = Vec::with_capacity(10 + self.name.len());
        out.push(META_VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    fn decode(db_id: u32, value: &[u8]) -> Option<Self> {
        if value.len() < 10 || value[0] != META_VERSION {
            return None;
        }
        let flags = value[1];
        let seq = u64::from_le_bytes(value[2..10].try_into().ok()?);
        let name = String::from_utf8(value[10..].to_vec()).ok()?;
        Some(Self {
            db_id,
            name,
            flags,
            seq,
            frozen: false,
            transaction: None,
        })
    }
}

/// The tree name of database `db_id`.
pub fn tree_name(db_id: u32) -> String {
    format!("ctdb-db/db/{db_id:08x}")
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
        };
        store.put(META_TREE, &db_id.to_be_bytes(), &info.encode())?;
        store.flush()?;
        self.next_seq += 1;
        self.dbs.insert(db_id, info);
        Ok((db_id, true))
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
