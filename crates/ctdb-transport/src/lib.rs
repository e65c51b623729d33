//! ctdb-transport: the node's front door.
//!
//! It owns every external socket: clients on the Unix socket, peers on TCP. It frames
//! and checks packets, keeps the registry of clients and their srvids, delivers
//! messages, answers the controls it owns and hands everything else to the component
//! that declared it (see [`routing`]).
//!
//! The packet paths are in [`router`]; the client connections in [`clients`], the node
//! mesh in [`peers`], the component sockets in [`links`], controls sent to other nodes
//! in [`forward`].

#![forbid(unsafe_code)]

pub mod clients;
pub mod component_waits;
mod controls;
mod dispatch;
pub mod forward;
pub mod links;
mod membership;
mod metrics;
pub mod peers;
pub mod router;
pub mod routing;
pub mod stat_history;
pub mod state;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ctdb_common::Config;
use ctdb_protocol::Frame;
use ctdb_rpc::Envelope;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clients::Clients;
use crate::forward::ForwardTable;
use crate::links::{Deliver, Link};
use crate::routing::Owner;
use crate::state::NodeState;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("configuration: {0}")]
    Config(#[from] ctdb_common::ConfigError),
    #[error("tunables: {0}")]
    Tunables(String),
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
    /// The nodes' flags and the generation, for `WatchNodes` (see [`StateGuard`]).
    published: watch::Sender<ctdb_rpc::NodeStates>,
    /// Client ids start at the process's start time so that ids never repeat across a
    /// transport restart (a component may still hold a reply for an old client).
    next_client: AtomicU64,
    /// The trace id of each request read from a client or a node (see
    /// [`ctdb_rpc::trace`] and [`dispatch`]).
    traces: ctdb_rpc::trace::TraceIds,
    stats: controls::Counters,
    shutdown: watch::Sender<bool>,
    pub mesh: peers::Mesh,
    /// Controls sent to other nodes (or looped back to this one) awaiting replies.
    forwarded: Mutex<ForwardTable>,
    /// Controls handed to this node's components awaiting replies, each with the error
    /// its asker gets if the component's process goes first.
    component_waits: Mutex<component_waits::ComponentWaits<router::Action>>,
    /// What each component declared it serves: where controls go.
    routes: std::sync::RwLock<routing::Routes>,
    /// Node-level packets this node sends itself (a component's request to its own
    /// node, a transport reply to one): handled as if they came from a peer.
    loopback: ctdb_rpc::queue::QueueTx<Bytes>,
    /// GET_STAT_HISTORY's entries.
    history: Mutex<stat_history::StatHistory>,
}

impl Node {
    /// The node's state, locked; what changed in the nodes' flags or the generation
    /// is published to `WatchNodes` when the guard goes.
    pub fn state(&self) -> StateGuard<'_> {
        StateGuard {
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()),
            published: &self.published,
        }
    }

    /// Follows the node states (`WatchNodes`): now, and at every change.
    pub fn watch_nodes(&self) -> watch::Receiver<ctdb_rpc::NodeStates> {
        self.published.subscribe()
    }

    pub fn link(&self, owner: Owner) -> Option<&Arc<Link>> {
        self.links.get(&owner)
    }

    /// Lifts this node's ban once its time is up.
    fn expire_ban(&self) {
        let mut state = self.state();
        if let Some((secs, since)) = state.ban {
            if since.elapsed().unwrap_or_default().as_secs() >= u64::from(secs) {
                state.ban = None;
                state.set_flags(self.pnn, 0, ctdb_protocol::flags::node::BANNED);
                info!("ban expired");
            }
        }
    }
}

