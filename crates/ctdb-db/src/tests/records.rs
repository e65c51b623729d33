//! Compare-and-store calls, traverses and persistent commits, on one daemon and on
//! several wired together ([`Net`]).

use ctdb_protocol::control::{TraverseStart, TraverseStartExt};
use ctdb_protocol::flags::{DB_SEQNUM_KEY, TRANS3_CONFLICT};

use super::*;

fn cas_data(expected: Option<&[u8]>, new: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    match expected {
        Some(e) => {
            d.extend_from_slice(&(e.len() as u32).to_le_bytes());
            d.extend_from_slice(e);
        }
        None => d.extend_from_slice(&callid::STORE_ANYWAY.to_le_bytes()),
    }
    d.extend_from_slice(new);
    d
}

fn cas_packet(reqid: u32, db_id: u32, key: &[u8], calldata: Vec<u8>) -> Vec<u8> {
    let mut p = Packet::new(Body::ReqCall(ReqCall {
        flags: callid::IMMEDIATE_MIGRATION,
        db_id,
        callid: callid::COMPARE_STORE_FUNC,
        hopcount: 0,
        key: Bytes::copy_from_slice(key),
        calldata: Bytes::from(calldata),
    }));
    p.reqid = reqid;
    p.destnode = ctdb_protocol::flags::dest::CURRENT_NODE;
    p.to_bytes()
}

impl Harness {
    fn cas(&mut self, db_id: u32, key: &[u8], calldata: Vec<u8>) -> Body {
        self.reqid += 1;
        let bytes = cas_packet(self.reqid, db_id, key, calldata);
        self.send_raw(CLIENT, LOCAL, bytes);
        self.one_reply().body
    }
}

fn reply_call(body: Body) -> (u32, Vec<u8>) {
    match body {
        Body::ReplyCall(r) => (r.status, r.data.to_vec()),
        other => panic!("expected REPLY_CALL, got {other:?}"),
    }
}

#[test]
fn compare_store_stores_only_over_the_expected_data() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());

    assert_eq!(
        reply_call(h.cas(VOL_ID, b"k", cas_data(None, b"one"))),
        (0, b"one".to_vec())
    );
    let (before, data) = h.header_of(VOL_ID, b"k");
    assert_eq!(data, b"one");

    // Wrong expectation: nothing stored, the current data comes back.
    let (status, current) = reply_call(h.cas(VOL_ID, b"k", cas_data(Some(b"zero"), b"two")));
    assert_eq!(
        (status, current.as_slice()),
        (callid::COMPARE_MISMATCH, &b"one"[..])
    );
    assert_eq!(h.header_of(VOL_ID, b"k").1, b"one");

    assert_eq!(
        reply_call(h.cas(VOL_ID, b"k", cas_data(Some(b"one"), b"two"))).0,
        0
    );
    let (after, data) = h.header_of(VOL_ID, b"k");
    assert_eq!(data, b"two");
    assert!(after.rsn > before.rsn, "the RSN only grows");

    // Storing empty data deletes the value (the record stays, empty, as Samba's).
    assert_eq!(reply_call(h.cas(VOL_ID, b"k", cas_data(None, b""))).0, 0);
    assert_eq!(h.call_ok(VOL_ID, callid::FETCH_FUNC, b"k"), b"");
}

#[test]
fn compare_store_refuses_persistent_databases_and_bad_call_data() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    match h.cas(PERS_ID, b"k", cas_data(None, b"x")) {
        Body::ReplyError(e) => assert!(e.message().contains("transaction"), "{}", e.message()),
        other => panic!("expected REPLY_ERROR, got {other:?}"),
    }
    for bad in [vec![1, 2], 10u32.to_le_bytes().to_vec()] {
        assert!(matches!(h.cas(VOL_ID, b"k", bad), Body::ReplyError(_)));
    }
    assert_eq!(h.call_ok(VOL_ID, callid::FETCH_FUNC, b"k"), b"");
}

const SRVID: u64 = 0xbe00_0000_0000_1234;

/// A traversed record: key, and ltdb header + value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// The records a client got for its traverse, and whether the end marker came last.
fn traversed(packets: &[Packet], client_reqid: u32) -> (Vec<KeyValue>, bool) {
    let mut records = Vec::new();
    let mut ended = false;
    for p in packets {
        let Body::ReqMessage(m) = &p.body else {
            continue;
        };
        assert_eq!(m.srvid, SRVID);
        assert!(!ended, "nothing after the end marker");
        let r = RecData::from_bytes(&m.data).unwrap();
        assert_eq!(r.reqid, client_reqid);
        if r.key.is_empty() && r.data.is_empty() {
            ended = true;
        } else {
            records.push((r.key.to_vec(), r.data.to_vec()));
        }
    }
    (records, ended)
}

