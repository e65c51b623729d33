//! Samba's `nodes` and `public_addresses` files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::ConfigError;

/// One line of the nodes file. A node's pnn is its index among the non-blank lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub pnn: u32,
    /// `0.0.0.0` for a deleted node, as in Samba.
    pub addr: IpAddr,
    /// A line starting with `#`: the node was removed but keeps its pnn.
    pub deleted: bool,
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
        let (addr, deleted) = if line.starts_with('#') {
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), true)
        } else {
            let addr = line.parse().map_err(|_| {
                parse_error(path, index + 1, format!("invalid node address \"{line}\""))
            })?;
            (addr, false)
        };
        nodes.push(NodeEntry { pnn, addr, deleted });
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
                    deleted
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
