//! Every control payload Samba 4.17 put on the wire (shared/vectors/samba-4.17) decodes
//! to a typed value and re-encodes to the identical bytes; plus property tests of the
//! payload types.
//!
//! The one exception is `ctdb_statistics`, where the seed's layout wins: Samba's
//! 488-byte STATISTICS reply and GET_STAT_HISTORY entries must decode to the right
//! fields and re-encode in the seed's 336-byte form.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddrV4, SocketAddrV6};

use bytes::Bytes;
use ctdb_protocol::control::db::db_flags;
use ctdb_protocol::control::*;
use ctdb_protocol::{LtdbHeader, Opcode, Wire};
use proptest::prelude::*;
use proptest::strategy::Union;

mod common;
use common::load_all;

const REQ_CONTROL: u64 = 7;
const REPLY_CONTROL: u64 = 8;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// One control payload cut out of a captured packet.
struct Payload {
    at: String,
    file: String,
    request: bool,
    opcode: Opcode,
    data: Vec<u8>,
}

/// Every REQ_CONTROL payload, and every REPLY_CONTROL payload whose opcode is known and
/// whose status is 0.
fn payloads() -> Vec<Payload> {
    let mut out = Vec::new();
    for (at, r) in load_all() {
        let op = r["operation"].as_u64().expect("operation");
        if op != REQ_CONTROL && op != REPLY_CONTROL {
            continue;
        }
        let hex = hex::decode(r["hex"].as_str().expect("hex")).expect("valid hex");
        let file = at.split(' ').next().unwrap_or_default().to_owned();
        if op == REQ_CONTROL {
            let opcode = u32_at(&hex, 32);
            assert_eq!(Some(u64::from(opcode)), r["opcode"].as_u64(), "{at}");
            let len = u32_at(&hex, 56) as usize;
            out.push(Payload {
                at,
                file,
                request: true,
                opcode: Opcode::from_u32(opcode),
                data: hex[60..60 + len].to_vec(),
            });
        } else {
            let Some(opcode) = r["opcode"].as_u64() else {
                continue;
            };
            let status = u32_at(&hex, 32) as i32;
            if status != 0 {
                continue;
            }
            let len = u32_at(&hex, 36) as usize;
            out.push(Payload {
                at,
                file,
                request: false,
                opcode: Opcode::from_u32(opcode as u32),
                data: hex[44..44 + len].to_vec(),
            });
        }
    }
    out
}

fn decode(p: &Payload) -> ControlData {
    let d = if p.request {
        decode_request(p.opcode, &p.data)
    } else {
        decode_reply(p.opcode, &p.data)
    };
    d.unwrap_or_else(|e| panic!("{}: {} {:?}: {e}", p.at, p.opcode, p.request))
}