fn start_ext(db_id: u32, with_empty: bool) -> Vec<u8> {
    TraverseStartExt {
        db_id,
        reqid: 77,
        srvid: SRVID,
        withemptyrecords: with_empty,
    }
    .to_bytes()
}

#[test]
fn traverse_on_one_node_sends_each_record_then_the_end() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.put_record(VOL_ID, b"a", hdr(3, 0), b"alpha");
    h.put_record(VOL_ID, b"b", hdr(1, 0), b"");
    h.put_record(VOL_ID, b"c", hdr(2, 0), b"gamma");

    for (with_empty, expect) in [(false, 2), (true, 3)] {
        let bytes = h.control_packet(Opcode::TraverseStartExt, &start_ext(VOL_ID, with_empty), 0);
        h.send_raw(CLIENT, LOCAL, bytes);
        let sent: Vec<Packet> = h.sent().into_iter().map(|(_, p)| p).collect();
        let reply = sent
            .iter()
            .find(|p| matches!(p.body, Body::ReplyControl(_)))
            .unwrap();
        assert!(matches!(&reply.body, Body::ReplyControl(r) if r.status == 0));
        let (records, ended) = traversed(&sent, 77);
        assert!(ended);
        assert_eq!(records.len(), expect);
        let (header, value) = ctdb_protocol::ltdb::split_record(&records[0].1).unwrap();
        assert_eq!(
            (records[0].0.as_slice(), header.rsn, value),
            (&b"a"[..], 3, &b"alpha"[..])
        );
    }
    assert_eq!(h.daemon.traversals(), 0);

    // The seed's TRAVERSE_START works too; a malformed one and an unknown db fail.
    let seed = TraverseStart {
        db_id: VOL_ID,
        reqid: 77,
        srvid: SRVID,
    }
    .to_bytes();
    let bytes = h.control_packet(Opcode::TraverseStart, &seed, 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    let sent: Vec<Packet> = h.sent().into_iter().map(|(_, p)| p).collect();
    assert_eq!(traversed(&sent, 77).0.len(), 2);
    assert_eq!(h.control(Opcode::TraverseStartExt, &[1, 2, 3]).status, -1);
    assert_eq!(
        h.control(Opcode::TraverseStartExt, &start_ext(0x1234, false))
            .status,
        -1
    );
}

