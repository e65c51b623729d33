//! Banning nodes that keep causing recoveries (Samba's culprit counting).
//!
//! The leader counts, per node, the recoveries it caused: the node whose state
//! triggered a recovery, or that failed a recovery step. A count older than
//! RecoveryGracePeriod starts again from zero. A node that caused more than
//! 2 × (number of nodes) recoveries is banned for RecoveryBanPeriod when EnableBans is 1.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Culprits {
    counts: HashMap<u32, (u32, Instant)>,
}

impl Culprits {
    /// Notes that `pnn` caused a recovery at `now`; returns its count.
    pub fn add(&mut self, pnn: u32, now: Instant, grace: Duration) -> u32 {
        let entry = self.counts.entry(pnn).or_insert((0, now));
        if now.saturating_duration_since(entry.1) > grace {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        entry.0
    }

    pub fn count(&self, pnn: u32) -> u32 {
        self.counts.get(&pnn).map_or(0, |c| c.0)
    }

    /// The nodes to ban now: more than twice the number of nodes recoveries each.
    pub fn to_ban(&self, num_nodes: usize, enable_bans: bool) -> Vec<u32> {
        if !enable_bans {
            return Vec::new();
        }
        let limit = 2 * num_nodes as u32;
        let mut out: Vec<u32> = self
            .counts
            .iter()
            .filter(|(_, (count, _))| *count > limit)
            .map(|(pnn, _)| *pnn)
            .collect();
        out.sort_unstable();
        out
    }

    /// Forgets a node's count (after banning it).
    pub fn forget(&mut self, pnn: u32) {
        self.counts.remove(&pnn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_twice_the_node_count_within_the_grace_period_bans() {
        let grace = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut c = Culprits::default();
        for i in 0..6 {
            c.add(1, t0 + Duration::from_secs(i), grace);
        }
        c.add(2, t0, grace);
        // 3 nodes: the limit is 6, so 6 is not yet a ban.
        assert!(c.to_ban(3, true).is_empty());
        assert_eq!(c.add(1, t0 + Duration::from_secs(10), grace), 7);
        assert_eq!(c.to_ban(3, true), vec![1]);
        assert!(c.to_ban(3, false).is_empty(), "EnableBans 0 never bans");
        c.forget(1);
        assert_eq!(c.count(1), 0);
        assert!(c.to_ban(3, true).is_empty());
    }

    #[test]
    fn an_old_count_starts_again() {
        let grace = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut c = Culprits::default();
        for i in 0..6 {
            c.add(0, t0 + Duration::from_secs(i), grace);
        }
        // Each recovery within the grace period of the previous one keeps counting.
        assert_eq!(c.add(0, t0 + Duration::from_secs(100), grace), 7);
        assert_eq!(c.add(0, t0 + Duration::from_secs(300), grace), 1);
        assert!(c.to_ban(3, true).is_empty());
    }
}
