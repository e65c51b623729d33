//! Issue 10: the delete queue's fast passes, VACUUM_FETCH (empty records brought home
//! to their lmaster), DB_VACUUM and the vacuuming tunables.

use ctdb_protocol::control::{DbVacuum, KeyData, RecBuffer, RecData, TunableList};

use super::*;
use crate::vacuum::{VacuumSettings, DELETE_QUEUE_LIMIT};

impl Net {
    /// DB_VACUUM of `VOL` on `node` from a local client, run to its end; the reply.
    fn db_vacuum(&mut self, node: usize, full: bool) -> ReplyControl {
        let data = DbVacuum {
            db_id: VOL_ID,
            full_vacuum_run: full,
        }
        .to_bytes();
        let h = &mut self.nodes[node];
        let packet = h.control_packet(Opcode::DbVacuum, &data, 0);
        h.send_raw(CLIENT, LOCAL, packet);
        let reqid = h.reqid;
        for _ in 0..100 {
            let (clients, _) = self.pump();
            let reply = clients.into_iter().find_map(|(n, p)| match p.body {
                Body::ReplyControl(r) if n == node as u32 && p.reqid == reqid => Some(r),
                _ => None,
            });
            if let Some(r) = reply {
                return r;
            }
            // Slices left for the vacuuming task: run them as it would.
            let out = self.nodes[node].out.clone();
            self.nodes[node].daemon.vacuum_slice(&out);
        }
        panic!("DB_VACUUM never answered");
    }

    /// A local client of `node` tells it that it emptied `key` (as smbd does).
    fn schedule_for_deletion(&mut self, node: usize, key: &[u8]) {
        let (header, data) = self.stored(node, key).expect("the record is there");
        assert!(data.is_empty());
        let req = KeyData {
            db_id: VOL_ID,
            header,
            key: Bytes::copy_from_slice(key),
        }
        .to_bytes();
        let h = &mut self.nodes[node];
        let packet = h.control_packet(Opcode::ScheduleForDeletion, &req, NOREPLY);
        h.send_raw(CLIENT, LOCAL, packet);
        assert!(h.replies().is_empty(), "NOREPLY");
    }
}

#[test]
fn a_fast_pass_deletes_what_was_queued_and_reads_nothing_else() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let queued = named_key_with_lmaster(&net, "queued", 1);
    let unqueued = named_key_with_lmaster(&net, "unqueued", 1);
    let refilled = named_key_with_lmaster(&net, "refilled", 1);
    for key in [&queued, &unqueued, &refilled] {
        net.nodes[1].put_record(VOL_ID, key, hdr(7, 1), b"");
        net.nodes[0].put_record(VOL_ID, key, hdr(3, 1), b"old");
    }
    net.schedule_for_deletion(1, &queued);
    net.schedule_for_deletion(1, &refilled);
    // Filled again after it was queued: the fast pass must leave it.
    net.nodes[1].put_record(VOL_ID, &refilled, hdr(7, 1), b"alive");
    assert_eq!(net.nodes[1].daemon.vacuums.queued(VOL_ID), 2);

    let reply = net.db_vacuum(1, false);
    assert_eq!(reply.status, 0, "{:?}", reply.error_message());
    for node in [0, 1] {
        assert_eq!(net.stored(node, &queued), None, "node {node}");
    }
    // Not queued: a fast pass does not read the database.
    assert_eq!(net.stored(1, &unqueued).unwrap().0.rsn, 7);
    assert_eq!(net.stored(0, &unqueued).unwrap().1, b"old");
    assert_eq!(net.stored(1, &refilled).unwrap().1, b"alive");
    assert_eq!(net.nodes[1].daemon.vacuums.queued(VOL_ID), 0);

    // A full pass reads everything.
    let reply = net.db_vacuum(1, true);
    assert_eq!(reply.status, 0);
    for node in [0, 1] {
        assert_eq!(net.stored(node, &unqueued), None, "node {node}");
    }
    assert_eq!(net.stored(1, &refilled).unwrap().1, b"alive");
}

#[test]
fn an_empty_record_held_away_from_its_lmaster_is_brought_home_and_vacuumed() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    // Node 2 took the record and its client emptied it; the lmaster's copy names
    // node 2; node 0 keeps an old copy from before.
    net.nodes[2].put_record(VOL_ID, &key, hdr(9, 2), b"");
    net.nodes[1].put_record(VOL_ID, &key, hdr(8, 2), b"");
    net.nodes[0].put_record(VOL_ID, &key, hdr(3, 1), b"old");
    net.schedule_for_deletion(2, &key);

    // Node 2 cannot delete it (not its lmaster): its pass sends it home.
    assert_eq!(net.db_vacuum(2, false).status, 0);
    let (header, data) = net.stored(1, &key).expect("at the lmaster");
    assert_eq!((header.dmaster, data.as_slice()), (1, &b""[..]));
    assert!(header.rsn > 9, "{header:?}");
    assert_eq!(net.nodes[1].daemon.vacuums.queued(VOL_ID), 1);
    assert_eq!(net.nodes[1].daemon.remote_calls(), 0);
    assert_eq!(net.stored(2, &key).unwrap().0.dmaster, 1);

    // The lmaster's next pass deletes it everywhere.
    assert_eq!(net.db_vacuum(1, false).status, 0);
    for node in 0..3 {
        assert_eq!(net.stored(node, &key), None, "node {node}");
    }
}

