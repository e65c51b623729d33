//! Controls handed to a component of this node and not answered yet, each with the
//! error reply its asker gets if the component's process goes away first.
//!
//! A component that dies takes the controls it was working on with it. Calls are sent
//! again to its next process (see [`crate::links`]), but a control need not be safe to
//! run twice, so its asker (a local client, or the node that sent it) is told at once
//! instead of waiting out its timeout: as with Samba, whose clients see their daemon's
//! socket close. Entries end with the component's reply or its loss.

use std::collections::HashMap;

use crate::routing::Owner;

/// Most controls remembered at once; beyond, a control is sent without (its asker
/// then waits for its timeout if the component dies).
pub const MAX_WAITING: usize = 10_000;

/// Who waits: a local client's id or [`crate::router::node_origin`] of a node, and the
/// reqid it asked under.
type Key = (Owner, u64, u32);

/// The controls components have not answered, with what to do if they never will.
#[derive(Debug)]
pub struct ComponentWaits<A> {
    waiting: HashMap<Key, A>,
}

impl<A> Default for ComponentWaits<A> {
    fn default() -> Self {
        Self {
            waiting: HashMap::new(),
        }
    }
}

impl<A> ComponentWaits<A> {
    /// `owner` was handed `origin`'s control `reqid`; `instead` answers it if `owner`
    /// goes away first. False when the table is full (nothing remembered).
    pub fn handed(&mut self, owner: Owner, origin: u64, reqid: u32, instead: A) -> bool {
        if self.waiting.len() >= MAX_WAITING {
            return false;
        }
        self.waiting.insert((owner, origin, reqid), instead);
        true
    }

    /// `owner` answered `origin`'s control `reqid`.
    pub fn answered(&mut self, owner: Owner, origin: u64, reqid: u32) {
        if !self.waiting.is_empty() {
            self.waiting.remove(&(owner, origin, reqid));
        }
    }

    /// `owner`'s process went away: what its unanswered controls' askers get.
    pub fn lost(&mut self, owner: Owner) -> Vec<A> {
        let keys: Vec<Key> = self
            .waiting
            .keys()
            .filter(|(o, _, _)| *o == owner)
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.waiting.remove(&k))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_component_gives_back_only_its_unanswered_controls() {
        let mut w = ComponentWaits::default();
        assert!(w.handed(Owner::Db, 7, 1, "client 7, reqid 1"));
        assert!(w.handed(Owner::Db, 7, 2, "client 7, reqid 2"));
        assert!(w.handed(Owner::Db, 9, 1, "client 9, reqid 1"));
        assert!(w.handed(Owner::Recoverd, 7, 3, "recoverd's"));
        w.answered(Owner::Db, 7, 2);
        // An answer from another component, or for another asker, ends nothing.
        w.answered(Owner::Recoverd, 9, 1);
        let mut lost = w.lost(Owner::Db);
        lost.sort_unstable();
        assert_eq!(lost, ["client 7, reqid 1", "client 9, reqid 1"]);
        assert!(w.lost(Owner::Db).is_empty());
        assert_eq!(w.len(), 1);
        assert_eq!(w.lost(Owner::Recoverd), ["recoverd's"]);
        assert!(w.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut w = ComponentWaits::default();
        for reqid in 0..MAX_WAITING as u32 {
            assert!(w.handed(Owner::Db, 1, reqid, ()));
        }
        assert!(!w.handed(Owner::Db, 1, u32::MAX, ()));
        assert_eq!(w.len(), MAX_WAITING);
    }
}
