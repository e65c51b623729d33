//! The controls transport answers itself, and its typed gRPC service.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ctdb_protocol::control::{
    self, BanState, ControlData, LatencyCounter, NodeAndFlags, NodeFlagChange, NodeMap, SockAddr,
    Statistics, Timeval,
};
use ctdb_protocol::flags::{control as control_flags, node as node_flags};
use ctdb_protocol::packet::Header;
use ctdb_protocol::{Opcode, ReplyControl, ReqControl, Wire};
use ctdb_rpc::transport_server::{Transport, TransportServer};
use ctdb_rpc::{Empty, Health, NodeInfo, NodeStates};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::peers;
use crate::routing::Owner;
use crate::state::RunState;
use crate::Node;

/// Transport's own statistics counters (`struct ctdb_statistics` fields).
#[derive(Debug, Default)]
pub struct Counters {
    pub client_packets_sent: AtomicU32,
    pub client_packets_recv: AtomicU32,
    pub node_packets_sent: AtomicU32,
    pub node_packets_recv: AtomicU32,
    pub client_req_call: AtomicU32,
    pub client_req_message: AtomicU32,
    pub client_req_control: AtomicU32,
    pub keepalive_packets_sent: AtomicU32,
    pub keepalive_packets_recv: AtomicU32,
}

