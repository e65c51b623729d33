//! The commands: ask the daemon, hand the answers to [`crate::format`], print.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError, Message};
use ctdb_protocol::control::{
    DbMap, IfaceList, NodeMap, Tunable, TunableName, Uptime, VarList, VnnMap,
};
use ctdb_protocol::flags::{db, dest, node};
use ctdb_protocol::srvid::samba::LEADER;
use ctdb_protocol::{Opcode, Wire};
use tokio::sync::mpsc::Receiver;

use crate::format::dbs::{getdbmap_text, DbInfo};
use crate::format::misc;
use crate::format::nodes::{self, Status};
use crate::format::stats::{statistics_machine, statistics_text, StatsView};
use crate::options::Options;
use crate::{err, localtime, out, usage, VERSION};

mod admin;
mod event;
mod ips;
mod nodectl;
mod records;
mod tdbfile;

const EMSGSIZE: i32 = 90;
const ETIMEDOUT: i32 = 110;
const ECONNRESET: i32 = 104;

/// How long `status` waits for the leader's broadcast before asking GET_RECMASTER.
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// A command that failed: what to print on stderr, and the exit code.
struct Fail {
    msg: String,
    code: i32,
}

impl Fail {
    fn new(msg: impl Into<String>, code: i32) -> Self {
        Self {
            msg: msg.into(),
            code,
        }
    }
    /// A failure already reported (or silent).
    fn quiet(code: i32) -> Self {
        Self::new(String::new(), code)
    }
}

type CmdResult = Result<i32, Fail>;

/// Commands that Samba refuses to send to another node with `-n`.
const LOCAL_ONLY: &[&str] = &[
    "pnn",
    "attach",
    "detach",
    "lvs",
    "natgw",
    "scriptstatus",
    "leader",
    "recmaster",
    "catdb",
    "cattdb",
    "readkey",
    "writekey",
    "deletekey",
    "pfetch",
    "pstore",
    "pdelete",
    "ptrans",
    "getdbseqnum",
    "wipedb",
    "backupdb",
    "restoredb",
    "moveip",
];

/// Runs `command` with `opts`; returns the exit code.
pub async fn run(command: &str, opts: &Options) -> i32 {
    let result = match command {
        "version" => {
            out(&format!("{VERSION}\n"));
            Ok(0)
        }
        "listnodes" => listnodes(opts),
        "event" => event::event(&opts.args[1..], localtime::offset).await,
        "tickle" => ips::tickle(&opts.args[1..]),
        "checktcpport" => {
            if opts.node.is_some() {
                Err(Fail::new("Cannot specify node for command checktcpport", 1))
            } else {
                admin::checktcpport(&opts.args[1..])
            }
        }
        "dumpdbbackup" => {
            if opts.node.is_some() {
                Err(Fail::new("Cannot specify node for command dumpdbbackup", 1))
            } else {
                records::dumpdbbackup(&opts.args[1..])
            }
        }
        _ => with_daemon(command, opts).await,
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if !f.msg.is_empty() {
                err(&format!("{}\n", f.msg));
            }
            f.code
        }
    }
}

fn usage_fail(command: &str) -> Fail {
    out(&usage::for_command(command));
    Fail::quiet(1)
}

/// Samba's `ctdb_control_name()`: the opcode's name without its prefix.
fn control_name(opcode: Opcode) -> &'static str {
    let name = opcode.name();
    name.strip_prefix("CTDB_CONTROL_").unwrap_or(name)
}

struct Ctx<'a> {
    client: Client,
    /// The node we are connected to.
    pnn: u32,
    /// The node the command is for (`-n`, else `pnn`).
    cmd_pnn: u32,
    timeout: Duration,
    opts: &'a Options,
    leader_rx: Option<Receiver<Message>>,
    /// The leader its last broadcast named.
    known_leader: Option<u32>,
    /// The node map fetched to check `-n`, for the command's first look at flags.
    map_cache: Option<NodeMap>,
    /// How many reply srvids this tool has used (Samba's `next_srvid()`).
    srvids_used: u64,
}

