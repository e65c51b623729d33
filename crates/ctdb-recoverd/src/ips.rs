//! This node's public addresses: what the public_addresses file lists (address, mask
//! bits, interfaces) and which node holds each as this node last heard (a pnn, or -1).
//!
//! The state answers GET_PUBLIC_IPS, GET_PUBLIC_IP_INFO and GET_IFACES, and tells
//! TAKEOVER_IP / RELEASE_IP which event to run. The events themselves (`takeip`,
//! `releaseip`) run in eventd; their scripts do the real `ip addr` work.

use std::net::{IpAddr, SocketAddr};

use ctdb_common::nodes::PublicAddress;
use ctdb_protocol::control::{Iface, IfaceList, PublicIp, PublicIpInfo, PublicIpList, SockAddr};
use ctdb_protocol::flags::dest::UNKNOWN_PNN;

/// GET_PUBLIC_IPS control flag: only the addresses this node could host now.
pub const ONLY_AVAILABLE: u32 = 0x0001_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    addr: IpAddr,
    prefix: u8,
    ifaces: Vec<String>,
    /// The node holding the address, as this node last heard; -1 for none.
    pnn: u32,
    /// The interface it is on, while held here.
    active: Option<usize>,
}

/// An event to run for a TAKEOVER_IP or RELEASE_IP: name and Samba's arguments
/// (interface, address, mask bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpEvent {
    pub event: &'static str,
    pub args: Vec<String>,
}

/// What a TAKEOVER_IP or RELEASE_IP asks of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to run: record the new holder (the address is held elsewhere, or
    /// already here).
    Record,
    /// Run the event, then record the new holder if it succeeded.
    Run(IpEvent),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicIps {
    entries: Vec<Entry>,
    pnn: u32,
    /// Interfaces whose link was set down (SET_IFACE_LINK_STATE); all others are up.
    down: Vec<String>,
}

fn sock(addr: IpAddr) -> SockAddr {
    SockAddr::from(SocketAddr::new(addr, 0))
}

/// The address of a `ctdb_sock_addr`, port ignored.
pub fn ip_of(addr: &SockAddr) -> Option<IpAddr> {
    addr.socket_addr().map(|a| a.ip())
}

impl PublicIps {
    /// Node `pnn`'s addresses from its public_addresses file, none held yet.
    pub fn new(pnn: u32, addresses: &[PublicAddress]) -> Self {
        Self {
            pnn,
            down: Vec::new(),
            entries: addresses
                .iter()
                .map(|a| Entry {
                    addr: a.addr,
                    prefix: a.prefix,
                    ifaces: a.ifaces.clone(),
                    pnn: UNKNOWN_PNN,
                    active: None,
                })
                .collect(),
        }
    }

    fn find(&self, addr: IpAddr) -> Option<&Entry> {
        self.entries.iter().find(|e| e.addr == addr)
    }

    fn up(&self, name: &str) -> bool {
        !self.down.iter().any(|d| d == name)
    }

    /// The first interface of `e` whose link is up.
    fn usable(&self, e: &Entry) -> Option<usize> {
        e.ifaces.iter().position(|n| self.up(n))
    }

    /// GET_PUBLIC_IPS; `only_available`: the addresses with an interface whose link is
    /// up (links are up unless SET_IFACE_LINK_STATE said otherwise).
    pub fn list(&self, only_available: bool) -> PublicIpList {
        PublicIpList {
            ips: self
                .entries
                .iter()
                .filter(|e| !only_available || self.usable(e).is_some())
                .map(|e| PublicIp {
                    pnn: e.pnn,
                    addr: sock(e.addr),
                })
                .collect(),
        }
    }

    /// How many held addresses use interface `name`.
    fn references(&self, name: &str) -> u32 {
        self.entries
            .iter()
            .filter(|e| e.active.is_some_and(|i| e.ifaces[i] == name))
            .count() as u32
    }

    fn iface(&self, name: &str) -> Iface {
        Iface {
            name: name.to_string(),
            link_state: u16::from(self.up(name)),
            references: self.references(name),
        }
    }

    /// GET_PUBLIC_IP_INFO; None for an address that is not ours.
    pub fn info(&self, addr: IpAddr) -> Option<PublicIpInfo> {
        let e = self.find(addr)?;
        Some(PublicIpInfo {
            ip: PublicIp {
                pnn: e.pnn,
                addr: sock(e.addr),
            },
            active_idx: e.active.map_or(u32::MAX, |i| i as u32),
            ifaces: e.ifaces.iter().map(|n| self.iface(n)).collect(),
        })
    }