impl Counters {
    fn reset(&self) {
        for c in [
            &self.client_packets_sent,
            &self.client_packets_recv,
            &self.node_packets_sent,
            &self.node_packets_recv,
            &self.client_req_call,
            &self.client_req_message,
            &self.client_req_control,
            &self.keepalive_packets_sent,
            &self.keepalive_packets_recv,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

pub(crate) fn ok(data: Vec<u8>) -> ReplyControl {
    ReplyControl {
        status: 0,
        data: Bytes::from(data),
        errmsg: Bytes::new(),
    }
}

pub(crate) fn status(status: i32) -> ReplyControl {
    ReplyControl {
        status,
        ..Default::default()
    }
}

fn timeval(t: Option<SystemTime>) -> Timeval {
    let d = t
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    Timeval {
        sec: d.as_secs() as i64,
        usec: i64::from(d.subsec_micros()),
    }
}

/// Notes what passes through to other owners that transport must know about.
pub fn observe(node: &Node, opcode: Opcode) {
    match opcode {
        Opcode::StartRecovery => node.state().last_recovery_started = Some(SystemTime::now()),
        Opcode::EndRecovery => {
            let mut state = node.state();
            state.last_recovery_finished = Some(SystemTime::now());
            if state.runstate == RunState::FirstRecovery {
                state.runstate = RunState::Running;
            }
        }
        _ => {}
    }
}

/// Answers a control transport owns.
pub fn handle(node: &Arc<Node>, client: u64, header: &Header, control: ReqControl) {
    let noreply = control.flags & control_flags::NOREPLY != 0;
    let reply = match answer(node, client, header, &control) {
        Ok(Some(reply)) => reply,
        Ok(None) => return, // answered later (asynchronously)
        Err(e) => ReplyControl::error(-1, &e),
    };
    if !noreply {
        node.reply_control(client, header, reply);
    }
}

fn decode(control: &ReqControl) -> Result<ControlData, String> {
    control::decode_request(control.opcode, &control.data)
        .map_err(|e| format!("bad {} request: {e}", control.opcode))
}

fn answer(
    node: &Arc<Node>,
    client: u64,
    header: &Header,
    control: &ReqControl,
) -> Result<Option<ReplyControl>, String> {
    use Opcode::*;
    let reply = match control.opcode {
        GetPnn => status(node.pnn as i32),
        GetPid => status(std::process::id() as i32),
        Ping => status(node.clients.count() as i32),
        GetRunstate => ok((node.state().runstate as u32).to_bytes()),
        GetDebug => ok(node.state().debug_level.to_bytes()),
        SetDebug => {
            let level = match decode(control)? {
                ControlData::Int32(level) => level,
                ControlData::Uint32(level) => level as i32,
                other => return Err(format!("unexpected SET_DEBUG payload {other:?}")),
            };
            {
                let mut state = node.state();
                state.debug_level = level;
                state.debug_set = true;
            }
            ctdb_common::logging::set_level(level);
            fan_out_debug(node, level);
            status(0)
        }
        RegisterSrvid => {
            node.clients.register_srvid(client, control.srvid);
            status(0)
        }
        DeregisterSrvid => status(if node.clients.deregister_srvid(client, control.srvid) {
            0
        } else {
            -1
        }),
        ProcessExists => match decode(control)? {
            ControlData::Int32(pid) => status(exists(node, pid as u32, None)),
            ControlData::Uint32(pid) => status(exists(node, pid, None)),
            other => return Err(format!("unexpected PROCESS_EXISTS payload {other:?}")),
        },
        CheckPidSrvid => match decode(control)? {
            ControlData::PidSrvid(p) => status(exists(node, p.pid as u32, Some(p.srvid))),
            other => return Err(format!("unexpected CHECK_PID_SRVID payload {other:?}")),
        },
        GetNodemap => ok(node_map(node).to_bytes()),
        GetNodesFile | ReloadNodesFile => {
            crate::membership::handle(
                node,
                client,
                header,
                control,
                control.opcode == ReloadNodesFile,
            );
            return Ok(None);
        }
        Uptime => {
            let state = node.state();
            ok(control::Uptime {
                current_time: timeval(Some(SystemTime::now())),
                ctdbd_start_time: timeval(Some(state.started)),
                last_recovery_started: timeval(state.last_recovery_started),
                last_recovery_finished: timeval(state.last_recovery_finished),
            }
            .to_bytes())
        }
        ListTunables => {
            let names: Vec<&str> = node.state().tunables.list().map(|(n, _)| n).collect();
            ok(control::VarList {
                vars: names.iter().map(|n| n.to_string()).collect(),
            }
            .to_bytes())
        }
        GetTunable => match decode(control)? {
            ControlData::TunableName(control::TunableName(name)) => {
                match node.state().tunables.get(&name) {
                    Some(v) => ok(v.to_bytes()),
                    None => return Err(format!("unknown tunable {name}")),
                }
            }
            other => return Err(format!("unexpected GET_TUNABLE payload {other:?}")),
        },
        SetFailpoint => match decode(control)? {
            ControlData::SetFailpoint(request) => ok(set_cut(node, &request)?.to_bytes()),
            other => return Err(format!("unexpected SET_FAILPOINT payload {other:?}")),
        },
        SetTunable => match decode(control)? {
            ControlData::Tunable(t) => {
                let changed = {
                    let mut state = node.state();
                    state
                        .tunables
                        .set(&t.name, t.value)
                        .map_err(|e| e.to_string())?;
                    state.tunables.changed_text()
                };
                keep_tunables(node, &changed);
                status(0)
            }
            other => return Err(format!("unexpected SET_TUNABLE payload {other:?}")),
        },
        GetAllTunables => {
            let mut all = control::TunableList::default();
            for (name, value) in node.state().tunables.list() {
                all.set(name, value);
            }
            ok(all.to_bytes())
        }
        ModifyFlags => match decode(control)? {
            ControlData::NodeFlagChange(NodeFlagChange {
                pnn,
                new_flags,
                old_flags,
            }) => {
                let (set, clear) = flag_change(old_flags, new_flags);
                if node.state().set_flags(pnn, set, clear) {
                    status(0)
                } else {
                    return Err(format!("no node {pnn}"));
                }
            }
            other => return Err(format!("unexpected MODIFY_FLAGS payload {other:?}")),
        },
        DisableNode => set_own_flags(node, node_flags::PERMANENTLY_DISABLED, 0),
        EnableNode => set_own_flags(node, 0, node_flags::PERMANENTLY_DISABLED),
        StopNode => set_own_flags(node, node_flags::STOPPED, 0),
        ContinueNode => set_own_flags(node, 0, node_flags::STOPPED),
        SetBanState => match decode(control)? {
            ControlData::BanState(BanState { pnn, time }) if pnn == node.pnn => {
                let mut state = node.state();
                if time == 0 {
                    state.ban = None;
                    state.set_flags(node.pnn, 0, node_flags::BANNED);
                } else {
                    state.ban = Some((time, SystemTime::now()));
                    state.set_flags(node.pnn, node_flags::BANNED, 0);
                }
                status(0)
            }
            ControlData::BanState(b) => return Err(format!("ban state is for node {}", b.pnn)),
            other => return Err(format!("unexpected SET_BAN_STATE payload {other:?}")),
        },
        GetBanState => {
            let state = node.state();
            let time = state.ban.map_or(0, |(secs, since)| {
                let gone = since.elapsed().unwrap_or_default().as_secs() as u32;
                secs.saturating_sub(gone)
            });
            ok(BanState {
                pnn: node.pnn,
                time,
            }
            .to_bytes())
        }
        EchoData => match decode(control)? {
            ControlData::EchoData(echo) => {
                let node = node.clone();
                let header = *header;
                let client_reply = ok(echo.to_bytes());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(echo.timeout))).await;
                    node.reply_control(client, &header, client_reply);
                });
                return Ok(None);
            }
            other => return Err(format!("unexpected ECHO_DATA payload {other:?}")),
        },
        Statistics => {
            statistics(node, client, *header, wants_samba_layout(client, control));
            return Ok(None);
        }
        GetStatHistory => stat_history(node, wants_samba_layout(client, control)),
        DumpMemory => ok(memory_report(node).into_bytes()),
        StatisticsReset => {
            node.stats.reset();
            for owner in Owner::COMPONENTS {
                if let Some(link) = node.link(owner).cloned() {
                    tokio::spawn(async move { link.reset_statistics().await });
                }
            }
            status(0)
        }
        Shutdown => {
            node.state().runstate = RunState::Shutdown;
            if let Some(ctdbd) = supervisor() {
                // ctdbd hands the node's public addresses over, then stops every
                // component, this one too.
                info!("SHUTDOWN control received: asking ctdbd to stop the node");
                let _ = nix::sys::signal::kill(ctdbd, nix::sys::signal::Signal::SIGTERM);
            } else {
                info!("SHUTDOWN control received");
                let _ = node.shutdown.send(true);
            }
            status(0)
        }
        Startup => status(0),
        RegisterNotify | DeregisterNotify => status(0),
        other => return Err(format!("{other} is not supported by this node")),
    };
    Ok(Some(reply))
}

