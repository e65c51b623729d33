//! The leader's monitoring round: read every active node's recovery mode, vnn map and
//! node map, push node flags where views differ, and decide whether to recover.
//!
//! The authority for node N's flags is N's own view of itself (DISCONNECTED aside, which
//! is each node's local connectivity). Recovery is needed when an active node is in
//! recovery mode, generations differ, a vnn map is not the wanted one (active nodes with
//! the lmaster role, in pnn order), or views differ in whether a node is active
//! (BANNED/STOPPED/DELETED). Other flag differences (UNHEALTHY, PERMANENTLY_DISABLED)
//! are pushed without a recovery: they change no vnn map. Node maps are read from every
//! connected node, active or not, so that a stopped or banned node's return is seen; an
//! active node that does not answer makes a recovery, whose failure blames it.

use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::control::{NodeFlagChange, NodeMap, VnnMap};
use ctdb_protocol::flags::{node, recmode, INVALID_GENERATION};
use ctdb_protocol::{Opcode, Wire};
use futures::future::join_all;

use crate::election::{is_active, wanted_vnnmap, Roles};
use crate::nodes::{ok, status, NodeError, Nodes};

/// What one active node reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub pnn: u32,
    pub recmode: u32,
    pub vnnmap: VnnMap,
    pub nodemap: NodeMap,
}

/// Reads the state of every node of `pnns` (the connected nodes); the nodes that did not
/// answer are returned apart.
pub async fn gather<N: Nodes>(
    nodes: &N,
    pnns: &[u32],
    timeout: Duration,
) -> (Vec<NodeState>, Vec<NodeError>) {
    let results = join_all(pnns.iter().map(|&pnn| read_node(nodes, pnn, timeout))).await;
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(s) => states.push(s),
            Err(e) => errors.push(e),
        }
    }
    (states, errors)
}

async fn read_node<N: Nodes>(nodes: &N, pnn: u32, t: Duration) -> Result<NodeState, NodeError> {
    let bad = |e: ctdb_protocol::DecodeError| NodeError {
        pnn,
        error: e.to_string(),
    };
    let (mode, vnnmap, nodemap) = futures::join!(
        status(nodes, pnn, Opcode::GetRecmode, t),
        ok(nodes, pnn, Opcode::Getvnnmap, Bytes::new(), t),
        ok(nodes, pnn, Opcode::GetNodemap, Bytes::new(), t),
    );
    Ok(NodeState {
        pnn,
        recmode: mode?,
        vnnmap: VnnMap::from_bytes(&vnnmap?).map_err(bad)?,
        nodemap: NodeMap::from_bytes(&nodemap?).map_err(bad)?,
    })
}

/// What the leader should do after a monitoring round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessment {
    /// MODIFY_FLAGS to send: (the node to tell, the change).
    pub flag_updates: Vec<(u32, NodeFlagChange)>,
    /// Every node's flags as the cluster should see them: (pnn, flags).
    pub flags: Vec<(u32, u32)>,
    /// The nodes to recover: connected and active.
    pub active: Vec<u32>,
    /// The vnn map to install.
    pub vnnmap: Vec<u32>,
    /// Why a recovery is needed, if it is.
    pub recovery: Option<String>,
    /// The node whose state made the recovery necessary, if one did.
    pub culprit: Option<u32>,
}

fn flags_in(map: &NodeMap, pnn: u32) -> Option<u32> {
    map.nodes.iter().find(|n| n.pnn == pnn).map(|n| n.flags)
}

