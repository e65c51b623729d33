//! Database and record commands: `getdbstatus`, `catdb`, `cattdb`, `readkey`,
//! `writekey`, `deletekey`, `pfetch`, `pstore`, `pdelete`, `ptrans`, `getdbseqnum`,
//! `wipedb`, `backupdb`, `restoredb` and `dumpdbbackup`.
//!
//! As Samba 4.17's tool, except where it reads or writes a node's tdb file directly:
//! `writekey` and `deletekey` use ctdb-rs's compare-and-store call, `cattdb` pulls the
//! node's local copy (PULL_DB), `backupdb` traverses the cluster, and `restoredb`
//! pushes with the seed's PUSH_DB instead of Samba's DB_PUSH_START/CONFIRM.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ctdb_client::{ClientError, Transaction};
use ctdb_protocol::control::{PullDb, PullDbExt, RecBuffer, RecData, TransDb};
use ctdb_protocol::flags::{db, node, recmode};
use ctdb_protocol::{Opcode, Wire};

use super::nodectl::{get_generation, WAIT_LIMIT};
use super::{usage_fail, CmdResult, Ctx, Fail, ETIMEDOUT};
use crate::backup::{self, BackupHeader};
use crate::format::dbs::getdbstatus_text;
use crate::format::{self, records as fmt, Tz};
use crate::keyvalue::{odd_hex_message, ptrans_line, ptrans_lines, str_to_data};
use crate::messages::{smb_strtoul, PUSHDB_SRVID};
use crate::{err, localtime, out, out_bytes};

const EIO: i32 = 5;
const EAGAIN: i32 = 11;
const ENOMEM: i32 = 12;
const EINVAL: i32 = 22;

/// How many times a persistent write runs again when its commit conflicts.
const CONFLICT_ATTEMPTS: usize = 10;
/// Most record bytes in one PUSH_DB of `restoredb`.
const PUSH_CHUNK: usize = 1024 * 1024;
/// PULL_DB's "every record".
const LMASTER_ANY: u32 = u32::MAX;

/// A database as Samba's `db_exists()` finds it.
pub(super) struct Db {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) flags: u8,
}

impl Db {
    pub(super) fn volatile(&self) -> bool {
        self.flags & (db::PERSISTENT | db::REPLICATED) == 0
    }
}

fn client_code(e: &ClientError) -> i32 {
    match e {
        ClientError::Timeout(_) => ETIMEDOUT,
        ClientError::ControlFailed { status, .. } if *status != 0 => *status,
        ClientError::Conflict => EAGAIN,
        _ => EIO,
    }
}

/// A failed record operation: the library's reason, then Samba's line.
fn record_fail(e: &ClientError, samba_line: String) -> Fail {
    Fail::new(format!("{e}\n{samba_line}"), client_code(e))
}

/// Samba's `db_exists()`: a db_id (`0x...`) or a name, looked up in this node's db
/// map.
pub(super) async fn find_db(ctx: &Ctx<'_>, arg: &str) -> Result<Db, Fail> {
    let quiet = |f: Fail| Fail::new(f.msg, 1);
    let map: ctdb_protocol::control::DbMap = ctx
        .typed(ctx.pnn, Opcode::GetDbmap, Vec::new())
        .await
        .map_err(quiet)?;
    let name_of = |id: u32| async move {
        ctx.typed::<String>(ctx.pnn, Opcode::GetDbname, id.to_bytes())
            .await
            .map_err(quiet)
    };
    let not_found = || Fail::new(format!("No database matching '{arg}' found"), 1);
    if arg.starts_with("0x") {
        // strtoul(): junk after the digits is ignored, none at all reads as 0.
        let id = smb_strtoul(arg).unwrap_or(0) as u32;
        let entry = map
            .dbs
            .iter()
            .find(|e| e.db_id == id)
            .ok_or_else(not_found)?;
        return Ok(Db {
            id,
            name: name_of(id).await?,
            flags: entry.flags,
        });
    }
    for e in &map.dbs {
        if name_of(e.db_id).await? == arg {
            return Ok(Db {
                id: e.db_id,
                name: arg.to_string(),
                flags: e.flags,
            });
        }
    }
    Err(not_found())
}

