//! The merge rules, and whole recoveries against an in-memory cluster.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ctdb_protocol::control::{DbMapEntry, NodeAndFlags, NodeFlagChange, NodeMap};
use ctdb_protocol::ReplyControl;

use super::*;
use crate::election::Roles;
use crate::monitor::{assess, gather};

fn rec(key: &str, rsn: u64, dmaster: u32, value: &str) -> RecData {
    let header = LtdbHeader {
        rsn,
        dmaster,
        ..Default::default()
    };
    RecData::with_header(0, key.as_bytes(), &header, value.as_bytes())
}

fn buffer(records: Vec<RecData>) -> RecBuffer {
    RecBuffer { db_id: 7, records }
}

fn contents(b: &RecBuffer) -> Vec<(String, u64, u32, String)> {
    b.records
        .iter()
        .map(|r| {
            let (h, v) = r.header().expect("header");
            (
                String::from_utf8_lossy(&r.key).into_owned(),
                h.rsn,
                h.dmaster,
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn persistent_copies_with_the_highest_seqnum_are_taken_whole() {
    // Node 1 and 2 have commit 3 (a and b), node 0 stopped at commit 2 but holds a
    // record with a higher RSN from a commit that never completed: commit 3 is taken
    // whole, on every node.
    let cluster = FakeCluster::new(3);
    let put = |pnn: u32, key: &str, rsn: u64, value: Vec<u8>| {
        let mut nodes = cluster.nodes.lock().expect("lock");
        let db = nodes
            .get_mut(&pnn)
            .expect("node")
            .dbs
            .entry(db_id_of("p.tdb"))
            .or_insert_with(|| ("p.tdb".into(), db_flags::PERSISTENT, BTreeMap::new()));
        db.2.insert(key.as_bytes().to_vec(), (rsn, pnn, value));
    };
    let seq = "__db_sequence_number__\0";
    put(0, seq, 2, 2u64.to_le_bytes().to_vec());
    put(0, "a", 2, b"a2".to_vec());
    put(0, "b", 9, b"b9".to_vec());
    for pnn in [1, 2] {
        put(pnn, seq, 3, 3u64.to_le_bytes().to_vec());
        put(pnn, "a", 3, b"a3".to_vec());
        put(pnn, "b", 3, b"b3".to_vec());
    }
    recover(&cluster, &plan(&[0, 1, 2]))
        .await
        .expect("recovery");
    for pnn in 0..3 {
        let db = &cluster.node(pnn).dbs[&db_id_of("p.tdb")].2;
        assert_eq!(db[&b"a"[..]].2, b"a3", "node {pnn}");
        assert_eq!(db[&b"b"[..]].2, b"b3", "node {pnn}");
    }
}

#[test]
fn merge_keeps_the_highest_rsn_and_makes_the_leader_dmaster() {
    let pulled = vec![
        (0, buffer(vec![rec("a", 5, 0, "a5"), rec("b", 1, 1, "b1")])),
        (1, buffer(vec![rec("a", 3, 1, "a3"), rec("b", 9, 1, "b9")])),
        (2, buffer(vec![rec("c", 2, 2, "c2"), rec("a", 4, 2, "a4")])),
    ];
    let merged = merge(7, &pulled, 2);
    assert_eq!(merged.db_id, 7);
    assert_eq!(
        contents(&merged),
        vec![
            ("a".into(), 5, 2, "a5".into()),
            ("b".into(), 9, 2, "b9".into()),
            ("c".into(), 2, 2, "c2".into()),
        ]
    );
}

#[test]
fn on_equal_rsns_the_dmaster_s_copy_wins_whatever_the_order() {
    let from_dmaster = (1, buffer(vec![rec("k", 4, 1, "dmaster's")]));
    let stale = (0, buffer(vec![rec("k", 4, 1, "stale")]));
    let other = (2, buffer(vec![rec("k", 4, 1, "other")]));
    for pulled in [
        vec![stale.clone(), from_dmaster.clone(), other.clone()],
        vec![from_dmaster.clone(), stale.clone(), other.clone()],
        vec![stale.clone(), other.clone(), from_dmaster.clone()],
    ] {
        let merged = merge(7, &pulled, 0);
        assert_eq!(contents(&merged)[0].3, "dmaster's");
    }
}

#[test]
fn incumbents_are_the_largest_group_sharing_a_generation() {
    const G1: u32 = 0x1111;
    const G2: u32 = 0x2222;
    const NONE: u32 = INVALID_GENERATION;
    // Node 2 comes back from a partition in which 0 and 1 recovered without it.
    assert_eq!(incumbents(&[(0, G2), (1, G2), (2, G1)], 0), vec![0, 1]);
    // A restarted node (no valid generation) joins as a newcomer.
    assert_eq!(incumbents(&[(0, G1), (1, NONE), (2, G1)], 0), vec![0, 2]);
    // A tie goes to the leader's side.
    assert_eq!(incumbents(&[(0, G1), (1, G2)], 1), vec![1]);
    assert_eq!(incumbents(&[(0, G1), (1, G2)], 0), vec![0]);
    // The whole cluster starting: everybody.
    assert_eq!(incumbents(&[(0, NONE), (1, NONE)], 0), vec![0, 1]);
    assert_eq!(incumbents(&[(2, G1), (0, G1)], 0), vec![0, 2]);
}

#[test]
fn a_returning_node_s_newer_volatile_copy_is_kept() {
    // Node 2 was dmaster of "k" (rsn 9) when it went away; nobody wrote it since.
    let pulled = vec![
        (0, buffer(vec![rec("k", 5, 0, "older")])),
        (2, buffer(vec![rec("k", 9, 2, "newest")])),
    ];
    let merged = merge(7, &pulled, 0);
    assert_eq!(contents(&merged), vec![("k".into(), 9, 0, "newest".into())]);
}

#[tokio::test]
async fn a_persistent_database_comes_from_the_incumbents_highest_sequence_number() {
    let cluster = FakeCluster::new(3);
    cluster.put(0, "pers.tdb", true, "p", 4, 0);
    cluster.put(1, "pers.tdb", true, "p", 4, 1);
    // Node 2 ran ahead on its own: commits nobody acknowledged.
    cluster.put(2, "pers.tdb", true, "p", 9, 2);
    cluster.put(2, "pers.tdb", true, "q", 9, 2);
    let mut p = plan(&[0, 1, 2]);
    p.incumbents = vec![0, 1];
    recover(&cluster, &p).await.expect("recovery");
    let pers = db_id_of("pers.tdb");
    for pnn in 0..3 {
        let records = &cluster.node(pnn).dbs[&pers].2;
        assert_eq!(records[&b"p"[..]].0, 4, "node {pnn}");
        assert!(!records.contains_key(&b"q"[..]), "node {pnn}");
    }
}

#[test]
fn records_without_a_header_are_left_out() {
    let broken = RecData {
        reqid: 0,
        key: Bytes::from_static(b"x"),
        data: Bytes::from_static(b"short"),
    };
    let merged = merge(7, &[(0, buffer(vec![broken, rec("y", 1, 0, "")]))], 0);
    assert_eq!(contents(&merged), vec![("y".into(), 1, 0, String::new())]);
}

#[test]
fn generations_are_never_0_1_or_in_use() {
    assert_eq!(pick_generation(5, &[]), 5);
    for r in [0, 1] {
        let g = pick_generation(r, &[]);
        assert!(g > 1, "{g}");
    }
    let g = pick_generation(5, &[5]);
    assert!(g != 5 && g > 1);
}

/// key → (rsn, dmaster, value).
type Records = BTreeMap<Vec<u8>, (u64, u32, Vec<u8>)>;

/// One node of the in-memory cluster: what its db and transport would keep.
#[derive(Debug, Clone, Default)]
struct FakeNode {
    recmode: u32,
    frozen: bool,
    vnnmap: VnnMap,
    /// db_id → (name, flags, records).
    dbs: BTreeMap<u32, (String, u8, Records)>,
    flags: Vec<u32>,
    log: Vec<Opcode>,
    /// Open recovery transactions: db_id → (tid, the staged copy once wiped).
    txns: BTreeMap<u32, (u32, Option<Records>)>,
}

struct FakeCluster {
    nodes: Mutex<BTreeMap<u32, FakeNode>>,
    /// A control that fails on a node.
    fail: Option<(u32, Opcode)>,
}

fn db_id_of(name: &str) -> u32 {
    name.bytes()
        .fold(0x1234_5678u32, |h, b| h.rotate_left(5) ^ u32::from(b))
}

impl FakeCluster {
    fn new(n: u32) -> Self {
        let node = FakeNode {
            recmode: recmode::ACTIVE,
            vnnmap: VnnMap {
                generation: INVALID_GENERATION,
                map: vec![],
            },
            flags: vec![0; n as usize],
            ..Default::default()
        };
        Self {
            nodes: Mutex::new((0..n).map(|p| (p, node.clone())).collect()),
            fail: None,
        }
    }

    fn put(&self, pnn: u32, db: &str, persistent: bool, key: &str, rsn: u64, dmaster: u32) {
        let mut nodes = self.nodes.lock().expect("lock");
        let node = nodes.get_mut(&pnn).expect("node");
        let flags = if persistent { db_flags::PERSISTENT } else { 0 };
        node.dbs
            .entry(db_id_of(db))
            .or_insert_with(|| (db.to_string(), flags, BTreeMap::new()))
            .2
            .insert(
                key.as_bytes().to_vec(),
                (rsn, dmaster, format!("{key}@{pnn}").into_bytes()),
            );
    }

    fn node(&self, pnn: u32) -> FakeNode {
        self.nodes.lock().expect("lock")[&pnn].clone()
    }

    fn answer(&self, pnn: u32, opcode: Opcode, data: &[u8]) -> Result<ReplyControl, String> {
        let mut nodes = self.nodes.lock().expect("lock");
        let node = nodes.get_mut(&pnn).ok_or("node is disconnected")?;
        node.log.push(opcode);
        let fail = |why: &str| ReplyControl::error(-1, why);
        let done = |data: Vec<u8>| ReplyControl {
            status: 0,
            data: data.into(),
            errmsg: Bytes::new(),
        };
        if self.fail == Some((pnn, opcode)) {
            return Ok(fail("injected failure"));
        }
        Ok(match opcode {
            Opcode::GetRecmode => ReplyControl {
                status: node.recmode as i32,
                ..Default::default()
            },
            Opcode::SetRecmode => {
                node.recmode = u32::from_bytes(data).map_err(|e| e.to_string())?;
                done(vec![])
            }
            Opcode::Freeze => {
                node.frozen = true;
                done(vec![])
            }
            Opcode::Thaw => {
                node.frozen = false;
                done(vec![])
            }
            Opcode::StartRecovery | Opcode::EndRecovery => done(vec![]),
            Opcode::Getvnnmap => done(node.vnnmap.to_bytes()),
            Opcode::Setvnnmap if node.recmode == recmode::ACTIVE => {
                node.vnnmap = VnnMap::from_bytes(data).map_err(|e| e.to_string())?;
                done(vec![])
            }
            Opcode::GetNodemap => done(
                NodeMap {
                    nodes: node
                        .flags
                        .iter()
                        .enumerate()
                        .map(|(p, &flags)| NodeAndFlags {
                            pnn: p as u32,
                            flags,
                            ..Default::default()
                        })
                        .collect(),
                }
                .to_bytes(),
            ),
            Opcode::ModifyFlags => {
                let c = NodeFlagChange::from_bytes(data).map_err(|e| e.to_string())?;
                node.flags[c.pnn as usize] = c.new_flags;
                done(vec![])
            }
            Opcode::GetDbmap => done(
                DbMap {
                    dbs: node
                        .dbs
                        .iter()
                        .map(|(&db_id, (_, flags, _))| DbMapEntry {
                            db_id,
                            flags: *flags,
                        })
                        .collect(),
                }
                .to_bytes(),
            ),
            Opcode::GetDbname => {
                let id = u32::from_bytes(data).map_err(|e| e.to_string())?;
                match node.dbs.get(&id) {
                    Some((name, _, _)) => done(name.to_bytes()),
                    None => fail("no such db"),
                }
            }
            Opcode::DbAttach | Opcode::DbAttachPersistent => {
                let name = String::from_bytes(data).map_err(|e| e.to_string())?;
                let flags = if opcode == Opcode::DbAttachPersistent {
                    db_flags::PERSISTENT
                } else {
                    0
                };
                let id = db_id_of(&name);
                node.dbs
                    .entry(id)
                    .or_insert_with(|| (name, flags, BTreeMap::new()));
                done(id.to_bytes())
            }
            Opcode::PullDbPage => {
                // Pages of two records, to exercise the paging.
                let p = ctdb_protocol::control::PullDbPage::from_bytes(data)
                    .map_err(|e| e.to_string())?;
                let records = node.dbs[&p.db_id]
                    .2
                    .iter()
                    .filter(|(k, _)| p.after.as_deref().is_none_or(|a| k.as_slice() > a))
                    .take(2)
                    .map(|(k, (rsn, dmaster, v))| {
                        let h = LtdbHeader {
                            rsn: *rsn,
                            dmaster: *dmaster,
                            ..Default::default()
                        };
                        RecData::with_header(0, k, &h, v)
                    })
                    .collect();
                done(
                    RecBuffer {
                        db_id: p.db_id,
                        records,
                    }
                    .to_bytes(),
                )
            }
            Opcode::GetDbSeqnum => {
                let db_id = u32::from_le_bytes(data[..4].try_into().map_err(|_| "short")?);
                let seqnum = node.dbs[&db_id]
                    .2
                    .get(&b"__db_sequence_number__\0"[..])
                    .and_then(|(_, _, v)| <[u8; 8]>::try_from(&v[..]).ok())
                    .map_or(0, u64::from_le_bytes);
                done(seqnum.to_le_bytes().to_vec())
            }
            Opcode::WipeDatabase | Opcode::PushDb if !node.frozen => fail("not frozen"),
            Opcode::DbTransactionStart => {
                let t = TransDb::from_bytes(data).map_err(|e| e.to_string())?;
                node.txns.insert(t.db_id, (t.tid, None));
                done(vec![])
            }
            Opcode::DbTransactionCancel => {
                let db_id = u32::from_le_bytes(data[..4].try_into().map_err(|_| "short")?);
                node.txns.remove(&db_id);
                done(vec![])
            }
            Opcode::DbTransactionCommit => {
                let t = TransDb::from_bytes(data).map_err(|e| e.to_string())?;
                match node.txns.remove(&t.db_id) {
                    Some((tid, staged)) if tid == t.tid => {
                        if let Some(records) = staged {
                            node.dbs.get_mut(&t.db_id).ok_or("no db")?.2 = records;
                        }
                        done(vec![])
                    }
                    _ => fail("no such transaction"),
                }
            }
            Opcode::WipeDatabase => {
                let t = TransDb::from_bytes(data).map_err(|e| e.to_string())?;
                match node.txns.get_mut(&t.db_id) {
                    Some((tid, staged)) if *tid == t.tid => *staged = Some(Records::new()),
                    _ => node.dbs.get_mut(&t.db_id).ok_or("no db")?.2.clear(),
                }
                done(vec![])
            }
            Opcode::PushDb => {
                let b = RecBuffer::from_bytes(data).map_err(|e| e.to_string())?;
                let db = match node.txns.get_mut(&b.db_id) {
                    Some((_, Some(staged))) => staged,
                    _ => &mut node.dbs.get_mut(&b.db_id).ok_or("no db")?.2,
                };
                for r in &b.records {
                    let (h, v) = r.header().map_err(|e| e.to_string())?;
                    db.insert(r.key.to_vec(), (h.rsn, h.dmaster, v.to_vec()));
                }
                done(vec![])
            }
            other => fail(&format!("{other} not expected")),
        })
    }
}

impl Nodes for FakeCluster {
    async fn control(
        &self,
        pnn: u32,
        opcode: Opcode,
        data: Bytes,
        _timeout: Duration,
    ) -> Result<ReplyControl, String> {
        self.answer(pnn, opcode, &data)
    }
}

fn plan(active: &[u32]) -> Plan {
    Plan {
        leader: 0,
        active: active.to_vec(),
        vnnmap: active.to_vec(),
        old_generations: vec![INVALID_GENERATION],
        incumbents: active.to_vec(),
        timeout: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn a_recovery_gives_every_node_every_database_and_the_newest_records() {
    let cluster = FakeCluster::new(3);
    cluster.put(0, "vol.tdb", false, "k1", 3, 0);
    cluster.put(1, "vol.tdb", false, "k1", 7, 1);
    cluster.put(2, "vol.tdb", false, "k2", 1, 2);
    cluster.put(2, "pers.tdb", true, "p", 4, 2);

    let outcome = recover(&cluster, &plan(&[0, 1, 2]))
        .await
        .expect("recovery");
    assert_eq!(outcome.databases, 2);
    assert_eq!(outcome.records, 3);
    assert!(outcome.generation > INVALID_GENERATION);

    let vol = db_id_of("vol.tdb");
    let pers = db_id_of("pers.tdb");
    for pnn in 0..3 {
        let node = cluster.node(pnn);
        assert_eq!(node.recmode, recmode::NORMAL);
        assert!(!node.frozen);
        assert_eq!(node.vnnmap.generation, outcome.generation);
        assert_eq!(node.vnnmap.map, vec![0, 1, 2]);
        let v = &node.dbs[&vol];
        assert_eq!(v.2[&b"k1"[..]], (7, 0, b"k1@1".to_vec()), "node {pnn}");
        assert_eq!(v.2[&b"k2"[..]], (1, 0, b"k2@2".to_vec()));
        let p = &node.dbs[&pers];
        assert_eq!(p.1, db_flags::PERSISTENT, "created as persistent");
        assert_eq!(p.2[&b"p"[..]].0, 4);
        // The seed's order.
        let order: Vec<Opcode> = node
            .log
            .iter()
            .copied()
            .filter(|o| {
                matches!(
                    o,
                    Opcode::SetRecmode
                        | Opcode::Freeze
                        | Opcode::StartRecovery
                        | Opcode::Setvnnmap
                        | Opcode::Thaw
                        | Opcode::EndRecovery
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                Opcode::SetRecmode,
                Opcode::Freeze,
                Opcode::StartRecovery,
                Opcode::Setvnnmap,
                Opcode::SetRecmode,
                Opcode::Thaw,
                Opcode::EndRecovery
            ]
        );
    }
}

#[tokio::test]
async fn a_failing_step_aborts_and_names_the_node() {
    let mut cluster = FakeCluster::new(3);
    cluster.put(0, "vol.tdb", false, "k1", 3, 0);
    cluster.put(1, "vol.tdb", false, "only-on-1", 1, 1);
    cluster.fail = Some((2, Opcode::PushDb));
    let before: Vec<_> = (0..3)
        .map(|p| {
            cluster
                .node(p)
                .dbs
                .get(&db_id_of("vol.tdb"))
                .map(|d| d.2.clone())
        })
        .collect();
    let failure = recover(&cluster, &plan(&[0, 1, 2]))
        .await
        .expect_err("must fail");
    assert_eq!(failure.culprit, 2);
    assert_eq!(failure.step, "PUSH_DB");
    // Nodes 0 and 1 had wiped and taken the push, but only in their transaction, which
    // was cancelled: every node has exactly its old records.
    for pnn in 0..3u32 {
        let node = cluster.node(pnn);
        let now = node.dbs.get(&db_id_of("vol.tdb")).map(|d| d.2.clone());
        let old = before[pnn as usize].clone().unwrap_or_default();
        assert_eq!(now.unwrap_or_default(), old, "node {pnn}");
        assert!(node.log.contains(&Opcode::DbTransactionCancel));
        assert!(!node.log.contains(&Opcode::DbTransactionCommit));
    }
    // The cluster stays in recovery, frozen: the next round retries.
    for pnn in 0..3 {
        let node = cluster.node(pnn);
        assert_eq!(node.recmode, recmode::ACTIVE);
        assert!(node.frozen);
        assert_eq!(node.vnnmap.generation, INVALID_GENERATION);
    }
    cluster.fail = None;
    recover(&cluster, &plan(&[0, 1, 2])).await.expect("retry");
    assert_eq!(cluster.node(2).dbs[&db_id_of("vol.tdb")].2.len(), 2);
}

/// The leader's round end to end: gather, assess, recover, and then nothing to do.
#[tokio::test]
async fn a_monitoring_round_recovers_a_new_cluster_once() {
    let cluster = FakeCluster::new(3);
    let mine = NodeMap::from_bytes(
        &cluster
            .answer(0, Opcode::GetNodemap, &[])
            .expect("nodemap")
            .data,
    )
    .expect("decode");
    let roles = Roles::default();
    let t = Duration::from_secs(1);
    let (states, errors) = gather(&cluster, &[0, 1, 2], t).await;
    assert!(errors.is_empty());
    let a = assess(0, &mine, &states, &roles);
    assert!(a.recovery.is_some());
    let p = Plan {
        leader: 0,
        active: a.active,
        vnnmap: a.vnnmap,
        old_generations: vec![],
        incumbents: vec![0, 1, 2],
        timeout: t,
    };
    recover(&cluster, &p).await.expect("recovery");
    let (states, _) = gather(&cluster, &[0, 1, 2], t).await;
    let a = assess(0, &mine, &states, &roles);
    assert_eq!(a.recovery, None, "a recovered cluster needs nothing");

    // A node that is gone makes its control fail: reported, not recovered around.
    cluster.nodes.lock().expect("lock").remove(&2);
    let (states, errors) = gather(&cluster, &[0, 1, 2], t).await;
    assert_eq!(states.len(), 2);
    assert_eq!(errors[0].pnn, 2);
}
