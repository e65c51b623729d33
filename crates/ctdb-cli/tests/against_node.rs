//! Runs the `ctdb` binary against a real ctdb-rs node (`target/debug/ctdbd`) started in
//! a temporary CTDB_BASE, and checks what each command prints.
//!
//! Needs the workspace's binaries (`cargo build --workspace --bins`); when `ctdbd` or
//! one of its components is missing the test says so and passes without running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CTDB: &str = env!("CARGO_BIN_EXE_ctdb");
const COMPONENTS: [&str; 5] = [
    "ctdbd",
    "ctdb-db",
    "ctdb-eventd",
    "ctdb-recoverd",
    "ctdb-transport",
];

/// The directory holding ctdbd and its components, if they are all built.
fn binaries_dir() -> Option<PathBuf> {
    let beside_us = Path::new(CTDB).parent().map(Path::to_path_buf);
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug");
    [beside_us, Some(from_manifest)]
        .into_iter()
        .flatten()
        .find(|d| COMPONENTS.iter().all(|c| d.join(c).is_file()))
}

/// A running node; SIGTERM (then SIGKILL) on drop.
struct Node {
    child: Child,
    base: tempfile::TempDir,
    socket: PathBuf,
}

impl Node {
    fn start(dir: &Path) -> Node {
        let base = tempfile::Builder::new()
            .prefix("ctdb-cli-test")
            .tempdir()
            .expect("tempdir");
        std::fs::write(base.path().join("nodes"), "127.0.0.1\n").expect("nodes file");
        let socket = base.path().join("ctdb.socket");
        // A free port, so that this node meets no other node.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(base.path().join("log")).expect("log");
        let child = Command::new(dir.join("ctdbd"))
            .env("CTDB_BASE", base.path())
            .env("CTDB_SOCKET", &socket)
            .env("CTDB_PORT", port.to_string())
            .env("CTDB_NODE_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ctdbd");
        Node {
            child,
            base,
            socket,
        }
    }

    /// Runs `ctdb ARGS` against this node: (stdout, stderr, exit code).
    fn ctdb(&self, args: &[&str]) -> (String, String, i32) {
        run_ctdb(args, self.base.path(), &self.socket)
    }

    /// Runs a command until `ok` accepts its result, for up to `secs` seconds.
    fn wait_for(&self, args: &[&str], secs: u64, ok: impl Fn(&str, i32) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (out, errs, code) = self.ctdb(args);
            if ok(&out, code) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "ctdb {args:?} never got ready: rc={code} out={out:?} err={errs:?}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.base.path().join("log")).unwrap_or_default()
    }

