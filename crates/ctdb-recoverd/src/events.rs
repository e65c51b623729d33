//! Recovery events on every node, run by the controls that mark a recovery, as Samba's
//! daemon runs them: START_RECOVERY runs `startrecovery`, END_RECOVERY runs
//! `recovered` (and `startup` after the node's first recovery), and each answers once
//! its event is over. So when the leader has every node's answer to END_RECOVERY,
//! `recovered` has run everywhere and the takeover run's `takeip` and `ipreallocated`
//! come after it, Samba's order, with no wait.
//!
//! A recovery daemon cannot tell by itself whether the node just started or only the
//! daemon restarted. A marker file in the run directory holds the node's start time
//! once `startup` has run for it ([`Startup`]).

use std::path::PathBuf;

use ctdb_rpc::eventd_client::EventdClient;
use ctdb_rpc::RunEventRequest;
use tonic::transport::Channel;
use tracing::{info, warn};

/// Whether this node's `startup` event ran since the node started.
#[derive(Debug, Default)]
pub struct Startup {
    /// The marker file (none: only this process's memory counts).
    pub marker: Option<PathBuf>,
    /// The node's start time as the marker holds it (UPTIME's ctdbd start time), once
    /// the recovery daemon asked its node.
    pub node_started: Option<String>,
    ran: bool,
}

impl Startup {
    pub fn new(marker: Option<PathBuf>) -> Self {
        Self {
            marker,
            ..Self::default()
        }
    }

    /// Whether `startup` is still to run for this start of the node: not run by this
    /// process, and no marker of this start (of any start, while the start time is not
    /// known yet).
    pub fn due(&self) -> bool {
        if self.ran {
            return false;
        }
        let Some(marker) = &self.marker else {
            return true;
        };
        match (std::fs::read_to_string(marker), &self.node_started) {
            (Ok(noted), Some(started)) => noted != *started,
            (Ok(_), None) => false,
            (Err(_), _) => true,
        }
    }

    /// `startup` ran: noted in memory and in the marker.
    pub fn ran(&mut self) {
        self.ran = true;
        if let Some(marker) = &self.marker {
            let noted = self.node_started.clone().unwrap_or_default();
            if let Err(e) = std::fs::write(marker, noted) {
                warn!("cannot write {}: {e}", marker.display());
            }
        }
    }
}

/// Runs the event of START_RECOVERY (`startrecovery`) or END_RECOVERY (`recovered`,
/// then `startup` if it is due). A failed event is logged; the recovery goes on, as it
/// does when the node has no event scripts.
pub async fn recovery_event(
    eventd: Channel,
    end: bool,
    startup: std::sync::Arc<std::sync::Mutex<Startup>>,
) {
    let mut eventd = EventdClient::new(eventd);
    let event = if end { "recovered" } else { "startrecovery" };
    let code = run_event(&mut eventd, event).await;
    if code != 0 {
        warn!(event, code, "recovery event failed");
    }
    if !end || !ctdb_rpc::component::lock(&startup).due() {
        return;
    }
    info!("first recovery of this node: running the startup event");
    let code = run_event(&mut eventd, "startup").await;
    if code != 0 {
        warn!(code, "startup event failed");
    }
    ctdb_rpc::component::lock(&startup).ran();
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

    #[test]
    fn startup_is_due_once_per_start_of_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("recoverd.startup");
        let mut s = Startup::new(Some(marker.clone()));
        s.node_started = Some("100.000001\n".into());
        assert!(s.due(), "a new node");
        s.ran();
        assert!(!s.due());
        // A restarted recovery daemon on the same start of the node: not again.
        let mut again = Startup::new(Some(marker.clone()));
        again.node_started = Some("100.000001\n".into());
        assert!(!again.due());
        // Before it knows the start time it trusts any marker.
        assert!(!Startup::new(Some(marker.clone())).due());
        // The node restarted: due again.
        let mut restarted = Startup::new(Some(marker));
        restarted.node_started = Some("200.000002\n".into());
        assert!(restarted.due());
        // No marker file: once per process.
        let mut memory = Startup::new(None);
        assert!(memory.due());
        memory.ran();
        assert!(!memory.due());
    }
}
