use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use super::*;

fn volatile_flags() -> i32 {
    flags::CLEAR_IF_FIRST | flags::NOSYNC | flags::INCOMPATIBLE_HASH | flags::DISALLOW_NESTING
}

#[test]
fn store_fetch_delete_and_traverse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tdb = Tdb::open(&dir.path().join("a.tdb"), 131, volatile_flags()).expect("open");
    assert_eq!(tdb.hash_size(), 131);
    assert_ne!(tdb.flags() & flags::INCOMPATIBLE_HASH, 0);
    assert_eq!(tdb.fetch(b"k").expect("fetch"), None);
    tdb.store(b"k", b"v1").expect("store");
    tdb.store(b"k", b"v2").expect("replace");
    tdb.store(b"", b"empty key").expect("store empty key");
    assert_eq!(tdb.fetch(b"k").expect("fetch").as_deref(), Some(&b"v2"[..]));
    assert_eq!(
        tdb.fetch(b"").expect("fetch").as_deref(),
        Some(&b"empty key"[..])
    );
    let mut seen = Vec::new();
    let n = tdb
        .for_each(&mut |k, v| {
            seen.push((k.to_vec(), v.to_vec()));
            true
        })
        .expect("traverse");
    assert_eq!(n, 2);
    seen.sort();
    assert_eq!(seen[1], (b"k".to_vec(), b"v2".to_vec()));
    tdb.delete(b"k").expect("delete");
    tdb.delete(b"k").expect("delete of nothing");
    assert_eq!(tdb.fetch(b"k").expect("fetch"), None);
    let mut stopped = 0;
    tdb.store(b"x", b"1").expect("store");
    tdb.for_each(&mut |_, _| {
        stopped += 1;
        false
    })
    .expect("traverse");
    assert_eq!(stopped, 1);
}

#[test]
fn a_dropped_transaction_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tdb = Tdb::open(&dir.path().join("p.tdb"), 0, flags::DISALLOW_NESTING).expect("open");
    tdb.store(b"keep", b"1").expect("store");
    {
        let t = tdb.transaction().expect("start");
        t.wipe_all().expect("wipe");
        t.store(b"new", b"2").expect("store");
    }
    assert_eq!(
        tdb.fetch(b"keep").expect("fetch").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(tdb.fetch(b"new").expect("fetch"), None);
    let t = tdb.transaction().expect("start");
    t.delete(b"keep").expect("delete");
    t.store(b"new", b"2").expect("store");
    t.commit().expect("commit");
    assert_eq!(tdb.fetch(b"keep").expect("fetch"), None);
    assert_eq!(
        tdb.fetch(b"new").expect("fetch").as_deref(),
        Some(&b"2"[..])
    );
}

#[test]
fn records_survive_close_and_reopen_and_a_second_open_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.tdb");
    {
        let tdb = Tdb::open(&path, 0, flags::DEFAULT).expect("open");
        tdb.store(b"k", b"v").expect("store");
        assert!(matches!(
            Tdb::open(&path, 0, flags::DEFAULT),
            Err(TdbError::Open { .. })
        ));
    }
    let tdb = Tdb::open(&path, 0, flags::DEFAULT).expect("reopen");
    assert_eq!(tdb.fetch(b"k").expect("fetch").as_deref(), Some(&b"v"[..]));
    let mode = std::fs::metadata(&path).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

