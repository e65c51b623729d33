//! The handlers, fed the messages Samba 4.17's tool and daemons sent (vectors/samba-4.17),
//! and the disable rules.

use ctdb_protocol::{Body, Packet};

use super::*;

use crate::vectors::{field, lines, unhex};

/// The REQ_MESSAGE captured as record `i` of `file`: (srvid, data).
fn message(file: &str, i: u32) -> (u64, Bytes) {
    match crate::vectors::packet(file, i).body {
        Body::ReqMessage(m) => (m.srvid, m.data),
        other => panic!("{file} i={i} is not a message: {other:?}"),
    }
}

fn msg(file: &str, i: u32) -> Message {
    let (srvid, data) = message(file, i);
    Message {
        srvid,
        srcnode: 0,
        data,
    }
}

/// Every message to one of our srvids in every capture: (label, srvid, data).
fn all_ours() -> Vec<(String, u64, Bytes)> {
    let mut out = Vec::new();
    for file in [
        "client.jsonl",
        "nodes.jsonl",
        "nodes-lifecycle.jsonl",
        "nodes-election.jsonl",
    ] {
        for line in lines(file) {
            if field(&line, "operation") != Some("5") {
                continue;
            }
            let Some(hex) = field(&line, "hex") else {
                continue;
            };
            let Ok(packet) = Packet::from_slice(&unhex(hex)) else {
                panic!("{file} i={:?} does not decode", field(&line, "i"));
            };
            if let Body::ReqMessage(m) = packet.body {
                if SRVIDS.contains(&m.srvid) {
                    let label = format!("{file} i={}", field(&line, "i").unwrap_or("?"));
                    out.push((label, m.srvid, m.data));
                }
            }
        }
    }
    out
}

// ---- a recording messenger ----

#[derive(Default)]
struct Sent(Mutex<Vec<(u32, u64, Vec<u8>)>>);

impl Messenger for Sent {
    fn message(&self, pnn: u32, srvid: u64, data: Bytes) -> Result<(), String> {
        self.0
            .lock()
            .expect("lock")
            .push((pnn, srvid, data.to_vec()));
        Ok(())
    }
}

