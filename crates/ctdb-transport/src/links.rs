//! Long-lived packet streams to db, recoverd and eventd.
//!
//! One task per component keeps a `Packets` stream open to the component's socket,
//! reconnecting with back-off when it restarts. Packets queued for it are drained into
//! as few `PacketBatch` messages as the load allows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctdb_rpc::component_client::ComponentClient;
use ctdb_rpc::{Envelope, PacketBatch};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::routing::Owner;

const MAX_BATCH: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Transport's end of one component's packet stream.
#[derive(Debug)]
pub struct Link {
    pub owner: Owner,
    tx: mpsc::UnboundedSender<Envelope>,
    up: AtomicBool,
    pub channel: Channel,
}

impl Link {
    /// Queues a packet for the component; false when it is not connected now.
    pub fn send(&self, envelope: Envelope) -> bool {
        self.is_up() && self.tx.send(envelope).is_ok()
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
}

/// Something that takes the packets a component sends back.
pub trait Deliver: Send + Sync + 'static {
    fn deliver_from(&self, owner: Owner, envelope: Envelope);
    fn link_changed(&self, _owner: Owner, _up: bool) {}
}

/// Creates the link to `owner`'s socket and starts the task that keeps it connected.
pub fn start(owner: Owner, socket: PathBuf, sink: Arc<dyn Deliver>) -> Arc<Link> {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Arc::new(Link {
        owner,
        tx,
        up: AtomicBool::new(false),
        channel: ctdb_rpc::uds::channel(socket),
    });
    tokio::spawn(keep_connected(link.clone(), rx, sink));
    link
}

async fn keep_connected(
    link: Arc<Link>,
    mut queue: mpsc::UnboundedReceiver<Envelope>,
    sink: Arc<dyn Deliver>,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let (batches_tx, batches_rx) = mpsc::channel::<PacketBatch>(64);
        let mut client = ComponentClient::new(link.channel.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        match client.packets(ReceiverStream::new(batches_rx)).await {
            Ok(response) => {
                backoff = Duration::from_millis(20);
                // Whatever was queued while the component was away was refused already.
                while queue.try_recv().is_ok() {}
                link.up.store(true, Ordering::Release);
                info!(component = link.owner.name(), "packet stream connected");
                sink.link_changed(link.owner, true);
                let mut inbound = response.into_inner();
                loop {
                    tokio::select! {
                        batch = inbound.next() => match batch {
                            Some(Ok(batch)) => {
                                for envelope in batch.packets {
                                    sink.deliver_from(link.owner, envelope);
                                }
                            }
                            Some(Err(e)) => {
                                warn!(component = link.owner.name(), "packet stream failed: {e}");
                                break;
                            }
                            None => break,
                        },
                        first = queue.recv() => {
                            let Some(first) = first else { return };
                            // Let the other ready clients queue theirs first: one
                            // batch then carries many packets under load.
                            tokio::task::yield_now().await;
                            let mut packets = vec![first];
                            while packets.len() < MAX_BATCH {
                                match queue.try_recv() {
                                    Ok(e) => packets.push(e),
                                    Err(_) => break,
                                }
                            }
                            if batches_tx.send(PacketBatch { packets }).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                link.up.store(false, Ordering::Release);
                warn!(component = link.owner.name(), "packet stream lost");
                sink.link_changed(link.owner, false);
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