#[test]
fn every_captured_payload_decodes_and_re_encodes() {
    let all = payloads();
    let mut typed_opcodes = BTreeSet::new();
    let mut identical = 0;
    let mut seed_form = 0;
    let mut per_shape: BTreeMap<String, usize> = BTreeMap::new();
    for p in &all {
        let d = decode(p);
        let shape = d.shape();
        let expected = if p.request {
            request_shape(p.opcode)
        } else {
            reply_shape(p.opcode)
        };
        assert_eq!(shape, expected, "{}", p.at);
        *per_shape.entry(format!("{shape:?}")).or_default() += 1;
        if d.is_typed() {
            typed_opcodes.insert(p.opcode.as_u32());
        }
        let bytes = d.to_bytes();
        match &d {
            // The seed's layout wins: Samba's 488-byte statistics come back as 336.
            ControlData::Statistics(_) if p.data.len() == Statistics::SAMBA_SIZE => {
                assert_eq!(bytes.len(), Statistics::SIZE, "{}", p.at);
                seed_form += 1;
            }
            ControlData::StatisticsList(l) if p.data.len() == 8 + l.stats.len() * 488 => {
                assert_eq!(
                    bytes.len(),
                    8 + l.stats.len() * Statistics::SIZE,
                    "{}",
                    p.at
                );
                assert_eq!(&bytes[..8], &p.data[..8], "{}", p.at);
                seed_form += 1;
            }
            _ => {
                assert_eq!(
                    hex::encode(&bytes),
                    hex::encode(&p.data),
                    "{}: {} re-encodes differently",
                    p.at,
                    p.opcode
                );
                identical += 1;
            }
        }
    }
    println!(
        "{} payloads: {identical} byte-identical, {seed_form} in the seed's statistics form; \
         {} opcodes typed; shapes {per_shape:?}",
        all.len(),
        typed_opcodes.len()
    );
    assert!(all.len() > 5900, "only {} payloads", all.len());
    assert!(identical > 5900, "only {identical} byte-identical payloads");
    assert!(seed_form >= 4, "only {seed_form} statistics payloads");
    assert!(
        typed_opcodes.len() >= 90,
        "only {} opcodes decoded typed: {typed_opcodes:?}",
        typed_opcodes.len()
    );
    // Samba's opcodes are covered as well as the seed's.
    assert!(typed_opcodes.iter().filter(|&&o| o > 128).count() >= 20);
}

fn find<'a>(all: &'a [Payload], file: &str, request: bool, opcode: Opcode) -> Vec<&'a Payload> {
    all.iter()
        .filter(|p| p.file == file && p.request == request && p.opcode == opcode)
        .collect()
}

