//! Drives [`DbDaemon::handle`] with encoded packets and reads the replies from the
//! outbox, as transport would.

use bytes::Bytes;
use ctdb_protocol::flags::{call as callid, control::NOREPLY, db as dbflags, recmode};
use ctdb_protocol::ltdb::REC_FLAG_AUTOMATIC;
use ctdb_protocol::packet::Operation;
use ctdb_protocol::{Body, LtdbHeader, Opcode, Packet, ReplyControl, ReqCall, ReqControl, Wire};
use ctdb_rpc::component::{Outbox, PacketHandler};
use ctdb_rpc::Envelope;

use super::*;

mod records;
mod vacuum_paths;
mod vacuum_scale;

const CLIENT: u64 = 7;
const VOL: &str = "capture_vol.tdb";
const VOL_ID: u32 = 0x6896_115a;
const PERS: &str = "capture_pers.tdb";
const PERS_ID: u32 = 0x6ef9_1a74;

struct Harness {
    daemon: DbDaemon,
    out: Outbox,
    rx: ctdb_rpc::queue::QueueRx<Envelope>,
    reqid: u32,
    dir: tempfile::TempDir,
}

/// The TDB file directories of a node whose state lives in `dir`.
fn dirs(dir: &tempfile::TempDir) -> DbDirs {
    DbDirs {
        volatile: dir.path().join("volatile"),
        persistent: dir.path().join("persistent"),
        state: dir.path().join("state"),
    }
}

fn open(dir: &tempfile::TempDir, pnn: u32) -> DbDaemon {
    DbDaemon::open(&dir.path().join("db.sled"), Options::new(pnn, dirs(dir))).unwrap()
}

impl Harness {
    fn new() -> Self {
        Self::with_pnn(0)
    }

    fn with_pnn(pnn: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let daemon = open(&dir, pnn);
        let (out, rx) = Outbox::new();
        Self {
            daemon,
            out,
            rx,
            reqid: 100,
            dir,
        }
    }

    /// Drops the daemon (flushing it) and opens a new one on the same directory.
    fn restart(&mut self) {
        self.daemon.flush().unwrap();
        let pnn = self.daemon.pnn();
        // sled locks its directory: the old daemon must be gone before the new one opens.
        let placeholder = DbDaemon::open(
            &self.dir.path().join("placeholder.sled"),
            Options::new(pnn, dirs(&self.dir)),
        )
        .unwrap();
        drop(std::mem::replace(&mut self.daemon, placeholder));
        self.daemon = open(&self.dir, pnn);
    }

    fn send_raw(&mut self, client: u64, from_node: u32, packet: Vec<u8>) {
        self.daemon.handle(
            Envelope {
                client,
                from_node,
                packet: packet.into(),
                trace: 0,
            },
            &self.out,
        );
    }

    /// What the daemon sent, less the attach broadcasts to the other nodes.
    fn replies(&mut self) -> Vec<(Envelope, Packet)> {
        self.sent()
            .into_iter()
            .filter(|(_, p)| p.destnode != ctdb_protocol::flags::dest::BROADCAST_CONNECTED)
            .collect()
    }

    fn sent(&mut self) -> Vec<(Envelope, Packet)> {
        let mut all = Vec::new();
        while let Ok(env) = self.rx.try_recv() {
            let p = Packet::from_slice(&env.packet).expect("replies decode");
            all.push((env, p));
        }
        all
    }

    fn one_reply(&mut self) -> Packet {
        let mut r = self.replies();
        assert_eq!(r.len(), 1, "expected exactly one reply: {r:?}");
        let (env, p) = r.remove(0);
        assert_eq!(env.client, CLIENT);
        assert_eq!(p.reqid, self.reqid);
        assert_eq!(p.srcnode, self.daemon.pnn());
        assert_eq!(p.destnode, 0);
        assert_eq!(p.generation, self.daemon.generation());
        p
    }

    fn control_packet(&mut self, opcode: Opcode, data: &[u8], flags: u32) -> Vec<u8> {
        self.reqid += 1;
        let mut p = Packet::new(Body::ReqControl(ReqControl {
            opcode,
            srvid: 0,
            client_id: 0,
            flags,
            data: Bytes::copy_from_slice(data),
        }));
        p.reqid = self.reqid;
        p.destnode = ctdb_protocol::flags::dest::CURRENT_NODE;
        p.to_bytes()
    }

    fn control(&mut self, opcode: Opcode, data: &[u8]) -> ReplyControl {
        let bytes = self.control_packet(opcode, data, 0);
        self.send_raw(CLIENT, LOCAL, bytes);
        match self.one_reply().body {
            Body::ReplyControl(r) => r,
            other => panic!("expected REPLY_CONTROL, got {other:?}"),
        }
    }

    fn control_ok(&mut self, opcode: Opcode, data: &[u8]) -> Vec<u8> {
        let r = self.control(opcode, data);
        assert_eq!(r.status, 0, "{opcode}: {:?}", r.error_message());
        r.data.to_vec()
    }

    fn attach(&mut self, opcode: Opcode, name: &str) -> u32 {
        let data = self.control_ok(opcode, &payload::cstring(name));
        u32::from_le_bytes(data.try_into().unwrap())
    }

    fn call_packet(&mut self, db_id: u32, id: u32, key: &[u8]) -> Vec<u8> {
        self.reqid += 1;
        let mut p = Packet::new(Body::ReqCall(ReqCall {
            flags: callid::IMMEDIATE_MIGRATION,
            db_id,
            callid: id,
            hopcount: 0,
            key: Bytes::copy_from_slice(key),
            calldata: Bytes::new(),
        }));
        p.reqid = self.reqid;
        p.destnode = ctdb_protocol::flags::dest::CURRENT_NODE;
        p.to_bytes()
    }

    fn call(&mut self, db_id: u32, id: u32, key: &[u8]) -> Body {
        let bytes = self.call_packet(db_id, id, key);
        self.send_raw(CLIENT, LOCAL, bytes);
        self.one_reply().body
    }

    fn call_ok(&mut self, db_id: u32, id: u32, key: &[u8]) -> Vec<u8> {
        match self.call(db_id, id, key) {
            Body::ReplyCall(r) => {
                assert_eq!(r.status, 0);
                r.data.to_vec()
            }
            other => panic!("expected REPLY_CALL, got {other:?}"),
        }
    }

    fn header_of(&mut self, db_id: u32, key: &[u8]) -> (LtdbHeader, Vec<u8>) {
        let data = self.call_ok(db_id, callid::FETCH_WITH_HEADER_FUNC, key);
        let h = LtdbHeader::from_bytes(&data[..LtdbHeader::SIZE]).unwrap();
        (h, data[LtdbHeader::SIZE..].to_vec())
    }

    fn put_record(&mut self, db_id: u32, key: &[u8], header: LtdbHeader, data: &[u8]) {
        self.daemon
            .put_value(&self.db(db_id), key, &call::encode_record(&header, data))
            .unwrap();
    }

    fn db(&self, db_id: u32) -> DbInfo {
        self.daemon.registry.get(db_id).unwrap().clone()
    }

    /// The stored value of `key`, as clients see it in the TDB file.
    fn value(&self, db_id: u32, key: &[u8]) -> Option<Vec<u8>> {
        self.daemon.get_value(&self.db(db_id), key).unwrap()
    }

