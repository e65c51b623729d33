//! Commands that change a node's or the cluster's state: `disable`, `enable`, `stop`,
//! `continue`, `ban`, `unban`, `recover` and `reloadnodes`.
//!
//! As Samba 4.17's tool: send the control, watch the node map (or the leader's
//! generation) until the change shows, then ask for a takeover run. Where Samba waits
//! without end (bounded only by `-T`), this tool gives up after [`WAIT_LIMIT`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::control::{BanState, NodeMap, VnnMap};
use ctdb_protocol::flags::{dest, node, recmode, INVALID_GENERATION};
use ctdb_protocol::srvid;
use ctdb_protocol::{Opcode, Wire};

use super::{usage_fail, CmdResult, Ctx, Fail, ETIMEDOUT};
use crate::format::nodes::{already_text, nodes_file_changes, nodes_file_identical, FileNode};
use crate::messages::{disable_message, int_reply, smb_strtoul, srvid_message, tool_srvid};
use crate::{err, out};

const EINVAL: i32 = 22;

/// How long a node's flags, or a recovery, may take to show.
pub(super) const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How often the node map or the generation is looked at again (Samba: every second).
const POLL: Duration = Duration::from_secs(1);
/// How long to wait for a recovery daemon's answer to a takeover-run or
/// disable-recoveries request. Samba waits for it without end, asking again every
/// `-t` seconds; ctdb-rs's recovery daemons do not answer these requests (yet), so a
/// missing answer is not an error.
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// What one of the node state commands changes.
struct Change {
    flag: u32,
    /// Whether the command sets the flag (`disable`) or clears it (`enable`).
    set: bool,
    /// The state's word in Samba's messages.
    desc: &'static str,
    opcode: Opcode,
    /// Samba's message when the control fails.
    failed: &'static str,
}

fn change_for(command: &str) -> Option<Change> {
    let (flag, set, desc, opcode, failed) = match command {
        "disable" => (
            node::PERMANENTLY_DISABLED,
            true,
            "disabled",
            Opcode::DisableNode,
            "Failed to disable node",
        ),
        "enable" => (
            node::PERMANENTLY_DISABLED,
            false,
            "disabled",
            Opcode::EnableNode,
            "Failed to enable node",
        ),
        "stop" => (
            node::STOPPED,
            true,
            "stopped",
            Opcode::StopNode,
            "Failed to stop node",
        ),
        "continue" => (
            node::STOPPED,
            false,
            "stopped",
            Opcode::ContinueNode,
            "Failed to continue stopped node",
        ),
        "ban" => (
            node::BANNED,
            true,
            "banned",
            Opcode::SetBanState,
            "Failed to ban node",
        ),
        "unban" => (
            node::BANNED,
            false,
            "banned",
            Opcode::SetBanState,
            "Failed to unban node",
        ),
        _ => return None,
    };
    Some(Change {
        flag,
        set,
        desc,
        opcode,
        failed,
    })
}

fn flag_is_set(map: &NodeMap, pnn: u32, flag: u32) -> bool {
    map.nodes
        .iter()
        .any(|n| n.pnn == pnn && n.flags & flag != 0)
}

/// `disable`, `enable`, `stop`, `continue`, `ban SECONDS`, `unban`.
pub(super) async fn set_state(ctx: &mut Ctx<'_>, command: &str, args: &[String]) -> CmdResult {
    let Some(change) = change_for(command) else {
        return Err(Fail::new(format!("Unknown command '{command}'"), 1));
    };
    let want_args = usize::from(command == "ban");
    if args.len() != want_args {
        return Err(usage_fail(command));
    }
    let pnn = ctx.cmd_pnn;

    // Nothing to do when the node already is so. Without a node map Samba goes on.
    let map = match ctx.map_cache.take() {
        Some(m) => Ok(m),
        None => ctx.nodemap().await,
    };
    match map {
        Ok(map) => {
            if flag_is_set(&map, pnn, change.flag) == change.set {
                err(&format!("{}\n", already_text(pnn, change.desc, change.set)));
                return Ok(0);
            }
        }
        Err(f) => err(&format!("{}\n", f.msg)),
    }

    let data = match command {
        "ban" => {
            let time = smb_strtoul(&args[0]).map_err(Fail::quiet)? as u32;
            if time == 0 {
                return Err(Fail::new("Ban time cannot be zero", EINVAL));
            }
            BanState { pnn, time }.to_bytes()
        }
        "unban" => BanState { pnn, time: 0 }.to_bytes(),
        _ => Vec::new(),
    };
    ctx.control(pnn, change.opcode, data)
        .await
        .map_err(|f| Fail::new(format!("{}\n{} {pnn}", f.msg, change.failed), f.code))?;

    wait_for_flags(ctx, &change).await?;
    ipreallocate(ctx).await
}

