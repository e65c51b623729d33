//! The node mesh: one outgoing TCP connection to every other node (ours to send on),
//! inbound connections from them (theirs), keepalives and connectivity.
//!
//! As in Samba, a node sends only on the connection it opened, bound to its own node
//! address (that source address is how the peer knows who it is), and the first bytes
//! after connect are an ordinary packet: there is no handshake. An inbound connection
//! is accepted only from an address of the nodes file (not deleted, not ours); the
//! peer's pnn is the one of its source address.
//!
//! **Connected** means: our outgoing connection to the peer is up *and* at least one
//! inbound connection from it is open. The peer is marked DISCONNECTED in the node
//! flags as soon as either closes, and when nothing at all (keepalive or other) has
//! arrived from it for `KeepaliveInterval * KeepaliveLimit` seconds; then both its
//! connections are dropped so that they are made again. Every change is logged.
//!
//! **A cut** (the fault point `transport::cut`, test clusters only; see [`parse_cut`])
//! stands for a network partition: while a peer is cut off, every packet to it is lost
//! on the way (sent as far as transport knows), every packet from it is discarded
//! unread, and no connection with it is made or accepted. Nothing is closed at once:
//! as on a real partition, the keepalive silence check finds the peer dead and drops
//! its connections, and both sides see each other DISCONNECTED. The cut lives in this
//! process only (a restarted transport has none). Off, it costs one relaxed atomic
//! load per packet.
//!
//! **TLS** (opt-in, [`crate::tls`]): with `[cluster] tls ...` set, every connection
//! between nodes starts with a mutual TLS handshake, and a peer whose certificate
//! does not name its nodes-file address is refused; the packets then flow as above.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_common::nodes::NodeEntry;
use ctdb_protocol::flags::node as node_flags;
use ctdb_protocol::{Body, FrameCodec, Keepalive, Packet};
use ctdb_rpc::queue::{queue, QueueRx, QueueTx, Refused};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use crate::tls::NodeTls;
use crate::Node;

/// A connection between nodes: plain TCP, or TLS over it.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}
type PeerStream = Box<dyn PeerIo>;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection that lasted this long was a good one: the next retry starts quickly.
const STABLE: Duration = Duration::from_secs(1);
/// How often keepalives are considered (the tunables are whole seconds).
const TICK: Duration = Duration::from_millis(250);
/// Most bytes the writer of a peer gathers into one write.
const WRITE_BATCH: usize = 256 * 1024;
/// A node's packet begun and not finished in this long closes its connection (the
/// buffer it holds is let go; the node connects again).
pub const PARTIAL_PACKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes queued for one node: past it the node is taken for stuck and the
/// connection is made again.
pub const PEER_LIMIT: usize = 256 << 20;

/// What transport knows about one other node's connections.
pub struct Peer {
    /// Queue of our outgoing connection, while it is up.
    out: RwLock<Option<QueueTx<Bytes>>>,
    /// Inbound connections from this peer that are open.
    inbound: AtomicU32,
    /// Milliseconds since the mesh started when a packet last arrived from it.
    last_rx_ms: AtomicU64,
    /// ... and when we last sent it a keepalive.
    last_keepalive_ms: AtomicU64,
    connected: AtomicBool,
    /// Bumped to make every connection with this peer drop (and be made again).
    reset: watch::Sender<u64>,
    /// Cut off by the fault point `transport::cut`: nothing goes or comes.
    cut: AtomicBool,
    /// No longer a node of the mesh (a reload deleted or replaced it): its
    /// connections end and are not made again.
    retired: AtomicBool,
}

