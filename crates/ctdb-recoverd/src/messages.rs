//! The recovery daemon's srvids besides LEADER and ELECTION: what Samba's `ctdb` tool
//! and other nodes' daemons ask of it. One function per srvid: each decodes its payload
//! (a bad one is logged and dropped, never a panic), changes [`Requests`], and answers
//! when the sender gave a srvid to answer to. The loop in `daemon` reads [`Requests`]
//! to run, defer or skip takeover runs and recoveries.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError, Message};
use ctdb_protocol::srvid::{self, samba};
use futures::stream::{self, BoxStream, StreamExt};
use nix::errno::Errno;
use tokio::sync::mpsc::Receiver;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::nodes::Messenger;

/// The srvids this module serves.
pub const SRVIDS: [u64; 7] = [
    srvid::TAKEOVER_RUN,
    samba::DISABLE_TAKEOVER_RUNS,
    samba::DISABLE_RECOVERIES,
    samba::REBALANCE_NODE,
    srvid::DISABLE_IP_CHECK,
    srvid::RELOAD_NODES,
    srvid::MEM_DUMP,
];

/// A payload too short for what it must carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} needs {need} bytes, got {got}")]
pub struct PayloadError {
    pub what: &'static str,
    pub need: usize,
    pub got: usize,
}

fn need(data: &[u8], what: &'static str, need: usize) -> Result<(), PayloadError> {
    if data.len() < need {
        return Err(PayloadError {
            what,
            need,
            got: data.len(),
        });
    }
    Ok(())
}

pub(crate) fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A lone uint32 (REBALANCE_NODE's pnn, DISABLE_IP_CHECK's seconds).
pub fn decode_u32(data: &[u8], what: &'static str) -> Result<u32, PayloadError> {
    need(data, what, 4)?;
    Ok(u32_at(data, 0))
}

/// `ctdb_srvid_message`: who asks and where the answer goes; srvid 0 wants no answer.
/// 16 bytes: pnn, 4 bytes of C padding, srvid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrvidMessage {
    pub pnn: u32,
    pub srvid: u64,
}

impl SrvidMessage {
    pub const LEN: usize = 16;

    pub fn decode(data: &[u8]) -> Result<Self, PayloadError> {
        need(data, "ctdb_srvid_message", Self::LEN)?;
        Ok(Self {
            pnn: u32_at(data, 0),
            srvid: u64_at(data, 8),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::LEN);
        b.extend_from_slice(&self.pnn.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.srvid.to_le_bytes());
        b
    }
}

/// `ctdb_disable_message`: a [`SrvidMessage`] and for how many seconds (0: enable
/// again). 24 bytes on the wire; the last 4 are the C struct's tail padding, so 20 are
/// enough to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisableMessage {
    pub pnn: u32,
    pub srvid: u64,
    pub timeout: u32,
}

impl DisableMessage {
    pub const LEN: usize = 24;

