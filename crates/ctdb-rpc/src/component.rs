//! The server side of the `Component` service, shared by db, recoverd and eventd.
//!
//! A component is a [`PacketHandler`] owned by one lock and fed the packets transport
//! routes to it over its packet socket ([`crate::packets`]). What it wants delivered
//! goes into its [`Outbox`]; one task drains the outbox onto the socket, everything
//! queued in one write. Each packet is handled with its trace id current
//! ([`handle_traced`]): what the handler sends meanwhile carries it back to transport.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::queue::{QueueRx, QueueTx, Refused};
use crate::v1::component_server::{Component, ComponentServer};
use crate::v1::{
    ComponentState, ComponentStatus, DebugLevel, Empty, Envelope, LatencyCounter, Ownership,
    StatisticsPart,
};
use ctdb_protocol::Opcode;

/// What a component does with the packets it owns.
pub trait PacketHandler: Send + 'static {
    /// Handles one packet; replies and any other packets go to `out`.
    fn handle(&mut self, envelope: Envelope, out: &Outbox);

    /// What this component serves, from the same table its dispatch reads (see
    /// [`ControlTable`]): transport asks for it (`Declare`) each time it connects and
    /// routes these controls here.
    fn ownership(&self) -> Ownership;

    /// This component's share of `ctdb statistics`.
    fn statistics(&self) -> StatisticsPart {
        StatisticsPart::default()
    }

    fn reset_statistics(&mut self) {}

    fn set_debug(&mut self, _level: i32) {}

    /// The state others follow (`WatchState`), if this component has one; looked at
    /// after every packet it handles.
    fn state(&self) -> Option<ComponentState> {
        None
    }
}

/// A component's controls: every opcode it serves beside its handler, one table that
/// both its dispatch and its declaration to transport ([`PacketHandler::ownership`])
/// read, so that the two cannot differ. A handler is a `fn` of the component's own
/// signature.
#[derive(Debug)]
pub struct ControlTable<H: 'static> {
    entries: &'static [(Opcode, H)],
}

impl<H: Copy> ControlTable<H> {
    pub const fn new(entries: &'static [(Opcode, H)]) -> Self {
        Self { entries }
    }

    /// The handler of `opcode`, if this component serves it.
    pub fn get(&self, opcode: Opcode) -> Option<H> {
        self.entries
            .iter()
            .find(|(op, _)| *op == opcode)
            .map(|&(_, handler)| handler)
    }

    /// Every opcode of the table, in its order.
    pub fn opcodes(&self) -> impl Iterator<Item = Opcode> + '_ {
        self.entries.iter().map(|&(op, _)| op)
    }

    /// The table as the component declares it to transport.
    pub fn ownership(&self) -> Ownership {
        Ownership {
            controls: self.opcodes().map(Opcode::as_u32).collect(),
        }
    }
}

/// Publishes `now` on `published` when it differs from what was published last.
pub fn publish_state(
    published: &watch::Sender<Option<ComponentState>>,
    now: Option<ComponentState>,
) {
    published.send_if_modified(|last| {
        if *last == now {
            false
        } else {
            *last = now;
            true
        }
    });
}

/// Most bytes of packets a component's outbox holds for transport: beyond, while
/// transport does not read (it is down, or stuck), what the component sends is dropped
/// (a call's asker times out or is answered again after a recovery).
pub const OUTBOX_LIMIT: usize = 256 << 20;

/// Where a component puts the packets it wants transport to deliver.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: QueueTx<Envelope>,
}

impl Outbox {
    /// A new outbox and the receiving end the packet socket drains.
    pub fn new() -> (Self, QueueRx<Envelope>) {
        let (tx, rx) = crate::queue::queue(OUTBOX_LIMIT);
        (Self { tx }, rx)
    }

    pub fn send(&self, envelope: Envelope) {
        match self.tx.send(envelope) {
            Ok(()) => {}
            Err(Refused::Full(_)) => {
                tracing::warn!(
                    queued = self.tx.queued(),
                    "outbox full (transport does not read): packet dropped"
                );
            }
            // The component is shutting down: nothing left to deliver to.
            Err(Refused::Closed(_)) => {}
        }
    }

