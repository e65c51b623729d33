//! Every packet Samba 4.17 put on the wire (shared/vectors/samba-4.17) decodes to the
//! operation and fields the capture recorded and re-encodes to the identical bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use ctdb_protocol::{Body, DecodeError, Opcode, Operation, Packet};
use serde_json::Value;

mod common;
use common::load_all;

/// A field recorded either as a JSON number or as a "0x…" string.
fn num(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| n.as_i64().expect("integer") as u64),
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex"),
        other => panic!("not a number: {other}"),
    }
}

fn field(r: &Value, name: &str) -> u64 {
    num(&r["fields"][name])
}

fn key_hex(r: &Value) -> Vec<u8> {
    hex::decode(r["fields"]["key_hex"].as_str().expect("key_hex")).expect("hex key")
}

#[test]
fn every_vector_round_trips_byte_for_byte() {
    let records = load_all();
    assert!(records.len() > 6000, "only {} vectors", records.len());
    let mut per_op: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut tunnels = 0;

    for (at, r) in &records {
        let bytes = hex::decode(r["hex"].as_str().expect("hex")).expect("valid hex");
        assert_eq!(bytes.len() as u64, num(&r["length"]), "{at}: length");
        let decoded = Packet::decode(&Bytes::from(bytes.clone()));
        if num(&r["operation"]) == 10 {
            // Samba's REQ_TUNNEL is recognised and refused.
            assert_eq!(decoded, Err(DecodeError::TunnelUnsupported), "{at}");
            tunnels += 1;
            continue;
        }
        let p = decoded.unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(
            p.operation() as u64,
            num(&r["operation"]),
            "{at}: operation"
        );
        assert_eq!(p.operation().name(), r["operation_name"], "{at}");
        assert_eq!(u64::from(p.reqid), num(&r["reqid"]), "{at}: reqid");
        assert_eq!(u64::from(p.generation), num(&r["generation"]), "{at}");
        assert_eq!(u64::from(p.destnode), num(&r["destnode"]), "{at}");
        assert_eq!(u64::from(p.srcnode), num(&r["srcnode"]), "{at}");
        assert_eq!(
            p.body.body_len() as u64,
            num(&r["body_len"]),
            "{at}: body_len"
        );
        check_fields(at, r, &p);
        assert_eq!(p.to_bytes(), bytes, "{at}: re-encoding differs");
        *per_op.entry(p.operation().name()).or_default() += 1;
    }
    // All ten operations are in the captures.
    assert_eq!(per_op.len(), 9, "{per_op:?}");
    assert!(tunnels > 0);
}