/// A key (or, with `what` = "value", a value) argument as bytes.
pub(super) fn parse_arg(arg: &str, what: &str) -> Result<Vec<u8>, Fail> {
    str_to_data(arg.as_bytes()).map_err(|digits| {
        Fail::new(
            format!("{}Failed to parse {what} {arg}", odd_hex_message(digits)),
            EINVAL,
        )
    })
}

fn need_volatile(d: &Db) -> Result<(), Fail> {
    if d.volatile() {
        Ok(())
    } else {
        Err(Fail::new(
            format!("DB {} is not a volatile database", d.name),
            1,
        ))
    }
}

fn need_persistent(d: &Db) -> Result<(), Fail> {
    if d.volatile() {
        Err(Fail::new(
            format!("Transactions not supported on DB {}", d.name),
            1,
        ))
    } else {
        Ok(())
    }
}

/// Runs `command` (one of this module's); `args` are its arguments.
pub(super) async fn run(ctx: &mut Ctx<'_>, command: &str, args: &[String]) -> CmdResult {
    let argc = args.len();
    let tz: Tz = localtime::offset;
    match command {
        "getdbstatus" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            let path: String = ctx
                .typed(ctx.cmd_pnn, Opcode::Getdbpath, d.id.to_bytes())
                .await?;
            let health = ctx
                .control(ctx.cmd_pnn, Opcode::DbGetHealth, d.id.to_bytes())
                .await?;
            let health = String::from_utf8_lossy(&health)
                .trim_end_matches('\0')
                .to_string();
            let health = (!health.is_empty()).then_some(health.as_str());
            out(&getdbstatus_text(d.id, &d.name, &path, d.flags, health));
            Ok(0)
        }
        "catdb" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            match ctx.client.traverse_timeout(d.id, false, ctx.timeout).await {
                Ok(records) => {
                    // Records without data are deleted ones; Samba's daemon leaves them out.
                    let mut count = 0;
                    for r in records.iter().filter(|r| !r.data.is_empty()) {
                        out(&fmt::record(&r.key, &r.header, &r.data));
                        count += 1;
                    }
                    out(&fmt::dumped(count, false));
                    Ok(0)
                }
                Err(e) => {
                    out(&fmt::dumped(0, false));
                    Err(Fail::new(
                        format!("Failed to traverse DB {}: {e}", d.name),
                        client_code(&e),
                    ))
                }
            }
        }
        "cattdb" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            let text = cattdb(ctx, &d).await?;
            out(&text);
            Ok(0)
        }
        "readkey" => {
            if !(2..=3).contains(&argc) || (argc == 3 && args[2] != "readonly") {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_volatile(&d)?;
            let key = parse_arg(&args[1], "key")?;
            // A read-only request is served as a normal fetch: the data is the same.
            let (_, data) = ctx
                .client
                .fetch_with_header(d.id, &key)
                .await
                .map_err(|e| {
                    record_fail(&e, format!("Failed to read record for key {}", args[1]))
                })?;
            out_bytes(&fmt::readkey(&data));
            Ok(0)
        }
        "writekey" => {
            if argc != 3 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_volatile(&d)?;
            let key = parse_arg(&args[1], "key")?;
            let value = parse_arg(&args[2], "value")?;
            ctx.client.store(d.id, &key, &value).await.map_err(|e| {
                record_fail(&e, format!("Failed to store record for key {}", args[1]))
            })?;
            Ok(0)
        }
        "deletekey" => {
            if argc != 2 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_volatile(&d)?;
            let key = parse_arg(&args[1], "key")?;
            let failed = || format!("Failed to delete record for key {}", args[1]);
            let fetch_failed = || format!("Failed to fetch record for key {}", args[1]);
            let (_, before) = ctx
                .client
                .fetch_with_header(d.id, &key)
                .await
                .map_err(|e| record_fail(&e, fetch_failed()))?;
            ctx.client
                .delete(d.id, &key)
                .await
                .map_err(|e| record_fail(&e, failed()))?;
            if !before.is_empty() {
                // A daemon that does not know the store call (Samba's) answers as if it
                // had deleted: check that the data is gone.
                let (_, after) = ctx
                    .client
                    .fetch_with_header(d.id, &key)
                    .await
                    .map_err(|e| record_fail(&e, fetch_failed()))?;
                if after == before {
                    return Err(Fail::new(
                        format!("the daemon did not delete the record\n{}", failed()),
                        EIO,
                    ));
                }
            }
            Ok(0)
        }
        "pfetch" => {
            if argc != 2 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_persistent(&d)?;
            let key = parse_arg(&args[1], "key")?;
            let mut t = ctx.client.transaction(d.id);
            let data = t.fetch(&key).await.map_err(|e| {
                record_fail(&e, format!("Failed to read record for key {}", args[1]))
            })?;
            out_bytes(&fmt::pfetch(&data.unwrap_or_default()));
            Ok(0)
        }
        "pstore" | "pdelete" => {
            let deleting = command == "pdelete";
            if argc != if deleting { 2 } else { 3 } {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_persistent(&d)?;
            let key = parse_arg(&args[1], "key")?;
            let value = if deleting {
                Vec::new()
            } else {
                parse_arg(&args[2], "value")?
            };
            let verb = if deleting { "delete" } else { "store" };
            let failed = format!("Failed to {verb} record for key {}", args[1]);
            commit_writes(ctx, &d, &[(key, value)], &failed).await?;
            Ok(0)
        }
        "ptrans" => {
            if !(1..=2).contains(&argc) {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            need_persistent(&d)?;
            let input = match args.get(1) {
                Some(path) => std::fs::read(path)
                    .map_err(|_| Fail::new(format!("Failed to open file {path}"), 1))?,
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                        Fail::new(format!("Failed to read standard input: {e}"), EIO)
                    })?;
                    buf
                }
            };
            let mut writes = Vec::new();
            for line in ptrans_lines(&input) {
                let (pair, message) = ptrans_line(line);
                err(&message);
                writes.extend(pair);
            }
            commit_writes(ctx, &d, &writes, "Failed to store record").await?;
            Ok(0)
        }
        "getdbseqnum" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            let seqnum = ctx
                .client
                .get_db_seqnum(ctx.cmd_pnn, d.id)
                .await
                .map_err(|e| {
                    record_fail(
                        &e,
                        format!("Failed to get sequence number for DB {}", d.name),
                    )
                })?;
            out(&fmt::seqnum(seqnum));
            Ok(0)
        }
        "wipedb" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            let (generation, nodes) = generation_and_nodes(ctx).await?;
            let txn = TransDb {
                db_id: d.id,
                tid: generation,
            };
            let steps = [
                (Opcode::DbFreeze, d.id.to_bytes()),
                (Opcode::DbTransactionStart, txn.to_bytes()),
                (Opcode::WipeDatabase, txn.to_bytes()),
                (Opcode::DbSetHealthy, d.id.to_bytes()),
                (Opcode::DbTransactionCommit, txn.to_bytes()),
                (Opcode::DbThaw, d.id.to_bytes()),
            ];
            for (opcode, data) in steps {
                on_nodes(ctx, &nodes, opcode, &data).await?;
            }
            out(&format!("Database {} wiped\n", d.name));
            Ok(0)
        }
        "backupdb" => {
            if argc != 2 {
                return Err(usage_fail(command));
            }
            let d = find_db(ctx, &args[0]).await?;
            let path = &args[1];
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    Fail::new(
                        format!("Failed to open file {path} for writing"),
                        e.raw_os_error().unwrap_or(EIO),
                    )
                })?;
            let records = ctx
                .client
                .traverse_timeout(d.id, true, ctx.timeout)
                .await
                .map_err(|e| {
                    record_fail(&e, format!("Failed to collect records from DB {}", d.name))
                })?;
            let records: Vec<RecData> = records
                .iter()
                .map(|r| RecData::with_header(0, &r.key, &r.header, &r.data))
                .collect();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.as_secs() as i64);
            let bytes = backup::encode(&d.name, d.id, d.flags, now, &records);
            file.write_all(&bytes).map_err(|e| {
                Fail::new(
                    format!("Failed to write header to file {path}"),
                    e.raw_os_error().unwrap_or(EIO),
                )
            })?;
            out(&format!("Database backed up to {path}\n"));
            Ok(0)
        }
        "restoredb" => {
            if !(1..=2).contains(&argc) {
                return Err(usage_fail(command));
            }
            restoredb(ctx, &args[0], args.get(1).map(String::as_str), tz).await
        }
        other => Err(Fail::new(format!("Unknown command '{other}'"), 1)),
    }
}