    pub fn decode(data: &[u8]) -> Result<Self, PayloadError> {
        need(data, "ctdb_disable_message", 20)?;
        Ok(Self {
            pnn: u32_at(data, 0),
            srvid: u64_at(data, 8),
            timeout: u32_at(data, 16),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = SrvidMessage {
            pnn: self.pnn,
            srvid: self.srvid,
        }
        .to_bytes();
        b.extend_from_slice(&self.timeout.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b
    }
}

/// The answer of a recovery daemon: an int32, a pnn or a negative errno.
pub fn int_reply(value: i32) -> Bytes {
    Bytes::copy_from_slice(&value.to_le_bytes())
}

/// A negative errno, as answers carry failures.
pub fn failure(errno: Errno) -> i32 {
    -(errno as i32)
}

/// Sends `value` to (pnn, srvid) unless the asker wanted no answer (srvid 0).
pub fn answer<M: Messenger + ?Sized>(out: &M, pnn: u32, srvid: u64, value: i32) {
    if srvid == 0 {
        return;
    }
    if let Err(e) = out.message(pnn, srvid, int_reply(value)) {
        warn!(pnn, srvid = format!("{srvid:#x}"), "cannot answer: {e}");
    }
}

/// An operation others may disable for a while (Samba's takeover runs, recoveries,
/// IP checks): disabled until a deadline; and whether one runs right now.
#[derive(Debug, Clone, Default)]
pub struct Switch {
    until: Option<Instant>,
    running: bool,
}

impl Switch {
    /// Disables it for `secs` seconds from `now`; 0 enables it again. Refused with
    /// EAGAIN while one runs: disabling then would not stop it, and the asker must know.
    pub fn disable(&mut self, now: Instant, secs: u32) -> Result<(), Errno> {
        if secs == 0 {
            self.until = None;
            return Ok(());
        }
        if self.running {
            return Err(Errno::EAGAIN);
        }
        self.until = Some(now + Duration::from_secs(u64::from(secs)));
        Ok(())
    }

    /// How much longer it stays disabled; `None` when it may run.
    pub fn disabled_for(&mut self, now: Instant) -> Option<Duration> {
        match self.until {
            Some(until) if until > now => Some(until - now),
            _ => {
                self.until = None;
                None
            }
        }
    }

    /// Marks one as running unless disabled (then: for how much longer).
    pub fn begin(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(left) = self.disabled_for(now) {
            return Err(left);
        }
        self.running = true;
        Ok(())
    }

    pub fn end(&mut self) {
        self.running = false;
    }

    pub fn running(&self) -> bool {
        self.running
    }
}

/// What the srvids asked of this recovery daemon, shared by the message task and the
/// loop. Outlives a connection to the node: a disable stays in force across one.
#[derive(Debug, Default)]
pub struct Requests {
    pub takeover_runs: Switch,
    pub recoveries: Switch,
    /// Kept for the IP check this daemon does not have yet, so that one added later
    /// honours DISABLE_IP_CHECK.
    pub ip_checks: Switch,
    /// Takeover runs asked of this node while it leads, answered after the next run.
    pub takeover_waiting: Vec<SrvidMessage>,
    /// Nodes REBALANCE_NODE named, for the next takeover run to consider.
    pub rebalance: BTreeSet<u32>,
    /// Whether this node leads; the loop keeps it current.
    pub leading: bool,
}

/// What the loop is to do about a takeover run now.
#[derive(Debug, PartialEq, Eq)]
pub enum Takeover {
    /// Nothing asked for one.
    Idle,
    /// One is due but takeover runs are disabled for this much longer.
    Deferred(Duration),
    /// Run one (now marked running) and answer these requests with its result.
    Run {
        waiting: Vec<SrvidMessage>,
        rebalance: Vec<u32>,
    },
}

impl Requests {
    /// Whether a takeover run is to start now: one is `needed` by the loop or asked for,
    /// and takeover runs are not disabled. Only requests already waiting are handed
    /// out: later ones may follow changes the run does not cover yet.
    pub fn start_takeover(&mut self, now: Instant, needed: bool) -> Takeover {
        if !needed && self.takeover_waiting.is_empty() {
            return Takeover::Idle;
        }
        if let Err(left) = self.takeover_runs.begin(now) {
            return Takeover::Deferred(left);
        }
        Takeover::Run {
            waiting: std::mem::take(&mut self.takeover_waiting),
            rebalance: std::mem::take(&mut self.rebalance).into_iter().collect(),
        }
    }

    /// Forgets what only a leader keeps, when this node does not lead (the asker's
    /// broadcast reached the real leader too).
    pub fn not_leading(&mut self) {
        self.leading = false;
        if !self.takeover_waiting.is_empty() {
            debug!(
                requests = self.takeover_waiting.len(),
                "not the leader: dropping takeover run requests"
            );
            self.takeover_waiting.clear();
        }
        self.rebalance.clear();
    }
}

/// What a handler sees of its node: its pnn, the time, and a way to answer.
pub struct Ctx<'a, M: ?Sized> {
    pub pnn: u32,
    pub now: Instant,
    pub out: &'a M,
}

/// Whether the loop should run a round now rather than at its next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    Wake,
}

/// A name for logs.
pub fn name(id: u64) -> &'static str {
    match id {
        srvid::TAKEOVER_RUN => "TAKEOVER_RUN",
        samba::DISABLE_TAKEOVER_RUNS => "DISABLE_TAKEOVER_RUNS",
        samba::DISABLE_RECOVERIES => "DISABLE_RECOVERIES",
        samba::REBALANCE_NODE => "REBALANCE_NODE",
        srvid::DISABLE_IP_CHECK => "DISABLE_IP_CHECK",
        srvid::RELOAD_NODES => "RELOAD_NODES",
        srvid::MEM_DUMP => "MEM_DUMP",
        _ => "unknown srvid",
    }
}

