//! `recovery`: how long a node takes to recover a database of N records.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::ReqCall;

/// Creates `records` records in a fresh volatile database through `clients`
/// connections, then asks the node for a
/// recovery the way `ctdb recover` does (SET_RECMODE active) and measures how long
/// until the node is back in normal mode with a new generation.
pub async fn recovery(
    socket: &Path,
    records: u32,
    clients: usize,
    db_name: &str,
) -> Result<Duration, ClientError> {
    let here = dest::CURRENT_NODE;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        conns.push(Client::connect(socket).await?);
    }
    let db_id = conns[0].attach(here, db_name, false).await?;
    // Keys this node is lmaster of: created locally on any CTDB, with no migration.
    let map = conns[0].get_vnnmap(here).await?;
    let me = conns[0].pnn();
    let keys: Vec<Bytes> = (0u64..)
        .map(|k| Bytes::from(format!("recovery-key-{k}")))
        .filter(|key| {
            map.map.is_empty()
                || map.map[(ctdb_db::hash::ctdb_hash(key) as usize) % map.map.len()] == me
        })
        .take(records as usize)
        .collect();
    let keys = std::sync::Arc::new(keys);
    let per = records.div_ceil(conns.len() as u32) as usize;
    // Samba's daemon creates an empty record on any call; ours stores nothing for a
    // read of a missing record, so on ours the records are written (empty) with
    // COMPARE_STORE_FUNC, which Samba's does not know.
    let by_store = match keys.first() {
        Some(key) => conns[0].store(db_id, key, b"").await.is_ok(),
        None => false,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in conns.iter().cloned().enumerate() {
        let keys = keys.clone();
        tasks.spawn(async move {
            for key in keys.iter().skip(i * per).take(per) {
                if by_store {
                    c.store(db_id, key, b"").await?;
                    continue;
                }
                c.call(ReqCall {
                    flags: 0,
                    db_id,
                    callid: call::NULL_FUNC,
                    hopcount: 0,
                    key: key.clone(),
                    calldata: Bytes::new(),
                })
                .await?;
            }
            Ok::<_, ClientError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| ClientError::Unexpected(e.to_string()))??;
    }
    let client = &conns[0];
    let before = client.get_vnnmap(here).await?.generation;
    let start = Instant::now();
    client
        .set_recmode(here, ctdb_protocol::flags::recmode::ACTIVE)
        .await?;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mode = client.get_recmode(here).await?;
        let generation = client.get_vnnmap(here).await?.generation;
        if mode == 0 && generation != before {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(300) {
            return Err(ClientError::Timeout(start.elapsed()));
        }
    }
}
