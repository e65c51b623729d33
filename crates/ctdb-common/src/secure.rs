//! Paths a node may trust, and the umask its sockets are made under.
//!
//! A node runs as root and keeps code (event scripts), sockets and databases in
//! directories: whoever can write to one of them, or to a directory above it, can make
//! the node run their code or talk to their socket. So every directory the node uses
//! must be owned by the user that runs the node (or, for directories it only reads,
//! such as the events directory, by root) and not be writable by group or others; a
//! directory above may be writable by others only if it is sticky (as `/tmp` is), where
//! nobody can rename or remove another user's entries. A symbolic link on the way must
//! belong to root or to the node's user. The node refuses to start otherwise, and the
//! error names the path and says why.

use std::fs::{DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use nix::sys::stat::{umask, Mode};

/// Mode bits that let group or others write.
const GROUP_OTHER_WRITE: u32 = 0o022;
/// The sticky bit: in such a directory only an entry's owner may rename or remove it.
const STICKY: u32 = 0o1000;

/// Why a path is not safe for the node to use.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: owned by uid {owner}; only {allowed} may own it", path.display())]
    Owner {
        path: PathBuf,
        owner: u32,
        allowed: String,
    },
    #[error(
        "{}: mode {mode:04o} lets group or others write to it (remove that permission)",
        path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("{}: not a directory", path.display())]
    NotDirectory { path: PathBuf },
}

impl UnsafePath {
    fn io(path: &Path, source: io::Error) -> Self {
        UnsafePath::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The user the node runs as (its effective uid).
pub fn daemon_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Who may own a path the node trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// The node's user only: what the node writes (state, sockets, databases).
    Daemon,
    /// Root or the node's user: what the node only reads (event scripts).
    RootOrDaemon,
}

impl Owners {
    fn allows(self, uid: u32) -> bool {
        uid == daemon_uid() || (self == Owners::RootOrDaemon && uid == 0)
    }

    fn describe(self) -> String {
        match self {
            Owners::Daemon => format!("uid {} (the node's user)", daemon_uid()),
            Owners::RootOrDaemon => format!("root or uid {} (the node's user)", daemon_uid()),
        }
    }
}

/// Checks one file or directory: owned by `owners`, not writable by group or others.
pub fn check_owner_mode(path: &Path, meta: &Metadata, owners: Owners) -> Result<(), UnsafePath> {
    if !owners.allows(meta.uid()) {
        return Err(UnsafePath::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            allowed: owners.describe(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & GROUP_OTHER_WRITE != 0 {
        return Err(UnsafePath::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, UnsafePath> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .map_err(|e| UnsafePath::io(path, e))
    }
}

/// Checks what lies above `dir` (which exists): every symbolic link on the way belongs
/// to root or the node's user, and every directory above the real one belongs to root
/// or the node's user and is writable by others only if sticky. Returns the real path.
fn check_ancestors(dir: &Path) -> Result<PathBuf, UnsafePath> {
    let dir = absolute(dir)?;
    let mut prefix = PathBuf::new();
    for part in dir.components() {
        prefix.push(part);
        if matches!(part, Component::RootDir) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&prefix).map_err(|e| UnsafePath::io(&prefix, e))?;
        if meta.file_type().is_symlink() && !Owners::RootOrDaemon.allows(meta.uid()) {
            return Err(UnsafePath::Owner {
                path: prefix,
                owner: meta.uid(),
                allowed: Owners::RootOrDaemon.describe(),
            });
        }
    }
    let real = std::fs::canonicalize(&dir).map_err(|e| UnsafePath::io(&dir, e))?;
    for above in real.ancestors().skip(1) {
        let meta = std::fs::metadata(above).map_err(|e| UnsafePath::io(above, e))?;
        if !Owners::RootOrDaemon.allows(meta.uid()) {
            return Err(UnsafePath::Owner {
                path: above.to_path_buf(),
                owner: meta.uid(),
                allowed: Owners::RootOrDaemon.describe(),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & GROUP_OTHER_WRITE != 0 && mode & STICKY == 0 {
            return Err(UnsafePath::Writable {
                path: above.to_path_buf(),
                mode,
            });
        }
    }
    Ok(real)
}

/// Checks an existing directory the node uses: it is a directory owned by `owners`,
/// not writable by group or others, and what lies above it is safe too.
pub fn check_dir(dir: &Path, owners: Owners) -> Result<(), UnsafePath> {
    let real = check_ancestors(dir)?;
    let meta = std::fs::metadata(&real).map_err(|e| UnsafePath::io(dir, e))?;
    if !meta.is_dir() {
        return Err(UnsafePath::NotDirectory {
            path: dir.to_path_buf(),
        });
    }
    check_owner_mode(dir, &meta, owners)
}

/// Makes `dir` with `mode` (the directories above it that are missing with 0755)
/// unless it exists, then checks it as [`check_dir`] does with [`Owners::Daemon`]: a
/// directory someone else made first, or left open to others, is refused.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), UnsafePath> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| UnsafePath::io(parent, e))?;
    }
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(UnsafePath::io(dir, e)),
    }
    check_dir(dir, Owners::Daemon)
}

/// Makes the directory a socket is bound in unless it exists (0755), and checks it:
/// a directory of the node's own (as [`check_dir`]), or one that belongs to root and
/// is sticky if others may write to it (`/tmp`), so nobody else can replace the socket.
pub fn ensure_socket_dir(dir: &Path) -> Result<(), UnsafePath> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| UnsafePath::io(dir, e))?;
    let real = check_ancestors(dir)?;
    let meta = std::fs::metadata(&real).map_err(|e| UnsafePath::io(dir, e))?;
    let mode = meta.mode() & 0o7777;
    if meta.uid() == 0 && mode & STICKY != 0 {
        return Ok(());
    }
    check_owner_mode(dir, &meta, Owners::Daemon)
}

/// From now on every file and directory this process creates is private to its owner
/// (umask 0077): the database component's sled files and TDB files are 0600, whatever
/// mode a library asks for.
pub fn private_files() {
    let _guard = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    umask(Mode::from_bits_truncate(0o077));
}

/// Serialises [`with_umask`]: the umask belongs to the whole process.
static UMASK: Mutex<()> = Mutex::new(());

/// Runs `f` (a socket's bind) with the umask 0077, so what it creates is reachable by
/// its owner only from the start: no moment where another user can connect. The umask
/// belongs to the whole process: what other threads create meanwhile gets no more
/// permission than they asked for, only possibly less (a directory stays usable by
/// its owner).
pub fn with_umask<T>(f: impl FnOnce() -> T) -> T {
    let _guard = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    let old = umask(Mode::from_bits_truncate(0o077));
    let out = f();
    umask(old);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_new_directory_gets_its_mode() {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("a/b/state");
        ensure_dir(&dir, 0o700).expect("made");
        let meta = std::fs::metadata(&dir).expect("exists");
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), daemon_uid());
        // Again: it exists, and it is fine.
        ensure_dir(&dir, 0o700).expect("still fine");
    }