/// The bits a MODIFY_FLAGS from `old` to `new` sets and clears. Connectivity is this
/// node's own view (the mesh keeps it): the sender's DISCONNECTED bit does not count.
/// SET_FAILPOINT for transport: its one point, `transport::cut`, cuts this node off
/// from the peers its action names (`return(1,2)`), heals (empty action) or only reads
/// (no action). Answers how many packets the cut dropped so far. Refused unless the
/// process was started with CTDB_RS_FAULT_INJECTION=1.
fn set_cut(node: &Node, request: &control::SetFailpoint) -> Result<u64, String> {
    ctdb_rpc::faults::check_enabled()?;
    if request.component != "transport" || request.name != peers::CUT_POINT {
        return Err(format!(
            "unknown fault point {:?} (transport has: {})",
            request.name,
            peers::CUT_POINT
        ));
    }
    let dropped = node.mesh.cut_dropped();
    if let Some(actions) = &request.actions {
        let pnns = peers::parse_cut(actions)?;
        node.mesh.set_cut(&pnns)?;
        if pnns.is_empty() {
            info!(dropped, "transport::cut healed");
        } else {
            warn!(peers = ?pnns, "transport::cut: cut off from nodes {pnns:?}");
        }
    }
    Ok(dropped)
}

fn flag_change(old: u32, new: u32) -> (u32, u32) {
    let set = new & !old & !node_flags::DISCONNECTED;
    let clear = old & !new & !node_flags::DISCONNECTED;
    (set, clear)
}