impl Sent {
    fn take(&self) -> Vec<(u32, u64, Vec<u8>)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

fn int(data: &[u8]) -> i32 {
    i32::from_le_bytes(data.try_into().expect("an int32"))
}

const TOOL_1: u64 = 0xce01_0000_1a0a_0001;

// ---- payload layouts, pinned by the captures ----

#[test]
fn every_captured_message_to_our_srvids_decodes() {
    let all = all_ours();
    // Samba's daemon sends RELOAD_NODES to its own recovery daemon, and its tool sends
    // DISABLE_RECOVERIES only around a reloadnodes that changes something: neither was
    // captured.
    let uncaptured = [srvid::RELOAD_NODES, samba::DISABLE_RECOVERIES];
    for id in SRVIDS.iter().filter(|id| !uncaptured.contains(id)) {
        assert!(
            all.iter().any(|(_, s, _)| s == id),
            "no capture of {}",
            name(*id)
        );
    }
    for (label, id, data) in all {
        let ok = match id {
            srvid::TAKEOVER_RUN | srvid::MEM_DUMP => SrvidMessage::decode(&data).map(|_| ()),
            samba::DISABLE_TAKEOVER_RUNS | samba::DISABLE_RECOVERIES => {
                assert_eq!(data.len(), DisableMessage::LEN, "{label}");
                DisableMessage::decode(&data).map(|_| ())
            }
            _ => decode_u32(&data, "u32").map(|_| ()),
        };
        assert!(ok.is_ok(), "{label}: {ok:?}");
    }
}

#[test]
fn takeover_run_request_as_the_tool_sends_it() {
    // `ctdb ipreallocate` on node 0: pnn 0, answer to the tool's first srvid.
    let (id, data) = message("client.jsonl", 1334);
    assert_eq!(id, srvid::TAKEOVER_RUN);
    let m = SrvidMessage::decode(&data).expect("decode");
    assert_eq!(
        m,
        SrvidMessage {
            pnn: 0,
            srvid: 0xce01_0000_1a0d_0001
        }
    );
    assert_eq!(m.to_bytes(), data.to_vec());
    // Node 2's daemon asking the others: pnn 2.
    let (_, data) = message("nodes.jsonl", 709);
    assert_eq!(SrvidMessage::decode(&data).expect("decode").pnn, 2);
}

#[test]
fn disable_takeover_runs_as_the_tool_sends_it() {
    // `ctdb reloadips`: disable for 20 s, then enable (timeout 0), each answered.
    let (_, data) = message("client.jsonl", 1301);
    let m = DisableMessage::decode(&data).expect("decode");
    assert_eq!(
        m,
        DisableMessage {
            pnn: 0,
            srvid: TOOL_1,
            timeout: 20
        }
    );
    assert_eq!(m.to_bytes(), data.to_vec());
    let (_, data) = message("client.jsonl", 1313);
    assert_eq!(DisableMessage::decode(&data).expect("decode").timeout, 0);
}

#[test]
fn answers_are_int32_like_samba_s() {
    // Node 1 (the leader) answering the takeover run, and node 2 a disable.
    let (id, data) = message("client.jsonl", 1325);
    assert_eq!(id, 0xce01_0000_1a0a_0003);
    assert_eq!(int_reply(1), data);
    assert_eq!(int_reply(2), message("client.jsonl", 1306).1);
}

#[test]
fn small_payloads_as_the_tool_sends_them() {
    // `ctdb addip`: rebalance node 0; `ctdb moveip`: no IP checks for 20 s.
    let (id, data) = message("client.jsonl", 1567);
    assert_eq!(id, samba::REBALANCE_NODE);
    assert_eq!(decode_u32(&data, "pnn"), Ok(0));
    let (id, data) = message("client.jsonl", 1642);
    assert_eq!(id, srvid::DISABLE_IP_CHECK);
    assert_eq!(decode_u32(&data, "timeout"), Ok(20));
    // `ctdb rddumpmemory`.
    let (id, data) = message("client.jsonl", 1057);
    assert_eq!(id, srvid::MEM_DUMP);
    assert_eq!(
        SrvidMessage::decode(&data),
        Ok(SrvidMessage {
            pnn: 0,
            srvid: 0xce01_0000_19b5_0001
        })
    );
}

// ---- the handlers ----

fn cx<'a>(out: &'a Sent, pnn: u32, now: Instant) -> Ctx<'a, Sent> {
    Ctx { pnn, now, out }
}

#[test]
fn a_non_leader_ignores_a_takeover_run() {
    let sent = Sent::default();
    let mut req = Requests::default();
    let after = handle(
        &mut req,
        &cx(&sent, 0, Instant::now()),
        &msg("client.jsonl", 1334),
    );
    assert_eq!(after, After::Nothing);
    assert!(req.takeover_waiting.is_empty());
    assert!(sent.take().is_empty());
    assert_eq!(req.start_takeover(Instant::now(), false), Takeover::Idle);
}

#[test]
fn the_leader_queues_a_takeover_run_once_and_wakes_the_loop() {
    let sent = Sent::default();
    let mut req = Requests {
        leading: true,
        ..Default::default()
    };
    let now = Instant::now();
    let m = msg("client.jsonl", 1334);
    assert_eq!(handle(&mut req, &cx(&sent, 1, now), &m), After::Wake);
    assert_eq!(handle(&mut req, &cx(&sent, 1, now), &m), After::Wake);
    assert_eq!(req.takeover_waiting.len(), 1);
    // Answered by the loop after the run, not here.
    assert!(sent.take().is_empty());
    let Takeover::Run { waiting, .. } = req.start_takeover(now, false) else {
        panic!("a run is due");
    };
    assert_eq!(waiting[0].srvid, 0xce01_0000_1a0d_0001);
    assert!(req.takeover_runs.running());
    // Losing the lead forgets what was asked of the leader.
    req.takeover_runs.end();
    handle(&mut req, &cx(&sent, 1, now), &m);
    req.not_leading();
    assert_eq!(req.start_takeover(now, false), Takeover::Idle);
}

