//! Trace ids: one per request transport reads from a local client or a node, carried
//! to the component in the packet socket's frame ([`crate::packets`]) and back on the
//! component's answers, and logged by every process in its span for the request as
//! `trace=<16 hex digits>`, so that one grep of a node's log finds every process's
//! lines for one request.
//!
//! An id costs one atomic increment where transport reads the request, and eight bytes
//! of the frame; nothing is allocated or formatted unless a span that shows it is
//! enabled.

use std::cell::Cell;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// A trace id as logs show it: 16 hex digits (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Gives out trace ids. They start at a random point, so that ids of two nodes, or of
/// one transport before and after a restart, do not meet in logs read side by side.
#[derive(Debug)]
pub struct TraceIds {
    next: AtomicU64,
}

impl Default for TraceIds {
    fn default() -> Self {
        Self::starting_at(std::collections::hash_map::RandomState::new().hash_one(0u8))
    }
}

impl TraceIds {
    /// Ids from `first` on (tests).
    pub fn starting_at(first: u64) -> Self {
        Self {
            next: AtomicU64::new(first),
        }
    }

    /// The next id; never 0.
    pub fn next(&self) -> u64 {
        match self.next.fetch_add(1, Ordering::Relaxed) {
            0 => self.next.fetch_add(1, Ordering::Relaxed),
            id => id,
        }
    }
}

thread_local! {
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// The trace id of the request this thread handles now (0: none): what a component's
/// answers carry when they do not name one ([`crate::component::Outbox::to_client`]).
pub fn current() -> u64 {
    CURRENT.with(Cell::get)
}

/// Makes `id` the [`current`] trace id until the guard is dropped (the one before
/// comes back then). For the synchronous handling of one packet only: a task that
/// answers later keeps the id with what it answers to.
#[must_use = "the id is current only while the guard lives"]
pub fn enter(id: u64) -> Entered {
    Entered {
        before: CURRENT.with(|c| c.replace(id)),
    }
}

/// See [`enter`].
#[derive(Debug)]
pub struct Entered {
    before: u64,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.before));
    }
}

/// A component's `request` span for a packet transport handed it (debug level: a
/// check of the level when that is off), under the packet's trace id.
pub fn request_span(envelope: &crate::Envelope) -> tracing::span::EnteredSpan {
    tracing::debug_span!(
        "request",
        trace = %TraceId(envelope.trace),
        client = envelope.client,
        from_node = envelope.from_node,
    )
    .entered()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let ids = TraceIds::starting_at(u64::MAX);
        assert_eq!(ids.next(), u64::MAX);
        assert_eq!(ids.next(), 1, "0 is skipped");
        assert_eq!(ids.next(), 2);
        assert_ne!(TraceIds::default().next(), 0);
    }

    #[test]
    fn the_current_id_nests() {
        assert_eq!(current(), 0);
        {
            let _a = enter(5);
            assert_eq!(current(), 5);
            {
                let _b = enter(6);
                assert_eq!(current(), 6);
            }
            assert_eq!(current(), 5);
        }
        assert_eq!(current(), 0);
        assert_eq!(TraceId(0xab).to_string(), "00000000000000ab");
    }
}