fn exists(node: &Node, pid: u32, srvid: Option<u64>) -> i32 {
    if node.clients.pid_exists(pid, srvid) {
        0
    } else {
        -1
    }
}

fn set_own_flags(node: &Node, set: u32, clear: u32) -> ReplyControl {
    node.state().set_flags(node.pnn, set, clear);
    status(0)
}

/// Where transport keeps the tunables set while the node runs, so that a restarted
/// transport has them again (the run directory lives as long as the node, as
/// `ctdb setvar` values live as long as Samba's daemon).
fn tunables_file(config: &ctdb_common::Config) -> std::path::PathBuf {
    config.run_dir.join("tunables")
}

/// The tunables transport starts with: the defaults, then Samba's `ctdb.tunables` in
/// CTDB_BASE, then those set at run time before a restart of transport.
pub fn initial_tunables(
    config: &ctdb_common::Config,
) -> Result<ctdb_common::tunables::Tunables, crate::TransportError> {
    let mut tunables = ctdb_common::tunables::Tunables::default();
    let files = [
        config.base_file("ctdb.tunables"),
        Some(tunables_file(config)),
    ];
    for path in files.into_iter().flatten() {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::TransportError::Tunables(format!(
                    "{}: {e}",
                    path.display()
                )))
            }
        };
        tunables
            .apply_text(&text)
            .map_err(|e| crate::TransportError::Tunables(format!("{}: {e}", path.display())))?;
        info!(file = %path.display(), "tunables read");
    }
    Ok(tunables)
}

/// Writes the tunables that differ from their defaults to the run directory (a new
/// file renamed over the old one).
fn keep_tunables(node: &Node, changed: &str) {
    let path = tunables_file(&node.config);
    let tmp = path.with_extension("new");
    let written = std::fs::write(&tmp, changed).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        warn!(
            "cannot keep the tunables in {}: {e}; a restarted transport starts without them",
            path.display()
        );
    }
}

/// The node map: every node of the nodes file with its flags.
pub fn node_map(node: &Node) -> NodeMap {
    let state = node.state();
    let port = node.config.cluster.port;
    NodeMap {
        nodes: node
            .mesh
            .nodes()
            .iter()
            .map(|n| NodeAndFlags {
                pnn: n.pnn,
                flags: state.flags.get(n.pnn as usize).copied().unwrap_or(0),
                addr: SockAddr::from(SocketAddr::new(node.mesh.address(n.pnn), port)),
            })
            .collect(),
    }
}

fn fan_out_debug(node: &Node, level: i32) {
    for owner in Owner::COMPONENTS {
        if let Some(link) = node.link(owner).cloned() {
            tokio::spawn(async move {
                link.set_debug(level).await;
            });
        }
    }
}

/// Whether a STATISTICS or GET_STAT_HISTORY reply goes to a client (here, or on
/// another node, which forwards with the client's id): then in Samba 4.17's layout,
/// the only one Samba's `ctdb statistics` and `ctdb stats` read. Our own tool reads
/// both; node-internal askers get the seed's.
fn wants_samba_layout(client: u64, control: &ReqControl) -> bool {
    client < crate::router::NODE_ORIGIN || control.client_id != 0
}

/// Gathers every component's counters into one `ctdb_statistics` and replies.
fn statistics(node: &Arc<Node>, client: u64, header: Header, samba: bool) {
    let node = node.clone();
    tokio::spawn(async move {
        let stats = gather(&node).await;
        let data = if samba {
            stats.to_samba_bytes()
        } else {
            stats.to_bytes()
        };
        node.reply_control(client, &header, ok(data));
    });
}