impl Ctx<'_> {
    fn machine(&self) -> Option<&str> {
        self.opts.machine_sep()
    }

    fn transport_fail(&self, opcode: Opcode, node: u32, e: &ClientError) -> Fail {
        let ret = match e {
            ClientError::Timeout(_) => ETIMEDOUT,
            ClientError::Decode(_) | ClientError::Unexpected(_) => EMSGSIZE,
            _ => ECONNRESET,
        };
        Fail::new(
            format!(
                "Control {} failed to node {node}, ret={ret}",
                control_name(opcode)
            ),
            ret,
        )
    }

    /// Sends a control; its data when the status is 0.
    async fn control(&self, node: u32, opcode: Opcode, data: Vec<u8>) -> Result<Bytes, Fail> {
        let reply = self
            .client
            .control_raw(node, opcode, 0, Bytes::from(data), self.timeout)
            .await
            .map_err(|e| self.transport_fail(opcode, node, &e))?;
        if reply.status != 0 {
            return Err(Fail::new(
                format!(
                    "Control {} failed, ret={}",
                    control_name(opcode),
                    reply.status
                ),
                reply.status,
            ));
        }
        Ok(reply.data)
    }

    /// Sends a control whose answer is its (non-negative) status.
    async fn control_status(&self, node: u32, opcode: Opcode) -> Result<i32, Fail> {
        let reply = self
            .client
            .control_raw(node, opcode, 0, Bytes::new(), self.timeout)
            .await
            .map_err(|e| self.transport_fail(opcode, node, &e))?;
        if reply.status < 0 {
            return Err(Fail::new(
                format!(
                    "Control {} failed, ret={}",
                    control_name(opcode),
                    reply.status
                ),
                reply.status,
            ));
        }
        Ok(reply.status)
    }

    /// Sends a control and decodes its reply.
    async fn typed<T: Wire>(&self, node: u32, opcode: Opcode, data: Vec<u8>) -> Result<T, Fail> {
        let bytes = self.control(node, opcode, data).await?;
        T::from_bytes(&bytes).map_err(|_| {
            Fail::new(
                format!(
                    "Control {} failed to node {node}, ret={EMSGSIZE}",
                    control_name(opcode)
                ),
                EMSGSIZE,
            )
        })
    }

    /// GET_NODEMAP from one node.
    async fn nodemap_from(&self, pnn: u32) -> Result<NodeMap, Fail> {
        self.typed(pnn, Opcode::GetNodemap, Vec::new())
            .await
            .map_err(|f| {
                Fail::new(
                    format!("{}\nFailed to get nodemap from node {pnn}", f.msg),
                    f.code,
                )
            })
    }

    /// Samba's get_nodemap(): the node map from this node or, while this node is
    /// banned, from the next node that is neither deleted nor disconnected.
    async fn nodemap(&self) -> Result<NodeMap, Fail> {
        // Samba reports the failure and gives up with 1.
        match self.nodemap_avoiding_banned().await {
            Ok(Ok(map)) => Ok(map),
            Ok(Err(_)) => Err(Fail::new("Warning: All nodes are banned.", 1)),
            Err(f) => Err(Fail::new(f.msg, 1)),
        }
    }

    /// As [`Self::nodemap`]; `Err` with this node's own map when all nodes are banned.
    async fn nodemap_avoiding_banned(&self) -> Result<Result<NodeMap, NodeMap>, Fail> {
        let own = self.nodemap_from(self.pnn).await?;
        let mut map = own.clone();
        let mut current = self.pnn;
        for _ in 0..=own.nodes.len() {
            let banned = |map: &NodeMap, pnn: u32| {
                map.nodes
                    .iter()
                    .any(|n| n.pnn == pnn && n.flags & node::BANNED != 0)
            };
            if !banned(&map, current) {
                return Ok(Ok(map));
            }
            let num = map.nodes.len().max(1) as u32;
            loop {
                current = (current + 1) % num;
                let usable = map.nodes.iter().any(|n| {
                    n.pnn == current && n.flags & (node::DELETED | node::DISCONNECTED) == 0
                });
                if usable || current == self.pnn {
                    break;
                }
            }
            if current == self.pnn {
                break;
            }
            map = self.nodemap_from(current).await?;
        }
        Ok(Err(own))
    }

    /// Samba's partially_online(): a healthy node with an interface whose link is down.
    async fn partially_online(&self, map: &NodeMap) -> Vec<u32> {
        let mut result = Vec::new();
        for n in map.nodes.iter().filter(|n| n.flags == 0) {
            if let Ok(list) = self
                .typed::<IfaceList>(n.pnn, Opcode::GetIfaces, Vec::new())
                .await
            {
                if list.ifaces.iter().any(|i| i.link_state == 0) {
                    result.push(n.pnn);
                }
            }
        }
        result
    }

    /// The leader: from its broadcast (as Samba 4.17 learns it), else GET_RECMASTER.
    /// The latest broadcast counts; without one yet, waits a while for the next.
    async fn leader(&mut self) -> Option<u32> {
        let wait = LEADER_WAIT.min(self.timeout);
        if let Some(rx) = self.leader_rx.as_mut() {
            let heard = |m: &Message| {
                u32::from_bytes(&m.data)
                    .ok()
                    .filter(|&p| p != dest::UNKNOWN_PNN)
            };
            while let Ok(m) = rx.try_recv() {
                if let Some(pnn) = heard(&m) {
                    self.known_leader = Some(pnn);
                }
            }
            if self.known_leader.is_some() {
                return self.known_leader;
            }
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if let Some(pnn) = heard(&m) {
                    self.known_leader = Some(pnn);
                    return Some(pnn);
                }
            }
        }
        self.control_status(self.cmd_pnn, Opcode::GetRecmaster)
            .await
            .ok()
            .map(|s| s as u32)
            .filter(|&p| p != dest::UNKNOWN_PNN)
    }

    /// Whether the node knows tunable `name` (Samba's tool asks before get/set).
    async fn is_tunable(&self, name: &str) -> Result<bool, Fail> {
        Ok(misc::find_var(&self.var_list().await?, name).is_some())
    }

    async fn var_list(&self) -> Result<Vec<String>, Fail> {
        let list: VarList = self
            .typed(self.cmd_pnn, Opcode::ListTunables, Vec::new())
            .await
            .map_err(|f| {
                Fail::new(
                    format!(
                        "{}\nFailed to get list of variables from node {}",
                        f.msg, self.cmd_pnn
                    ),
                    f.code,
                )
            })?;
        Ok(list.vars)
    }

    async fn get_var(&self, name: &str) -> Result<u32, Fail> {
        self.typed(
            self.cmd_pnn,
            Opcode::GetTunable,
            TunableName(name.to_string()).to_bytes(),
        )
        .await
    }
}

