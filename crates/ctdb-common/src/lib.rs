//! Pieces shared by every ctdb-rs component: configuration (Samba's `ctdb.conf`, the
//! `nodes` and `public_addresses` files, `CTDB_*` environment variables), Samba's
//! tunables, and logging set-up.
#![forbid(unsafe_code)]

pub mod config;
pub mod logging;
pub mod nodes;
pub mod secure;
pub mod tickle_ack;
pub mod tunables;

pub use config::{Config, ConfigError};