/// Records the node's counters every StatHistoryInterval seconds for GET_STAT_HISTORY,
/// for as long as the node lives.
/// The ctdbd that runs this transport, if one does (it says so in
/// `CTDB_RS_SUPERVISOR` and is our parent).
fn supervisor() -> Option<nix::unistd::Pid> {
    let pid: i32 = std::env::var("CTDB_RS_SUPERVISOR").ok()?.parse().ok()?;
    let parent = nix::unistd::getppid();
    (parent.as_raw() == pid).then_some(parent)
}

/// Who says the node is unhealthy when its event daemon does not answer.
pub const EVENTD_WATCHDOG: &str = "eventd watchdog";

/// How often the event daemon is asked whether it is alive.
const WATCHDOG_EVERY: Duration = Duration::from_secs(3);

/// How long it has to answer.
const WATCHDOG_WAIT: Duration = Duration::from_secs(2);

/// Failed checks in a row after which the node is UNHEALTHY: an event daemon that is
/// stopped, wedged or gone monitors nothing, so the node must not look healthy.
const WATCHDOG_MISSES: u32 = 3;

/// Watches the event daemon (see [`EVENTD_WATCHDOG`]); it is healthy again once it
/// answers.
pub(crate) fn watch_eventd(node: &Arc<Node>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut misses = 0;
        loop {
            tokio::time::sleep(WATCHDOG_EVERY).await;
            let Some(link) = weak.upgrade().and_then(|n| n.link(Owner::Eventd).cloned()) else {
                return;
            };
            let answered = link.answers(WATCHDOG_WAIT).await;
            misses = if answered { 0 } else { misses + 1 };
            let Some(node) = weak.upgrade() else { return };
            if answered {
                set_unhealthy(&node, EVENTD_WATCHDOG, None);
            } else if misses >= WATCHDOG_MISSES {
                let secs = ((WATCHDOG_EVERY + WATCHDOG_WAIT) * misses).as_secs();
                let why = format!("ctdb-eventd has not answered for {secs} s");
                set_unhealthy(&node, EVENTD_WATCHDOG, Some(why));
            }
        }
    });
}

/// Notes (`Some(reason)`) or clears (`None`) `source`'s word that this node is
/// unhealthy; the node is UNHEALTHY while any source says so.
pub(crate) fn set_unhealthy(node: &Node, source: &str, reason: Option<String>) {
    let mut state = node.state();
    let was = state.flags.get(node.pnn as usize).copied().unwrap_or(0);
    match reason {
        Some(reason) => {
            state.unhealthy.insert(source.to_string(), reason);
        }
        None => {
            state.unhealthy.remove(source);
        }
    }
    let healthy = state.unhealthy.is_empty();
    if healthy {
        state.set_flags(node.pnn, 0, node_flags::UNHEALTHY);
    } else {
        state.set_flags(node.pnn, node_flags::UNHEALTHY, 0);
    }
    if (was & node_flags::UNHEALTHY == 0) != healthy {
        let reasons: Vec<&str> = state.unhealthy.values().map(String::as_str).collect();
        info!(healthy, source, ?reasons, "node health changed");
    }
}

pub(crate) fn keep_stat_history(node: &Arc<Node>) {
    let weak = Arc::downgrade(node);
    tokio::spawn(async move {
        loop {
            let secs = {
                let Some(node) = weak.upgrade() else { return };
                let secs = node.state().tunables.stat_history_interval().max(1);
                secs
            };
            tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
            let Some(node) = weak.upgrade() else { return };
            let stats = gather(&node).await;
            node.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(stats);
        }
    });
}

fn stat_history(node: &Node, samba: bool) -> ReplyControl {
    let list = control::StatisticsList {
        stats: node
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries(),
    };
    ok(if samba {
        list.to_samba_bytes()
    } else {
        list.to_bytes()
    })
}

