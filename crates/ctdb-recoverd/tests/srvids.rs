//! The recovery daemon's srvids on a real one-node ctdb-rs, asked as Samba's tool asks.
//!
//! Runs the workspace's built binaries like the integration harness in `tests/` does
//! (`cargo build --workspace --bins` first; `scripts/test.sh` does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, Message};
use ctdb_protocol::flags::{dest, recmode, INVALID_GENERATION};
use ctdb_protocol::srvid::{self, samba};
use ctdb_recoverd::messages::{DisableMessage, SrvidMessage};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc::Receiver;

/// `target/debug`, where the test executable's directory (`deps`) lives.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// One node run by its supervisor, stopped (SIGTERM) when dropped.
struct Node {
    dir: tempfile::TempDir,
    child: Child,
}

impl Node {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ctdb-recoverd-srvids")
            .tempdir()
            .expect("temp dir");
        // An address of our own: other tests' nodes use 127.1xx.*.
        let addr = format!("127.45.{}.1", std::process::id() % 250 + 1);
        std::fs::create_dir_all(dir.path().join("events")).expect("events dir");
        // One event script that notes every event it is run for.
        let script = dir.path().join("events/10.note");
        let noted = dir.path().join("events.noted");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$1\" >> {}\n", noted.display()),
        )
        .expect("event script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        std::fs::write(dir.path().join("nodes"), format!("{addr}\n")).expect("nodes");
        std::fs::write(
            dir.path().join("ctdb.conf"),
            format!("[cluster]\n\tnode address = {addr}\n"),
        )
        .expect("ctdb.conf");
        let child = Command::new(bin("ctdbd"))
            .env("CTDB_BASE", dir.path())
            .env("CTDB_SOCKET", dir.path().join("ctdb.socket"))
            .env(
                "CTDB_LOGGING_LOCATION",
                format!("file:{}", dir.path().join("log.ctdb").display()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ctdbd");
        Self { dir, child }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("ctdb.socket")
    }

    /// How many times the event scripts ran for `event`.
    fn event_runs(&self, event: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("events.noted"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == event)
            .count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.ctdb")).unwrap_or_default()
    }

    /// A client once the node has finished its first recovery.
    async fn ready(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = Client::connect(self.socket()).await {
                let here = dest::CURRENT_NODE;
                if let (Ok(0), Ok(map)) = (
                    client.get_recmode(here).await,
                    client.get_vnnmap(here).await,
                ) {
                    if map.generation != INVALID_GENERATION {
                        return client;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "node not ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs Samba's `ctdb` against this node, giving up after `limit`.
    fn samba_tool(&self, args: &[&str], limit: Duration) -> Option<(bool, String)> {
        let mut child = Command::new("ctdb")
            .args(args)
            .env("CTDB_SOCKET", self.socket())
            .env("CTDB_BASE", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run ctdb");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
                }
                return Some((status.success(), out));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reply srvid of this test process, in the test range.
fn reply_srvid(n: u64) -> u64 {
    samba::TEST_RANGE | (u64::from(std::process::id()) << 16) | n
}

async fn next(rx: &mut Receiver<Message>, wait: Duration) -> Option<Bytes> {
    tokio::time::timeout(wait, rx.recv())
        .await
        .ok()
        .flatten()
        .map(|m| m.data)
}

fn int(data: &Bytes) -> i32 {
    i32::from_le_bytes(data[..].try_into().expect("an int32 answer"))
}

fn disable(pnn: u32, srvid: u64, timeout: u32) -> Bytes {
    Bytes::from(
        DisableMessage {
            pnn,
            srvid,
            timeout,
        }
        .to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_daemon_answers_its_srvids() {
    let node = Node::start();
    let client = node.ready().await;
    let pnn = client.pnn();
    let (run_id, disable_id, dump_id) = (reply_srvid(1), reply_srvid(2), reply_srvid(3));
    let mut runs = client.register_srvid(run_id).await.expect("register");
    let mut disables = client.register_srvid(disable_id).await.expect("register");
    let mut dumps = client.register_srvid(dump_id).await.expect("register");
    let short = Duration::from_secs(10);
    let takeover_request = Bytes::from(SrvidMessage { pnn, srvid: run_id }.to_bytes());

    // The leader's own takeover run after its first recovery comes first (ready()
    // returns once that recovery is over, maybe before the run).
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.event_runs("ipreallocated") == 0 {
        assert!(
            Instant::now() < deadline,
            "no takeover run after the first recovery"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A takeover run, asked of every connected node as Samba's tool asks: the leader
    // (this node) answers its pnn.
    let before = node.event_runs("ipreallocated");
    client
        .send_message(
            dest::BROADCAST_CONNECTED,
            srvid::TAKEOVER_RUN,
            takeover_request.clone(),
        )
        .expect("send");
    let answer = next(&mut runs, short).await.expect("takeover run answered");
    assert_eq!(int(&answer), pnn as i32);
    // The run ended with IPREALLOCATED, which ran the node's `ipreallocated` event.
    assert_eq!(node.event_runs("ipreallocated"), before + 1);

    // Takeover runs disabled: answered with our pnn; a run asked for now waits...
    client
        .send_message(
            pnn,
            samba::DISABLE_TAKEOVER_RUNS,
            disable(pnn, disable_id, 60),
        )
        .expect("send");
    let answer = next(&mut disables, short).await.expect("disable answered");
    assert_eq!(int(&answer), pnn as i32);
    client
        .send_message(
            dest::BROADCAST_CONNECTED,
            srvid::TAKEOVER_RUN,
            takeover_request,
        )
        .expect("send");
    assert!(
        next(&mut runs, Duration::from_secs(3)).await.is_none(),
        "a takeover run ran while disabled"
    );
    // ... until they are enabled again.
    client
        .send_message(
            pnn,
            samba::DISABLE_TAKEOVER_RUNS,
            disable(pnn, disable_id, 0),
        )
        .expect("send");
    assert_eq!(
        int(&next(&mut disables, short).await.expect("enable")),
        pnn as i32
    );
    let answer = next(&mut runs, short).await.expect("deferred run answered");
    assert_eq!(int(&answer), pnn as i32);

    // Recoveries disabled: a recovery the node needs waits until they are enabled.
    client
        .send_message(pnn, samba::DISABLE_RECOVERIES, disable(pnn, disable_id, 60))
        .expect("send");
    assert_eq!(
        int(&next(&mut disables, short).await.expect("disable")),
        pnn as i32
    );
    let here = dest::CURRENT_NODE;
    let generation = client.get_vnnmap(here).await.expect("vnnmap").generation;
    client
        .set_recmode(here, recmode::ACTIVE)
        .await
        .expect("recovery mode active");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        client.get_recmode(here).await.expect("recmode"),
        recmode::ACTIVE,
        "recovered while recoveries were disabled; log:\n{}",
        node.log()
    );
    client
        .send_message(pnn, samba::DISABLE_RECOVERIES, disable(pnn, disable_id, 0))
        .expect("send");
    assert_eq!(
        int(&next(&mut disables, short).await.expect("enable")),
        pnn as i32
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mode = client.get_recmode(here).await.expect("recmode");
        let now = client.get_vnnmap(here).await.expect("vnnmap").generation;
        if mode == recmode::NORMAL && now != generation {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery once enabled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The memory report.
    let dump = Bytes::from(
        SrvidMessage {
            pnn,
            srvid: dump_id,
        }
        .to_bytes(),
    );
    client
        .send_message(pnn, srvid::MEM_DUMP, dump)
        .expect("send");
    let report = next(&mut dumps, short).await.expect("memory report");
    let report = String::from_utf8_lossy(&report);
    assert!(report.contains("VmRSS:"), "{report}");

    // A payload too short is dropped, and the daemon keeps serving.
    client
        .send_message(pnn, srvid::MEM_DUMP, Bytes::from_static(&[1, 2, 3]))
        .expect("send");
    client
        .send_message(
            pnn,
            srvid::MEM_DUMP,
            Bytes::from(
                SrvidMessage {
                    pnn,
                    srvid: dump_id,
                }
                .to_bytes(),
            ),
        )
        .expect("send");
    assert!(next(&mut dumps, short).await.is_some());
    assert!(node.log().contains("dropping a bad MEM_DUMP message"));

    // Samba's own tool, where it is installed: these commands waited forever before.
    if Command::new("ctdb").arg("version").output().is_ok() {
        let limit = Duration::from_secs(20);
        let (ok, _) = node
            .samba_tool(&["ipreallocate"], limit)
            .expect("ctdb ipreallocate finishes");
        assert!(ok, "ctdb ipreallocate failed; log:\n{}", node.log());
        let (ok, out) = node
            .samba_tool(&["rddumpmemory"], limit)
            .expect("ctdb rddumpmemory finishes");
        assert!(ok && out.contains("memory of ctdb-recoverd"), "{out}");
        let (ok, _) = node
            .samba_tool(&["reloadips"], limit)
            .expect("ctdb reloadips finishes");
        assert!(ok, "ctdb reloadips failed; log:\n{}", node.log());
    }
}
