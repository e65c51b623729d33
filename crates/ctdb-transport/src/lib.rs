//! ctdb-transport: the node's front door.
//!
//! It owns every external socket: clients on the Unix socket, peers on TCP. It frames
//! and checks packets, keeps the registry of clients and their srvids, delivers
//! messages, answers the controls it owns and streams everything else to the component
//! that owns it (see [`routing`]).

#![forbid(unsafe_code)]

pub mod clients;
mod controls;
pub mod links;
pub mod routing;
pub mod state;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use ctdb_common::Config;
use ctdb_protocol::flags::dest;
use ctdb_protocol::packet::{Header, Operation, HEADER_SIZE};
use ctdb_protocol::{Body, Frame, FrameCodec, Packet, ReplyControl, ReplyError};
use ctdb_rpc::Envelope;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::clients::{ClientHandle, Clients};
use crate::links::{Deliver, Link};
use crate::routing::Owner;
use crate::state::NodeState;

/// Most bytes a client writer gathers into one write.
const WRITE_BATCH: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("configuration: {0}")]
    Config(#[from] ctdb_common::ConfigError),
    #[error("cannot listen on {path}: {source}")]
    Listen {
        path: String,
        source: std::io::Error,
    },
}

/// The shared state of a running transport.
pub struct Node {
    pub config: Config,
    pub pnn: u32,
    pub max_packet_len: u32,
    pub clients: Clients,
    links: HashMap<Owner, Arc<Link>>,
    state: Mutex<NodeState>,
    /// Client ids start at the process's start time so that ids never repeat across a
    /// transport restart (a component may still hold a reply for an old client).
    next_client: AtomicU64,
    stats: controls::Counters,
    shutdown: watch::Sender<bool>,
}

impl Node {
    pub fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn link(&self, owner: Owner) -> Option<&Arc<Link>> {
        self.links.get(&owner)
    }

    fn is_local(&self, destnode: u32) -> bool {
        destnode == dest::CURRENT_NODE || destnode == self.pnn
    }

    /// Sends a packet to a local client, as ctdbd does: destnode 0, srcnode = this node.
    fn to_client(&self, client: u64, mut packet: Vec<u8>) {
        if packet.len() >= HEADER_SIZE {
            packet[20..24].copy_from_slice(&0u32.to_le_bytes());
            packet[24..28].copy_from_slice(&self.pnn.to_le_bytes());
        }
        self.stats
            .client_packets_sent
            .fetch_add(1, Ordering::Relaxed);
        self.clients.send(client, Bytes::from(packet));
    }

    /// A REPLY_CONTROL for the request `req`, to the client `client`.
    fn reply_control(&self, client: u64, req: &Header, reply: ReplyControl) {
        let generation = self.state().generation;
        let packet = Packet {
            generation,
            destnode: req.srcnode,
            srcnode: self.pnn,
            reqid: req.reqid,
            body: Body::ReplyControl(reply),
        };
        self.to_client(client, packet.to_bytes());
    }

    fn control_error(&self, client: u64, req: &Header, flags: u32, msg: &str) {
        if flags & ctdb_protocol::flags::control::NOREPLY == 0 {
            self.reply_control(client, req, ReplyControl::error(-1, msg));
        }
    }

    /// Routes one packet from local client `client`.
    fn from_client(self: &Arc<Self>, client: u64, frame: Frame) {
        self.stats
            .client_packets_recv
            .fetch_add(1, Ordering::Relaxed);
        let header = frame.header;
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqControl) => {
                self.stats
                    .client_req_control
                    .fetch_add(1, Ordering::Relaxed);
                let packet = match frame.packet() {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(client, "bad control packet: {e}");
                        self.reply_control(
                            client,
                            &header,
                            ReplyControl::error(-1, &e.to_string()),
                        );
                        return;
                    }
                };
                let Body::ReqControl(control) = packet.body else {
                    return;
                };
                if !self.is_local(header.destnode) && !dest::is_broadcast(header.destnode) {
                    // Other nodes are reached through the node mesh.
                    self.control_error(
                        client,
                        &header,
                        control.flags,
                        &format!("node {} is not reachable", header.destnode),
                    );
                    return;
                }
                self.route_control(client, &header, control, frame.bytes);
            }
            Some(Operation::ReqCall) => {
                self.stats.client_req_call.fetch_add(1, Ordering::Relaxed);
                if !self.send_to(Owner::Db, client, frame.bytes) {
                    let err = Packet {
                        generation: self.state().generation,
                        destnode: header.srcnode,
                        srcnode: self.pnn,
                        reqid: header.reqid,
                        body: Body::ReplyError(ReplyError::new(
                            u32::MAX,
                            "database component is not available",
                        )),
                    };
                    self.to_client(client, err.to_bytes());
                }
            }
            Some(Operation::ReqMessage) => {
                self.stats
                    .client_req_message
                    .fetch_add(1, Ordering::Relaxed);
                match frame.packet() {
                    Ok(Packet {
                        body: Body::ReqMessage(m),
                        ..
                    }) => self.deliver_message(header.destnode, m.srvid, frame.bytes),
                    Ok(_) => {}
                    Err(e) => warn!(client, "bad message packet: {e}"),
                }
            }
            _ => warn!(
                client,
                operation = header.operation,
                "clients may not send this operation; dropped"
            ),
        }
    }

    /// Delivers a REQ_MESSAGE to the local clients registered for `srvid`.
    fn deliver_message(&self, destnode: u32, srvid: u64, packet: Bytes) {
        if self.is_local(destnode) || dest::is_broadcast(destnode) {
            let mut packet = BytesMut::from(&packet[..]);
            packet[20..24].copy_from_slice(&self.pnn.to_le_bytes());
            let n = self.clients.deliver(srvid, &packet.freeze());
            debug!(srvid = format_args!("{srvid:#x}"), delivered = n, "message");
        }
    }

    fn send_to(&self, owner: Owner, client: u64, packet: Bytes) -> bool {
        self.link(owner).is_some_and(|link| {
            link.send(Envelope {
                client,
                from_node: u32::MAX,
                packet: packet.to_vec(),
            })
        })
    }

    fn route_control(
        self: &Arc<Self>,
        client: u64,
        header: &Header,
        control: ctdb_protocol::ReqControl,
        bytes: Bytes,
    ) {
        match routing::owner(control.opcode) {
            Some(Owner::Transport) => controls::handle(self, client, header, control),
            Some(owner) => {
                controls::observe(self, &control);
                if !self.send_to(owner, client, bytes) {
                    self.control_error(
                        client,
                        header,
                        control.flags,
                        &format!("{} is not available for {}", owner.name(), control.opcode),
                    );
                }
            }
            None => self.control_error(
                client,
                header,
                control.flags,
                &format!("unsupported control {}", control.opcode.as_u32()),
            ),
        }
    }
}