/// Every component's counters of this node, in one `ctdb_statistics`.
pub(crate) async fn gather(node: &Arc<Node>) -> control::Statistics {
    gather_with_extras(node).await.0
}

/// [`gather`], and the components' counters that Samba's statistics have no field for
/// (name to value, summed over the components), which the metrics endpoint shows.
pub(crate) async fn gather_with_extras(
    node: &Arc<Node>,
) -> (control::Statistics, std::collections::BTreeMap<String, u64>) {
    let mut extras = std::collections::BTreeMap::new();
    {
        let mut stats = control::Statistics::default();
        let c = &node.stats;
        stats.num_clients = node.clients.count() as u32;
        stats.client_packets_sent = c.client_packets_sent.load(Ordering::Relaxed);
        stats.client_packets_recv = c.client_packets_recv.load(Ordering::Relaxed);
        stats.node_packets_sent = c.node_packets_sent.load(Ordering::Relaxed);
        stats.node_packets_recv = c.node_packets_recv.load(Ordering::Relaxed);
        stats.client.req_call = c.client_req_call.load(Ordering::Relaxed);
        stats.client.req_message = c.client_req_message.load(Ordering::Relaxed);
        stats.client.req_control = c.client_req_control.load(Ordering::Relaxed);
        stats.keepalive_packets_sent = c.keepalive_packets_sent.load(Ordering::Relaxed);
        stats.keepalive_packets_recv = c.keepalive_packets_recv.load(Ordering::Relaxed);
        {
            let state = node.state();
            stats.statistics_start_time = timeval(Some(state.started));
        }
        stats.statistics_current_time = timeval(Some(SystemTime::now()));
        for owner in Owner::COMPONENTS {
            let Some(link) = node.link(owner) else {
                continue;
            };
            if !link.is_up() {
                continue;
            }
            match link.statistics().await {
                Ok(part) => merge(&mut stats, &part, &mut extras),
                Err(e) => warn!(component = owner.name(), "statistics failed: {e}"),
            }
        }
        (stats, extras)
    }
}

/// Adds a component's share of the counters to the node's statistics.
fn merge(
    stats: &mut Statistics,
    part: &ctdb_rpc::StatisticsPart,
    extras: &mut std::collections::BTreeMap<String, u64>,
) {
    for (name, &wide) in &part.counters {
        let value = wide as u32;
        let field = match name.as_str() {
            "frozen" => &mut stats.frozen,
            "recovering" => &mut stats.recovering,
            "node.req_call" => &mut stats.node.req_call,
            "node.reply_call" => &mut stats.node.reply_call,
            "node.req_dmaster" => &mut stats.node.req_dmaster,
            "node.reply_dmaster" => &mut stats.node.reply_dmaster,
            "node.reply_error" => &mut stats.node.reply_error,
            "timeouts.call" => &mut stats.timeouts.call,
            "timeouts.control" => &mut stats.timeouts.control,
            "timeouts.traverse" => &mut stats.timeouts.traverse,
            "total_calls" => &mut stats.total_calls,
            "pending_calls" => &mut stats.pending_calls,
            "childwrite_calls" => &mut stats.childwrite_calls,
            "pending_childwrite_calls" => &mut stats.pending_childwrite_calls,
            "memory_used" => &mut stats.memory_used,
            "max_hop_count" => {
                stats.max_hop_count = stats.max_hop_count.max(value);
                continue;
            }
            "num_recoveries" => &mut stats.num_recoveries,
            other => {
                *extras.entry(other.to_string()).or_default() += wide;
                continue;
            }
        };
        *field = field.saturating_add(value);
    }
    for (name, l) in &part.latencies {
        let counter = match name.as_str() {
            "call_latency" => &mut stats.call_latency,
            "childwrite_latency" => &mut stats.childwrite_latency,
            "reclock.ctdbd" => &mut stats.reclock_ctdbd,
            "reclock.recd" => &mut stats.reclock_recd,
            _ => continue,
        };
        *counter = LatencyCounter {
            num: l.num,
            min: l.min,
            max: l.max,
            total: l.total,
        };
    }
}

