//! Recovery events on every node: each recovery daemon (not only the leader's) watches
//! its own node's recovery mode and generation every second, and runs `startrecovery`
//! when recovery begins, `recovered` when the node is back to normal with a new
//! generation, and `startup` once after the first of those.

use std::time::Duration;

use ctdb_client::Client;
use ctdb_protocol::flags::{dest, recmode, INVALID_GENERATION};
use ctdb_rpc::eventd_client::EventdClient;
use ctdb_rpc::RunEventRequest;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

/// The rules, apart from any socket.
#[derive(Debug, Default)]
pub struct EventWatch {
    seen: bool,
    in_recovery: bool,
    recovered_generation: Option<u32>,
    started_up: bool,
}

impl EventWatch {
    /// The events to run after seeing the node in `mode` with `generation`.
    ///
    /// A daemon that starts (or restarts) on a node already in a recovered generation
    /// runs nothing for it: the node had its events then.
    pub fn observe(&mut self, mode: u32, generation: u32) -> Vec<&'static str> {
        let first = !self.seen;
        self.seen = true;
        let mut events = Vec::new();
        if mode != recmode::NORMAL {
            if !self.in_recovery {
                self.in_recovery = true;
                events.push("startrecovery");
            }
            return events;
        }
        if generation == INVALID_GENERATION || self.recovered_generation == Some(generation) {
            self.in_recovery = false;
            return events;
        }
        if first {
            self.recovered_generation = Some(generation);
            self.started_up = true;
            return events;
        }
        if !self.in_recovery {
            // The whole recovery happened between two looks.
            events.push("startrecovery");
        }
        self.in_recovery = false;
        self.recovered_generation = Some(generation);
        events.push("recovered");
        if !self.started_up {
            self.started_up = true;
            events.push("startup");
        }
        events
    }
}

/// Watches the node behind `client` until the connection goes.
pub async fn watch(client: Client, mut eventd: EventdClient<Channel>) {
    let mut rules = EventWatch::default();
    loop {
        let here = dest::CURRENT_NODE;
        let (mode, vnnmap) = match tokio::join!(client.get_recmode(here), client.get_vnnmap(here)) {
            (Ok(m), Ok(v)) => (m, v),
            (Err(ctdb_client::ClientError::Disconnected), _)
            | (_, Err(ctdb_client::ClientError::Disconnected)) => return,
            (m, v) => {
                debug!("cannot read the recovery mode: {:?} {:?}", m.err(), v.err());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for event in rules.observe(mode, vnnmap.generation) {
            run_event(&mut eventd, event).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `event` on the node's event daemon: its status (0: every script succeeded),
/// -1 when the daemon cannot be asked.
pub async fn run_event(eventd: &mut EventdClient<Channel>, event: &str) -> i32 {
    let request = RunEventRequest {
        event: event.to_string(),
        args: Vec::new(),
        timeout_secs: 0,
    };
    match eventd.run_event(request).await {
        Ok(reply) if reply.get_ref().status == 0 => {
            info!(event, "event ran");
            0
        }
        Ok(reply) => {
            let status = reply.get_ref().status;
            warn!(event, status, "event failed");
            status
        }
        Err(e) => {
            warn!(event, "event daemon not reachable: {e}");
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u32 = recmode::NORMAL;
    const A: u32 = recmode::ACTIVE;

    #[test]
    fn a_new_node_runs_startrecovery_recovered_and_startup_once() {
        let mut w = EventWatch::default();
        assert!(w.observe(N, INVALID_GENERATION).is_empty());
        assert_eq!(w.observe(A, INVALID_GENERATION), vec!["startrecovery"]);
        assert!(w.observe(A, INVALID_GENERATION).is_empty());
        assert_eq!(w.observe(N, 100), vec!["recovered", "startup"]);
        assert!(w.observe(N, 100).is_empty());
        assert_eq!(w.observe(A, 100), vec!["startrecovery"]);
        assert_eq!(w.observe(N, 200), vec!["recovered"]);
        // A recovery missed between two looks still runs both events, in order.
        assert_eq!(w.observe(N, 300), vec!["startrecovery", "recovered"]);
    }

    #[test]
    fn a_restarted_daemon_runs_nothing_for_the_current_generation() {
        let mut w = EventWatch::default();
        assert!(w.observe(N, 100).is_empty());
        assert!(w.observe(N, 100).is_empty());
        assert_eq!(w.observe(A, 100), vec!["startrecovery"]);
        assert_eq!(w.observe(N, 200), vec!["recovered"]);
    }

    #[test]
    fn a_daemon_started_during_recovery_runs_the_events() {
        let mut w = EventWatch::default();
        assert_eq!(w.observe(A, 100), vec!["startrecovery"]);
        assert_eq!(w.observe(N, 200), vec!["recovered", "startup"]);
    }
}
