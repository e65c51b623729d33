//! Code generated from `proto/`, and the Unix-socket plumbing every component uses to
//! serve and reach the others.

#![forbid(unsafe_code)]

pub mod v1 {
    tonic::include_proto!("ctdb.v1");
}

pub mod component;
pub mod faults;
pub mod packets;
pub mod queue;
pub mod quiet_unix;
pub mod trace;
pub mod uds;

pub use v1::*;
