//! Long-lived packet streams to db, recoverd and eventd.
//!
//! One task per component keeps a connection open to the component's packet socket
//! ([`ctdb_rpc::packets`]), reconnecting with back-off when it restarts. Each time it
//! connects, it asks the component what it serves (`Declare`) before it sends it
//! anything, and the node routes controls by that ([`crate::routing::Routes`]); the
//! connection starts with the hello exchange: a component of another frame format is
//! refused (logged as an error) and tried again, as one that is down. Packets queued
//! for it are drained into one write, everything ready at once.
//!
//! A component may instead run inside transport's process ([`start_in_process`]): the
//! same queue then feeds its handler directly, with no socket hop on the hot path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use ctdb_rpc::component::{handle_traced, lock, Outbox, PacketHandler};
use ctdb_rpc::component_client::ComponentClient;
use ctdb_rpc::packets;
use ctdb_rpc::queue::{queue, QueueRx, QueueTx, Refused};
use ctdb_rpc::{ComponentState, DebugLevel, Empty, Envelope, Ownership, StatisticsPart};
use tokio::net::UnixStream;
use tokio_stream::StreamExt;
use tokio_util::codec::FramedRead;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::router::u32_at;
use crate::routing::Owner;

const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where a component runs.
enum Backend {
    /// Its own process, reached on its socket.
    Remote(Channel),
    /// Inside transport's process.
    Local(Arc<Mutex<dyn PacketHandler>>),
}

/// Transport's end of one component's packet stream.
pub struct Link {
    pub owner: Owner,
    tx: QueueTx<Envelope>,
    up: AtomicBool,
    /// Local clients' packets queued while the component is down.
    held: AtomicUsize,
    /// Packet connections made to the component (see [`Link::reconnects`]).
    connects: std::sync::atomic::AtomicU64,
    /// Local clients' calls sent to the component and not answered yet, by client and
    /// reqid: a component that restarts before it answers gets them again (see
    /// [`Link::calls_in_flight`]).
    in_flight: Mutex<HashMap<(u64, u32), Envelope>>,
    backend: Backend,
}

/// Most bytes of packets queued for one component: past it (the component does not
/// read), more are refused and their senders answered with an error.
pub const LINK_LIMIT: usize = 256 << 20;

/// Most local clients' calls [`Link`] remembers as in flight; beyond, a call is still
/// sent but not sent again should the component restart before it answers.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// Where a packet's reqid is (its header: length, magic, version, generation,
/// operation, destnode, srcnode, reqid).
const REQID_AT: usize = 28;
const OPERATION_AT: usize = 16;

/// Most packets of local clients held for a component that is down (being restarted):
/// they reach it when it is back, as Samba's daemon holds calls during a recovery, so
/// a client such as smbd never sees a restart of ctdb-db. Beyond this, refused.
pub const MAX_HELD: usize = 10_000;

