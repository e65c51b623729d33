//! Property tests of the packet layer: round trips, lengths, and hostile input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use ctdb_protocol::packet::{wire_length, Keepalive, KeepaliveInfo};
use ctdb_protocol::{
    Body, DecodeError, FrameCodec, Opcode, Packet, PacketCodec, ReplyCall, ReplyControl,
    ReplyDmaster, ReplyError, ReqCall, ReqControl, ReqDmaster, ReqMessage,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// Counts the bytes this thread allocates, to bound what decoding may allocate.
struct CountingAlloc;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

fn data() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            data(),
            data()
        )
            .prop_map(
                |(flags, db_id, callid, hopcount, key, calldata)| Body::ReqCall(ReqCall {
                    flags,
                    db_id,
                    callid,
                    hopcount,
                    key,
                    calldata
                })
            ),
        (any::<u32>(), data())
            .prop_map(|(status, data)| Body::ReplyCall(ReplyCall { status, data })),
        (any::<u32>(), data())
            .prop_map(|(status, msg)| Body::ReplyError(ReplyError { status, msg })),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            data(),
            data(),
            any::<Option<u32>>()
        )
            .prop_map(
                |(db_id, rsn, dmaster, key, data, rec_flags)| Body::ReqDmaster(ReqDmaster {
                    db_id,
                    rsn,
                    dmaster,
                    key,
                    data,
                    rec_flags
                })
            ),
        (
            any::<u32>(),
            any::<u64>(),
            data(),
            data(),
            any::<Option<u32>>()
        )
            .prop_map(|(db_id, rsn, key, data, rec_flags)| Body::ReplyDmaster(
                ReplyDmaster {
                    db_id,
                    rsn,
                    key,
                    data,
                    rec_flags
                }
            )),
        (any::<u64>(), data())
            .prop_map(|(srvid, data)| Body::ReqMessage(ReqMessage { srvid, data })),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            data()
        )
            .prop_map(|(opcode, srvid, client_id, flags, data)| Body::ReqControl(
                ReqControl {
                    opcode: Opcode::from_u32(opcode % 200),
                    srvid,
                    client_id,
                    flags,
                    data
                }
            )),
        (any::<i32>(), data(), data()).prop_map(|(status, data, errmsg)| {
            Body::ReplyControl(ReplyControl {
                status,
                data,
                errmsg,
            })
        }),
        any::<Option<(u32, u32)>>().prop_map(|info| Body::Keepalive(Keepalive {
            samba: info.map(|(version, uptime)| KeepaliveInfo { version, uptime })
        })),
    ]
}

prop_compose! {
    fn packet()(generation in any::<u32>(), destnode in any::<u32>(), srcnode in any::<u32>(),
                reqid in any::<u32>(), body in body()) -> Packet {
        Packet { generation, destnode, srcnode, reqid, body }
    }
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(p in packet()) {
        let bytes = p.to_bytes();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(bytes.len(), wire_length(p.operation(), p.body.body_len()));
        let back = Packet::from_slice(&bytes).expect("decodes");
        match (&p.body, &back.body) {
            // A dmaster without flags whose padding holds four zero bytes reads back
            // with flags 0: the same bytes on the wire.
            (Body::ReqDmaster(a), Body::ReqDmaster(b)) if a.rec_flags.is_none() => {
                prop_assert_eq!(b.rec_flags.unwrap_or(0), 0);
                prop_assert_eq!(back.to_bytes(), bytes);
            }
            (Body::ReplyDmaster(a), Body::ReplyDmaster(b)) if a.rec_flags.is_none() => {
                prop_assert_eq!(b.rec_flags.unwrap_or(0), 0);
                prop_assert_eq!(back.to_bytes(), bytes);
            }
            _ => prop_assert_eq!(back, p),
        }
    }

    #[test]
    fn a_stream_of_packets_splits_back(ps in prop::collection::vec(packet(), 1..8), cut in 1usize..97) {
        let mut codec = PacketCodec::default();
        let mut wire = BytesMut::new();
        for p in &ps {
            codec.encode(p, &mut wire).expect("encode");
        }
        let expected: Vec<Vec<u8>> = ps.iter().map(Packet::to_bytes).collect();
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        for chunk in wire.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(p) = codec.decode(&mut buf).expect("decode") {
                got.push(p.to_bytes());
            }
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_over_allocate(raw in prop::collection::vec(any::<u8>(), 0..512)) {
        let buf = Bytes::from(raw.clone());
        let (_, allocated) = allocated_by(|| Packet::decode(&buf));
        // Decoding slices the input: it allocates nothing in proportion to claimed lengths.
        prop_assert!(allocated <= raw.len() + 64, "allocated {} for {} bytes", allocated, raw.len());
        let mut codec = FrameCodec::new(4096);
        let mut src = BytesMut::from(&raw[..]);
        let (_, allocated) = allocated_by(|| {
            while let Ok(Some(frame)) = codec.decode(&mut src) {
                let _ = frame.packet();
            }
        });
        prop_assert!(allocated <= raw.len() + 64 * 1024 + 64);
        // Typed control payloads: a forged count never reserves more than the input
        // could hold (in-memory items are at most a few times their wire size).
        for opcode in [0u32, 5, 9, 13, 50, 53, 55, 90, 91, 96, 119, 123, 124, 127, 132, 146] {
            let opcode = ctdb_protocol::Opcode::from_u32(opcode);
            let (_, allocated) = allocated_by(|| {
                let _ = ctdb_protocol::control::decode_request(opcode, &raw);
                let _ = ctdb_protocol::control::decode_reply(opcode, &raw);
            });
            prop_assert!(allocated <= 8 * raw.len() + 1024, "{} allocated {} for {} bytes", opcode, allocated, raw.len());
        }
    }

    #[test]
    fn headers_with_forged_lengths_are_refused(mut raw in prop::collection::vec(any::<u8>(), 32..128), length in any::<u32>()) {
        raw[..4].copy_from_slice(&length.to_le_bytes());
        raw[4..8].copy_from_slice(&0x4354_4442u32.to_le_bytes());
        raw[8..12].copy_from_slice(&1u32.to_le_bytes());
        let result = Packet::decode_bounded(&Bytes::from(raw.clone()), 1 << 20);
        if length < 32 {
            let too_small = matches!(result, Err(DecodeError::LengthTooSmall { .. }));
            prop_assert!(too_small);
        } else if length > 1 << 20 {
            let too_large = matches!(result, Err(DecodeError::LengthTooLarge { .. }));
            prop_assert!(too_large);
        } else if length as usize > raw.len() {
            let truncated = matches!(result, Err(DecodeError::Truncated { .. }));
            prop_assert!(truncated);
        }
    }
}