    #[test]
    fn a_group_writable_directory_is_refused_with_its_path() {
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("events");
        std::fs::create_dir(&dir).expect("mkdir");
        chmod(&dir, 0o775);
        let err = ensure_dir(&dir, 0o755).expect_err("refused");
        assert!(matches!(err, UnsafePath::Writable { mode: 0o775, .. }));
        let text = err.to_string();
        assert!(text.contains(&dir.display().to_string()), "{text}");
        assert!(text.contains("group or others"), "{text}");
    }

    #[test]
    fn a_directory_below_an_open_one_is_refused() {
        let base = tempfile::tempdir().expect("temp dir");
        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        chmod(&open, 0o777);
        let err = ensure_dir(&open.join("run"), 0o755).expect_err("refused");
        let text = err.to_string();
        assert!(text.starts_with(&open.display().to_string()), "{text}");
        // Sticky, as /tmp is: fine.
        chmod(&open, 0o1777);
        ensure_dir(&open.join("run"), 0o755).expect("sticky parent is fine");
        ensure_socket_dir(&open).expect("a sticky root-owned socket dir is fine");
    }

    #[test]
    fn a_foreign_owned_directory_is_refused() {
        if daemon_uid() != 0 {
            return; // only root can give a directory away
        }
        let base = tempfile::tempdir().expect("temp dir");
        let dir = base.path().join("events");
        std::fs::create_dir(&dir).expect("mkdir");
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        let err = check_dir(&dir, Owners::RootOrDaemon).expect_err("refused");
        assert!(
            matches!(err, UnsafePath::Owner { owner: 65534, .. }),
            "{err}"
        );
        assert!(ensure_socket_dir(&dir).is_err());
    }

    #[test]
    fn the_umask_holds_only_inside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let inside = dir.path().join("inside");
        with_umask(|| std::fs::write(&inside, b"x")).expect("write");
        let mode = std::fs::metadata(&inside).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o600);
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").expect("write");
        let mode = std::fs::metadata(&outside).expect("meta").mode() & 0o777;
        assert_ne!(mode, 0o600, "the umask is back as it was");
    }
}
