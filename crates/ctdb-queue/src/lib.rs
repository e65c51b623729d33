//! Byte-bounded queues for the paths packets take inside a node and in the client
//! library: a sender that would put more than its limit of bytes waiting is refused,
//! so a peer, a component, a client or a daemon that stops reading costs a bounded
//! amount of memory. One item alone is always taken, whatever its size (a packet is
//! bounded by the packet limit).

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// What a queued item weighs.
pub trait Weight {
    fn weight(&self) -> usize;
}

impl Weight for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weight for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// Why an item was not queued; it comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// The queue holds its limit already.
    Full(T),
    /// The receiving end is gone.
    Closed(T),
}

/// The sending end; cheap to clone.
#[derive(Debug)]
pub struct QueueTx<T> {
    tx: mpsc::UnboundedSender<T>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl<T> Clone for QueueTx<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            queued: self.queued.clone(),
            limit: self.limit,
        }
    }
}

/// The receiving end.
#[derive(Debug)]
pub struct QueueRx<T> {
    rx: mpsc::UnboundedReceiver<T>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `limit` bytes (see the module).
pub fn queue<T: Weight>(limit: usize) -> (QueueTx<T>, QueueRx<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueueTx {
            tx,
            queued: queued.clone(),
            limit,
        },
        QueueRx { rx, queued },
    )
}

impl<T: Weight> QueueTx<T> {
    pub fn send(&self, item: T) -> Result<(), Refused<T>> {
        if self.tx.is_closed() {
            return Err(Refused::Closed(item));
        }
        let weight = item.weight();
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if before > 0 && before + weight > self.limit {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            return Err(Refused::Full(item));
        }
        self.tx.send(item).map_err(|e| {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            Refused::Closed(e.0)
        })
    }

    /// Bytes waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<T: Weight> QueueRx<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(item.weight(), Ordering::AcqRel);
        Some(item)
    }

    /// The next item if one is waiting.
    pub fn try_recv(&mut self) -> Result<T, mpsc::error::TryRecvError> {
        let item = self.rx.try_recv()?;
        self.queued.fetch_sub(item.weight(), Ordering::AcqRel);
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_until_it_is_read() {
        let (tx, mut rx) = queue::<Vec<u8>>(10);
        assert_eq!(tx.send(vec![0; 6]), Ok(()));
        assert_eq!(tx.send(vec![0; 4]), Ok(()));
        assert_eq!(tx.send(vec![1]), Err(Refused::Full(vec![1])));
        assert_eq!(tx.queued(), 10);
        assert_eq!(rx.try_recv().map(|v| v.len()), Ok(6));
        assert_eq!(tx.send(vec![2; 6]), Ok(()));
        assert_eq!(tx.queued(), 10);
        // One item over the limit alone is taken.
        let (big, _rx) = queue::<Vec<u8>>(10);
        assert_eq!(big.send(vec![0; 100]), Ok(()));
        drop(rx);
        assert_eq!(tx.send(vec![3]), Err(Refused::Closed(vec![3])));
    }
}