/// [`Node::state`]'s lock: on release, a change of the nodes' flags or of the
/// generation goes to the followers of `WatchNodes` (a read-only comparison when
/// nothing changed).
pub struct StateGuard<'a> {
    state: MutexGuard<'a, NodeState>,
    published: &'a watch::Sender<ctdb_rpc::NodeStates>,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = NodeState;
    fn deref(&self) -> &NodeState {
        &self.state
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut NodeState {
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let changed = {
            let now = self.published.borrow();
            now.flags != self.state.flags || now.generation != self.state.generation
        };
        if changed {
            self.published.send_replace(ctdb_rpc::NodeStates {
                flags: self.state.flags.clone(),
                generation: self.state.generation,
            });
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
    let listener = clients::bind_client_socket(&socket)?;
    let deleted: Vec<bool> = config.nodes.iter().map(|n| n.deleted).collect();
    let debug_level = ctdb_common::logging::parse_samba_level(&config.logging.level)
        .unwrap_or(ctdb_common::logging::NOTICE);
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());

    let tunables = controls::initial_tunables(&config)?;
    let (loopback, mut looped) = ctdb_rpc::queue::queue::<Bytes>(peers::PEER_LIMIT);
    let node = Arc::new_cyclic(|weak: &std::sync::Weak<Node>| {
        let sink: Arc<dyn Deliver> = Arc::new(WeakSink(weak.clone()));
        let links = Owner::COMPONENTS
            .into_iter()
            .map(|owner| match in_process.remove(&owner) {
                Some(handler) => (owner, links::start_in_process(owner, handler, sink.clone())),
                None => (owner, links::start(owner, &config.run_dir, sink.clone())),
            })
            .collect();
        let mut state = NodeState::new(config.nodes.len(), pnn, &deleted, debug_level);
        state.tunables = tunables;
        let published = watch::Sender::new(ctdb_rpc::NodeStates {
            flags: state.flags.clone(),
            generation: state.generation,
        });
        Node {
            state: Mutex::new(state),
            published,
            pnn,
            max_packet_len: ctdb_protocol::DEFAULT_MAX_PACKET_LEN,
            clients: Clients::default(),
            links,
            next_client: AtomicU64::new(epoch << 24),
            traces: ctdb_rpc::trace::TraceIds::default(),
            stats: controls::Counters::default(),
            shutdown,
            mesh: peers::Mesh::new(&config.nodes, pnn),
            forwarded: Mutex::new(ForwardTable::default()),
            component_waits: Mutex::new(Default::default()),
            routes: Default::default(),
            loopback,
            history: Mutex::new(stat_history::StatHistory::default()),
            config,
        }
    });
    // Components in this process declare what they serve now; the others when
    // their packet connection comes up (`links`).
    for (&owner, link) in &node.links {
        if link.is_local() {
            node.declared(owner, link.declaration().await);
        }
    }
    controls::keep_stat_history(&node);
    controls::watch_eventd(&node);
    if let Some(addr) = node.config.metrics_address {
        metrics::serve(&node, addr).map_err(|source| TransportError::Listen {
            path: format!("the metrics address {addr}"),
            source,
        })?;
    }
    {
        let weak = Arc::downgrade(&node);
        tokio::spawn(async move {
            while let Some(bytes) = looped.recv().await {
                let Some(node) = weak.upgrade() else { return };
                match Frame::new(bytes, node.max_packet_len) {
                    Ok(frame) => node.from_peer(node.pnn, frame),
                    Err(e) => warn!("bad packet on the loopback: {e}"),
                }
            }
        });
    }
    if let Err(e) = peers::start(&node) {
        let port = node.config.cluster.port;
        if node.mesh.alone() {
            // A cluster of one: no node will ever connect, so serve clients anyway.
            warn!("cannot listen for nodes on port {port}: {e}; no other nodes, carrying on");
        } else {
            return Err(TransportError::Listen {
                path: format!("the node address, port {port}"),
                source: e,
            });
        }
    }
    info!(pnn, socket = %socket.display(), "transport listening");

    let server = tokio::spawn(controls::serve_transport_rpc(node.clone()));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => clients::accept_client(&node, stream),
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: wait, do not spin.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
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
            if envelope.client != 0 {
                if let Some(link) = node.link(owner) {
                    link.answered(envelope.client, &envelope.packet);
                }
            }
            node.component_answered(owner, &envelope);
            node.from_component(owner, envelope);
        }
    }
    fn state_changed(&self, owner: Owner, state: ctdb_rpc::ComponentState) {
        if let Some(node) = self.0.upgrade() {
            node.state_changed(owner, state);
        }
    }
    fn declared(&self, owner: Owner, ownership: Option<ctdb_rpc::Ownership>) {
        if let Some(node) = self.0.upgrade() {
            node.declared(owner, ownership);
        }
    }
    fn link_changed(&self, owner: Owner, up: bool) {
        if let Some(node) = self.0.upgrade() {
            if owner == Owner::Db && !up {
                // Without its database component the node cannot serve calls.
                node.state().generation = ctdb_protocol::flags::INVALID_GENERATION;
            }
            if !up {
                node.component_lost(owner);
            }
            // A component restarted after `ctdb setdebug` starts at the configured
            // level: it is given the node's live one again.
            let live = {
                let state = node.state();
                (up && state.debug_set).then_some(state.debug_level)
            };
            if let (Some(level), Some(link)) = (live, node.link(owner).cloned()) {
                tokio::spawn(async move { link.set_debug_when_up(level).await });
            }
        }
    }
}
