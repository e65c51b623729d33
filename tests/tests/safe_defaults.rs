//! Safe by default (issue 14): a node refuses directories other users could write to,
//! makes its directories, sockets and database files private, runs only trusted event
//! scripts, and lets no other user connect to its components' sockets.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_tests::{bin, loopback_subnet, TestNode};

/// The uid and gid of `nobody`: another user than the node's (root, in tests).
const NOBODY: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A node's configuration directory with a `legacy/` event script that leaves a
/// marker file when it runs (the attack: code someone else put there run as root).
fn base_with_script(root: &Path) -> (PathBuf, PathBuf) {
    let base = root.join("base");
    let legacy = base.join("events/legacy");
    std::fs::create_dir_all(&legacy).expect("mkdir");
    let addr = loopback_subnet() + ".1";
    std::fs::write(base.join("nodes"), format!("{addr}\n")).expect("nodes");
    std::fs::write(
        base.join("ctdb.conf"),
        format!("[cluster]\n\tnode address = {addr}\n"),
    )
    .expect("ctdb.conf");
    let marker = root.join("script-ran");
    let script = legacy.join("00.attack.script");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch {}\nexit 0\n", marker.display()),
    )
    .expect("script");
    chmod(&script, 0o755);
    (base, marker)
}

/// Runs ctdbd on `base` until it exits (at most 20 s): its exit status and stderr.
fn run_ctdbd(base: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(bin("ctdbd"))
        .env("CTDB_BASE", base)
        .env("CTDB_SOCKET", base.join("ctdb.socket"))
        .env("CTDB_LOGGING_LOCATION", "stderr")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ctdbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "ctdbd kept running with an unsafe events directory:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_group_writable_events_dir_stops_the_node_before_any_script_runs() {
    let root = tempfile::tempdir().expect("temp dir");
    let (base, marker) = base_with_script(root.path());
    let legacy = base.join("events/legacy");
    chmod(&legacy, 0o775);
    let (code, stderr) = run_ctdbd(&base);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&legacy.display().to_string()) && stderr.contains("group or others"),
        "the refusal names the path and why:\n{stderr}"
    );
    assert!(!marker.exists(), "the planted script ran");
}

#[test]
fn a_foreign_owned_events_dir_stops_the_node_before_any_script_runs() {
    let root = tempfile::tempdir().expect("temp dir");
    let (base, marker) = base_with_script(root.path());
    let events = base.join("events");
    nix::unistd::chown(&events, Some(nix::unistd::Uid::from_raw(NOBODY)), None).expect("chown");
    let (code, stderr) = run_ctdbd(&base);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&events.display().to_string()) && stderr.contains("uid 65534"),
        "the refusal names the path and why:\n{stderr}"
    );
    assert!(!marker.exists(), "the planted script ran");
}

#[test]
fn a_run_dir_made_by_someone_else_stops_the_node() {
    let root = tempfile::tempdir().expect("temp dir");
    let (base, _) = base_with_script(root.path());
    // The /tmp attack: another user made the directory first.
    let run = base.join("run");
    std::fs::create_dir(&run).expect("mkdir");
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(NOBODY)), None).expect("chown");
    let (code, stderr) = run_ctdbd(&base);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&run.display().to_string()) && stderr.contains("owned by uid 65534"),
        "{stderr}"
    );
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_running_node_keeps_its_dirs_sockets_and_databases_private() {
    let node = TestNode::start("");
    let client = node.ready().await;
    client
        .attach(CURRENT_NODE, "safe_volatile.tdb", false)
        .await
        .expect("attach volatile");
    client
        .attach(CURRENT_NODE, "safe_persistent.tdb", true)
        .await
        .expect("attach persistent");

    let run = node.run_dir();
    assert_eq!(mode(&run), 0o755);
    let db = node.dir().join("db");
    for d in ["volatile", "persistent", "state"] {
        assert_eq!(mode(&db.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&node.socket), 0o600, "client socket");
    for component in ["transport", "db", "recoverd", "eventd"] {
        let grpc = run.join(format!("{component}.sock"));
        assert_eq!(mode(&grpc), 0o600, "{}", grpc.display());
        if component != "transport" {
            let packets = run.join(format!("{component}.packets.sock"));
            assert_eq!(mode(&packets), 0o600, "{}", packets.display());
        }
    }
    let tdbs = [
        db.join("volatile/safe_volatile.tdb.0"),
        db.join("persistent/safe_persistent.tdb.0"),
    ];
    for tdb in &tdbs {
        assert_eq!(mode(tdb), 0o600, "{}", tdb.display());
    }
    let sled = files_below(&db.join("state"));
    assert!(!sled.is_empty());
    for file in &sled {
        assert_eq!(mode(file) & 0o077, 0, "{}", file.display());
    }
}

/// Connects to the Unix socket `path` as `uid` (python3 does the connecting), and
/// says what became of the connection: `refused ERRNO` (not even connected),
/// `closed` (the server dropped it), or `open` (it served or waited).
fn connect_as(uid: Option<u32>, path: &Path) -> String {
    use std::os::unix::process::CommandExt;
    const PROBE: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno); sys.exit()
s.settimeout(2)
try:
    print("open" if s.recv(100) else "closed")
except socket.timeout:
    print("open")
except ConnectionResetError:
    print("closed")
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PROBE).arg(path);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn another_user_cannot_connect_to_a_component_socket() {
    if !nix::unistd::geteuid().is_root() {
        return; // needs root to act as another user
    }
    let node = TestNode::start("");
    let client = node.ready().await;
    let run = node.run_dir();
    let grpc = run.join("db.sock");
    let packets = run.join("db.packets.sock");

    // First fence: the modes. Another user does not even reach the sockets.
    for socket in [&grpc, &packets, &node.socket] {
        let got = connect_as(Some(NOBODY), socket);
        assert!(got.starts_with("refused"), "{}: {got}", socket.display());
    }

    // Second fence: with every mode opened by mistake, the components still drop
    // the connection of another user (SO_PEERCRED), and keep serving.
    chmod(node.dir(), 0o755);
    for socket in [&grpc, &packets, &run.join("eventd.packets.sock")] {
        chmod(socket, 0o666);
        assert_eq!(
            connect_as(Some(NOBODY), socket),
            "closed",
            "{}",
            socket.display()
        );
    }
    assert_eq!(connect_as(None, &grpc), "open", "root is served");
    let log = node.log();
    assert!(
        log.contains("connection from another user refused") && log.contains("uid=65534"),
        "{log}"
    );
    client
        .attach(CURRENT_NODE, "still_served.tdb", false)
        .await
        .expect("the node still serves");
}