/// Not a test of its own: the other process of `a_chain_held_elsewhere_is_not_waited_for`.
/// With `CTDB_TDB_HOLD` set it locks that file's chain of key "held", says so on
/// stdout and keeps the lock until its stdin closes.
#[test]
fn holder_process() {
    let Ok(path) = std::env::var("CTDB_TDB_HOLD") else {
        return;
    };
    let tdb = Tdb::open(Path::new(&path), 0, volatile_flags()).expect("open");
    tdb.lock_chain(b"held").expect("lock");
    // Straight to the pipe: the test harness captures print! even here.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "locked").expect("say locked");
    stdout.flush().expect("flush");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

#[test]
fn a_chain_held_elsewhere_is_not_waited_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("l.tdb");
    let tdb = Tdb::open(&path, 0, volatile_flags()).expect("open");
    tdb.store(b"held", b"v").expect("store");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::holder_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CTDB_TDB_HOLD", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("holder output").expect("read");
        if line.trim_end().ends_with("locked") {
            break;
        }
    }
    assert!(!tdb.try_lock_chain(b"held").expect("try"));
    assert_eq!(
        tdb.try_for_each(&mut |_, _| true).expect("try traverse"),
        None
    );
    // Another chain is free (the key is chosen to hash elsewhere in a 131-chain file).
    assert!(tdb.try_lock_chain(b"other").expect("try other"));
    tdb.unlock_chain(b"other").expect("unlock");
    drop(child.stdin.take());
    child.wait().expect("holder exits");
    assert!(tdb.try_lock_chain(b"held").expect("try again"));
    assert!(tdb.try_lock_chain(b"held").expect("nested"));
    tdb.store(b"held", b"mine").expect("store under our lock");
    tdb.unlock_chain(b"held").expect("unlock");
    tdb.unlock_chain(b"held").expect("unlock");
    assert_eq!(
        tdb.try_for_each(&mut |_, _| true).expect("traverse"),
        Some(1)
    );
}

/// Not a test of its own: tries to lock chain "k" of `CTDB_TDB_TRY` from another
/// process and prints "free" or "held".
#[test]
fn try_process() {
    let Ok(path) = std::env::var("CTDB_TDB_TRY") else {
        return;
    };
    let tdb = Tdb::open(Path::new(&path), 0, volatile_flags()).expect("open");
    let free = tdb.try_lock_chain(b"k").expect("try");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", if free { "free" } else { "held" }).expect("say");
}

fn other_process_sees(path: &Path) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::try_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CTDB_TDB_TRY", path)
        .output()
        .expect("run the other process");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("free") {
        "free".into()
    } else if text.contains("held") {
        "held".into()
    } else {
        text.into_owned()
    }
}

#[test]
fn a_whole_file_lock_keeps_others_out_until_after_a_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.tdb");
    let tdb = Tdb::open(&path, 0, volatile_flags()).expect("open");
    tdb.store(b"k", b"old").expect("store");
    assert_eq!(other_process_sees(&path), "free");
    assert!(tdb.try_lock_all().expect("lock all"));
    assert_eq!(other_process_sees(&path), "held");
    // Reads nest under it; a transaction runs inside with_lock_all_released_after.
    assert_eq!(
        tdb.fetch(b"k").expect("fetch").as_deref(),
        Some(&b"old"[..])
    );
    tdb.with_lock_all_released_after(|| {
        let t = tdb
            .transaction()
            .expect("transaction under the whole-file lock");
        t.store(b"k", b"new").expect("store");
        t.commit().expect("commit");
    })
    .expect("released");
    assert_eq!(
        tdb.fetch(b"k").expect("fetch").as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(other_process_sees(&path), "free");
    // Taken and let go plainly.
    assert!(tdb.try_lock_all().expect("lock all"));
    tdb.unlock_all().expect("unlock");
    assert_eq!(other_process_sees(&path), "free");
}

#[test]
fn seqnum_moves_with_changes_once_enabled_and_when_bumped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tdb = Tdb::open(&dir.path().join("s.tdb"), 0, volatile_flags()).expect("open");
    tdb.store(b"k", b"1").expect("store");
    assert_eq!(tdb.seqnum(), 0);
    tdb.enable_seqnum();
    tdb.store(b"k", b"2").expect("store");
    let after_store = tdb.seqnum();
    assert!(after_store > 0);
    tdb.increment_seqnum();
    assert_eq!(tdb.seqnum(), after_store + 1);
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

