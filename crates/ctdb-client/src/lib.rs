//! An async client of a CTDB daemon's Unix socket: controls, calls and messages.
//!
//! One connection carries many requests at once: each gets its own reqid and waits for
//! the reply with that reqid; messages for registered srvids arrive on channels.
//! Works against ctdb-rs and against Samba's `ctdbd` alike.

#![forbid(unsafe_code)]

mod ops;
mod records;
mod transaction;
mod traverse;

pub use transaction::Transaction;
pub use traverse::TraversedRecord;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::flags::dest;
use ctdb_protocol::{
    Body, DecodeError, Opcode, Packet, PacketCodec, ReplyCall, ReplyControl, ReqCall, ReqControl,
    ReqMessage,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

/// How long a request waits for its reply unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to CTDB daemon ({path}): {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("connection to the daemon was lost")]
    Disconnected,
    #[error("timed out after {0:?} waiting for a reply")]
    Timeout(Duration),
    #[error("bad packet from the daemon: {0}")]
    Decode(#[from] DecodeError),
    #[error("control {opcode} failed with status {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    ControlFailed {
        opcode: Opcode,
        status: i32,
        message: Option<String>,
    },
    #[error("call failed with status {status}: {message}")]
    CallFailed { status: u32, message: String },
    #[error("unexpected reply: {0}")]
    Unexpected(String),
    /// A persistent transaction's commit was refused because a record it wrote changed
    /// since the transaction read it: nothing was applied; run the transaction again.
    #[error("transaction conflict: a record changed since it was read")]
    Conflict,
    /// The daemon does not read what this client sends: [`SEND_BACKLOG`] bytes wait.
    #[error("the daemon does not read: {0} bytes wait to be sent")]
    Backlog(usize),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A message delivered to a registered srvid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub srvid: u64,
    pub srcnode: u32,
    pub data: Bytes,
}

/// A reply to a request: a control reply, a call reply, or a call error.
#[derive(Debug)]
enum Reply {
    Control(ReplyControl),
    Call(ReplyCall),
    Error(u32, String),
}

#[derive(Default)]
struct Shared {
    pending: HashMap<u32, oneshot::Sender<Reply>>,
    handlers: HashMap<u64, mpsc::Sender<Message>>,
    closed: bool,
}

struct Inner {
    tx: ctdb_queue::QueueTx<Bytes>,
    shared: Mutex<Shared>,
    next_reqid: AtomicU32,
    pnn: AtomicU32,
}