impl Link {
    /// The component's share of the node's statistics.
    pub async fn statistics(&self) -> Result<StatisticsPart, String> {
        match &self.backend {
            Backend::Remote(channel) => {
                let mut c = ComponentClient::new(channel.clone());
                match tokio::time::timeout(Duration::from_secs(2), c.statistics(Empty {})).await {
                    Ok(Ok(part)) => Ok(part.into_inner()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timed out".into()),
                }
            }
            Backend::Local(handler) => Ok(lock(handler).statistics()),
        }
    }

    /// Whether the component answers a status request within `wait` (one that runs
    /// in this process always does).
    pub async fn answers(&self, wait: Duration) -> bool {
        match &self.backend {
            Backend::Remote(channel) => {
                let mut c = ComponentClient::new(channel.clone());
                matches!(
                    tokio::time::timeout(wait, c.status(Empty {})).await,
                    Ok(Ok(_))
                )
            }
            Backend::Local(_) => true,
        }
    }

    pub async fn reset_statistics(&self) {
        match &self.backend {
            Backend::Remote(channel) => {
                let _ = ComponentClient::new(channel.clone())
                    .reset_statistics(Empty {})
                    .await;
            }
            Backend::Local(handler) => lock(handler).reset_statistics(),
        }
    }

    /// Sets the component's log level; false when it could not be reached.
    pub async fn set_debug(&self, level: i32) -> bool {
        match &self.backend {
            Backend::Remote(channel) => ComponentClient::new(channel.clone())
                .set_debug(DebugLevel { level })
                .await
                .is_ok(),
            Backend::Local(handler) => {
                lock(handler).set_debug(level);
                true
            }
        }
    }

    /// As [`set_debug`](Self::set_debug), trying again for a few seconds while the
    /// component's gRPC socket is not served yet (it is bound just after its packet
    /// socket, which transport saw first).
    pub async fn set_debug_when_up(&self, level: i32) {
        for _ in 0..50 {
            if self.set_debug(level).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        warn!(
            component = self.owner.name(),
            "could not give the restarted component the node's debug level"
        );
    }

    /// Queues a packet for the component; false when it is not connected now or its
    /// queue is full.
    pub fn send(&self, envelope: Envelope) -> bool {
        self.is_up() && self.queue(envelope)
    }

    fn queue(&self, envelope: Envelope) -> bool {
        self.remember_call(&envelope);
        match self.tx.send(envelope) {
            Ok(()) => true,
            Err(Refused::Full(_)) => {
                warn!(
                    component = self.owner.name(),
                    queued = self.tx.queued(),
                    "component does not read its packets: one refused"
                );
                false
            }
            Err(Refused::Closed(_)) => false,
        }
    }

    /// Queues a local client's packet for the component, holding it while the
    /// component is down (up to [`MAX_HELD`]); false when refused.
    pub fn send_or_hold(&self, envelope: Envelope) -> bool {
        if self.is_up() {
            return self.queue(envelope);
        }
        if self.held.fetch_add(1, Ordering::AcqRel) >= MAX_HELD {
            self.held.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.queue(envelope)
    }

    /// Whether the component runs inside transport's process.
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A local client's REQ_CALL to a component that runs in its own process is
    /// remembered until answered ([`Link::answered`]).
    fn remember_call(&self, envelope: &Envelope) {
        if envelope.client == 0
            || matches!(self.backend, Backend::Local(_))
            || u32_at(&envelope.packet, OPERATION_AT)
                != Some(ctdb_protocol::packet::Operation::ReqCall as u32)
        {
            return;
        }
        let Some(reqid) = u32_at(&envelope.packet, REQID_AT) else {
            return;
        };
        let mut in_flight = lock(&self.in_flight);
        if in_flight.len() < MAX_IN_FLIGHT {
            in_flight.insert((envelope.client, reqid), envelope.clone());
        }
    }

    /// The component sent `packet` to local client `client`: the call of that reqid,
    /// if it was one, is answered.
    pub fn answered(&self, client: u64, packet: &[u8]) {
        if let Some(reqid) = u32_at(packet, REQID_AT) {
            let mut in_flight = lock(&self.in_flight);
            if !in_flight.is_empty() {
                in_flight.remove(&(client, reqid));
            }
        }
    }

    /// The calls the component was sent and has not answered. A component that
    /// restarted lost them with its process (Samba's daemon never restarts under its
    /// clients); they are sent to the new one, so that a client such as smbd gets its
    /// answer instead of waiting for ever. The calls Samba's clients send (fetch, fetch
    /// with header, the empty migration call) only read: running one twice is harmless.
    fn calls_in_flight(&self) -> Vec<Envelope> {
        lock(&self.in_flight).values().cloned().collect()
    }

    /// What the component serves (`Declare`), asked once, waiting up to `wait`:
    /// `Ok(None)` when it has no `Declare` (an older build), `Err` when it did not
    /// answer.
    async fn declare_once(&self, wait: Duration) -> Result<Option<Ownership>, String> {
        let channel = match &self.backend {
            Backend::Remote(channel) => channel,
            Backend::Local(handler) => return Ok(Some(lock(handler).ownership())),
        };
        let mut client = ComponentClient::new(channel.clone());
        match tokio::time::timeout(wait, client.declare(Empty {})).await {
            Ok(Ok(ownership)) => Ok(Some(ownership.into_inner())),
            Ok(Err(e)) if e.code() == tonic::Code::Unimplemented => {
                warn!(component = self.owner.name(), "no Declare: {e}");
                Ok(None)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// What the component serves, asked again for up to [`DECLARE_WAIT`] while its
    /// gRPC socket comes up; `None` when it does not say.
    pub async fn declaration(&self) -> Option<Ownership> {
        let deadline = tokio::time::Instant::now() + DECLARE_WAIT;
        loop {
            let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.declare_once(wait).await {
                Ok(declared) => return declared,
                Err(e) => tracing::debug!(
                    component = self.owner.name(),
                    "cannot ask what the component serves yet: {e}"
                ),
            }
            if tokio::time::Instant::now() + DECLARE_RETRY >= deadline {
                break;
            }
            tokio::time::sleep(DECLARE_RETRY).await;
        }
        warn!(
            component = self.owner.name(),
            "the component did not say what it serves within {DECLARE_WAIT:?}: routing to \
             it by the table"
        );
        None
    }

    /// How often the packet connection was made again after the first: the
    /// component's restarts (or transport's reconnections to it) since transport
    /// started.
    pub fn reconnects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed).saturating_sub(1)
    }
}

/// How long transport asks a component that just came up what it serves (meanwhile
/// what is sent to it is held), and how often.
const DECLARE_WAIT: Duration = Duration::from_secs(5);
const DECLARE_RETRY: Duration = Duration::from_millis(50);
/// How long one `Declare` may take.
const DECLARE_TIMEOUT: Duration = Duration::from_secs(1);

/// Something that takes the packets a component sends back.
pub trait Deliver: Send + Sync + 'static {
    fn deliver_from(&self, owner: Owner, envelope: Envelope);
    /// The component's connection came up and it declared what it serves (`None`: it
    /// did not say).
    fn declared(&self, _owner: Owner, _ownership: Option<Ownership>) {}
    fn link_changed(&self, _owner: Owner, _up: bool) {}
    /// The component published a new state (its `WatchState`).
    fn state_changed(&self, _owner: Owner, _state: ComponentState) {}
}

/// Creates the link to `owner` in `run_dir` (its gRPC socket and its packet socket)
/// and starts the task that keeps the packet socket connected.
pub fn start(owner: Owner, run_dir: &Path, sink: Arc<dyn Deliver>) -> Arc<Link> {
    let (tx, rx) = queue(LINK_LIMIT);
    let channel = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(run_dir, owner.name()));
    let link = Arc::new(Link {
        owner,
        tx,
        up: AtomicBool::new(false),
        held: AtomicUsize::new(0),
        connects: std::sync::atomic::AtomicU64::new(0),
        in_flight: Mutex::new(HashMap::new()),
        backend: Backend::Remote(channel.clone()),
    });
    let packets = packets::socket_path(run_dir, owner.name());
    if owner == Owner::Db {
        tokio::spawn(follow_state(owner, channel, sink.clone()));
    }
    tokio::spawn(keep_connected(link.clone(), packets, rx, sink));
    link
}

/// Follows a component's `WatchState` for as long as transport runs, again after
/// each restart of the component.
async fn follow_state(owner: Owner, channel: Channel, sink: Arc<dyn Deliver>) {
    let mut client = ComponentClient::new(channel);
    loop {
        match client.watch_state(Empty {}).await {
            Ok(response) => {
                let mut states = response.into_inner();
                while let Ok(Some(state)) = states.message().await {
                    sink.state_changed(owner, state);
                }
            }
            Err(e) => tracing::debug!(
                component = owner.name(),
                "cannot follow the component's state yet: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `handler` inside this process as `owner`: packets go straight to it.
pub fn start_in_process(
    owner: Owner,
    handler: Arc<Mutex<dyn PacketHandler>>,
    sink: Arc<dyn Deliver>,
) -> Arc<Link> {
    let (tx, mut rx) = queue::<Envelope>(LINK_LIMIT);
    let (outbox, mut outgoing) = Outbox::new();
    let link = Arc::new(Link {
        owner,
        tx,
        up: AtomicBool::new(true),
        held: AtomicUsize::new(0),
        connects: std::sync::atomic::AtomicU64::new(0),
        in_flight: Mutex::new(HashMap::new()),
        backend: Backend::Local(handler.clone()),
    });
    let state_sink = sink.clone();
    tokio::spawn(async move {
        let mut published = None;
        while let Some(first) = rx.recv().await {
            let now = {
                let mut h = lock(&handler);
                handle_traced(&mut *h, first, &outbox);
                while let Ok(more) = rx.try_recv() {
                    handle_traced(&mut *h, more, &outbox);
                }
                h.state()
            };
            if now != published {
                published = now;
                if let Some(state) = now {
                    state_sink.state_changed(owner, state);
                }
            }
        }
    });
    let out_sink = sink.clone();
    tokio::spawn(async move {
        while let Some(envelope) = outgoing.recv().await {
            out_sink.deliver_from(owner, envelope);
        }
    });
    sink.link_changed(owner, true);
    link
}

async fn keep_connected(
    link: Arc<Link>,
    path: PathBuf,
    mut queue: QueueRx<Envelope>,
    sink: Arc<dyn Deliver>,
) {
    let mut backoff = Duration::from_millis(20);
    let mut down_since = tokio::time::Instant::now();
    // The last hello failure logged: the same one again is logged at debug only.
    let mut refused: Option<String> = None;
    loop {
        // The component is asked what it serves before its packet socket is
        // connected: a process that answers has bound its packet socket already (each
        // binds it before it serves gRPC), so the connection reaches that process and
        // not the listener of one still dying. One down a while, or whose gRPC does not
        // answer, is asked again once connected.
        let early = link.declare_once(DECLARE_TIMEOUT).await;
        if early.is_err() && down_since.elapsed() < DECLARE_WAIT {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        let mut stream = match UnixStream::connect(&path).await {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if let Err(e) = packets::handshake(&mut stream, packets::HELLO_PATIENCE).await {
            let why = e.to_string();
            if refused.as_ref() != Some(&why) {
                tracing::error!(component = link.owner.name(), "packet socket: {why}");
                refused = Some(why);
            } else {
                tracing::debug!(component = link.owner.name(), "packet socket: {why}");
            }
            drop(stream);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        refused = None;
        backoff = Duration::from_millis(20);
        let declaration = match early {
            Ok(declared) => declared,
            Err(_) => link.declaration().await,
        };
        // Routes follow what this process of the component serves, before anything
        // is sent to it (meanwhile its packets are held).
        sink.declared(link.owner, declaration);
        // What local clients sent while the component was away is in the queue and
        // goes out first.
        link.held.store(0, Ordering::Release);
        link.up.store(true, Ordering::Release);
        let again = link.connects.fetch_add(1, Ordering::Relaxed) > 0;
        info!(component = link.owner.name(), "packet socket connected");
        if again {
            let calls = link.calls_in_flight();
            if !calls.is_empty() {
                info!(
                    component = link.owner.name(),
                    calls = calls.len(),
                    "sending the calls the component had not answered again"
                );
            }
            for call in calls {
                link.queue(call);
            }
        }
        sink.link_changed(link.owner, true);
        // Registered for reading only: the component taking a packet does not wake
        // transport (see `quiet_unix`).
        let (read, mut write) = match ctdb_rpc::quiet_unix::split(stream) {
            Ok(halves) => halves,
            Err(e) => {
                warn!(component = link.owner.name(), "packet socket: {e}");
                link.up.store(false, Ordering::Release);
                sink.link_changed(link.owner, false);
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let owner = link.owner;
        let reading = async {
            let mut frames = FramedRead::new(read, packets::codec());
            while let Some(frame) = frames.next().await {
                match frame
                    .map_err(|e| e.to_string())
                    .and_then(|f| packets::decode(f).map_err(|e| e.to_string()))
                {
                    Ok(envelope) => sink.deliver_from(owner, envelope),
                    Err(e) => {
                        warn!(
                            component = owner.name(),
                            "bad frame on the packet socket: {e}"
                        );
                        return;
                    }
                }
            }
        };
        // Reading goes on while a write waits for room, so neither side can stall
        // the other.
        let closed = tokio::select! {
            () = reading => false,
            written = packets::write_from(&mut queue, &mut write) => written.is_ok(),
        };
        link.up.store(false, Ordering::Release);
        if closed {
            // The node is going away: nothing more will be queued.
            return;
        }
        warn!(component = owner.name(), "packet socket lost");
        sink.link_changed(owner, false);
        down_since = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Idle;
    impl PacketHandler for Idle {
        fn handle(&mut self, _: Envelope, _: &Outbox) {}
        fn ownership(&self) -> Ownership {
            Ownership::default()
        }
    }

    /// A component that serves nothing but declares `controls`.
    struct Declares(&'static [ctdb_protocol::Opcode]);
    impl PacketHandler for Declares {
        fn handle(&mut self, _: Envelope, _: &Outbox) {}
        fn ownership(&self) -> Ownership {
            Ownership {
                controls: self.0.iter().map(|op| op.as_u32()).collect(),
            }
        }
    }

    /// A component process: its own runtime, whose shutdown closes its sockets.
    fn component(
        run_dir: &Path,
        controls: &'static [ctdb_protocol::Opcode],
    ) -> tokio::runtime::Runtime {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let run_dir = run_dir.to_path_buf();
        rt.spawn(async move {
            let component = ctdb_rpc::component::PacketComponent::new("db", Declares(controls));
            let _packets = component.serve_packets(&run_dir).unwrap();
            let router = tonic::transport::Server::builder().add_service(component.into_server());
            let path = ctdb_rpc::uds::socket_path(&run_dir, "db");
            let _ = ctdb_rpc::component::serve_on(&path, router, std::future::pending()).await;
        });
        rt
    }

    /// What the links told the node: each declaration, in order.
    #[derive(Default)]
    struct Declarations(Mutex<Vec<Option<Vec<u32>>>>);
    impl Deliver for Declarations {
        fn deliver_from(&self, _: Owner, _: Envelope) {}
        fn declared(&self, _: Owner, ownership: Option<Ownership>) {
            lock(&self.0).push(ownership.map(|o| o.controls));
        }
    }

    async fn wait_for(sink: &Declarations, n: usize) -> Vec<Option<Vec<u32>>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = lock(&sink.0).clone();
            if now.len() >= n {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "{now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_component_declares_at_each_connection_and_its_restart_declares_again() {
        use ctdb_protocol::Opcode;
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let first = component(&run_dir, &[Opcode::GetDbmap, Opcode::Getdbpath]);
        let sink = Arc::new(Declarations::default());
        let link = start(Owner::Db, &run_dir, sink.clone());
        let seen = wait_for(&sink, 1).await;
        assert_eq!(seen, [Some(vec![9, 4])]);
        // The component restarts with another table: declared again once reconnected.
        first.shutdown_background();
        let second = component(&run_dir, &[Opcode::GetDbmap]);
        let seen = wait_for(&sink, 2).await;
        assert_eq!(seen[1], Some(vec![9]));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while link.reconnects() != 1 || !link.is_up() {
            assert!(std::time::Instant::now() < deadline, "not reconnected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        second.shutdown_background();
    }

    fn envelope(len: usize) -> Envelope {
        Envelope {
            client: 1,
            from_node: u32::MAX,
            packet: vec![0u8; len].into(),
            trace: 0,
        }
    }

    #[test]
    fn a_component_that_does_not_read_is_sent_no_more_past_its_limit() {
        let limit = 2 * (8 + packets::ENVELOPE_HEADER);
        let (tx, mut rx) = queue(limit);
        let link = Link {
            owner: Owner::Db,
            tx,
            up: AtomicBool::new(true),
            held: AtomicUsize::new(0),
            connects: std::sync::atomic::AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            backend: Backend::Local(Arc::new(Mutex::new(Idle))),
        };
        assert!(link.send(envelope(8)));
        assert!(link.send_or_hold(envelope(8)));
        assert!(!link.send(envelope(8)), "over the limit");
        assert!(!link.send_or_hold(envelope(8)), "over the limit");
        assert!(rx.try_recv().is_ok());
        assert!(link.send(envelope(8)));
        // Down: only local clients' packets are held, up to MAX_HELD.
        link.up.store(false, Ordering::Release);
        assert!(!link.send(envelope(1)));
    }
}