#[test]
fn traverse_across_nodes_returns_every_record_exactly_once() {
    let mut net = Net::new(3, &[0, 1, 2]);
    // Each node holds its own records, plus stale copies of the others' (dmaster
    // elsewhere), which must not be sent.
    for node in 0..3u32 {
        for i in 0..4 {
            let key = format!("n{node}-{i}");
            for holder in 0..3 {
                let rsn = if holder == node { 5 } else { 1 };
                net.nodes[holder as usize].put_record(VOL_ID, key.as_bytes(), hdr(rsn, node), b"v");
            }
        }
    }
    let h = &mut net.nodes[1];
    let bytes = h.control_packet(Opcode::TraverseStartExt, &start_ext(VOL_ID, false), 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    let (clients, wire) = net.pump();
    let packets: Vec<Packet> = clients.into_iter().map(|(_, p)| p).collect();
    let (records, ended) = traversed(&packets, 77);
    assert!(ended);
    let mut keys: Vec<String> = records
        .iter()
        .map(|(k, v)| {
            let (header, _) = ctdb_protocol::ltdb::split_record(v).unwrap();
            assert_eq!(header.rsn, 5, "the dmaster's copy");
            String::from_utf8(k.clone()).unwrap()
        })
        .collect();
    keys.sort();
    let mut want: Vec<String> = (0..3)
        .flat_map(|n| (0..4).map(move |i| format!("n{n}-{i}")))
        .collect();
    want.sort();
    assert_eq!(keys, want);
    // The other two nodes were asked once each and each sent its records and an end.
    let asked = wire
        .iter()
        .filter(|h| h.0 == Operation::ReqControl && h.1 == 1)
        .count();
    assert_eq!(asked, 2);
    assert_eq!(net.nodes[1].daemon.traversals(), 0);
}

fn seqnum_key() -> Vec<u8> {
    let mut k = DB_SEQNUM_KEY.as_bytes().to_vec();
    k.push(0);
    k
}

/// A commit as Samba's client makes it: the records and the sequence number.
fn commit(records: &[(&[u8], u64, &[u8])], seqnum: u64) -> Vec<u8> {
    let mut recs: Vec<RecData> = records
        .iter()
        .map(|(k, rsn, v)| rec(k, *rsn, 0, v))
        .collect();
    recs.push(rec(&seqnum_key(), seqnum, 0, &seqnum.to_le_bytes()));
    RecBuffer {
        db_id: PERS_ID,
        records: recs,
    }
    .to_bytes()
}

fn pers_net() -> Net {
    let mut net = Net::new(3, &[]);
    for h in &mut net.nodes {
        assert_eq!(h.attach(Opcode::DbAttachPersistent, PERS), PERS_ID);
    }
    net
}

fn control_replies(clients: &[(u32, Packet)]) -> Vec<(u32, u32, i32)> {
    clients
        .iter()
        .filter_map(|(node, p)| match &p.body {
            Body::ReplyControl(r) => Some((*node, p.reqid, r.status)),
            _ => None,
        })
        .collect()
}

fn seqnum_on(net: &mut Net, node: usize) -> u64 {
    let mut req = PERS_ID.to_le_bytes().to_vec();
    req.extend_from_slice(&[0; 4]);
    let data = net.nodes[node].control_ok(Opcode::GetDbSeqnum, &req);
    u64::from_le_bytes(data.try_into().unwrap())
}

#[test]
fn a_commit_reaches_every_node_before_it_is_answered() {
    let mut net = pers_net();
    let coordinator = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    let asker = (coordinator + 1) % 3;
    let bytes = net.nodes[asker].control_packet(
        Opcode::Trans3Commit,
        &commit(&[(b"k1", 1, b"v1"), (b"k2", 1, b"v2")], 1),
        0,
    );
    let reqid = net.nodes[asker].reqid;
    net.nodes[asker].send_raw(CLIENT, LOCAL, bytes);
    let (clients, wire) = net.pump();
    assert_eq!(control_replies(&clients), vec![(asker as u32, reqid, 0)]);
    // Passed to the coordinator, which updated all three nodes (itself included).
    let updates = wire
        .iter()
        .filter(|h| h.0 == Operation::ReqControl && h.1 == coordinator as u32)
        .count();
    assert_eq!(updates, 3);
    for node in 0..3 {
        let rows = net.nodes[node].contents(PERS_ID);
        assert_eq!(rows.len(), 3, "node {node}: {rows:?}");
        assert_eq!(seqnum_on(&mut net, node), 1);
    }
}

#[test]
fn a_commit_over_a_changed_record_is_refused_whole() {
    let mut net = pers_net();
    let first =
        net.nodes[2].control_packet(Opcode::Trans3Commit, &commit(&[(b"k", 1, b"a")], 1), 0);
    net.nodes[2].send_raw(CLIENT, LOCAL, first);
    net.pump();
    // Read before the first commit: same RSNs, so it lost the race.
    let stale = commit(&[(b"other", 1, b"x"), (b"k", 1, b"b")], 1);
    let bytes = net.nodes[1].control_packet(Opcode::Trans3Commit, &stale, 0);
    net.nodes[1].send_raw(CLIENT, LOCAL, bytes);
    let (clients, _) = net.pump();
    assert_eq!(control_replies(&clients)[0].2, TRANS3_CONFLICT);
    for node in 0..3 {
        let rows = net.nodes[node].contents(PERS_ID);
        assert!(
            rows.iter().all(|r| r.0 != b"other"),
            "nothing of it applied"
        );
        assert!(rows.iter().any(|r| r.0 == b"k" && r.3 == b"a"));
    }
}

#[test]
fn commits_that_arrive_during_a_round_share_the_next_one() {
    let mut net = pers_net();
    let c = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    // First commit starts a round; three more queue behind it before any node answers.
    for i in 0..4u64 {
        let key = format!("client-{i}");
        let data = RecBuffer {
            db_id: PERS_ID,
            records: vec![rec(key.as_bytes(), 1, 0, b"v")],
        }
        .to_bytes();
        let bytes = net.nodes[c].control_packet(Opcode::Trans3Commit, &data, 0);
        net.nodes[c].send_raw(CLIENT, LOCAL, bytes);
    }
    let (clients, wire) = net.pump();
    let replies = control_replies(&clients);
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|r| r.2 == 0), "{replies:?}");
    // Two rounds of three UPDATE_RECORDs each, not four.
    let updates = wire
        .iter()
        .filter(|h| h.0 == Operation::ReqControl && h.1 == c as u32)
        .count();
    assert_eq!(updates, 6);
    for node in 0..3 {
        assert_eq!(net.nodes[node].contents(PERS_ID).len(), 4);
        assert_eq!(
            net.nodes[node].daemon.commits_in_progress(),
            0,
            "nothing left over"
        );
    }
}