#[test]
fn known_facts_of_the_capture() {
    let all = payloads();

    // The main cluster: nodes 127.0.0.1-3 on port 4379, pnn 0-2.
    let maps = find(&all, "client.jsonl", false, Opcode::GetNodemap);
    assert!(!maps.is_empty());
    for p in maps {
        let ControlData::NodeMap(m) = decode(p) else {
            panic!("{}: not a node map", p.at)
        };
        assert_eq!(m.nodes.len(), 3, "{}", p.at);
        for (i, n) in m.nodes.iter().enumerate() {
            assert_eq!(n.pnn, i as u32);
            let expected: SocketAddrV4 = format!("127.0.0.{}:4379", i + 1).parse().unwrap();
            assert_eq!(n.addr, SockAddr::V4(expected), "{}", p.at);
        }
    }

    // GET_CAPABILITIES answers RECMASTER | LMASTER | the two feature bits.
    let caps = find(&all, "client.jsonl", false, Opcode::GetCapabilities);
    assert!(!caps.is_empty());
    for p in caps {
        assert_eq!(decode(p), ControlData::Uint32(0x0003_0003), "{}", p.at);
    }

    // The db map of the main cluster knows a persistent and a replicated database.
    let p = find(&all, "client-synthetic.jsonl", false, Opcode::GetDbmap)[0];
    let ControlData::DbMap(m) = decode(p) else {
        panic!("not a db map")
    };
    assert_eq!(m.dbs.len(), 6);
    assert!(m
        .dbs
        .iter()
        .any(|d| d.db_id == 0x6ef9_1a74 && d.flags == db_flags::PERSISTENT));
    assert!(m
        .dbs
        .iter()
        .any(|d| d.db_id == 0xfce0_9386 && d.flags == db_flags::REPLICATED));

    // GET_DB_SEQNUM's request is db_id and 4 bytes of padding; the reply a uint64.
    for p in find(&all, "client.jsonl", true, Opcode::GetDbSeqnum) {
        assert_eq!(p.data.len(), 8);
        assert!(matches!(decode(p), ControlData::DbSeqnumRequest(_)));
    }
    let p = &find(&all, "client.jsonl", false, Opcode::GetDbSeqnum)[0];
    assert_eq!(decode(p), ControlData::Uint64(3));

    // STATISTICS from Samba (488 bytes), at the offsets of the vectors README.
    let p = all.iter().find(|p| p.at == "client.jsonl i=296").unwrap();
    let ControlData::Statistics(s) = decode(p) else {
        panic!("not statistics")
    };
    assert_eq!(s.num_clients, 2);
    assert_eq!(s.max_hop_count, 0);
    assert_eq!(s.num_recoveries, 1);
    assert_eq!(
        s.statistics_start_time,
        Timeval {
            sec: 1_795_573_233,
            usec: 373_979
        }
    );
    assert_eq!(s.total_calls, u32_at(&p.data, 280));
    assert_eq!(s.memory_used, u32_at(&p.data, 296));
    assert_eq!(s.node.req_control, u32_at(&p.data, 60));
    assert_eq!(s.client.req_control, u32_at(&p.data, 80));
    assert!(s.node.req_control > 0 && s.client.req_control > 0);
    // ... and in the seed's form it sits at the seed's offsets.
    let seed = ControlData::Statistics(s.clone()).to_bytes();
    assert_eq!(seed.len(), 336);
    assert_eq!(u32_at(&seed, 0), 2);
    assert_eq!(u32_at(&seed, 296), 1);
    assert_eq!(u32_at(&seed, 160), s.total_calls);
    assert_eq!(Statistics::decode_any(&seed).as_ref(), Ok(&*s));

    // GET_STAT_HISTORY: 100 entries of 488 bytes, re-encoded as 100 of 336.
    let p = &find(&all, "client.jsonl", false, Opcode::GetStatHistory)[0];
    let ControlData::StatisticsList(l) = decode(p) else {
        panic!("not a statistics list")
    };
    assert_eq!(l.stats.len(), 100);
    assert_eq!(l.stats[0].statistics_start_time.sec, 1_795_574_875);
    assert_eq!(l.to_bytes().len(), 8 + 100 * 336);

    // LIST_TUNABLES names every tunable that GET_ALL_TUNABLES lays out.
    let p = &find(&all, "client.jsonl", false, Opcode::ListTunables)[0];
    let ControlData::VarList(v) = decode(p) else {
        panic!("not a var list")
    };
    assert!(v.vars.len() > 40);
    assert_eq!(v.vars[0], "SeqnumInterval");
    let p = &find(
        &all,
        "client-synthetic.jsonl",
        false,
        Opcode::GetAllTunables,
    )[0];
    let ControlData::TunableList(t) = decode(p) else {
        panic!("not a tunable list")
    };
    for name in &v.vars {
        assert!(t.get(name).is_some(), "GET_ALL_TUNABLES lacks {name}");
    }
    assert_eq!(t.max_redirect_count, 3);
    assert_eq!(t.get("RecoverInterval"), Some(1));
    assert_eq!(t.get("ControlTimeout"), Some(60));
    assert_eq!(t.get("DatabaseHashSize"), Some(100_001));
    assert_eq!(t.get("QueueBufferSize"), Some(1024));

    // GETVNNMAP: the vnn map of a three-node cluster.
    let p = &find(&all, "client.jsonl", false, Opcode::Getvnnmap)[0];
    let ControlData::VnnMap(v) = decode(p) else {
        panic!("not a vnn map")
    };
    assert!(!v.map.is_empty() && v.map.iter().all(|&pnn| pnn < 3));

    // Records carry their ltdb header; TRAVERSE_DATA ends with an empty record.
    let data: Vec<_> = find(&all, "nodes.jsonl", true, Opcode::TraverseData);
    let with_key = data
        .iter()
        .find_map(|p| match decode(p) {
            ControlData::RecData(r) if !r.key.is_empty() => Some(r),
            _ => None,
        })
        .expect("a traverse record");
    let (header, _) = with_key.header().expect("ltdb header");
    assert!(header.rsn > 0);

    // ECHO_DATA comes back as it went.
    let req = &find(&all, "client-synthetic.jsonl", true, Opcode::EchoData)[0];
    let ControlData::EchoData(e) = decode(req) else {
        panic!("not echo data")
    };
    assert_eq!(e.timeout, 100);
    assert_eq!(&e.data[..], b"echo me, please");
}

