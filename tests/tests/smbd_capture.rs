//! What Samba 4.17's smbd asked of Samba's ctdbd (`shared/vectors/samba-4.17/smbd/
//! client-smbd.jsonl`), asked of our node byte for byte: every control smbd sent to node
//! 0, on one client connection per captured one, unpadded as smbd sends them. Where
//! Samba's daemon answered, ours answers with the same status (and, for attaches, the
//! same db_id); where smbd asked for no reply (SCHEDULE_FOR_DELETION, TCP_CLIENT), ours
//! sends none.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ctdb_protocol::Opcode;
use ctdb_tests::TestCluster;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn capture() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/samba-4.17/smbd/client-smbd.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Reads one packet: its length word, then the rest.
async fn read_packet(stream: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.expect("reply length");
    let mut packet = len.to_vec();
    packet.resize(u32::from_le_bytes(len) as usize, 0);
    stream
        .read_exact(&mut packet[4..])
        .await
        .expect("reply body");
    packet
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().expect("4 bytes"))
}

/// Controls whose answer does not depend on the processes and pids of the capture.
fn status_is_comparable(opcode: &str) -> bool {
    !matches!(
        opcode,
        "CTDB_CONTROL_CHECK_PID_SRVID" | "CTDB_CONTROL_TRANS3_COMMIT"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smbds_controls_get_sambas_answers() {
    let rows = capture();
    // Samba's replies to node 0's clients, by (connection, reqid).
    let mut replies: BTreeMap<(u64, u64), &Value> = BTreeMap::new();
    for r in rows.iter().filter(|r| r["node"] == 0 && r["dir"] == "s2c") {
        if r["operation_name"] == "CTDB_REPLY_CONTROL" {
            let key = (r["conn"].as_u64().unwrap(), r["reqid"].as_u64().unwrap());
            replies.insert(key, r);
        }
    }
    let requests: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["node"] == 0
                && r["dir"] == "c2s"
                && r["operation_name"] == "CTDB_REQ_CONTROL"
                && r["opcode_name"] != "CTDB_CONTROL_TRANS3_COMMIT"
        })
        .collect();
    assert!(requests.len() > 100, "the capture has smbd's start-up");

    let cluster = TestCluster::start(1);
    cluster.healthy(&[0]).await;
    let mut conns: BTreeMap<u64, UnixStream> = BTreeMap::new();
    let mut checked = 0;
    for r in requests {
        let conn = r["conn"].as_u64().unwrap();
        let reqid = r["reqid"].as_u64().unwrap();
        let opcode = r["opcode_name"].as_str().unwrap();
        let bytes = hex::decode(r["hex"].as_str().unwrap()).expect("hex");
        let stream = match conns.entry(conn) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(
                UnixStream::connect(&cluster.nodes[0].socket)
                    .await
                    .expect("connect"),
            ),
        };
        stream.write_all(&bytes).await.expect("send");
        let Some(theirs) = replies.get(&(conn, reqid)) else {
            continue; // NOREPLY: checked below, no stray reply may come.
        };
        let mine = tokio::time::timeout(Duration::from_secs(10), read_packet(stream))
            .await
            .unwrap_or_else(|_| panic!("no reply to {} ({opcode}, reqid {reqid})", r["i"]));
        assert_eq!(u32_at(&mine, 28) as u64, reqid, "reply to {opcode}");
        assert_eq!(u32_at(&mine, 16), 8, "a REPLY_CONTROL to {opcode}");
        let status = u32_at(&mine, 32) as i32;
        let their_status = theirs["fields"]["status"].as_i64().unwrap() as i32;
        if status_is_comparable(opcode) {
            assert_eq!(
                status, their_status,
                "status of {opcode} (capture i={})",
                r["i"]
            );
        }
        if opcode.starts_with("CTDB_CONTROL_DB_ATTACH") {
            let theirs = hex::decode(theirs["hex"].as_str().unwrap()).unwrap();
            assert_eq!(mine[44..48], theirs[44..48], "db_id of {opcode}");
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} replies compared");
    // No reply is left over for the NOREPLY controls: a PING on every connection
    // gets its own reply first.
    for stream in conns.values_mut() {
        let ping = ctdb_protocol::Packet {
            generation: 0,
            destnode: ctdb_protocol::flags::dest::CURRENT_NODE,
            srcnode: 0,
            reqid: 999_999,
            body: ctdb_protocol::Body::ReqControl(ctdb_protocol::ReqControl {
                opcode: Opcode::Ping,
                srvid: 0,
                client_id: 0,
                flags: 0,
                data: bytes::Bytes::new(),
            }),
        };
        stream.write_all(&ping.to_bytes()).await.expect("ping");
        let reply = tokio::time::timeout(Duration::from_secs(10), read_packet(stream))
            .await
            .expect("ping reply");
        assert_eq!(u32_at(&reply, 28), 999_999, "a stray reply came first");
    }
}
