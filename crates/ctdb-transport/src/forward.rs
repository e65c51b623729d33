//! Controls this node sent to other nodes (or to itself through the mesh's loopback)
//! and whose replies it waits for.
//!
//! A control leaves under a reqid of transport's own, so that requests of different
//! clients and components never collide on the wire; the table maps that reqid back
//! to who asked and under which reqid. Entries end when the reply comes, when the
//! control timeout passes, or when the node they went to disconnects: each of the
//! last two answers the asker with an error, never silence.

use std::collections::HashMap;
use std::time::Instant;

use crate::routing::Owner;

/// Who sent a forwarded control, and so where its reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// A local client: the reply goes to it with its own reqid, destnode 0.
    Client {
        client: u64,
        reqid: u32,
        srcnode: u32,
    },
    /// A component of this node that sent a node-level control (envelope client 0).
    Component { owner: Owner, reqid: u32 },
}

impl Asker {
    /// The reqid the asker used.
    pub fn reqid(&self) -> u32 {
        match *self {
            Asker::Client { reqid, .. } | Asker::Component { reqid, .. } => reqid,
        }
    }
}

/// One control waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub asker: Asker,
    /// The node the control went to.
    pub pnn: u32,
    pub deadline: Instant,
}

/// Forwarded controls by the reqid they left with.
#[derive(Debug)]
pub struct ForwardTable {
    next: u32,
    pending: HashMap<u32, Pending>,
}

impl Default for ForwardTable {
    fn default() -> Self {
        Self {
            next: 1,
            pending: HashMap::new(),
        }
    }
}

impl ForwardTable {
    /// Records a control for node `pnn` and returns the reqid it must leave with:
    /// never 0, never one still waiting.
    pub fn insert(&mut self, asker: Asker, pnn: u32, deadline: Instant) -> u32 {
        loop {
            let reqid = self.next;
            self.next = self.next.wrapping_add(1).max(1);
            if let std::collections::hash_map::Entry::Vacant(e) = self.pending.entry(reqid) {
                e.insert(Pending {
                    asker,
                    pnn,
                    deadline,
                });
                return reqid;
            }
        }
    }

    /// The entry a reply with `reqid` from node `from` answers. A reply from another
    /// node than the one asked is not it (and leaves the entry waiting).
    pub fn take(&mut self, reqid: u32, from: u32) -> Option<Pending> {
        match self.pending.get(&reqid) {
            Some(p) if p.pnn == from => self.pending.remove(&reqid),
            _ => None,
        }
    }

    /// Forgets an entry whose control could not be sent after all.
    pub fn cancel(&mut self, reqid: u32) -> Option<Pending> {
        self.pending.remove(&reqid)
    }

    /// Removes and returns the entries whose deadline is past.
    pub fn expire(&mut self, now: Instant) -> Vec<Pending> {
        self.drain(|p| p.deadline <= now)
    }

    /// Removes and returns the entries waiting for node `pnn`.
    pub fn fail_node(&mut self, pnn: u32) -> Vec<Pending> {
        self.drain(|p| p.pnn == pnn)
    }

    fn drain(&mut self, pred: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let gone: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| pred(p))
            .map(|(&r, _)| r)
            .collect();
        gone.into_iter()
            .filter_map(|r| self.pending.remove(&r))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(client: u64, reqid: u32) -> Asker {
        Asker::Client {
            client,
            reqid,
            srcnode: 0,
        }
    }

    #[test]
    fn a_reply_finds_its_asker_once() {
        let mut t = ForwardTable::default();
        let now = Instant::now();
        let a = t.insert(client(7, 42), 2, now);
        let b = t.insert(client(8, 42), 2, now);
        assert_ne!(
            a, b,
            "two clients' identical reqids leave under different ones"
        );
        assert_eq!(t.take(a, 2).map(|p| p.asker), Some(client(7, 42)));
        assert_eq!(t.take(a, 2), None, "a second reply is a late one");
        assert_eq!(t.take(b, 2).map(|p| p.asker.reqid()), Some(42));
        assert!(t.is_empty());
    }

    #[test]
    fn a_reply_from_another_node_is_not_it() {
        let mut t = ForwardTable::default();
        let r = t.insert(client(1, 1), 1, Instant::now());
        assert_eq!(t.take(r, 2), None);
        assert_eq!(t.len(), 1);
        assert!(t.take(r, 1).is_some());
    }

    #[test]
    fn reqids_skip_zero_and_those_in_use() {
        let mut t = ForwardTable {
            next: u32::MAX,
            ..Default::default()
        };
        let now = Instant::now();
        let a = t.insert(client(1, 1), 1, now);
        assert_eq!(a, u32::MAX);
        let b = t.insert(client(1, 2), 1, now);
        assert_eq!(b, 1, "wraps past 0");
        t.next = u32::MAX;
        let c = t.insert(client(1, 3), 1, now);
        assert_eq!(c, 2, "u32::MAX and 1 are still waiting");
    }

    #[test]
    fn expiry_and_node_loss_answer_only_their_entries() {
        let mut t = ForwardTable::default();
        let now = Instant::now();
        let soon = t.insert(client(1, 1), 1, now + Duration::from_secs(1));
        let later = t.insert(client(1, 2), 1, now + Duration::from_secs(60));
        let other = t.insert(
            Asker::Component {
                owner: Owner::Db,
                reqid: 3,
            },
            2,
            now + Duration::from_secs(60),
        );
        assert!(t.expire(now).is_empty());
        let gone = t.expire(now + Duration::from_secs(2));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].asker.reqid(), 1);
        assert!(t.take(soon, 1).is_none());
        let lost = t.fail_node(2);
        assert_eq!(lost.len(), 1);
        assert_eq!(
            lost[0].asker,
            Asker::Component {
                owner: Owner::Db,
                reqid: 3
            }
        );
        assert!(t.take(other, 2).is_none());
        assert!(t.take(later, 1).is_some());
    }
}
