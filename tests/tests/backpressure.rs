//! Issue 11: every queue of transport is bounded. A client that never reads what it is
//! sent is cut off once its backlog is full (transport's memory stays bounded while
//! another client floods it with messages), and idle client connections cost no CPU.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::{Body, Opcode, Packet, ReqControl};
use ctdb_tests::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const SRVID: u64 = 0x5EED_0000_0000_0011;

/// A `kB` field of /proc/PID/status, in bytes.
fn status_bytes(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("field")
        * 1024
}

/// User and system CPU ticks of `pid` so far.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads one CTDB packet from `stream`.
async fn read_packet(stream: &mut UnixStream) -> Packet {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.expect("length");
    let mut packet = len.to_vec();
    packet.resize(u32::from_le_bytes(len) as usize, 0);
    stream.read_exact(&mut packet[4..]).await.expect("packet");
    Packet::from_slice(&packet).expect("decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_transport_stays_small() {
    let node = TestNode::start("");
    let sender = node.ready().await;
    let transport = node
        .component_pid("ctdb-transport")
        .expect("transport's pid");

    // The silent client registers for messages, then never reads again.
    let mut silent = UnixStream::connect(&node.socket).await.expect("connect");
    let mut register = Packet::new(Body::ReqControl(ReqControl {
        opcode: Opcode::RegisterSrvid,
        srvid: SRVID,
        client_id: 0,
        flags: 0,
        data: Bytes::new(),
    }));
    register.reqid = 1;
    register.destnode = ctdb_protocol::flags::dest::CURRENT_NODE;
    silent
        .write_all(&register.to_bytes())
        .await
        .expect("register");
    match read_packet(&mut silent).await.body {
        Body::ReplyControl(r) => assert_eq!(r.status, 0),
        other => panic!("{other:?}"),
    }

    let before = status_bytes(transport, "VmRSS");
    // 256 MiB of messages for it, eight times what transport keeps for one client.
    let message = Bytes::from(vec![0x5a; 64 * 1024]);
    let pnn = sender.pnn();
    for _ in 0..4096 {
        // The sender's own queue is bounded too: when transport falls behind, wait.
        loop {
            match sender.send_message(pnn, SRVID, message.clone()) {
                Ok(()) => break,
                Err(ctdb_client::ClientError::Backlog(_)) => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("send: {e}"),
            }
        }
        // Let the sender's own queue drain as it goes.
        tokio::task::yield_now().await;
    }
    // Everything sent has reached transport once a control sent after it is answered.
    sender
        .get_pid(ctdb_protocol::flags::dest::CURRENT_NODE)
        .await
        .expect("transport still answers");
    let peak = status_bytes(transport, "VmHWM");
    let after = status_bytes(transport, "VmRSS");
    println!(
        "transport: VmRSS {} -> {} MiB, peak {} MiB, for 256 MiB sent to a client that does not read",
        before >> 20,
        after >> 20,
        peak >> 20
    );
    assert!(
        after < before + (96 << 20),
        "transport grew from {before} to {after} bytes"
    );

    // The silent client was cut off: what it finally reads ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read += n,
            Err(_) => panic!("the silent client is still connected after reading {read} bytes"),
        }
        assert!(Instant::now() < deadline, "never cut off");
    }
    assert!(read < 256 << 20, "it got everything ({read} bytes)");
    // Others are served as before.
    sender
        .get_pid(ctdb_protocol::flags::dest::CURRENT_NODE)
        .await
        .expect("transport still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_clients_cost_transport_no_cpu() {
    let node = TestNode::start("");
    let client = node.ready().await;
    let transport = node
        .component_pid("ctdb-transport")
        .expect("transport's pid");
    let mut idle = Vec::new();
    for _ in 0..5000 {
        idle.push(UnixStream::connect(&node.socket).await.expect("connect"));
    }
    // Every connection is accepted (a control after them is answered).
    client
        .get_pid(ctdb_protocol::flags::dest::CURRENT_NODE)
        .await
        .expect("transport answers");
    let ticks = cpu_ticks(transport);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_ticks(transport) - ticks;
    println!("transport used {used} CPU ticks in 3 s with 5,000 idle clients");
    // 100 ticks a second: under 5 % of one core.
    assert!(used < 15, "transport used {used} ticks in 3 s");
    drop(idle);
}
