//! The local tdb ("ltdb") behind a narrow interface. The storage engine lives in this
//! file only: [`SledStore`] is the one implementation (one sled `Db` per node, one
//! `Tree` per database, plus a metadata tree).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// Calls `f` for every entry whose key sorts after `after` (every entry for
    /// `None`), in key order, until it returns `false`: a scan resumed where the last
    /// one stopped.
    fn scan_after(
        &self,
        tree: &str,
        after: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        self.scan(tree, &mut |k, v| match after {
            Some(a) if k <= a => true,
            _ => f(k, v),
        })
    }
    /// Bytes the store takes on disk (0 when it cannot tell).
    fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(0)
    }
    /// Bytes of keys and values over every tree, counting until `stop_above`
    /// (`None` when above it, or when the store cannot tell).
    fn live_bytes(&self, _stop_above: u64) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    /// Writes every entry of every tree into a fresh copy of the store and makes it
    /// the store, giving back the space of what was deleted. `Ok(false)` when the
    /// store does not do it.
    fn rewrite(&self) -> StoreResult<bool> {
        Ok(false)
    }
}

/// [`Store`] on sled.
///
/// [`rewrite`](Store::rewrite) swaps the directory: every tree is copied into
/// `<path>.fresh`, flushed and closed; the old database is closed, `<path>` renamed
/// `<path>.old`, `<path>.fresh` renamed `<path>`, and that is opened. [`open`]
/// finishes or undoes a switch a crash interrupted: without `<path>` the complete
/// `<path>.old` comes back; leftovers of either name beside `<path>` are removed.
///
/// [`open`]: SledStore::open
pub struct SledStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    /// `None` only if a rewrite could open neither copy again.
    db: Option<sled::Db>,
    trees: HashMap<String, sled::Tree>,
}

/// How often sled writes buffered updates out in the background.
pub const FLUSH_EVERY_MS: u64 = 200;

/// Most memory sled's page cache may hold (its default is 1 GiB): a node's memory must
/// stay flat however many records pass through it.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// `<path><suffix>`: the copies a rewrite makes beside the store.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("{what} {}: {e}", path.display()))
}

/// Bytes of the files under `path` as the file system allocated them.
pub fn dir_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

