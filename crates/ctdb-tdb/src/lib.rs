//! A small safe binding to libtdb, the trivial database library of Samba.
//!
//! ctdb-db keeps every attached database in a TDB file that Samba's processes (smbd,
//! winbindd, Samba's `ctdb` tool) open and change themselves, under the same fcntl chain
//! locks. So the file has to be written by the very library they link: Debian's
//! `libtdb` (package `libtdb-dev`). This crate is the one place of ctdb-rs where
//! `unsafe` code lives; everything it exposes is safe.
//!
//! A [`Tdb`] is one open file. libtdb keeps per-open state (lock counts, the mmap, the
//! transaction) without any synchronisation, so a `Tdb` may move between threads but is
//! never shared by them (`Send`, not `Sync`). fcntl locks belong to the process: two
//! `Tdb`s of the same file in one process are refused by libtdb (`EBUSY`).

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uchar, c_void};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// `tdb_open` flags (`TDB_*` of tdb.h).
pub mod flags {
    pub const DEFAULT: i32 = 0;
    /// Wipe the file when this is the first open of it (an opener with this flag holds
    /// a read lock on the file's ACTIVE_LOCK for as long as it has it open).
    pub const CLEAR_IF_FIRST: i32 = 1;
    pub const NOSYNC: i32 = 64;
    pub const SEQNUM: i32 = 128;
    pub const DISALLOW_NESTING: i32 = 1024;
    /// Jenkins hash instead of the original one (what Samba's volatile databases use).
    pub const INCOMPATIBLE_HASH: i32 = 2048;
    pub const MUTEX_LOCKING: i32 = 4096;
}

/// The `TDB_ERROR` codes that callers tell apart.
pub mod code {
    pub const LOCK: i32 = 3;
    pub const NOLOCK: i32 = 6;
    pub const NOEXIST: i32 = 8;
}

/// A libtdb failure: what was being done, libtdb's error code and its text.
#[derive(Debug, thiserror::Error)]
pub enum TdbError {
    #[error("cannot open tdb {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tdb {path}: path contains a NUL byte")]
    BadPath { path: PathBuf },
    #[error("tdb {path}: {op} failed: {message} (TDB_ERROR {code})")]
    Call {
        path: PathBuf,
        op: &'static str,
        code: i32,
        message: String,
    },
}

impl TdbError {
    /// libtdb's `TDB_ERROR` code, 0 for an open failure.
    pub fn code(&self) -> i32 {
        match self {
            TdbError::Call { code, .. } => *code,
            _ => 0,
        }
    }
}

pub type TdbResult<T> = Result<T, TdbError>;

