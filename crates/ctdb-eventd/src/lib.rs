//! ctdb-eventd: runs the event scripts of the events directory, keeps each event's last
//! script status, and monitors the node's health.
//!
//! [`Eventd`] is one cheap-to-clone handle on the daemon. It is at once
//! - the [`PacketHandler`] for the controls eventd owns (GET_EVENT_SCRIPT_STATUS,
//!   ENABLE/DISABLE_SCRIPT, RUN_EVENTSCRIPTS, ENABLE/DISABLE_MONITOR, GET_MONMODE),
//! - the `Eventd` gRPC service recoverd calls to run an event ([`service`]),
//! - and what the monitor loop ([`monitor`]) drives.
//!
//! Events never overlap: one runs at a time, and a monitor run in flight is cancelled
//! (its scripts killed, the run counting for nothing) when any other event comes, as in
//! Samba. See [`runner`] for how scripts are found and run.

#![forbid(unsafe_code)]

pub mod event_socket;
pub mod monitor;
pub mod runner;
pub mod service;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctdb_protocol::control::{decode_request, ControlData};
use ctdb_protocol::event::EventCall;
use ctdb_protocol::flags::control::NOREPLY;
use ctdb_protocol::packet::Header;
use ctdb_protocol::wire::Wire;
use ctdb_protocol::{Body, Opcode, Operation, Packet, ReplyControl, ReqControl};
use ctdb_rpc::component::{ControlTable, Outbox, PacketHandler};
use ctdb_rpc::Envelope;
use tokio::sync::Notify;

pub use monitor::{HealthSink, TransportHealth};
pub use runner::{RunResult, Runner, ScriptInfo, ScriptResult};

/// `CTDB_MONITORING_ACTIVE`: GET_MONMODE's status word while monitoring runs.
pub const MONITORING_ACTIVE: i32 = 0;
/// `CTDB_MONITORING_DISABLED`: GET_MONMODE's status word after DISABLE_MONITOR.
pub const MONITORING_DISABLED: i32 = 1;

/// One control of eventd's, given its decoded data: the reply, or `None` when a task
/// sends it later.
type Handler = fn(&Eventd, ControlData, &ReplyTo, &Outbox) -> Option<ReplyControl>;

/// The controls ctdb-eventd owns: what it dispatches and what it declares to
/// transport (which routes these here).
static CONTROLS: ControlTable<Handler> = ControlTable::new(&[
    (Opcode::GetEventScriptStatus, |e, data, _, _| match data {
        ControlData::Uint32(n) => Some(e.get_script_status(n)),
        _ => missing_argument(Opcode::GetEventScriptStatus),
    }),
    (Opcode::EnableScript, |e, data, _, _| match data {
        ControlData::String(Some(name)) => Some(e.set_script(&name, true)),
        _ => missing_argument(Opcode::EnableScript),
    }),
    (Opcode::DisableScript, |e, data, _, _| match data {
        ControlData::String(Some(name)) => Some(e.set_script(&name, false)),
        _ => missing_argument(Opcode::DisableScript),
    }),
    (Opcode::RunEventscripts, |e, data, to, out| match data {
        ControlData::String(Some(cmd)) => e.run_eventscripts(&cmd, to, out),
        _ => missing_argument(Opcode::RunEventscripts),
    }),
    (Opcode::EnableMonitor, |e, _, _, _| {
        tracing::info!("monitoring enabled");
        e.set_monitoring(true);
        Some(ok(0))
    }),
    (Opcode::DisableMonitor, |e, _, _, _| {
        tracing::info!("monitoring disabled");
        e.set_monitoring(false);
        Some(ok(0))
    }),
    (Opcode::GetMonmode, |e, _, _, _| {
        Some(ok(if e.monitoring_enabled() {
            MONITORING_ACTIVE
        } else {
            MONITORING_DISABLED
        }))
    }),
]);

fn missing_argument(opcode: Opcode) -> Option<ReplyControl> {
    Some(ReplyControl::error(
        -1,
        &format!("{}: missing argument", opcode.name()),
    ))
}

/// The opcodes of the controls ctdb-eventd owns.
pub fn owned_controls() -> Vec<Opcode> {
    CONTROLS.opcodes().collect()
}

/// What the event daemon needs from the node's configuration.
#[derive(Debug, Clone)]
pub struct EventdConfig {
    /// Holds `legacy/NN.name.script` (Samba 4.17) and/or `NN.name` scripts.
    pub events_dir: PathBuf,
    /// Deadline of one event run (Samba's EventScriptTimeout).
    pub script_timeout: Duration,
    /// Pause between the end of one monitor run and the start of the next.
    pub monitor_interval: Duration,
    /// Run as `debug_script <pid> <event>` when a script times out.
    pub debug_script: Option<PathBuf>,
    /// Monitoring starts after the `startup` event; if none succeeded this long after
    /// the daemon started (a node that never completes a first recovery, or an eventd
    /// restarted after startup ran), monitoring starts anyway.
    pub startup_grace: Duration,
}