/// Stores `writes` (key, value; an empty value deletes) in one transaction, run again
/// while it conflicts with another writer. `failed` is Samba's line when a store fails.
async fn commit_writes(
    ctx: &Ctx<'_>,
    d: &Db,
    writes: &[(Vec<u8>, Vec<u8>)],
    failed: &str,
) -> Result<(), Fail> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut t: Transaction = ctx.client.transaction(d.id);
        for (key, value) in writes {
            t.store(key, value)
                .await
                .map_err(|e| record_fail(&e, failed.to_string()))?;
        }
        match t.commit().await {
            Ok(()) => return Ok(()),
            Err(ClientError::Conflict) if attempt < CONFLICT_ATTEMPTS => continue,
            Err(e) => {
                return Err(record_fail(
                    &e,
                    format!("Failed to commit transaction on db {}", d.name),
                ))
            }
        }
    }
}

/// `cattdb`: the node's own copy of every record, empty ones included (PULL_DB from
/// this node, which ctdb-rs answers at any time). Samba's daemons answer PULL_DB only
/// while frozen; there the records come from a traverse with empty records instead.
async fn cattdb(ctx: &Ctx<'_>, d: &Db) -> Result<String, Fail> {
    let request = PullDb {
        db_id: d.id,
        lmaster: LMASTER_ANY,
    };
    let reply = ctx
        .client
        .control_raw(
            ctx.pnn,
            Opcode::PullDb,
            0,
            request.to_bytes().into(),
            ctx.timeout,
        )
        .await;
    let mut records = Vec::new();
    match reply.ok().filter(|r| r.status == 0) {
        Some(r) => {
            let buffer = RecBuffer::from_bytes(&r.data).map_err(|e| {
                Fail::new(format!("Failed to read records of DB {}: {e}", d.name), EIO)
            })?;
            for rec in &buffer.records {
                let (header, value) = rec.header().map_err(|e| {
                    Fail::new(format!("Failed to read records of DB {}: {e}", d.name), EIO)
                })?;
                records.push(fmt::record(&rec.key, &header, value));
            }
        }
        None => {
            let traversed = ctx
                .client
                .traverse_timeout(d.id, true, ctx.timeout)
                .await
                .map_err(|e| record_fail(&e, format!("Failed to traverse DB {}", d.name)))?;
            for r in &traversed {
                records.push(fmt::record(&r.key, &r.header, &r.data));
            }
        }
    }
    let mut text = records.concat();
    text.push_str(&fmt::dumped(records.len(), true));
    Ok(text)
}