    /// Every stored (key, value), in key order.
    fn all_values(&self, db_id: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut all = Vec::new();
        self.daemon
            .scan_values(&self.db(db_id), &mut |k, v| {
                all.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
        all.sort();
        all
    }
}

#[test]
fn attach_returns_samba_db_ids() {
    let mut h = Harness::new();
    assert_eq!(h.attach(Opcode::DbAttach, VOL), VOL_ID);
    assert_eq!(h.attach(Opcode::DbAttachPersistent, PERS), PERS_ID);
    assert_eq!(
        h.attach(Opcode::DbAttachReplicated, "capture_repl.tdb"),
        0xfce0_9386
    );
    // Samba's reply bytes (client.jsonl i=320): the db_id as a little-endian u32.
    assert_eq!(
        h.control_ok(Opcode::DbAttach, b"capture_vol.tdb\0"),
        [0x5a, 0x11, 0x96, 0x68]
    );
    // Plain DB_ATTACH of an existing persistent database: same id, still persistent.
    assert_eq!(h.attach(Opcode::DbAttach, PERS), PERS_ID);
    assert!(h.daemon.registry().get(PERS_ID).unwrap().is_persistent());
    assert_eq!(h.daemon.registry().len(), 3);
    // No name, or a bad one, fails.
    assert_eq!(h.control(Opcode::DbAttach, b"").status, -1);
    assert_eq!(h.control(Opcode::DbAttach, b"a/b\0").status, -1);
}

#[test]
fn getdbmap_lists_attached_databases_with_flags_like_samba() {
    let mut h = Harness::new();
    assert_eq!(h.control_ok(Opcode::GetDbmap, &[]), [0, 0, 0, 0]);
    // The attach order of the capture, then its flags.
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.attach(Opcode::DbAttachReplicated, "capture_repl.tdb");
    h.attach(Opcode::DbAttach, "capture_mig.tdb");
    let ro = h.attach(Opcode::DbAttach, "capture_ro.tdb");
    h.attach(Opcode::DbAttach, "capture_sticky.tdb");
    // client.jsonl i=392: newest first, persistent 0x01, replicated 0x08.
    let expected = "060000009864c35000000000381c49db00000000b2d03ef0000000008693e0fc08000000741af96e010000005a11966800000000";
    assert_eq!(hex(&h.control_ok(Opcode::GetDbmap, &[])), expected);

    h.control_ok(Opcode::SetDbReadonly, &ro.to_le_bytes());
    let map = h.control_ok(Opcode::GetDbmap, &[]);
    assert_eq!(map[12..16], ro.to_le_bytes());
    assert_eq!(map[16], dbflags::READONLY);
    // Read-only and sticky are for volatile databases only.
    assert_eq!(
        h.control(Opcode::SetDbReadonly, &PERS_ID.to_le_bytes())
            .status,
        -1
    );
    assert_eq!(
        h.control(Opcode::SetDbSticky, &PERS_ID.to_le_bytes())
            .status,
        -1
    );
    assert_eq!(
        h.control(Opcode::SetDbSticky, &7u32.to_le_bytes()).status,
        -1
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn getdbpath_getdbname_and_open_flags() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    let dir = h.dir.path().display().to_string();
    let vol_path = format!("{dir}/volatile/capture_vol.tdb.0");
    assert_eq!(
        h.control_ok(Opcode::Getdbpath, &VOL_ID.to_le_bytes()),
        format!("{vol_path}\0").as_bytes()
    );
    assert_eq!(
        h.control_ok(Opcode::Getdbpath, &PERS_ID.to_le_bytes()),
        format!("{dir}/persistent/capture_pers.tdb.0\0").as_bytes()
    );
    // A real TDB file is there, 0600, with Samba's hash size for new files.
    let meta = std::fs::metadata(&vol_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(&std::fs::read(&vol_path).unwrap()[..9], b"TDB file\n");
    assert_eq!(
        h.control_ok(Opcode::GetDbname, &VOL_ID.to_le_bytes()),
        b"capture_vol.tdb\0"
    );
    // client.jsonl i=326 and i=338 show Samba's 0x1c41 and 0x0400; ours leaves out
    // TDB_MUTEX_LOCKING (0x1000): clients lock chains with fcntl, as we do.
    assert_eq!(
        h.control_ok(Opcode::DbOpenFlags, &VOL_ID.to_le_bytes()),
        [0x41, 0x0c, 0, 0]
    );
    assert_eq!(
        h.control_ok(Opcode::DbOpenFlags, &PERS_ID.to_le_bytes()),
        [0, 0x04, 0, 0]
    );
    assert_eq!(
        h.control_ok(Opcode::DbGetHealth, &VOL_ID.to_le_bytes()),
        b""
    );
    // Samba 4.17's ctdb_db_statistics without hot keys: 464 bytes.
    let stats = h.control_ok(Opcode::GetDbStatistics, &VOL_ID.to_le_bytes());
    assert_eq!(stats.len(), 464);
    assert!(payload::DbStatistics::from_bytes(&stats).is_ok());
    for op in [Opcode::Getdbpath, Opcode::GetDbname, Opcode::DbOpenFlags] {
        assert_eq!(h.control(op, &0xdead_beefu32.to_le_bytes()).status, -1);
        assert_eq!(h.control(op, &[1]).status, -1);
    }
}

#[test]
fn fetch_of_a_missing_record_is_empty() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(h.call_ok(VOL_ID, callid::FETCH_FUNC, b"nosuchkey"), b"");
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"nosuchkey"), b"");
    // The reply is Samba's 48-byte empty REPLY_CALL.
    let bytes = h.call_packet(VOL_ID, callid::FETCH_FUNC, b"k");
    h.send_raw(CLIENT, LOCAL, bytes);
    let r = h.replies();
    assert_eq!(r[0].0.packet.len(), 48);
}

#[test]
fn every_call_bumps_the_rsn_and_this_node_is_dmaster() {
    let mut h = Harness::with_pnn(2);
    h.attach(Opcode::DbAttach, VOL);
    // A missing record: the call sees Samba's initial header (AUTOMATIC; rsn 1 at its
    // lmaster, where Samba would have stored it once), and a read leaves nothing behind.
    for _ in 0..2 {
        let (first, data) = h.header_of(VOL_ID, b"key1");
        assert_eq!(
            (first.rsn, first.dmaster, first.flags),
            (1, 2, REC_FLAG_AUTOMATIC)
        );
        assert!(data.is_empty());
    }
    // Once stored it has rsn 1, and every call after bumps it.
    h.put_record(VOL_ID, b"key1", hdr(1, 2), b"");
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"key1"), b"");
    for expected in 2..6 {
        let (hdr, _) = h.header_of(VOL_ID, b"key1");
        assert_eq!(hdr.rsn, expected);
        assert_eq!(hdr.dmaster, 2);
        assert_eq!(hdr.flags, 0, "AUTOMATIC is never stored");
    }
    // Data comes back with FETCH and after the header with FETCH_WITH_HEADER.
    h.put_record(
        VOL_ID,
        b"k2",
        LtdbHeader {
            rsn: 10,
            dmaster: 2,
            ..Default::default()
        },
        b"value",
    );
    assert_eq!(h.call_ok(VOL_ID, callid::FETCH_FUNC, b"k2"), b"value");
    let (hdr, data) = h.header_of(VOL_ID, b"k2");
    assert_eq!((hdr.rsn, data.as_slice()), (11, &b"value"[..]));
    assert_eq!(h.daemon.stats().total_calls, 9);
    assert_eq!(h.daemon.stats().client_req_call, 9);
}

#[test]
fn reads_of_missing_records_store_nothing_and_queue_nothing() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    for i in 0..2000 {
        h.call_ok(VOL_ID, callid::FETCH_FUNC, b"empty");
        h.call_ok(
            VOL_ID,
            callid::FETCH_WITH_HEADER_FUNC,
            format!("never-{i}").as_bytes(),
        );
    }
    let records = h.all_values(VOL_ID).len();
    assert_eq!(records, 0, "memory stays flat however many keys are read");
    assert_eq!(h.daemon.pending_calls(), 0);
    // An existing empty record is kept and its RSN grows with every call.
    h.put_record(VOL_ID, b"empty", hdr(1, 0), b"");
    for _ in 0..10 {
        h.call_ok(VOL_ID, callid::FETCH_FUNC, b"empty");
    }
    assert_eq!(h.header_of(VOL_ID, b"empty").0.rsn, 11);
}

#[test]
fn a_fetch_locked_migration_leaves_the_record_in_the_file_for_the_client() {
    // Samba's fetch_locked: NULL_FUNC with IMMEDIATE_MIGRATION, then the client locks
    // the chain and reads the TDB file, and asks again until it finds itself dmaster.
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"g_lock"), b"");
    let value = h
        .value(VOL_ID, b"g_lock")
        .expect("the record is in the file");
    let (header, data) = ctdb_protocol::ltdb::split_record(&value).unwrap();
    // Samba's count: stored once as it was created, once after the call.
    assert_eq!((header.dmaster, header.rsn, data.len()), (0, 2, 0));
    // The file at GETDBPATH holds it, as libtdb reads it.
    let path = h.db(VOL_ID).path(&h.daemon.dirs, 0);
    // (One process may not open a file twice: close the daemon's first, and open
    // without CLEAR_IF_FIRST, which would empty a file nobody else holds.)
    drop(h.daemon.files.close(VOL_ID));
    let tdb = ctdb_tdb::Tdb::open(path.as_ref(), 0, ctdb_tdb::flags::INCOMPATIBLE_HASH).unwrap();
    assert_eq!(tdb.fetch(b"g_lock").unwrap(), Some(value));
}

#[test]
fn clients_changes_in_the_file_survive_a_reopen_and_a_lost_file_comes_back_from_sled() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"k"), b"");
    let path = h.db(VOL_ID).path(&h.daemon.dirs, 0);
    let header = ctdb_protocol::ltdb::split_record(&h.value(VOL_ID, b"k").unwrap())
        .unwrap()
        .0;
    // A client writes into the file as Samba's do (same header, new data) and adds a
    // record of its own; then nobody holds the file, and the daemon opens it again.
    drop(h.daemon.files.close(VOL_ID));
    {
        let client =
            ctdb_tdb::Tdb::open(path.as_ref(), 0, ctdb_tdb::flags::INCOMPATIBLE_HASH).unwrap();
        client
            .store(b"k", &call::encode_record(&header, b"by client"))
            .unwrap();
        client
            .store(b"new", &call::encode_record(&hdr(1, 0), b"also"))
            .unwrap();
    }
    h.daemon.open_files(Some(VOL_ID)).unwrap();
    let data = |h: &Harness, key: &[u8]| {
        let value = h.value(VOL_ID, key).expect("record");
        ctdb_protocol::ltdb::split_record(&value)
            .unwrap()
            .1
            .to_vec()
    };
    assert_eq!(data(&h, b"k"), b"by client");
    assert_eq!(data(&h, b"new"), b"also");
    // sled has them too: with the file gone, the next open rebuilds it from sled.
    drop(h.daemon.files.close(VOL_ID));
    std::fs::remove_file(&path).unwrap();
    h.daemon.open_files(Some(VOL_ID)).unwrap();
    assert_eq!(data(&h, b"k"), b"by client");
    assert_eq!(data(&h, b"new"), b"also");
    assert!(std::path::Path::new(&path).exists());
}

#[test]
fn a_large_file_is_swept_a_window_at_a_time() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"k"), b"");
    let n = ltdb::SWEEP_SLICE * 2 + 500;
    {
        // Written into the file behind the daemon's back, as a client writes.
        let tdb = h.daemon.files.get(VOL_ID).expect("the file is open");
        for i in 0..n {
            let value = call::encode_record(&hdr(1, 0), format!("v{i}").as_bytes());
            tdb.store(format!("c{i}").as_bytes(), &value).unwrap();
        }
    }
    // Each sweep compares one window with sled; together they cover the file.
    let sweeps: Vec<usize> = (0..4).map(|_| h.daemon.sweep()).collect();
    assert_eq!(sweeps.iter().sum::<usize>(), n, "{sweeps:?}");
    assert!(sweeps.iter().all(|&s| s <= ltdb::SWEEP_SLICE), "{sweeps:?}");
    let tree = registry::tree_name(VOL_ID);
    assert!(h.daemon.store.get(&tree, b"c0").unwrap().is_some());
    assert!(h
        .daemon
        .store
        .get(&tree, format!("c{}", n - 1).as_bytes())
        .unwrap()
        .is_some());
    assert_eq!(
        (0..4).map(|_| h.daemon.sweep()).sum::<usize>(),
        0,
        "nothing changed since"
    );
}

#[test]
fn the_sweep_brings_clients_changes_into_sled() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"k"), b"");
    let path = h.db(VOL_ID).path(&h.daemon.dirs, 0);
    // Samba's tdbtool is another process writing the file while the daemon holds it.
    let Ok(out) = std::process::Command::new("tdbtool")
        .args([&path, "store", "swept", "by tdbtool"])
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install tdbtool (Debian package tdb-tools)"
        );
        eprintln!("skipping: tdbtool is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = registry::tree_name(VOL_ID);
    assert_eq!(h.daemon.store.get(&tree, b"swept").unwrap(), None);
    assert_eq!(h.daemon.sweep(), 1);
    assert_eq!(
        h.daemon.store.get(&tree, b"swept").unwrap().as_deref(),
        Some(&b"by tdbtool"[..])
    );
    assert_eq!(h.daemon.sweep(), 0, "nothing changed since");
}

#[test]
fn persistent_reads_do_not_bump_or_create() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttachPersistent, PERS);
    assert_eq!(h.header_of(PERS_ID, b"k").0.rsn, 0);
    assert_eq!(h.header_of(PERS_ID, b"k").0.rsn, 0);
    assert_eq!(h.value(PERS_ID, b"k"), None);
}

#[test]
fn unknown_database_gets_a_reply_error() {
    let mut h = Harness::new();
    match h.call(0xdead_beef, callid::FETCH_FUNC, b"k") {
        Body::ReplyError(e) => {
            assert_eq!(e.status, u32::MAX);
            assert_eq!(
                e.message(),
                "Unknown database in request. db_id==0xdeadbeef"
            );
            // Samba's msglen counts the NUL (47 bytes).
            assert_eq!(e.msg.len(), 47);
        }
        other => panic!("expected REPLY_ERROR, got {other:?}"),
    }
}

#[test]
fn unknown_call_id_gets_a_reply_error() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    match h.call(VOL_ID, 0x1234, b"k") {
        Body::ReplyError(e) => {
            assert_eq!(e.status, u32::MAX);
            assert!(e.message().contains("0x00001234"), "{}", e.message());
        }
        other => panic!("expected REPLY_ERROR, got {other:?}"),
    }
}