    /// Sends `packet` to local client `client` (0: route by the packet's destnode),
    /// under the trace id of the packet being handled ([`crate::trace::current`]).
    pub fn to_client(&self, client: u64, packet: impl Into<bytes::Bytes>) {
        self.to_client_traced(client, crate::trace::current(), packet);
    }

    /// As [`to_client`](Self::to_client), for the request of trace id `trace` (an
    /// answer sent later than its request was handled).
    pub fn to_client_traced(&self, client: u64, trace: u64, packet: impl Into<bytes::Bytes>) {
        self.send(Envelope {
            client,
            from_node: u32::MAX,
            packet: packet.into(),
            trace,
        });
    }
}

/// Hands `envelope` to `handler` with its trace id current, so that what the handler
/// sends while it handles it goes back under the same id.
pub fn handle_traced<H: PacketHandler + ?Sized>(handler: &mut H, envelope: Envelope, out: &Outbox) {
    let _trace = crate::trace::enter(envelope.trace);
    handler.handle(envelope, out);
}

/// The `Component` service around a handler.
pub struct PacketComponent<H> {
    name: String,
    started_us: i64,
    handler: Arc<Mutex<H>>,
    outbox: Outbox,
    /// Held by the connection currently draining the outbox; a reconnecting
    /// transport takes it over once the old connection is gone.
    outgoing: Arc<tokio::sync::Mutex<QueueRx<Envelope>>>,
    /// The handler's state as last published (`WatchState`).
    state: Arc<watch::Sender<Option<ComponentState>>>,
    /// Cancelled when the component stops: its `WatchState` streams end, so that they
    /// do not hold the server's graceful shutdown.
    closing: CancellationToken,
}

impl<H: PacketHandler> PacketComponent<H> {
    pub fn new(name: &str, handler: H) -> Self {
        let (outbox, rx) = Outbox::new();
        Self::with_outbox(name, Arc::new(Mutex::new(handler)), outbox, rx)
    }

    /// Like [`new`](Self::new) for a handler shared with other tasks (timers, other
    /// services) that also send through `outbox`.
    pub fn with_outbox(
        name: &str,
        handler: Arc<Mutex<H>>,
        outbox: Outbox,
        rx: QueueRx<Envelope>,
    ) -> Self {
        let started_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let state = Arc::new(watch::Sender::new(lock(&handler).state()));
        Self {
            name: name.to_string(),
            started_us,
            handler,
            outbox,
            outgoing: Arc::new(tokio::sync::Mutex::new(rx)),
            state,
            closing: CancellationToken::new(),
        }
    }

    /// Cancel it when the component stops (see `closing`).
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    pub fn into_server(self) -> ComponentServer<Self> {
        ComponentServer::new(self)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

/// Locks a handler even if an earlier holder panicked: a component keeps serving.
pub fn lock<H: ?Sized>(handler: &Mutex<H>) -> MutexGuard<'_, H> {
    handler
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<H: PacketHandler> PacketComponent<H> {
    /// Serves this component's packet socket in `run_dir` (see [`crate::packets`]):
    /// transport's packets go to the handler, the outbox goes back. A new connection
    /// (transport restarted) replaces the old one and takes over what is still queued.
    pub fn serve_packets(&self, run_dir: &Path) -> Result<JoinHandle<()>, String> {
        let path = crate::packets::socket_path(run_dir, &self.name);
        let listener = crate::uds::bind_listener(&path)
            .map_err(|e| format!("cannot serve {}: {e}", path.display()))?;
        let handler = self.handler.clone();
        let outbox = self.outbox.clone();
        let outgoing = self.outgoing.clone();
        let state = self.state.clone();
        Ok(tokio::spawn(async move {
            let mut current: Option<(JoinHandle<()>, JoinHandle<()>)> = None;
            // Connections whose hello checked out. Each hello is waited for in a task
            // of its own, so that a connection that sends none does not hold up the
            // next (a transport restarted meanwhile).
            let (checked_tx, mut checked) = tokio::sync::mpsc::channel::<UnixStream>(4);
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => {
                        let mut stream = match accepted {
                            Ok((stream, _)) if !crate::uds::trusted_peer(&stream, &path) => {
                                continue
                            }
                            Ok((stream, _)) => stream,
                            Err(e) => {
                                // EMFILE and the like: wait instead of spinning.
                                tracing::warn!("packet socket accept failed: {e}");
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                continue;
                            }
                        };
                        // A connection from a transport of another frame format is
                        // refused (and the one in use, if any, kept).
                        let checked_tx = checked_tx.clone();
                        tokio::spawn(async move {
                            let patience = crate::packets::HELLO_PATIENCE;
                            match crate::packets::handshake(&mut stream, patience).await {
                                Ok(()) => {
                                    let _ = checked_tx.send(stream).await;
                                }
                                Err(e) => tracing::error!("packet socket: {e}"),
                            }
                        });
                        continue;
                    }
                    Some(stream) = checked.recv() => stream,
                };
                if let Some((reader, writer)) = current.take() {
                    reader.abort();
                    writer.abort();
                }
                tracing::info!("transport connected to the packet socket");
                let (read, mut write) = match crate::quiet_unix::split(stream) {
                    Ok(halves) => halves,
                    Err(e) => {
                        tracing::error!("packet socket: {e}");
                        continue;
                    }
                };
                let reader = tokio::spawn(read_packets(
                    read,
                    handler.clone(),
                    outbox.clone(),
                    state.clone(),
                ));
                let outgoing = outgoing.clone();
                let writer = tokio::spawn(async move {
                    let mut queue = outgoing.lock().await;
                    if let Err(e) = crate::packets::write_from(&mut queue, &mut write).await {
                        tracing::debug!("packet socket write failed: {e}");
                    }
                });
                current = Some((reader, writer));
            }
        }))
    }
}