/// The cluster's generation and its active nodes, as `wipedb` and `restoredb` need.
async fn generation_and_nodes(ctx: &mut Ctx<'_>) -> Result<(u32, Vec<u32>), Fail> {
    let map = ctx
        .nodemap()
        .await
        .map_err(|f| Fail::new(format!("{}\nFailed to get nodemap", f.msg), ENOMEM))?;
    let generation = get_generation(ctx, Instant::now() + WAIT_LIMIT)
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to get current generation", f.msg),
                f.code,
            )
        })?;
    let nodes: Vec<u32> = map
        .nodes
        .iter()
        .filter(|n| n.flags & node::INACTIVE == 0)
        .map(|n| n.pnn)
        .collect();
    if nodes.is_empty() {
        return Err(Fail::new("No active nodes", ENOMEM));
    }
    Ok((generation, nodes))
}

/// Sends a control to every node in `nodes`. On a failure, as Samba: this node goes
/// into recovery mode (the leader's recovery then restores a consistent state).
async fn on_nodes(ctx: &Ctx<'_>, nodes: &[u32], opcode: Opcode, data: &[u8]) -> Result<(), Fail> {
    for &pnn in nodes {
        if let Err(f) = ctx.control(pnn, opcode, data.to_vec()).await {
            set_recovery_mode(ctx).await;
            return Err(f);
        }
    }
    Ok(())
}

/// After a failed wipe or restore: recovery mode on this node, so that the leader
/// recovers the cluster.
async fn set_recovery_mode(ctx: &Ctx<'_>) {
    let _ = ctx
        .control(ctx.pnn, Opcode::SetRecmode, recmode::ACTIVE.to_bytes())
        .await;
}

