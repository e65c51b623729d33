//! `memory`: the node's resident memory before and after millions of fetches of
//! records that were never written (Samba's ctdbd queues each such record for deletion
//! and its heap grows; ours must stay flat).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::flags::dest;

use super::fetch::fetch_call;
use super::{closed_loop, connect_many, run_id, Limit, Op, Result};
use crate::procs::{self, Memory};
use crate::stats::Report;

const DB: &str = "ctdb_bench_empty.tdb";

/// What the check measured.
#[derive(Debug, Clone)]
pub struct MemoryCheck {
    pub pids: Vec<u32>,
    pub before: Memory,
    pub after: Memory,
    /// After `settle` more without load.
    pub settled: Memory,
    pub settle: Duration,
    pub fetches: Report,
}

/// Keys of this run that the node is lmaster of, so that every fetch stays on the node.
struct Keys {
    run: u64,
    vnn_map: Vec<u32>,
    me: u32,
}

impl Keys {
    fn local(&self, n: u64) -> Option<Bytes> {
        let key = format!("empty-{:016x}-{n}", self.run);
        let map = &self.vnn_map;
        let lmaster = (!map.is_empty())
            .then(|| map[(ctdb_db::hash::ctdb_hash(key.as_bytes()) as usize) % map.len()]);
        (lmaster.is_none() || lmaster == Some(self.me)).then(|| Bytes::from(key))
    }
}

struct EmptyFetch {
    client: Client,
    db_id: u32,
    keys: Arc<Keys>,
    /// This client's next candidate key number; clients step over each other's.
    next: u64,
    step: u64,
}

impl Op for EmptyFetch {
    async fn once(&mut self) -> Result<u64> {
        let key = loop {
            let n = self.next;
            self.next += self.step;
            if let Some(k) = self.keys.local(n) {
                break k;
            }
        };
        self.client.call(fetch_call(self.db_id, key, 0)).await?;
        Ok(0)
    }
}

/// Fetches `fetches` never-written records through `clients` connections to `socket`
/// and measures the node's processes' memory before, right after, and `settle` later.
pub async fn run(
    socket: &Path,
    clients: usize,
    fetches: u64,
    settle: Duration,
) -> Result<MemoryCheck> {
    let conns = connect_many(socket, clients).await?;
    let here = dest::CURRENT_NODE;
    let pids = procs::node_processes(conns[0].get_pid(here).await?);
    let db_id = conns[0].attach(here, DB, false).await?;
    let keys = Arc::new(Keys {
        run: run_id(),
        vnn_map: conns[0].get_vnnmap(here).await?.map,
        me: conns[0].pnn(),
    });
    let step = conns.len() as u64;
    let ops = conns
        .into_iter()
        .enumerate()
        .map(|(i, client)| EmptyFetch {
            client,
            db_id,
            keys: keys.clone(),
            next: i as u64,
            step,
        })
        .collect();
    let before = procs::memory(&pids);
    let fetches = closed_loop(ops, Limit::Ops(fetches)).await?;
    let after = procs::memory(&pids);
    tokio::time::sleep(settle).await;
    let settled = procs::memory(&pids);
    Ok(MemoryCheck {
        pids,
        before,
        after,
        settled,
        settle,
        fetches,
    })
}