    /// Waits up to `secs` seconds for ctdbd to exit.
    fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            if !self.wait_exit(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Runs the tool with a hard deadline of 60 seconds.
fn run_ctdb(args: &[&str], base: &Path, socket: &Path) -> (String, String, i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(CTDB)
        .args(args)
        .env("CTDB_BASE", base)
        .env("CTDB_SOCKET", socket)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("out"))
        .stderr(std::fs::File::create(&err_path).expect("err"))
        .spawn()
        .expect("run ctdb");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ctdb {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        std::fs::read_to_string(out_path).unwrap_or_default(),
        std::fs::read_to_string(err_path).unwrap_or_default(),
        status.code().unwrap_or(-1),
    )
}

fn assert_ok(r: (String, String, i32), expected_out: &str) {
    assert_eq!(r, (expected_out.to_string(), String::new(), 0));
}

#[test]
fn without_a_daemon_the_tool_says_so() {
    let base = tempfile::tempdir().expect("tempdir");
    std::fs::write(base.path().join("nodes"), "127.0.0.1\n").expect("nodes");
    let socket = base.path().join("nothing.socket");
    let (out, errs, code) = run_ctdb(&["ping"], base.path(), &socket);
    assert_eq!(out, "");
    assert_eq!(code, 1);
    assert_eq!(
        errs,
        format!(
            "connect() failed, errno=2\nFailed to connect to CTDB daemon ({})\n",
            socket.display()
        )
    );
    // listnodes needs no daemon.
    assert_ok(
        run_ctdb(&["listnodes"], base.path(), &socket),
        "127.0.0.1\n",
    );
    let (out, errs, code) = run_ctdb(&["version"], base.path(), &socket);
    assert!(out.starts_with("4.17.12-"), "{out}");
    assert_eq!((errs.as_str(), code), ("", 0));
    let (_, errs, code) = run_ctdb(&["nosuchcommand"], base.path(), &socket);
    assert_eq!(
        (errs.as_str(), code),
        ("Unknown command 'nosuchcommand'\n", 1)
    );
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn commands_against_a_running_node() {
    let Some(dir) = binaries_dir() else {
        // scripts/test.sh builds them first; in CI a skip would hide a broken build.
        assert!(std::env::var_os("CI").is_none(), "binaries not built in CI");
        eprintln!(
            "SKIPPED: target/debug/ctdbd and its components are not built; \
             run `cargo build --workspace --bins` first"
        );
        return;
    };
    let mut node = Node::start(&dir);
    node.wait_for(&["ping"], 30, |_, code| code == 0);
    node.wait_for(&["runstate", "running"], 30, |_, code| code == 0);
    node.wait_for(&["status"], 30, |out, code| {
        code == 0 && out.contains("Recovery mode:NORMAL (0)\n") && out.ends_with("Leader:0\n")
    });

    // ping, pnn, version
    let (out, errs, code) = node.ctdb(&["ping"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let rest = out.strip_prefix("response from 0 time=").expect(&out);
    let (time, clients) = rest.split_once(" sec  (").expect(&out);
    assert!(time.len() == 8 && time.starts_with("0."), "{out}");
    assert!(clients.ends_with(" clients)\n"), "{out}");
    assert_ok(node.ctdb(&["pnn"]), "0\n");

    // status
    let (out, errs, code) = node.ctdb(&["status"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(lines[0], "Number of nodes:1");
    assert_eq!(lines[1], "pnn:0 127.0.0.1        OK (THIS NODE)");
    let generation = lines[2].strip_prefix("Generation:").expect(&out);
    assert!(is_digits(generation), "{out}");
    assert_eq!(
        &lines[3..],
        [
            "Size:1",
            "hash:0 lmaster:0",
            "Recovery mode:NORMAL (0)",
            "Leader:0"
        ]
    );
    let machine = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|\n\
                   |0|127.0.0.1|0|0|0|0|0|0|0|0|Y|\n";
    assert_ok(node.ctdb(&["-X", "status"]), machine);
    assert_ok(node.ctdb(&["-Y", "status"]), machine);
    assert_ok(
        node.ctdb(&["nodestatus"]),
        "pnn:0 127.0.0.1        OK (THIS NODE)\n",
    );
    assert_ok(
        node.ctdb(&["nodestatus", "all"]),
        "Number of nodes:1\npnn:0 127.0.0.1        OK (THIS NODE)\n",
    );
    assert_eq!(
        node.ctdb(&["-n", "7", "ping"]),
        (String::new(), "Node 7 does not exist\n".into(), 1)
    );

    // listnodes
    assert_ok(node.ctdb(&["listnodes"]), "127.0.0.1\n");
    assert_ok(node.ctdb(&["-X", "listnodes"]), "|0|127.0.0.1|\n");

    // uptime (TZ=UTC)
    let (out, errs, code) = node.ctdb(&["uptime"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("Current time of node 0        :                "));
    assert!(lines[1].starts_with("Ctdbd start time              : (000 00:"));
    assert!(lines[2].starts_with("Time of last recovery/failover: (000 00:"));
    assert!(lines[3].starts_with("Duration of last recovery/failover: "));
    assert!(lines[3].ends_with(" seconds"));
    // `Wed Nov 25 02:47:57 2026`: the ctime() layout.
    let now = &lines[0][47..];
    assert_eq!(now.len(), 24, "{out}");
    assert_eq!(&now[13..14], ":", "{out}");

    // getdbmap and attach
    let (out, _, code) = node.ctdb(&["getdbmap"]);
    assert_eq!(code, 0);
    let before: usize = out
        .strip_prefix("Number of databases:")
        .and_then(|s| s.lines().next())
        .and_then(|n| n.parse().ok())
        .expect(&out);
    assert_ok(node.ctdb(&["attach", "cli_vol.tdb"]), "");
    assert_ok(node.ctdb(&["attach", "cli_pers.tdb", "persistent"]), "");
    assert_ok(node.ctdb(&["attach", "cli_repl.tdb", "replicated"]), "");
    let (out, _, code) = node.ctdb(&["attach", "x.tdb", "bogus"]);
    assert_eq!(code, 1);
    assert!(out.contains("  attach          <dbname> [persistent|replicated]  attach a database\n"));
    let (out, errs, code) = node.ctdb(&["getdbmap"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(
        out.starts_with(&format!("Number of databases:{}\n", before + 3)),
        "{out}"
    );
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" name:{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from {out}"))
            .to_string()
    };
    let vol = line("cli_vol.tdb");
    assert!(
        vol.starts_with("dbid:0x") && vol.ends_with("/cli_vol.tdb.0"),
        "{vol}"
    );
    assert!(line("cli_pers.tdb").ends_with("/cli_pers.tdb.0 PERSISTENT"));
    assert!(line("cli_repl.tdb").ends_with("/cli_repl.tdb.0 REPLICATED"));
    let (out, _, code) = node.ctdb(&["-X", "getdbmap"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("|ID|Name|Path|Persistent|Sticky|Unhealthy|Readonly|Replicated|\n"));
    assert!(out
        .lines()
        .any(|l| l.contains("|cli_pers.tdb|") && l.ends_with("|1|0|0|0|0|")));

    // getvar, setvar, listvars
    assert_ok(
        node.ctdb(&["getvar", "RecoverInterval"]),
        "RecoverInterval            = 1\n",
    );
    assert_ok(node.ctdb(&["setvar", "RecoverInterval", "3"]), "");
    assert_ok(
        node.ctdb(&["getvar", "recoverinterval"]),
        "recoverinterval            = 3\n",
    );
    assert_eq!(
        node.ctdb(&["getvar", "NoSuchVar"]),
        ("No such tunable NoSuchVar\n".into(), String::new(), 1)
    );
    let (out, errs, code) = node.ctdb(&["listvars"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(
        out.starts_with("SeqnumInterval             = 1000\n"),
        "{out}"
    );
    assert!(out.contains("\nRecoverInterval            = 3\n"), "{out}");
    assert!(out.lines().count() > 40, "{out}");
    for l in out.lines() {
        let (name, value) = l.split_once(" = ").expect(l);
        assert!(name.len() >= 26 && is_digits(value), "{l}");
    }
    assert_ok(node.ctdb(&["setvar", "RecoverInterval", "1"]), "");

    // getpid: the transport component answers
    let (out, errs, code) = node.ctdb(&["getpid"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(is_digits(out.trim_end()), "{out}");

    // getcapabilities, getdebug, setdebug, runstate
    assert_ok(
        node.ctdb(&["getcapabilities"]),
        "LEADER: YES\nLMASTER: YES\n",
    );
    assert_ok(
        node.ctdb(&["-X", "getcapabilities"]),
        "|LEADER|LMASTER|\n|1|1|\n",
    );
    assert_ok(node.ctdb(&["getdebug"]), "NOTICE\n");
    assert_eq!(
        node.ctdb(&["setdebug", "LOUD"]),
        (
            String::new(),
            "Invalid debug level 'LOUD'. Valid levels are:\n\tERROR | WARNING | NOTICE | INFO | DEBUG\n".into(),
            1
        )
    );
    assert_ok(node.ctdb(&["setdebug", "INFO"]), "");
    assert_ok(node.ctdb(&["getdebug"]), "INFO\n");
    assert_ok(node.ctdb(&["setdebug", "NOTICE"]), "");
    assert_ok(node.ctdb(&["runstate"]), "RUNNING\n");
    assert_ok(node.ctdb(&["runstate", "startup", "running"]), "RUNNING\n");
    assert_eq!(
        node.ctdb(&["runstate", "startup"]),
        (
            "CTDB not in required run state (got RUNNING)\n".into(),
            String::new(),
            1
        )
    );

    // statistics
    let (out, errs, code) = node.ctdb(&["statistics"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 52, "{out}");
    assert_eq!(lines[0], "CTDB version 1");
    assert!(lines[1].starts_with("Current time of statistics  :                "));
    assert!(lines[3].starts_with(" num_clients       "));
    assert_eq!(lines[13], " node");
    assert!(lines[45].starts_with(" hop_count_buckets: 0"));
    assert!(lines[51].starts_with(" childwrite_latency MIN/AVG/MAX     "));

    // shutdown stops the node
    let (_, errs, code) = node.ctdb(&["shutdown"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(
        node.wait_exit(20),
        "ctdbd still running after shutdown\n{}",
        node.log()
    );
}

/// `disable`/`enable`, `stop`/`continue`, `ban`/`unban`, `recover`, `leader`,
/// `getreclock` and `reloadnodes` on a one-node cluster.
#[test]
fn node_state_commands_against_a_running_node() {
    let Some(dir) = binaries_dir() else {
        assert!(std::env::var_os("CI").is_none(), "binaries not built in CI");
        eprintln!("SKIPPED: target/debug/ctdbd and its components are not built");
        return;
    };
    let node = Node::start(&dir);
    node.wait_for(&["runstate", "running"], 30, |_, code| code == 0);
    node.wait_for(&["status"], 30, |out, code| {
        code == 0 && out.contains("Recovery mode:NORMAL (0)\n") && out.ends_with("Leader:0\n")
    });
    let this = |state: &str| format!("pnn:0 127.0.0.1        {state} (THIS NODE)\n");
    let fails = |r: (String, String, i32), errs: &str, code: i32| {
        assert_eq!(r, (String::new(), errs.to_string(), code));
    };

    // leader (and its old name), getreclock
    assert_ok(node.ctdb(&["leader"]), "0\n");
    assert_ok(node.ctdb(&["recmaster"]), "0\n");
    let (out, errs, code) = node.ctdb(&["getreclock"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(
        out.is_empty() || (out.ends_with('\n') && out.lines().count() == 1),
        "{out}"
    );
    let (out, _, code) = node.ctdb(&["getreclock", "x"]);
    assert_eq!(code, 1);
    assert!(
        out.ends_with("  getreclock                                   get recovery lock file\n")
    );

    // disable -> DISABLED -> enable -> OK
    assert_ok(node.ctdb(&["disable"]), "");
    assert_eq!(
        node.ctdb(&["nodestatus"]),
        (this("DISABLED"), String::new(), 4)
    );
    let (out, errs, code) = node.ctdb(&["status"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(out.contains(&format!("\n{}", this("DISABLED"))), "{out}");
    assert_eq!(
        node.ctdb(&["-X", "nodestatus"]).0,
        "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|\n\
         |0|127.0.0.1|0|0|0|1|0|0|0|0|Y|\n"
    );
    fails(node.ctdb(&["disable"]), "Node 0 is already disabled\n", 0);
    assert_ok(node.ctdb(&["enable"]), "");
    assert_ok(node.ctdb(&["nodestatus"]), &this("OK"));
    fails(node.ctdb(&["enable"]), "Node 0 is not disabled\n", 0);
    fails(
        node.ctdb(&["-n", "7", "disable"]),
        "Node 7 does not exist\n",
        1,
    );

    // stop -> STOPPED|INACTIVE -> continue -> OK
    assert_ok(node.ctdb(&["stop"]), "");
    assert_eq!(
        node.ctdb(&["nodestatus"]),
        (this("STOPPED|INACTIVE"), String::new(), 32)
    );
    fails(node.ctdb(&["stop"]), "Node 0 is already stopped\n", 0);
    assert_ok(node.ctdb(&["continue"]), "");
    assert_ok(node.ctdb(&["nodestatus"]), &this("OK"));
    fails(node.ctdb(&["continue"]), "Node 0 is not stopped\n", 0);

    // ban 30 -> banned -> unban -> OK
    let (out, _, code) = node.ctdb(&["ban"]);
    assert_eq!(code, 1);
    assert!(out.ends_with("  ban             <bantime>                    ban a node\n"));
    fails(node.ctdb(&["ban", "0"]), "Ban time cannot be zero\n", 22);
    fails(node.ctdb(&["ban", "soon"]), "", 22);
    assert_ok(node.ctdb(&["ban", "30"]), "");
    // As Samba's tool: a banned node's map is taken from another node, and here
    // there is none.
    fails(
        node.ctdb(&["status"]),
        "Warning: All nodes are banned.\n",
        1,
    );
    fails(node.ctdb(&["unban"]), "Warning: All nodes are banned.\n", 0);
    assert_ok(node.ctdb(&["nodestatus"]), &this("OK"));
    fails(node.ctdb(&["unban"]), "Node 0 is not banned\n", 0);

    // recover: a new generation, back to NORMAL
    let generation = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("Generation:"))
            .expect(out)
            .to_string()
    };
    let (before, _, _) = node.ctdb(&["status"]);
    assert_ok(node.ctdb(&["recover"]), "");
    let (after, errs, code) = node.ctdb(&["status"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(after.contains("\nRecovery mode:NORMAL (0)\n"), "{after}");
    assert!(is_digits(&generation(&after)), "{after}");
    assert_ne!(generation(&before), generation(&after));

    // reloadnodes: nothing changed
    fails(
        node.ctdb(&["reloadnodes"]),
        "No change in nodes file, skipping unnecessary reload\n",
        0,
    );
}

/// The record commands on a one-node cluster, in the order of the Samba capture
/// (`client-commands.txt`, `getdbstatus` to `wipedb`).
#[test]
fn record_commands_against_a_running_node() {
    let Some(dir) = binaries_dir() else {
        assert!(std::env::var_os("CI").is_none(), "binaries not built in CI");
        eprintln!("SKIPPED: target/debug/ctdbd and its components are not built");
        return;
    };
    let node = Node::start(&dir);
    node.wait_for(&["runstate", "running"], 30, |_, code| code == 0);
    node.wait_for(&["status"], 30, |out, code| {
        code == 0 && out.contains("Recovery mode:NORMAL (0)\n") && out.ends_with("Leader:0\n")
    });
    let fails = |r: (String, String, i32), errs: &str, code: i32| {
        assert_eq!(r, (String::new(), errs.to_string(), code));
    };
    assert_ok(node.ctdb(&["attach", "capture_vol.tdb"]), "");
    assert_ok(node.ctdb(&["attach", "capture_pers.tdb", "persistent"]), "");

    // getdbstatus, by name and by id
    let (out, errs, code) = node.ctdb(&["getdbstatus", "capture_pers.tdb"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["dbid: 0x6ef91a74", "name: capture_pers.tdb"]);
    assert!(lines[2].starts_with("path: ") && lines[2].ends_with("capture_pers.tdb.0"));
    assert_eq!(
        lines[3..],
        [
            "PERSISTENT: yes",
            "REPLICATED: no",
            "STICKY: no",
            "READONLY: no",
            "HEALTH: OK"
        ]
    );
    assert_eq!(node.ctdb(&["getdbstatus", "0x6ef91a74"]).0, out);
    fails(
        node.ctdb(&["getdbstatus", "nosuch.tdb"]),
        "No database matching 'nosuch.tdb' found\n",
        1,
    );

    // writekey, readkey, catdb, cattdb, deletekey
    for (k, v) in [("key1", "value1"), ("key2", "value-two"), ("key3", "v3")] {
        assert_ok(node.ctdb(&["writekey", "capture_vol.tdb", k, v]), "");
    }
    assert_ok(
        node.ctdb(&["readkey", "capture_vol.tdb", "key1"]),
        "Data: size:6 ptr:[value1]\n",
    );
    assert_ok(
        node.ctdb(&["readkey", "capture_vol.tdb", "nosuchkey"]),
        "Data: size:0 ptr:[]\n",
    );
    let dump = |out: &str| -> Vec<(String, String)> {
        // (key line, data line) of each record; the header lines are checked apart.
        out.split("\n\n")
            .filter(|r| r.starts_with("key("))
            .map(|r| {
                let l: Vec<&str> = r.lines().collect();
                assert_eq!(l.len(), 5, "{r}");
                assert_eq!(l[1], "dmaster: 0");
                assert!(
                    l[2].starts_with("rsn: ") && l[3].starts_with("flags: 0x"),
                    "{r}"
                );
                (l[0].to_string(), l[4].to_string())
            })
            .collect()
    };
    let (out, errs, code) = node.ctdb(&["catdb", "capture_vol.tdb"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(out.ends_with("\nDumped 3 records\n"), "{out}");
    let mut got = dump(&out);
    got.sort();
    let kv = |k: &str, d: &str| (k.to_string(), d.to_string());
    assert_eq!(
        got,
        [
            kv("key(4) = \"key1\"", "data(6) = \"value1\""),
            kv("key(4) = \"key2\"", "data(9) = \"value-two\""),
            kv("key(4) = \"key3\"", "data(2) = \"v3\""),
        ]
    );
    // cattdb: the node's own copy. Unlike Samba's daemon, ours keeps no empty record
    // for the readkey of a missing key.
    let (out, errs, code) = node.ctdb(&["cattdb", "capture_vol.tdb"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(out.ends_with("\nDumped 3 record(s)\n"), "{out}");
    assert!(!out.contains("nosuchkey"), "{out}");
    assert_ok(node.ctdb(&["deletekey", "capture_vol.tdb", "key3"]), "");
    assert!(node
        .ctdb(&["catdb", "capture_vol.tdb"])
        .0
        .ends_with("\nDumped 2 records\n"));
    fails(
        node.ctdb(&["readkey", "capture_pers.tdb", "k"]),
        "DB capture_pers.tdb is not a volatile database\n",
        1,
    );

    // pstore, pfetch, ptrans, pdelete: the persistent database ends exactly as Samba's
    assert_ok(
        node.ctdb(&["pstore", "capture_pers.tdb", "pkey1", "pvalue1"]),
        "",
    );
    assert_ok(
        node.ctdb(&["pfetch", "capture_pers.tdb", "pkey1"]),
        "pvalue1\n",
    );
    let input = node.base.path().join("ptrans.txt");
    std::fs::write(&input, "\"pkey2\" \"pvalue2\"\n\"pkey3\" \"pvalue3\"\n").expect("input");
    let input = input.to_str().expect("path");
    assert_ok(node.ctdb(&["ptrans", "capture_pers.tdb", input]), "");
    assert_ok(node.ctdb(&["pdelete", "capture_pers.tdb", "pkey3"]), "");
    assert_ok(
        node.ctdb(&["catdb", "capture_pers.tdb"]),
        "key(23) = \"__db_sequence_number__\\00\"
dmaster: 0
rsn: 3
flags: 0x00000000
data(8) = \"\\03\\00\\00\\00\\00\\00\\00\\00\"

key(5) = \"pkey1\"
dmaster: 0
rsn: 1
flags: 0x00000000
data(7) = \"pvalue1\"

key(5) = \"pkey2\"
dmaster: 0
rsn: 1
flags: 0x00000000
data(7) = \"pvalue2\"

Dumped 3 records
",
    );
    assert_ok(node.ctdb(&["getdbseqnum", "capture_pers.tdb"]), "0x3\n");
    assert_ok(node.ctdb(&["getdbseqnum", "capture_vol.tdb"]), "0x0\n");
    // Storing what is there already commits nothing.
    assert_ok(
        node.ctdb(&["pstore", "capture_pers.tdb", "pkey1", "pvalue1"]),
        "",
    );
    assert_ok(node.ctdb(&["getdbseqnum", "capture_pers.tdb"]), "0x3\n");
    fails(
        node.ctdb(&["pstore", "capture_vol.tdb", "k", "v"]),
        "Transactions not supported on DB capture_vol.tdb\n",
        1,
    );

    // backupdb, dumpdbbackup, restoredb, wipedb
    let backup = node.base.path().join("capture_vol.bak");
    let backup = backup.to_str().expect("path");
    assert_ok(
        node.ctdb(&["backupdb", "capture_vol.tdb", backup]),
        &format!("Database backed up to {backup}\n"),
    );
    let (out, errs, code) = node.ctdb(&["dumpdbbackup", backup]);
    assert_eq!((errs.as_str(), code), ("", 0));
    assert!(out.starts_with("Dumping database capture_vol.tdb from backup @ "));
    // With the empty record of the deleted key3 (a read of a missing key leaves none).
    assert!(out.ends_with("\nDumped 3 record(s)\n"), "{out}");
    let (out, errs, code) = node.ctdb(&["restoredb", backup, "capture_restored.tdb"]);
    assert_eq!((errs.as_str(), code), ("", 0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let stamp = lines[0]
        .strip_prefix("Restoring database capture_restored.tdb from backup @ ")
        .expect(&out);
    assert_eq!(stamp.len(), "2026/11/25 02:47:58".len(), "{out}");
    assert_eq!(lines[1], "Database capture_restored.tdb restored");
    let mut restored = dump(&node.ctdb(&["catdb", "capture_restored.tdb"]).0);
    restored.sort();
    assert_eq!(
        restored,
        [
            kv("key(4) = \"key1\"", "data(6) = \"value1\""),
            kv("key(4) = \"key2\"", "data(9) = \"value-two\""),
        ]
    );
    assert_ok(
        node.ctdb(&["wipedb", "capture_restored.tdb"]),
        "Database capture_restored.tdb wiped\n",
    );
    assert_ok(
        node.ctdb(&["cattdb", "capture_restored.tdb"]),
        "Dumped 0 record(s)\n",
    );
    // The other databases were left alone.
    assert!(node
        .ctdb(&["catdb", "capture_vol.tdb"])
        .0
        .ends_with("\nDumped 2 records\n"));
}