#[test]
fn a_full_pass_sends_home_what_it_finds_held_away() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 0);
    net.nodes[2].put_record(VOL_ID, &key, hdr(4, 2), b"");
    net.nodes[0].put_record(VOL_ID, &key, hdr(3, 2), b"");
    // Not queued anywhere: only a full pass of node 2 finds it.
    assert_eq!(net.db_vacuum(2, true).status, 0);
    assert_eq!(net.stored(0, &key).unwrap().0.dmaster, 0);
    assert_eq!(net.db_vacuum(0, false).status, 0);
    for node in 0..3 {
        assert_eq!(net.stored(node, &key), None, "node {node}");
    }
}

#[test]
fn a_record_filled_again_is_not_taken_home_for_vacuuming() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    // Offered while empty, but node 2's client wrote it again before the lmaster
    // asked for it.
    net.nodes[2].put_record(VOL_ID, &key, hdr(9, 2), b"again");
    net.nodes[1].put_record(VOL_ID, &key, hdr(8, 2), b"");
    let fetch = RecBuffer {
        db_id: VOL_ID,
        records: vec![RecData::with_header(0, &key, &hdr(9, 2), b"")],
    }
    .to_bytes();
    let h = &mut net.nodes[1];
    let packet = h.control_packet(Opcode::VacuumFetch, &fetch, NOREPLY);
    h.send_raw(0, 2, packet);
    let (_, wire) = net.pump();
    assert!(wire.contains(&(Operation::ReqCall, 1, 2)), "{wire:?}");
    assert!(wire.contains(&(Operation::ReplyCall, 2, 1)), "{wire:?}");
    assert!(!wire.iter().any(|(op, _, _)| *op == Operation::ReqDmaster));
    assert_eq!(net.stored(2, &key).unwrap(), (hdr(9, 2), b"again".to_vec()));
    assert_eq!(net.stored(1, &key).unwrap().0.dmaster, 2);
    assert_eq!(net.nodes[1].daemon.remote_calls(), 0);
    assert_eq!(net.nodes[1].daemon.vacuums.queued(VOL_ID), 0);
}

#[test]
fn deletes_through_calls_and_new_empty_records_are_queued() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    h.replies();
    h.call_ok(VOL_ID, callid::FETCH_FUNC, b"read-only");
    assert_eq!(h.daemon.vacuums.queued(VOL_ID), 0, "a read queues nothing");
    // A fetch_locked of a key not there leaves an empty record for the client.
    let lock = {
        let mut p = Packet::from_slice(&h.call_packet(VOL_ID, callid::NULL_FUNC, b"new")).unwrap();
        if let Body::ReqCall(c) = &mut p.body {
            c.flags = callid::IMMEDIATE_MIGRATION;
        }
        p.to_bytes()
    };
    h.send_raw(CLIENT, LOCAL, lock);
    h.replies();
    assert_eq!(h.daemon.vacuums.queued(VOL_ID), 1);
}

#[test]
fn schedule_for_deletion_is_checked_and_its_queue_bounded() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.replies();
    let req = |db_id: u32, key: &[u8]| {
        KeyData {
            db_id,
            header: hdr(1, 0),
            key: Bytes::copy_from_slice(key),
        }
        .to_bytes()
    };
    let r = h.control(Opcode::ScheduleForDeletion, &req(PERS_ID, b"k"));
    assert_eq!(r.status, -1, "a persistent database is never vacuumed");
    let r = h.control(Opcode::ScheduleForDeletion, &req(0x1234, b"k"));
    assert_eq!(r.status, -1, "unknown database");
    let r = h.control(Opcode::ScheduleForDeletion, &[1, 2, 3]);
    assert_eq!(r.status, -1, "too short");
    for i in 0..=DELETE_QUEUE_LIMIT {
        h.daemon
            .schedule_deletion(VOL_ID, Bytes::from(format!("k{i}")), 1);
    }
    assert_eq!(h.daemon.vacuums.queued(VOL_ID), DELETE_QUEUE_LIMIT);
    assert_eq!(h.daemon.vacuums.queue_overflow, 1);
    // A key already queued is updated, not refused.
    h.daemon.schedule_deletion(VOL_ID, Bytes::from("k0"), 2);
    assert_eq!(h.daemon.vacuums.queue_overflow, 1);
    // DB_VACUUM of a persistent database is refused at once.
    let data = DbVacuum {
        db_id: PERS_ID,
        full_vacuum_run: false,
    }
    .to_bytes();
    assert_eq!(h.control(Opcode::DbVacuum, &data).status, -1);
}

#[test]
fn vacuuming_follows_the_nodes_tunables() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    h.replies();
    let out = h.out.clone();
    h.daemon.vacuum(&out);
    // It asked its node for them.
    let asked: Vec<Packet> = h
        .replies()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| matches!(&p.body, Body::ReqControl(c) if c.opcode == Opcode::GetAllTunables))
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].destnode, 0);
    let mut list = TunableList::default();
    assert!(list.set("VacuumInterval", 1));
    assert!(list.set("VacuumMaxRunTime", 30));
    assert!(list.set("RepackLimit", 500));
    assert!(list.set("VacuumFastPathCount", 0));
    let reply = Packet {
        generation: h.daemon.generation(),
        destnode: 0,
        srcnode: 0,
        reqid: asked[0].reqid,
        body: Body::ReplyControl(ReplyControl {
            status: 0,
            data: Bytes::from(list.to_bytes()),
            errmsg: Bytes::new(),
        }),
    };
    h.send_raw(0, 0, reply.to_bytes());
    assert_eq!(
        h.daemon.vacuums.settings(),
        VacuumSettings {
            interval: std::time::Duration::from_secs(1),
            max_run: std::time::Duration::from_secs(30),
            repack_limit: 500,
            fast_path_count: 0,
        }
    );
    assert_eq!(
        h.daemon.vacuum_interval(),
        std::time::Duration::from_secs(1)
    );
}
