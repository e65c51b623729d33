//! Local clients: the Unix socket they connect to, each connection's reader and
//! writer, and the registry of connected clients and the srvids they registered.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ctdb_protocol::FrameCodec;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::FramedRead;
use tracing::{debug, warn};

use crate::{Node, TransportError};

/// Most bytes a client writer gathers into one write.
const WRITE_BATCH: usize = 256 * 1024;
use ctdb_rpc::queue::{queue, QueueRx, QueueTx, Refused};
use tokio_util::sync::CancellationToken;

/// Bytes waiting for one client beyond which it is cut off: it does not read what it
/// is sent (one larger packet alone is still queued).
pub const MAX_BACKLOG: usize = 32 << 20;

/// Most clients connected at once; a connection beyond is closed at once.
pub const MAX_CLIENTS: usize = 20_000;

/// How transport reaches one connected client: its writer task drains this queue.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: QueueTx<Bytes>,
    pub pid: u32,
    /// Cancelled when the client is cut off: its reader and writer stop.
    pub cut: CancellationToken,
}

impl ClientHandle {
    /// A handle and the queue its writer drains.
    pub fn new(pid: u32) -> (Self, QueueRx<Bytes>) {
        let (tx, rx) = queue(MAX_BACKLOG);
        let handle = Self {
            tx,
            pid,
            cut: CancellationToken::new(),
        };
        (handle, rx)
    }

