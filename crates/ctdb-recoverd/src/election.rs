//! Who leads: the pure rules of the election, and the ELECTION message.
//!
//! Without a recovery lock every node computes the leader from its own node map: the
//! lowest-pnn node that is connected, active and has the leader (recmaster) role. With a
//! lock, whoever holds the lock leads (see `reclock.rs`); these rules then only say who
//! may try.

use std::collections::HashMap;

use bytes::{BufMut, Bytes};
use ctdb_protocol::control::NodeMap;
use ctdb_protocol::flags::{capability, node};

/// Whether a node with these flags takes part in the cluster (not banned, stopped,
/// deleted or disconnected). Disabled and unhealthy nodes are still active.
pub fn is_active(flags: u32) -> bool {
    flags & node::INACTIVE == 0
}

/// Capabilities (leader and lmaster roles) each node announced; a node that announced
/// nothing has both, as a default node does.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    announced: HashMap<u32, u32>,
}

impl Roles {
    pub fn set(&mut self, pnn: u32, capabilities: u32) {
        self.announced.insert(pnn, capabilities);
    }

    pub fn capabilities(&self, pnn: u32) -> u32 {
        self.announced
            .get(&pnn)
            .copied()
            .unwrap_or(capability::RECMASTER | capability::LMASTER)
    }

    pub fn can_lead(&self, pnn: u32) -> bool {
        self.capabilities(pnn) & capability::RECMASTER != 0
    }

    pub fn is_lmaster(&self, pnn: u32) -> bool {
        self.capabilities(pnn) & capability::LMASTER != 0
    }
}

/// The leader without a recovery lock: the lowest-pnn active node with the leader role.
pub fn choose_leader(nodemap: &NodeMap, roles: &Roles) -> Option<u32> {
    nodemap
        .nodes
        .iter()
        .filter(|n| is_active(n.flags) && roles.can_lead(n.pnn))
        .map(|n| n.pnn)
        .min()
}

/// The vnn map recovery installs: the active, enabled nodes with the lmaster role, in
/// pnn order; when there is none, the leader alone (so that some node is lmaster).
/// A disabled node leaves the map as the issue asks (Samba keeps it); an unhealthy one
/// stays.
pub fn wanted_vnnmap(flags: &[(u32, u32)], roles: &Roles, leader: u32) -> Vec<u32> {
    let mut map: Vec<u32> = flags
        .iter()
        .filter(|(pnn, f)| {
            is_active(*f) && f & node::PERMANENTLY_DISABLED == 0 && roles.is_lmaster(*pnn)
        })
        .map(|(pnn, _)| *pnn)
        .collect();
    map.sort_unstable();
    map.dedup();
    if map.is_empty() {
        map.push(leader);
    }
    map
}

/// The ELECTION message (srvid `samba::ELECTION`): Samba's `struct election_message`
/// (num_connected, 4 bytes padding, priority_time timeval, pnn, node_flags: 32 bytes)
/// followed by our extension, the sender's capabilities (u32). A 32-byte message from
/// Samba is accepted: num_connected 0 is Samba's "I cannot lead".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionMessage {
    pub num_connected: u32,
    pub priority_sec: i64,
    pub priority_usec: i64,
    pub pnn: u32,
    pub node_flags: u32,
    pub capabilities: u32,
}

impl ElectionMessage {
    pub const SAMBA_SIZE: usize = 32;
    pub const SIZE: usize = 36;

    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(Self::SIZE);
        out.put_u32_le(self.num_connected);
        out.put_u32_le(0);
        out.put_i64_le(self.priority_sec);
        out.put_i64_le(self.priority_usec);
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.node_flags);
        out.put_u32_le(self.capabilities);
        out.into()
    }

    pub fn from_bytes(data: &[u8]) -> Option<Self> {
        if data.len() < Self::SAMBA_SIZE {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().expect("4 bytes"));
        let i64_at = |i: usize| i64::from_le_bytes(data[i..i + 8].try_into().expect("8 bytes"));
        let num_connected = u32_at(0);
        let capabilities = if data.len() >= Self::SIZE {
            u32_at(32)
        } else if num_connected == 0 {
            capability::LMASTER
        } else {
            capability::RECMASTER | capability::LMASTER
        };
        Some(Self {
            num_connected,
            priority_sec: i64_at(8),
            priority_usec: i64_at(16),
            pnn: u32_at(24),
            node_flags: u32_at(28),
            capabilities,
        })
    }
}