/// Handles one message.
pub fn handle<M: Messenger + ?Sized>(req: &mut Requests, cx: &Ctx<'_, M>, m: &Message) -> After {
    let data = &m.data[..];
    let result = match m.srvid {
        srvid::TAKEOVER_RUN => takeover_run(req, data),
        samba::DISABLE_TAKEOVER_RUNS => disable_takeover_runs(req, cx, data),
        samba::DISABLE_RECOVERIES => disable_recoveries(req, cx, data),
        samba::REBALANCE_NODE => rebalance_node(req, data),
        srvid::DISABLE_IP_CHECK => disable_ip_check(req, cx, data),
        srvid::RELOAD_NODES => Ok(reload_nodes()),
        srvid::MEM_DUMP => mem_dump(cx, data),
        other => {
            debug!(srvid = format!("{other:#x}"), "no handler: ignored");
            Ok(After::Nothing)
        }
    };
    result.unwrap_or_else(|e| {
        warn!(
            from = m.srcnode,
            "dropping a bad {} message: {e}",
            name(m.srvid)
        );
        After::Nothing
    })
}

/// TAKEOVER_RUN: the leader queues it for the loop, which answers after the run with
/// its pnn or a negative errno. The asker broadcasts to every node: others ignore it.
fn takeover_run(req: &mut Requests, data: &[u8]) -> Result<After, PayloadError> {
    let m = SrvidMessage::decode(data)?;
    if !req.leading {
        debug!(
            from = m.pnn,
            "takeover run request: not the leader, ignored"
        );
        return Ok(After::Nothing);
    }
    info!(from = m.pnn, "takeover run requested");
    // A tool that asks again after a timeout gets one answer, not two.
    if !req.takeover_waiting.contains(&m) {
        req.takeover_waiting.push(m);
    }
    Ok(After::Wake)
}

/// DISABLE_TAKEOVER_RUNS: every node's daemon obeys (a non-leader could lead soon).
fn disable_takeover_runs<M: Messenger + ?Sized>(
    req: &mut Requests,
    cx: &Ctx<'_, M>,
    data: &[u8],
) -> Result<After, PayloadError> {
    disable(&mut req.takeover_runs, "takeover runs", cx, data)
}

/// DISABLE_RECOVERIES: likewise for recoveries (Samba's tool, around `reloadnodes`).
fn disable_recoveries<M: Messenger + ?Sized>(
    req: &mut Requests,
    cx: &Ctx<'_, M>,
    data: &[u8],
) -> Result<After, PayloadError> {
    disable(&mut req.recoveries, "recoveries", cx, data)
}

fn disable<M: Messenger + ?Sized>(
    switch: &mut Switch,
    what: &str,
    cx: &Ctx<'_, M>,
    data: &[u8],
) -> Result<After, PayloadError> {
    let m = DisableMessage::decode(data)?;
    let value = match switch.disable(cx.now, m.timeout) {
        Ok(()) if m.timeout == 0 => {
            info!(from = m.pnn, "{what} enabled again");
            cx.pnn as i32
        }
        Ok(()) => {
            info!(from = m.pnn, seconds = m.timeout, "{what} disabled");
            cx.pnn as i32
        }
        Err(e) => {
            warn!(from = m.pnn, "cannot disable {what} while one runs");
            failure(e)
        }
    };
    answer(cx.out, m.pnn, m.srvid, value);
    // Enabling again may let a deferred run start at once.
    Ok(if m.timeout == 0 {
        After::Wake
    } else {
        After::Nothing
    })
}