impl SledStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let old = beside(path, ".old");
        let fresh = beside(path, ".fresh");
        if !path.exists() && old.exists() {
            tracing::warn!(path = %path.display(), "a store rewrite was interrupted: back to the old copy");
            std::fs::rename(&old, path).map_err(|e| io_error("cannot restore", &old, e))?;
        }
        for leftover in [old, fresh] {
            if leftover.exists() {
                if let Err(e) = std::fs::remove_dir_all(&leftover) {
                    tracing::warn!(path = %leftover.display(), "cannot remove a leftover store copy: {e}");
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                db: Some(Self::open_db(path)?),
                trees: HashMap::new(),
            }),
        })
    }

    fn open_db(path: &Path) -> StoreResult<sled::Db> {
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
        Ok(db)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn tree(&self, name: &str) -> StoreResult<sled::Tree> {
        let mut inner = self.inner();
        if let Some(tree) = inner.trees.get(name) {
            return Ok(tree.clone());
        }
        let tree = inner.db()?.open_tree(name)?;
        inner.trees.insert(name.to_string(), tree.clone());
        Ok(tree)
    }

    /// Copies every tree of `from` into a new database at `to`, flushed and closed.
    fn copy_into(from: &sled::Db, to: &Path) -> StoreResult<()> {
        if to.exists() {
            std::fs::remove_dir_all(to).map_err(|e| io_error("cannot remove", to, e))?;
        }
        let fresh = Self::open_db(to)?;
        for name in from.tree_names() {
            let source = from.open_tree(&name)?;
            let target = fresh.open_tree(&name)?;
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for entry in source.iter() {
                let (k, v) = entry?;
                batch.insert(k, v);
                n += 1;
                if n % 10_000 == 0 {
                    target.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            target.apply_batch(batch)?;
        }
        fresh.flush()?;
        Ok(())
    }

    /// Makes the copy at `fresh` the store (see the type's text); the old database
    /// is closed. On failure the old copy is the store again.
    fn switch_to(&self, inner: &mut Inner, fresh: &Path) -> StoreResult<()> {
        let old = beside(&self.path, ".old");
        if let Err(e) = std::fs::rename(&self.path, &old) {
            inner.db = Some(Self::open_db(&self.path)?);
            return Err(io_error("cannot rename", &self.path, e));
        }
        let switched = std::fs::rename(fresh, &self.path)
            .map_err(|e| io_error("cannot rename", fresh, e))
            .and_then(|()| sync_dir(&self.path))
            .and_then(|()| Self::open_db(&self.path));
        match switched {
            Ok(db) => {
                inner.db = Some(db);
                if let Err(e) = std::fs::remove_dir_all(&old) {
                    tracing::warn!(path = %old.display(), "cannot remove the old store copy: {e}");
                }
                Ok(())
            }
            Err(e) => {
                if self.path.exists() {
                    let _ = std::fs::rename(&self.path, fresh);
                }
                std::fs::rename(&old, &self.path)
                    .map_err(|e| io_error("cannot restore", &old, e))?;
                inner.db = Some(Self::open_db(&self.path)?);
                Err(e)
            }
        }
    }
}

impl Inner {
    fn db(&self) -> StoreResult<&sled::Db> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Engine("the store could not be opened again".into()))
    }
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot sync", dir, e))
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

    fn scan_after(
        &self,
        tree: &str,
        after: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        use std::ops::Bound;
        let tree = self.tree(tree)?;
        let range = match after {
            Some(a) => tree.range::<&[u8], _>((Bound::Excluded(a), Bound::Unbounded)),
            None => tree.iter(),
        };
        for entry in range {
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
        let dropped = {
            let mut inner = self.inner();
            inner.trees.remove(tree);
            inner.db()?.drop_tree(tree)
        };
        match dropped {
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
        self.inner().db()?.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(dir_size(&self.path))
    }

    fn live_bytes(&self, stop_above: u64) -> StoreResult<Option<u64>> {
        let inner = self.inner();
        let db = inner.db()?;
        let mut total = 0u64;
        for name in db.tree_names() {
            for entry in db.open_tree(&name)?.iter() {
                let (k, v) = entry?;
                total += (k.len() + v.len()) as u64;
                if total > stop_above {
                    return Ok(None);
                }
            }
        }
        Ok(Some(total))
    }

    fn rewrite(&self) -> StoreResult<bool> {
        let mut inner = self.inner();
        let fresh = beside(&self.path, ".fresh");
        {
            let db = inner.db()?;
            db.flush()?;
            Self::copy_into(db, &fresh)?;
        }
        // Every handle of the old database goes, so that it closes.
        inner.trees.clear();
        inner.db = None;
        self.switch_to(&mut inner, &fresh)?;
        Ok(true)
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

    #[test]
    fn scan_after_resumes_past_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("s.sled")).unwrap();
        for k in [b"a", b"b", b"c", b"d"] {
            s.put("t", k, b"v").unwrap();
        }
        let mut seen = Vec::new();
        s.scan_after("t", Some(b"b"), &mut |k, _| {
            seen.push(k.to_vec());
            seen.is_empty()
        })
        .unwrap();
        assert_eq!(seen, [b"c".to_vec()]);
        let mut all = 0;
        s.scan_after("t", None, &mut |_, _| {
            all += 1;
            true
        })
        .unwrap();
        assert_eq!(all, 4);
    }

    #[test]
    fn a_rewrite_keeps_every_tree_and_gives_back_the_space_of_deleted_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sled");
        let s = SledStore::open(&path).unwrap();
        s.put("meta", b"m", b"kept").unwrap();
        let big = vec![9u8; 200];
        for chunk in 0..20u32 {
            let ops = (0..1_000u32)
                .map(|i| BatchOp::Put((chunk * 1_000 + i).to_be_bytes().to_vec(), big.clone()))
                .collect();
            s.batch("t", ops).unwrap();
        }
        for i in 0..20_000u32 {
            if i % 1_000 != 0 {
                s.delete("t", &i.to_be_bytes()).unwrap();
            }
        }
        s.flush().unwrap();
        let before = s.size_on_disk().unwrap();
        assert_eq!(s.live_bytes(u64::MAX).unwrap(), Some(20 * 204 + 5));
        assert_eq!(s.live_bytes(100).unwrap(), None);
        assert!(s.rewrite().unwrap());
        let after = s.size_on_disk().unwrap();
        assert!(after * 4 < before, "{before} -> {after}");
        assert_eq!(s.get("meta", b"m").unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(s.get("t", &0u32.to_be_bytes()).unwrap(), Some(big.clone()));
        assert_eq!(s.get("t", &1u32.to_be_bytes()).unwrap(), None);
        // Writable and durable afterwards.
        s.put("t", b"new", b"1").unwrap();
        s.flush().unwrap();
        drop(s);
        assert!(!beside(&path, ".old").exists() && !beside(&path, ".fresh").exists());
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.get("t", b"new").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get("meta", b"m").unwrap().as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn open_undoes_a_switch_a_crash_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sled");
        {
            let s = SledStore::open(&path).unwrap();
            s.put("t", b"k", b"old copy").unwrap();
            s.flush().unwrap();
        }
        // Killed between the two renames: the old copy renamed away, a fresh one beside.
        std::fs::rename(&path, beside(&path, ".old")).unwrap();
        std::fs::create_dir(beside(&path, ".fresh")).unwrap();
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.get("t", b"k").unwrap().as_deref(), Some(&b"old copy"[..]));
        assert!(!beside(&path, ".fresh").exists());
    }
}