    /// GET_IFACES: every interface the addresses name, once, in file order.
    pub fn ifaces(&self) -> IfaceList {
        let mut names: Vec<&str> = Vec::new();
        for n in self.entries.iter().flat_map(|e| &e.ifaces) {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        IfaceList {
            ifaces: names.into_iter().map(|n| self.iface(n)).collect(),
        }
    }

    fn args(e: &Entry, iface: usize) -> Vec<String> {
        vec![
            e.ifaces[iface].clone(),
            e.addr.to_string(),
            e.prefix.to_string(),
        ]
    }

    /// What TAKEOVER_IP of `addr` to this node needs.
    pub fn takeover(&self, addr: IpAddr) -> Result<Action, String> {
        let e = self
            .find(addr)
            .ok_or_else(|| format!("{addr} is not a public address of this node"))?;
        if e.pnn == self.pnn && e.active.is_some() {
            return Ok(Action::Record);
        }
        let Some(i) = self.usable(e) else {
            return Err(format!("no interface with its link up to take {addr} on"));
        };
        Ok(Action::Run(IpEvent {
            event: "takeip",
            args: Self::args(e, i),
        }))
    }

    /// What RELEASE_IP of `addr` (now held by `to`) needs: an address not ours, or not
    /// held here, is only recorded.
    pub fn release(&self, addr: IpAddr, to: u32) -> Action {
        match self.find(addr) {
            Some(e) if to != self.pnn => match e.active {
                Some(i) => Action::Run(IpEvent {
                    event: "releaseip",
                    args: Self::args(e, i),
                }),
                None => Action::Record,
            },
            _ => Action::Record,
        }
    }

    /// Records that `holder` now holds `addr` (on its first interface with the link up
    /// when here, the one `takeip` was given).
    pub fn record(&mut self, addr: IpAddr, holder: u32) {
        let here = self.pnn;
        let Some(at) = self.entries.iter().position(|e| e.addr == addr) else {
            return;
        };
        let usable = self.usable(&self.entries[at]);
        let e = &mut self.entries[at];
        e.pnn = holder;
        e.active = if holder == here {
            e.active.or(usable)
        } else {
            None
        };
    }

    /// SET_IFACE_LINK_STATE: an interface of the public addresses goes up or down.
    pub fn set_link(&mut self, name: &str, up: bool) -> Result<(), String> {
        if !self
            .entries
            .iter()
            .any(|e| e.ifaces.iter().any(|n| n == name))
        {
            return Err(format!("interface '{name}' not found"));
        }
        self.down.retain(|d| d != name);
        if !up {
            self.down.push(name.to_string());
        }
        Ok(())
    }

    /// ADD_PUBLIC_IP: a new address, held by nobody until a takeover run places it.
    pub fn add(&mut self, address: PublicAddress) -> Result<(), String> {
        if self.find(address.addr).is_some() {
            return Err(format!("{} is already a public address", address.addr));
        }
        self.entries.push(Entry {
            addr: address.addr,
            prefix: address.prefix,
            ifaces: address.ifaces,
            pnn: UNKNOWN_PNN,
            active: None,
        });
        Ok(())
    }

    /// Whether `addr` is one of this node's public addresses.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.find(addr).is_some()
    }

    /// RELOAD_PUBLIC_IPS: what the file's `addresses` add to this node's list, and the
    /// addresses of the list the file no longer has.
    pub fn changes(&self, addresses: &[PublicAddress]) -> (Vec<PublicAddress>, Vec<IpAddr>) {
        let added = addresses
            .iter()
            .filter(|a| self.find(a.addr).is_none())
            .cloned()
            .collect();
        let removed = self
            .entries
            .iter()
            .map(|e| e.addr)
            .filter(|addr| !addresses.iter().any(|a| a.addr == *addr))
            .collect();
        (added, removed)
    }

