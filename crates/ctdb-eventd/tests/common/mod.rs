//! Temporary events directories with small shell scripts.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct EventsDir {
    pub dir: tempfile::TempDir,
}

impl EventsDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file in the directory that is not a script (logs, markers).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<dir>/<name>` running `body` under /bin/sh.
    pub fn script(&self, name: &str, body: &str, executable: bool) -> PathBuf {
        write_script(&self.dir.path().join(name), body, executable)
    }

    /// Writes `<dir>/legacy/<name>` (Samba 4.17's layout).
    pub fn legacy_script(&self, name: &str, body: &str, executable: bool) -> PathBuf {
        let legacy = self.dir.path().join("legacy");
        std::fs::create_dir_all(&legacy).unwrap();
        write_script(&legacy.join(name), body, executable)
    }
}

pub fn write_script(path: &Path, body: &str, executable: bool) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_path_buf()
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// True while `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}
