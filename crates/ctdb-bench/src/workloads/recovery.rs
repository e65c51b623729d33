//! `recovery`: how long a node takes to recover a database of N records.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::{call, dest};
use ctdb_protocol::{LtdbHeader, Opcode, ReqCall};
use ctdb_tdb::Tdb;

/// Creates `records` records in a fresh volatile database through `clients`
/// connections, then asks the node for a
/// recovery the way `ctdb recover` does (SET_RECMODE active) and measures how long
/// until the node is back in normal mode with a new generation.
///
/// With `value_bytes` above 0 each record carries that many bytes, written as Samba's
/// clients write records: straight into the node's TDB file (GETDBPATH, opened with
/// DB_OPEN_FLAGS) under the record's chain lock, with this node as dmaster — the same
/// way on any CTDB, so a database above the 64 MiB packet limit can be compared.
pub async fn recovery(
    socket: &Path,
    records: u32,
    clients: usize,
    db_name: &str,
    value_bytes: usize,
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
    if value_bytes > 0 {
        write_into_file(&conns[0], db_id, me, keys, value_bytes).await?;
        return recover_now(&conns[0]).await;
    }
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
    recover_now(&conns[0]).await
}

/// Writes `keys` with values of `value_bytes` into the node's TDB file of `db_id`, each
/// under its chain lock, this node (`me`) as dmaster.
async fn write_into_file(
    client: &Client,
    db_id: u32,
    me: u32,
    keys: Vec<Bytes>,
    value_bytes: usize,
) -> Result<(), ClientError> {
    let here = dest::CURRENT_NODE;
    let path = client.get_dbpath(here, db_id).await?;
    let flags = client
        .control(
            here,
            Opcode::DbOpenFlags,
            0,
            Bytes::copy_from_slice(&db_id.to_le_bytes()),
        )
        .await?;
    let flags = flags
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_le_bytes);
    let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let tdb = Tdb::open(path.as_ref(), 0, flags).map_err(|e| e.to_string())?;
        let header = LtdbHeader {
            rsn: 1,
            dmaster: me,
            ..LtdbHeader::default()
        };
        for (i, key) in keys.iter().enumerate() {
            let mut value = Vec::with_capacity(LtdbHeader::SIZE + value_bytes);
            ctdb_protocol::Wire::encode(&header, &mut value);
            value.resize(LtdbHeader::SIZE + value_bytes, (i % 251) as u8);
            tdb.lock_chain(key).map_err(|e| e.to_string())?;
            let stored = tdb.store(key, &value);
            let _ = tdb.unlock_chain(key);
            stored.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ClientError::Unexpected(e.to_string()))?;
    written.map_err(ClientError::Unexpected)
}

/// Asks the node for a recovery and waits until it is back in normal mode with a new
/// generation; how long that took.
async fn recover_now(client: &Client) -> Result<Duration, ClientError> {
    let here = dest::CURRENT_NODE;
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
