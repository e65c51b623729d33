//! GET_STAT_HISTORY: the node's counters interval by interval, newest first, as Samba
//! keeps them (every StatHistoryInterval seconds, the last [`MAX_ENTRIES`]).
//!
//! Each entry holds what happened in its interval: the packet and call counters are
//! the difference between two gatherings of the cumulative counters; gauges (clients,
//! frozen, pending calls, memory, highest hop count) and latencies are as gathered at
//! the end of the interval. Its start time is the interval's start.

use std::collections::VecDeque;

use ctdb_protocol::control::{NodeCounters, Statistics};

/// Samba's MAX_STAT_HISTORY.
pub const MAX_ENTRIES: usize = 100;

#[derive(Debug, Default)]
pub struct StatHistory {
    entries: VecDeque<Statistics>,
    last: Option<Statistics>,
}

impl StatHistory {
    /// Records the cumulative counters gathered now; the first gathering only sets the
    /// baseline.
    pub fn record(&mut self, now: Statistics) {
        if let Some(prev) = self.last.replace(now.clone()) {
            self.entries.push_front(since(&now, &prev));
            self.entries.truncate(MAX_ENTRIES);
        }
    }

    /// The entries, newest first.
    pub fn entries(&self) -> Vec<Statistics> {
        self.entries.iter().cloned().collect()
    }
}

/// What happened between the cumulative counters `prev` and `now`.
fn since(now: &Statistics, prev: &Statistics) -> Statistics {
    let d = |a: u32, b: u32| a.saturating_sub(b);
    let (n, p) = (&now.node, &prev.node);
    let mut s = now.clone();
    s.statistics_start_time = prev.statistics_current_time;
    s.client_packets_sent = d(now.client_packets_sent, prev.client_packets_sent);
    s.client_packets_recv = d(now.client_packets_recv, prev.client_packets_recv);
    s.node_packets_sent = d(now.node_packets_sent, prev.node_packets_sent);
    s.node_packets_recv = d(now.node_packets_recv, prev.node_packets_recv);
    s.keepalive_packets_sent = d(now.keepalive_packets_sent, prev.keepalive_packets_sent);
    s.keepalive_packets_recv = d(now.keepalive_packets_recv, prev.keepalive_packets_recv);
    s.node = NodeCounters {
        req_call: d(n.req_call, p.req_call),
        reply_call: d(n.reply_call, p.reply_call),
        req_dmaster: d(n.req_dmaster, p.req_dmaster),
        reply_dmaster: d(n.reply_dmaster, p.reply_dmaster),
        reply_error: d(n.reply_error, p.reply_error),
        req_message: d(n.req_message, p.req_message),
        req_control: d(n.req_control, p.req_control),
        reply_control: d(n.reply_control, p.reply_control),
    };
    s.client.req_call = d(now.client.req_call, prev.client.req_call);
    s.client.req_message = d(now.client.req_message, prev.client.req_message);
    s.client.req_control = d(now.client.req_control, prev.client.req_control);
    s.timeouts.call = d(now.timeouts.call, prev.timeouts.call);
    s.timeouts.control = d(now.timeouts.control, prev.timeouts.control);
    s.timeouts.traverse = d(now.timeouts.traverse, prev.timeouts.traverse);
    s.total_calls = d(now.total_calls, prev.total_calls);
    s.lockwait_calls = d(now.lockwait_calls, prev.lockwait_calls);
    s.childwrite_calls = d(now.childwrite_calls, prev.childwrite_calls);
    s.num_recoveries = d(now.num_recoveries, prev.num_recoveries);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctdb_protocol::control::Timeval;

    fn at(sec: i64, calls: u32, clients: u32) -> Statistics {
        let mut s = Statistics {
            total_calls: calls,
            num_clients: clients,
            statistics_current_time: Timeval { sec, usec: 0 },
            ..Default::default()
        };
        s.client.req_call = calls;
        s
    }

    #[test]
    fn entries_are_intervals_newest_first_and_bounded() {
        let mut h = StatHistory::default();
        h.record(at(10, 5, 1));
        assert!(
            h.entries().is_empty(),
            "the first gathering is the baseline"
        );
        h.record(at(11, 8, 2));
        h.record(at(12, 8, 3));
        let e = h.entries();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].total_calls, e[0].num_clients), (0, 3));
        assert_eq!(
            (e[1].total_calls, e[1].client.req_call, e[1].num_clients),
            (3, 3, 2)
        );
        assert_eq!(e[1].statistics_start_time.sec, 10);
        assert_eq!(e[1].statistics_current_time.sec, 11);
        for i in 0..200 {
            h.record(at(13 + i, 8, 1));
        }
        assert_eq!(h.entries().len(), MAX_ENTRIES);
    }
}