fn attach_opcode(flags: u8) -> Opcode {
    if flags & db::REPLICATED != 0 {
        Opcode::DbAttachReplicated
    } else if flags & db::PERSISTENT != 0 {
        Opcode::DbAttachPersistent
    } else {
        Opcode::DbAttach
    }
}

fn read_backup(path: &str) -> Result<Vec<u8>, Fail> {
    std::fs::read(path).map_err(|e| {
        Fail::new(
            format!("Failed to open file {path} for reading"),
            e.raw_os_error().unwrap_or(EIO),
        )
    })
}

fn header_of(path: &str, file: &[u8]) -> Result<BackupHeader, Fail> {
    BackupHeader::decode(file).map_err(|e| match e {
        backup::BackupError::ShortHeader => {
            Fail::new(format!("Failed to read db header from file {path}"), EIO)
        }
        other => Fail::new(other.to_string(), EINVAL),
    })
}

fn records_of(path: &str, file: &[u8]) -> Result<Vec<RecData>, Fail> {
    let backup = backup::decode(file)
        .map_err(|e| Fail::new(format!("Failed to read records from file {path}: {e}"), EIO))?;
    backup::check_records(&backup.records).map_err(|key| {
        Fail::new(
            format!(
                "Failed to read records from file {path}: the record of key {} has no header",
                String::from_utf8_lossy(&key)
            ),
            EIO,
        )
    })?;
    Ok(backup.records)
}

/// `restoredb FILE [DB]`: wipes the database on every active node and pushes the
/// backup's records into it, all inside a per-database recovery transaction.
async fn restoredb(ctx: &mut Ctx<'_>, path: &str, name: Option<&str>, tz: Tz) -> CmdResult {
    let file = read_backup(path)?;
    let header = header_of(path, &file)?;
    let name = name.unwrap_or(&header.name).to_string();
    out(&format!(
        "Restoring database {name} from backup @ {}\n",
        format::backup_time(header.timestamp, tz)
    ));
    // Read the whole file before changing anything: a bad backup leaves the
    // database as it was.
    let records = records_of(path, &file)?;
    let flags = (header.flags & 0xff) as u8;
    let db_id: u32 = ctx
        .typed(ctx.pnn, attach_opcode(flags), name.to_bytes())
        .await
        .map_err(|f| Fail::new(format!("{}\nFailed to attach to DB {name}", f.msg), f.code))?;
    let (generation, nodes) = generation_and_nodes(ctx).await?;
    let txn = TransDb {
        db_id,
        tid: generation,
    };
    on_nodes(ctx, &nodes, Opcode::DbFreeze, &db_id.to_bytes()).await?;
    on_nodes(ctx, &nodes, Opcode::DbTransactionStart, &txn.to_bytes()).await?;
    on_nodes(ctx, &nodes, Opcode::WipeDatabase, &txn.to_bytes()).await?;
    push_records(ctx, &nodes, db_id, records).await?;
    on_nodes(ctx, &nodes, Opcode::DbSetHealthy, &db_id.to_bytes()).await?;
    on_nodes(ctx, &nodes, Opcode::DbTransactionCommit, &txn.to_bytes()).await?;
    on_nodes(ctx, &nodes, Opcode::DbThaw, &db_id.to_bytes()).await?;
    out(&format!("Database {name} restored\n"));
    Ok(0)
}

