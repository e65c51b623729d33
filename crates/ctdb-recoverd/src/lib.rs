//! ctdb-recoverd: the cluster's brain on one node.
//!
//! It answers the controls it owns (leader, roles, recovery lock, interfaces and public
//! IPs) through the packet stream, and runs its loop as an ordinary CTDB client of its
//! own node, like Samba's recovery daemon:
//! - `election`: who may lead and who leads without a lock; `reclock`: the recovery lock;
//! - `monitor`: the leader's check of every node; `recovery`: the recovery itself;
//! - `banning`: nodes that keep causing recoveries; `events`: recovery events per node;
//! - `takeover`: the leader's takeover runs; `messages`: the srvids Samba's tool and
//!   other daemons send it (takeover run, disable takeover runs/recoveries, ...);
//! - `daemon`: the loop that ties them together; `nodes`: how it reaches the nodes.

#![forbid(unsafe_code)]

pub mod banning;
mod controls;
pub mod daemon;
pub mod election;
pub mod events;
pub mod gratuitous_arp;
pub mod ipalloc;
pub mod ips;
pub mod lease;
pub mod messages;
pub mod monitor;
pub mod nodes;
pub mod reclock;
pub mod recovery;
pub mod takeover;
pub mod tickles;
#[cfg(test)]
mod vectors;

pub use controls::{owned_controls, Recoverd};
