//! Samba's `nodes` and `public_addresses` files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::ConfigError;

/// One line of the nodes file. A node's pnn is its index among the non-blank lines.
///
/// A line is an IP address, as in Samba, or (a ctdb-rs extension) a DNS name such as a
/// StatefulSet pod's stable name: a node that comes back with a new address keeps its
/// place. A name is resolved when the configuration is read ([`resolve_names`]) and
/// again whenever a connection to or from that node needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub pnn: u32,
    /// `0.0.0.0` for a deleted node, as in Samba, and for a name not resolved yet.
    pub addr: IpAddr,
    /// A line starting with `#`: the node was removed but keeps its pnn.
    pub deleted: bool,
    /// The DNS name the line gives instead of an address.
    pub name: Option<String>,
}

impl NodeEntry {
    /// The node's address now: its name resolved again, or the address of its line.
    /// `None` for a name that does not resolve.
    pub fn resolve(&self) -> Option<IpAddr> {
        match &self.name {
            None => Some(self.addr),
            Some(name) => resolve_name(name),
        }
    }
}

/// The first address a DNS name resolves to, IPv4 before IPv6.
pub fn resolve_name(name: &str) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<IpAddr> = (name, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// Resolves every named node once (blocking); a name that does not resolve yet keeps
/// `0.0.0.0`, to be tried again later.
pub fn resolve_names(nodes: &mut [NodeEntry]) {
    for n in nodes.iter_mut().filter(|n| !n.deleted) {
        if let Some(addr) = n.name.as_deref().and_then(resolve_name) {
            n.addr = addr;
        }
    }
}

/// A host name as DNS allows it: labels of letters, digits and `-`, dot-separated.
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

/// One line of the public_addresses file: `ADDR/PREFIX IFACE[,IFACE...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicAddress {
    pub addr: IpAddr,
    pub prefix: u8,
    pub ifaces: Vec<String>,
}

fn parse_error(path: &Path, line: usize, message: String) -> ConfigError {
    ConfigError::Parse {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    }
}

/// Parses a nodes file as Samba does: one address per line with surrounding blanks
/// ignored, blank lines skipped, and a line starting with `#` a deleted node that still
/// takes a pnn. `path` is only used in errors.
pub fn parse_nodes(text: &str, path: &Path) -> Result<Vec<NodeEntry>, ConfigError> {
    let mut nodes = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let pnn = u32::try_from(nodes.len())
            .map_err(|_| parse_error(path, index + 1, "too many nodes".into()))?;
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let (addr, deleted, name) = if line.starts_with('#') {
            (unspecified, true, None)
        } else if let Ok(addr) = line.parse() {
            (addr, false, None)
        } else if is_dns_name(line) {
            (unspecified, false, Some(line.to_string()))
        } else {
            return Err(parse_error(
                path,
                index + 1,
                format!("invalid node address \"{line}\""),
            ));
        };
        nodes.push(NodeEntry {
            pnn,
            addr,
            deleted,
            name,
        });
    }
    Ok(nodes)
}