/// Pushes the records into the (frozen, wiped) database on every node: with the seed's
/// PUSH_DB, which ctdb-rs answers; where the first node refuses it (Samba 4.17 no
/// longer implements it), as Samba's tool does: DB_PUSH_START, the buffers as messages,
/// then DB_PUSH_CONFIRM, which answers how many records arrived.
async fn push_records(
    ctx: &Ctx<'_>,
    nodes: &[u32],
    db_id: u32,
    records: Vec<RecData>,
) -> Result<(), Fail> {
    let total = records.len();
    let chunks: Vec<Vec<u8>> = push_chunks(db_id, records)
        .iter()
        .map(Wire::to_bytes)
        .collect();
    let Some(first) = chunks.first() else {
        // Nothing to push: the wipe was the restore.
        return Ok(());
    };
    let seed_way = ctx
        .client
        .control_raw(
            nodes[0],
            Opcode::PushDb,
            0,
            first.clone().into(),
            ctx.timeout,
        )
        .await
        .is_ok_and(|r| r.status == 0);
    if seed_way {
        for (i, chunk) in chunks.iter().enumerate() {
            let targets = if i == 0 { &nodes[1..] } else { nodes };
            on_nodes(ctx, targets, Opcode::PushDb, chunk).await?;
        }
        return Ok(());
    }
    let start = PullDbExt {
        db_id,
        lmaster: 0,
        srvid: PUSHDB_SRVID,
    };
    on_nodes(ctx, nodes, Opcode::DbPushStart, &start.to_bytes()).await?;
    for chunk in &chunks {
        for &pnn in nodes {
            ctx.client
                .send_message(pnn, PUSHDB_SRVID, chunk.clone().into())
                .map_err(|e| record_fail(&e, format!("Failed to send records to node {pnn}")))?;
        }
    }
    for &pnn in nodes {
        let reply = ctx
            .control(pnn, Opcode::DbPushConfirm, db_id.to_bytes())
            .await;
        let received = match reply.map(|data| u32::from_bytes(&data)) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => {
                set_recovery_mode(ctx).await;
                return Err(Fail::new(format!("Invalid response from node {pnn}"), EIO));
            }
            Err(f) => {
                set_recovery_mode(ctx).await;
                return Err(f);
            }
        };
        if received as usize != total {
            set_recovery_mode(ctx).await;
            return Err(Fail::new(
                format!("Node {pnn} received {received} of {total} records"),
                EIO,
            ));
        }
    }
    Ok(())
}

/// The records as PUSH_DB buffers of at most about [`PUSH_CHUNK`] bytes each.
fn push_chunks(db_id: u32, records: Vec<RecData>) -> Vec<RecBuffer> {
    let mut chunks = Vec::new();
    let mut current = RecBuffer {
        db_id,
        records: Vec::new(),
    };
    let mut size = 0;
    for rec in records {
        size += rec.wire_len();
        current.records.push(rec);
        if size >= PUSH_CHUNK {
            chunks.push(std::mem::replace(
                &mut current,
                RecBuffer {
                    db_id,
                    records: Vec::new(),
                },
            ));
            size = 0;
        }
    }
    if !current.records.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// `dumpdbbackup FILE` (no daemon needed): the records of a backup file.
pub(super) fn dumpdbbackup(args: &[String]) -> CmdResult {
    if args.len() != 1 {
        // Samba asks for the usage of "dumpbackup", a name it does not know, and so
        // prints the full usage.
        return Err(usage_fail("dumpbackup"));
    }
    let path = &args[0];
    let file = read_backup(path)?;
    let header = header_of(path, &file)?;
    out(&format!(
        "Dumping database {} from backup @ {}\n",
        header.name,
        format::backup_time(header.timestamp, localtime::offset)
    ));
    let backup = backup::decode(&file)
        .map_err(|e| Fail::new(format!("Failed to read records\n{e}"), EIO))?;
    let mut count = 0;
    for rec in &backup.records {
        let Ok((h, value)) = rec.header() else {
            return Err(Fail::new("Failed to dump records", EINVAL));
        };
        out(&fmt::record(&rec.key, &h, value));
        count += 1;
    }
    out(&fmt::dumped(count, true));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn push_chunks_split_by_size() {
        let rec = |i: u32| RecData {
            reqid: 0,
            key: Bytes::from(i.to_le_bytes().to_vec()),
            data: Bytes::from(vec![0u8; 300 * 1024]),
        };
        let chunks = push_chunks(5, (0..8).map(rec).collect());
        assert_eq!(
            chunks.iter().map(|c| c.records.len()).collect::<Vec<_>>(),
            [4, 4]
        );
        assert!(chunks.iter().all(|c| c.db_id == 5));
        assert!(push_chunks(5, Vec::new()).is_empty());
    }

    #[test]
    fn attach_opcodes_follow_the_flags() {
        assert_eq!(attach_opcode(0), Opcode::DbAttach);
        assert_eq!(attach_opcode(db::PERSISTENT), Opcode::DbAttachPersistent);
        assert_eq!(attach_opcode(db::REPLICATED), Opcode::DbAttachReplicated);
        assert_eq!(attach_opcode(db::STICKY), Opcode::DbAttach);
    }
}
