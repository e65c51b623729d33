//! The byte-bounded queues of `ctdb-queue`, and what an [`Envelope`] weighs in them.

pub use ctdb_queue::*;

use crate::Envelope;

impl Weight for Envelope {
    fn weight(&self) -> usize {
        self.packet.len() + crate::packets::ENVELOPE_HEADER
    }
}
