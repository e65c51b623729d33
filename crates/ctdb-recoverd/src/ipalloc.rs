//! Where each public address goes in a takeover run: a pure function of what every
//! connected node reported (GET_PUBLIC_IPS) and which nodes may host addresses.
//!
//! Rules, after Samba's: every address on exactly one node that may host it (active,
//! not disabled or unhealthy) and lists it; an address stays where it is while its
//! holder may still host it; the others go to the least loaded node that can take
//! them. Then, unless failback is off (Samba's NoIPFailback tunable), addresses move
//! from the most loaded nodes to the least loaded until no node holds two more than
//! another that could take one of them: a returning node gets its share at the next
//! run. This is a balanced greedy placement, not Samba's default LCP2 algorithm (which
//! also weighs how close addresses are to each other).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ctdb_protocol::control::PublicIpList;
use ctdb_protocol::flags::dest::UNKNOWN_PNN;

use crate::ips::ip_of;

/// One connected node's report.
#[derive(Debug, Clone)]
pub struct NodeIps {
    pub pnn: u32,
    /// May host addresses now (not banned, stopped, disabled, unhealthy, ...).
    pub eligible: bool,
    /// Its GET_PUBLIC_IPS answer: its addresses, each with the holder as it knows it.
    pub ips: PublicIpList,
    /// Those of its addresses it cannot host now (no interface with its link up:
    /// missing from its "available only" answer).
    pub unavailable: Vec<IpAddr>,
}

impl NodeIps {
    fn can_host(&self, addr: &IpAddr) -> bool {
        self.eligible && !self.unavailable.contains(addr)
    }
}

/// The holder of every address any node knows (UNKNOWN_PNN: no node can host it).
pub fn assign(nodes: &[NodeIps], failback: bool) -> BTreeMap<IpAddr, u32> {
    // Who can host each address, and who holds it by its own account.
    let mut hosts: BTreeMap<IpAddr, Vec<u32>> = BTreeMap::new();
    let mut held: BTreeMap<IpAddr, u32> = BTreeMap::new();
    let mut sorted: Vec<&NodeIps> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.pnn);
    for n in &sorted {
        for ip in &n.ips.ips {
            let Some(addr) = ip_of(&ip.addr) else {
                continue;
            };
            let can = hosts.entry(addr).or_default();
            if n.can_host(&addr) && !can.contains(&n.pnn) {
                can.push(n.pnn);
            }
            if ip.pnn == n.pnn {
                held.entry(addr).or_insert(n.pnn);
            }
        }
    }
    let mut count: BTreeMap<u32, usize> = sorted
        .iter()
        .filter(|n| n.eligible)
        .map(|n| (n.pnn, 0))
        .collect();
    let mut out: BTreeMap<IpAddr, u32> = BTreeMap::new();
    for (addr, can) in &hosts {
        if let Some(&holder) = held.get(addr).filter(|h| can.contains(h)) {
            out.insert(*addr, holder);
            *count.entry(holder).or_default() += 1;
        }
    }
    for (addr, can) in &hosts {
        if out.contains_key(addr) {
            continue;
        }
        let to = can
            .iter()
            .copied()
            .min_by_key(|p| (count.get(p).copied().unwrap_or(0), *p));
        match to {
            Some(p) => {
                out.insert(*addr, p);
                *count.entry(p).or_default() += 1;
            }
            None => {
                out.insert(*addr, UNKNOWN_PNN);
            }
        }
    }
    if failback {
        rebalance(&hosts, &mut out, &mut count);
    }
    out
}