#[test]
fn unknown_controls_get_an_error_naming_them() {
    let mut h = Harness::new();
    let r = h.control(Opcode::GetPnn, &[]);
    assert_eq!(r.status, -1);
    assert!(r.error_message().unwrap().contains("CTDB_CONTROL_GET_PNN"));
    let r = h.control(Opcode::Unknown(9999), &[]);
    assert_eq!(r.status, -1);
    assert!(r.error_message().unwrap().contains("9999"));
    // Without the typed payload, GET_DB_STATISTICS is refused too.
    assert_eq!(
        h.control(Opcode::GetDbStatistics, &VOL_ID.to_le_bytes())
            .status,
        -1
    );
}

#[test]
fn a_client_attach_is_broadcast_to_the_other_nodes() {
    let mut h = Harness::new();
    let bytes = h.control_packet(Opcode::DbAttach, &payload::cstring(VOL), 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    let sent = h.sent();
    let broadcast: Vec<_> = sent
        .iter()
        .filter(|(_, p)| p.destnode == ctdb_protocol::flags::dest::BROADCAST_CONNECTED)
        .collect();
    assert_eq!(broadcast.len(), 1, "{sent:?}");
    let Body::ReqControl(c) = &broadcast[0].1.body else {
        panic!("not a control");
    };
    assert_eq!(c.opcode, Opcode::DbAttach);
    assert_ne!(c.flags & NOREPLY, 0);
    // The same attach from another node is not sent on again.
    let bytes = h.control_packet(Opcode::DbAttach, &payload::cstring(VOL), NOREPLY);
    h.send_raw(0, 1, bytes);
    assert!(h.sent().is_empty());
}

#[test]
fn noreply_controls_act_silently() {
    let mut h = Harness::new();
    let bytes = h.control_packet(Opcode::DbAttach, &payload::cstring(VOL), NOREPLY);
    h.send_raw(CLIENT, LOCAL, bytes);
    assert!(h.replies().is_empty());
    assert!(h.daemon.registry().get(VOL_ID).is_some());
    let bytes = h.control_packet(Opcode::Unknown(4242), &[], NOREPLY);
    h.send_raw(CLIENT, LOCAL, bytes);
    assert!(h.replies().is_empty());
}

#[test]
fn garbage_never_panics_and_readable_requests_get_errors() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    // Random bytes.
    let mut seed = 0x1234_5678u32;
    for len in 0..300 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        h.send_raw(CLIENT, LOCAL, bytes);
    }
    // Every truncation and every single-byte corruption of valid requests.
    let valid = [
        h.call_packet(VOL_ID, callid::FETCH_WITH_HEADER_FUNC, b"key"),
        h.control_packet(
            Opcode::GetDbSeqnum,
            &[0x5a, 0x11, 0x96, 0x68, 0, 0, 0, 0],
            0,
        ),
        h.control_packet(Opcode::Setvnnmap, &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f], 0),
        h.control_packet(Opcode::DbAttach, b"x\0", 0),
    ];
    for packet in &valid {
        for cut in 0..packet.len() {
            h.send_raw(CLIENT, LOCAL, packet[..cut].to_vec());
        }
        for i in 0..packet.len() {
            for v in [0x00, 0xff, 0x80] {
                let mut bad = packet.clone();
                bad[i] = v;
                h.send_raw(CLIENT, 3, bad);
            }
        }
    }
    let _ = h.replies();

    // A REQ_CONTROL whose header is fine but whose body is short gets REPLY_CONTROL -1.
    let mut short = h.control_packet(Opcode::GetDbmap, &[1, 2, 3, 4], 0);
    short[56] = 200; // datalen beyond the packet
    h.send_raw(CLIENT, LOCAL, short);
    match h.one_reply().body {
        Body::ReplyControl(r) => assert_eq!(r.status, -1),
        other => panic!("{other:?}"),
    }
    let mut short = h.call_packet(VOL_ID, callid::FETCH_FUNC, b"key");
    short[48] = 200; // keylen beyond the packet
    h.send_raw(CLIENT, LOCAL, short);
    assert!(matches!(h.one_reply().body, Body::ReplyError(_)));
    // The daemon still serves.
    assert_eq!(h.call_ok(VOL_ID, callid::FETCH_FUNC, b"key"), b"");
}

#[test]
fn records_and_attachments_survive_a_restart() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    let sticky = h.attach(Opcode::DbAttach, "capture_sticky.tdb");
    h.control_ok(Opcode::SetDbSticky, &sticky.to_le_bytes());
    h.put_record(
        PERS_ID,
        b"pkey",
        LtdbHeader {
            rsn: 5,
            ..Default::default()
        },
        b"persistent value",
    );
    h.put_record(VOL_ID, b"k", hdr(1, 0), b"");
    h.call_ok(VOL_ID, callid::NULL_FUNC, b"k");
    let map = h.control_ok(Opcode::GetDbmap, &[]);

    h.restart();
    assert_eq!(h.control_ok(Opcode::GetDbmap, &[]), map);
    assert_eq!(h.header_of(VOL_ID, b"k").0.rsn, 2);
    assert_eq!(
        h.call_ok(PERS_ID, callid::FETCH_FUNC, b"pkey"),
        b"persistent value"
    );
    assert!(h.daemon.registry().get(PERS_ID).unwrap().is_persistent());
    assert_eq!(
        h.daemon.registry().get(sticky).unwrap().flags,
        dbflags::STICKY
    );
    // New attachments after a restart still list newest first.
    h.attach(Opcode::DbAttach, "later.tdb");
    let map = h.control_ok(Opcode::GetDbmap, &[]);
    assert_eq!(map[4..8], payload_id("later.tdb"));
}

fn payload_id(name: &str) -> [u8; 4] {
    hash::db_id(name).to_le_bytes()
}

#[test]
fn get_db_seqnum_needs_exactly_8_bytes() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.attach(Opcode::DbAttach, VOL);
    assert_eq!(
        h.control(Opcode::GetDbSeqnum, &PERS_ID.to_le_bytes())
            .status,
        -1
    );
    let mut req = PERS_ID.to_le_bytes().to_vec();
    req.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(h.control_ok(Opcode::GetDbSeqnum, &req), 0u64.to_le_bytes());
    h.put_record(
        PERS_ID,
        b"__db_sequence_number__\0",
        LtdbHeader {
            rsn: 3,
            ..Default::default()
        },
        &3u64.to_le_bytes(),
    );
    // client.jsonl i=905.
    assert_eq!(
        hex(&h.control_ok(Opcode::GetDbSeqnum, &req)),
        "0300000000000000"
    );
    let mut vol = VOL_ID.to_le_bytes().to_vec();
    vol.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(h.control_ok(Opcode::GetDbSeqnum, &vol), 0u64.to_le_bytes());
    let mut unknown = 5u32.to_le_bytes().to_vec();
    unknown.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(h.control(Opcode::GetDbSeqnum, &unknown).status, -1);
}

#[test]
fn recovery_mode_vnn_map_and_generation() {
    let mut h = Harness::with_pnn(1);
    // Samba answers GET_RECMODE in the status word, and starts in recovery.
    let r = h.control(Opcode::GetRecmode, &[]);
    assert_eq!((r.status, r.data.len()), (recmode::ACTIVE as i32, 0));
    assert_eq!(
        h.control_ok(Opcode::Getvnnmap, &[]),
        [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    );
    let new_map = VnnMap {
        generation: 0x675e_cd77,
        map: vec![1],
    };
    h.control_ok(Opcode::Setvnnmap, &new_map.to_bytes());
    assert_eq!(h.daemon.generation(), 0x675e_cd77);
    // Replies now carry the new generation (checked by one_reply).
    assert_eq!(h.control_ok(Opcode::Getvnnmap, &[]), new_map.to_bytes());
    h.control_ok(Opcode::SetRecmode, &0u32.to_le_bytes());
    assert_eq!(h.control(Opcode::GetRecmode, &[]).status, 0);
    // Not outside recovery, and never a bad mode.
    assert_eq!(h.control(Opcode::Setvnnmap, &new_map.to_bytes()).status, -1);
    assert_eq!(
        h.control(Opcode::SetRecmode, &7u32.to_le_bytes()).status,
        -1
    );
    assert_eq!(h.control(Opcode::SetRecmode, &[]).status, -1);
}

#[test]
fn frozen_databases_hold_calls_until_thawed_and_can_be_wiped() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.put_record(VOL_ID, b"k", LtdbHeader::default(), b"v");
    let transdb = [VOL_ID.to_le_bytes(), 9u32.to_le_bytes()].concat();
    // Not frozen: no wipe, no transaction.
    assert_eq!(h.control(Opcode::WipeDatabase, &transdb).status, -1);
    assert_eq!(h.control(Opcode::DbTransactionStart, &transdb).status, -1);

    h.control_ok(Opcode::DbFreeze, &VOL_ID.to_le_bytes());
    let held = h.call_packet(VOL_ID, callid::FETCH_FUNC, b"k");
    let held_reqid = h.reqid;
    h.send_raw(CLIENT, LOCAL, held);
    assert!(h.replies().is_empty());
    assert_eq!(h.daemon.pending_calls(), 1);
    assert_eq!(h.daemon.statistics().counters["pending_calls"], 1);

    h.control_ok(Opcode::DbTransactionStart, &transdb);
    h.control_ok(Opcode::WipeDatabase, &transdb);
    h.control_ok(Opcode::DbTransactionCommit, &transdb);
    assert_eq!(h.control(Opcode::DbTransactionCommit, &transdb).status, -1);

    // Thawing answers the held call: the record is gone.
    let bytes = h.control_packet(Opcode::DbThaw, &VOL_ID.to_le_bytes(), 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    let replies = h.replies();
    assert_eq!(replies.len(), 2);
    let call_reply = replies.iter().find(|(_, p)| p.reqid == held_reqid).unwrap();
    match &call_reply.1.body {
        Body::ReplyCall(r) => assert!(r.data.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.daemon.pending_calls(), 0);

    // FREEZE / THAW hold every database.
    h.control_ok(Opcode::Freeze, &[]);
    let held = h.call_packet(VOL_ID, callid::NULL_FUNC, b"k");
    h.send_raw(CLIENT, LOCAL, held);
    assert!(h.replies().is_empty());
    let bytes = h.control_packet(Opcode::Thaw, &[], 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    assert_eq!(h.replies().len(), 2);
}

#[test]
fn node_requests_are_answered_to_the_node_and_generation_checked() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    let mut p = Packet::from_slice(&h.call_packet(VOL_ID, callid::FETCH_FUNC, b"k")).unwrap();
    p.srcnode = 2;
    p.destnode = 0;
    // Wrong generation: dropped, as Samba does.
    p.generation = 99;
    h.send_raw(0, 2, p.to_bytes());
    assert!(h.replies().is_empty());
    p.generation = h.daemon.generation();
    h.send_raw(0, 2, p.to_bytes());
    let r = h.replies();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0.client, 0);
    assert_eq!((r[0].1.destnode, r[0].1.srcnode), (2, 0));
    assert_eq!(h.daemon.stats().node_req_call, 2);
}

#[test]
fn statistics_report_calls_and_reset() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.call_ok(VOL_ID, callid::NULL_FUNC, b"k");
    h.call_ok(VOL_ID, callid::FETCH_FUNC, b"k");
    let s = h.daemon.statistics();
    assert_eq!(s.counters["total_calls"], 2);
    assert_eq!(s.counters["client.req_call"], 2);
    assert_eq!(s.counters["max_hop_count"], 0);
    assert_eq!(s.latencies["call_latency"].num, 2);
    h.daemon.reset_statistics();
    assert_eq!(h.daemon.statistics().counters["total_calls"], 0);
}