// ---------------------------------------------------------------------------------
// Property tests.

fn bytes_s(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn finite() -> impl Strategy<Value = f64> {
    -1.0e12f64..1.0e12
}

fn sock_addr() -> impl Strategy<Value = SockAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SockAddr::V4(SocketAddrV4::new(ip.into(), port))),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
            |(ip, port, flow, scope)| SockAddr::V6(SocketAddrV6::new(ip.into(), port, flow, scope))
        ),
        (
            any::<u16>().prop_filter("not AF_INET/AF_INET6", |f| *f != 2 && *f != 10),
            any::<[u8; 26]>()
        )
            .prop_map(|(family, data)| SockAddr::Other { family, data }),
    ]
}

fn timeval() -> impl Strategy<Value = Timeval> {
    (any::<i64>(), any::<i64>()).prop_map(|(sec, usec)| Timeval { sec, usec })
}

fn latency() -> impl Strategy<Value = LatencyCounter> {
    (any::<i32>(), finite(), finite(), finite()).prop_map(|(num, min, max, total)| LatencyCounter {
        num,
        min,
        max,
        total,
    })
}

fn statistics() -> impl Strategy<Value = Statistics> {
    (
        prop::array::uniform32(any::<u32>()),
        any::<u32>(),
        prop::array::uniform6(latency()),
        timeval(),
        timeval(),
    )
        .prop_map(|(u, extra, l, start, current)| {
            use ctdb_protocol::control::stats::{ClientCounters, NodeCounters, TimeoutCounters};
            Statistics {
                num_clients: u[0],
                frozen: u[1],
                recovering: u[2],
                client_packets_sent: u[3],
                client_packets_recv: u[4],
                node_packets_sent: u[5],
                node_packets_recv: u[6],
                keepalive_packets_sent: u[7],
                keepalive_packets_recv: u[8],
                node: NodeCounters {
                    req_call: u[9],
                    reply_call: u[10],
                    req_dmaster: u[11],
                    reply_dmaster: u[12],
                    reply_error: u[13],
                    req_message: u[14],
                    req_control: u[15],
                    reply_control: u[16],
                },
                client: ClientCounters {
                    req_call: u[17],
                    req_message: u[18],
                    req_control: u[19],
                },
                timeouts: TimeoutCounters {
                    call: u[20],
                    control: u[21],
                    traverse: u[22],
                },
                reclock_ctdbd: l[0],
                reclock_recd: l[1],
                total_calls: u[23],
                pending_calls: u[24],
                lockwait_calls: u[25],
                pending_lockwait_calls: u[26],
                childwrite_calls: u[27],
                pending_childwrite_calls: u[28],
                memory_used: u[29],
                last_counter: u[30],
                max_hop_count: u[31],
                call_latency: l[2],
                lockwait_latency: l[3],
                childwrite_latency: l[4],
                num_recoveries: extra,
                statistics_start_time: start,
                statistics_current_time: current,
            }
        })
}

fn db_statistics() -> impl Strategy<Value = DbStatistics> {
    (
        prop::array::uniform4(any::<u32>()),
        latency(),
        prop::array::uniform16(any::<u32>()),
        latency(),
        any::<(u32, u32)>(),
        prop::array::uniform16(any::<u32>()),
        0usize..=10,
        prop::collection::vec((any::<u32>(), any::<u64>(), bytes_s(12)), 10),
    )
        .prop_map(|(l, ll, lb, vl, (d, r), hop, num, keys)| DbStatistics {
            locks_num_calls: l[0],
            locks_num_current: l[1],
            locks_num_pending: l[2],
            locks_num_failed: l[3],
            locks_latency: ll,
            locks_buckets: lb,
            vacuum_latency: vl,
            db_ro_delegations: d,
            db_ro_revokes: r,
            hop_count_bucket: hop,
            num_hot_keys: num as u32,
            hot_keys: keys
                .into_iter()
                .enumerate()
                .map(|(i, (count, key_ptr, key))| HotKey {
                    count,
                    key_ptr,
                    key: if i < num { key } else { Bytes::new() },
                })
                .collect(),
        })
}

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9._-]{{1,{max}}}")).unwrap()
}