impl EventdConfig {
    /// Samba's defaults: 30 s script timeout, monitor every 15 s.
    pub fn new(events_dir: impl Into<PathBuf>) -> Self {
        Self {
            events_dir: events_dir.into(),
            script_timeout: Duration::from_secs(30),
            monitor_interval: Duration::from_secs(15),
            debug_script: None,
            startup_grace: Duration::from_secs(30),
        }
    }
}

struct Inner {
    config: EventdConfig,
    runner: Runner,
    monitoring: AtomicBool,
    started: AtomicBool,
    startup_done: Notify,
}

/// The event daemon. Clones share one state.
#[derive(Clone)]
pub struct Eventd {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Eventd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eventd")
            .field("config", &self.inner.config)
            .field("monitoring", &self.monitoring_enabled())
            .field("started", &self.startup_done())
            .finish()
    }
}

impl Eventd {
    pub fn new(config: EventdConfig) -> Self {
        let runner = Runner::new(
            config.events_dir.clone(),
            runner::RunOptions {
                timeout: config.script_timeout,
                debug_script: config.debug_script.clone(),
            },
        );
        Self {
            inner: Arc::new(Inner {
                config,
                runner,
                monitoring: AtomicBool::new(true),
                started: AtomicBool::new(false),
                startup_done: Notify::new(),
            }),
        }
    }

    pub fn config(&self) -> &EventdConfig {
        &self.inner.config
    }

    pub fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    /// Runs `event` with `args` (a monitor in flight is cancelled first). A successful
    /// `startup` lets periodic monitoring begin.
    pub async fn run_event(
        &self,
        event: EventCall,
        args: &[String],
        timeout: Option<Duration>,
    ) -> RunResult {
        self.run_named(event.name(), args, timeout).await
    }

    /// Runs the event called `event`, known to Samba's tools or not (scripts get the
    /// name as their first argument).
    pub async fn run_named(
        &self,
        event: &str,
        args: &[String],
        timeout: Option<Duration>,
    ) -> RunResult {
        let result = self.inner.runner.run(event, args, timeout).await;
        if event == EventCall::Startup.name() && result.status == 0 {
            self.inner.started.store(true, Ordering::SeqCst);
            self.inner.startup_done.notify_one();
        }
        result
    }

    /// The last completed run of `event`.
    pub fn script_status(&self, event: EventCall) -> Option<RunResult> {
        self.inner.runner.last_run(event.name())
    }

    pub fn monitoring_enabled(&self) -> bool {
        self.inner.monitoring.load(Ordering::SeqCst)
    }

    /// ENABLE_MONITOR / DISABLE_MONITOR. Disabling skips later monitor runs; the node's
    /// health stays what the last run made it.
    pub fn set_monitoring(&self, enabled: bool) {
        self.inner.monitoring.store(enabled, Ordering::SeqCst);
    }

    /// True once a `startup` event succeeded.
    pub fn startup_done(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
    }