#[test]
fn owned_control_table_has_no_duplicates() {
    let mut seen = std::collections::HashSet::new();
    for op in control::owned_controls() {
        assert!(seen.insert(op.as_u32()), "{op} listed twice");
        assert!(!matches!(op, Opcode::Unknown(_)));
    }
}

// ---- Recovery: PULL_DB, PUSH_DB, WIPE_DATABASE, FREEZE / THAW ----

use ctdb_protocol::control::{PullDb, RecBuffer, RecData};
use ctdb_protocol::flags::control::ATTACH_RECOVERY;

fn hdr(rsn: u64, dmaster: u32) -> LtdbHeader {
    LtdbHeader {
        rsn,
        dmaster,
        ..Default::default()
    }
}

fn rec(key: &[u8], rsn: u64, dmaster: u32, value: &[u8]) -> RecData {
    RecData::with_header(0, key, &hdr(rsn, dmaster), value)
}

fn transdb(db_id: u32, tid: u32) -> Vec<u8> {
    payload::TransDb { db_id, tid }.to_bytes()
}

impl Harness {
    fn pull(&mut self, db_id: u32, lmaster: u32) -> RecBuffer {
        let data = self.control_ok(Opcode::PullDb, &PullDb { db_id, lmaster }.to_bytes());
        RecBuffer::from_bytes(&data).unwrap()
    }

    fn push(&mut self, db_id: u32, records: Vec<RecData>) -> ReplyControl {
        self.control(Opcode::PushDb, &RecBuffer { db_id, records }.to_bytes())
    }

    /// Every stored record as (key, rsn, dmaster, value), in key order.
    fn contents(&self, db_id: u32) -> Vec<(Vec<u8>, u64, u32, Vec<u8>)> {
        self.all_values(db_id)
            .into_iter()
            .map(|(k, v)| {
                let (h, d) = ctdb_protocol::ltdb::split_record(&v).unwrap();
                (k, h.rsn, h.dmaster, d.to_vec())
            })
            .collect()
    }
}

fn as_tuples(buffer: &RecBuffer) -> Vec<(Vec<u8>, u64, u32, Vec<u8>)> {
    buffer
        .records
        .iter()
        .map(|r| {
            let (h, d) = r.header().unwrap();
            (r.key.to_vec(), h.rsn, h.dmaster, d.to_vec())
        })
        .collect()
}

#[test]
fn pull_db_returns_every_record_with_its_header() {
    let mut h = Harness::with_pnn(1);
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.put_record(VOL_ID, b"a", hdr(3, 1), b"alpha");
    h.put_record(VOL_ID, b"b", hdr(9, 4), b"");
    h.put_record(
        VOL_ID,
        b"c",
        LtdbHeader {
            rsn: 1,
            dmaster: 1,
            reserved1: 0,
            flags: 0x0001_0000,
        },
        b"gamma",
    );
    // Not frozen: pulling is allowed at any time.
    let buffer = h.pull(VOL_ID, control::recovery::LMASTER_ANY);
    assert_eq!(buffer.db_id, VOL_ID);
    assert!(buffer.records.iter().all(|r| r.reqid == 0));
    assert_eq!(
        buffer.records,
        vec![
            rec(b"a", 3, 1, b"alpha"),
            rec(b"b", 9, 4, b""),
            RecData::with_header(
                0,
                b"c",
                &LtdbHeader {
                    rsn: 1,
                    dmaster: 1,
                    reserved1: 0,
                    flags: 0x0001_0000,
                },
                b"gamma"
            ),
        ]
    );
    // Other databases are separate; an empty one pulls an empty buffer.
    let empty = h.pull(PERS_ID, control::recovery::LMASTER_ANY);
    assert_eq!((empty.db_id, empty.records.len()), (PERS_ID, 0));
    // Samba's wire form: db_id, count, then ctdb_rec_data entries.
    let raw = h.control_ok(
        Opcode::PullDb,
        &PullDb {
            db_id: VOL_ID,
            lmaster: u32::MAX,
        }
        .to_bytes(),
    );
    assert_eq!(raw[..8], [0x5a, 0x11, 0x96, 0x68, 3, 0, 0, 0]);
    // length 16 + 1 + 24 + 5, reqid 0, keylen 1, datalen 29.
    assert_eq!(
        raw[8..24],
        [46, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 29, 0, 0, 0]
    );
    // Unknown database, short request.
    let bad = PullDb {
        db_id: 0xdead_beef,
        lmaster: u32::MAX,
    };
    assert_eq!(h.control(Opcode::PullDb, &bad.to_bytes()).status, -1);
    assert_eq!(h.control(Opcode::PullDb, &VOL_ID.to_le_bytes()).status, -1);
}

#[test]
fn pull_db_filters_by_lmaster_over_the_vnn_map() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    let map = VnnMap {
        generation: 0x1234,
        map: vec![0, 1, 2],
    };
    h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
    let keys: Vec<Vec<u8>> = (0..60u32)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    for k in &keys {
        h.put_record(VOL_ID, k, hdr(1, 0), k);
    }
    let mut union = Vec::new();
    for pnn in 0..3 {
        let part = h.pull(VOL_ID, pnn);
        assert!(
            !part.records.is_empty(),
            "node {pnn} is lmaster of some keys"
        );
        for r in &part.records {
            assert_eq!(h.daemon.lmaster(&r.key), pnn);
        }
        union.extend(part.records.into_iter().map(|r| r.key.to_vec()));
    }
    union.sort();
    let mut all = keys.clone();
    all.sort();
    assert_eq!(
        union, all,
        "the lmaster parts are disjoint and cover every record"
    );
    // A node outside the map is lmaster of nothing.
    assert!(h.pull(VOL_ID, 7).records.is_empty());
    assert_eq!(h.pull(VOL_ID, u32::MAX).records.len(), 60);
}

#[test]
fn push_db_is_refused_unless_frozen() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    // Recovery mode is ACTIVE at start, but the database is not frozen.
    assert_eq!(h.daemon.recovery_mode(), recmode::ACTIVE);
    let r = h.push(VOL_ID, vec![rec(b"k", 1, 0, b"v")]);
    assert_eq!(r.status, -1);
    assert!(r.error_message().unwrap().contains("not frozen"));
    assert!(h.contents(VOL_ID).is_empty());

    // DB_FREEZE of another database does not help; of this one it does.
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.control_ok(Opcode::DbFreeze, &PERS_ID.to_le_bytes());
    assert_eq!(h.push(VOL_ID, vec![rec(b"k", 1, 0, b"v")]).status, -1);
    h.control_ok(Opcode::DbFreeze, &VOL_ID.to_le_bytes());
    assert_eq!(h.push(VOL_ID, vec![rec(b"k", 1, 0, b"v")]).status, 0);
    assert_eq!(h.contents(VOL_ID).len(), 1);

    // Frozen: an unknown database or a record without a header still fails, and a
    // failed push stores nothing.
    h.control_ok(Opcode::Freeze, &[]);
    assert_eq!(h.push(0xdead_beef, vec![rec(b"k", 1, 0, b"v")]).status, -1);
    let headerless = RecData {
        reqid: 0,
        key: Bytes::from_static(b"short"),
        data: Bytes::from_static(b"tiny"),
    };
    assert_eq!(
        h.push(VOL_ID, vec![rec(b"first", 1, 0, b"v"), headerless])
            .status,
        -1
    );
    assert_eq!(h.contents(VOL_ID).len(), 1);
    assert_eq!(h.control(Opcode::PushDb, &[1, 2, 3]).status, -1);

    // After THAW, pushing is refused again.
    let bytes = h.control_packet(Opcode::Thaw, &[], 0);
    h.send_raw(CLIENT, LOCAL, bytes);
    h.replies();
    assert_eq!(h.push(VOL_ID, vec![rec(b"k2", 1, 0, b"v")]).status, -1);
}

#[test]
fn push_db_keeps_the_higher_rsn_copy() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    h.put_record(VOL_ID, b"older", hdr(5, 0), b"local");
    h.put_record(VOL_ID, b"equal", hdr(5, 0), b"local");
    h.put_record(VOL_ID, b"newer", hdr(5, 0), b"local");
    h.put_record(VOL_ID, b"untouched", hdr(2, 0), b"local");
    h.control_ok(Opcode::Freeze, &[]);
    let r = h.push(
        VOL_ID,
        vec![
            rec(b"older", 3, 2, b"pushed"),
            rec(b"equal", 5, 2, b"pushed"),
            rec(b"newer", 6, 2, b"pushed"),
            rec(b"new", 1, 2, b"pushed"),
            // The same key twice in one buffer: the higher RSN wins whatever the order.
            rec(b"twice", 8, 2, b"eight"),
            rec(b"twice", 4, 2, b"four"),
            rec(b"twice", 8, 3, b"second eight"),
        ],
    );
    assert_eq!(r.status, 0, "{:?}", r.error_message());
    assert_eq!(
        h.contents(VOL_ID),
        vec![
            (b"equal".to_vec(), 5, 0, b"local".to_vec()),
            (b"new".to_vec(), 1, 2, b"pushed".to_vec()),
            (b"newer".to_vec(), 6, 2, b"pushed".to_vec()),
            (b"older".to_vec(), 5, 0, b"local".to_vec()),
            (b"twice".to_vec(), 8, 2, b"eight".to_vec()),
            (b"untouched".to_vec(), 2, 0, b"local".to_vec()),
        ]
    );
    // Headers are stored exactly as pushed (flags too).
    let flagged = LtdbHeader {
        rsn: 100,
        dmaster: 2,
        reserved1: 0,
        flags: 0x0100_0000,
    };
    h.control_ok(
        Opcode::PushDb,
        &RecBuffer {
            db_id: VOL_ID,
            records: vec![RecData::with_header(0, b"newer", &flagged, b"x")],
        }
        .to_bytes(),
    );
    let stored = h.value(VOL_ID, b"newer").unwrap();
    assert_eq!(stored, call::encode_record(&flagged, b"x"));
}

