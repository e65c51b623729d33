//! Issue 12: the interface event script ctdb-rs ships
//! (`deploy/events/legacy/10.interface.script`) puts a node's public addresses on the
//! interface and takes them off again. The three nodes of this test share the host's
//! `lo`, so the test sees that each address is there while held and gone once
//! released; it needs root (CAP_NET_ADMIN), which CI has.

use std::process::Command;
use std::time::{Duration, Instant};

use ctdb_tests::{bin, wait_for, TestCluster};

const SCRIPT: &str = include_str!("../../deploy/events/legacy/10.interface.script");
const ADDRESSES: [&str; 3] = ["10.79.0.1", "10.79.0.2", "10.79.0.3"];

/// The sysctl the interface script sets (it keeps an address's subnet companions).
const PROMOTE: &str = "/proc/sys/net/ipv4/conf/lo/promote_secondaries";

/// `lo` is one test's at a time: the tests' nodes change its addresses and its
/// promote_secondaries, and one test putting the sysctl back while the other's nodes
/// release addresses would drop them.
static LO: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds `lo` for a test ([`LO`]); removes the test's addresses from `lo` whatever
/// happens, and puts `lo`'s promote_secondaries back as it was.
struct Cleanup {
    addresses: &'static [&'static str],
    promote: Option<String>,
    _lo: std::sync::MutexGuard<'static, ()>,
}

impl Cleanup {
    fn new(addresses: &'static [&'static str]) -> Self {
        // A test that failed holding `lo` has cleaned up all the same.
        let lo = LO.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self {
            addresses,
            promote: std::fs::read_to_string(PROMOTE).ok(),
            _lo: lo,
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for a in self.addresses {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{a}/24"), "dev", "lo"])
                .output();
        }
        if let Some(value) = &self.promote {
            let _ = std::fs::write(PROMOTE, value);
        }
    }
}

fn on_lo(addr: &str) -> bool {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "lo", "to", addr])
        .output()
        .expect("ip");
    !out.stdout.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeip_adds_the_address_and_releaseip_removes_it() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test changes addresses on lo: it needs root"
        );
        eprintln!("skipped: not root");
        return;
    }
    let _cleanup = Cleanup::new(&ADDRESSES);
    let file: String = ADDRESSES.iter().map(|a| format!("{a}/24 lo\n")).collect();
    let cluster = TestCluster::start_with_files(
        3,
        &[
            ("public_addresses", &file),
            ("events/legacy/10.interface.script", SCRIPT),
        ],
    );
    cluster.healthy(&[0, 1, 2]).await;
    wait_for("every address on lo", || ADDRESSES.iter().all(|a| on_lo(a))).await;

    // One address leaves every node's file: its holder releases it, and it is gone.
    let two: String = ADDRESSES[..2]
        .iter()
        .map(|a| format!("{a}/24 lo\n"))
        .collect();
    for n in &cluster.nodes {
        std::fs::write(n.dir().join("public_addresses"), &two).unwrap();
    }
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["reloadips", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("10.79.0.3 gone from lo", || !on_lo(ADDRESSES[2])).await;
    // The others may move between nodes meanwhile (released, then taken): they end
    // up on lo again.
    wait_for("the other two on lo", || {
        on_lo(ADDRESSES[0]) && on_lo(ADDRESSES[1])
    })
    .await;
}

/// Public address and client of the tickle test.
const TICKLED: &str = "10.80.0.1";
const CLIENT_PORT: u16 = 40123;

/// Waits (on a raw socket that sees every TCP segment of the host) for a tickle ACK
/// from TICKLED:445 to port CLIENT_PORT.
fn wait_for_tickle(socket: &socket2::Socket) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 2048];
    let want: std::net::Ipv4Addr = TICKLED.parse().unwrap();
    while Instant::now() < deadline {
        let Ok(n) = (&*socket).read(&mut buf) else {
            continue;
        };
        if n < 40 {
            continue;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let src = std::net::Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        let tcp = &buf[ihl..n];
        let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
        if src == want
            && port(0) == 445
            && port(2) == CLIENT_PORT
            && tcp[13] == 0x10
            && port(14) == 1234
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_holder_tickles_the_clients_of_an_address_it_takes_over() {
    use ctdb_protocol::control::{Connection, PublicIpList, SockAddr};
    use ctdb_protocol::{flags::dest, Opcode, Wire};
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "this test needs root");
        eprintln!("skipped: not root");
        return;
    }
    let _cleanup = Cleanup::new(&["10.80.0.1", "10.80.0.2"]);
    let cluster = TestCluster::start_with_files(
        3,
        &[
            ("public_addresses", "10.80.0.1/24 lo\n10.80.0.2/24 lo\n"),
            ("events/legacy/10.interface.script", SCRIPT),
        ],
    );
    let clients = cluster.healthy(&[0, 1, 2]).await;
    wait_for("10.80.0.1 on lo", || on_lo(TICKLED)).await;
    let any = clients[0].as_ref().expect("client");
    let list = any
        .control(
            dest::CURRENT_NODE,
            Opcode::GetPublicIps,
            0,
            bytes::Bytes::new(),
        )
        .await
        .expect("ips");
    let holder = PublicIpList::from_bytes(&list)
        .unwrap()
        .ips
        .iter()
        .find(|ip| ip.addr.socket_addr().map(|a| a.ip().to_string()) == Some(TICKLED.into()))
        .map(|ip| ip.pnn)
        .expect("held");
    // A client of the address registers its connection with the holder, which
    // spreads it to the others.
    let conn = Connection {
        src: SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], CLIENT_PORT))),
        dst: SockAddr::from(
            format!("{TICKLED}:445")
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ),
    };
    clients[holder as usize]
        .as_ref()
        .expect("client")
        .control(
            dest::CURRENT_NODE,
            Opcode::TcpClient,
            0,
            bytes::Bytes::from(conn.to_bytes()),
        )
        .await
        .expect("TCP_CLIENT");
    // Every node has it before the address moves.
    for c in clients.iter().flatten() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = c
                .control(
                    dest::CURRENT_NODE,
                    Opcode::GetTcpTickleList,
                    0,
                    bytes::Bytes::from(conn.dst.to_bytes()),
                )
                .await
                .expect("GET_TCP_TICKLE_LIST");
            let list = ctdb_protocol::control::TickleList::from_bytes(&list).expect("a list");
            if list.connections.contains(&conn) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never got the connection",
                c.pnn()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::TCP),
    )
    .expect("raw socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let watcher = std::thread::spawn(move || wait_for_tickle(&socket));
    // The holder is disabled: another node takes the address and tickles the client.
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["-n", &holder.to_string(), "disable"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        watcher.join().expect("watcher"),
        "no tickle ACK from {TICKLED}:445 to port {CLIENT_PORT}\n{}",
        cluster.logs()
    );
}