impl Default for Peer {
    fn default() -> Self {
        Self {
            out: RwLock::new(None),
            inbound: AtomicU32::new(0),
            last_rx_ms: AtomicU64::new(0),
            last_keepalive_ms: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            reset: watch::Sender::new(0),
            cut: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }
}

impl Peer {
    fn out_up(&self) -> bool {
        self.out.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    fn set_out(&self, tx: Option<QueueTx<Bytes>>) {
        *self.out.write().unwrap_or_else(|p| p.into_inner()) = tx;
    }

    /// Drops every connection with this peer.
    fn drop_connections(&self) {
        self.reset.send_modify(|n| *n += 1);
    }

    /// Takes this peer out of the mesh: its connections drop for good.
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.drop_connections();
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Whether the fault point `transport::cut` cuts this peer off.
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

/// The nodes of the nodes file as transport runs them: the entries, every other live
/// node's [`Peer`], and every node's address now. `ctdb reloadnodes` replaces them
/// while the node runs ([`Mesh::reload`]).
struct Members {
    nodes: Arc<Vec<NodeEntry>>,
    /// By pnn; ourselves and deleted nodes have none.
    peers: Vec<Option<Arc<Peer>>>,
    /// Every node's address now: the nodes file's, or its name's last resolution.
    addresses: Vec<IpAddr>,
}

/// What a reload of the nodes file changed ([`Mesh::reload`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Nodes new to the mesh (or given a new address or name): connect to them.
    pub added: Vec<u32>,
    /// Nodes that left it (now deleted lines): their connections are dropped.
    pub removed: Vec<u32>,
}

/// Every other node of the nodes file, by pnn, and how to reach it.
pub struct Mesh {
    members: RwLock<Members>,
    /// Our side of every connection, set by [`start`]: our node address and TLS.
    dialer: std::sync::OnceLock<Dialer>,
    started: Instant,
    /// Packets the cut dropped (both ways) since this process started.
    cut_dropped: AtomicU64,
}

impl Mesh {
    pub fn new(nodes: &[NodeEntry], pnn: u32) -> Self {
        let peers = nodes
            .iter()
            .map(|n| (n.pnn != pnn && !n.deleted).then(|| Arc::new(Peer::default())))
            .collect();
        Self {
            members: RwLock::new(Members {
                nodes: Arc::new(nodes.to_vec()),
                peers,
                addresses: nodes.iter().map(|n| n.addr).collect(),
            }),
            dialer: std::sync::OnceLock::new(),
            started: Instant::now(),
            cut_dropped: AtomicU64::new(0),
        }
    }

    fn members(&self) -> std::sync::RwLockReadGuard<'_, Members> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The nodes file's entries the mesh runs now.
    pub fn nodes(&self) -> Arc<Vec<NodeEntry>> {
        self.members().nodes.clone()
    }

    /// How many entries the nodes file has (deleted ones too).
    pub fn num_nodes(&self) -> usize {
        self.members().nodes.len()
    }

    /// Whether no other node is in the mesh (a cluster of one).
    pub fn alone(&self) -> bool {
        self.members().peers.iter().all(Option::is_none)
    }

