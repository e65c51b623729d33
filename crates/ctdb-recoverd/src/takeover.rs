//! Takeover runs, run by the leader when asked (TAKEOVER_RUN), and again while one
//! failed.
//!
//! Samba's sequence as its leader puts it on the wire: takeover runs disabled on every
//! other connected node for 60 s (no answer asked), the public IPs placed, IPREALLOCATED
//! on every connected node (each runs its `ipreallocated` event), takeover runs enabled
//! again on the others.
//!
//! Placing the IPs: GET_PUBLIC_IPS from every connected node, the assignment of
//! [`crate::ipalloc`], then for every address RELEASE_IP to each connected node but its
//! new holder (those not holding it only record who does, so that every node's
//! `ctdb ip` agrees), then TAKEOVER_IP to the new holder (redundant when it holds it).

use std::time::Duration;

use std::net::SocketAddr;

use bytes::Bytes;
use ctdb_protocol::control::{PublicIp, PublicIpList};
use ctdb_protocol::flags::dest;
use ctdb_protocol::srvid::samba;
use ctdb_protocol::{Opcode, Wire};
use futures::future::join_all;
use tracing::{debug, info};

use crate::ipalloc::{assign, NodeIps};
use crate::messages::DisableMessage;
use crate::nodes::{ok, on_all, Messenger, NodeError, Nodes};

/// How long the leader keeps the other nodes' takeover runs disabled while its own
/// runs: Samba's leader asks for 60 s, and enables them again when done.
pub const DISABLE_OTHERS_SECS: u32 = 60;

