//! The CTDB wire protocol, byte-compatible with Samba's `ctdbd`.
//!
//! Pure data: no I/O, no async (the [`codec`] module only implements
//! `tokio_util`'s traits). The seed header `ctdb_protocol.h` is the authority for
//! every layout it defines; Samba 4.17's layouts fill in what it leaves out.

#![forbid(unsafe_code)]

pub mod codec;
pub mod control;
pub mod error;
pub mod event;
pub mod event_daemon;
pub mod flags;
pub mod ltdb;
pub mod opcode;
pub mod packet;
pub mod srvid;
pub mod wire;

pub use codec::{CodecError, Frame, FrameCodec, PacketCodec, DEFAULT_MAX_PACKET_LEN};
pub use error::DecodeError;
pub use ltdb::LtdbHeader;
pub use opcode::Opcode;
pub use packet::{
    Body, Header, Keepalive, KeepaliveInfo, Operation, Packet, ReplyCall, ReplyControl,
    ReplyDmaster, ReplyError, ReqCall, ReqControl, ReqDmaster, ReqMessage,
};
pub use wire::{Reader, Wire};