#[test]
fn wipe_then_push_restores_exactly_the_pushed_set() {
    let mut h = Harness::new();
    h.attach(Opcode::DbAttach, VOL);
    for i in 0..20u64 {
        h.put_record(
            VOL_ID,
            format!("old-{i}").as_bytes(),
            hdr(50 + i, 0),
            b"old",
        );
    }
    h.put_record(VOL_ID, b"shared", hdr(99, 0), b"old");
    // WIPE_DATABASE needs the database frozen (a global FREEZE is enough) and the
    // recovery transaction it names open, as Samba's: otherwise nothing is wiped.
    assert_eq!(
        h.control(Opcode::WipeDatabase, &transdb(VOL_ID, 5)).status,
        -1
    );
    h.control_ok(Opcode::Freeze, &[]);
    assert_eq!(
        h.control(Opcode::WipeDatabase, &transdb(VOL_ID, 5)).status,
        -1,
        "no transaction open"
    );
    h.control_ok(Opcode::DbTransactionStart, &transdb(VOL_ID, 4));
    assert_eq!(
        h.control(Opcode::WipeDatabase, &transdb(VOL_ID, 5)).status,
        -1,
        "another transaction open"
    );
    assert_eq!(h.contents(VOL_ID).len(), 21, "a refused wipe wipes nothing");
    h.control_ok(Opcode::DbTransactionStart, &transdb(VOL_ID, 5));
    h.control_ok(Opcode::WipeDatabase, &transdb(VOL_ID, 5));
    assert_eq!(
        h.control(Opcode::WipeDatabase, &transdb(0xdead_beef, 5))
            .status,
        -1
    );
    // The pushed set, lower RSNs than the wiped copies: all of it is stored.
    let pushed = vec![
        rec(b"a", 1, 3, b"A"),
        rec(b"shared", 2, 3, b"S"),
        rec(b"z", 0, 3, b""),
    ];
    h.control_ok(
        Opcode::PushDb,
        &RecBuffer {
            db_id: VOL_ID,
            records: pushed.clone(),
        }
        .to_bytes(),
    );
    h.control_ok(Opcode::DbTransactionCommit, &transdb(VOL_ID, 5));
    assert_eq!(h.pull(VOL_ID, u32::MAX).records, pushed);
}

/// The leader's merge as recoverd does it: per key the highest RSN, dmaster = leader.
fn merge(db_id: u32, pulled: &[RecBuffer], leader: u32) -> RecBuffer {
    let mut best: std::collections::BTreeMap<Vec<u8>, (LtdbHeader, Vec<u8>)> = Default::default();
    for buffer in pulled {
        for r in &buffer.records {
            let (h, d) = r.header().unwrap();
            if best.get(&r.key[..]).is_none_or(|(b, _)| h.rsn > b.rsn) {
                best.insert(r.key.to_vec(), (h, d.to_vec()));
            }
        }
    }
    RecBuffer {
        db_id,
        records: best
            .into_iter()
            .map(|(k, (h, d))| RecData::with_header(0, &k, &hdr(h.rsn, leader), &d))
            .collect(),
    }
}

#[test]
fn a_pull_merge_wipe_push_cycle_between_two_nodes_converges() {
    let mut a = Harness::with_pnn(0);
    let mut b = Harness::with_pnn(1);
    for h in [&mut a, &mut b] {
        h.attach(Opcode::DbAttach, VOL);
        h.attach(Opcode::DbAttachPersistent, PERS);
    }
    a.put_record(VOL_ID, b"only-a", hdr(4, 0), b"a");
    a.put_record(VOL_ID, b"both", hdr(10, 0), b"a wins");
    a.put_record(VOL_ID, b"both2", hdr(1, 0), b"a loses");
    b.put_record(VOL_ID, b"only-b", hdr(2, 1), b"b");
    b.put_record(VOL_ID, b"both", hdr(7, 1), b"b loses");
    b.put_record(VOL_ID, b"both2", hdr(3, 1), b"b wins");
    a.put_record(PERS_ID, b"p", hdr(6, 0), b"six");
    b.put_record(PERS_ID, b"p", hdr(8, 1), b"eight");
    b.put_record(
        PERS_ID,
        b"__db_sequence_number__\0",
        hdr(8, 1),
        &8u64.to_le_bytes(),
    );

    // A call held on node b while it is frozen.
    let generation = 0x5eed_0001;
    let map = VnnMap {
        generation,
        map: vec![0, 1],
    };
    for h in [&mut a, &mut b] {
        h.control_ok(Opcode::SetRecmode, &recmode::ACTIVE.to_le_bytes());
        h.control_ok(Opcode::Freeze, &[]);
        let s = h.daemon.statistics();
        assert_eq!((s.counters["frozen"], s.counters["recovering"]), (1, 1));
    }
    let held = b.call_packet(VOL_ID, callid::FETCH_FUNC, b"only-b");
    let held_reqid = b.reqid;
    b.send_raw(CLIENT, LOCAL, held);
    assert_eq!(b.daemon.pending_calls(), 1);

    for db_id in [VOL_ID, PERS_ID] {
        let pulled = [a.pull(db_id, u32::MAX), b.pull(db_id, u32::MAX)];
        let merged = merge(db_id, &pulled, 0);
        for h in [&mut a, &mut b] {
            h.control_ok(Opcode::DbTransactionStart, &transdb(db_id, generation));
            h.control_ok(Opcode::WipeDatabase, &transdb(db_id, generation));
            h.control_ok(Opcode::PushDb, &merged.to_bytes());
            h.control_ok(Opcode::DbTransactionCommit, &transdb(db_id, generation));
        }
    }
    for h in [&mut a, &mut b] {
        h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
    }
    let expected_vol = vec![
        (b"both".to_vec(), 10, 0, b"a wins".to_vec()),
        (b"both2".to_vec(), 3, 0, b"b wins".to_vec()),
        (b"only-a".to_vec(), 4, 0, b"a".to_vec()),
        (b"only-b".to_vec(), 2, 0, b"b".to_vec()),
    ];
    let expected_pers = vec![
        (
            b"__db_sequence_number__\0".to_vec(),
            8,
            0,
            8u64.to_le_bytes().to_vec(),
        ),
        (b"p".to_vec(), 8, 0, b"eight".to_vec()),
    ];
    for h in [&mut a, &mut b] {
        assert_eq!(h.contents(VOL_ID), expected_vol);
        assert_eq!(as_tuples(&h.pull(PERS_ID, u32::MAX)), expected_pers);
    }

    // THAW while the recovery mode is still ACTIVE: the held call runs again. The
    // record's dmaster is now node 0, so it goes to node 0 (its lmaster or dmaster).
    let thaw = b.control_packet(Opcode::Thaw, &[], 0);
    b.send_raw(CLIENT, LOCAL, thaw);
    let replies = b.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    let (forward_env, forward) = replies
        .into_iter()
        .find(|(_, p)| matches!(p.body, Body::ReqCall(_)))
        .unwrap();
    assert_eq!(
        (forward_env.client, forward.destnode, forward.srcnode),
        (0, 0, 1)
    );
    assert_eq!(b.daemon.pending_calls(), 0);
    assert_eq!(b.daemon.remote_calls(), 1);
    assert!(!b.daemon.is_frozen());
    let s = b.daemon.statistics();
    assert_eq!((s.counters["frozen"], s.counters["recovering"]), (0, 1));
    b.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    assert_eq!(b.daemon.statistics().counters["recovering"], 0);
    a.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    a.control_ok(Opcode::Thaw, &[]);
    // Node a hands the record over to b, which answers its client.
    let mut net = Net {
        nodes: vec![a, b],
        log: Vec::new(),
    };
    net.deliver(1, forward_env);
    let (client_replies, _) = net.pump();
    assert_eq!(client_replies.len(), 1, "{client_replies:?}");
    let (node, p) = &client_replies[0];
    assert_eq!((*node, p.reqid), (1, held_reqid));
    assert!(matches!(&p.body, Body::ReplyCall(r) if &r.data[..] == b"b"));
    let [mut a, b] = <[Harness; 2]>::try_from(net.nodes).ok().unwrap();
    assert_eq!(b.contents(VOL_ID)[3].2, 1);
    // Node a still serves what it is dmaster of.
    assert_eq!(a.call_ok(VOL_ID, callid::FETCH_FUNC, b"only-a"), b"a");
}

#[test]
fn frozen_statistic_follows_freeze_and_db_freeze() {
    let mut h = Harness::new();
    assert_eq!(h.daemon.statistics().counters["frozen"], 0);
    h.attach(Opcode::DbAttach, VOL);
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.control_ok(Opcode::DbFreeze, &VOL_ID.to_le_bytes());
    assert_eq!(h.daemon.statistics().counters["frozen"], 0);
    h.control_ok(Opcode::DbFreeze, &PERS_ID.to_le_bytes());
    assert_eq!(h.daemon.statistics().counters["frozen"], 1);
    h.control_ok(Opcode::DbThaw, &PERS_ID.to_le_bytes());
    assert_eq!(h.daemon.statistics().counters["frozen"], 0);
    h.control_ok(Opcode::Freeze, &[]);
    assert_eq!(h.daemon.statistics().counters["frozen"], 1);
    h.control_ok(Opcode::Thaw, &[]);
    let s = h.daemon.statistics();
    assert_eq!((s.counters["frozen"], s.counters["recovering"]), (0, 1));
}

#[test]
fn recovery_attach_creates_a_missing_database_that_can_be_pushed() {
    let mut h = Harness::with_pnn(1);
    h.control_ok(Opcode::Freeze, &[]);
    for (opcode, name) in [(Opcode::DbAttach, VOL), (Opcode::DbAttachPersistent, PERS)] {
        let bytes = h.control_packet(opcode, &payload::cstring(name), ATTACH_RECOVERY);
        h.send_raw(CLIENT, LOCAL, bytes);
        match h.one_reply().body {
            Body::ReplyControl(r) => assert_eq!(r.status, 0, "{:?}", r.error_message()),
            other => panic!("{other:?}"),
        }
    }
    assert!(h.daemon.registry().get(PERS_ID).unwrap().is_persistent());
    // Attached while FREEZE is in force: frozen, so the leader can push into it.
    assert_eq!(h.push(VOL_ID, vec![rec(b"k", 3, 0, b"v")]).status, 0);
    assert_eq!(h.push(PERS_ID, vec![rec(b"k", 3, 0, b"v")]).status, 0);
    assert_eq!(
        h.contents(PERS_ID),
        vec![(b"k".to_vec(), 3, 0, b"v".to_vec())]
    );
}