/// What one takeover run is to cover.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub leader: u32,
    /// Every connected node, the leader included.
    pub connected: &'a [u32],
    /// Connected nodes that may host addresses: not banned, stopped, disabled or
    /// unhealthy.
    pub eligible: &'a [u32],
    /// Nodes REBALANCE_NODE named since the last run.
    pub rebalance: &'a [u32],
    /// Move addresses to less loaded nodes (NoIPFailback off).
    pub failback: bool,
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
        // The balanced placement gives every eligible node its share anyway.
        debug!(nodes = ?run.rebalance, "nodes to rebalance");
    }
    let result = match place(nodes, run).await {
        Ok(()) => on_all(
            nodes,
            run.connected,
            Opcode::Ipreallocated,
            Bytes::new(),
            run.timeout,
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    // Also after a failure: the others must not wait out the 60 s for nothing.
    disable_on(nodes, &others, 0);
    result
}

/// GET_PUBLIC_IPS from every connected node.
async fn gather<N: Nodes>(
    nodes: &N,
    connected: &[u32],
    eligible: &[u32],
    timeout: Duration,
) -> Result<Vec<NodeIps>, NodeError> {
    let lists = on_all(
        nodes,
        connected,
        Opcode::GetPublicIps,
        Bytes::new(),
        timeout,
    )
    .await?;
    let available = join_all(connected.iter().map(|&pnn| async move {
        let reply = nodes
            .control_flagged(
                pnn,
                Opcode::GetPublicIps,
                crate::ips::ONLY_AVAILABLE,
                Bytes::new(),
                timeout,
            )
            .await
            .map_err(|error| NodeError { pnn, error })?;
        if reply.status != 0 {
            return Err(NodeError {
                pnn,
                error: format!("GET_PUBLIC_IPS (available) failed: {}", reply.status),
            });
        }
        Ok(reply.data)
    }))
    .await;
    let mut reports = Vec::new();
    for ((&pnn, data), avail) in connected.iter().zip(&lists).zip(available) {
        let decode = |data: &[u8]| {
            PublicIpList::from_bytes(data).map_err(|e| NodeError {
                pnn,
                error: format!("bad GET_PUBLIC_IPS answer: {e}"),
            })
        };
        let ips = decode(data)?;
        let avail = decode(&avail?)?;
        let unavailable = ips
            .ips
            .iter()
            .filter(|ip| !avail.ips.iter().any(|a| a.addr == ip.addr))
            .filter_map(|ip| crate::ips::ip_of(&ip.addr))
            .collect();
        reports.push(NodeIps {
            pnn,
            eligible: eligible.contains(&pnn),
            ips,
            unavailable,
        });
    }
    Ok(reports)
}

/// Releases every public address node `pnn` (this node) holds, leaving them held by
/// nobody: what a node cut off from the cluster does (see `daemon`'s isolation).
pub async fn release_own<N: Nodes>(
    nodes: &N,
    pnn: u32,
    timeout: Duration,
) -> Result<usize, NodeError> {
    let here = dest::CURRENT_NODE;
    let data = ok(nodes, here, Opcode::GetPublicIps, Bytes::new(), timeout).await?;
    let list = PublicIpList::from_bytes(&data).map_err(|e| NodeError {
        pnn,
        error: e.to_string(),
    })?;
    let held: Vec<PublicIp> = list.ips.into_iter().filter(|ip| ip.pnn == pnn).collect();
    for ip in &held {
        info!(addr = ?crate::ips::ip_of(&ip.addr), "releasing a public address");
        let release = PublicIp {
            pnn: dest::UNKNOWN_PNN,
            addr: ip.addr,
        };
        ok(
            nodes,
            here,
            Opcode::ReleaseIp,
            release.to_bytes().into(),
            timeout,
        )
        .await?;
    }
    Ok(held.len())
}

/// Whether the addresses are where they should be without a run: checked by the
/// leader between runs, so that a node that lost its state (a restarted recovery
/// daemon starts knowing no holders) or an address nobody holds gets a run.
pub async fn in_order<N: Nodes>(
    nodes: &N,
    connected: &[u32],
    eligible: &[u32],
    timeout: Duration,
) -> Result<bool, NodeError> {
    let reports = gather(nodes, connected, eligible, timeout).await?;
    Ok(crate::ipalloc::consistent(&reports))
}

/// The placement step: gather, assign, release, take over.
async fn place<N: Nodes>(nodes: &N, run: &Run<'_>) -> Result<(), NodeError> {
    let reports = gather(nodes, run.connected, run.eligible, run.timeout).await?;
    let placed = assign(&reports, run.failback);
    if placed.is_empty() {
        return Ok(());
    }
    let ip = |addr, pnn| {
        let ip = PublicIp {
            pnn,
            addr: SocketAddr::new(addr, 0).into(),
        };
        Bytes::from(ip.to_bytes())
    };
    let releases = placed.iter().flat_map(|(&addr, &holder)| {
        run.connected
            .iter()
            .filter(move |&&p| p != holder)
            .map(move |&p| ok(nodes, p, Opcode::ReleaseIp, ip(addr, holder), run.timeout))
    });
    join_all(releases)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let takeovers = placed
        .iter()
        .filter(|(_, &holder)| holder != dest::UNKNOWN_PNN)
        .map(|(&addr, &holder)| {
            debug!(%addr, holder, "placing public address");
            ok(
                nodes,
                holder,
                Opcode::TakeoverIp,
                ip(addr, holder),
                run.timeout,
            )
        });
    join_all(takeovers)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    info!(addresses = placed.len(), "public addresses placed");
    Ok(())
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
        /// (pnn, opcode, the ctdb_public_ip) of every TAKEOVER_IP and RELEASE_IP.
        ip_controls: Mutex<Vec<(u32, Opcode, PublicIp)>>,
        /// What each node answers to GET_PUBLIC_IPS (none: an empty list).
        lists: std::collections::BTreeMap<u32, PublicIpList>,
        failing: Option<u32>,
    }

    impl Nodes for Fake {
        async fn control(
            &self,
            pnn: u32,
            opcode: Opcode,
            data: Bytes,
            _timeout: Duration,
        ) -> Result<ReplyControl, String> {
            if matches!(opcode, Opcode::TakeoverIp | Opcode::ReleaseIp) {
                let ip = PublicIp::from_bytes(&data).expect("ctdb_public_ip");
                self.ip_controls
                    .lock()
                    .expect("lock")
                    .push((pnn, opcode, ip));
            } else {
                self.controls.lock().expect("lock").push((pnn, opcode));
            }
            if self.failing == Some(pnn) {
                return Err("timed out".into());
            }
            if opcode == Opcode::GetPublicIps {
                return Ok(ReplyControl {
                    data: self
                        .lists
                        .get(&pnn)
                        .cloned()
                        .unwrap_or_default()
                        .to_bytes()
                        .into(),
                    ..Default::default()
                });
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
        eligible: &[0, 1, 2],
        rebalance: &[],
        failback: true,
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
        controls.retain(|c| c.1 != Opcode::GetPublicIps);
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
            eligible: &[0],
            rebalance: &[3],
            failback: true,
            timeout: Duration::from_secs(1),
        };
        run(&fake, &lone).await.expect("run");
        assert!(fake.messages.lock().expect("lock").is_empty());
        assert_eq!(
            *fake.controls.lock().expect("lock"),
            [
                (0, Opcode::GetPublicIps),
                (0, Opcode::GetPublicIps),
                (0, Opcode::Ipreallocated)
            ]
        );
    }

    fn list(pnn: u32, held: &[u8], all: u8) -> PublicIpList {
        PublicIpList {
            ips: (1..=all)
                .map(|i| PublicIp {
                    pnn: if held.contains(&i) {
                        pnn
                    } else {
                        dest::UNKNOWN_PNN
                    },
                    addr: SocketAddr::new([10, 77, 0, i].into(), 0).into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn addresses_are_released_everywhere_but_the_new_holder_then_taken_over() {
        // Node 2 is unhealthy and holds address 2; node 0 holds address 1.
        let fake = Fake {
            lists: [
                (0, list(0, &[1], 2)),
                (1, list(1, &[], 2)),
                (2, list(2, &[2], 2)),
            ]
            .into(),
            ..Default::default()
        };
        let unhealthy = Run {
            eligible: &[0, 1],
            ..RUN
        };
        run(&fake, &unhealthy).await.expect("run");
        let calls = fake.ip_controls.lock().expect("lock").clone();
        let summary: Vec<(u32, Opcode, u8, u32)> = calls
            .iter()
            .map(|(pnn, op, ip)| {
                let last = match ip.addr.socket_addr().map(|a| a.ip()) {
                    Some(std::net::IpAddr::V4(v4)) => v4.octets()[3],
                    _ => panic!("not v4"),
                };
                (*pnn, *op, last, ip.pnn)
            })
            .collect();
        use Opcode::{ReleaseIp as R, TakeoverIp as T};
        assert_eq!(
            summary,
            [
                (1, R, 1, 0),
                (2, R, 1, 0),
                (0, R, 2, 1),
                (2, R, 2, 1),
                (0, T, 1, 0),
                (1, T, 2, 1),
            ]
        );
    }
}