    /// DEL_PUBLIC_IP: refused while the address is held here (the control handler
    /// releases it first).
    pub fn delete(&mut self, addr: IpAddr) -> Result<(), String> {
        match self.find(addr) {
            None => Ok(()),
            Some(e) if e.active.is_some() => Err(format!("{addr} is still held here")),
            Some(_) => {
                self.entries.retain(|e| e.addr != addr);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ctdb_protocol::Wire;

    use super::*;

    fn addrs() -> Vec<PublicAddress> {
        vec![
            PublicAddress {
                addr: "10.250.0.1".parse().expect("ip"),
                prefix: 24,
                ifaces: vec!["lo".into()],
            },
            PublicAddress {
                addr: "10.250.0.2".parse().expect("ip"),
                prefix: 24,
                ifaces: vec!["eth1".into(), "lo".into()],
            },
        ]
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn ipinfo_matches_samba_for_an_address_held_by_nobody() {
        // client.jsonl i=1585: GET_PUBLIC_IP_INFO reply data for 10.250.0.1/24 on lo.
        let samba = unhex(concat!(
            "ffffffff020000000afa00010000000000000000000000000000000000000000",
            "ffffffff01000000",
            "6c6f00000000000000000000000000000000010000000000"
        ));
        let ips = PublicIps::new(0, &addrs()[..1]);
        let info = ips.info("10.250.0.1".parse().expect("ip")).expect("ours");
        assert_eq!(info.to_bytes(), samba);
        assert_eq!(PublicIpInfo::from_bytes(&samba).expect("decode"), info);
    }

    #[test]
    fn get_public_ips_matches_samba() {
        // client.jsonl i=1677: one address, held by nobody.
        let samba = unhex(concat!(
            "01000000ffffffff020000000afa0001",
            "0000000000000000000000000000000000000000"
        ));
        let ips = PublicIps::new(0, &addrs()[..1]);
        assert_eq!(ips.list(false).to_bytes(), samba);
        let list = PublicIpList::from_bytes(&samba).expect("decode");
        assert_eq!(list.ips[0].pnn, UNKNOWN_PNN);
        assert_eq!(
            ip_of(&list.ips[0].addr),
            Some("10.250.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn takeover_runs_takeip_then_release_runs_releaseip() {
        let mut ips = PublicIps::new(1, &addrs());
        let a: IpAddr = "10.250.0.2".parse().expect("ip");
        assert_eq!(
            ips.takeover(a),
            Ok(Action::Run(IpEvent {
                event: "takeip",
                args: vec!["eth1".into(), "10.250.0.2".into(), "24".into()]
            }))
        );
        ips.record(a, 1);
        assert_eq!(ips.takeover(a), Ok(Action::Record));
        assert_eq!(ips.ifaces().ifaces[1].references, 1);
        assert_eq!(ips.info(a).expect("info").active_idx, 0);
        // Released to node 2: the event, then node 2 recorded.
        assert!(matches!(ips.release(a, 2), Action::Run(e) if e.event == "releaseip"));
        ips.record(a, 2);
        assert_eq!(ips.release(a, 0), Action::Record);
        assert_eq!(ips.list(false).ips[1].pnn, 2);
        assert_eq!(ips.ifaces().ifaces[1].references, 0);
        // Not ours at all.
        assert!(ips.takeover("10.9.9.9".parse().expect("ip")).is_err());
        assert_eq!(
            ips.release("10.9.9.9".parse().expect("ip"), 0),
            Action::Record
        );
    }

    #[test]
    fn a_link_down_makes_its_addresses_unavailable() {
        let mut ips = PublicIps::new(0, &addrs());
        ips.set_link("lo", false).expect("known");
        assert!(ips.set_link("eth9", false).is_err());
        let available: Vec<IpAddr> = ips
            .list(true)
            .ips
            .iter()
            .filter_map(|ip| ip_of(&ip.addr))
            .collect();
        // 10.250.0.2 still has eth1.
        assert_eq!(available, ["10.250.0.2".parse::<IpAddr>().expect("ip")]);
        assert_eq!(ips.list(false).ips.len(), 2);
        assert!(ips.takeover("10.250.0.1".parse().expect("ip")).is_err());
        assert_eq!(ips.ifaces().ifaces[0].link_state, 0);
        ips.set_link("eth1", false).expect("known");
        ips.set_link("lo", true).expect("known");
        assert_eq!(
            ips.takeover("10.250.0.2".parse().expect("ip")),
            Ok(Action::Run(IpEvent {
                event: "takeip",
                args: vec!["lo".into(), "10.250.0.2".into(), "24".into()]
            }))
        );
    }

    #[test]
    fn ifaces_are_listed_once_in_file_order() {
        let ips = PublicIps::new(0, &addrs());
        let names: Vec<String> = ips.ifaces().ifaces.into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["lo", "eth1"]);
    }
}