#[test]
fn commits_sharing_only_the_sequence_number_share_a_round_and_get_one_each() {
    let mut net = pers_net();
    let c = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    // Four clients read seqnum 0 and commit their own key with seqnum 1, as Samba's
    // clients would without the lock between them.
    for i in 0..4u64 {
        let key = format!("own-{i}");
        let data = commit(&[(key.as_bytes(), 1, b"v")], 1);
        let bytes = net.nodes[c].control_packet(Opcode::Trans3Commit, &data, 0);
        net.nodes[c].send_raw(CLIENT, LOCAL, bytes);
    }
    let (clients, _) = net.pump();
    let replies = control_replies(&clients);
    assert_eq!(replies.len(), 4);
    assert!(replies.iter().all(|r| r.2 == 0), "{replies:?}");
    for node in 0..3 {
        assert_eq!(seqnum_on(&mut net, node), 4, "one number per commit");
        let rows = net.nodes[node].contents(PERS_ID);
        let seq = rows.iter().find(|r| r.0 == seqnum_key()).unwrap();
        assert_eq!((seq.1, seq.3.as_slice()), (4, &4u64.to_le_bytes()[..]));
    }
    // An empty commit is refused.
    let empty = RecBuffer {
        db_id: PERS_ID,
        records: vec![],
    };
    assert_eq!(
        net.nodes[c]
            .control(Opcode::Trans3Commit, &empty.to_bytes())
            .status,
        -1
    );
}

#[test]
fn commits_wait_for_a_thaw_and_failures_are_reported() {
    let mut net = pers_net();
    let c = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    net.nodes[c].control_ok(Opcode::Freeze, &[]);
    let bytes =
        net.nodes[c].control_packet(Opcode::Trans3Commit, &commit(&[(b"k", 1, b"v")], 1), 0);
    net.nodes[c].send_raw(CLIENT, LOCAL, bytes);
    let (clients, _) = net.pump();
    assert!(control_replies(&clients).is_empty(), "held while frozen");
    let thaw = net.nodes[c].control_packet(Opcode::Thaw, &[], 0);
    net.nodes[c].send_raw(CLIENT, LOCAL, thaw);
    let (clients, _) = net.pump();
    // The thaw's reply and the commit's.
    let replies = control_replies(&clients);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies.iter().all(|r| r.2 == 0));
    assert_eq!(net.nodes[(c + 1) % 3].contents(PERS_ID).len(), 2);

    // A node that answers an update with an error fails the round's commits.
    let mut net = pers_net();
    let c = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    let other = (c + 1) % 3;
    // Detach-like trouble: the other node no longer knows the database.
    net.nodes[other] = Harness::with_pnn(other as u32);
    let map = net.nodes[c].daemon.vnn_map().clone();
    let h = &mut net.nodes[other];
    h.control_ok(Opcode::SetRecmode, &recmode::ACTIVE.to_le_bytes());
    h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
    h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    let bytes =
        net.nodes[c].control_packet(Opcode::Trans3Commit, &commit(&[(b"k", 1, b"v")], 1), 0);
    net.nodes[c].send_raw(CLIENT, LOCAL, bytes);
    let (clients, _) = net.pump();
    let replies = control_replies(&clients);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].2, -1);
    assert_eq!(net.nodes[c].daemon.commits_in_progress(), 0);
}

/// Every node through a recovery that changes nothing but the generation.
fn new_generation(net: &mut Net, generation: u32) {
    let map = VnnMap {
        generation,
        map: (0..net.nodes.len() as u32).collect(),
    };
    for h in &mut net.nodes {
        h.control_ok(Opcode::SetRecmode, &recmode::ACTIVE.to_le_bytes());
        h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
        h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    }
}