fn rec_data() -> impl Strategy<Value = RecData> {
    (any::<u32>(), bytes_s(16), bytes_s(48)).prop_map(|(reqid, key, data)| RecData {
        reqid,
        key,
        data,
    })
}

fn header() -> impl Strategy<Value = LtdbHeader> {
    any::<(u64, u32, u32, u32)>().prop_map(|(rsn, dmaster, reserved1, flags)| LtdbHeader {
        rsn,
        dmaster,
        reserved1,
        flags,
    })
}

fn iface() -> impl Strategy<Value = Iface> {
    (name(15), any::<u16>(), any::<u32>()).prop_map(|(name, link_state, references)| Iface {
        name,
        link_state,
        references,
    })
}

fn public_ip() -> impl Strategy<Value = PublicIp> {
    (any::<u32>(), sock_addr()).prop_map(|(pnn, addr)| PublicIp { pnn, addr })
}

fn connection() -> impl Strategy<Value = Connection> {
    (sock_addr(), sock_addr()).prop_map(|(src, dst)| Connection { src, dst })
}

fn script() -> impl Strategy<Value = Script> {
    (
        name(31),
        timeval(),
        timeval(),
        any::<i32>(),
        proptest::string::string_regex("[ -~]{0,200}").unwrap(),
    )
        .prop_map(|(name, start, finished, status, output)| Script {
            name,
            start,
            finished,
            status,
            output,
        })
}