/// Whether the reports show a placement a run would keep as it is (apart from
/// rebalancing): every address held by exactly one node, that node eligible, an
/// address nobody holds only when no eligible node lists it, and every node naming
/// the same holder.
pub fn consistent(nodes: &[NodeIps]) -> bool {
    let mut claimant: BTreeMap<IpAddr, Vec<u32>> = BTreeMap::new();
    let mut hostable: BTreeMap<IpAddr, bool> = BTreeMap::new();
    for n in nodes {
        for ip in &n.ips.ips {
            let Some(addr) = ip_of(&ip.addr) else {
                continue;
            };
            let claims = claimant.entry(addr).or_default();
            if ip.pnn == n.pnn {
                if !n.can_host(&addr) {
                    return false;
                }
                claims.push(n.pnn);
            }
            *hostable.entry(addr).or_default() |= n.can_host(&addr);
        }
    }
    for (addr, claims) in &claimant {
        let holder = match claims.as_slice() {
            [] if hostable.get(addr).copied().unwrap_or(false) => return false,
            [] => UNKNOWN_PNN,
            [one] => *one,
            _ => return false,
        };
        let agreed = nodes.iter().all(|n| {
            n.ips
                .ips
                .iter()
                .all(|ip| ip_of(&ip.addr) != Some(*addr) || ip.pnn == holder)
        });
        if !agreed {
            return false;
        }
    }
    true
}

