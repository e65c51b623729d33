//! `detect`: how long a node takes to notice a dead peer and recover without it.

use std::path::Path;
use std::time::{Duration, Instant};

use ctdb_client::{Client, ClientError};
use ctdb_protocol::flags::dest;

/// Times from killing the processes in `pids` (a whole node) until the node behind
/// `socket` marks node `victim` DISCONNECTED, and until it is back in normal mode with
/// a new generation (the cluster recovered without it).
pub async fn failure_detection(
    socket: &Path,
    victim: u32,
    pids: &[i32],
) -> Result<(Duration, Duration), ClientError> {
    use nix::sys::signal::{kill, Signal};
    let here = dest::CURRENT_NODE;
    let client = Client::connect(socket).await?;
    let before = client.get_vnnmap(here).await?.generation;
    let start = Instant::now();
    for &pid in pids {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let mut detected = None;
    loop {
        let map = client.get_nodemap(here).await?;
        let gone = map
            .nodes
            .iter()
            .any(|n| n.pnn == victim && n.flags & ctdb_protocol::flags::node::DISCONNECTED != 0);
        if gone && detected.is_none() {
            detected = Some(start.elapsed());
        }
        if let Some(d) = detected {
            let mode = client.get_recmode(here).await?;
            let generation = client.get_vnnmap(here).await?.generation;
            if mode == 0 && generation != before {
                return Ok((d, start.elapsed()));
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(ClientError::Timeout(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