#[test]
fn disabled_takeover_runs_wait_until_enabled_again() {
    let sent = Sent::default();
    let mut req = Requests {
        leading: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    // The tool disables takeover runs on node 1 for 20 s: node 1 answers its pnn.
    let after = handle(&mut req, &cx(&sent, 1, t0), &msg("client.jsonl", 1301));
    assert_eq!(after, After::Nothing);
    let answers = sent.take();
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].0, answers[0].1), (0, TOOL_1));
    assert_eq!(int(&answers[0].2), 1);
    // A takeover run asked for now waits, also when the loop needs one.
    handle(&mut req, &cx(&sent, 1, t0), &msg("client.jsonl", 1334));
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(
        req.start_takeover(t1, true),
        Takeover::Deferred(Duration::from_secs(15))
    );
    assert_eq!(req.takeover_waiting.len(), 1);
    // Enabled again (timeout 0): answered, the loop is woken, and the run may start.
    let after = handle(&mut req, &cx(&sent, 1, t1), &msg("client.jsonl", 1313));
    assert_eq!(after, After::Wake);
    assert_eq!(int(&sent.take()[0].2), 1);
    assert!(
        matches!(req.start_takeover(t1, false), Takeover::Run { waiting, .. } if waiting.len() == 1)
    );
}