/// Moves one address at a time, always the move between the most and least loaded
/// nodes possible, while some node holds two more than another that can take one of
/// its addresses. Each move lowers the sum of squared loads, so this ends.
fn rebalance(
    hosts: &BTreeMap<IpAddr, Vec<u32>>,
    out: &mut BTreeMap<IpAddr, u32>,
    count: &mut BTreeMap<u32, usize>,
) {
    loop {
        let mut best: Option<(usize, IpAddr, u32, u32)> = None;
        for (addr, &from) in out.iter() {
            let Some(&have) = count.get(&from) else {
                continue;
            };
            for &to in &hosts[addr] {
                let other = count.get(&to).copied().unwrap_or(0);
                if other + 1 < have {
                    let gap = have - other;
                    if best.is_none_or(|b| gap > b.0) {
                        best = Some((gap, *addr, from, to));
                    }
                }
            }
        }
        let Some((_, addr, from, to)) = best else {
            return;
        };
        out.insert(addr, to);
        *count.entry(from).or_default() -= 1;
        *count.entry(to).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use ctdb_protocol::control::PublicIp;

    use super::*;

    fn a(i: u8) -> IpAddr {
        IpAddr::from([10, 77, 0, i])
    }

    /// Node `pnn` that can host addresses 1..=n, holding those in `holds`.
    fn node(pnn: u32, eligible: bool, n: u8, holds: &[u8]) -> NodeIps {
        NodeIps {
            pnn,
            eligible,
            unavailable: Vec::new(),
            ips: PublicIpList {
                ips: (1..=n)
                    .map(|i| PublicIp {
                        pnn: if holds.contains(&i) { pnn } else { UNKNOWN_PNN },
                        addr: SocketAddr::new(a(i), 0).into(),
                    })
                    .collect(),
            },
        }
    }

    fn loads(out: &BTreeMap<IpAddr, u32>) -> BTreeMap<u32, usize> {
        let mut m = BTreeMap::new();
        for p in out.values() {
            *m.entry(*p).or_default() += 1;
        }
        m
    }

    #[test]
    fn a_fresh_cluster_spreads_every_address() {
        let nodes = [
            node(0, true, 6, &[]),
            node(1, true, 6, &[]),
            node(2, true, 6, &[]),
        ];
        let out = assign(&nodes, true);
        assert_eq!(out.len(), 6);
        assert_eq!(loads(&out), BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
    }

    #[test]
    fn held_addresses_stay_put() {
        let nodes = [
            node(0, true, 3, &[3]),
            node(1, true, 3, &[1]),
            node(2, true, 3, &[2]),
        ];
        let out = assign(&nodes, true);
        assert_eq!(out[&a(1)], 1);
        assert_eq!(out[&a(2)], 2);
        assert_eq!(out[&a(3)], 0);
    }

    #[test]
    fn a_lost_node_s_addresses_move_to_the_others() {
        // Node 2 is gone from the connected set; its addresses are held by nobody
        // the others know.
        let nodes = [node(0, true, 6, &[1, 2]), node(1, true, 6, &[3, 4])];
        let out = assign(&nodes, true);
        assert_eq!(loads(&out), BTreeMap::from([(0, 3), (1, 3)]));
        assert_eq!(
            (out[&a(1)], out[&a(2)], out[&a(3)], out[&a(4)]),
            (0, 0, 1, 1)
        );
    }

    #[test]
    fn an_unhealthy_holder_loses_its_addresses() {
        let nodes = [
            node(0, true, 4, &[1, 2]),
            node(1, false, 4, &[3, 4]),
            node(2, true, 4, &[]),
        ];
        let out = assign(&nodes, true);
        assert!(out.values().all(|&p| p != 1));
        assert_eq!(loads(&out), BTreeMap::from([(0, 2), (2, 2)]));
        assert_eq!((out[&a(1)], out[&a(2)]), (0, 0));
    }

    #[test]
    fn a_returning_node_gets_its_share_with_failback_only() {
        let nodes = [
            node(0, true, 6, &[1, 2, 3]),
            node(1, true, 6, &[4, 5, 6]),
            node(2, true, 6, &[]),
        ];
        let out = assign(&nodes, true);
        assert_eq!(loads(&out), BTreeMap::from([(0, 2), (1, 2), (2, 2)]));
        let kept = assign(&nodes, false);
        assert_eq!(loads(&kept), BTreeMap::from([(0, 3), (1, 3)]));
    }

    #[test]
    fn an_address_only_one_node_lists_stays_on_it_or_nowhere() {
        let nodes = [node(0, true, 1, &[]), node(1, true, 3, &[])];
        let out = assign(&nodes, true);
        assert_eq!(loads(&out), BTreeMap::from([(0, 1), (1, 2)]));
        assert_eq!(out[&a(2)], 1);
        let nodes = [node(0, true, 1, &[]), node(1, false, 3, &[2])];
        let out = assign(&nodes, true);
        assert_eq!(
            (out[&a(1)], out[&a(2)], out[&a(3)]),
            (0, UNKNOWN_PNN, UNKNOWN_PNN)
        );
    }

    /// Node `pnn` listing addresses 1..=n, each with the holder `holders[i-1]`.
    fn seen(pnn: u32, eligible: bool, holders: &[u32]) -> NodeIps {
        NodeIps {
            pnn,
            eligible,
            unavailable: Vec::new(),
            ips: PublicIpList {
                ips: holders
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| PublicIp {
                        pnn: p,
                        addr: SocketAddr::new(a(i as u8 + 1), 0).into(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn consistency_needs_one_eligible_holder_that_everyone_names() {
        const U: u32 = UNKNOWN_PNN;
        let good = [seen(0, true, &[0, 1]), seen(1, true, &[0, 1])];
        assert!(consistent(&good));
        // A restarted daemon forgot that it holds address 2.
        let forgot = [seen(0, true, &[0, 1]), seen(1, true, &[0, U])];
        assert!(!consistent(&forgot));
        // Node 0 names a stale holder.
        let stale = [seen(0, true, &[0, 0]), seen(1, true, &[0, 1])];
        assert!(!consistent(&stale));
        // An unhealthy node still holds an address.
        let unhealthy = [seen(0, true, &[0, 1]), seen(1, false, &[0, 1])];
        assert!(!consistent(&unhealthy));
        // Nobody can host address 2: unheld is right.
        let nobody = [seen(0, true, &[0]), seen(1, false, &[0, U])];
        assert!(consistent(&nobody));
    }

    #[test]
    fn an_address_without_a_link_up_leaves_its_node() {
        let mut down = node(1, true, 2, &[1, 2]);
        down.unavailable = vec![a(2)];
        let nodes = [node(0, true, 2, &[]), down];
        assert!(!consistent(&nodes));
        let out = assign(&nodes, true);
        assert_eq!((out[&a(1)], out[&a(2)]), (1, 0));
    }

    #[test]
    fn two_claimants_leave_one_holder() {
        let nodes = [node(0, true, 1, &[1]), node(1, true, 1, &[1])];
        let out = assign(&nodes, true);
        assert_eq!(out[&a(1)], 0);
    }
}
