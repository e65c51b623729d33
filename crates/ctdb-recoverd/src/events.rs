//! Recovery events on every node: each recovery daemon (not only the leader's) watches
//! its own node's recovery mode and generation every second, and runs `startrecovery`
//! when recovery begins, `recovered` when the node is back to normal with a new
//! generation, and `startup` once after the first of those.
//!
//! A recovery daemon that first looks at a node already recovered cannot tell by itself
//! whether the node just started (its first recovery was quick) or only the daemon
//! restarted. A marker file in the run directory holds the node's start time once
//! `startup` has run for it: without a matching one the node is new and gets its events.

use std::path::PathBuf;
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
    /// The node started after its `startup` last ran (no matching marker): a first
    /// look at a recovered generation runs the events all the same.
    fresh_node: bool,
    seen: bool,
    in_recovery: bool,
    recovered_generation: Option<u32>,
    started_up: bool,
}

impl EventWatch {
    /// Rules for a node whose `startup` is known to have run for its current start
    /// (`Some(true)`), known not to have (`Some(false)`), or unknown (`None`: a first
    /// look at a recovered generation is taken for a restarted daemon).
    pub fn for_node(startup_ran: Option<bool>) -> Self {
        Self {
            fresh_node: startup_ran == Some(false),
            started_up: startup_ran == Some(true),
            ..Self::default()
        }
    }

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
        if first && !self.fresh_node {
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

/// Watches the node behind `client` until the connection goes. `marker` notes the
/// node's start time once its `startup` event has run.
pub async fn watch(client: Client, mut eventd: EventdClient<Channel>, marker: Option<PathBuf>) {
    let here = dest::CURRENT_NODE;
    let started = match client.uptime(here).await {
        Ok(u) => format!(
            "{}.{:06}\n",
            u.ctdbd_start_time.sec, u.ctdbd_start_time.usec
        ),
        Err(_) => String::new(),
    };
    let startup_ran = marker
        .as_ref()
        .map(|m| std::fs::read_to_string(m).ok().as_deref() == Some(started.as_str()));
    let mut rules = EventWatch::for_node(startup_ran);
    loop {
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
            if event == "startup" {
                if let Some(m) = &marker {
                    if let Err(e) = std::fs::write(m, &started) {
                        warn!("cannot write {}: {e}", m.display());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `event` on the node's event daemon: its status (0: every script succeeded),
/// -1 when the daemon cannot be asked.
pub async fn run_event(eventd: &mut EventdClient<Channel>, event: &str) -> i32 {
    run_event_with(eventd, event, Vec::new()).await
}

/// [`run_event`] with arguments for the scripts (`takeip`: interface, address, bits).
pub async fn run_event_with(
    eventd: &mut EventdClient<Channel>,
    event: &str,
    args: Vec<String>,
) -> i32 {
    let request = RunEventRequest {
        event: event.to_string(),
        args,
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
    fn a_new_node_recovered_before_the_first_look_still_gets_its_events() {
        let mut w = EventWatch::for_node(Some(false));
        assert_eq!(
            w.observe(N, 100),
            vec!["startrecovery", "recovered", "startup"]
        );
        assert!(w.observe(N, 100).is_empty());
        // Its startup ran already: a restarted daemon runs nothing now, and no second
        // startup after the next recovery.
        let mut w = EventWatch::for_node(Some(true));
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