/// Parses a public_addresses file: `ADDR/PREFIX IFACE[,IFACE...]` per line; blank lines
/// and lines starting with `#` are ignored. `path` is only used in errors.
pub fn parse_public_addresses(text: &str, path: &Path) -> Result<Vec<PublicAddress>, ConfigError> {
    let mut addresses: Vec<PublicAddress> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what: &str| parse_error(path, index + 1, format!("{what} in \"{line}\""));
        let mut fields = line.split_whitespace();
        let (Some(cidr), Some(ifaces), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err("expected ADDR/PREFIX IFACE[,IFACE...]"));
        };
        let (addr, prefix) = cidr.split_once('/').ok_or_else(|| err("missing /PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("invalid IP address"))?;
        let max_prefix = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max_prefix)
            .ok_or_else(|| err("invalid prefix length"))?;
        let ifaces: Vec<String> = ifaces
            .split(',')
            .filter(|i| !i.is_empty())
            .map(str::to_string)
            .collect();
        if ifaces.is_empty() {
            return Err(err("missing interface"));
        }
        if addresses.iter().any(|a| a.addr == addr) {
            return Err(err("duplicate public address"));
        }
        addresses.push(PublicAddress {
            addr,
            prefix,
            ifaces,
        });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nodes_with_comments_deleted_and_blank_lines() {
        let text = "10.0.0.1\n\n  #10.0.0.2\n\t10.0.0.3  \n\n# removed\nfd00::4\n\n";
        let nodes = parse_nodes(text, Path::new("/etc/ctdb/nodes")).expect("parse");
        let expect = [
            (0, "10.0.0.1", false),
            (1, "0.0.0.0", true),
            (2, "10.0.0.3", false),
            (3, "0.0.0.0", true),
            (4, "fd00::4", false),
        ];
        assert_eq!(nodes.len(), expect.len());
        for (node, (pnn, addr, deleted)) in nodes.iter().zip(expect) {
            assert_eq!(
                node,
                &NodeEntry {
                    pnn,
                    addr: ip(addr),
                    deleted,
                    name: None,
                }
            );
        }
    }

    #[test]
    fn bad_node_line_is_an_error() {
        let err = parse_nodes("10.0.0.1\n\n10.0.0.2 extra\n", Path::new("/x/nodes"))
            .expect_err("trailing text");
        assert_eq!(
            err.to_string(),
            "/x/nodes: line 3: invalid node address \"10.0.0.2 extra\""
        );
        assert!(parse_nodes("10.0.0.1:4379\n", Path::new("n")).is_err());
        assert!(parse_nodes("ctdb_0.svc\n", Path::new("n")).is_err());
        assert!(parse_nodes("-ctdb.svc\n", Path::new("n")).is_err());
    }

    #[test]
    fn nodes_by_name() {
        let text = "ctdb-0.ctdb.default.svc.cluster.local\nlocalhost\n10.0.0.3\n#ctdb-3.ctdb\n";
        let mut nodes = parse_nodes(text, Path::new("nodes")).expect("parse");
        assert_eq!(
            nodes[0].name.as_deref(),
            Some("ctdb-0.ctdb.default.svc.cluster.local")
        );
        assert_eq!(nodes[0].addr, ip("0.0.0.0"), "resolved later");
        assert_eq!(
            (nodes[2].name.as_deref(), nodes[2].addr),
            (None, ip("10.0.0.3"))
        );
        assert!(nodes[3].deleted && nodes[3].name.is_none());
        resolve_names(&mut nodes);
        assert!(
            nodes[1].addr.is_loopback(),
            "localhost resolves: {:?}",
            nodes[1]
        );
        assert_eq!(nodes[1].resolve(), Some(nodes[1].addr));
        assert_eq!(nodes[2].resolve(), Some(ip("10.0.0.3")));
    }

    #[test]
    fn public_addresses() {
        let text = "# public addresses\n192.168.1.10/24 eth0\n\n  10.0.0.5/16\teth1,eth2  \nfd00::10/64 eth3\n";
        let addrs = parse_public_addresses(text, Path::new("pa")).expect("parse");
        assert_eq!(
            addrs,
            vec![
                PublicAddress {
                    addr: ip("192.168.1.10"),
                    prefix: 24,
                    ifaces: vec!["eth0".into()]
                },
                PublicAddress {
                    addr: ip("10.0.0.5"),
                    prefix: 16,
                    ifaces: vec!["eth1".into(), "eth2".into()]
                },
                PublicAddress {
                    addr: ip("fd00::10"),
                    prefix: 64,
                    ifaces: vec!["eth3".into()]
                },
            ]
        );
    }

    #[test]
    fn bad_public_addresses() {
        for (line, why) in [
            ("192.168.1.10 eth0", "missing /PREFIX"),
            ("192.168.1.10/33 eth0", "invalid prefix length"),
            ("192.168.1.x/24 eth0", "invalid IP address"),
            ("192.168.1.10/24", "expected ADDR/PREFIX"),
            ("192.168.1.10/24 eth0 eth1", "expected ADDR/PREFIX"),
            ("192.168.1.10/24 ,", "missing interface"),
        ] {
            let err = parse_public_addresses(line, Path::new("/x/pa")).expect_err(line);
            let text = err.to_string();
            assert!(text.starts_with("/x/pa: line 1: "), "{text}");
            assert!(text.contains(why) && text.contains(line), "{text}");
        }
        let dup = "10.0.0.1/24 eth0\n10.0.0.1/24 eth1\n";
        let err = parse_public_addresses(dup, Path::new("pa")).expect_err("dup");
        assert!(err.to_string().contains("line 2: duplicate"), "{err}");
    }
}
