//! `ping`: PING controls to the local daemon, N clients with one in flight each.

use std::path::Path;
use std::time::Duration;

use ctdb_client::Client;
use ctdb_protocol::flags::dest;

use super::{closed_loop, connect_many, Limit, Op, Result};
use crate::stats::Report;

struct Ping(Client);

impl Op for Ping {
    async fn once(&mut self) -> Result<u64> {
        self.0.ping(dest::CURRENT_NODE).await?;
        Ok(0)
    }
}

pub async fn run(socket: &Path, clients: usize, duration: Duration) -> Result<Report> {
    let conns = connect_many(socket, clients).await?;
    closed_loop(conns.into_iter().map(Ping).collect(), Limit::Time(duration)).await
}