fn socket_path() -> PathBuf {
    if let Ok(s) = std::env::var("CTDB_SOCKET") {
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    ctdb_common::Config::load()
        .map(|c| c.socket)
        .unwrap_or_else(|_| PathBuf::from(ctdb_common::config::DEFAULT_SOCKET))
}

/// The nodes file Samba's tool reads: `CTDB_NODES`, else `$CTDB_BASE/nodes`.
fn nodes_file() -> PathBuf {
    if let Ok(p) = std::env::var("CTDB_NODES") {
        return PathBuf::from(p);
    }
    let base = std::env::var("CTDB_BASE").unwrap_or_else(|_| "/etc/ctdb".to_string());
    PathBuf::from(base).join("nodes")
}

fn read_nodes() -> Result<Vec<ctdb_common::nodes::NodeEntry>, Fail> {
    let path = nodes_file();
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| ctdb_common::nodes::parse_nodes(&text, &path).ok())
        .ok_or_else(|| {
            Fail::new(
                format!("Failed to read nodes file \"{}\"", path.display()),
                1,
            )
        })
}

fn listnodes(opts: &Options) -> CmdResult {
    if opts.node.is_some() {
        return Err(Fail::new("Cannot specify node for command listnodes", 1));
    }
    if opts.args.len() != 1 {
        return Err(usage_fail("listnodes"));
    }
    let nodes: Vec<_> = read_nodes()?
        .into_iter()
        .map(|n| (n.pnn, n.addr, n.deleted))
        .collect();
    out(&nodes::listnodes_text(&nodes, opts.machine_sep()));
    Ok(0)
}

/// Samba's find_node_xpnn(): nothing when this host has one of the nodes file's
/// addresses, else why not.
fn not_part_of_cluster() -> Option<String> {
    let nodes = match read_nodes() {
        Ok(n) => n,
        Err(f) => return Some(f.msg),
    };
    let found = nodes
        .iter()
        .filter(|n| !n.deleted)
        .any(|n| UdpSocket::bind((n.addr, 0)).is_ok());
    (!found).then(|| "Failed to detect PNN of the current node.".to_string())
}