#[repr(C)]
struct TdbContext {
    _opaque: [u8; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct TdbData {
    dptr: *mut c_uchar,
    dsize: libc::size_t,
}

impl TdbData {
    /// A view of `bytes` for libtdb, which only reads through a key or value it is given.
    fn of(bytes: &[u8]) -> Self {
        TdbData {
            dptr: bytes.as_ptr().cast_mut(),
            dsize: bytes.len(),
        }
    }
}

type TraverseFn = unsafe extern "C" fn(*mut TdbContext, TdbData, TdbData, *mut c_void) -> c_int;

#[link(name = "tdb")]
extern "C" {
    fn tdb_open(
        name: *const c_char,
        hash_size: c_int,
        tdb_flags: c_int,
        open_flags: c_int,
        mode: libc::mode_t,
    ) -> *mut TdbContext;
    fn tdb_close(tdb: *mut TdbContext) -> c_int;
    fn tdb_error(tdb: *mut TdbContext) -> c_int;
    fn tdb_errorstr(tdb: *mut TdbContext) -> *const c_char;
    fn tdb_fetch(tdb: *mut TdbContext, key: TdbData) -> TdbData;
    fn tdb_store(tdb: *mut TdbContext, key: TdbData, dbuf: TdbData, flag: c_int) -> c_int;
    fn tdb_delete(tdb: *mut TdbContext, key: TdbData) -> c_int;
    fn tdb_chainlock(tdb: *mut TdbContext, key: TdbData) -> c_int;
    fn tdb_chainlock_nonblock(tdb: *mut TdbContext, key: TdbData) -> c_int;
    fn tdb_chainunlock(tdb: *mut TdbContext, key: TdbData) -> c_int;
    fn tdb_lockall_read_nonblock(tdb: *mut TdbContext) -> c_int;
    fn tdb_lockall_nonblock(tdb: *mut TdbContext) -> c_int;
    fn tdb_unlockall(tdb: *mut TdbContext) -> c_int;
    fn tdb_lockall_mark(tdb: *mut TdbContext) -> c_int;
    fn tdb_lockall_unmark(tdb: *mut TdbContext) -> c_int;
    fn tdb_unlockall_read(tdb: *mut TdbContext) -> c_int;
    fn tdb_traverse_read(
        tdb: *mut TdbContext,
        f: Option<TraverseFn>,
        private_data: *mut c_void,
    ) -> c_int;
    fn tdb_transaction_start(tdb: *mut TdbContext) -> c_int;
    fn tdb_transaction_commit(tdb: *mut TdbContext) -> c_int;
    fn tdb_transaction_cancel(tdb: *mut TdbContext) -> c_int;
    fn tdb_wipe_all(tdb: *mut TdbContext) -> c_int;
    fn tdb_get_flags(tdb: *mut TdbContext) -> c_int;
    fn tdb_enable_seqnum(tdb: *mut TdbContext);
    fn tdb_get_seqnum(tdb: *mut TdbContext) -> c_int;
    fn tdb_increment_seqnum_nonblock(tdb: *mut TdbContext);
    fn tdb_hash_size(tdb: *mut TdbContext) -> c_int;
    fn tdb_repack(tdb: *mut TdbContext) -> c_int;
    fn tdb_freelist_size(tdb: *mut TdbContext) -> c_int;
    fn tdb_fd(tdb: *mut TdbContext) -> c_int;
}

/// Bytes of libtdb's own fcntl locks (`tdb_private.h`): every opener holds OPEN_LOCK
/// while it opens the file, and an opener with CLEAR_IF_FIRST read-locks ACTIVE_LOCK
/// for as long as it has the file open.
const OPEN_LOCK: libc::off_t = 0;
const ACTIVE_LOCK: libc::off_t = 4;

/// `TDB_REPLACE`: store whether or not the key exists.
const TDB_REPLACE: c_int = 1;

/// One open TDB file.
pub struct Tdb {
    ctx: NonNull<TdbContext>,
    path: PathBuf,
}

// SAFETY: a tdb_context is plain heap state of libtdb, used by one thread at a time
// (`Tdb` is not `Sync`); nothing in it is tied to the thread that opened it, and its
// fcntl locks belong to the process.
unsafe impl Send for Tdb {}

impl Tdb {
    /// Opens (creating with mode 0600 if missing) the TDB file at `path`. `hash_size`
    /// counts only when the file is created (0: libtdb's default).
    pub fn open(path: &Path, hash_size: u32, tdb_flags: i32) -> TdbResult<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| TdbError::BadPath {
            path: path.to_path_buf(),
        })?;
        let hash_size = c_int::try_from(hash_size).unwrap_or(c_int::MAX);
        // SAFETY: c_path is a valid NUL-terminated string for the whole call.
        let ctx = unsafe {
            tdb_open(
                c_path.as_ptr(),
                hash_size,
                tdb_flags,
                libc::O_RDWR | libc::O_CREAT,
                0o600,
            )
        };
        match NonNull::new(ctx) {
            Some(ctx) => Ok(Tdb {
                ctx,
                path: path.to_path_buf(),
            }),
            None => Err(TdbError::Open {
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The flags the file is open with (`tdb_get_flags`).
    pub fn flags(&self) -> i32 {
        // SAFETY: ctx is an open tdb.
        unsafe { tdb_get_flags(self.ctx.as_ptr()) }
    }

    /// The number of hash chains of the file.
    pub fn hash_size(&self) -> u32 {
        // SAFETY: ctx is an open tdb.
        let n = unsafe { tdb_hash_size(self.ctx.as_ptr()) };
        u32::try_from(n).unwrap_or(0)
    }

    /// From now on every change this handle makes bumps the file's sequence number.
    pub fn enable_seqnum(&self) {
        // SAFETY: ctx is an open tdb.
        unsafe { tdb_enable_seqnum(self.ctx.as_ptr()) }
    }

    /// The file's sequence number (what Samba's clients compare to see a change).
    pub fn seqnum(&self) -> i32 {
        // SAFETY: ctx is an open tdb.
        unsafe { tdb_get_seqnum(self.ctx.as_ptr()) }
    }

    /// Bumps the file's sequence number unless its lock is taken right now.
    pub fn increment_seqnum(&self) {
        // SAFETY: ctx is an open tdb.
        unsafe { tdb_increment_seqnum_nonblock(self.ctx.as_ptr()) }
    }

    fn error(&self, op: &'static str) -> TdbError {
        // SAFETY: ctx is an open tdb; tdb_errorstr returns a static string.
        let (code, message) = unsafe {
            let code = tdb_error(self.ctx.as_ptr());
            let text = tdb_errorstr(self.ctx.as_ptr());
            let message = if text.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            };
            (code, message)
        };
        TdbError::Call {
            path: self.path.clone(),
            op,
            code,
            message,
        }
    }

    fn check(&self, rc: c_int, op: &'static str) -> TdbResult<()> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error(op))
        }
    }

    /// The value stored under `key`, if any.
    pub fn fetch(&self, key: &[u8]) -> TdbResult<Option<Vec<u8>>> {
        // SAFETY: the key view is valid for the call; a returned dptr is malloc'd by
        // libtdb, owned by us, copied and freed exactly once.
        unsafe {
            let data = tdb_fetch(self.ctx.as_ptr(), TdbData::of(key));
            if data.dptr.is_null() {
                let err = self.error("fetch");
                return match err.code() {
                    code::NOEXIST => Ok(None),
                    // A zero-length record comes back as NULL with no error.
                    0 => Ok(Some(Vec::new())),
                    _ => Err(err),
                };
            }
            let value = std::slice::from_raw_parts(data.dptr, data.dsize).to_vec();
            libc::free(data.dptr.cast());
            Ok(Some(value))
        }
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn store(&self, key: &[u8], value: &[u8]) -> TdbResult<()> {
        // SAFETY: both views are valid for the call; libtdb copies them.
        let rc = unsafe {
            tdb_store(
                self.ctx.as_ptr(),
                TdbData::of(key),
                TdbData::of(value),
                TDB_REPLACE,
            )
        };
        self.check(rc, "store")
    }

    /// Deletes `key`; a key that is not there is not an error.
    pub fn delete(&self, key: &[u8]) -> TdbResult<()> {
        // SAFETY: the key view is valid for the call.
        let rc = unsafe { tdb_delete(self.ctx.as_ptr(), TdbData::of(key)) };
        match self.check(rc, "delete") {
            Err(e) if e.code() == code::NOEXIST => Ok(()),
            other => other,
        }
    }

    /// Takes the chain lock of `key` if nobody else holds it: `Ok(false)` when another
    /// process does. Locks nest: each successful call needs one [`unlock_chain`].
    ///
    /// [`unlock_chain`]: Self::unlock_chain
    pub fn try_lock_chain(&self, key: &[u8]) -> TdbResult<bool> {
        // SAFETY: the key view is valid for the call.
        let rc = unsafe { tdb_chainlock_nonblock(self.ctx.as_ptr(), TdbData::of(key)) };
        match self.check(rc, "chainlock_nonblock") {
            Ok(()) => Ok(true),
            Err(e) if e.code() == code::LOCK || e.code() == code::NOLOCK => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the chain lock of `key`, waiting for whoever holds it.
    pub fn lock_chain(&self, key: &[u8]) -> TdbResult<()> {
        // SAFETY: the key view is valid for the call.
        let rc = unsafe { tdb_chainlock(self.ctx.as_ptr(), TdbData::of(key)) };
        self.check(rc, "chainlock")
    }

    /// Lets go of one hold of the chain lock of `key`.
    pub fn unlock_chain(&self, key: &[u8]) -> TdbResult<()> {
        // SAFETY: the key view is valid for the call; unlocking a chain not held is an
        // error libtdb reports, not undefined behaviour.
        let rc = unsafe { tdb_chainunlock(self.ctx.as_ptr(), TdbData::of(key)) };
        self.check(rc, "chainunlock")
    }

    /// Write-locks every chain of the file if no other process holds one: `Ok(false)`
    /// when one does. While held, other processes wait for any chain lock.
    pub fn try_lock_all(&self) -> TdbResult<bool> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_lockall_nonblock(self.ctx.as_ptr()) };
        match self.check(rc, "lockall_nonblock") {
            Ok(()) => Ok(true),
            Err(e) if e.code() == code::LOCK || e.code() == code::NOLOCK => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lets go of [`try_lock_all`](Self::try_lock_all).
    pub fn unlock_all(&self) -> TdbResult<()> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_unlockall(self.ctx.as_ptr()) };
        self.check(rc, "unlockall")
    }

    /// Runs `f` (which may start a transaction, which libtdb refuses while this handle
    /// holds locks) while the whole-file lock taken by
    /// [`try_lock_all`](Self::try_lock_all) stays with the process: libtdb is told to
    /// forget it without releasing it, then, after `f`, the whole file is unlocked.
    /// Other processes are kept out until `f` is done; the lock is gone afterwards.
    pub fn with_lock_all_released_after<T>(&self, f: impl FnOnce() -> T) -> TdbResult<T> {
        // SAFETY: ctx is an open tdb whose whole-file lock this handle holds.
        let rc = unsafe { tdb_lockall_unmark(self.ctx.as_ptr()) };
        self.check(rc, "lockall_unmark")?;
        let result = f();
        // Whatever `f`'s transaction released or not, the process ends up holding no
        // lock of the file: mark it as ours again, then release it whole.
        // SAFETY: as above; mark takes no lock, unlockall releases the whole range.
        let rc = unsafe { tdb_lockall_mark(self.ctx.as_ptr()) };
        self.check(rc, "lockall_mark")?;
        self.unlock_all()?;
        Ok(result)
    }

    /// Calls `f` with every record until it returns `false`; returns how many it saw.
    /// The whole file is read-locked first without waiting: `Ok(None)` when another
    /// process holds a chain, so the caller can try again later instead of blocking.
    pub fn try_for_each(
        &self,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> TdbResult<Option<usize>> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_lockall_read_nonblock(self.ctx.as_ptr()) };
        if let Err(e) = self.check(rc, "lockall_read_nonblock") {
            return if e.code() == code::LOCK || e.code() == code::NOLOCK {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let seen = self.for_each(f);
        // SAFETY: ctx is an open tdb whose read lock of everything we hold.
        let rc = unsafe { tdb_unlockall_read(self.ctx.as_ptr()) };
        let seen = seen?;
        self.check(rc, "unlockall_read")?;
        Ok(Some(seen))
    }

    /// Calls `f` with every record until it returns `false`, waiting for chain locks
    /// other processes hold; returns how many records it saw.
    pub fn for_each(&self, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> TdbResult<usize> {
        struct Visit<'a> {
            f: &'a mut dyn FnMut(&[u8], &[u8]) -> bool,
            panic: Option<Box<dyn std::any::Any + Send>>,
        }
        unsafe extern "C" fn visit(
            _tdb: *mut TdbContext,
            key: TdbData,
            value: TdbData,
            private: *mut c_void,
        ) -> c_int {
            // SAFETY: private is the &mut Visit passed below, alive for the traverse;
            // key and value point at dsize bytes libtdb owns during this callback.
            let visit = unsafe { &mut *private.cast::<Visit<'_>>() };
            let (key, value) = unsafe { (bytes_of(key), bytes_of(value)) };
            match catch_unwind(AssertUnwindSafe(|| (visit.f)(key, value))) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(panic) => {
                    visit.panic = Some(panic);
                    1
                }
            }
        }
        let mut state = Visit { f, panic: None };
        // SAFETY: visit only uses the state pointer during this call.
        let rc = unsafe {
            tdb_traverse_read(
                self.ctx.as_ptr(),
                Some(visit),
                (&mut state as *mut Visit<'_>).cast(),
            )
        };
        if let Some(panic) = state.panic {
            resume_unwind(panic);
        }
        usize::try_from(rc).map_err(|_| self.error("traverse_read"))
    }

    /// Starts a transaction: every change until [`Transaction::commit`] reaches the
    /// file at once, or not at all if the transaction is dropped.
    pub fn transaction(&self) -> TdbResult<Transaction<'_>> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_transaction_start(self.ctx.as_ptr()) };
        self.check(rc, "transaction_start")?;
        Ok(Transaction {
            tdb: self,
            open: true,
        })
    }

    /// How many entries the file's free list has (Samba's vacuuming repacks a file
    /// when this reaches its RepackLimit).
    pub fn freelist_size(&self) -> TdbResult<usize> {
        // SAFETY: ctx is an open tdb.
        let n = unsafe { tdb_freelist_size(self.ctx.as_ptr()) };
        usize::try_from(n).map_err(|_| self.error("freelist_size"))
    }

    /// `tdb_repack`: rewrites every record in one transaction so that the free space
    /// becomes one block at the end of the file, which later records reuse. The file
    /// does not get smaller (libtdb never shrinks a file; see
    /// [`recreate_if_alone`](Self::recreate_if_alone)). libtdb takes the transaction
    /// and whole-file locks, waiting for other processes' chain locks: take
    /// [`try_lock_all`](Self::try_lock_all) first and call this inside
    /// [`with_lock_all_released_after`](Self::with_lock_all_released_after) so that
    /// nothing waits. Refused inside a transaction.
    pub fn repack(&self) -> TdbResult<()> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_repack(self.ctx.as_ptr()) };
        self.check(rc, "repack")
    }

    /// Cuts the file to nothing and opens it again as a new, empty database of
    /// `hash_size` chains (the smallest the file can be), if no other process has it
    /// open or is opening it; `Ok(Err(self))`, untouched, if one has or is. Before the
    /// file is cut, `read` sees every record it holds (nobody else can change them
    /// then) and returns `false` to give up (`Ok(Err(self))`); the caller writes back
    /// those it keeps.
    ///
    /// Other openers are seen by libtdb's locks: the file's OPEN_LOCK is taken without
    /// waiting (so nobody opens it meanwhile: an opener waits for it, then finds the
    /// file empty and makes it a new database, as does this reopen), and ACTIVE_LOCK,
    /// which every process that opened the file with CLEAR_IF_FIRST holds (Samba's
    /// clients of volatile databases do), must be free of other processes. A process
    /// that opened the file without CLEAR_IF_FIRST is not seen. This handle must hold
    /// no lock and no transaction. A failure to open the file again is returned; the
    /// file is then empty.
    pub fn recreate_if_alone(
        self,
        hash_size: u32,
        tdb_flags: i32,
        read: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> TdbResult<Result<Tdb, Tdb>> {
        // SAFETY: ctx is an open tdb; tdb_fd returns its descriptor, which stays open
        // as long as `self`.
        let fd = unsafe { tdb_fd(self.ctx.as_ptr()) };
        if !self.fcntl_lock(fd, libc::F_SETLK, libc::F_WRLCK, OPEN_LOCK)? {
            return Ok(Err(self));
        }
        let mut probe = lock_range(libc::F_WRLCK, ACTIVE_LOCK);
        // SAFETY: fd is open; probe is a valid flock for F_GETLK to fill in.
        let rc = unsafe { libc::fcntl(fd, libc::F_GETLK, &mut probe) };
        if rc != 0 || probe.l_type != libc::F_UNLCK as libc::c_short {
            let err = (rc != 0).then(|| self.os_error("fcntl(F_GETLK)"));
            self.fcntl_lock(fd, libc::F_SETLK, libc::F_UNLCK, OPEN_LOCK)?;
            return match err {
                Some(e) => Err(e),
                None => Ok(Err(self)),
            };
        }
        let mut gave_up = false;
        let seen = self.for_each(&mut |k, v| {
            gave_up = !read(k, v);
            !gave_up
        });
        if seen.is_err() || gave_up {
            self.fcntl_lock(fd, libc::F_SETLK, libc::F_UNLCK, OPEN_LOCK)?;
            return seen.map(|_| Err(self));
        }
        // A file of length zero is made a new database by the next open (whoever
        // opens it first, under OPEN_LOCK).
        // SAFETY: fd is open; the mapping beyond the new end is never touched again:
        // the handle is closed next.
        if unsafe { libc::ftruncate(fd, 0) } != 0 {
            let e = self.os_error("ftruncate");
            self.fcntl_lock(fd, libc::F_SETLK, libc::F_UNLCK, OPEN_LOCK)?;
            return Err(e);
        }
        let path = self.path.clone();
        // Closing the descriptor lets go of every lock this process holds on the file.
        drop(self);
        Tdb::open(&path, hash_size, tdb_flags).map(Ok)
    }

    /// Takes (`F_WRLCK`) or releases (`F_UNLCK`) one byte of libtdb's lock area
    /// without waiting; false when another process holds it.
    fn fcntl_lock(
        &self,
        fd: c_int,
        cmd: c_int,
        kind: c_int,
        offset: libc::off_t,
    ) -> TdbResult<bool> {
        let lock = lock_range(kind, offset);
        // SAFETY: fd is this tdb's open descriptor; lock is a valid flock.
        let rc = unsafe { libc::fcntl(fd, cmd, &lock) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(TdbError::Call {
                path: self.path.clone(),
                op: "fcntl",
                code: 0,
                message: err.to_string(),
            }),
        }
    }

    fn os_error(&self, op: &'static str) -> TdbError {
        TdbError::Call {
            path: self.path.clone(),
            op,
            code: 0,
            message: std::io::Error::last_os_error().to_string(),
        }
    }

    /// Deletes every record.
    pub fn wipe_all(&self) -> TdbResult<()> {
        // SAFETY: ctx is an open tdb.
        let rc = unsafe { tdb_wipe_all(self.ctx.as_ptr()) };
        self.check(rc, "wipe_all")
    }
}

/// One byte of the file's lock area, for fcntl.
fn lock_range(kind: c_int, offset: libc::off_t) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = offset;
    lock.l_len = 1;
    lock
}

/// # Safety
/// `data.dptr` must point at `data.dsize` readable bytes (or be NULL with size 0) that
/// outlive the returned slice.
unsafe fn bytes_of<'a>(data: TdbData) -> &'a [u8] {
    if data.dptr.is_null() || data.dsize == 0 {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(data.dptr, data.dsize) }
    }
}

impl Drop for Tdb {
    fn drop(&mut self) {
        // SAFETY: ctx is open and never used again; tdb_close frees it.
        unsafe {
            tdb_close(self.ctx.as_ptr());
        }
    }
}

/// An open transaction of a [`Tdb`]; cancelled unless committed.
pub struct Transaction<'a> {
    tdb: &'a Tdb,
    open: bool,
}

impl Transaction<'_> {
    pub fn store(&self, key: &[u8], value: &[u8]) -> TdbResult<()> {
        self.tdb.store(key, value)
    }

    pub fn delete(&self, key: &[u8]) -> TdbResult<()> {
        self.tdb.delete(key)
    }

    pub fn wipe_all(&self) -> TdbResult<()> {
        self.tdb.wipe_all()
    }

    /// Writes the transaction's changes to the file.
    pub fn commit(mut self) -> TdbResult<()> {
        self.open = false;
        // SAFETY: a transaction of this tdb is open.
        let rc = unsafe { tdb_transaction_commit(self.tdb.ctx.as_ptr()) };
        self.tdb.check(rc, "transaction_commit")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: a transaction of this tdb is open.
            unsafe {
                tdb_transaction_cancel(self.tdb.ctx.as_ptr());
            }
        }
    }
}

#[cfg(test)]
mod tests;