    /// Queues `packet`; false (and the client is cut off) when its backlog is full.
    fn push(&self, packet: Bytes) -> bool {
        match self.tx.send(packet) {
            Ok(()) => true,
            Err(Refused::Full(_)) => {
                if !self.cut.is_cancelled() {
                    tracing::warn!(
                        pid = self.pid,
                        backlog = self.tx.queued(),
                        "client does not read what it is sent: disconnecting it"
                    );
                    self.cut.cancel();
                }
                false
            }
            Err(Refused::Closed(_)) => false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<u64, ClientHandle>,
    /// srvid → clients registered for it.
    srvids: HashMap<u64, HashSet<u64>>,
}

/// The registry of connected clients and their message handlers.
#[derive(Debug, Default)]
pub struct Clients {
    inner: RwLock<Inner>,
}

impl Clients {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, id: u64, handle: ClientHandle) {
        self.write().clients.insert(id, handle);
    }

    /// Forgets a client and every srvid it registered.
    pub fn remove(&self, id: u64) {
        let mut inner = self.write();
        inner.clients.remove(&id);
        inner.srvids.retain(|_, ids| {
            ids.remove(&id);
            !ids.is_empty()
        });
    }

    pub fn count(&self) -> usize {
        self.read().clients.len()
    }

    /// Queues `packet` for client `id`; false when the client is gone.
    pub fn send(&self, id: u64, packet: Bytes) -> bool {
        match self.read().clients.get(&id) {
            Some(c) => c.push(packet),
            None => false,
        }
    }

    pub fn register_srvid(&self, id: u64, srvid: u64) {
        self.write().srvids.entry(srvid).or_default().insert(id);
    }

    /// False when the client had not registered `srvid`.
    pub fn deregister_srvid(&self, id: u64, srvid: u64) -> bool {
        let mut inner = self.write();
        let Some(ids) = inner.srvids.get_mut(&srvid) else {
            return false;
        };
        let removed = ids.remove(&id);
        if ids.is_empty() {
            inner.srvids.remove(&srvid);
        }
        removed
    }

    pub fn has_srvid(&self, srvid: u64) -> bool {
        self.read().srvids.contains_key(&srvid)
    }

    /// Whether a client with process id `pid` is connected (and registered `srvid`).
    pub fn pid_exists(&self, pid: u32, srvid: Option<u64>) -> bool {
        let inner = self.read();
        inner.clients.iter().any(|(id, c)| {
            c.pid == pid
                && srvid.is_none_or(|s| inner.srvids.get(&s).is_some_and(|ids| ids.contains(id)))
        })
    }

    /// Delivers a message to every client registered for `srvid` (or for
    /// `CTDB_SRVID_ALL`); returns how many got it.
    pub fn deliver(&self, srvid: u64, packet: &Bytes) -> usize {
        let inner = self.read();
        let exact = inner.srvids.get(&srvid);
        // A client registered for both gets the message once (no allocation per message).
        let catch_all = inner
            .srvids
            .get(&ctdb_protocol::srvid::ALL)
            .into_iter()
            .flatten()
            .filter(|id| {
                srvid != ctdb_protocol::srvid::ALL && !exact.is_some_and(|e| e.contains(id))
            });
        let mut delivered = 0;
        for id in exact.into_iter().flatten().chain(catch_all) {
            if let Some(c) = inner.clients.get(id) {
                if c.push(packet.clone()) {
                    delivered += 1;
                }
            }
        }
        delivered
    }
}

/// Binds the client socket, readable and writable by its owner only from the start
/// (see `ctdb_rpc::uds::bind_listener`): Samba's smbd connects to it as root.
pub(crate) fn bind_client_socket(path: &std::path::Path) -> Result<UnixListener, TransportError> {
    ctdb_rpc::uds::bind_listener(path).map_err(|source| TransportError::Listen {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn accept_client(node: &Arc<Node>, stream: UnixStream) {
    if node.clients.count() >= MAX_CLIENTS {
        warn!(
            "{} clients connected already: refusing another",
            MAX_CLIENTS
        );
        return;
    }
    let id = node.next_client.fetch_add(1, Ordering::Relaxed);
    let pid = stream
        .peer_cred()
        .ok()
        .and_then(|c| c.pid())
        .map_or(0, |p| p as u32);
    // Registered for reading only: a client taking its replies does not wake
    // transport (see `ctdb_rpc::quiet_unix`).
    let (reader, mut writer) = match ctdb_rpc::quiet_unix::split(stream) {
        Ok(halves) => halves,
        Err(e) => {
            warn!(pid, "cannot serve a client connection: {e}");
            return;
        }
    };
    let (handle, mut queue) = ClientHandle::new(pid);
    let cut = handle.cut.clone();
    node.clients.add(id, handle);
    debug!(client = id, pid, "client connected");

    // Writer: everything queued for this client goes out in as few writes as possible.
    let writer_cut = cut.clone();
    tokio::spawn(async move {
        let mut buf = Vec::with_capacity(8192);
        while let Some(first) = queue.recv().await {
            buf.extend_from_slice(&first);
            while buf.len() < WRITE_BATCH {
                match queue.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            let written = tokio::select! {
                w = writer.write_all(&buf) => w.is_ok(),
                () = writer_cut.cancelled() => false,
            };
            if !written {
                return;
            }
            buf.clear();
        }
    });

    let node = node.clone();
    tokio::spawn(async move {
        let mut frames = FramedRead::new(reader, FrameCodec::new(node.max_packet_len));
        loop {
            let frame = tokio::select! {
                frame = frames.next() => frame,
                () = cut.cancelled() => break,
            };
            match frame {
                Some(Ok(frame)) => node.from_client(id, frame),
                Some(Err(e)) => {
                    warn!(client = id, pid, "disconnecting client: {e}");
                    break;
                }
                None => break,
            }
        }
        cut.cancel();
        node.clients.remove(id);
        debug!(client = id, "client gone");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(clients: &Clients, id: u64, pid: u32) -> QueueRx<Bytes> {
        let (handle, queue) = ClientHandle::new(pid);
        clients.add(id, handle);
        queue
    }

    #[test]
    fn a_client_that_does_not_read_is_cut_off_past_its_backlog() {
        let clients = Clients::default();
        let (handle, mut queue) = ClientHandle::new(10);
        let cut = handle.cut.clone();
        clients.add(1, handle);
        let packet = Bytes::from(vec![0u8; 1 << 20]);
        let mut queued = 0;
        while clients.send(1, packet.clone()) {
            queued += 1;
            assert!(queued <= MAX_BACKLOG >> 20, "never cut off");
        }
        assert_eq!(queued, MAX_BACKLOG >> 20);
        assert!(cut.is_cancelled());
        // What the writer took makes room again (a client cut off is gone anyway).
        while queue.try_recv().is_ok() {}
        assert!(clients.send(1, packet));
        // One packet larger than the whole backlog still goes alone.
        let (big, _queue) = ClientHandle::new(11);
        clients.add(2, big);
        assert!(clients.send(2, Bytes::from(vec![0u8; MAX_BACKLOG + 1])));
    }

    #[test]
    fn catch_all_clients_get_each_message_once() {
        let clients = Clients::default();
        let mut rx1 = client(&clients, 1, 10);
        let mut rx2 = client(&clients, 2, 20);
        let all = ctdb_protocol::srvid::ALL;
        clients.register_srvid(1, 0xabc);
        clients.register_srvid(1, all);
        clients.register_srvid(2, all);
        let m = Bytes::from_static(b"m");
        // Client 1 by its srvid and by ALL: once; client 2 by ALL.
        assert_eq!(clients.deliver(0xabc, &m), 2);
        assert_eq!(clients.deliver(0xdef, &m), 2);
        assert_eq!(clients.deliver(all, &m), 2);
        let count = |rx: &mut QueueRx<Bytes>| std::iter::from_fn(|| rx.try_recv().ok()).count();
        assert_eq!((count(&mut rx1), count(&mut rx2)), (3, 3));
    }

    #[test]
    fn messages_reach_registered_clients_only() {
        let clients = Clients::default();
        let mut rx1 = client(&clients, 1, 10);
        let mut rx2 = client(&clients, 2, 20);
        clients.register_srvid(1, 0xabc);
        assert_eq!(clients.deliver(0xabc, &Bytes::from_static(b"m")), 1);
        assert!(rx1.try_recv().is_ok());
        assert!(rx2.try_recv().is_err());
        assert!(clients.pid_exists(10, Some(0xabc)));
        assert!(!clients.pid_exists(20, Some(0xabc)));
        assert!(clients.pid_exists(20, None));
        clients.remove(1);
        assert!(!clients.has_srvid(0xabc));
        assert_eq!(clients.count(), 1);
        assert!(!clients.deregister_srvid(2, 0xabc));
    }
}