async fn with_daemon(command: &str, opts: &Options) -> CmdResult {
    let socket = socket_path();
    let client = match Client::connect(&socket).await {
        Ok(c) => c,
        Err(e) => {
            let mut msg = String::new();
            if let ClientError::Connect { source, .. } = &e {
                msg.push_str(&format!(
                    "connect() failed, errno={}\n",
                    source.raw_os_error().unwrap_or(0)
                ));
            }
            msg.push_str(&format!(
                "Failed to connect to CTDB daemon ({})",
                socket.display()
            ));
            if let Some(why) = not_part_of_cluster() {
                msg.push_str(&format!("\n{why}\nIs this node part of CTDB cluster?"));
            }
            return Err(Fail::new(msg, 1));
        }
    };
    let pnn = client.pnn();
    // Samba's tool registers the leader srvid on every connection; so do we.
    let leader_rx = client.register_srvid(LEADER).await.ok();
    let mut ctx = Ctx {
        client,
        pnn,
        cmd_pnn: pnn,
        timeout: Duration::from_secs(opts.timelimit.max(1)),
        opts,
        leader_rx,
        known_leader: None,
        map_cache: None,
        srvids_used: 0,
    };
    if let Some(n) = opts.node {
        let map = ctx.nodemap().await?;
        ctx.map_cache = Some(map.clone());
        let Some(entry) = map.nodes.iter().find(|e| e.pnn == n) else {
            return Err(Fail::new(format!("Node {n} does not exist"), 1));
        };
        if entry.flags & (node::DISCONNECTED | node::DELETED) != 0 {
            return Err(Fail::new(
                format!("Node {n} has status {}", nodes::flags_text(entry.flags)),
                1,
            ));
        }
        ctx.cmd_pnn = n;
    }
    if LOCAL_ONLY.contains(&command) && ctx.cmd_pnn != ctx.pnn {
        return Err(Fail::new(
            format!("Node cannot be specified for command {command}"),
            1,
        ));
    }
    let args: Vec<String> = opts.args[1..].to_vec();
    let argc = args.len();
    let no_args = |max: usize| {
        if argc > max {
            Err(usage_fail(command))
        } else {
            Ok(())
        }
    };
    let tz: crate::format::Tz = localtime::offset;
    match command {
        "ping" => {
            no_args(0)?;
            let start = Instant::now();
            let clients = ctx.control_status(ctx.cmd_pnn, Opcode::Ping).await?;
            let elapsed = start.elapsed().as_secs_f64();
            out(&misc::ping_text(ctx.cmd_pnn, elapsed, clients as u32));
            Ok(0)
        }
        "pnn" => {
            out(&format!("{}\n", ctx.pnn));
            Ok(0)
        }
        "status" => {
            no_args(0)?;
            let nodemap = ctx.nodemap().await?;
            if let Some(sep) = ctx.machine() {
                let partial = ctx.partially_online(&nodemap).await;
                out(&nodes::nodemap_machine(
                    &nodemap,
                    ctx.cmd_pnn,
                    &partial,
                    sep,
                ));
                return Ok(0);
            }
            let vnnmap: VnnMap = ctx
                .typed(ctx.cmd_pnn, Opcode::Getvnnmap, Vec::new())
                .await?;
            let recmode = ctx.control_status(ctx.cmd_pnn, Opcode::GetRecmode).await? as u32;
            let leader = ctx.leader().await;
            let partially_online = ctx.partially_online(&nodemap).await;
            let status = Status {
                nodemap,
                vnnmap,
                recmode,
                leader,
                partially_online,
            };
            out(&nodes::status_text(&status, ctx.cmd_pnn, None));
            Ok(0)
        }
        "nodestatus" => {
            no_args(1)?;
            let nodestring = args.first().map(String::as_str);
            let map = ctx.nodemap().await?;
            let shown =
                nodes::select_nodes(&map, nodestring, ctx.cmd_pnn).map_err(|m| Fail::new(m, 1))?;
            let partial = ctx.partially_online(&shown).await;
            out(&nodes::nodestatus_text(
                &shown,
                ctx.cmd_pnn,
                nodestring == Some("all"),
                &partial,
                ctx.machine(),
            ));
            Ok(nodes::nodestatus_code(&shown) as i32)
        }
        "leader" | "recmaster" => {
            no_args(0)?;
            match ctx.leader().await {
                Some(l) => out(&format!("{l}\n")),
                None => out("UNKNOWN\n"),
            }
            Ok(0)
        }
        "uptime" => {
            no_args(0)?;
            let u: Uptime = ctx.typed(ctx.cmd_pnn, Opcode::Uptime, Vec::new()).await?;
            out(&misc::uptime_text(ctx.cmd_pnn, &u, tz));
            Ok(0)
        }
        "getdbmap" => {
            no_args(0)?;
            let map: DbMap = ctx.typed(ctx.cmd_pnn, Opcode::GetDbmap, Vec::new()).await?;
            let mut dbs = Vec::with_capacity(map.dbs.len());
            for e in &map.dbs {
                let id = e.db_id.to_bytes();
                let name: String = ctx
                    .typed(ctx.cmd_pnn, Opcode::GetDbname, id.clone())
                    .await?;
                let path: String = ctx
                    .typed(ctx.cmd_pnn, Opcode::Getdbpath, id.clone())
                    .await?;
                let health = ctx.control(ctx.cmd_pnn, Opcode::DbGetHealth, id).await?;
                let health = String::from_utf8_lossy(&health)
                    .trim_end_matches('\0')
                    .to_string();
                dbs.push(DbInfo {
                    db_id: e.db_id,
                    flags: e.flags,
                    name,
                    path,
                    health: (!health.is_empty()).then_some(health),
                });
            }
            out(&getdbmap_text(&dbs, ctx.machine()));
            Ok(0)
        }
        "attach" => {
            if argc == 0 || argc > 2 {
                return Err(usage_fail(command));
            }
            let flags = match args.get(1).map(String::as_str) {
                None => 0,
                Some("persistent") => db::PERSISTENT,
                Some("replicated") => db::REPLICATED,
                Some(_) => return Err(usage_fail(command)),
            };
            let opcode = match flags {
                db::PERSISTENT => Opcode::DbAttachPersistent,
                db::REPLICATED => Opcode::DbAttachReplicated,
                _ => Opcode::DbAttach,
            };
            let _db_id: u32 = ctx.typed(ctx.pnn, opcode, args[0].to_bytes()).await?;
            Ok(0)
        }
        "getvar" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            if !ctx.is_tunable(&args[0]).await? {
                out(&format!("No such tunable {}\n", args[0]));
                return Ok(1);
            }
            let value = ctx.get_var(&args[0]).await?;
            out(&misc::var_line(&args[0], value));
            Ok(0)
        }
        "setvar" => {
            if argc != 2 {
                return Err(usage_fail(command));
            }
            if !ctx.is_tunable(&args[0]).await? {
                out(&format!("No such tunable {}\n", args[0]));
                return Ok(1);
            }
            // strtoul(argv[1], NULL, 0): junk reads as 0.
            let value = nodes::parse_c_ulong(&args[1]).unwrap_or(0) as u32;
            let request = Tunable {
                name: args[0].clone(),
                value,
            };
            let reply = ctx
                .client
                .control_raw(
                    ctx.cmd_pnn,
                    Opcode::SetTunable,
                    0,
                    request.to_bytes().into(),
                    ctx.timeout,
                )
                .await
                .map_err(|e| ctx.transport_fail(Opcode::SetTunable, ctx.cmd_pnn, &e))?;
            match reply.status {
                0 => Ok(0),
                1 => {
                    err(&format!(
                        "Setting obsolete tunable variable '{}'\n",
                        args[0]
                    ));
                    Ok(0)
                }
                s => Err(Fail::new(format!("Control SET_TUNABLE failed, ret={s}"), s)),
            }
        }
        "listvars" => {
            no_args(0)?;
            let vars = ctx.var_list().await?;
            let mut values = Vec::with_capacity(vars.len());
            for v in vars {
                let value = ctx.get_var(&v).await?;
                values.push((v, value));
            }
            out(&misc::listvars_text(&values));
            Ok(0)
        }
        "getpid" => {
            no_args(0)?;
            let pid = ctx.control_status(ctx.cmd_pnn, Opcode::GetPid).await?;
            out(&format!("{pid}\n"));
            Ok(0)
        }
        "getdebug" => {
            no_args(0)?;
            let level: i32 = ctx.typed(ctx.cmd_pnn, Opcode::GetDebug, Vec::new()).await?;
            out(&misc::getdebug_text(level));
            Ok(0)
        }
        "setdebug" => {
            if argc != 1 {
                return Err(usage_fail(command));
            }
            let Some(level) = ctdb_common::logging::parse_samba_level(&args[0]) else {
                return Err(Fail::new(
                    format!(
                        "Invalid debug level '{}'. Valid levels are:\n\tERROR | WARNING | NOTICE | INFO | DEBUG",
                        args[0]
                    ),
                    1,
                ));
            };
            ctx.control(ctx.cmd_pnn, Opcode::SetDebug, (level as u32).to_bytes())
                .await?;
            Ok(0)
        }
        "getcapabilities" => {
            no_args(0)?;
            let caps: u32 = ctx
                .typed(ctx.cmd_pnn, Opcode::GetCapabilities, Vec::new())
                .await?;
            out(&misc::capabilities_text(caps, ctx.machine()));
            Ok(0)
        }
        "statistics" => {
            no_args(0)?;
            let data = ctx
                .control(ctx.cmd_pnn, Opcode::Statistics, Vec::new())
                .await?;
            let stats = StatsView::decode(&data).ok_or_else(|| {
                Fail::new(
                    format!(
                        "Control STATISTICS failed to node {}, ret={EMSGSIZE}",
                        ctx.cmd_pnn
                    ),
                    EMSGSIZE,
                )
            })?;
            match ctx.machine() {
                Some(sep) => out(&statistics_machine(&stats, true, sep)),
                None => out(&statistics_text(&stats, tz)),
            }
            Ok(0)
        }
        "stats" => {
            no_args(1)?;
            // As Samba's tool: atoi, and no limit unless positive.
            let count = args.first().map_or(0, |n| crate::messages::c_atoi(n));
            let data = ctx
                .control(ctx.cmd_pnn, Opcode::GetStatHistory, Vec::new())
                .await?;
            let entries = StatsView::decode_history(&data).ok_or_else(|| {
                Fail::new(
                    format!(
                        "Control GET_STAT_HISTORY failed to node {}, ret={EMSGSIZE}",
                        ctx.cmd_pnn
                    ),
                    EMSGSIZE,
                )
            })?;
            // Samba's tool skips entries never filled, and stops after the entry whose
            // index is the count: `stats 1` prints up to two entries.
            let mut header = true;
            for (i, stats) in entries.iter().enumerate() {
                if stats.start_time.sec == 0 {
                    continue;
                }
                match ctx.machine() {
                    Some(sep) => out(&statistics_machine(stats, header, sep)),
                    None => out(&statistics_text(stats, tz)),
                }
                header = false;
                if count > 0 && i == count as usize {
                    break;
                }
            }
            Ok(0)
        }
        "statisticsreset" => {
            no_args(0)?;
            ctx.control(ctx.cmd_pnn, Opcode::StatisticsReset, Vec::new())
                .await?;
            Ok(0)
        }
        "scriptstatus" => {
            no_args(1)?;
            let name = args.first().map_or("monitor", String::as_str);
            event::scriptstatus(name, tz).await
        }
        "runstate" => {
            let state: u32 = ctx
                .typed(ctx.cmd_pnn, Opcode::GetRunstate, Vec::new())
                .await?;
            let (text, code) = misc::runstate_check(state, &args);
            out(&text);
            Ok(code)
        }
        "shutdown" => {
            no_args(0)?;
            match ctx
                .client
                .control_raw(ctx.cmd_pnn, Opcode::Shutdown, 0, Bytes::new(), ctx.timeout)
                .await
            {
                // The daemon may go before its reply does.
                Err(ClientError::Disconnected) => Ok(0),
                Err(e) => Err(ctx.transport_fail(Opcode::Shutdown, ctx.cmd_pnn, &e)),
                Ok(r) if r.status == 0 => Ok(0),
                Ok(r) => Err(Fail::new(
                    format!("Control SHUTDOWN failed, ret={}", r.status),
                    r.status,
                )),
            }
        }
        "disable" | "enable" | "stop" | "continue" | "ban" | "unban" => {
            nodectl::set_state(&mut ctx, command, &args).await
        }
        "recover" => {
            no_args(0)?;
            nodectl::recover(&mut ctx).await
        }
        // ctdb-rs's own, for test clusters (components started with
        // CTDB_RS_FAULT_INJECTION=1): `failpoint <db|recoverd|transport> <name>
        // [<actions>]` sets a fault point (empty actions: removes it), or only reads how
        // often it fired (`transport transport::cut return(1,2)` cuts the node off nodes
        // 1 and 2; the count is the packets the cut dropped).
        "failpoint" => {
            if !(2..=3).contains(&argc) {
                return Err(Fail::new(
                    "Usage: ctdb failpoint <db|recoverd|transport> <name> [<actions>]".to_string(),
                    1,
                ));
            }
            let request = ctdb_protocol::control::SetFailpoint {
                component: args[0].clone(),
                name: args[1].clone(),
                actions: args.get(2).cloned(),
            };
            let opcode = Opcode::SetFailpoint;
            let reply = ctx
                .client
                .control_raw(
                    ctx.cmd_pnn,
                    opcode,
                    0,
                    request.to_bytes().into(),
                    ctx.timeout,
                )
                .await
                .map_err(|e| ctx.transport_fail(opcode, ctx.cmd_pnn, &e))?;
            if reply.status != 0 {
                let why = String::from_utf8_lossy(&reply.errmsg);
                return Err(Fail::new(
                    format!(
                        "Control SET_FAILPOINT failed: {}",
                        why.trim_end_matches('\0')
                    ),
                    reply.status,
                ));
            }
            let fired = <[u8; 8]>::try_from(&reply.data[..]).map_or(0, u64::from_le_bytes);
            out(&format!("{}: fired {fired} times\n", request.name));
            Ok(0)
        }
        "ipreallocate" | "sync" => {
            no_args(0)?;
            nodectl::ipreallocate(&mut ctx).await
        }
        "getreclock" => {
            no_args(0)?;
            let data = ctx
                .control(ctx.cmd_pnn, Opcode::GetReclockFile, Vec::new())
                .await?;
            if let Some(path) = crate::messages::reclock_path(&data) {
                out(&format!("{path}\n"));
            }
            Ok(0)
        }
        "getdbstatus" | "catdb" | "cattdb" | "readkey" | "writekey" | "deletekey" | "pfetch"
        | "pstore" | "pdelete" | "ptrans" | "getdbseqnum" | "wipedb" | "backupdb" | "restoredb" => {
            records::run(&mut ctx, command, &args).await
        }
        // Samba's reloadnodes ignores its arguments.
        "reloadnodes" => nodectl::reloadnodes(&mut ctx).await,
        "reloadips" => nodectl::reloadips(&mut ctx, &args).await,
        "ip" => ips::ip(&mut ctx, &args).await,
        "ipinfo" => ips::ipinfo(&mut ctx, &args).await,
        "ifaces" => ips::ifaces(&mut ctx, &args).await,
        "setifacelink" => ips::setifacelink(&mut ctx, &args).await,
        "moveip" => ips::moveip(&mut ctx, &args).await,
        "addip" => ips::addip(&mut ctx, &args).await,
        "gratarp" => ips::gratarp(&mut ctx, &args).await,
        "delip" => ips::delip(&mut ctx, &args).await,
        "gettickles" => ips::gettickles(&mut ctx, &args).await,
        "addtickle" | "deltickle" => ips::tickle_change(&mut ctx, command, &args).await,
        "process-exists" => admin::process_exists(&ctx, &args).await,
        "detach" => admin::detach(&mut ctx, &args).await,
        "dumpmemory" => admin::dumpmemory(&ctx).await,
        "rddumpmemory" => admin::rddumpmemory(&mut ctx).await,
        "setdbreadonly" | "setdbsticky" => admin::set_db_flag(&ctx, command, &args).await,
        "dbstatistics" => admin::dbstatistics(&ctx, &args).await,
        "setlmasterrole" | "setleaderrole" => admin::set_role(&ctx, command, &args).await,
        "lvs" | "natgw" => admin::helper(command, &args).await,
        "tfetch" => tdbfile::tfetch(&args),
        "tstore" => tdbfile::tstore(&args),
        other => Err(Fail::new(format!("Unknown command '{other}'"), 1)),
    }
}