/// A sled store that counts flushes.
struct CountingStore {
    inner: SledStore,
    flushes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Store for CountingStore {
    fn get(&self, tree: &str, key: &[u8]) -> store::StoreResult<Option<Vec<u8>>> {
        self.inner.get(tree, key)
    }
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> store::StoreResult<()> {
        self.inner.put(tree, key, value)
    }
    fn delete(&self, tree: &str, key: &[u8]) -> store::StoreResult<()> {
        self.inner.delete(tree, key)
    }
    fn scan(&self, tree: &str, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> store::StoreResult<()> {
        self.inner.scan(tree, f)
    }
    fn batch(&self, tree: &str, ops: Vec<store::BatchOp>) -> store::StoreResult<()> {
        self.inner.batch(tree, ops)
    }
    fn clear(&self, tree: &str) -> store::StoreResult<()> {
        self.inner.clear(tree)
    }
    fn flush(&self) -> store::StoreResult<()> {
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.flush()
    }
}

#[test]
fn a_persistent_push_is_flushed_and_survives_reopening() {
    use std::sync::atomic::Ordering;
    let mut h = Harness::new();
    let flushes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let path = h.dir.path().join("counted.sled");
    let counted = DbDaemon::new(
        Box::new(CountingStore {
            inner: SledStore::open(&path).unwrap(),
            flushes: flushes.clone(),
        }),
        Options::new(0, dirs(&h.dir)),
    )
    .unwrap();
    drop(std::mem::replace(&mut h.daemon, counted));
    h.attach(Opcode::DbAttachPersistent, PERS);
    h.attach(Opcode::DbAttach, VOL);
    h.control_ok(Opcode::Freeze, &[]);

    h.control_ok(Opcode::DbTransactionStart, &transdb(PERS_ID, 1));
    h.control_ok(Opcode::WipeDatabase, &transdb(PERS_ID, 1));
    let pushed = vec![
        rec(b"__db_sequence_number__\0", 4, 0, &4u64.to_le_bytes()),
        rec(b"user", 4, 0, b"persistent"),
    ];
    assert_eq!(h.push(PERS_ID, pushed.clone()).status, 0);
    let before = flushes.load(Ordering::SeqCst);
    h.control_ok(Opcode::DbTransactionCommit, &transdb(PERS_ID, 1));
    assert!(
        flushes.load(Ordering::SeqCst) > before,
        "the commit flushes"
    );
    let before = flushes.load(Ordering::SeqCst);
    // Volatile pushes are not flushed synchronously.
    assert_eq!(h.push(VOL_ID, vec![rec(b"v", 1, 0, b"v")]).status, 0);
    assert_eq!(flushes.load(Ordering::SeqCst), before);

    // Reopen without an explicit flush: the pushed records are there.
    let placeholder = open(&h.dir, 0);
    drop(std::mem::replace(&mut h.daemon, placeholder));
    h.daemon = DbDaemon::open(&path, Options::new(0, dirs(&h.dir))).unwrap();
    assert_eq!(h.pull(PERS_ID, u32::MAX).records, pushed);
    let mut req = PERS_ID.to_le_bytes().to_vec();
    req.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(h.control_ok(Opcode::GetDbSeqnum, &req), 4u64.to_le_bytes());
    // Fresh daemon: not frozen any more, in recovery until told otherwise.
    assert!(!h.daemon.is_frozen());
    assert_eq!(h.push(PERS_ID, pushed).status, -1);
}

/// Several daemons wired together by hand, as transport would: an envelope with client
/// 0 goes to the daemon its header's destnode names, from the emitter's pnn.
struct Net {
    nodes: Vec<Harness>,
    /// Every node-to-node packet delivered, in order.
    log: Vec<Packet>,
}

const MIGRATION_GEN: u32 = 0x0bad_cafe;

/// A node-to-node packet: (operation, srcnode, destnode).
type Hop = (Operation, u32, u32);

impl Net {
    /// `n` nodes in one generation with map 0..n, `VOL` attached on those in `attached`.
    fn new(n: u32, attached: &[u32]) -> Self {
        let map = VnnMap {
            generation: MIGRATION_GEN,
            map: (0..n).collect(),
        };
        let mut nodes = Vec::new();
        for pnn in 0..n {
            let mut h = Harness::with_pnn(pnn);
            if attached.contains(&pnn) {
                assert_eq!(h.attach(Opcode::DbAttach, VOL), VOL_ID);
            }
            h.control_ok(Opcode::SetRecmode, &recmode::ACTIVE.to_le_bytes());
            h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
            h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
            nodes.push(h);
        }
        Self {
            nodes,
            log: Vec::new(),
        }
    }

    /// As transport: the packet goes with the emitter as its srcnode, but a REQ_CALL
    /// sent on keeps its asker's.
    fn deliver(&mut self, from: u32, env: Envelope) {
        let mut p = Packet::from_slice(&env.packet).unwrap();
        if !matches!(p.body, Body::ReqCall(_)) {
            p.srcnode = from;
        }
        self.log.push(p.clone());
        self.nodes[p.destnode as usize].send_raw(0, from, p.to_bytes());
    }

    /// Delivers node packets until none is left. Returns the replies to clients (by
    /// node) and the node-to-node packets as (operation, srcnode, destnode).
    fn pump(&mut self) -> (Vec<(u32, Packet)>, Vec<Hop>) {
        let mut clients = Vec::new();
        let mut wire = Vec::new();
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                for (env, p) in self.nodes[i].replies() {
                    moved = true;
                    // Messages go to transport's srvid registry, not to another db.
                    if env.client != 0 || matches!(p.body, Body::ReqMessage(_)) {
                        clients.push((i as u32, p));
                        continue;
                    }
                    assert_eq!(p.generation, self.nodes[i].daemon.generation());
                    wire.push((p.body.operation(), p.srcnode, p.destnode));
                    self.deliver(i as u32, env);
                }
            }
            if !moved {
                return (clients, wire);
            }
        }
    }

    /// Sends a client call on `node` without pumping; returns its reqid.
    fn client_call(&mut self, node: usize, id: u32, key: &[u8]) -> u32 {
        let h = &mut self.nodes[node];
        let bytes = h.call_packet(VOL_ID, id, key);
        h.send_raw(CLIENT, LOCAL, bytes);
        h.reqid
    }

    /// The stored header and data of `key` on `node`.
    fn stored(&self, node: usize, key: &[u8]) -> Option<(LtdbHeader, Vec<u8>)> {
        let h = &self.nodes[node];
        let value = h.value(VOL_ID, key)?;
        let (header, data) = ctdb_protocol::ltdb::split_record(&value).unwrap();
        Some((header, data.to_vec()))
    }
}

/// A key whose lmaster is `lmaster` over the map 0..n.
fn key_with_lmaster(net: &Net, lmaster: u32) -> Vec<u8> {
    named_key_with_lmaster(net, "key", lmaster)
}

/// The first of `name-0`, `name-1`, ... whose lmaster is `lmaster`.
fn named_key_with_lmaster(net: &Net, name: &str, lmaster: u32) -> Vec<u8> {
    (0..1000)
        .map(|i| format!("{name}-{i}").into_bytes())
        .find(|k| net.nodes[0].daemon.lmaster(k) == lmaster)
        .unwrap()
}

fn fetched_header(p: &Packet) -> (LtdbHeader, Vec<u8>) {
    match &p.body {
        Body::ReplyCall(r) => {
            assert_eq!(r.status, 0);
            let h = LtdbHeader::from_bytes(&r.data[..LtdbHeader::SIZE]).unwrap();
            (h, r.data[LtdbHeader::SIZE..].to_vec())
        }
        other => panic!("expected REPLY_CALL, got {other:?}"),
    }
}

/// Node 2 fetches a record node 0 is dmaster of and node 1 is lmaster of.
fn three_nodes_with_record() -> (Net, Vec<u8>) {
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    // As after a recovery whose leader was node 0: every node has the record.
    for h in &mut net.nodes {
        h.put_record(VOL_ID, &key, hdr(5, 0), b"value");
    }
    (net, key)
}

#[test]
fn a_remote_record_migrates_in_four_packets() {
    use Operation::*;
    let (mut net, key) = three_nodes_with_record();
    let reqid = net.client_call(2, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, wire) = net.pump();
    // CTDB's flow: the lmaster sends the call on as it came (srcnode 2), the dmaster
    // hands the record to node 2 through the lmaster.
    assert_eq!(
        wire,
        vec![
            (ReqCall, 2, 1),
            (ReqCall, 2, 0),
            (ReqDmaster, 0, 1),
            (ReplyDmaster, 1, 2),
        ]
    );
    assert_eq!(clients.len(), 1);
    let (node, p) = &clients[0];
    assert_eq!((*node, p.reqid, p.srcnode, p.destnode), (2, reqid, 2, 0));
    let (header, data) = fetched_header(p);
    assert_eq!(data, b"value");
    assert_eq!(header.dmaster, 2);
    assert!(header.rsn > 5, "{header:?}");
    // Node 2 is dmaster and every copy names it: the old dmaster's (which gave it
    // away), the lmaster's (which sends calls on to it) and its own.
    for node in 0..3 {
        let (h, d) = net.stored(node, &key).unwrap();
        assert_eq!((h.dmaster, d.as_slice()), (2, &b"value"[..]), "node {node}");
    }
    assert!(net.stored(2, &key).unwrap().0.rsn > header.rsn);
    assert_eq!(net.nodes[0].daemon.stats().max_hop_count, 1);
    assert_eq!(net.nodes[2].daemon.remote_calls(), 0);

    // A second call on node 2 is local, and the RSN keeps growing.
    let again = net.client_call(2, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, wire) = net.pump();
    assert!(wire.is_empty(), "{wire:?}");
    assert_eq!(clients[0].1.reqid, again);
    let (h2, _) = fetched_header(&clients[0].1);
    assert!(h2.rsn > header.rsn);
    assert_eq!(h2.dmaster, 2);

    // And back to node 0, which asks the lmaster 1, which sends it on to node 2.
    net.client_call(0, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, wire) = net.pump();
    assert_eq!(
        wire,
        vec![
            (ReqCall, 0, 1),
            (ReqCall, 0, 2),
            (ReqDmaster, 2, 1),
            (ReplyDmaster, 1, 0),
        ]
    );
    let (h0, _) = fetched_header(&clients[0].1);
    assert_eq!(h0.dmaster, 0);
    assert!(h0.rsn > h2.rsn);
}

