//! `fetch`: local fetches, N clients with one in flight each, each fetching its own
//! record (REQ_CALL FETCH_FUNC) that this node is dmaster of.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::ReqCall;

use super::{closed_loop, connect_many, Limit, Op, Result};
use crate::stats::Report;

const DB: &str = "ctdb_bench.tdb";

pub fn fetch_call(db_id: u32, key: Bytes, flags: u32) -> ReqCall {
    ReqCall {
        flags,
        db_id,
        callid: call::FETCH_FUNC,
        hopcount: 0,
        key,
        calldata: Bytes::new(),
    }
}

struct Fetch {
    client: Client,
    db_id: u32,
    key: Bytes,
}

impl Op for Fetch {
    async fn once(&mut self) -> Result<u64> {
        self.client
            .call(fetch_call(self.db_id, self.key.clone(), 0))
            .await?;
        Ok(0)
    }
}

pub async fn run(socket: &Path, clients: usize, duration: Duration) -> Result<Report> {
    let conns = connect_many(socket, clients).await?;
    let db_id = conns[0].attach(dest::CURRENT_NODE, DB, false).await?;
    let mut ops = Vec::with_capacity(conns.len());
    for (i, client) in conns.into_iter().enumerate() {
        let key = Bytes::from(format!("bench-key-{i}"));
        // Bring the record here before timing starts: in a cluster its lmaster may be
        // another node, and only a migrating call moves it.
        client
            .call(fetch_call(db_id, key.clone(), call::IMMEDIATE_MIGRATION))
            .await?;
        ops.push(Fetch { client, db_id, key });
    }
    closed_loop(ops, Limit::Time(duration)).await
}