impl Deliver for Node {
    fn deliver_from(&self, owner: Owner, envelope: Envelope) {
        if owner == Owner::Db && envelope.packet.len() >= HEADER_SIZE {
            if let Ok(h) = Header::parse(&envelope.packet, u32::MAX) {
                self.state().generation = h.generation;
            }
        }
        if envelope.client != 0 {
            self.to_client(envelope.client, envelope.packet);
        } else {
            debug!(
                component = owner.name(),
                "packet for another node dropped: no node mesh yet"
            );
        }
    }
}

/// Components that run inside transport's process instead of their own.
pub type InProcess = HashMap<Owner, Arc<Mutex<dyn ctdb_rpc::component::PacketHandler>>>;

/// Starts transport for `config` and serves until SHUTDOWN or `stop` resolves.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), TransportError> {
    run_with(config, stop, InProcess::new()).await
}

/// Like [`run`], with some components in this process (`in_process`).
pub async fn run_with(
    config: Config,
    stop: impl std::future::Future<Output = ()>,
    mut in_process: InProcess,
) -> Result<(), TransportError> {
    let pnn = config.pnn()?;
    let socket = config.socket.clone();
    let listener = bind_client_socket(&socket)?;
    let deleted: Vec<bool> = config.nodes.iter().map(|n| n.deleted).collect();
    let debug_level = ctdb_common::logging::parse_samba_level(&config.logging.level)
        .unwrap_or(ctdb_common::logging::NOTICE);
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());

    let node = Arc::new_cyclic(|weak: &std::sync::Weak<Node>| {
        let sink: Arc<dyn Deliver> = Arc::new(WeakSink(weak.clone()));
        let links = Owner::COMPONENTS
            .into_iter()
            .map(|owner| match in_process.remove(&owner) {
                Some(handler) => (owner, links::start_in_process(owner, handler, sink.clone())),
                None => {
                    let path = ctdb_rpc::uds::socket_path(&config.run_dir, owner.name());
                    (owner, links::start(owner, path, sink.clone()))
                }
            })
            .collect();
        Node {
            state: Mutex::new(NodeState::new(
                config.nodes.len(),
                pnn,
                &deleted,
                debug_level,
            )),
            pnn,
            max_packet_len: ctdb_protocol::DEFAULT_MAX_PACKET_LEN,
            clients: Clients::default(),
            links,
            next_client: AtomicU64::new(epoch << 24),
            stats: controls::Counters::default(),
            shutdown,
            config,
        }
    });
    info!(pnn, socket = %socket.display(), "transport listening");

    let server = tokio::spawn(controls::serve_transport_rpc(node.clone()));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => accept_client(&node, stream),
                Err(e) => warn!("accept failed: {e}"),
            },
            _ = shutdown_rx.changed() => {
                info!("shutdown requested by a client");
                break;
            }
            () = &mut stop => break,
        }
    }
    server.abort();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// The links hold the node only weakly, so dropping the node stops delivery.
struct WeakSink(std::sync::Weak<Node>);

impl Deliver for WeakSink {
    fn deliver_from(&self, owner: Owner, envelope: Envelope) {
        if let Some(node) = self.0.upgrade() {
            node.deliver_from(owner, envelope);
        }
    }
    fn link_changed(&self, owner: Owner, up: bool) {
        if let Some(node) = self.0.upgrade() {
            if owner == Owner::Db && !up {
                // Without its database component the node cannot serve calls.
                node.state().generation = ctdb_protocol::flags::INVALID_GENERATION;
            }
        }
    }
}

/// Binds the client socket, readable and writable by its owner only.
fn bind_client_socket(path: &std::path::Path) -> Result<UnixListener, TransportError> {
    let err = |source| TransportError::Listen {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

fn accept_client(node: &Arc<Node>, stream: UnixStream) {
    let id = node.next_client.fetch_add(1, Ordering::Relaxed);
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .map_or(0, |p| p as u32);
    let (reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    node.clients.add(id, ClientHandle { tx, pid });
    debug!(client = id, pid, "client connected");

    // Writer: everything queued for this client goes out in as few writes as possible.
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(8192);
        while let Some(first) = rx.recv().await {
            buf.extend_from_slice(&first);
            while buf.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if writer.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
    });

    let node = node.clone();
    tokio::spawn(async move {
        let mut frames = FramedRead::new(reader, FrameCodec::new(node.max_packet_len));
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(frame) => node.from_client(id, frame),
                Err(e) => {
                    warn!(client = id, pid, "disconnecting client: {e}");
                    break;
                }
            }
        }
        node.clients.remove(id);
        debug!(client = id, "client gone");
    });
}