fn control_data() -> impl Strategy<Value = ControlData> {
    use ControlData as C;
    let v = |n| prop::collection::vec(any::<u32>(), 0..n);
    let arms: Vec<BoxedStrategy<ControlData>> = vec![
        Just(C::Empty).boxed(),
        bytes_s(64).prop_map(C::Raw).boxed(),
        prop::option::of(name(40)).prop_map(C::String).boxed(),
        proptest::string::string_regex("[ -~\n]{0,80}")
            .unwrap()
            .prop_map(C::Text)
            .boxed(),
        finite().prop_map(C::Double).boxed(),
        any::<u32>().prop_map(C::Uint32).boxed(),
        any::<i32>().prop_map(C::Int32).boxed(),
        any::<u64>().prop_map(C::Uint64).boxed(),
        any::<u32>().prop_map(C::DbId).boxed(),
        any::<u32>()
            .prop_map(|db_id| C::DbSeqnumRequest(DbSeqnumRequest { db_id }))
            .boxed(),
        statistics()
            .prop_map(|s| C::Statistics(Box::new(s)))
            .boxed(),
        prop::collection::vec(statistics(), 0..3)
            .prop_map(|stats| C::StatisticsList(StatisticsList { stats }))
            .boxed(),
        prop::collection::vec(any::<u32>(), 62)
            .prop_map(|v| C::TunableList(Box::new(TunableList::from_values(&v).unwrap())))
            .boxed(),
        db_statistics()
            .prop_map(|d| C::DbStatistics(Box::new(d)))
            .boxed(),
        prop::collection::vec((any::<u32>(), any::<u32>(), sock_addr()), 0..5)
            .prop_map(|n| {
                C::NodeMap(NodeMap {
                    nodes: n
                        .into_iter()
                        .map(|(pnn, flags, addr)| NodeAndFlags { pnn, flags, addr })
                        .collect(),
                })
            })
            .boxed(),
        (any::<u32>(), v(8))
            .prop_map(|(generation, map)| C::VnnMap(VnnMap { generation, map }))
            .boxed(),
        any::<(u32, u32, u32)>()
            .prop_map(|(pnn, new_flags, old_flags)| {
                C::NodeFlagChange(NodeFlagChange {
                    pnn,
                    new_flags,
                    old_flags,
                })
            })
            .boxed(),
        any::<(u32, u32)>()
            .prop_map(|(pnn, time)| C::BanState(BanState { pnn, time }))
            .boxed(),
        sock_addr().prop_map(C::SockAddr).boxed(),
        prop::collection::vec(any::<(u32, u8)>(), 0..6)
            .prop_map(|d| {
                C::DbMap(DbMap {
                    dbs: d
                        .into_iter()
                        .map(|(db_id, flags)| DbMapEntry { db_id, flags })
                        .collect(),
                })
            })
            .boxed(),
        rec_data().prop_map(C::RecData).boxed(),
        (any::<u32>(), prop::collection::vec(rec_data(), 0..4))
            .prop_map(|(db_id, records)| C::RecBuffer(RecBuffer { db_id, records }))
            .boxed(),
        any::<(u32, u32)>()
            .prop_map(|(db_id, lmaster)| C::PullDb(PullDb { db_id, lmaster }))
            .boxed(),
        any::<(u32, u32, u64)>()
            .prop_map(|(db_id, lmaster, srvid)| {
                C::PullDbExt(PullDbExt {
                    db_id,
                    lmaster,
                    srvid,
                })
            })
            .boxed(),
        any::<(u32, u32)>()
            .prop_map(|(db_id, tid)| C::TransDb(TransDb { db_id, tid }))
            .boxed(),
        any::<(u32, u32)>()
            .prop_map(|(db_id, priority)| C::DbPriority(DbPriority { db_id, priority }))
            .boxed(),
        any::<(u32, u32)>()
            .prop_map(|(db_id, dmaster)| C::SetDmaster(SetDmaster { db_id, dmaster }))
            .boxed(),
        any::<(u32, u32, u64)>()
            .prop_map(|(db_id, reqid, srvid)| {
                C::TraverseStart(TraverseStart {
                    db_id,
                    reqid,
                    srvid,
                })
            })
            .boxed(),
        any::<(u32, u32, u64, bool)>()
            .prop_map(|(db_id, reqid, srvid, withemptyrecords)| {
                C::TraverseStartExt(TraverseStartExt {
                    db_id,
                    reqid,
                    srvid,
                    withemptyrecords,
                })
            })
            .boxed(),
        any::<(u32, u32, u32, u32, u64)>()
            .prop_map(|(db_id, reqid, pnn, client_reqid, srvid)| {
                C::TraverseAll(TraverseAll {
                    db_id,
                    reqid,
                    pnn,
                    client_reqid,
                    srvid,
                })
            })
            .boxed(),
        any::<(u32, u32, u32, u32, u64, bool)>()
            .prop_map(|(db_id, reqid, pnn, client_reqid, srvid, w)| {
                C::TraverseAllExt(TraverseAllExt {
                    db_id,
                    reqid,
                    pnn,
                    client_reqid,
                    srvid,
                    withemptyrecords: w,
                })
            })
            .boxed(),
        (any::<u32>(), header(), bytes_s(32))
            .prop_map(|(db_id, header, key)| C::KeyData(KeyData { db_id, header, key }))
            .boxed(),
        any::<(u32, bool)>()
            .prop_map(|(db_id, full_vacuum_run)| {
                C::DbVacuum(DbVacuum {
                    db_id,
                    full_vacuum_run,
                })
            })
            .boxed(),
        (name(30), any::<u32>())
            .prop_map(|(name, value)| C::Tunable(Tunable { name, value }))
            .boxed(),
        name(30)
            .prop_map(|n| C::TunableName(TunableName(n)))
            .boxed(),
        prop::collection::vec(name(20), 0..6)
            .prop_map(|vars| C::VarList(VarList { vars }))
            .boxed(),
        (timeval(), timeval(), timeval(), timeval())
            .prop_map(|(a, b, c, d)| {
                C::Uptime(Uptime {
                    current_time: a,
                    ctdbd_start_time: b,
                    last_recovery_started: c,
                    last_recovery_finished: d,
                })
            })
            .boxed(),
        public_ip().prop_map(C::PublicIp).boxed(),
        (any::<u32>(), any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(pnn, ip, port)| {
                C::PublicIpV4(PublicIpV4 {
                    pnn,
                    addr: SocketAddrV4::new(ip.into(), port),
                })
            })
            .boxed(),
        prop::collection::vec(public_ip(), 0..4)
            .prop_map(|ips| C::PublicIpList(PublicIpList { ips }))
            .boxed(),
        (
            public_ip(),
            any::<u32>(),
            prop::collection::vec(iface(), 0..3),
        )
            .prop_map(|(ip, active_idx, ifaces)| {
                C::PublicIpInfo(PublicIpInfo {
                    ip,
                    active_idx,
                    ifaces,
                })
            })
            .boxed(),
        iface().prop_map(C::Iface).boxed(),
        prop::collection::vec(iface(), 0..4)
            .prop_map(|ifaces| C::IfaceList(IfaceList { ifaces }))
            .boxed(),
        connection().prop_map(C::Connection).boxed(),
        (sock_addr(), prop::collection::vec(connection(), 0..4))
            .prop_map(|(addr, connections)| C::TickleList(TickleList { addr, connections }))
            .boxed(),
        (sock_addr(), any::<u32>(), prop::option::of(name(15)))
            .prop_map(|(addr, mask, iface)| C::AddrInfo(AddrInfo { addr, mask, iface }))
            .boxed(),
        prop::collection::vec(script(), 0..3)
            .prop_map(|scripts| C::ScriptList(ScriptList { scripts }))
            .boxed(),
        any::<(u64, u32, u32, u64)>()
            .prop_map(|(pid, task_id, vnn, unique_id)| {
                C::ServerId(ServerId {
                    pid,
                    task_id,
                    vnn,
                    unique_id,
                })
            })
            .boxed(),
        any::<(i32, u64)>()
            .prop_map(|(pid, srvid)| C::PidSrvid(PidSrvid { pid, srvid }))
            .boxed(),
        (any::<u64>(), bytes_s(40))
            .prop_map(|(srvid, data)| C::NotifyData(NotifyData { srvid, data }))
            .boxed(),
        (any::<u32>(), bytes_s(40))
            .prop_map(|(timeout, data)| C::EchoData(EchoData { timeout, data }))
            .boxed(),
        prop::collection::vec(any::<u64>(), 0..6)
            .prop_map(|srvids| C::SrvidList(SrvidList { srvids }))
            .boxed(),
    ];
    Union::new(arms)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        // Integration tests have no lib.rs next to them to persist failures beside.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// encode → decode is the identity for every payload shape.
    #[test]
    fn encode_then_decode_is_identity(d in control_data()) {
        let bytes = d.to_bytes();
        let back = ControlData::decode(d.shape(), &bytes);
        prop_assert_eq!(back.as_ref(), Ok(&d));
    }

    /// No byte string makes the decoder of any opcode panic, and whatever decodes can
    /// be encoded again.
    #[test]
    fn arbitrary_bytes_never_panic(op in 0u32..170, data in prop::collection::vec(any::<u8>(), 0..700)) {
        let op = Opcode::from_u32(op);
        for d in [decode_request(op, &data), decode_reply(op, &data)].into_iter().flatten() {
            let again = d.to_bytes();
            prop_assert!(ControlData::decode(d.shape(), &again).is_ok());
        }
    }

    /// Every known opcode, with payloads that start like the real thing (a small count
    /// first) so the decoders get past their first field.
    #[test]
    fn small_counts_never_panic(idx in 0usize..200, n in 0u32..4, tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let op = Opcode::ALL[idx % Opcode::ALL.len()];
        let mut data = n.to_le_bytes().to_vec();
        data.extend_from_slice(&tail);
        let _ = decode_request(op, &data);
        let _ = decode_reply(op, &data);
    }
}