/// The packets of a migration whose asker (2), lmaster (1) and dmaster (0) are three
/// nodes, field by field: CTDB's flow, where every packet carries the asker's reqid,
/// the lmaster sends the call on with the asker's srcnode and one more hop, keeps no
/// state of its own for it and stores the record once, naming the new dmaster.
#[test]
fn a_call_sent_on_keeps_the_askers_srcnode_and_reqid() {
    use Operation::*;
    let (mut net, key) = three_nodes_with_record();
    let reqid = net.client_call(2, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, _) = net.pump();
    let seen: Vec<(Operation, u32, u32, u32, Option<u32>)> = net
        .log
        .iter()
        .map(|p| {
            let hops = match &p.body {
                Body::ReqCall(c) => Some(c.hopcount),
                _ => None,
            };
            (p.body.operation(), p.srcnode, p.destnode, p.reqid, hops)
        })
        .collect();
    let r = net.log[0].reqid;
    assert_eq!(
        seen,
        vec![
            (ReqCall, 2, 1, r, Some(0)),
            (ReqCall, 2, 0, r, Some(1)),
            (ReqDmaster, 0, 1, r, None),
            (ReplyDmaster, 1, 2, r, None),
        ]
    );
    // The reqid on the wire is node 2's own (its pnn in the top byte), not the client's.
    assert_eq!(net.log[0].reqid >> 24, 2);
    assert_ne!(net.log[0].reqid, reqid);
    match &net.log[2].body {
        Body::ReqDmaster(r) => assert_eq!((r.dmaster, r.rsn), (2, 5)),
        other => panic!("expected REQ_DMASTER, got {other:?}"),
    }
    match &net.log[3].body {
        Body::ReplyDmaster(r) => assert_eq!((r.rsn, &r.data[..]), (5, &b"value"[..])),
        other => panic!("expected REPLY_DMASTER, got {other:?}"),
    }
    // The lmaster never held the record: its copy keeps the old dmaster's RSN, and
    // node 2 bumps it once on taking it and once for the call (a relay through the
    // lmaster would have bumped it there too).
    assert_eq!(net.stored(1, &key).unwrap().0, hdr(5, 2));
    let (header, _) = fetched_header(&clients[0].1);
    assert_eq!(header.rsn, 6);
    assert_eq!(net.stored(2, &key).unwrap().0.rsn, 7);
    for node in 0..3 {
        assert_eq!(net.nodes[node].daemon.remote_calls(), 0, "node {node}");
    }
    assert_eq!(net.nodes[0].daemon.stats().max_hop_count, 1);
    assert_eq!(net.nodes[0].daemon.stats().node_req_call, 1);
    assert_eq!(net.nodes[1].daemon.stats().node_req_call, 1);
}

/// The dmaster answers an error to the asker itself, not through the lmaster.
#[test]
fn the_dmaster_answers_errors_to_the_asker_directly() {
    use Operation::*;
    // Node 0, the dmaster the lmaster names, does not know the database.
    let mut net = Net::new(3, &[1, 2]);
    let key = key_with_lmaster(&net, 1);
    net.nodes[1].put_record(VOL_ID, &key, hdr(5, 0), b"value");
    net.nodes[2].put_record(VOL_ID, &key, hdr(5, 0), b"value");
    let reqid = net.client_call(2, callid::FETCH_FUNC, &key);
    let (clients, wire) = net.pump();
    assert_eq!(
        wire,
        vec![(ReqCall, 2, 1), (ReqCall, 2, 0), (ReplyError, 0, 2)]
    );
    assert_eq!(clients.len(), 1);
    let (node, p) = &clients[0];
    assert_eq!((*node, p.reqid, p.destnode), (2, reqid, 0));
    assert!(
        matches!(&p.body, Body::ReplyError(e) if String::from_utf8_lossy(&e.msg).contains("Unknown database"))
    );
    assert_eq!(net.nodes[2].daemon.remote_calls(), 0);
}

/// Two nodes ask the lmaster for the same record at once: both calls go on to the
/// dmaster as they came; the second finds the record gone and returns to the
/// lmaster, which by then knows the first asker holds it (the REQ_DMASTER came on
/// the same link before), and sends it there.
#[test]
fn concurrent_askers_are_served_one_after_the_other_without_a_relay() {
    use Operation::*;
    let mut net = Net::new(4, &[0, 1, 2, 3]);
    let key = key_with_lmaster(&net, 1);
    for h in &mut net.nodes {
        h.put_record(VOL_ID, &key, hdr(5, 0), b"value");
    }
    let first = net.client_call(2, callid::FETCH_FUNC, &key);
    let second = net.client_call(3, callid::FETCH_FUNC, &key);
    let (clients, wire) = net.pump();
    let mut got: Vec<(u32, u32)> = clients.iter().map(|(n, p)| (*n, p.reqid)).collect();
    got.sort_unstable();
    assert_eq!(got, vec![(2, first), (3, second)]);
    for (_, p) in &clients {
        assert!(
            matches!(&p.body, Body::ReplyCall(r) if &r.data[..] == b"value"),
            "{p:?}"
        );
    }
    // Node 3's call went round once more than node 2's, and the record ends at node 3.
    assert!(wire.contains(&(ReqCall, 3, 0)), "{wire:?}");
    assert!(wire.contains(&(ReqCall, 3, 2)), "{wire:?}");
    assert_eq!(net.stored(1, &key).unwrap().0.dmaster, 3);
    assert_eq!(net.stored(3, &key).unwrap().0.dmaster, 3);
    for node in 0..4 {
        assert_eq!(net.nodes[node].daemon.remote_calls(), 0, "node {node}");
    }
}

#[test]
fn the_lmaster_hands_over_a_record_it_is_dmaster_of() {
    use Operation::*;
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    // A record nobody has yet: the lmaster is its dmaster and migrates it directly.
    net.client_call(0, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, wire) = net.pump();
    assert_eq!(wire, vec![(ReqCall, 0, 1), (ReplyDmaster, 1, 0)]);
    let (h, data) = fetched_header(&clients[0].1);
    assert!(data.is_empty());
    assert_eq!(h.dmaster, 0);
    assert_eq!(net.stored(1, &key).unwrap().0.dmaster, 0);
    // Now node 1's own client: the lmaster forwards straight to the dmaster.
    net.client_call(1, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, wire) = net.pump();
    // The lmaster takes the record itself: no REPLY_DMASTER round the loopback.
    assert_eq!(wire, vec![(ReqCall, 1, 0), (ReqDmaster, 0, 1)]);
    let (h1, _) = fetched_header(&clients[0].1);
    assert_eq!(h1.dmaster, 1);
    assert!(h1.rsn > h.rsn);
}

#[test]
fn calls_queued_behind_a_migration_run_in_order() {
    let (mut net, key) = three_nodes_with_record();
    let ids = [
        callid::FETCH_FUNC,
        callid::FETCH_WITH_HEADER_FUNC,
        callid::NULL_FUNC,
        0x1234,
        callid::FETCH_WITH_HEADER_FUNC,
    ];
    let reqids: Vec<u32> = ids.iter().map(|id| net.client_call(2, *id, &key)).collect();
    assert_eq!(net.nodes[2].daemon.remote_calls(), 1);
    let (clients, wire) = net.pump();
    assert_eq!(wire.len(), 4, "one migration serves them all: {wire:?}");
    let got: Vec<u32> = clients.iter().map(|(_, p)| p.reqid).collect();
    assert_eq!(got, reqids);
    assert!(matches!(&clients[0].1.body, Body::ReplyCall(r) if &r.data[..] == b"value"));
    assert!(matches!(&clients[2].1.body, Body::ReplyCall(r) if r.data.is_empty()));
    assert!(matches!(&clients[3].1.body, Body::ReplyError(_)));
    let (first, _) = fetched_header(&clients[1].1);
    let (last, _) = fetched_header(&clients[4].1);
    assert!(last.rsn > first.rsn);
    assert_eq!(net.nodes[2].daemon.remote_calls(), 0);
}

#[test]
fn errors_on_other_nodes_reach_the_client() {
    // Node 1, the lmaster, does not know the database.
    let mut net = Net::new(3, &[0, 2]);
    let key = key_with_lmaster(&net, 1);
    net.nodes[2].put_record(VOL_ID, &key, hdr(5, 0), b"value");
    let reqid = net.client_call(2, callid::FETCH_FUNC, &key);
    let (clients, _) = net.pump();
    assert_eq!(clients.len(), 1);
    let (node, p) = &clients[0];
    assert_eq!((*node, p.reqid, p.destnode), (2, reqid, 0));
    match &p.body {
        Body::ReplyError(e) => {
            assert!(String::from_utf8_lossy(&e.msg).contains("Unknown database"))
        }
        other => panic!("expected REPLY_ERROR, got {other:?}"),
    }
    assert_eq!(net.nodes[2].daemon.remote_calls(), 0);
}

#[test]
fn node_packets_of_an_old_generation_are_dropped() {
    let (mut net, key) = three_nodes_with_record();
    for body in [
        Body::ReqDmaster(ctdb_protocol::ReqDmaster {
            db_id: VOL_ID,
            rsn: 9,
            dmaster: 2,
            key: Bytes::copy_from_slice(&key),
            data: Bytes::from_static(b"x"),
            rec_flags: None,
        }),
        Body::ReplyDmaster(ctdb_protocol::ReplyDmaster {
            db_id: VOL_ID,
            rsn: 9,
            key: Bytes::copy_from_slice(&key),
            data: Bytes::from_static(b"x"),
            rec_flags: None,
        }),
    ] {
        let mut p = Packet::new(body);
        p.generation = MIGRATION_GEN + 1;
        p.srcnode = 0;
        p.destnode = 1;
        net.nodes[1].send_raw(0, 0, p.to_bytes());
    }
    assert!(net.nodes[1].replies().is_empty());
    assert_eq!(net.stored(1, &key).unwrap().0, hdr(5, 0));
}

#[test]
fn a_new_generation_runs_remote_calls_again() {
    let (mut net, key) = three_nodes_with_record();
    let reqid = net.client_call(2, callid::FETCH_FUNC, &key);
    // The REQ_CALL is lost in a recovery that changes the generation.
    assert_eq!(net.nodes[2].replies().len(), 1);
    let map = VnnMap {
        generation: MIGRATION_GEN,
        map: vec![0, 1, 2],
    };
    let other = VnnMap {
        generation: MIGRATION_GEN + 1,
        ..map.clone()
    };
    let h = &mut net.nodes[2];
    h.control_ok(Opcode::SetRecmode, &recmode::ACTIVE.to_le_bytes());
    h.control_ok(Opcode::Freeze, &[]);
    h.control_ok(Opcode::Setvnnmap, &other.to_bytes());
    assert_eq!((h.daemon.remote_calls(), h.daemon.pending_calls()), (0, 1));
    h.control_ok(Opcode::Setvnnmap, &map.to_bytes());
    h.control_ok(Opcode::SetRecmode, &recmode::NORMAL.to_le_bytes());
    let thaw = h.control_packet(Opcode::Thaw, &[], 0);
    h.send_raw(CLIENT, LOCAL, thaw);
    let (clients, wire) = net.pump();
    assert_eq!(wire.len(), 4, "{wire:?}");
    let call = clients.iter().find(|(_, p)| p.reqid == reqid).unwrap();
    assert!(matches!(&call.1.body, Body::ReplyCall(r) if &r.data[..] == b"value"));
}

#[test]
fn a_call_that_cannot_find_its_record_ends_in_an_error_for_the_client() {
    // Node 1, the lmaster, names node 2 dmaster; node 2 names node 0. The call goes
    // round between them until the hop limit, and the error reaches node 2's client.
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    net.nodes[1].put_record(VOL_ID, &key, hdr(5, 2), b"value");
    net.nodes[2].put_record(VOL_ID, &key, hdr(5, 0), b"value");
    let reqid = net.client_call(2, callid::FETCH_FUNC, &key);
    let (clients, wire) = net.pump();
    assert!(wire.len() as u32 >= call::MAX_HOPCOUNT, "{}", wire.len());
    assert_eq!(clients.len(), 1);
    let (node, p) = &clients[0];
    assert_eq!((*node, p.reqid), (2, reqid));
    match &p.body {
        Body::ReplyError(e) => assert!(String::from_utf8_lossy(&e.msg).contains("forwarded")),
        other => panic!("expected REPLY_ERROR, got {other:?}"),
    }
    for node in 0..3 {
        assert_eq!(net.nodes[node].daemon.remote_calls(), 0, "node {node}");
    }
    // Nothing moved.
    assert_eq!(net.stored(2, &key).unwrap().0, hdr(5, 0));
}