/// Decides from the leader's node map and every reachable active node's state.
pub fn assess(leader: u32, mine: &NodeMap, states: &[NodeState], roles: &Roles) -> Assessment {
    let mut out = Assessment::default();
    let state_of = |pnn: u32| states.iter().find(|s| s.pnn == pnn);

    // The authoritative flags: each node's view of itself, our connectivity.
    for n in &mine.nodes {
        let flags = match state_of(n.pnn).and_then(|s| flags_in(&s.nodemap, n.pnn)) {
            Some(own) if n.flags & node::DISCONNECTED == 0 => {
                (own & !node::DISCONNECTED) | (n.flags & node::DISCONNECTED)
            }
            _ => n.flags,
        };
        out.flags.push((n.pnn, flags));
    }
    let mut inactive_changed = None;
    for s in states {
        for &(pnn, wanted) in &out.flags {
            if pnn == s.pnn {
                continue;
            }
            let Some(seen) = flags_in(&s.nodemap, pnn) else {
                continue;
            };
            let (seen_m, wanted_m) = (seen & !node::DISCONNECTED, wanted & !node::DISCONNECTED);
            if seen_m == wanted_m {
                continue;
            }
            if (seen_m ^ wanted_m) & node::INACTIVE != 0 && inactive_changed.is_none() {
                inactive_changed = Some((s.pnn, pnn, seen, wanted));
            }
            out.flag_updates.push((
                s.pnn,
                NodeFlagChange {
                    pnn,
                    new_flags: wanted_m | (seen & node::DISCONNECTED),
                    old_flags: seen,
                },
            ));
        }
    }
    out.active = out
        .flags
        .iter()
        .filter(|(_, f)| is_active(*f))
        .map(|(pnn, _)| *pnn)
        .collect();
    out.vnnmap = wanted_vnnmap(&out.flags, roles, leader);

    let reachable: Vec<&NodeState> = states
        .iter()
        .filter(|s| out.active.contains(&s.pnn))
        .collect();
    let leader_generation = state_of(leader)
        .or(reachable.first().copied())
        .map(|s| s.vnnmap.generation);
    let reason = |why: String, culprit: Option<u32>| (why, culprit);
    let verdict = if let Some((by, pnn, seen, wanted)) = inactive_changed {
        Some(reason(
            format!("node {by} saw node {pnn} with flags {seen:#x}, not {wanted:#x}"),
            None,
        ))
    } else if let Some(pnn) = out.active.iter().find(|&&p| state_of(p).is_none()) {
        // Recovery will tell whether it is gone or broken (and blame it if it fails).
        Some(reason(format!("node {pnn} did not answer"), None))
    } else if let Some(s) = reachable.iter().find(|s| s.recmode != recmode::NORMAL) {
        Some(reason(
            format!("node {} is in recovery mode", s.pnn),
            Some(s.pnn),
        ))
    } else if let Some(s) = reachable
        .iter()
        .find(|s| s.vnnmap.generation == INVALID_GENERATION)
    {
        Some(reason(
            format!("node {} has no generation yet", s.pnn),
            Some(s.pnn),
        ))
    } else if let Some(s) = reachable
        .iter()
        .find(|s| Some(s.vnnmap.generation) != leader_generation)
    {
        Some(reason(
            format!(
                "node {} has generation {}, the leader {}",
                s.pnn,
                s.vnnmap.generation,
                leader_generation.unwrap_or_default()
            ),
            Some(s.pnn),
        ))
    } else if let Some(s) = reachable.iter().find(|s| s.vnnmap.map != out.vnnmap) {
        // Everyone's map is wrong the same way: the membership changed, nobody's fault.
        let same = reachable.iter().all(|o| o.vnnmap.map == s.vnnmap.map);
        Some(reason(
            format!(
                "node {} has vnn map {:?}, wanted {:?}",
                s.pnn, s.vnnmap.map, out.vnnmap
            ),
            (!same).then_some(s.pnn),
        ))
    } else {
        None
    };
    if let Some((why, culprit)) = verdict {
        out.recovery = Some(why);
        out.culprit = culprit;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::test_map as map;

    fn state(pnn: u32, generation: u32, vnn: &[u32], view: &[u32]) -> NodeState {
        NodeState {
            pnn,
            recmode: recmode::NORMAL,
            vnnmap: VnnMap {
                generation,
                map: vnn.to_vec(),
            },
            nodemap: map(view),
        }
    }

    fn healthy3() -> Vec<NodeState> {
        (0..3)
            .map(|p| state(p, 77, &[0, 1, 2], &[0, 0, 0]))
            .collect()
    }

    #[test]
    fn a_consistent_cluster_needs_nothing() {
        let a = assess(0, &map(&[0, 0, 0]), &healthy3(), &Roles::default());
        assert_eq!(a.recovery, None);
        assert!(a.flag_updates.is_empty());
        assert_eq!(a.active, vec![0, 1, 2]);
        assert_eq!(a.vnnmap, vec![0, 1, 2]);
    }

    #[test]
    fn recovery_mode_generations_and_vnn_maps_trigger_recovery() {
        let roles = Roles::default();
        let mine = map(&[0, 0, 0]);
        let mut s = healthy3();
        s[2].recmode = recmode::ACTIVE;
        let a = assess(0, &mine, &s, &roles);
        assert!(a.recovery.is_some());
        assert_eq!(a.culprit, Some(2));

        let mut s = healthy3();
        s[1].vnnmap.generation = 78;
        let a = assess(0, &mine, &s, &roles);
        assert!(a.recovery.unwrap().contains("generation"));
        assert_eq!(a.culprit, Some(1));

        let mut s = healthy3();
        s[0].vnnmap.generation = INVALID_GENERATION;
        assert_eq!(assess(0, &mine, &s, &roles).culprit, Some(0));

        let mut s = healthy3();
        s[2].vnnmap.map = vec![0, 1];
        let a = assess(0, &mine, &s, &roles);
        assert!(a.recovery.is_some());
        assert_eq!(a.culprit, Some(2));

        // A node joined: every map lacks it, nobody is to blame.
        let s: Vec<NodeState> = (0..3).map(|p| state(p, 77, &[0, 1], &[0, 0, 0])).collect();
        let a = assess(0, &mine, &s, &roles);
        assert!(a.recovery.is_some());
        assert_eq!(a.culprit, None);
        assert_eq!(a.vnnmap, vec![0, 1, 2]);

        // A node without the lmaster role is not wanted in the vnn map.
        let mut roles = Roles::default();
        roles.set(1, ctdb_protocol::flags::capability::RECMASTER);
        let a = assess(0, &mine, &healthy3(), &roles);
        assert!(a.recovery.is_some());
        assert_eq!(a.vnnmap, vec![0, 2]);
    }

    #[test]
    fn a_disconnected_node_leaves_the_recovery_and_the_vnn_map() {
        let mine = map(&[0, 0, node::DISCONNECTED]);
        let s: Vec<NodeState> = (0..2)
            .map(|p| state(p, 77, &[0, 1, 2], &[0, 0, node::DISCONNECTED]))
            .collect();
        let a = assess(0, &mine, &s, &Roles::default());
        assert_eq!(a.active, vec![0, 1]);
        assert_eq!(a.vnnmap, vec![0, 1]);
        assert!(a.recovery.is_some());
        assert!(a.flag_updates.is_empty(), "connectivity is never pushed");
    }

    #[test]
    fn a_node_s_own_flags_are_pushed_to_the_others() {
        let mine = map(&[0, 0, 0]);
        let mut s = healthy3();
        // Node 2 banned itself; node 1 and the leader do not know yet.
        s[2].nodemap = map(&[0, 0, node::BANNED]);
        // Node 1 became unhealthy; only node 1 knows.
        s[1].nodemap = map(&[0, node::UNHEALTHY, 0]);
        let a = assess(0, &mine, &s, &Roles::default());
        let mut updates = a.flag_updates.clone();
        updates.sort_by_key(|(to, c)| (*to, c.pnn));
        assert_eq!(
            updates,
            vec![
                (
                    0,
                    NodeFlagChange {
                        pnn: 1,
                        new_flags: node::UNHEALTHY,
                        old_flags: 0
                    }
                ),
                (
                    0,
                    NodeFlagChange {
                        pnn: 2,
                        new_flags: node::BANNED,
                        old_flags: 0
                    }
                ),
                (
                    1,
                    NodeFlagChange {
                        pnn: 2,
                        new_flags: node::BANNED,
                        old_flags: 0
                    }
                ),
                (
                    2,
                    NodeFlagChange {
                        pnn: 1,
                        new_flags: node::UNHEALTHY,
                        old_flags: 0
                    }
                ),
            ]
        );
        assert_eq!(a.active, vec![0, 1]);
        assert_eq!(a.vnnmap, vec![0, 1]);
        assert!(a.recovery.unwrap().contains("node 2"));
    }

    #[test]
    fn a_silent_active_node_needs_recovery_and_a_returning_node_is_seen() {
        let mine = map(&[0, 0, 0]);
        let s: Vec<NodeState> = healthy3().into_iter().take(2).collect();
        let a = assess(0, &mine, &s, &Roles::default());
        assert!(a.recovery.unwrap().contains("node 2 did not answer"));
        assert_eq!(a.culprit, None);
        assert_eq!(a.active, vec![0, 1, 2]);

        // Node 2 was stopped; it continued: its own view wins, it is active again.
        let mine = map(&[0, 0, node::STOPPED]);
        let mut s: Vec<NodeState> = (0..3)
            .map(|p| state(p, 77, &[0, 1], &[0, 0, node::STOPPED]))
            .collect();
        s[2].nodemap = map(&[0, 0, 0]);
        let a = assess(0, &mine, &s, &Roles::default());
        assert_eq!(a.active, vec![0, 1, 2]);
        assert_eq!(a.vnnmap, vec![0, 1, 2]);
        assert_eq!(a.flag_updates.len(), 2);
        assert!(a.recovery.is_some());
    }

    #[test]
    fn a_health_change_alone_is_pushed_without_recovery() {
        let mine = map(&[0, 0, 0]);
        let mut s = healthy3();
        s[1].nodemap = map(&[0, node::UNHEALTHY, 0]);
        let a = assess(0, &mine, &s, &Roles::default());
        assert_eq!(a.flag_updates.len(), 2);
        assert_eq!(a.recovery, None);
    }
}