/// A node map of nodes 0.. with these flags, for tests.
#[cfg(test)]
pub(crate) fn test_map(flags: &[u32]) -> NodeMap {
    NodeMap {
        nodes: flags
            .iter()
            .enumerate()
            .map(|(pnn, &flags)| ctdb_protocol::control::NodeAndFlags {
                pnn: pnn as u32,
                flags,
                ..Default::default()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_map as map;

    #[test]
    fn the_lowest_active_node_with_the_role_leads() {
        let roles = Roles::default();
        assert_eq!(choose_leader(&map(&[0, 0, 0]), &roles), Some(0));
        assert_eq!(
            choose_leader(&map(&[node::DISCONNECTED, 0, 0]), &roles),
            Some(1)
        );
        assert_eq!(
            choose_leader(&map(&[node::BANNED, node::STOPPED, 0]), &roles),
            Some(2)
        );
        assert_eq!(
            choose_leader(&map(&[node::DELETED, node::DISCONNECTED, 0]), &roles),
            Some(2)
        );
        // Disabled and unhealthy nodes may lead.
        assert_eq!(choose_leader(&map(&[node::UNHEALTHY, 0]), &roles), Some(0));
        assert_eq!(
            choose_leader(&map(&[node::PERMANENTLY_DISABLED, 0]), &roles),
            Some(0)
        );
        assert_eq!(
            choose_leader(&map(&[node::BANNED, node::DISCONNECTED]), &roles),
            None
        );
    }

    #[test]
    fn a_node_without_the_leader_role_never_leads() {
        let mut roles = Roles::default();
        roles.set(0, capability::LMASTER);
        assert_eq!(choose_leader(&map(&[0, 0, 0]), &roles), Some(1));
        roles.set(1, 0);
        roles.set(2, 0);
        assert_eq!(choose_leader(&map(&[0, 0, 0]), &roles), None);
        roles.set(0, capability::DEFAULT);
        assert_eq!(choose_leader(&map(&[0, 0, 0]), &roles), Some(0));
    }

    #[test]
    fn the_vnn_map_holds_active_lmasters_in_pnn_order() {
        let mut roles = Roles::default();
        let flags = [
            (3, 0),
            (0, 0),
            (1, node::BANNED),
            (2, node::UNHEALTHY),
            (4, node::DISCONNECTED),
            (5, node::STOPPED),
            (6, node::PERMANENTLY_DISABLED),
        ];
        assert_eq!(wanted_vnnmap(&flags, &roles, 0), vec![0, 2, 3]);
        roles.set(3, capability::RECMASTER);
        assert_eq!(wanted_vnnmap(&flags, &roles, 0), vec![0, 2]);
        // No lmaster at all: the leader alone.
        assert_eq!(wanted_vnnmap(&[(1, node::BANNED)], &roles, 7), vec![7]);
    }

    #[test]
    fn election_messages_round_trip_and_accept_samba_s_form() {
        let m = ElectionMessage {
            num_connected: 3,
            priority_sec: 1_700_000_000,
            priority_usec: 12,
            pnn: 2,
            node_flags: node::UNHEALTHY,
            capabilities: capability::LMASTER,
        };
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), ElectionMessage::SIZE);
        assert_eq!(ElectionMessage::from_bytes(&bytes), Some(m));
        let samba = ElectionMessage::from_bytes(&bytes[..32]).expect("samba form");
        assert_eq!(
            samba.capabilities,
            capability::RECMASTER | capability::LMASTER
        );
        let mut cannot_lead = bytes[..32].to_vec();
        cannot_lead[..4].copy_from_slice(&0u32.to_le_bytes());
        let samba = ElectionMessage::from_bytes(&cannot_lead).expect("samba form");
        assert_eq!(samba.capabilities, capability::LMASTER);
        assert_eq!(ElectionMessage::from_bytes(&bytes[..31]), None);
    }
}
