//! The monitoring loop and recovery, driven through the node's client socket.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ctdb_client::{Client, ClientError};
use ctdb_protocol::control::VnnMap;
use ctdb_protocol::flags::{dest, recmode, INVALID_GENERATION};
use ctdb_protocol::{srvid, Opcode};
use ctdb_rpc::eventd_client::EventdClient;
use ctdb_rpc::RunEventRequest;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::Recoverd;

/// How the loop reaches the rest of its node.
pub struct Monitor {
    pub socket: PathBuf,
    pub eventd: EventdClient<Channel>,
    pub state: Arc<Mutex<Recoverd>>,
    pub interval: Duration,
    /// Whether the startup event has run on this node.
    started_up: bool,
}

impl Monitor {
    pub fn new(socket: PathBuf, eventd: Channel, state: Arc<Mutex<Recoverd>>) -> Self {
        Self {
            socket,
            eventd: EventdClient::new(eventd),
            state,
            interval: Duration::from_secs(1),
            started_up: false,
        }
    }

    fn pnn(&self) -> u32 {
        ctdb_rpc::component::lock(&self.state).pnn
    }

    /// Runs forever: (re)connects to the node and checks it every interval.
    pub async fn run(mut self) {
        loop {
            let client = match Client::connect(&self.socket).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("node not reachable yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            info!(pnn = client.pnn(), "recovery daemon connected to its node");
            loop {
                if let Err(e) = self.check(&client).await {
                    warn!("monitoring failed: {e}");
                    if matches!(e, ClientError::Disconnected) {
                        break;
                    }
                }
                tokio::time::sleep(self.interval).await;
            }
        }
    }

    /// One round of the monitoring loop.
    async fn check(&mut self, client: &Client) -> Result<(), ClientError> {
        let pnn = self.pnn();
        // A single node leads itself; elections among nodes come with the node mesh.
        ctdb_rpc::component::lock(&self.state).leader = Some(pnn);
        client.send_message(
            dest::BROADCAST_CONNECTED,
            srvid::samba::LEADER,
            Bytes::copy_from_slice(&pnn.to_le_bytes()),
        )?;
        let mode = client.get_recmode(dest::CURRENT_NODE).await?;
        let vnnmap = client.get_vnnmap(dest::CURRENT_NODE).await?;
        if mode != recmode::NORMAL || vnnmap.generation == INVALID_GENERATION {
            self.recover(client, pnn).await?;
        }
        Ok(())
    }

    async fn run_event(&mut self, event: &str) {
        let request = RunEventRequest {
            event: event.to_string(),
            args: Vec::new(),
            timeout_secs: 0,
        };
        match self.eventd.run_event(request).await {
            Ok(reply) if reply.get_ref().status == 0 => {}
            Ok(reply) => warn!(event, status = reply.get_ref().status, "event failed"),
            Err(e) => warn!(event, "event daemon not reachable: {e}"),
        }
    }

    /// Recovery of a one-node cluster: a new generation with this node as the only
    /// lmaster, framed by the recovery controls and events.
    pub async fn recover(&mut self, client: &Client, pnn: u32) -> Result<(), ClientError> {
        info!("recovery starting");
        let here = dest::CURRENT_NODE;
        client.set_recmode(here, recmode::ACTIVE).await?;
        client
            .control(here, Opcode::StartRecovery, 0, Bytes::new())
            .await?;
        self.run_event("startrecovery").await;
        let generation = new_generation();
        client
            .set_vnnmap(
                here,
                &VnnMap {
                    generation,
                    map: vec![pnn],
                },
            )
            .await?;
        client.set_recmode(here, recmode::NORMAL).await?;
        client
            .control(here, Opcode::EndRecovery, 0, Bytes::new())
            .await?;
        self.run_event("recovered").await;
        if !self.started_up {
            self.run_event("startup").await;
            self.started_up = true;
        }
        info!(generation, "recovery finished");
        Ok(())
    }
}

/// A random generation that is never the invalid one.
fn new_generation() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16)
    });
    let g = nanos.wrapping_mul(0x9E37_79B9) ^ std::process::id();
    if g <= INVALID_GENERATION {
        g + 2
    } else {
        g
    }
}