    /// Takes a freshly read nodes file (`nodes`; `me` is this node): an entry that
    /// kept its address (or name) keeps its peer and connections, a new or changed
    /// one gets a fresh peer, a deleted one loses its peer (its connections drop).
    /// Pnns never move: an entry's pnn is its line.
    pub fn reload(&self, nodes: &[NodeEntry], me: u32) -> Reloaded {
        let mut m = self.members.write().unwrap_or_else(|e| e.into_inner());
        let mut changes = Reloaded::default();
        let mut peers = Vec::with_capacity(nodes.len());
        let mut addresses = Vec::with_capacity(nodes.len());
        for n in nodes {
            let i = n.pnn as usize;
            let old = m.nodes.get(i);
            let kept = old.is_some_and(|o| {
                !o.deleted && o.name == n.name && (o.name.is_some() || o.addr == n.addr)
            });
            let old_peer = m.peers.get(i).cloned().flatten();
            let peer = if n.deleted || n.pnn == me {
                None
            } else if kept {
                old_peer.clone()
            } else {
                changes.added.push(n.pnn);
                Some(Arc::new(Peer::default()))
            };
            if let Some(old) = old_peer {
                if peer.as_ref().is_none_or(|p| !Arc::ptr_eq(p, &old)) {
                    old.retire();
                    changes.removed.push(n.pnn);
                }
            }
            peers.push(peer);
            addresses.push(match (kept, m.addresses.get(i)) {
                (true, Some(&now)) => now,
                _ => n.addr,
            });
        }
        // Lines gone from the end of the file (Samba's tool refuses such a file).
        for (pnn, old) in m.peers.iter().enumerate().skip(nodes.len()) {
            if let Some(old) = old {
                old.retire();
                changes.removed.push(pnn as u32);
            }
        }
        *m = Members {
            nodes: Arc::new(nodes.to_vec()),
            peers,
            addresses,
        };
        changes
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Node `pnn`'s address now (`0.0.0.0` for a name never resolved).
    pub fn address(&self, pnn: u32) -> IpAddr {
        self.members()
            .addresses
            .get(pnn as usize)
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn set_address(&self, pnn: u32, addr: IpAddr) -> bool {
        let mut m = self.members.write().unwrap_or_else(|e| e.into_inner());
        match m.addresses.get_mut(pnn as usize) {
            Some(a) if *a != addr => {
                *a = addr;
                true
            }
            _ => false,
        }
    }

    /// The node a connection from `ip` comes from, by the addresses now.
    fn identify(&self, me: u32, ip: IpAddr) -> Option<u32> {
        let m = self.members();
        identify_by(&m.nodes, me, ip, |n| {
            m.addresses.get(n.pnn as usize).copied().unwrap_or(n.addr)
        })
    }

    pub fn peer(&self, pnn: u32) -> Option<Arc<Peer>> {
        self.members().peers.get(pnn as usize).cloned().flatten()
    }

    /// Whether `pnn` is another live node of the mesh.
    pub fn is_peer(&self, pnn: u32) -> bool {
        self.members()
            .peers
            .get(pnn as usize)
            .is_some_and(Option::is_some)
    }

    pub fn is_connected(&self, pnn: u32) -> bool {
        self.members()
            .peers
            .get(pnn as usize)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.connected.load(Ordering::Acquire))
    }

    /// Queues a packet on our connection to `pnn`; false when it is not up. A packet
    /// to a peer that is cut off is lost on the way, unseen by the sender as on a
    /// partition (true while our connection is still up).
    pub fn send(&self, pnn: u32, packet: Bytes) -> bool {
        let m = self.members();
        let Some(peer) = m.peers.get(pnn as usize).and_then(Option::as_ref) else {
            return false;
        };
        if peer.is_cut() {
            self.cut_dropped.fetch_add(1, Ordering::Relaxed);
            return peer.out_up();
        }
        let out = peer.out.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = out.as_ref() else {
            return false;
        };
        match tx.send(packet) {
            Ok(()) => true,
            Err(Refused::Full(_)) => {
                // It takes nothing in: a connection made again starts clean (what was
                // queued is lost, as on a node that went away and came back).
                warn!(
                    peer = pnn,
                    queued = tx.queued(),
                    "node {pnn} does not read what we send: dropping the connection"
                );
                peer.drop_connections();
                false
            }
            Err(Refused::Closed(_)) => false,
        }
    }

    /// Connected peers, in pnn order.
    pub fn connected(&self) -> Vec<u32> {
        let m = self.members();
        (0..m.peers.len() as u32)
            .filter(|&p| {
                m.peers[p as usize]
                    .as_ref()
                    .is_some_and(|p| p.connected.load(Ordering::Acquire))
            })
            .collect()
    }

    /// Cuts this node off from exactly the peers `pnns` (none: heals every cut). Every
    /// pnn must be another live node of the nodes file; nothing changes otherwise.
    pub fn set_cut(&self, pnns: &[u32]) -> Result<(), String> {
        let m = self.members();
        if let Some(bad) = pnns
            .iter()
            .find(|&&p| m.peers.get(p as usize).is_none_or(Option::is_none))
        {
            return Err(format!(
                "transport::cut: {bad} is not another live node of this cluster"
            ));
        }
        for (pnn, peer) in m.peers.iter().enumerate() {
            if let Some(peer) = peer {
                peer.cut
                    .store(pnns.contains(&(pnn as u32)), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The peers cut off, in pnn order.
    pub fn cut_off(&self) -> Vec<u32> {
        let m = self.members();
        (0..m.peers.len() as u32)
            .filter(|&p| m.peers[p as usize].as_ref().is_some_and(|p| p.is_cut()))
            .collect()
    }

    /// How many packets the cut dropped, both ways, since this process started.
    pub fn cut_dropped(&self) -> u64 {
        self.cut_dropped.load(Ordering::Relaxed)
    }
}

/// The name of transport's one fault point.
pub const CUT_POINT: &str = "transport::cut";

/// The peers an action string of `transport::cut` cuts off: `return(P,Q,...)`, pnns
/// separated by commas (spaces allowed); `""` or `off` heals (no peer). Anything else
/// is refused with the reason.
pub fn parse_cut(actions: &str) -> Result<Vec<u32>, String> {
    let actions = actions.trim();
    if actions.is_empty() || actions == "off" {
        return Ok(Vec::new());
    }
    let usage = || {
        format!(
            "{CUT_POINT}: actions {actions:?}: expected return(PNN,...) with the peers to cut \
             off, or nothing to heal"
        )
    };
    let list = actions
        .strip_prefix("return(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(usage)?;
    let mut pnns = Vec::new();
    for item in list.split(',') {
        let pnn = item.trim().parse::<u32>().map_err(|_| usage())?;
        if !pnns.contains(&pnn) {
            pnns.push(pnn);
        }
    }
    Ok(pnns)
}

/// Which node of `nodes` a connection from `ip` is: a node that is not deleted and
/// not ourselves (`me`). Anyone else is refused.
pub fn identify(nodes: &[NodeEntry], me: u32, ip: IpAddr) -> Option<u32> {
    identify_by(nodes, me, ip, |n| n.addr)
}

/// [`identify`] with each node's address as `addr_of` gives it.
fn identify_by(
    nodes: &[NodeEntry],
    me: u32,
    ip: IpAddr,
    addr_of: impl Fn(&NodeEntry) -> IpAddr,
) -> Option<u32> {
    // An IPv4 peer may show up as ::ffff:a.b.c.d on a dual-stack listener.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nodes
        .iter()
        .find(|n| !n.deleted && n.pnn != me && addr_of(n) == ip)
        .map(|n| n.pnn)
}

/// Whether a peer from which nothing arrived since `last_rx_ms` is dead at `now_ms`:
/// silent for more than `interval * limit` seconds (Samba's KeepaliveInterval and
/// KeepaliveLimit; 0 counts as 1).
pub fn is_silent(now_ms: u64, last_rx_ms: u64, interval: u32, limit: u32) -> bool {
    let allowed = u64::from(interval.max(1)) * u64::from(limit.max(1)) * 1000;
    now_ms.saturating_sub(last_rx_ms) > allowed
}

/// Whether a keepalive last sent at `last_ms` is due again at `now_ms`.
pub fn keepalive_due(now_ms: u64, last_ms: u64, interval: u32) -> bool {
    now_ms.saturating_sub(last_ms) >= u64::from(interval.max(1)) * 1000
}

/// Recomputes whether `pnn` (`peer`) is connected and updates its DISCONNECTED flag.
/// A retired peer no longer speaks for its pnn.
fn refresh(node: &Node, pnn: u32, peer: &Peer) {
    if peer.is_retired() {
        return;
    }
    let now = peer.out_up() && peer.inbound.load(Ordering::Acquire) > 0;
    let was = peer.connected.swap(now, Ordering::AcqRel);
    if was != now {
        if now {
            // A fresh start for the silence check.
            peer.last_rx_ms.store(node.mesh.now_ms(), Ordering::Release);
            node.state().set_flags(pnn, 0, node_flags::DISCONNECTED);
            info!(peer = pnn, "node {pnn} connected");
        } else {
            node.state().set_flags(pnn, node_flags::DISCONNECTED, 0);
            warn!(peer = pnn, "node {pnn} disconnected");
            node.node_lost(pnn);
        }
    }
}

/// Starts the listener, one connector per peer, and the keepalive timer.
pub fn start(node: &Arc<Node>) -> std::io::Result<()> {
    let ours = node.config.node_address().map_err(std::io::Error::other)?;
    let addr = SocketAddr::new(ours, node.config.cluster.port);
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let tls = match &node.config.cluster.tls {
        Some(config) => Some(Arc::new(
            NodeTls::load(config).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    info!(%addr, tls = tls.is_some(), "listening for nodes");
    let _ = node.mesh.dialer.set(Dialer {
        local: ours,
        tls: tls.clone(),
    });
    tokio::spawn(accept_loop(node.clone(), listener, tls));
    for n in node.mesh.nodes().iter() {
        connect_to(node, n.pnn);
    }
    tokio::spawn(keepalive_loop(node.clone()));
    Ok(())
}

/// Our side of the connections to other nodes.
struct Dialer {
    local: IpAddr,
    tls: Option<Arc<NodeTls>>,
}

/// Keeps a connection to node `pnn` up for as long as it is a peer of the mesh (no
/// connection before [`start`] ran: a cluster of one that could not listen).
pub fn connect_to(node: &Arc<Node>, pnn: u32) {
    let (Some(peer), Some(dialer)) = (node.mesh.peer(pnn), node.mesh.dialer.get()) else {
        return;
    };
    tokio::spawn(connect_loop(
        node.clone(),
        pnn,
        peer,
        dialer.local,
        dialer.tls.clone(),
    ));
}

async fn accept_loop(node: Arc<Node>, listener: TcpListener, tls: Option<Arc<NodeTls>>) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accepting a node connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut known = node.mesh.identify(node.pnn, from.ip());
        if known.is_none() && node.mesh.nodes().iter().any(|n| n.name.is_some()) {
            // A node given by name may have come back with another address.
            resolve_all(&node).await;
            known = node.mesh.identify(node.pnn, from.ip());
        }
        let Some(pnn) = known else {
            warn!(%from, "refusing a node connection from an address not in the nodes file");
            continue;
        };
        if node.mesh.peer(pnn).is_some_and(|p| p.is_cut()) {
            debug!(
                peer = pnn,
                "node {pnn} is cut off (transport::cut): connection dropped"
            );
            continue;
        }
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls.clone() else {
            tokio::spawn(read_peer(node.clone(), pnn, Box::new(stream), from));
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            match tls.accept(stream, identity(&node, pnn)).await {
                Ok(stream) => read_peer(node, pnn, Box::new(stream), from).await,
                Err(e) => warn!(
                    peer = pnn,
                    %from,
                    "refusing the TLS connection from node {pnn}: {e}"
                ),
            }
        });
    }
}

/// Reads the packets node `pnn` sends us on the connection it opened.
async fn read_peer(node: Arc<Node>, pnn: u32, stream: PeerStream, from: SocketAddr) {
    let Some(peer) = node.mesh.peer(pnn) else {
        return;
    };
    let mut reset = peer.reset.subscribe();
    reset.mark_unchanged();
    debug!(peer = pnn, %from, "inbound connection from node {pnn}");
    peer.inbound.fetch_add(1, Ordering::AcqRel);
    peer.last_rx_ms.store(node.mesh.now_ms(), Ordering::Release);
    refresh(&node, pnn, &peer);
    let mut frames = FramedRead::new(stream, FrameCodec::new(node.max_packet_len));
    // A packet begun and not finished: since when (see PARTIAL_PACKET_TIMEOUT).
    let mut partial_since: Option<Instant> = None;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                if frames.read_buffer().is_empty() {
                    partial_since = None;
                } else if partial_since.get_or_insert_with(Instant::now).elapsed()
                    >= PARTIAL_PACKET_TIMEOUT
                {
                    warn!(
                        peer = pnn,
                        %from,
                        buffered = frames.read_buffer().len(),
                        "node {pnn} began a packet and did not finish it in \
                         {PARTIAL_PACKET_TIMEOUT:?}: closing its connection"
                    );
                    break;
                }
            }
            frame = frames.next() => match frame {
                Some(Ok(frame)) => {
                    partial_since = None;
                    if peer.is_cut() {
                        node.mesh.cut_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    peer.last_rx_ms.store(node.mesh.now_ms(), Ordering::Release);
                    node.from_peer(pnn, frame);
                }
                Some(Err(e)) => {
                    warn!(peer = pnn, %from, "closing the connection from node {pnn}: {e}");
                    break;
                }
                None => {
                    debug!(peer = pnn, %from, "node {pnn} closed its connection");
                    break;
                }
            },
            _ = reset.changed() => break,
        }
    }
    peer.inbound.fetch_sub(1, Ordering::AcqRel);
    refresh(&node, pnn, &peer);
}

/// Keeps our connection to node `pnn` up and writes what is queued for it.
/// Node `pnn`'s address now: a node given by name is looked up again (off the
/// runtime: it may wait for DNS), and the mesh keeps what it found. `None` while the
/// name does not resolve.
async fn resolve(node: &Arc<Node>, pnn: u32) -> Option<IpAddr> {
    let entry = node.mesh.nodes().get(pnn as usize)?.clone();
    if entry.name.is_none() {
        return Some(entry.addr);
    }
    let name = entry.name.clone().unwrap_or_default();
    let found = tokio::task::spawn_blocking(move || entry.resolve())
        .await
        .ok()
        .flatten()?;
    if node.mesh.set_address(pnn, found) {
        info!(
            peer = pnn,
            name = name.as_str(),
            addr = %found,
            "node {pnn}'s name resolves to a new address"
        );
    }
    Some(found)
}

/// Every node given by name, looked up again.
async fn resolve_all(node: &Arc<Node>) {
    for n in node.mesh.nodes().iter() {
        if n.name.is_some() && !n.deleted && n.pnn != node.pnn {
            resolve(node, n.pnn).await;
        }
    }
}

/// What node `pnn`'s certificate must name: its name when the nodes file gives one,
/// else its address.
fn identity(node: &Node, pnn: u32) -> crate::tls::Identity {
    match node
        .mesh
        .nodes()
        .get(pnn as usize)
        .and_then(|n| n.name.clone())
    {
        Some(name) => crate::tls::Identity::Name(name),
        None => crate::tls::Identity::Ip(node.mesh.address(pnn)),
    }
}

async fn connect_loop(
    node: Arc<Node>,
    pnn: u32,
    peer: Arc<Peer>,
    local: IpAddr,
    tls: Option<Arc<NodeTls>>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if peer.is_retired() {
            debug!(
                peer = pnn,
                "node {pnn} left the nodes file: no more connections"
            );
            return;
        }
        // Each attempt looks a named node up again: it may have a new address.
        let Some(addr) = resolve(&node, pnn).await else {
            debug!(peer = pnn, "node {pnn}'s name does not resolve (yet)");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let target = SocketAddr::new(addr, node.config.cluster.port);
        let attempt = if peer.is_cut() {
            // A partition: the connection attempt goes nowhere.
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "cut off by transport::cut",
            ))
        } else {
            match (connect(local, target).await, &tls) {
                (Ok(stream), None) => Ok(Box::new(stream) as PeerStream),
                (Ok(stream), Some(tls)) => match tls.connect(stream, identity(&node, pnn)).await {
                    Ok(stream) => Ok(Box::new(stream) as PeerStream),
                    Err(e) => {
                        warn!(peer = pnn, "TLS with node {pnn} at {target} failed: {e}");
                        Err(e)
                    }
                },
                (Err(e), _) => Err(e),
            }
        };
        match attempt {
            Ok(stream) => {
                debug!(peer = pnn, "connected to node {pnn} at {target}");
                let since = Instant::now();
                let mut reset = peer.reset.subscribe();
                reset.mark_unchanged();
                let (tx, rx) = queue::<Bytes>(PEER_LIMIT);
                peer.set_out(Some(tx));
                refresh(&node, pnn, &peer);
                let why = write_peer(stream, rx, &mut reset).await;
                peer.set_out(None);
                debug!(peer = pnn, "connection to node {pnn} ended: {why}");
                refresh(&node, pnn, &peer);
                if since.elapsed() >= STABLE {
                    backoff = FIRST_BACKOFF;
                }
            }
            Err(e) => debug!(peer = pnn, "cannot connect to node {pnn} at {target}: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Writes queued packets, as many per write as are ready, until the connection ends;
/// says why it ended.
async fn write_peer(
    stream: PeerStream,
    mut rx: QueueRx<Bytes>,
    reset: &mut watch::Receiver<u64>,
) -> String {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut buf = Vec::with_capacity(8192);
    let mut scratch = [0u8; 4096];
    loop {
        tokio::select! {
            first = rx.recv() => {
                let Some(first) = first else { return "queue closed".into() };
                buf.extend_from_slice(&first);
                while buf.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(more) => buf.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if let Err(e) = write.write_all(&buf).await {
                    return format!("write failed: {e}");
                }
                buf.clear();
            }
            // The peer sends nothing here; reading tells us at once when it closes.
            n = read.read(&mut scratch) => match n {
                Ok(0) => return "closed by the peer".into(),
                Ok(_) => {}
                Err(e) => return format!("read failed: {e}"),
            },
            _ = reset.changed() => return "dropped (keepalive timeout)".into(),
        }
    }
}

async fn connect(local: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Our source address tells the peer which node we are.
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends keepalives, drops silent peers, expires forwarded controls and bans.
async fn keepalive_loop(node: Arc<Node>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (interval, limit, generation) = {
            let state = node.state();
            (
                state.tunables.keepalive_interval(),
                state.tunables.keepalive_limit(),
                state.generation,
            )
        };
        let now = node.mesh.now_ms();
        for pnn in 0..node.mesh.num_nodes() as u32 {
            let Some(peer) = node.mesh.peer(pnn) else {
                continue;
            };
            if keepalive_due(
                now,
                peer.last_keepalive_ms.load(Ordering::Acquire),
                interval,
            ) {
                let keepalive = Packet {
                    generation,
                    destnode: pnn,
                    srcnode: node.pnn,
                    reqid: 0,
                    body: Body::Keepalive(Keepalive::default()),
                };
                if node.send_to_node(pnn, Bytes::from(keepalive.to_bytes())) {
                    peer.last_keepalive_ms.store(now, Ordering::Release);
                    node.stats
                        .keepalive_packets_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            let last_rx = peer.last_rx_ms.load(Ordering::Acquire);
            if peer.connected.load(Ordering::Acquire) && is_silent(now, last_rx, interval, limit) {
                warn!(
                    peer = pnn,
                    silent_ms = now.saturating_sub(last_rx),
                    "nothing from node {pnn} for KeepaliveInterval * KeepaliveLimit; dropping it"
                );
                peer.drop_connections();
                if peer.connected.swap(false, Ordering::AcqRel) {
                    node.state().set_flags(pnn, node_flags::DISCONNECTED, 0);
                    warn!(peer = pnn, "node {pnn} disconnected");
                    node.node_lost(pnn);
                }
            }
        }
        node.expire_forwarded();
        node.expire_ban();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_has_a_peer_for_every_other_live_node() {
        let mesh = Mesh::new(&four_nodes_one_deleted(), 1);
        assert!(mesh.peer(0).is_some());
        assert!(mesh.peer(1).is_none(), "not ourselves");
        assert!(mesh.peer(2).is_some());
        assert!(mesh.peer(3).is_none(), "not a deleted node");
        assert!(mesh.peer(9).is_none());
        assert!(!mesh.is_connected(0));
        assert!(!mesh.send(0, Bytes::from_static(b"x")));
        assert!(mesh.connected().is_empty());
    }

    #[test]
    fn a_reload_keeps_unchanged_peers_and_retires_deleted_and_changed_ones() {
        let mesh = Mesh::new(&four_nodes_one_deleted(), 1);
        let kept = mesh.peer(0).unwrap();
        let deleted = mesh.peer(2).unwrap();
        let mut resets = deleted.reset.subscribe();
        resets.mark_unchanged();

        // Node 2 deleted, node 3 undeleted, node 4 new, node 0 as it was.
        let mut nodes = four_nodes_one_deleted();
        nodes[2].deleted = true;
        nodes[3] = entry(3, "10.0.0.4", false);
        nodes.push(entry(4, "10.0.0.5", false));
        let changes = mesh.reload(&nodes, 1);
        assert_eq!(changes.added, [3, 4]);
        assert_eq!(changes.removed, [2]);
        assert!(
            Arc::ptr_eq(&mesh.peer(0).unwrap(), &kept),
            "unchanged: kept"
        );
        assert!(mesh.peer(1).is_none(), "still not ourselves");
        assert!(mesh.peer(2).is_none());
        assert!(deleted.is_retired() && resets.has_changed().unwrap());
        assert!(!kept.is_retired());
        assert_eq!(mesh.num_nodes(), 5);
        assert_eq!(mesh.address(4), "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(mesh.identify(1, "10.0.0.5".parse().unwrap()), Some(4));
        assert_eq!(mesh.identify(1, "10.0.0.3".parse().unwrap()), None);

        // A node whose address changed is a new node under the same pnn.
        let mut moved = nodes.clone();
        moved[0] = entry(0, "10.0.0.9", false);
        let changes = mesh.reload(&moved, 1);
        assert_eq!(changes.added, [0]);
        assert_eq!(changes.removed, [0]);
        assert!(kept.is_retired());
        assert!(!Arc::ptr_eq(&mesh.peer(0).unwrap(), &kept));
        assert_eq!(
            mesh.reload(&moved, 1),
            Reloaded::default(),
            "nothing changed"
        );
    }

    #[test]
    fn cut_actions_name_the_peers_or_heal() {
        assert_eq!(parse_cut("return(1,2)"), Ok(vec![1, 2]));
        assert_eq!(parse_cut(" return( 2 , 0 ,2) "), Ok(vec![2, 0]));
        assert_eq!(parse_cut("return(0)"), Ok(vec![0]));
        assert_eq!(parse_cut(""), Ok(vec![]));
        assert_eq!(parse_cut("off"), Ok(vec![]));
        for bad in [
            "return",
            "return()",
            "return(1,)",
            "return(x)",
            "1*return(1)",
            "cut(1)",
        ] {
            let e = parse_cut(bad).unwrap_err();
            assert!(e.contains(CUT_POINT), "{bad}: {e}");
        }
    }

    #[test]
    fn a_node_that_does_not_read_is_refused_and_its_connection_made_again() {
        let mesh = Mesh::new(
            &[entry(0, "10.0.0.1", false), entry(1, "10.0.0.2", false)],
            1,
        );
        let (tx, mut rx) = queue(10);
        let peer = mesh.peer(0).unwrap();
        peer.set_out(Some(tx));
        let mut resets = peer.reset.subscribe();
        resets.mark_unchanged();
        assert!(mesh.send(0, Bytes::from_static(b"12345678")));
        assert!(
            !mesh.send(0, Bytes::from_static(b"12345678")),
            "over the limit"
        );
        assert!(resets.has_changed().unwrap(), "the connection is dropped");
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"12345678"));
        assert!(mesh.send(0, Bytes::from_static(b"1")));
    }

    #[test]
    fn a_cut_peer_gets_nothing_and_a_heal_lets_it_through() {
        let mesh = Mesh::new(&four_nodes_one_deleted(), 1);
        let (tx0, mut rx0) = queue(PEER_LIMIT);
        let (tx2, mut rx2) = queue(PEER_LIMIT);
        mesh.peer(0).unwrap().set_out(Some(tx0));
        mesh.peer(2).unwrap().set_out(Some(tx2));
        assert!(mesh.cut_off().is_empty());

        for bad in [[1], [3], [7]] {
            let e = mesh.set_cut(&bad).unwrap_err();
            assert!(e.contains("not another live node"), "{e}");
        }
        mesh.set_cut(&[2]).unwrap();
        assert_eq!(mesh.cut_off(), [2]);
        // Lost on the way, unseen by the sender while its connection is up.
        assert!(mesh.send(2, Bytes::from_static(b"lost")));
        assert!(mesh.send(0, Bytes::from_static(b"kept")));
        assert!(rx2.try_recv().is_err());
        assert_eq!(rx0.try_recv().unwrap(), Bytes::from_static(b"kept"));
        assert_eq!(mesh.cut_dropped(), 1);

        // A new set replaces the old one; an empty one heals.
        mesh.set_cut(&[0]).unwrap();
        assert_eq!(mesh.cut_off(), [0]);
        assert!(mesh.send(2, Bytes::from_static(b"through")));
        assert_eq!(rx2.try_recv().unwrap(), Bytes::from_static(b"through"));
        mesh.set_cut(&[]).unwrap();
        assert!(mesh.cut_off().is_empty());
        assert!(mesh.send(0, Bytes::from_static(b"again")));
        assert_eq!(rx0.try_recv().unwrap(), Bytes::from_static(b"again"));
        assert_eq!(mesh.cut_dropped(), 1);

        // A cut peer whose connection is down: not sent, as before the cut.
        mesh.peer(2).unwrap().set_out(None);
        mesh.set_cut(&[2]).unwrap();
        assert!(!mesh.send(2, Bytes::from_static(b"x")));
    }

    fn four_nodes_one_deleted() -> Vec<NodeEntry> {
        vec![
            entry(0, "10.0.0.1", false),
            entry(1, "10.0.0.2", false),
            entry(2, "10.0.0.3", false),
            entry(3, "0.0.0.0", true),
        ]
    }

    fn entry(pnn: u32, addr: &str, deleted: bool) -> NodeEntry {
        NodeEntry {
            pnn,
            addr: addr.parse().unwrap(),
            deleted,
            name: None,
        }
    }

    #[test]
    fn peers_are_known_by_their_source_address() {
        let nodes = [
            entry(0, "10.0.0.1", false),
            entry(1, "10.0.0.2", false),
            entry(2, "10.0.0.3", true),
            entry(3, "fd00::4", false),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(identify(&nodes, 0, ip("10.0.0.2")), Some(1));
        assert_eq!(identify(&nodes, 0, ip("::ffff:10.0.0.2")), Some(1));
        assert_eq!(identify(&nodes, 0, ip("fd00::4")), Some(3));
        assert_eq!(identify(&nodes, 0, ip("10.0.0.1")), None, "ourselves");
        assert_eq!(identify(&nodes, 0, ip("10.0.0.3")), None, "a deleted node");
        assert_eq!(identify(&nodes, 0, ip("10.0.0.9")), None, "a stranger");
        assert_eq!(identify(&nodes, 1, ip("10.0.0.1")), Some(0));
    }

    #[test]
    fn a_peer_is_dead_after_interval_times_limit_seconds_of_silence() {
        // Samba's defaults: 5 s * 5.
        assert!(!is_silent(25_000, 0, 5, 5));
        assert!(is_silent(25_001, 0, 5, 5));
        assert!(!is_silent(10_000, 9_000, 1, 2));
        assert!(is_silent(12_000, 9_000, 1, 2));
        assert!(
            !is_silent(0, 5_000, 1, 1),
            "a packet newer than now is no silence"
        );
        assert!(
            is_silent(1_001, 0, 0, 0),
            "zero tunables count as one second"
        );
    }

    #[test]
    fn keepalives_go_every_interval() {
        assert!(keepalive_due(5_000, 0, 5));
        assert!(!keepalive_due(4_999, 0, 5));
        assert!(keepalive_due(6_000, 5_000, 1));
        assert!(keepalive_due(1_000, 0, 0));
    }
}