/// Typed calls of the other components of this node.
struct TransportRpc(Arc<Node>);

#[tonic::async_trait]
impl Transport for TransportRpc {
    type WatchNodesStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<NodeStates, Status>> + Send>>;

    /// The latest node states, then each change; a slow follower skips to the newest
    /// (a watch channel holds one value: nothing queues up).
    async fn watch_nodes(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        use futures::StreamExt;
        let states = tokio_stream::wrappers::WatchStream::new(self.0.watch_nodes()).map(Ok);
        Ok(Response::new(Box::pin(states)))
    }

    async fn set_health(&self, request: Request<Health>) -> Result<Response<Empty>, Status> {
        let health = request.into_inner();
        let reason = (!health.healthy).then_some(health.reason);
        set_unhealthy(&self.0, &health.source, reason);
        Ok(Response::new(Empty {}))
    }

    async fn get_node_info(&self, _: Request<Empty>) -> Result<Response<NodeInfo>, Status> {
        let node = &self.0;
        let flags = node
            .state()
            .flags
            .get(node.pnn as usize)
            .copied()
            .unwrap_or(0);
        Ok(Response::new(NodeInfo {
            pnn: node.pnn,
            num_nodes: node.mesh.num_nodes() as u32,
            flags,
            socket: node.config.socket.display().to_string(),
        }))
    }
}

pub async fn serve_transport_rpc(node: Arc<Node>) {
    let path = ctdb_rpc::uds::socket_path(&node.config.run_dir, "transport");
    let router = tonic::transport::Server::builder()
        .add_service(TransportServer::new(TransportRpc(node.clone())));
    if let Err(e) = ctdb_rpc::component::serve_on(&path, router, std::future::pending()).await {
        warn!("transport gRPC server failed: {e}");
    }
}

/// DUMP_MEMORY: what each process of the node holds (Samba answers with a talloc
/// report of its one process; ours has five). From /proc: resident set and its peak.
fn memory_report(node: &Node) -> String {
    let run_dir = &node.config.run_dir;
    let mut pids = vec![("ctdb-transport".to_string(), std::process::id())];
    for c in ["ctdbd", "ctdb-db", "ctdb-recoverd", "ctdb-eventd"] {
        let pid = std::fs::read_to_string(run_dir.join(format!("{c}.pid")))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() {
                pids.push((c.to_string(), pid));
            }
        }
    }
    let mut out = format!("ctdb-rs memory of node {}\n", node.pnn);
    out.push_str(&format!(
        "{:<16} {:>8} {:>12} {:>12}\n",
        "process", "pid", "rss", "peak rss"
    ));
    let mut total = 0u64;
    for (name, pid) in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss), Some(hwm)) => {
                total += rss;
                out.push_str(&format!("{name:<16} {pid:>8} {rss:>9} kB {hwm:>9} kB\n"));
            }
            _ => out.push_str(&format!("{name:<16} {pid:>8} {:>12}\n", "not running")),
        }
    }
    out.push_str(&format!("{:<16} {:>8} {total:>9} kB\n", "total", ""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modify_flags_leaves_connectivity_to_the_mesh() {
        use node_flags::{BANNED, DISCONNECTED, PERMANENTLY_DISABLED};
        assert_eq!(flag_change(0, BANNED), (BANNED, 0));
        assert_eq!(flag_change(BANNED, 0), (0, BANNED));
        assert_eq!(flag_change(0, DISCONNECTED | BANNED), (BANNED, 0));
        assert_eq!(
            flag_change(DISCONNECTED | PERMANENTLY_DISABLED, 0),
            (0, PERMANENTLY_DISABLED)
        );
    }
}
