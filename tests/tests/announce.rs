//! Issue 12: telling the network that an address moved. Gratuitous ARPs after a
//! takeover and on `ctdb gratarp` (SEND_GRATUITOUS_ARP), compared frame by frame with
//! what Samba's ctdbd sends for the same request; and `ctdb tickle`, whose tickle ACK
//! must be the same segment Samba's tool sends. Needs root (raw and packet sockets, a
//! veth pair), which CI has.

use std::process::Command;
use std::time::{Duration, Instant};

use ctdb_tests::samba::SambaCluster;
use ctdb_tests::{bin, samba_ctdb, TestCluster};
use socket2::{Domain, Protocol, Socket, Type};

const IFACE: &str = "ctdbarp0";

fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "this test needs root");
    eprintln!("skipped: not root");
    false
}

/// A veth pair for the test (`name` and `name`'s peer `<name>p`), deleted on drop:
/// packet sockets see the frames go out of one end.
struct Veth(&'static str);

impl Veth {
    fn new(name: &'static str) -> Self {
        let _ = Command::new("ip").args(["link", "del", name]).output();
        let peer = format!("{name}p");
        for args in [
            vec!["link", "add", name, "type", "veth", "peer", "name", &peer],
            vec!["link", "set", name, "up"],
            vec!["link", "set", &peer, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        }
        Self(name)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).output();
    }
}

/// A packet socket that sees every ARP frame of the host, in and out.
fn arp_capture() -> Socket {
    let eth_p_arp = i32::from(0x0806u16.to_be());
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_arp)))
        .expect("packet socket");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    s
}

/// The ARP frames (Ethernet header and ARP body, 42 bytes) that announce `addr`, seen
/// within `period`.
fn announcements(capture: &Socket, addr: [u8; 4], period: Duration) -> Vec<Vec<u8>> {
    use std::io::Read;
    let deadline = Instant::now() + period;
    let mut frames = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = (&*capture).read(&mut buf) else {
            continue;
        };
        // Sender and target protocol addresses both the announced one.
        if n >= 42 && buf[12..14] == [0x08, 0x06] && buf[28..32] == addr && buf[38..42] == addr {
            frames.push(buf[..42].to_vec());
        }
    }
    frames
}

fn run(tool: &std::path::Path, env: &[(&str, String)], args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run ctdb");
    assert!(out.status.success(), "ctdb {args:?}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gratuitous_arps_are_samba_s_on_gratarp_and_after_a_takeover() {
    if !root_or_skip() {
        return;
    }
    let Some(samba_tool) = samba_ctdb() else {
        return;
    };
    let _veth = Veth::new(IFACE);
    let capture = arp_capture();
    let window = Duration::from_millis(3500);

    // Samba's ctdbd, asked by its own tool: the reference.
    let samba = SambaCluster::start(1, &ctdb_tests::loopback_subnet());
    let base = samba.dir.path().join("node.0");
    let samba_env = vec![
        ("CTDB_TEST_MODE", "yes".to_string()),
        ("CTDB_BASE", base.display().to_string()),
        ("CTDB_SOCKET", samba.socket(0).display().to_string()),
    ];
    run(&samba_tool, &samba_env, &["gratarp", "10.81.0.7", IFACE]);
    let reference = announcements(&capture, [10, 81, 0, 7], window);
    assert!(
        !reference.is_empty(),
        "Samba's ctdbd sent no gratuitous ARP"
    );
    drop(samba);

    // Ours, asked by Samba's tool and by ours: the same frames, as many.
    let ours = TestCluster::start_with(1, "10.81.0.9/24 ctdbarp0\n");
    ours.healthy(&[0]).await;
    let node = &ours.nodes[0];
    let our_env = vec![("CTDB_SOCKET", node.socket.display().to_string())];
    for tool in [samba_tool.clone(), bin("ctdb")] {
        run(&tool, &our_env, &["gratarp", "10.81.0.7", IFACE]);
        let frames = announcements(&capture, [10, 81, 0, 7], window);
        assert_eq!(
            frames,
            reference,
            "{}: gratuitous ARPs differ from Samba's",
            tool.display()
        );
    }

    // The node took 10.81.0.9 over when it started: it announced it the same way. A
    // takeover on a restart of its recovery daemon is not needed to see it: move the
    // address away and back.
    let tool = bin("ctdb");
    let frames_of_takeover = {
        run(&tool, &our_env, &["delip", "10.81.0.9"]);
        let capture_start = Instant::now();
        run(&tool, &our_env, &["addip", "10.81.0.9/24", IFACE]);
        run(&tool, &our_env, &["ipreallocate"]);
        let frames = announcements(&capture, [10, 81, 0, 9], window + Duration::from_secs(2));
        eprintln!(
            "{} announcement frames within {:.1} s of the takeover",
            frames.len(),
            capture_start.elapsed().as_secs_f32()
        );
        frames
    };
    assert_eq!(
        frames_of_takeover.len(),
        reference.len(),
        "a takeover announces as often as Samba's gratarp: {frames_of_takeover:?}"
    );
    assert_eq!(
        &frames_of_takeover[0][22..28],
        &reference[0][22..28],
        "the MAC"
    );
}

/// Tickle ACKs seen from `server` to `client` within a few seconds: the TCP headers.
fn tickles_seen(capture: &Socket, server: ([u8; 4], u16), client: u16) -> Vec<Vec<u8>> {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok(n) = (&*capture).read(&mut buf) else {
            continue;
        };
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        if n < ihl + 20 || buf[12..16] != server.0 {
            continue;
        }
        let tcp = &buf[ihl..n];
        let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
        if port(0) == server.1 && port(2) == client {
            seen.push(tcp.to_vec());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctdb_tickle_sends_what_samba_s_tool_sends() {
    if !root_or_skip() {
        return;
    }
    let Some(samba_tool) = samba_ctdb() else {
        return;
    };
    let capture = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::TCP)).expect("raw");
    capture
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut segments = Vec::new();
    for (tool, how) in [
        (samba_tool.clone(), "args"),
        (bin("ctdb"), "args"),
        (bin("ctdb"), "stdin"),
    ] {
        let mut cmd = Command::new(&tool);
        cmd.env("CTDB_SOCKET", "/nonexistent/ctdb.socket");
        let out = if how == "args" {
            cmd.args(["tickle", "127.0.81.9:40125", "127.0.81.1:445"])
                .output()
                .expect("ctdb tickle")
        } else {
            use std::io::Write;
            let mut child = cmd
                .arg("tickle")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ctdb tickle");
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(b"127.0.81.9:40125 127.0.81.1:445\n")
                    .expect("stdin");
            }
            child.wait_with_output().expect("ctdb tickle")
        };
        assert!(
            out.status.success(),
            "{} tickle ({how}): {out:?}",
            tool.display()
        );
        let seen = tickles_seen(&capture, ([127, 0, 81, 1], 445), 40125);
        assert_eq!(seen.len(), 1, "{} ({how}): {seen:?}", tool.display());
        segments.push(seen[0].clone());
    }
    assert_eq!(
        segments[1], segments[0],
        "our tickle ACK differs from Samba's"
    );
    assert_eq!(segments[2], segments[0], "our tickle ACK (stdin) differs");
    // A bare ACK, window 1234, as the daemon's tickles after a takeover.
    assert_eq!(segments[0][13], 0x10);
    assert_eq!(&segments[0][14..16], &1234u16.to_be_bytes());
}
