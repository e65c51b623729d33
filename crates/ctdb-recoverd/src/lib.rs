//! ctdb-recoverd: the cluster's brain on one node.
//!
//! It answers the controls it owns (leader, roles, recovery lock, interfaces and public
//! IPs) through the packet stream, and runs the monitoring loop as an ordinary CTDB
//! client of its own node, like Samba's recovery daemon: it announces the leader,
//! checks recovery mode and vnn map, and recovers when they are not consistent.

#![forbid(unsafe_code)]

mod controls;
pub mod recovery;

pub use controls::Recoverd;