    pub(crate) fn startup_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.startup_done.notified()
    }

    /// Stops every run now and later: scripts in flight are killed.
    pub fn shutdown(&self) {
        self.inner.runner.shutdown();
    }

    /// Handles one control; `None` when the reply is sent later by a task.
    fn control(&self, req: ReqControl, to: &ReplyTo, out: &Outbox) -> Option<ReplyControl> {
        let opcode = req.opcode;
        let Some(handler) = CONTROLS.get(opcode) else {
            tracing::warn!(
                opcode = opcode.as_u32(),
                name = opcode.name(),
                "control not handled by ctdb-eventd"
            );
            return Some(ReplyControl::error(-1, &opcode.unhandled_by("ctdb-eventd")));
        };
        let data = match decode_request(opcode, &req.data) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(name = opcode.name(), error = %e, "malformed control data");
                return Some(ReplyControl::error(
                    -1,
                    &format!("malformed {} data: {e}", opcode.name()),
                ));
            }
        };
        handler(self, data, to, out)
    }

    fn get_script_status(&self, n: u32) -> ReplyControl {
        let Some(event) = EventCall::from_u32(n) else {
            return ReplyControl::error(-1, &format!("unknown event {n}"));
        };
        match self.script_status(event) {
            Some(run) => ReplyControl {
                status: 0,
                data: run.to_wire().to_bytes().into(),
                errmsg: Default::default(),
            },
            None => ReplyControl::error(-1, &format!("event {event} has not run yet")),
        }
    }

    fn set_script(&self, name: &str, enabled: bool) -> ReplyControl {
        match runner::set_script_enabled(&self.inner.config.events_dir, name, enabled) {
            Ok(s) => {
                tracing::info!(
                    script = %s.name,
                    "{} event script",
                    if enabled { "enabled" } else { "disabled" }
                );
                ok(0)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot change event script");
                ReplyControl::error(-1, &e.to_string())
            }
        }
    }

    /// RUN_EVENTSCRIPTS "event args...": runs in a task, which sends the reply.
    fn run_eventscripts(&self, cmd: &str, to: &ReplyTo, out: &Outbox) -> Option<ReplyControl> {
        let mut words = cmd.split_whitespace();
        let Some(event) = words.next().and_then(EventCall::from_name) else {
            return Some(ReplyControl::error(
                -1,
                &format!("unknown event in {cmd:?}"),
            ));
        };
        let args: Vec<String> = words.map(str::to_owned).collect();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Some(ReplyControl::error(-1, "ctdb-eventd has no runtime"));
        };
        let (this, to, out) = (self.clone(), to.clone(), out.clone());
        rt.spawn(async move {
            let result = this.run_event(event, &args, None).await;
            let reply = if result.status == 0 {
                ok(0)
            } else {
                ReplyControl::error(result.status, &result.summary())
            };
            to.send(&out, reply);
        });
        None
    }
}

fn ok(status: i32) -> ReplyControl {
    ReplyControl {
        status,
        ..ReplyControl::default()
    }
}

/// Where a control's reply goes: the request's reqid, srcnode and destnode swapped.
#[derive(Debug, Clone)]
struct ReplyTo {
    client: u64,
    generation: u32,
    destnode: u32,
    srcnode: u32,
    reqid: u32,
    noreply: bool,
    /// The request's trace id: its answer carries it back, however late.
    trace: u64,
}

impl ReplyTo {
    fn send(&self, out: &Outbox, reply: ReplyControl) {
        if self.noreply {
            return;
        }
        let packet = Packet {
            generation: self.generation,
            destnode: self.destnode,
            srcnode: self.srcnode,
            reqid: self.reqid,
            body: Body::ReplyControl(reply),
        };
        out.to_client_traced(self.client, self.trace, packet.to_bytes());
    }
}

/// A packet that did not decode: logged, and answered if it is a control whose header
/// can still be read.
fn refuse(envelope: &Envelope, error: ctdb_protocol::DecodeError, out: &Outbox) {
    tracing::warn!(
        client = envelope.client,
        from_node = envelope.from_node,
        len = envelope.packet.len(),
        %error,
        "dropping a packet that does not decode"
    );
    let Ok(header) = Header::parse(&envelope.packet, u32::MAX) else {
        return;
    };
    if Operation::from_u32(header.operation) != Some(Operation::ReqControl) {
        return;
    }
    let flags = ctdb_protocol::packet::raw_control_flags(&envelope.packet).unwrap_or(0);
    ReplyTo {
        client: envelope.client,
        generation: header.generation,
        destnode: header.srcnode,
        srcnode: header.destnode,
        reqid: header.reqid,
        noreply: flags & NOREPLY != 0,
        trace: envelope.trace,
    }
    .send(
        out,
        ReplyControl::error(-1, &format!("malformed packet: {error}")),
    );
}

impl PacketHandler for Eventd {
    fn ownership(&self) -> ctdb_rpc::Ownership {
        CONTROLS.ownership()
    }

    fn handle(&mut self, envelope: Envelope, out: &Outbox) {
        // One span per request, under the trace id transport gave it.
        let _span = ctdb_rpc::trace::request_span(&envelope);
        tracing::trace!("from transport");
        let packet = match Packet::from_slice(&envelope.packet) {
            Ok(p) => p,
            Err(e) => return refuse(&envelope, e, out),
        };
        let Body::ReqControl(req) = packet.body else {
            tracing::debug!(
                operation = packet.body.operation().name(),
                client = envelope.client,
                from_node = envelope.from_node,
                "ignoring a packet ctdb-eventd does not handle"
            );
            return;
        };
        let to = ReplyTo {
            client: envelope.client,
            generation: packet.generation,
            destnode: packet.srcnode,
            srcnode: packet.destnode,
            reqid: packet.reqid,
            noreply: req.flags & NOREPLY != 0,
            trace: envelope.trace,
        };
        if let Some(reply) = self.control(req, &to, out) {
            to.send(out, reply);
        }
    }
}
