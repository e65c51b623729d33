//! One node of real processes: driven with ctdb-client, restarted component by
//! component, fed bad input.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::{LtdbHeader, Opcode, ReqCall, Wire};
use ctdb_tests::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const HERE: u32 = dest::CURRENT_NODE;

fn null_call(db_id: u32, key: &[u8]) -> ReqCall {
    ReqCall {
        flags: 0,
        db_id,
        callid: call::NULL_FUNC,
        hopcount: 0,
        key: Bytes::copy_from_slice(key),
        calldata: Bytes::new(),
    }
}

async fn header_of(client: &Client, db_id: u32, key: &[u8]) -> LtdbHeader {
    let reply = client
        .call(ReqCall {
            callid: call::FETCH_WITH_HEADER_FUNC,
            ..null_call(db_id, key)
        })
        .await
        .expect("fetch with header");
    LtdbHeader::from_bytes(&reply.data[..LtdbHeader::SIZE]).expect("ltdb header")
}

/// Retries `f` until it succeeds or 30 s pass.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_controls_and_calls() {
    let node = TestNode::start("");
    let client = node.ready().await;
    assert_eq!(client.pnn(), 0);
    assert!(client.ping(HERE).await.expect("ping") >= 1);
    assert_eq!(
        client.get_capabilities(HERE).await.expect("caps"),
        0x0003_0003
    );
    assert_eq!(
        client
            .get_tunable(HERE, "RecoverInterval")
            .await
            .expect("getvar"),
        1
    );
    client
        .set_tunable(HERE, "RecoverInterval", 3)
        .await
        .expect("setvar");
    assert_eq!(
        client
            .get_tunable(HERE, "recoverinterval")
            .await
            .expect("getvar"),
        3
    );
    assert!(client.list_tunables(HERE).await.expect("listvars").len() > 40);

    let vol = client
        .attach(HERE, "one_node.tdb", false)
        .await
        .expect("attach");
    let pers = client
        .attach(HERE, "one_node_p.tdb", true)
        .await
        .expect("attach p");
    let map = client.get_dbmap(HERE).await.expect("dbmap");
    assert_eq!(map.dbs.len(), 2);
    assert_eq!(
        client.get_dbname(HERE, vol).await.expect("name"),
        "one_node.tdb"
    );
    assert!(client
        .get_dbpath(HERE, pers)
        .await
        .expect("path")
        .contains("persistent"));

    // A read of a missing record stores nothing; once a record exists, every local
    // call stores it back with a higher RSN, as ctdbd does.
    assert!(client.fetch(vol, b"k").await.expect("fetch").is_empty());
    // (Samba's count: rsn 1 for a record its lmaster would have stored once.)
    assert_eq!(header_of(&client, vol, b"k").await.rsn, 1);
    client.store(vol, b"k", b"").await.expect("store");
    client.call(null_call(vol, b"k")).await.expect("null call");
    let first = header_of(&client, vol, b"k").await;
    let second = header_of(&client, vol, b"k").await;
    assert!(second.rsn > first.rsn, "{first:?} then {second:?}");
    assert_eq!(second.dmaster, 0);

    // A call for a database nobody attached is answered with an error, not silence.
    let err = client
        .call(null_call(0xdead_beef, b"k"))
        .await
        .expect_err("unknown db");
    assert!(matches!(err, ClientError::CallFailed { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_component_comes_back_after_a_kill_and_records_survive() {
    let node = TestNode::start("");
    let client = node.ready().await;
    let db = client
        .attach(HERE, "survive.tdb", false)
        .await
        .expect("attach");
    for i in 0..20u32 {
        client
            .store(db, &i.to_le_bytes(), b"value")
            .await
            .expect("write");
    }
    let before = header_of(&client, db, &7u32.to_le_bytes()).await;
    // Volatile updates reach disk within sled's flush interval (200 ms): a SIGKILL
    // right after a write may lose that last update, a clean restart loses nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;

    for component in ["ctdb-db", "ctdb-recoverd", "ctdb-eventd", "ctdb-transport"] {
        // The supervisor restarts it; the node answers again.
        node.kill_and_wait_restart(component).await;
        let client = node.ready().await;
        let map = eventually("dbmap", || client.get_dbmap(HERE)).await;
        assert!(
            map.dbs.iter().any(|d| d.db_id == db),
            "database lost after restarting {component}"
        );
        let after = eventually("fetch", || {
            let client = client.clone();
            async move {
                let reply = client
                    .call(ReqCall {
                        callid: call::FETCH_WITH_HEADER_FUNC,
                        ..null_call(db, &7u32.to_le_bytes())
                    })
                    .await?;
                LtdbHeader::from_bytes(&reply.data[..LtdbHeader::SIZE]).map_err(ClientError::from)
            }
        })
        .await;
        assert!(
            after.rsn > before.rsn,
            "record lost or rolled back after restarting {component}: {before:?} -> {after:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_cut_off_and_everyone_else_is_served() {
    let node = TestNode::start("");
    let client = node.ready().await;

    let garbage: [&[u8]; 3] = [
        // Not a CTDB packet at all.
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\0\0\0\0\0\0\0",
        // A header announcing 1 GiB.
        &{
            let mut p = [0u8; 32];
            p[..4].copy_from_slice(&(1u32 << 30).to_le_bytes());
            p[4..8].copy_from_slice(&0x4354_4442u32.to_le_bytes());
            p[8..12].copy_from_slice(&1u32.to_le_bytes());
            p
        },
        // A valid header whose length is below the header size.
        &{
            let mut p = [0u8; 32];
            p[..4].copy_from_slice(&16u32.to_le_bytes());
            p[4..8].copy_from_slice(&0x4354_4442u32.to_le_bytes());
            p[8..12].copy_from_slice(&1u32.to_le_bytes());
            p
        },
    ];
    for bytes in garbage {
        let mut bad = UnixStream::connect(&node.socket).await.expect("connect");
        bad.write_all(bytes).await.expect("write garbage");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), bad.read(&mut buf))
            .await
            .expect("the daemon closes a stream it cannot trust")
            .unwrap_or(0);
        assert_eq!(n, 0, "expected the connection to be closed");
        // Everyone else is still served.
        assert!(client.ping(HERE).await.is_ok());
    }

    // A truncated packet: the header promises more than ever arrives; the client goes
    // away and nothing else is disturbed.
    {
        let mut half = UnixStream::connect(&node.socket).await.expect("connect");
        let mut p = vec![0u8; 40];
        p[..4].copy_from_slice(&64u32.to_le_bytes());
        p[4..8].copy_from_slice(&0x4354_4442u32.to_le_bytes());
        p[8..12].copy_from_slice(&1u32.to_le_bytes());
        p[16..20].copy_from_slice(&7u32.to_le_bytes());
        half.write_all(&p).await.expect("write half");
    }
    assert!(client.ping(HERE).await.is_ok());

    // A control nobody owns gets an error reply.
    let reply = client
        .control_raw(
            HERE,
            Opcode::Unknown(9999),
            0,
            Bytes::new(),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply");
    assert_ne!(reply.status, 0);
    let obsolete = client
        .control_raw(
            HERE,
            Opcode::GetNodemapV4,
            0,
            Bytes::new(),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply");
    assert_ne!(obsolete.status, 0);
    assert!(client.ping(HERE).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_in_transport_serves_calls_and_survives_a_transport_restart() {
    let node = TestNode::start("[database]\n\tin transport process = yes\n");
    let client = node.ready().await;
    assert!(
        node.component_pid("ctdb-db").is_none(),
        "no separate db process"
    );
    let db = client
        .attach(HERE, "colo.tdb", false)
        .await
        .expect("attach");
    client.store(db, b"k", b"value").await.expect("store");
    let before = header_of(&client, db, b"k").await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    node.kill_and_wait_restart("ctdb-transport").await;
    let client = node.ready().await;
    let after = header_of(&client, db, b"k").await;
    assert!(after.rsn > before.rsn, "{before:?} -> {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_an_immediate_kill_of_db() {
    let node = TestNode::start("");
    let client = node.ready().await;
    let db = client
        .attach(HERE, "durable.tdb", false)
        .await
        .expect("attach");
    for i in 0..5u32 {
        client
            .store(db, &i.to_le_bytes(), format!("value {i}").as_bytes())
            .await
            .expect("store");
    }
    // No pause: the writes were acknowledged, so they must be on disk already. (One
    // kill only: a node that keeps causing recoveries gets banned.)
    node.kill_and_wait_restart("ctdb-db").await;
    let client = node.ready().await;
    for i in 0..5u32 {
        let data = eventually("fetch", || {
            let client = client.clone();
            async move { client.fetch(db, &i.to_le_bytes()).await }
        })
        .await;
        assert_eq!(data, format!("value {i}").as_bytes(), "record {i}");
    }
}

/// A component that cannot start (here ctdb-db over a corrupt sled store) is not
/// restarted for ever: ctdbd gives up after a few quick deaths, and the node says it is
/// UNHEALTHY instead of looking healthy without its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_component_is_given_up_and_the_node_is_unhealthy() {
    let base = tempfile::tempdir().expect("temp dir");
    let state = base.path().join("db/state");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::write(state.join("ctdb-rs.sled"), b"not a sled directory").expect("corrupt");
    let addr = ctdb_tests::loopback_subnet() + ".1";
    let conf = format!("[cluster]\n\tnode address = {addr}\n");
    let node = TestNode::start_in(base.path(), 0, std::slice::from_ref(&addr), &conf);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let flags = match Client::connect(&node.socket).await {
            Ok(client) => client
                .get_nodemap(HERE)
                .await
                .ok()
                .and_then(|m| m.nodes.first().map(|n| n.flags)),
            Err(_) => None,
        };
        if flags.is_some_and(|f| f & ctdb_protocol::flags::node::UNHEALTHY != 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never went UNHEALTHY; log:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = node.log();
    assert!(
        log.contains("ctdb-db") && log.contains("not restarted"),
        "the log says why:\n{log}"
    );
    // Given up before the node was told: no pid file, no ctdb-db process any more.
    assert_eq!(node.component_pid("ctdb-db"), None);
}

/// Waits until node 0's own flags have UNHEALTHY set (`true`) or clear.
async fn wait_health(client: &Client, unhealthy: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let map = client
            .get_nodemap(dest::CURRENT_NODE)
            .await
            .expect("nodemap");
        let flags = map.nodes[0].flags;
        if (flags & ctdb_protocol::flags::node::UNHEALTHY != 0) == unhealthy {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: flags {flags:#x}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_event_daemon_makes_the_node_unhealthy() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let node = TestNode::start("");
    let client = node.ready().await;
    wait_health(&client, false, "healthy at start").await;
    let eventd = Pid::from_raw(node.component_pid("ctdb-eventd").expect("eventd's pid"));
    // Stopped, it monitors nothing: the node must not look healthy.
    kill(eventd, Signal::SIGSTOP).expect("SIGSTOP");
    let began = Instant::now();
    wait_health(&client, true, "UNHEALTHY while eventd is stopped").await;
    println!("UNHEALTHY {:?} after eventd stopped", began.elapsed());
    kill(eventd, Signal::SIGCONT).expect("SIGCONT");
    wait_health(&client, false, "healthy again once eventd answers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_when_asked_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .unwrap()
        .port();
    let node = TestNode::start(&format!("[metrics]\n\taddress = 127.0.0.1:{port}\n"));
    let client = node.ready().await;
    client.get_pid(dest::CURRENT_NODE).await.expect("a control");
    // One restart of ctdb-db, counted.
    node.kill_and_wait_restart("ctdb-db").await;
    let client = node.ready().await;
    client.get_pid(dest::CURRENT_NODE).await.expect("a control");
    let scrape = || async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("metrics port");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text
    };
    let mut text = scrape().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !text.contains("ctdb_component_up{pnn=\"0\",component=\"db\"} 1") {
        assert!(std::time::Instant::now() < deadline, "db not back:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = scrape().await;
    }
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert!(value("ctdb_client_controls_total{pnn=\"0\"}") >= 1.0);
    assert_eq!(value("ctdb_component_up{pnn=\"0\",component=\"db\"}"), 1.0);
    assert_eq!(value("ctdb_recovering{pnn=\"0\"}"), 0.0);
    assert!(text.contains("# TYPE ctdb_calls_total counter"));
    assert_eq!(
        value("ctdb_component_restarts_total{pnn=\"0\",component=\"db\"}"),
        1.0
    );
    assert_eq!(
        value("ctdb_component_restarts_total{pnn=\"0\",component=\"eventd\"}"),
        0.0
    );
    // The lone node leads: it won an election.
    assert!(value("ctdb_elections_won_total{pnn=\"0\"}") >= 1.0);
    assert!(value("ctdb_leader_changes_total{pnn=\"0\"}") >= 1.0);
}