impl Inner {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Most messages of one srvid waiting to be read by the client's code.
pub const MESSAGE_BACKLOG: usize = 10_000;

/// Most bytes of packets waiting to be written to the daemon: past it (the daemon does
/// not read) a send fails with [`ClientError::Backlog`] instead of growing memory.
pub const SEND_BACKLOG: usize = 32 << 20;

/// A connection to a CTDB daemon. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the daemon's socket and learns its pnn, as Samba's clients do.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let client = Self::from_stream(stream);
        let pnn = client.get_pnn(dest::CURRENT_NODE).await?;
        client.inner.pnn.store(pnn, Ordering::Relaxed);
        Ok(client)
    }

    fn from_stream(stream: UnixStream) -> Self {
        let (reader, mut writer) = stream.into_split();
        let (tx, mut rx) = ctdb_queue::queue::<Bytes>(SEND_BACKLOG);
        let inner = Arc::new(Inner {
            tx,
            shared: Mutex::new(Shared::default()),
            // Samba's clients start reqids high; any non-zero start works.
            next_reqid: AtomicU32::new(1),
            pnn: AtomicU32::new(dest::UNKNOWN_PNN),
        });
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            while let Some(first) = rx.recv().await {
                buf.extend_from_slice(&first);
                while buf.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => buf.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                if writer.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
            }
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut packets = FramedRead::new(reader, PacketCodec::default());
            while let Some(Ok(packet)) = packets.next().await {
                let Some(inner) = weak.upgrade() else { return };
                dispatch(&inner, packet);
            }
            if let Some(inner) = weak.upgrade() {
                let mut shared = inner.shared();
                shared.closed = true;
                shared.pending.clear();
                shared.handlers.clear();
            }
        });
        Self { inner }
    }

    /// The pnn of the node this client is connected to.
    pub fn pnn(&self) -> u32 {
        self.inner.pnn.load(Ordering::Relaxed)
    }

    fn next_reqid(&self) -> u32 {
        self.inner.next_reqid.fetch_add(1, Ordering::Relaxed)
    }

    fn send_packet(&self, packet: &Packet) -> Result<()> {
        self.inner
            .tx
            .send(Bytes::from(packet.to_bytes()))
            .map_err(|refused| match refused {
                ctdb_queue::Refused::Full(_) => ClientError::Backlog(self.inner.tx.queued()),
                ctdb_queue::Refused::Closed(_) => ClientError::Disconnected,
            })
    }

    async fn request(&self, destnode: u32, body: Body, timeout: Duration) -> Result<Reply> {
        let reqid = self.next_reqid();
        let (tx, rx) = oneshot::channel();
        {
            let mut shared = self.inner.shared();
            if shared.closed {
                return Err(ClientError::Disconnected);
            }
            shared.pending.insert(reqid, tx);
        }
        let packet = Packet {
            generation: 0,
            destnode,
            srcnode: self.pnn(),
            reqid,
            body,
        };
        if let Err(e) = self.send_packet(&packet) {
            self.inner.shared().pending.remove(&reqid);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ClientError::Disconnected),
            Err(_) => {
                self.inner.shared().pending.remove(&reqid);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// Sends a control and returns its reply, whatever its status.
    pub async fn control_raw(
        &self,
        destnode: u32,
        opcode: Opcode,
        srvid: u64,
        data: Bytes,
        timeout: Duration,
    ) -> Result<ReplyControl> {
        self.control_with_flags(destnode, opcode, srvid, 0, data, timeout)
            .await
    }

    /// As [`Self::control_raw`], with the control's flags word (some controls give
    /// its upper half a meaning, e.g. GET_PUBLIC_IPS's "available only").
    pub async fn control_with_flags(
        &self,
        destnode: u32,
        opcode: Opcode,
        srvid: u64,
        flags: u32,
        data: Bytes,
        timeout: Duration,
    ) -> Result<ReplyControl> {
        let body = Body::ReqControl(ReqControl {
            opcode,
            srvid,
            client_id: 0,
            flags,
            data,
        });
        match self.request(destnode, body, timeout).await? {
            Reply::Control(reply) => Ok(reply),
            other => Err(ClientError::Unexpected(format!("{other:?} to {opcode}"))),
        }
    }

    /// Sends a control and returns the reply data when the status is 0.
    pub async fn control(
        &self,
        destnode: u32,
        opcode: Opcode,
        srvid: u64,
        data: Bytes,
    ) -> Result<Bytes> {
        let reply = self
            .control_raw(destnode, opcode, srvid, data, DEFAULT_TIMEOUT)
            .await?;
        check(opcode, reply).map(|r| r.data)
    }

    /// Sends a control whose answer is its status word (GET_PNN, PING, GET_RECMODE, ...).
    pub async fn control_status(&self, destnode: u32, opcode: Opcode, data: Bytes) -> Result<i32> {
        let reply = self
            .control_raw(destnode, opcode, 0, data, DEFAULT_TIMEOUT)
            .await?;
        if reply.status < 0 {
            return Err(failed(opcode, &reply));
        }
        Ok(reply.status)
    }

    /// Sends a control that expects no reply.
    pub fn control_noreply(
        &self,
        destnode: u32,
        opcode: Opcode,
        srvid: u64,
        data: Bytes,
    ) -> Result<()> {
        self.send_packet(&Packet {
            generation: 0,
            destnode,
            srcnode: self.pnn(),
            reqid: self.next_reqid(),
            body: Body::ReqControl(ReqControl {
                opcode,
                srvid,
                client_id: 0,
                flags: ctdb_protocol::flags::control::NOREPLY,
                data,
            }),
        })
    }

    /// Runs a call function on a record (REQ_CALL) and returns the reply.
    pub async fn call(&self, call: ReqCall) -> Result<ReplyCall> {
        match self
            .request(dest::CURRENT_NODE, Body::ReqCall(call), DEFAULT_TIMEOUT)
            .await?
        {
            Reply::Call(reply) => Ok(reply),
            Reply::Error(status, message) => Err(ClientError::CallFailed { status, message }),
            other => Err(ClientError::Unexpected(format!("{other:?} to a call"))),
        }
    }

    /// Sends a message to whoever registered `srvid` on `destnode`.
    pub fn send_message(&self, destnode: u32, srvid: u64, data: Bytes) -> Result<()> {
        self.send_packet(&Packet {
            generation: 0,
            destnode,
            srcnode: self.pnn(),
            reqid: 0,
            body: Body::ReqMessage(ReqMessage { srvid, data }),
        })
    }

    /// Registers `srvid` with the daemon; its messages arrive on the returned channel,
    /// which holds at most [`MESSAGE_BACKLOG`] unread ones (later ones are dropped).
    pub async fn register_srvid(&self, srvid: u64) -> Result<mpsc::Receiver<Message>> {
        let (tx, rx) = mpsc::channel(MESSAGE_BACKLOG);
        self.inner.shared().handlers.insert(srvid, tx);
        let result = self
            .control(
                dest::CURRENT_NODE,
                Opcode::RegisterSrvid,
                srvid,
                Bytes::new(),
            )
            .await;
        if let Err(e) = result {
            self.inner.shared().handlers.remove(&srvid);
            return Err(e);
        }
        Ok(rx)
    }

    pub async fn deregister_srvid(&self, srvid: u64) -> Result<()> {
        self.inner.shared().handlers.remove(&srvid);
        self.control(
            dest::CURRENT_NODE,
            Opcode::DeregisterSrvid,
            srvid,
            Bytes::new(),
        )
        .await
        .map(|_| ())
    }
}

fn failed(opcode: Opcode, reply: &ReplyControl) -> ClientError {
    ClientError::ControlFailed {
        opcode,
        status: reply.status,
        message: reply.error_message(),
    }
}

fn check(opcode: Opcode, reply: ReplyControl) -> Result<ReplyControl> {
    if reply.status != 0 {
        return Err(failed(opcode, &reply));
    }
    Ok(reply)
}

fn dispatch(inner: &Inner, packet: Packet) {
    let reqid = packet.reqid;
    let reply = match packet.body {
        Body::ReplyControl(r) => Reply::Control(r),
        Body::ReplyCall(r) => Reply::Call(r),
        Body::ReplyError(e) => Reply::Error(e.status, e.message()),
        Body::ReqMessage(m) => {
            let shared = inner.shared();
            let handler = shared
                .handlers
                .get(&m.srvid)
                .or_else(|| shared.handlers.get(&ctdb_protocol::srvid::ALL));
            if let Some(h) = handler {
                let message = Message {
                    srvid: m.srvid,
                    srcnode: packet.srcnode,
                    data: m.data,
                };
                if let Err(mpsc::error::TrySendError::Full(m)) = h.try_send(message) {
                    tracing::warn!(
                        srvid = m.srvid,
                        "{MESSAGE_BACKLOG} messages unread: one dropped"
                    );
                }
            }
            return;
        }
        other => {
            tracing::debug!("ignoring {:?} from the daemon", other.operation());
            return;
        }
    };
    if let Some(tx) = inner.shared().pending.remove(&reqid) {
        let _ = tx.send(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that never reads: the client's sends fail once SEND_BACKLOG bytes wait,
    /// instead of its memory growing with them.
    #[tokio::test]
    async fn sends_to_a_daemon_that_does_not_read_are_refused_past_the_backlog() {
        let (ours, _daemon) = UnixStream::pair().expect("socket pair");
        let client = Client::from_stream(ours);
        let chunk = Bytes::from(vec![0u8; 1 << 20]);
        let mut sent = 0usize;
        let refused = loop {
            match client.send_message(0, 1, chunk.clone()) {
                Ok(()) => sent += chunk.len(),
                Err(e) => break e,
            }
            assert!(
                sent <= 2 * SEND_BACKLOG,
                "{sent} bytes taken without a refusal"
            );
            tokio::task::yield_now().await;
        };
        assert!(
            matches!(refused, ClientError::Backlog(n) if n >= SEND_BACKLOG / 2),
            "{refused}"
        );
        assert!(sent >= SEND_BACKLOG / 2, "refused after only {sent} bytes");
    }
}