/// Hands every packet read from transport to the handler, until the connection ends.
async fn read_packets<H: PacketHandler>(
    read: crate::quiet_unix::QuietRead,
    handler: Arc<Mutex<H>>,
    outbox: Outbox,
    state: Arc<watch::Sender<Option<ComponentState>>>,
) {
    let mut frames = FramedRead::new(read, crate::packets::codec());
    while let Some(frame) = frames.next().await {
        let envelope = match frame
            .map_err(|e| e.to_string())
            .and_then(|f| crate::packets::decode(f).map_err(|e| e.to_string()))
        {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!("bad frame on the packet socket: {e}; dropping the connection");
                return;
            }
        };
        let now = {
            let mut h = lock(&handler);
            handle_traced(&mut *h, envelope, &outbox);
            h.state()
        };
        publish_state(&state, now);
    }
}

#[tonic::async_trait]
impl<H: PacketHandler> Component for PacketComponent<H> {
    type WatchStateStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<ComponentState, Status>> + Send>>;

    async fn watch_state(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        if self.state.borrow().is_none() {
            return Err(Status::unimplemented(format!(
                "{} has no state to follow",
                self.name
            )));
        }
        let states = tokio_stream::wrappers::WatchStream::new(self.state.subscribe())
            .filter_map(|s| s.map(Ok));
        let states = futures::StreamExt::take_until(states, self.closing.clone().cancelled_owned());
        Ok(Response::new(Box::pin(states)))
    }

    async fn declare(&self, _: Request<Empty>) -> Result<Response<Ownership>, Status> {
        Ok(Response::new(lock(&self.handler).ownership()))
    }

    async fn status(&self, _: Request<Empty>) -> Result<Response<ComponentStatus>, Status> {
        Ok(Response::new(ComponentStatus {
            component: self.name.clone(),
            pid: std::process::id(),
            started_us: self.started_us,
        }))
    }

    async fn statistics(&self, _: Request<Empty>) -> Result<Response<StatisticsPart>, Status> {
        Ok(Response::new(lock(&self.handler).statistics()))
    }

    async fn reset_statistics(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        lock(&self.handler).reset_statistics();
        Ok(Response::new(Empty {}))
    }

    async fn set_debug(&self, request: Request<DebugLevel>) -> Result<Response<Empty>, Status> {
        let level = request.into_inner().level;
        // `ctdb setdebug`: this process logs at the new level from now on.
        ctdb_common::logging::set_level(level);
        lock(&self.handler).set_debug(level);
        Ok(Response::new(Empty {}))
    }
}