#[test]
fn repack_gathers_the_free_list_but_the_file_keeps_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.tdb");
    let tdb = Tdb::open(&path, 131, volatile_flags()).expect("open");
    for i in 0..5_000u32 {
        tdb.store(format!("key-{i}").as_bytes(), &[7u8; 40])
            .expect("store");
    }
    for i in 0..5_000u32 {
        if i % 100 != 0 {
            tdb.delete(format!("key-{i}").as_bytes()).expect("delete");
        }
    }
    let full = file_len(&path);
    assert!(
        tdb.freelist_size().expect("freelist") > 1_000,
        "deleted records are free-list entries"
    );
    assert!(tdb.try_lock_all().expect("lock all"));
    tdb.with_lock_all_released_after(|| tdb.repack())
        .expect("released")
        .expect("repack");
    assert!(tdb.freelist_size().expect("freelist") <= 2);
    // libtdb never shrinks a file (the transaction's recovery area even grows it).
    assert!(file_len(&path) >= full);
    assert_eq!(tdb.try_for_each(&mut |_, _| true).expect("read"), Some(50));
    assert_eq!(
        tdb.fetch(b"key-100").expect("fetch").as_deref(),
        Some(&[7u8; 40][..])
    );
    // Not inside a transaction.
    let t = tdb.transaction().expect("start");
    assert!(tdb.repack().is_err());
    drop(t);
}

#[test]
fn a_file_nobody_else_has_open_is_recreated_at_its_smallest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.tdb");
    let empty = {
        let _fresh = Tdb::open(&dir.path().join("fresh.tdb"), 131, volatile_flags()).expect("open");
        file_len(&dir.path().join("fresh.tdb"))
    };
    let tdb = Tdb::open(&path, 131, volatile_flags()).expect("open");
    for i in 0..5_000u32 {
        tdb.store(format!("key-{i}").as_bytes(), &[7u8; 40])
            .expect("store");
    }
    assert!(file_len(&path) > 10 * empty);

    // Another process has it open: left alone.
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::holder_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CTDB_TDB_HOLD", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the holder");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("holder output").expect("read");
        if line.trim_end().ends_with("locked") {
            break;
        }
    }
    let mut read = 0;
    let tdb = match tdb
        .recreate_if_alone(131, volatile_flags(), &mut |_, _| {
            read += 1;
            true
        })
        .expect("check")
    {
        Ok(_) => panic!("recreated a file another process has open"),
        Err(unchanged) => unchanged,
    };
    assert_eq!(read, 0);
    assert_eq!(tdb.try_for_each(&mut |_, _| false).expect("read"), None);
    drop(child.stdin.take());
    child.wait().expect("holder exits");
    assert_eq!(
        tdb.fetch(b"key-1").expect("fetch").as_deref(),
        Some(&[7u8; 40][..])
    );

    // Alone, but the reader gives up: untouched.
    let tdb = match tdb
        .recreate_if_alone(131, volatile_flags(), &mut |_, _| false)
        .expect("give up")
    {
        Ok(_) => panic!("recreated although the reader gave up"),
        Err(unchanged) => unchanged,
    };
    assert_eq!(
        tdb.try_for_each(&mut |_, _| true).expect("read"),
        Some(5_000)
    );
    // Alone: every record read, then emptied to a new file, and the handle works on it.
    let mut kept = Vec::new();
    let tdb = match tdb
        .recreate_if_alone(131, volatile_flags(), &mut |k, _| {
            kept.push(k.to_vec());
            true
        })
        .expect("recreate")
    {
        Ok(tdb) => tdb,
        Err(_) => panic!("nobody else has the file open"),
    };
    assert_eq!(kept.len(), 5_000);
    assert_eq!(file_len(&path), empty);
    assert_eq!(tdb.hash_size(), 131);
    assert_eq!(tdb.fetch(b"key-1").expect("fetch"), None);
    tdb.store(b"k", b"v").expect("store");
    assert_eq!(other_process_sees(&path), "free");
    assert_eq!(tdb.fetch(b"k").expect("fetch").as_deref(), Some(&b"v"[..]));
}
