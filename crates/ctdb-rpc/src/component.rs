//! The server side of the `Component` service, shared by db, recoverd and eventd.
//!
//! A component is a [`PacketHandler`] owned by one lock and fed the packets transport
//! routes to it. What it wants delivered goes into its [`Outbox`]; one task drains the
//! outbox into as few `PacketBatch` messages as the load allows.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::v1::component_server::{Component, ComponentServer};
use crate::v1::{
    ComponentStatus, DebugLevel, Empty, Envelope, LatencyCounter, PacketBatch, StatisticsPart,
};

/// Most envelopes put in one outgoing batch.
const MAX_BATCH: usize = 256;

/// What a component does with the packets it owns.
pub trait PacketHandler: Send + 'static {
    /// Handles one packet; replies and any other packets go to `out`.
    fn handle(&mut self, envelope: Envelope, out: &Outbox);

    /// This component's share of `ctdb statistics`.
    fn statistics(&self) -> StatisticsPart {
        StatisticsPart::default()
    }

    fn reset_statistics(&mut self) {}

    fn set_debug(&mut self, _level: i32) {}
}

/// Where a component puts the packets it wants transport to deliver.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Envelope>,
}

impl Outbox {
    /// A new outbox and the receiving end transport's stream drains.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Envelope>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub fn send(&self, envelope: Envelope) {
        // Only fails when the component is shutting down: nothing left to deliver to.
        let _ = self.tx.send(envelope);
    }

    /// Sends `packet` to local client `client` (0: route by the packet's destnode).
    pub fn to_client(&self, client: u64, packet: Vec<u8>) {
        self.send(Envelope {
            client,
            from_node: u32::MAX,
            packet,
        });
    }
}

/// The `Component` service around a handler.
pub struct PacketComponent<H> {
    name: String,
    started_us: i64,
    handler: Arc<Mutex<H>>,
    outbox: Outbox,
    /// Held by the stream currently draining the outbox; a reconnecting transport
    /// takes it over once the old stream is gone.
    outgoing: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Envelope>>>,
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
        rx: mpsc::UnboundedReceiver<Envelope>,
    ) -> Self {
        let started_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Self {
            name: name.to_string(),
            started_us,
            handler,
            outbox,
            outgoing: Arc::new(tokio::sync::Mutex::new(rx)),
        }
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

#[tonic::async_trait]
impl<H: PacketHandler> Component for PacketComponent<H> {
    type PacketsStream = ReceiverStream<Result<PacketBatch, Status>>;

    async fn packets(
        &self,
        request: Request<Streaming<PacketBatch>>,
    ) -> Result<Response<Self::PacketsStream>, Status> {
        let mut inbound = request.into_inner();
        let handler = self.handler.clone();
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            while let Some(Ok(batch)) = inbound.next().await {
                let mut h = lock(&handler);
                for envelope in batch.packets {
                    h.handle(envelope, &outbox);
                }
            }
        });

        let (tx, rx) = mpsc::channel::<Result<PacketBatch, Status>>(64);
        let outgoing = self.outgoing.clone();
        tokio::spawn(async move {
            let mut pending = outgoing.lock().await;
            loop {
                let first = tokio::select! {
                    envelope = pending.recv() => envelope,
                    () = tx.closed() => return,
                };
                let Some(first) = first else { return };
                // Let the rest of the inbound batch be handled first so that its
                // replies leave together.
                tokio::task::yield_now().await;
                let mut packets = vec![first];
                while packets.len() < MAX_BATCH {
                    match pending.try_recv() {
                        Ok(envelope) => packets.push(envelope),
                        Err(_) => break,
                    }
                }
                if tx.send(Ok(PacketBatch { packets })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
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
        lock(&self.handler).set_debug(request.into_inner().level);
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
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

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
