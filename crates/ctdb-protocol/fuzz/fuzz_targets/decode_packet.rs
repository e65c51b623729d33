//! Feeds arbitrary bytes to every decoder a socket reaches: the packet decoder, the
//! stream codec, and the typed control payloads of whatever control it finds.
#![no_main]

use bytes::{Bytes, BytesMut};
use ctdb_protocol::{Body, FrameCodec, Packet};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::decode(&Bytes::copy_from_slice(data)) {
        // Whatever decodes must re-encode to a packet that decodes again.
        let again = Packet::from_slice(&packet.to_bytes()).expect("re-encoded packet decodes");
        assert_eq!(again.operation(), packet.operation());
        if let Body::ReqControl(c) = &packet.body {
            let _ = ctdb_protocol::control::decode_request(c.opcode, &c.data);
            let _ = ctdb_protocol::control::decode_reply(c.opcode, &c.data);
        }
    }
    let mut codec = FrameCodec::new(1 << 20);
    let mut src = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut src) {
        let _ = frame.packet();
    }
});