/// Adds `sample` seconds to a latency counter.
pub fn record_latency(counter: &mut LatencyCounter, sample: f64) {
    if counter.num == 0 || sample < counter.min {
        counter.min = sample;
    }
    if sample > counter.max {
        counter.max = sample;
    }
    counter.num = counter.num.saturating_add(1);
    counter.total += sample;
}

/// Serves `router`'s services on the Unix socket `path` until `shutdown` completes.
pub async fn serve_on(
    path: &Path,
    router: tonic::transport::server::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let incoming = crate::uds::bind(path)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = router.serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    });
    tokio::pin!(served, shutdown);
    tokio::select! {
        result = &mut served => return result.map_err(Into::into),
        () = &mut shutdown => {}
    }
    let _ = stop.send(());
    // Calls in flight may finish; a stream that never ends (a follower's WatchState)
    // does not hold the process.
    match tokio::time::timeout(SHUTDOWN_GRACE, served).await {
        Ok(result) => result?,
        Err(_) => tracing::debug!("gRPC streams still open at shutdown: closed"),
    }
    Ok(())
}

/// How long a stopping component lets its gRPC calls in flight finish.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves on the first SIGTERM or SIGINT: how every component process stops.
pub async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        _ => {
            tracing::error!("cannot watch SIGTERM/SIGINT");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::{PacketClient, FORMAT_VERSION, HELLO_LEN, HELLO_MAGIC};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers each packet to its client at once, and a second time later (as a
    /// component that answers after its request was handled).
    struct Echo {
        later: Option<(u64, u64, Vec<u8>)>,
    }

    impl PacketHandler for Echo {
        fn handle(&mut self, envelope: Envelope, out: &Outbox) {
            if let Some((client, trace, packet)) = self.later.take() {
                out.to_client_traced(client, trace, packet);
            }
            out.to_client(envelope.client, envelope.packet.clone());
            self.later = Some((envelope.client, envelope.trace, envelope.packet.to_vec()));
        }
        fn ownership(&self) -> Ownership {
            Ownership::default()
        }
    }

    fn envelope(client: u64, trace: u64, packet: &[u8]) -> Envelope {
        Envelope {
            client,
            from_node: u32::MAX,
            packet: bytes::Bytes::copy_from_slice(packet),
            trace,
        }
    }

    #[tokio::test]
    async fn answers_carry_their_requests_trace_id_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("run");
        let component = PacketComponent::new("echo", Echo { later: None });
        let serving = component.serve_packets(&run_dir).unwrap();
        let path = crate::packets::socket_path(&run_dir, "echo");

        // A connection that sends no hello holds up no other.
        let _silent = loop {
            match UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        // A transport of another frame format: refused, the connection closed.
        let mut other = loop {
            match UnixStream::connect(&path).await {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let mut hello = Vec::new();
        hello.extend_from_slice(&(HELLO_LEN as u32).to_le_bytes());
        hello.extend_from_slice(&HELLO_MAGIC);
        hello.extend_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        hello.extend_from_slice(&0u32.to_le_bytes());
        other.write_all(&hello).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), other.read_to_end(&mut got))
            .await
            .expect("the component closes a connection of another format");
        assert!(read.is_ok());
        assert_eq!(got.len(), 4 + HELLO_LEN, "only its hello came: {got:?}");

        // One of this format: its answers come back under the request's trace id.
        let mut conn = PacketClient::connect(&path, Duration::from_secs(5))
            .await
            .unwrap();
        conn.send(&[
            envelope(3, 0xfeed, b"first"),
            envelope(4, 0xbeef, b"second"),
        ])
        .await
        .unwrap();
        let mut answers = Vec::new();
        for _ in 0..3 {
            // Well within the silent connection's hello patience.
            let e = tokio::time::timeout(Duration::from_secs(3), conn.recv())
                .await
                .expect("an answer")
                .unwrap()
                .expect("open");
            answers.push((e.client, e.trace, e.packet.to_vec()));
        }
        assert_eq!(
            answers,
            vec![
                (3, 0xfeed, b"first".to_vec()),
                // The late answer to the first, sent while the second was handled.
                (3, 0xfeed, b"first".to_vec()),
                (4, 0xbeef, b"second".to_vec()),
            ]
        );
        serving.abort();
    }
}