#[test]
fn a_call_sent_to_a_node_the_record_has_left_goes_back_to_the_lmaster() {
    let (mut net, key) = three_nodes_with_record();
    // Node 0 has handed the record to node 2; the lmaster's call reaches it late.
    net.nodes[0].put_record(VOL_ID, &key, hdr(5, 2), b"value");
    let mut p = Packet::new(Body::ReqCall(ReqCall {
        flags: 0,
        db_id: VOL_ID,
        callid: callid::FETCH_FUNC,
        hopcount: 1,
        key: Bytes::copy_from_slice(&key),
        calldata: Bytes::new(),
    }));
    p.generation = MIGRATION_GEN;
    p.srcnode = 1;
    p.destnode = 0;
    p.reqid = 0x0100_0007;
    net.nodes[0].send_raw(0, 1, p.to_bytes());
    let r = net.nodes[0].replies();
    assert_eq!(r.len(), 1);
    let (env, back) = &r[0];
    assert_eq!((env.client, back.destnode, back.reqid), (0, 1, 0x0100_0007));
    assert!(matches!(&back.body, Body::ReqCall(c) if c.hopcount == 2));
}

#[test]
fn a_recovery_transaction_replaces_the_database_only_when_it_commits() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    h.put_record(VOL_ID, b"a", hdr(5, 0), b"old a");
    h.put_record(VOL_ID, b"b", hdr(2, 0), b"old b");
    let old = h.contents(VOL_ID);
    let stage = |h: &mut Harness, tid: u32| {
        h.control_ok(Opcode::Freeze, &[]);
        h.control_ok(Opcode::DbTransactionStart, &transdb(VOL_ID, tid));
        h.control_ok(Opcode::WipeDatabase, &transdb(VOL_ID, tid));
        let pushed = vec![rec(b"a", 9, 1, b"new a"), rec(b"c", 1, 1, b"new c")];
        assert_eq!(h.push(VOL_ID, pushed).status, 0);
    };
    // Wiped and pushed, but not committed: the database (file and sled) is as it was,
    // also after a restart of ctdb-db in the middle of the transaction.
    stage(&mut h, 7);
    assert_eq!(h.contents(VOL_ID), old);
    h.restart();
    assert_eq!(h.contents(VOL_ID), old);
    // A cancelled transaction leaves it too.
    stage(&mut h, 8);
    h.control_ok(Opcode::DbTransactionCancel, &VOL_ID.to_le_bytes());
    assert_eq!(h.contents(VOL_ID), old);
    // Committed: exactly the pushed set, in the file and, after a restart, from sled.
    stage(&mut h, 9);
    h.control_ok(Opcode::DbTransactionCommit, &transdb(VOL_ID, 9));
    let new = vec![
        (b"a".to_vec(), 9, 1, b"new a".to_vec()),
        (b"c".to_vec(), 1, 1, b"new c".to_vec()),
    ];
    assert_eq!(h.contents(VOL_ID), new);
    h.restart();
    assert_eq!(h.contents(VOL_ID), new);
    // Without a transaction, a wipe is refused and wipes nothing.
    h.control_ok(Opcode::Freeze, &[]);
    assert_eq!(
        h.control(Opcode::WipeDatabase, &transdb(VOL_ID, 10)).status,
        -1
    );
    assert_eq!(h.contents(VOL_ID), new);
}

#[test]
fn an_rsn_of_u64_max_from_a_peer_never_wraps() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let key = key_with_lmaster(&net, 1);
    for h in &mut net.nodes {
        h.put_record(VOL_ID, &key, hdr(u64::MAX, 0), b"value");
    }
    // The record migrates to node 2 (REPLY_DMASTER with rsn u64::MAX) and is called
    // there: its RSN stays at the top instead of going back to 0.
    net.client_call(2, callid::FETCH_WITH_HEADER_FUNC, &key);
    let (clients, _) = net.pump();
    assert_eq!(clients.len(), 1);
    let (header, data) = fetched_header(&clients[0].1);
    assert_eq!(
        (header.dmaster, header.rsn, data.as_slice()),
        (2, u64::MAX, &b"value"[..])
    );
    assert_eq!(net.stored(2, &key).unwrap().0.rsn, u64::MAX);
}

#[test]
fn a_freeze_keeps_clients_out_of_the_files_until_the_thaw() {
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    let path = h.db(VOL_ID).path(&h.daemon.dirs, 0);
    // tdbtool is another process; it waits for the chain lock, so `timeout` ends it.
    let client_store = |seconds: &str, value: &str| {
        std::process::Command::new("timeout")
            .args([seconds, "tdbtool", &path, "store", "k", value])
            .status()
            .map(|s| s.code())
    };
    match client_store("10", "before") {
        Ok(Some(0)) => {}
        other => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install tdbtool (tdb-tools): {other:?}"
            );
            eprintln!("skipping: tdbtool is not usable ({other:?})");
            return;
        }
    }
    h.control_ok(Opcode::Freeze, &[]);
    assert_eq!(
        client_store("1", "frozen").unwrap(),
        Some(124),
        "the client waits"
    );
    // The recovery can still read (and pull) under its own lock.
    h.control_ok(Opcode::DbTransactionStart, &transdb(VOL_ID, 3));
    h.control_ok(Opcode::WipeDatabase, &transdb(VOL_ID, 3));
    assert_eq!(
        h.push(VOL_ID, vec![rec(b"r", 2, 0, b"recovered")]).status,
        0
    );
    h.control_ok(Opcode::DbTransactionCommit, &transdb(VOL_ID, 3));
    let out = h.out.clone();
    h.daemon.thaw(&out).unwrap();
    assert_eq!(
        client_store("10", "after").unwrap(),
        Some(0),
        "free after the thaw"
    );
    assert_eq!(h.value(VOL_ID, b"k").as_deref(), Some(&b"after"[..]));
}

/// Not a test of its own: the client of `a_call_waits_while_a_client_holds_the_chain`.
/// With `CTDB_DB_TEST_HOLD` set (a TDB file path) it locks the chain of key "held" as
/// smbd would, says "locked", and keeps the lock until its stdin closes.
#[test]
fn chain_holder_process() {
    use std::io::{Read, Write};
    let Ok(path) = std::env::var("CTDB_DB_TEST_HOLD") else {
        return;
    };
    let flags = ctdb_tdb::flags::CLEAR_IF_FIRST
        | ctdb_tdb::flags::INCOMPATIBLE_HASH
        | ctdb_tdb::flags::DISALLOW_NESTING;
    let tdb = ctdb_tdb::Tdb::open(std::path::Path::new(&path), 0, flags).expect("open");
    tdb.lock_chain(b"held").expect("lock");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "locked").expect("say");
    stdout.flush().expect("flush");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

#[test]
fn a_call_waits_while_a_client_holds_the_chain() {
    use std::io::BufRead;
    let mut h = Harness::with_pnn(0);
    h.attach(Opcode::DbAttach, VOL);
    h.replies();
    let path = h.db(VOL_ID).path(&h.daemon.dirs, 0);
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "tests::chain_holder_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CTDB_DB_TEST_HOLD", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the client");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    while !lines
        .next()
        .expect("client output")
        .expect("read")
        .trim_end()
        .ends_with("locked")
    {}
    // The daemon does not block on the client's lock: the call waits, unanswered.
    let call = h.call_packet(VOL_ID, callid::NULL_FUNC, b"held");
    h.send_raw(CLIENT, LOCAL, call);
    assert!(h.replies().is_empty());
    assert_eq!(h.daemon.lock_waiting(), 1);
    // A later call on the same record waits behind it; another record is served.
    let second = h.call_packet(VOL_ID, callid::NULL_FUNC, b"held");
    h.send_raw(CLIENT, LOCAL, second);
    assert_eq!(h.daemon.lock_waiting(), 2);
    assert_eq!(h.call_ok(VOL_ID, callid::NULL_FUNC, b"other"), b"");
    // Still held: a retry parks them again, in order.
    assert_eq!(h.daemon.retry_lock_waits(), 2);
    assert!(h.replies().is_empty());
    drop(child.stdin.take());
    child.wait().expect("client exits");
    assert_eq!(h.daemon.retry_lock_waits(), 0);
    let replies = h.replies();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies[0].1.reqid < replies[1].1.reqid, "in arrival order");
    let value = h.value(VOL_ID, b"held").expect("the record is in the file");
    assert_eq!(
        ctdb_protocol::ltdb::split_record(&value).unwrap().0.dmaster,
        0
    );
}

#[test]
fn vacuuming_removes_a_deleted_record_everywhere_unless_a_node_holds_it_newer() {
    let mut net = Net::new(3, &[0, 1, 2]);
    let gone = key_with_lmaster(&net, 1);
    // Deleted on its lmaster (an empty record it is dmaster of); the others hold older
    // copies from before.
    net.nodes[1].put_record(VOL_ID, &gone, hdr(7, 1), b"");
    net.nodes[0].put_record(VOL_ID, &gone, hdr(3, 1), b"old");
    net.nodes[2].put_record(VOL_ID, &gone, hdr(5, 1), b"older");
    // Another deleted record, but node 2 holds a newer copy of it: it stays there, and
    // so on the lmaster; node 0's older copy goes.
    let kept = named_key_with_lmaster(&net, "kept", 1);
    net.nodes[1].put_record(VOL_ID, &kept, hdr(4, 1), b"");
    net.nodes[0].put_record(VOL_ID, &kept, hdr(2, 1), b"x");
    net.nodes[2].put_record(VOL_ID, &kept, hdr(9, 2), b"newer");
    // A live record is never offered.
    let live = named_key_with_lmaster(&net, "live", 1);
    net.nodes[1].put_record(VOL_ID, &live, hdr(2, 1), b"data");

    let out = net.nodes[1].out.clone();
    net.nodes[1].daemon.vacuum(&out);
    let (_, wire) = net.pump();
    assert!(wire.iter().any(|(op, _, _)| *op == Operation::ReqControl));
    for node in 0..3 {
        assert_eq!(net.stored(node, &gone), None, "node {node}");
    }
    assert_eq!(net.stored(0, &kept), None);
    assert_eq!(net.stored(2, &kept).unwrap().1, b"newer");
    assert_eq!(
        net.stored(1, &kept).unwrap().0.rsn,
        4,
        "kept: a node holds it newer"
    );
    assert_eq!(net.stored(1, &live).unwrap().1, b"data");
    // Gone from sled too: a restart of node 1 does not bring it back.
    net.nodes[1].restart();
    assert_eq!(net.stored(1, &gone), None);
}