/// REBALANCE_NODE (after `ctdb addip`): the leader remembers the node for its next
/// takeover run, which Samba 4.17 does not start for it.
fn rebalance_node(req: &mut Requests, data: &[u8]) -> Result<After, PayloadError> {
    let pnn = decode_u32(data, "REBALANCE_NODE pnn")?;
    if !req.leading {
        debug!(pnn, "rebalance request: not the leader, ignored");
        return Ok(After::Nothing);
    }
    info!(pnn, "node to rebalance at the next takeover run");
    req.rebalance.insert(pnn);
    Ok(After::Nothing)
}

/// DISABLE_IP_CHECK (around `ctdb moveip`): no IP checks for that many seconds. No
/// answer is expected.
fn disable_ip_check<M: Messenger + ?Sized>(
    req: &mut Requests,
    cx: &Ctx<'_, M>,
    data: &[u8],
) -> Result<After, PayloadError> {
    let secs = decode_u32(data, "DISABLE_IP_CHECK timeout")?;
    // Never refused: this daemon has no IP check that could be running.
    let _ = req.ip_checks.disable(cx.now, secs);
    if secs == 0 {
        info!("IP checks enabled again");
    } else {
        info!(seconds = secs, "IP checks disabled");
    }
    Ok(After::Nothing)
}

/// RELOAD_NODES: this daemon keeps no copy of the nodes file (every round reads the
/// node map from its node), so a fresh round is all a reload needs.
fn reload_nodes() -> After {
    info!("nodes file reloaded on the node: looking at the cluster again");
    After::Wake
}

/// MEM_DUMP (`ctdb rddumpmemory`): a text report of this process's memory, sent to the
/// asker, or logged when it wants no answer. Like Samba's report: text without a NUL.
fn mem_dump<M: Messenger + ?Sized>(cx: &Ctx<'_, M>, data: &[u8]) -> Result<After, PayloadError> {
    let m = SrvidMessage::decode(data)?;
    let status = std::fs::read_to_string("/proc/self/status");
    let report = memory_report(cx.pnn, std::process::id(), status.as_deref());
    if m.srvid == 0 {
        info!("{report}");
    } else if let Err(e) = cx.out.message(m.pnn, m.srvid, Bytes::from(report)) {
        warn!(to = m.pnn, "cannot send the memory report: {e}");
    }
    Ok(After::Nothing)
}

/// The lines of `/proc/self/status` that say how much memory the process uses.
const MEMORY_KEYS: [&str; 8] = [
    "VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "VmData", "Threads",
];

pub fn memory_report(pnn: u32, pid: u32, status: Result<&str, &std::io::Error>) -> String {
    let mut report = format!("memory of ctdb-recoverd (pid {pid}) on node {pnn}\n");
    match status {
        Ok(text) => {
            for line in text.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                if MEMORY_KEYS.contains(&key) {
                    report.push_str(&format!(
                        "    {:<10}{:>14}\n",
                        format!("{key}:"),
                        value.trim()
                    ));
                }
            }
        }
        Err(e) => report.push_str(&format!("    /proc/self/status unreadable: {e}\n")),
    }
    report
}

/// Messages for the srvids of [`SRVIDS`], from one connection.
pub struct Inbox {
    messages: BoxStream<'static, Message>,
}

fn receiver_stream(rx: Receiver<Message>) -> BoxStream<'static, Message> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) }).boxed()
}

/// Registers [`SRVIDS`] with the node behind `client`.
pub async fn register(client: &Client) -> Result<Inbox, ClientError> {
    let mut streams = Vec::with_capacity(SRVIDS.len());
    for id in SRVIDS {
        streams.push(receiver_stream(client.register_srvid(id).await?));
    }
    Ok(Inbox {
        messages: stream::select_all(streams).boxed(),
    })
}

/// Handles the inbox's messages as they come, apart from the loop, so that an answer
/// never waits for a long recovery; wakes the loop when a message needs it.
pub async fn serve(
    mut inbox: Inbox,
    client: Client,
    requests: Arc<Mutex<Requests>>,
    wake: Arc<Notify>,
) {
    let pnn = client.pnn();
    while let Some(m) = inbox.messages.next().await {
        let cx = Ctx {
            pnn,
            now: Instant::now(),
            out: &client,
        };
        let after = handle(&mut ctdb_rpc::component::lock(&requests), &cx, &m);
        if after == After::Wake {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests;