/// Polls the node map until the node's flag is as wanted.
async fn wait_for_flags(ctx: &Ctx<'_>, change: &Change) -> Result<(), Fail> {
    let pnn = ctx.cmd_pnn;
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        // Unlike Samba, a lone banned node's own map counts: `ctdb ban` on a
        // one-node cluster would otherwise never see the ban.
        match ctx.nodemap_avoiding_banned().await {
            Ok(Ok(map)) | Ok(Err(map)) => {
                if flag_is_set(&map, pnn, change.flag) == change.set {
                    return Ok(());
                }
            }
            Err(f) => err(&format!("{}\nFailed to get nodemap, trying again\n", f.msg)),
        }
        if Instant::now() + POLL > deadline {
            let state = if change.set {
                change.desc.to_string()
            } else {
                format!("no longer {}", change.desc)
            };
            return Err(Fail::new(
                format!(
                    "Timed out waiting for node {pnn} to be {state} ({} seconds)",
                    WAIT_LIMIT.as_secs()
                ),
                ETIMEDOUT,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Registers the next reply srvid of this tool.
pub(super) async fn reply_srvid(
    ctx: &mut Ctx<'_>,
) -> Result<(u64, tokio::sync::mpsc::Receiver<ctdb_client::Message>), Fail> {
    ctx.srvids_used += 1;
    let id = tool_srvid(std::process::id(), ctx.srvids_used);
    let rx = ctx
        .client
        .register_srvid(id)
        .await
        .map_err(|e| ctx.transport_fail(Opcode::RegisterSrvid, ctx.pnn, &e))?;
    Ok((id, rx))
}

pub(super) fn send_message(
    ctx: &Ctx<'_>,
    destnode: u32,
    srvid: u64,
    data: Vec<u8>,
) -> Result<(), Fail> {
    ctx.client
        .send_message(destnode, srvid, Bytes::from(data))
        .map_err(|e| Fail::new(format!("Failed to send message: {e}"), 1))
}

/// Samba's ipreallocate(): asks the leader for a takeover run (TAKEOVER_RUN to every
/// connected node) and waits for its answer: its pnn, or a negative error.
pub(super) async fn ipreallocate(ctx: &mut Ctx<'_>) -> CmdResult {
    let (id, mut rx) = reply_srvid(ctx).await?;
    let result = async {
        send_message(
            ctx,
            dest::BROADCAST_CONNECTED,
            srvid::TAKEOVER_RUN,
            srvid_message(ctx.pnn, id),
        )?;
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT.min(ctx.timeout);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if let Some(status) = int_reply(&m.data) {
                return Ok(if status >= 0 { 0 } else { status });
            }
        }
        Ok(0)
    }
    .await;
    let _ = ctx.client.deregister_srvid(id).await;
    result
}

/// Samba's get_generation(): the leader's generation once it is out of recovery.
pub(super) async fn get_generation(ctx: &mut Ctx<'_>, deadline: Instant) -> Result<u32, Fail> {
    loop {
        let Some(leader) = ctx.leader().await else {
            return Err(Fail::new("Failed to find leader", 1));
        };
        let mode = ctx
            .control_status(leader, Opcode::GetRecmode)
            .await
            .map_err(|f| {
                Fail::new(
                    format!("{}\nFailed to get recovery mode from node {leader}", f.msg),
                    f.code,
                )
            })?;
        if mode as u32 != recmode::ACTIVE {
            let vnnmap: VnnMap = ctx
                .typed(leader, Opcode::Getvnnmap, Vec::new())
                .await
                .map_err(|f| {
                    Fail::new(
                        format!("{}\nFailed to get generation from node {leader}", f.msg),
                        f.code,
                    )
                })?;
            if vnnmap.generation != INVALID_GENERATION {
                return Ok(vnnmap.generation);
            }
        }
        if Instant::now() + POLL > deadline {
            return Err(Fail::new(
                format!(
                    "Timed out waiting for recovery to finish ({} seconds)",
                    WAIT_LIMIT.as_secs()
                ),
                ETIMEDOUT,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `recover`: puts the node into recovery mode, which makes the leader recover the
/// cluster, and waits for the leader's generation to change.
pub(super) async fn recover(ctx: &mut Ctx<'_>) -> CmdResult {
    let deadline = Instant::now() + WAIT_LIMIT;
    let generation = get_generation(ctx, deadline).await?;
    ctx.control(ctx.cmd_pnn, Opcode::SetRecmode, recmode::ACTIVE.to_bytes())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to set recovery mode active", f.msg),
                f.code,
            )
        })?;
    loop {
        let next = get_generation(ctx, deadline).await.map_err(|f| {
            Fail::new(
                format!("{}\nFailed to confirm end of recovery", f.msg),
                f.code,
            )
        })?;
        if next != generation {
            return Ok(0);
        }
        if Instant::now() + POLL > deadline {
            return Err(Fail::new(
                format!(
                    "Timed out waiting for recovery to finish ({} seconds)\n\
                     Failed to confirm end of recovery",
                    WAIT_LIMIT.as_secs()
                ),
                ETIMEDOUT,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Samba's disable_recoveries(): asks every listed node's recovery daemon not to
/// recover for `timeout` seconds (0: to recover again) and waits for their answers.
async fn disable_recoveries(ctx: &mut Ctx<'_>, timeout: u32, pnns: &[u32]) -> Result<(), Fail> {
    disable(ctx, srvid::samba::DISABLE_RECOVERIES, timeout, pnns).await
}

/// Samba's disable_takeover_runs(): as [`disable_recoveries`], for takeover runs.
/// A node answers that it cannot while a takeover run is under way: it is asked
/// again, up to five times a second apart.
async fn disable_takeover_runs(ctx: &mut Ctx<'_>, timeout: u32, pnns: &[u32]) -> Result<(), Fail> {
    let mut tries = 0;
    loop {
        match disable(ctx, srvid::samba::DISABLE_TAKEOVER_RUNS, timeout, pnns).await {
            Err(_) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(POLL).await;
            }
            result => return result,
        }
    }
}

/// Sends a `ctdb_disable_message` to `what` on every listed node and waits for each
/// one's answer.
async fn disable(ctx: &mut Ctx<'_>, what: u64, timeout: u32, pnns: &[u32]) -> Result<(), Fail> {
    let (id, mut rx) = reply_srvid(ctx).await?;
    let result = async {
        for &pnn in pnns {
            send_message(ctx, pnn, what, disable_message(ctx.pnn, id, timeout))?;
        }
        let mut answered = vec![false; pnns.len()];
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT.min(ctx.timeout);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            let Some(ret) = int_reply(&m.data) else {
                continue;
            };
            if ret < 0 {
                return Err(Fail::quiet(1));
            }
            if let Some(i) = pnns.iter().position(|&p| p == ret as u32) {
                answered[i] = true;
            }
            if answered.iter().all(|&a| a) {
                break;
            }
        }
        Ok(())
    }
    .await;
    let _ = ctx.client.deregister_srvid(id).await;
    result
}

/// `reloadips [<pnn-list>]`, as Samba's: takeover runs held off on every connected
/// node, RELOAD_PUBLIC_IPS on each listed node (default: this one; `all`: every
/// connected node), takeover runs allowed again, then a takeover run that places the
/// new addresses.
pub(super) async fn reloadips(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let map = ctx.nodemap().await?;
    let connected: Vec<u32> = map
        .nodes
        .iter()
        .filter(|n| n.flags & (node::DISCONNECTED | node::DELETED) == 0)
        .map(|n| n.pnn)
        .collect();
    let targets: Vec<u32> = match args.first().map(String::as_str) {
        None => vec![ctx.cmd_pnn],
        Some("all") => connected.clone(),
        Some(list) => list
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|p| map.nodes.iter().any(|n| n.pnn == *p))
                    .ok_or_else(|| Fail::new(format!("Invalid node {p}"), 1))
            })
            .collect::<Result<_, _>>()?,
    };
    let twice_timelimit = (2 * ctx.opts.timelimit).min(u64::from(u32::MAX)) as u32;
    disable_takeover_runs(ctx, twice_timelimit, &connected)
        .await
        .map_err(|f| Fail::new("Failed to disable takeover runs", f.code))?;
    let mut failed = None;
    for &pnn in &targets {
        let reply = ctx
            .client
            .control_raw(pnn, Opcode::ReloadPublicIps, 0, Bytes::new(), ctx.timeout)
            .await;
        if !matches!(reply, Ok(ref r) if r.status == 0) {
            failed = Some(pnn);
            break;
        }
    }
    disable_takeover_runs(ctx, 0, &connected)
        .await
        .map_err(|f| Fail::new("Failed to enable takeover runs", f.code))?;
    if let Some(pnn) = failed {
        return Err(Fail::new(format!("Failed to reload IPs on node {pnn}"), 1));
    }
    ipreallocate(ctx).await
}

/// GET_NODES_FILE: the nodes file a node's daemon reads.
async fn nodes_file(ctx: &Ctx<'_>, pnn: u32) -> Result<NodeMap, Fail> {
    ctx.typed(pnn, Opcode::GetNodesFile, Vec::new())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nERROR: Failed to get nodes file from node {pnn}", f.msg),
                f.code,
            )
        })
}

/// `reloadnodes`: checks that every node has the same nodes file as this one, shows
/// what changed, and has every connected node reload it.
pub(super) async fn reloadnodes(ctx: &mut Ctx<'_>) -> CmdResult {
    let map = ctx.nodemap().await?;
    // Samba 4.17 takes the nodes file this node's daemon reads (GET_NODES_FILE), not
    // the one in the tool's environment, and checks the other nodes have the same.
    let own = nodes_file(ctx, ctx.pnn).await?;
    let file: Vec<FileNode> = own
        .nodes
        .iter()
        .map(|n| {
            let ip = n
                .addr
                .socket_addr()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            (n.pnn, ip, n.flags & node::DELETED != 0)
        })
        .collect();
    for n in map
        .nodes
        .iter()
        .filter(|n| n.pnn != ctx.pnn && n.flags & node::DISCONNECTED == 0)
    {
        let remote = nodes_file(ctx, n.pnn).await?;
        if !nodes_file_identical(&file, &remote) {
            return Err(Fail::new(
                format!(
                    "ERROR: Nodes file on node {} differs from current node ({})",
                    n.pnn, ctx.pnn
                ),
                1,
            ));
        }
    }

    let changes = nodes_file_changes(&map, &file);
    out(&changes.stdout);
    err(&changes.stderr);
    if changes.failed {
        return Ok(1);
    }
    if !changes.reload {
        err("No change in nodes file, skipping unnecessary reload\n");
        return Ok(0);
    }

    let pnns: Vec<u32> = map
        .nodes
        .iter()
        .filter(|n| n.flags & (node::DISCONNECTED | node::DELETED) == 0)
        .map(|n| n.pnn)
        .collect();
    let twice_timelimit = (2 * ctx.opts.timelimit).min(u64::from(u32::MAX)) as u32;
    disable_recoveries(ctx, twice_timelimit, &pnns)
        .await
        .map_err(|f| Fail::new("Failed to disable recoveries", f.code))?;

    let mut failed = false;
    for &pnn in &pnns {
        let ok = matches!(
            ctx.client
                .control_raw(pnn, Opcode::ReloadNodesFile, 0, Bytes::new(), ctx.timeout)
                .await,
            Ok(r) if r.status == 0
        );
        if !ok {
            err(&format!("Node {pnn} failed to reload nodes\n"));
            failed = true;
        }
    }
    if failed {
        err("You MUST fix failed nodes manually!\n");
    }

    disable_recoveries(ctx, 0, &pnns)
        .await
        .map_err(|f| Fail::new("Failed to enable recoveries", f.code))?;
    Ok(0)
}