#[test]
fn a_commit_spanning_a_recovery_fails_and_its_held_updates_are_never_applied() {
    let mut net = pers_net();
    let c = net.nodes[0].daemon.coordinator(PERS_ID) as usize;
    let other = (c + 1) % 3;
    // The other node is frozen: the round's UPDATE_RECORD waits there.
    net.nodes[other].control_ok(Opcode::Freeze, &[]);
    let bytes =
        net.nodes[c].control_packet(Opcode::Trans3Commit, &commit(&[(b"k", 1, b"v")], 1), 0);
    let reqid = net.nodes[c].reqid;
    net.nodes[c].send_raw(CLIENT, LOCAL, bytes);
    let (clients, _) = net.pump();
    assert!(control_replies(&clients).is_empty(), "the round waits");
    // A recovery replaces the copies (a new generation), then the node thaws: the
    // update of the old generation is refused, so the round fails.
    new_generation(&mut net, MIGRATION_GEN + 1);
    let thaw = net.nodes[other].control_packet(Opcode::Thaw, &[], 0);
    net.nodes[other].send_raw(CLIENT, LOCAL, thaw);
    let (clients, _) = net.pump();
    let replies = control_replies(&clients);
    assert!(
        replies.contains(&(c as u32, reqid, -1)),
        "the commit failed: {replies:?}"
    );
    // Neither the held update nor the coordinator's own (sent last) was applied; the
    // third node applied it before the recovery, whose copies it then was among (a
    // commit that failed may or may not be there afterwards).
    for node in [c, other] {
        let rows = net.nodes[node].contents(PERS_ID);
        assert!(rows.iter().all(|r| r.0 != b"k"), "node {node}: {rows:?}");
    }
    assert_eq!(net.nodes[c].daemon.commits_in_progress(), 0);

    // A commit passed on by a node of another generation is refused at once.
    let stale =
        net.nodes[other].control_packet(Opcode::Trans3Commit, &commit(&[(b"k", 1, b"v")], 1), 0);
    let mut stale = Packet::from_slice(&stale).unwrap();
    stale.generation = MIGRATION_GEN;
    net.nodes[c].send_raw(0, other as u32, stale.to_bytes());
    let replies: Vec<i32> = net.nodes[c]
        .sent()
        .into_iter()
        .filter_map(|(_, p)| match p.body {
            Body::ReplyControl(r) => Some(r.status),
            _ => None,
        })
        .collect();
    assert_eq!(replies, [-1]);
    // A commit in this generation goes through.
    let bytes =
        net.nodes[other].control_packet(Opcode::Trans3Commit, &commit(&[(b"k2", 1, b"v")], 1), 0);
    net.nodes[other].send_raw(CLIENT, LOCAL, bytes);
    let (clients, _) = net.pump();
    assert!(control_replies(&clients).iter().all(|r| r.2 == 0));
    for node in 0..3 {
        assert!(net.nodes[node]
            .contents(PERS_ID)
            .iter()
            .any(|r| r.0 == b"k2"));
    }
}

#[test]
fn commits_to_volatile_or_unknown_databases_and_garbage_fail_at_once() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    let vol = RecBuffer {
        db_id: VOL_ID,
        records: vec![rec(b"k", 1, 0, b"v")],
    };
    assert_eq!(h.control(Opcode::Trans3Commit, &vol.to_bytes()).status, -1);
    assert_eq!(h.control(Opcode::Trans3Commit, &[9, 9, 9]).status, -1);
    let unknown = RecBuffer {
        db_id: 0x4242,
        records: vec![],
    };
    assert_eq!(
        h.control(Opcode::Trans3Commit, &unknown.to_bytes()).status,
        -1
    );
}

#[test]
fn update_record_keeps_the_higher_rsn() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.put_record(VOL_ID, b"k", hdr(5, 0), b"old");
    h.put_record(PERS_ID, b"k", hdr(5, 0), b"old");
    let update = |db_id, rsn, v: &[u8]| {
        RecBuffer {
            db_id,
            records: vec![rec(b"k", rsn, 0, v)],
        }
        .to_bytes()
    };
    // Volatile: a lower RSN is refused, as Samba refuses it.
    assert_eq!(
        h.control(Opcode::UpdateRecord, &update(VOL_ID, 4, b"x"))
            .status,
        -1
    );
    assert_eq!(
        h.control(Opcode::UpdateRecord, &update(VOL_ID, 6, b"new"))
            .status,
        0
    );
    // Persistent: a late copy is skipped, a newer one written.
    assert_eq!(
        h.control(Opcode::UpdateRecord, &update(PERS_ID, 4, b"x"))
            .status,
        0
    );
    assert_eq!(h.contents(PERS_ID)[0].3, b"old");
    assert_eq!(
        h.control(Opcode::UpdateRecord, &update(PERS_ID, 6, b"new"))
            .status,
        0
    );
    assert_eq!(h.contents(PERS_ID)[0].3, b"new");
    assert_eq!(h.contents(VOL_ID)[0].3, b"new");
}
