//! Takeover runs, run by the leader when asked (TAKEOVER_RUN), and again while one
//! failed.
//!
//! Samba's sequence as its leader puts it on the wire: takeover runs disabled on every
//! other connected node for 60 s (no answer asked), the public IPs placed, IPREALLOCATED
//! on every connected node (each runs its `ipreallocated` event), takeover runs enabled
//! again on the others. This daemon keeps no public addresses yet (GET_PUBLIC_IPS
//! answers an empty list), so the placement step has nothing to move.

use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::flags::dest;
use ctdb_protocol::srvid::samba;
use ctdb_protocol::Opcode;
use tracing::{debug, info};

use crate::messages::DisableMessage;
use crate::nodes::{on_all, Messenger, NodeError, Nodes};

/// How long the leader keeps the other nodes' takeover runs disabled while its own
/// runs: Samba's leader asks for 60 s, and enables them again when done.
pub const DISABLE_OTHERS_SECS: u32 = 60;

/// What one takeover run is to cover.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub leader: u32,
    /// Every connected node, the leader included.
    pub connected: &'a [u32],
    /// Nodes REBALANCE_NODE named since the last run.
    pub rebalance: &'a [u32],
    /// Time allowed for each node's IPREALLOCATED (TakeoverTimeout).
    pub timeout: Duration,
}

/// Runs one takeover run; the node that failed it, if one did.
pub async fn run<N: Nodes + Messenger>(nodes: &N, run: &Run<'_>) -> Result<(), NodeError> {
    let others: Vec<u32> = run
        .connected
        .iter()
        .copied()
        .filter(|&p| p != run.leader)
        .collect();
    disable_on(nodes, &others, DISABLE_OTHERS_SECS);
    if !run.rebalance.is_empty() {
        info!(
            nodes = ?run.rebalance,
            "nodes to rebalance: no public addresses are kept here, nothing moves"
        );
    }
    let result = on_all(
        nodes,
        run.connected,
        Opcode::Ipreallocated,
        Bytes::new(),
        run.timeout,
    )
    .await
    .map(|_| ());
    // Also after a failure: the others must not wait out the 60 s for nothing.
    disable_on(nodes, &others, 0);
    result
}

/// DISABLE_TAKEOVER_RUNS for `secs` (0: enable) to `pnns`, from no node in particular
/// and wanting no answer, as Samba's leader sends it. A node that misses it only
/// misses a hint, so failures are not fatal.
fn disable_on<N: Messenger>(nodes: &N, pnns: &[u32], secs: u32) {
    let message = DisableMessage {
        pnn: dest::UNKNOWN_PNN,
        srvid: 0,
        timeout: secs,
    };
    let data = Bytes::from(message.to_bytes());
    for &pnn in pnns {
        if let Err(e) = nodes.message(pnn, samba::DISABLE_TAKEOVER_RUNS, data.clone()) {
            debug!(pnn, "cannot tell a node about the takeover run: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ctdb_protocol::ReplyControl;

    use super::*;

    #[derive(Default)]
    struct Fake {
        /// (pnn, srvid, data) of every message.
        messages: Mutex<Vec<(u32, u64, Vec<u8>)>>,
        controls: Mutex<Vec<(u32, Opcode)>>,
        failing: Option<u32>,
    }

    impl Nodes for Fake {
        async fn control(
            &self,
            pnn: u32,
            opcode: Opcode,
            _data: Bytes,
            _timeout: Duration,
        ) -> Result<ReplyControl, String> {
            self.controls.lock().expect("lock").push((pnn, opcode));
            if self.failing == Some(pnn) {
                return Err("timed out".into());
            }
            Ok(ReplyControl::default())
        }
    }

    impl Messenger for Fake {
        fn message(&self, pnn: u32, srvid: u64, data: Bytes) -> Result<(), String> {
            self.messages
                .lock()
                .expect("lock")
                .push((pnn, srvid, data.to_vec()));
            Ok(())
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const RUN: Run<'static> = Run {
        leader: 1,
        connected: &[0, 1, 2],
        rebalance: &[],
        timeout: Duration::from_secs(9),
    };

    #[tokio::test]
    async fn the_others_are_disabled_then_every_node_reallocates_then_enabled() {
        let fake = Fake::default();
        run(&fake, &RUN).await.expect("run");
        let messages = fake.messages.lock().expect("lock").clone();
        let to: Vec<(u32, String)> = messages
            .iter()
            .map(|(pnn, srvid, data)| {
                assert_eq!(*srvid, samba::DISABLE_TAKEOVER_RUNS);
                (*pnn, hex(data))
            })
            .collect();
        // nodes.jsonl i=460/461 and i=466/467: what Samba's leader (node 1) sent.
        let sixty = "ffffffff0000000000000000000000003c00000000000000";
        let zero = "ffffffff0000000000000000000000000000000000000000";
        assert_eq!(
            to,
            [
                (0, sixty.to_string()),
                (2, sixty.to_string()),
                (0, zero.to_string()),
                (2, zero.to_string())
            ]
        );
        let mut controls = fake.controls.lock().expect("lock").clone();
        controls.sort_by_key(|c| c.0);
        assert_eq!(
            controls,
            [
                (0, Opcode::Ipreallocated),
                (1, Opcode::Ipreallocated),
                (2, Opcode::Ipreallocated)
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_node_fails_the_run_and_the_others_are_enabled_again() {
        let fake = Fake {
            failing: Some(2),
            ..Default::default()
        };
        let err = run(&fake, &RUN).await.expect_err("fails");
        assert_eq!(err.pnn, 2);
        let messages = fake.messages.lock().expect("lock").clone();
        let last: Vec<u32> = messages[2..]
            .iter()
            .map(|(pnn, _, data)| {
                assert_eq!(DisableMessage::decode(data).expect("decode").timeout, 0);
                *pnn
            })
            .collect();
        assert_eq!(last, [0, 2]);
    }

    #[tokio::test]
    async fn a_lone_leader_sends_no_messages() {
        let fake = Fake::default();
        let lone = Run {
            leader: 0,
            connected: &[0],
            rebalance: &[3],
            timeout: Duration::from_secs(1),
        };
        run(&fake, &lone).await.expect("run");
        assert!(fake.messages.lock().expect("lock").is_empty());
        assert_eq!(
            *fake.controls.lock().expect("lock"),
            [(0, Opcode::Ipreallocated)]
        );
    }
}
