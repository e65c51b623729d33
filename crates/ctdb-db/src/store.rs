//! The local tdb ("ltdb") behind a narrow interface. The storage engine lives in this
//! file only: [`SledStore`] is the one implementation (one sled `Db` per node, one
//! `Tree` per database, plus a metadata tree).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One change of an atomic [`Store::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Named trees of byte keys and values.
pub trait Store: Send + 'static {
    fn get(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> StoreResult<()>;
    fn delete(&self, tree: &str, key: &[u8]) -> StoreResult<()>;
    /// Calls `f` for every entry in key order until it returns `false`.
    fn scan(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()>;
    /// Applies every change or none.
    fn batch(&self, tree: &str, ops: Vec<BatchOp>) -> StoreResult<()>;
    /// Removes every entry of `tree`.
    fn clear(&self, tree: &str) -> StoreResult<()>;
    /// Makes everything written so far durable.
    fn flush(&self) -> StoreResult<()>;
}

/// [`Store`] on sled.
pub struct SledStore {
    db: sled::Db,
    trees: Mutex<HashMap<String, sled::Tree>>,
}

/// How often sled writes buffered updates out in the background.
pub const FLUSH_EVERY_MS: u64 = 200;

/// Most memory sled's page cache may hold (its default is 1 GiB): a node's memory must
/// stay flat however many records pass through it.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl SledStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        // Volatile writes reach the file within FLUSH_EVERY_MS even if the process is
        // killed; persistent writes are flushed before they are acknowledged.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(FLUSH_EVERY_MS));
        // sled's flusher thread lets go of the file lock a moment after the last handle
        // is dropped (and a process being replaced may still hold it): wait a little.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Self {
            db,
            trees: Mutex::new(HashMap::new()),
        })
    }

    fn tree(&self, name: &str) -> StoreResult<sled::Tree> {
        let mut trees = self
            .trees
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tree) = trees.get(name) {
            return Ok(tree.clone());
        }
        let tree = self.db.open_tree(name)?;
        trees.insert(name.to_string(), tree.clone());
        Ok(tree)
    }
}

impl Store for SledStore {
    fn get(&self, tree: &str, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.tree(tree)?.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.tree(tree)?.insert(key, value)?;
        Ok(())
    }

    fn delete(&self, tree: &str, key: &[u8]) -> StoreResult<()> {
        self.tree(tree)?.remove(key)?;
        Ok(())
    }

    fn scan(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> StoreResult<()> {
        for entry in self.tree(tree)?.iter() {
            let (k, v) = entry?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn batch(&self, tree: &str, ops: Vec<BatchOp>) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                BatchOp::Put(k, v) => batch.insert(k, v),
                BatchOp::Delete(k) => batch.remove(k),
            }
        }
        self.tree(tree)?.apply_batch(batch)?;
        Ok(())
    }

    fn clear(&self, tree: &str) -> StoreResult<()> {
        // Dropping the whole tree is far cheaper than removing its entries one by one
        // (a recovery replaces databases of any size); it is recreated empty on use.
        self.trees
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(tree);
        match self.db.drop_tree(tree) {
            Ok(_) => Ok(()),
            Err(sled::Error::Unsupported(_)) => {
                self.tree(tree)?.clear()?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn flush(&self) -> StoreResult<()> {
        // Fault point `db::flush` (see control::recovery): the engine fails to flush.
        fail::fail_point!("db::flush", |arg| Err(StoreError::Engine(
            ctdb_rpc::faults::fired("db::flush", arg)
        )));
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_scan_batch_clear_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sled");
        {
            let s = SledStore::open(&path).unwrap();
            s.put("t", b"a", b"1").unwrap();
            s.batch(
                "t",
                vec![
                    BatchOp::Put(b"b".to_vec(), b"2".to_vec()),
                    BatchOp::Put(b"c".to_vec(), b"3".to_vec()),
                    BatchOp::Delete(b"a".to_vec()),
                ],
            )
            .unwrap();
            assert_eq!(s.get("t", b"a").unwrap(), None);
            let mut seen = Vec::new();
            s.scan("t", &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
            assert_eq!(seen.len(), 2);
            s.put("other", b"x", b"y").unwrap();
            s.clear("other").unwrap();
            assert_eq!(s.get("other", b"x").unwrap(), None);
            s.flush().unwrap();
        }
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.get("t", b"c").unwrap().as_deref(), Some(&b"3"[..]));
    }
}