fn check_fields(at: &str, r: &Value, p: &Packet) {
    match &p.body {
        Body::ReqCall(c) => {
            assert_eq!(u64::from(c.flags), field(r, "flags"), "{at}");
            assert_eq!(u64::from(c.db_id), field(r, "db_id"), "{at}");
            assert_eq!(u64::from(c.callid), field(r, "callid"), "{at}");
            assert_eq!(u64::from(c.hopcount), field(r, "hopcount"), "{at}");
            assert_eq!(c.calldata.len() as u64, field(r, "calldatalen"), "{at}");
            assert_eq!(&c.key[..], &key_hex(r)[..], "{at}");
        }
        Body::ReplyCall(c) => {
            assert_eq!(
                u64::from(c.status),
                field(r, "status") & 0xffff_ffff,
                "{at}"
            );
            assert_eq!(c.data.len() as u64, field(r, "datalen"), "{at}");
        }
        Body::ReqDmaster(d) => {
            assert_eq!(u64::from(d.db_id), field(r, "db_id"), "{at}");
            assert_eq!(d.rsn, field(r, "rsn"), "{at}");
            assert_eq!(u64::from(d.dmaster), field(r, "dmaster"), "{at}");
            assert_eq!(&d.key[..], &key_hex(r)[..], "{at}");
            assert_eq!(d.data.len() as u64, field(r, "datalen"), "{at}");
            assert_eq!(
                d.rec_flags.map(u64::from),
                Some(field(r, "rec_flags_trailer"))
            );
        }
        Body::ReplyDmaster(d) => {
            assert_eq!(u64::from(d.db_id), field(r, "db_id"), "{at}");
            assert_eq!(d.rsn, field(r, "rsn"), "{at}");
            assert_eq!(&d.key[..], &key_hex(r)[..], "{at}");
            assert_eq!(d.data.len() as u64, field(r, "datalen"), "{at}");
            assert_eq!(
                d.rec_flags.map(u64::from),
                Some(field(r, "rec_flags_trailer"))
            );
        }
        Body::ReplyError(e) => {
            assert_eq!(
                u64::from(e.status),
                field(r, "status") & 0xffff_ffff,
                "{at}"
            );
            assert_eq!(e.msg.len() as u64, field(r, "msglen"), "{at}");
            assert_eq!(
                e.message(),
                r["fields"]["msg"].as_str().expect("msg"),
                "{at}"
            );
        }
        Body::ReqMessage(m) => {
            assert_eq!(m.srvid, field(r, "srvid"), "{at}");
            assert_eq!(m.data.len() as u64, field(r, "datalen"), "{at}");
        }
        Body::ReqControl(c) => {
            assert_eq!(u64::from(c.opcode.as_u32()), num(&r["opcode"]), "{at}");
            if let Opcode::Unknown(n) = c.opcode {
                assert_eq!(r["opcode_name"], "UNKNOWN", "{at}: opcode {n}");
            } else {
                assert_eq!(c.opcode.name(), r["opcode_name"], "{at}");
            }
            assert_eq!(c.srvid, field(r, "srvid"), "{at}");
            assert_eq!(u64::from(c.client_id), field(r, "client_id"), "{at}");
            assert_eq!(u64::from(c.flags), field(r, "flags"), "{at}");
            assert_eq!(c.data.len() as u64, field(r, "datalen"), "{at}");
        }
        Body::ReplyControl(c) => {
            assert_eq!(
                c.status as i64,
                r["fields"]["status"].as_i64().expect("status")
            );
            assert_eq!(c.data.len() as u64, field(r, "datalen"), "{at}");
            assert_eq!(c.errmsg.len() as u64, field(r, "errorlen"), "{at}");
        }
        Body::Keepalive(k) => {
            let info = k
                .samba
                .expect("Samba 4.17 keepalives carry version and uptime");
            assert_eq!(u64::from(info.version), field(r, "version"), "{at}");
            assert_eq!(u64::from(info.uptime), field(r, "uptime"), "{at}");
        }
    }
}

/// Where Samba appends to the seed's layout, our encoder sends the seed's form.
#[test]
fn seed_forms_are_what_we_send() {
    let records = load_all();
    let find = |op: u64| {
        records
            .iter()
            .find(|(_, r)| num(&r["operation"]) == op)
            .map(|(_, r)| hex::decode(r["hex"].as_str().expect("hex")).expect("hex"))
            .expect("vector of this operation")
    };
    // Keepalive: Samba's is 40 bytes; the seed's bare header is 32.
    let mut keepalive = Packet::from_slice(&find(9)).expect("keepalive");
    assert_eq!(keepalive.to_bytes().len(), 40);
    keepalive.body = Body::Keepalive(Default::default());
    assert_eq!(keepalive.to_bytes().len(), 32);
    // REQ_DMASTER without Samba's trailing flags word ends after key and data.
    let samba = find(2);
    let mut dmaster = Packet::from_slice(&samba).expect("dmaster");
    if let Body::ReqDmaster(d) = &mut dmaster.body {
        d.rec_flags = None;
    }
    let seed = dmaster.to_bytes();
    assert_eq!(seed.len() % 8, 0);
    assert!(seed.len() <= samba.len());
    assert_eq!(&seed[8..seed.len().min(60)], &samba[8..seed.len().min(60)]);
}

#[test]
fn operation_names_match_the_captures() {
    for (at, r) in load_all() {
        let op = Operation::from_u32(num(&r["operation"]) as u32).expect("known operation");
        assert_eq!(op.name(), r["operation_name"], "{at}");
    }
}
