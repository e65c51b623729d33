//! Tickle lists: the TCP connections of clients to each public address, so that the
//! node that takes an address over can make those clients reconnect at once.
//!
//! A local client such as smbd registers each connection it accepts on a public
//! address (TCP_CLIENT); the node keeps it in the address's list and sends it on to
//! every connected node (TCP_ADD, no reply), so that whichever node holds the address
//! next knows it. TCP_ADD / TCP_ADD_DELAYED_UPDATE add one (`ctdb addtickle`),
//! TCP_REMOVE removes one (`ctdb deltickle`), GET_TCP_TICKLE_LIST reads a list
//! (`ctdb gettickles`, only the connections to one port when one is given) and
//! SET_TCP_TICKLE_LIST replaces one. A connection is to a public address of this node
//! or it is refused, as Samba refuses it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ctdb_protocol::control::{Connection, SockAddr, TickleList};

use crate::ips::ip_of;

/// Most connections kept for one address; past it the oldest go.
pub const MAX_PER_ADDRESS: usize = 20_000;

#[derive(Debug, Default)]
pub struct Tickles {
    by_addr: BTreeMap<IpAddr, Vec<Connection>>,
}

impl Tickles {
    /// Adds `conn` to the list of its destination address (once).
    pub fn add(&mut self, addr: IpAddr, conn: Connection) {
        let list = self.by_addr.entry(addr).or_default();
        if list.contains(&conn) {
            return;
        }
        if list.len() >= MAX_PER_ADDRESS {
            list.remove(0);
        }
        list.push(conn);
    }

    /// Removes `conn`; true when it was there.
    pub fn remove(&mut self, addr: IpAddr, conn: &Connection) -> bool {
        let Some(list) = self.by_addr.get_mut(&addr) else {
            return false;
        };
        let before = list.len();
        list.retain(|c| c != conn);
        before != list.len()
    }

    /// The list of `addr`, the connections to `port` only when it is not 0.
    pub fn list(&self, addr: SockAddr, port: u16) -> TickleList {
        let connections = ip_of(&addr)
            .and_then(|ip| self.by_addr.get(&ip))
            .map(|list| {
                list.iter()
                    .filter(|c| port == 0 || c.dst.socket_addr().map(|a| a.port()) == Some(port))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        TickleList { addr, connections }
    }

    /// Replaces the list of `addr` (SET_TCP_TICKLE_LIST).
    pub fn set(&mut self, addr: IpAddr, mut connections: Vec<Connection>) {
        connections.truncate(MAX_PER_ADDRESS);
        self.by_addr.insert(addr, connections);
    }

    /// Forgets the list of an address this node no longer has.
    pub fn forget(&mut self, addr: IpAddr) {
        self.by_addr.remove(&addr);
    }
}

/// The public address a connection is to (its destination).
pub fn destination(conn: &Connection) -> Option<IpAddr> {
    ip_of(&conn.dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn conn(client: &str, server: &str) -> Connection {
        Connection {
            src: SockAddr::from(client.parse::<SocketAddr>().unwrap()),
            dst: SockAddr::from(server.parse::<SocketAddr>().unwrap()),
        }
    }

    #[test]
    fn lists_are_per_address_filtered_by_port_and_bounded() {
        let mut t = Tickles::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = conn("192.168.1.5:40000", "10.0.0.1:445");
        let b = conn("192.168.1.6:40001", "10.0.0.1:139");
        t.add(ip, a);
        t.add(ip, a);
        t.add(ip, b);
        let all = t.list(SockAddr::from(SocketAddr::new(ip, 0)), 0);
        assert_eq!(all.connections, vec![a, b]);
        assert_eq!(
            t.list(SockAddr::from(SocketAddr::new(ip, 445)), 445)
                .connections,
            vec![a]
        );
        assert!(t.remove(ip, &a));
        assert!(!t.remove(ip, &a));
        for i in 0..MAX_PER_ADDRESS as u16 + 5 {
            t.add(
                ip,
                conn(&format!("192.168.2.1:{}", 1000 + i), "10.0.0.1:445"),
            );
        }
        let n = t
            .list(SockAddr::from(SocketAddr::new(ip, 0)), 0)
            .connections
            .len();
        assert_eq!(n, MAX_PER_ADDRESS);
    }
}