#[test]
fn a_disable_runs_out_by_itself() {
    let mut s = Switch::default();
    let t0 = Instant::now();
    s.disable(t0, 20).expect("disable");
    assert_eq!(
        s.disabled_for(t0 + Duration::from_secs(19)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(s.disabled_for(t0 + Duration::from_secs(20)), None);
    assert_eq!(s.begin(t0 + Duration::from_secs(21)), Ok(()));
    // While one runs, disabling is refused, enabling is not.
    assert_eq!(s.disable(t0, 20), Err(Errno::EAGAIN));
    assert_eq!(s.disable(t0, 0), Ok(()));
    s.end();
    assert_eq!(s.disable(t0, 20), Ok(()));
    assert_eq!(s.begin(t0), Err(Duration::from_secs(20)));
}

fn disable_recoveries_message(pnn: u32, srvid: u64, timeout: u32) -> Message {
    Message {
        srvid: samba::DISABLE_RECOVERIES,
        srcnode: pnn,
        data: Bytes::from(
            DisableMessage {
                pnn,
                srvid,
                timeout,
            }
            .to_bytes(),
        ),
    }
}

#[test]
fn recoveries_are_disabled_and_a_running_one_refuses_with_eagain() {
    let sent = Sent::default();
    let mut req = Requests::default();
    let t0 = Instant::now();
    // Any node obeys, leader or not; srvid 0 wants no answer.
    handle(
        &mut req,
        &cx(&sent, 2, t0),
        &disable_recoveries_message(0, 0, 120),
    );
    assert!(sent.take().is_empty());
    assert!(req.recoveries.begin(t0).is_err());
    assert!(req.recoveries.begin(t0 + Duration::from_secs(120)).is_ok());
    // Now one runs: a disable is refused with -EAGAIN.
    handle(
        &mut req,
        &cx(&sent, 2, t0),
        &disable_recoveries_message(0, TOOL_1, 120),
    );
    let answers = sent.take();
    assert_eq!(int(&answers[0].2), -11);
    req.recoveries.end();
    handle(
        &mut req,
        &cx(&sent, 2, t0),
        &disable_recoveries_message(0, TOOL_1, 120),
    );
    assert_eq!(int(&sent.take()[0].2), 2);
}

#[test]
fn rebalance_is_kept_for_the_leader_s_next_run() {
    let sent = Sent::default();
    let now = Instant::now();
    let mut req = Requests::default();
    handle(&mut req, &cx(&sent, 1, now), &msg("client.jsonl", 1567));
    assert!(req.rebalance.is_empty());
    req.leading = true;
    handle(&mut req, &cx(&sent, 1, now), &msg("client.jsonl", 1567));
    // It does not start a run by itself, but the next one gets it.
    assert_eq!(req.start_takeover(now, false), Takeover::Idle);
    assert!(
        matches!(req.start_takeover(now, true), Takeover::Run { rebalance, .. } if rebalance == [0])
    );
    assert!(sent.take().is_empty());
}

#[test]
fn ip_checks_are_disabled_for_the_time_asked() {
    let sent = Sent::default();
    let now = Instant::now();
    let mut req = Requests::default();
    handle(&mut req, &cx(&sent, 1, now), &msg("client.jsonl", 1642));
    assert_eq!(
        req.ip_checks.disabled_for(now),
        Some(Duration::from_secs(20))
    );
    assert!(sent.take().is_empty());
}

#[test]
fn reload_nodes_wakes_the_loop() {
    let sent = Sent::default();
    let m = Message {
        srvid: srvid::RELOAD_NODES,
        srcnode: 0,
        data: Bytes::new(),
    };
    let after = handle(&mut Requests::default(), &cx(&sent, 0, Instant::now()), &m);
    assert_eq!(after, After::Wake);
}

#[test]
fn mem_dump_answers_a_text_report() {
    let sent = Sent::default();
    handle(
        &mut Requests::default(),
        &cx(&sent, 0, Instant::now()),
        &msg("client.jsonl", 1057),
    );
    let answers = sent.take();
    assert_eq!(answers.len(), 1);
    let (pnn, id, text) = &answers[0];
    assert_eq!((*pnn, *id), (0, 0xce01_0000_19b5_0001));
    let text = String::from_utf8(text.clone()).expect("text");
    assert!(text.starts_with("memory of ctdb-recoverd (pid "), "{text}");
    assert!(text.contains("VmRSS:"), "{text}");
    // Samba's report (client.jsonl i=1058) ends with a newline and carries no NUL.
    assert!(text.ends_with('\n') && !text.contains('\0'));
    // srvid 0: logged, not sent.
    let quiet = Message {
        srvid: srvid::MEM_DUMP,
        srcnode: 0,
        data: Bytes::from(SrvidMessage { pnn: 0, srvid: 0 }.to_bytes()),
    };
    handle(
        &mut Requests::default(),
        &cx(&sent, 0, Instant::now()),
        &quiet,
    );
    assert!(sent.take().is_empty());
}

#[test]
fn memory_report_picks_the_memory_lines() {
    let status =
        "Name:\tctdb-recoverd\nVmPeak:\t  20000 kB\nVmRSS:\t   5000 kB\nThreads:\t2\nSigQ:\t0/1\n";
    let report = memory_report(3, 42, Ok(status));
    assert_eq!(
        report,
        "memory of ctdb-recoverd (pid 42) on node 3\n    VmPeak:         20000 kB\n    VmRSS:           5000 kB\n    Threads:               2\n"
    );
    let e = std::io::Error::from(std::io::ErrorKind::NotFound);
    assert!(memory_report(3, 42, Err(&e)).contains("unreadable"));
}

#[test]
fn short_payloads_are_dropped_without_an_answer() {
    let sent = Sent::default();
    let now = Instant::now();
    for id in SRVIDS {
        let full = match id {
            samba::DISABLE_TAKEOVER_RUNS | samba::DISABLE_RECOVERIES => 24,
            srvid::TAKEOVER_RUN | srvid::MEM_DUMP => 16,
            _ => 4,
        };
        for len in 0..full {
            let mut req = Requests {
                leading: true,
                ..Default::default()
            };
            let m = Message {
                srvid: id,
                srcnode: 0,
                data: Bytes::from(vec![0x01; len]),
            };
            handle(&mut req, &cx(&sent, 0, now), &m);
            if id == srvid::RELOAD_NODES {
                continue;
            }
            // The C struct's tail padding may be missing; anything shorter is refused.
            let refused = !(full == 24 && len >= 20);
            if refused {
                assert!(sent.take().is_empty(), "{} with {len} bytes", name(id));
                assert!(req.takeover_waiting.is_empty() && req.rebalance.is_empty());
                assert!(req.takeover_runs.disabled_for(now).is_none());
                assert!(req.recoveries.disabled_for(now).is_none());
                assert!(req.ip_checks.disabled_for(now).is_none());
            } else {
                sent.take();
            }
        }
    }
}
