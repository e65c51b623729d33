//! `status`, `nodestatus` and `listnodes`.

use std::net::IpAddr;

use ctdb_protocol::control::{NodeAndFlags, NodeMap, SockAddr, VnnMap};
use ctdb_protocol::flags::{node, recmode, INVALID_GENERATION};

use super::{bit, machine_line, Machine};

/// Samba 4.17's `NODE_FLAGS_UNKNOWN` (a node whose state is not known yet). ctdb-rs
/// never sets it; it only feeds the `Unknown` column and the `UNKNOWN` flag text.
pub const NODE_FLAGS_UNKNOWN: u32 = 0x0000_0040;

/// The flag names in the order Samba prints them.
const FLAG_NAMES: [(u32, &str); 8] = [
    (node::DISCONNECTED, "DISCONNECTED"),
    (NODE_FLAGS_UNKNOWN, "UNKNOWN"),
    (node::PERMANENTLY_DISABLED, "DISABLED"),
    (node::BANNED, "BANNED"),
    (node::UNHEALTHY, "UNHEALTHY"),
    (node::DELETED, "DELETED"),
    (node::STOPPED, "STOPPED"),
    (node::INACTIVE, "INACTIVE"),
];

/// Node flags as text: `OK`, or the set flags `|`-joined (`BANNED|INACTIVE`).
pub fn flags_text(flags: u32) -> String {
    let names: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "OK".to_string()
    } else {
        names.join("|")
    }
}

/// `ctdb_sock_addr_to_string(addr, false)`: the address without the port.
pub fn addr_text(addr: &SockAddr) -> String {
    match addr.socket_addr() {
        Some(a) => a.ip().to_string(),
        None => "0.0.0.0".to_string(),
    }
}

/// The node map as `status`/`nodestatus` print it. `partially_online` lists the pnns
/// with an interface down (printed as `PARTIALLYONLINE`); deleted nodes are skipped.
pub fn nodemap_text(map: &NodeMap, mypnn: u32, header: bool, partially_online: &[u32]) -> String {
    let mut out = String::new();
    if header {
        let deleted = map
            .nodes
            .iter()
            .filter(|n| n.flags & node::DELETED != 0)
            .count();
        if deleted == 0 {
            out.push_str(&format!("Number of nodes:{}\n", map.nodes.len()));
        } else {
            out.push_str(&format!(
                "Number of nodes:{} (including {} deleted nodes)\n",
                map.nodes.len(),
                deleted
            ));
        }
    }
    for n in map.nodes.iter().filter(|n| n.flags & node::DELETED == 0) {
        let state = if partially_online.contains(&n.pnn) {
            "PARTIALLYONLINE".to_string()
        } else {
            flags_text(n.flags)
        };
        out.push_str(&format!(
            "pnn:{} {:<16} {}{}\n",
            n.pnn,
            addr_text(&n.addr),
            state,
            if n.pnn == mypnn { " (THIS NODE)" } else { "" }
        ));
    }
    out
}

/// The machine-readable node table (`-X status`, `-X nodestatus`).
pub fn nodemap_machine(map: &NodeMap, mypnn: u32, partially_online: &[u32], sep: &str) -> String {
    let mut out = machine_line(
        sep,
        &[
            "Node",
            "IP",
            "Disconnected",
            "Unknown",
            "Banned",
            "Disabled",
            "Unhealthy",
            "Stopped",
            "Inactive",
            "PartiallyOnline",
            "ThisNode",
        ],
    );
    for n in map.nodes.iter().filter(|n| n.flags & node::DELETED == 0) {
        let f = |flag: u32| bit(n.flags & flag != 0).to_string();
        out.push_str(&machine_line(
            sep,
            &[
                n.pnn.to_string(),
                addr_text(&n.addr),
                f(node::DISCONNECTED),
                f(NODE_FLAGS_UNKNOWN),
                f(node::BANNED),
                f(node::PERMANENTLY_DISABLED),
                f(node::UNHEALTHY),
                f(node::STOPPED),
                f(node::INACTIVE),
                bit(partially_online.contains(&n.pnn)).to_string(),
                if n.pnn == mypnn { "Y" } else { "N" }.to_string(),
            ],
        ));
    }
    out
}

/// Everything `ctdb status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub nodemap: NodeMap,
    pub vnnmap: VnnMap,
    pub recmode: u32,
    /// `None` when no leader is known.
    pub leader: Option<u32>,
    pub partially_online: Vec<u32>,
}

/// `ctdb status`: human or machine-readable.
pub fn status_text(s: &Status, mypnn: u32, machine: Machine<'_>) -> String {
    if let Some(sep) = machine {
        return nodemap_machine(&s.nodemap, mypnn, &s.partially_online, sep);
    }
    let mut out = nodemap_text(&s.nodemap, mypnn, true, &s.partially_online);
    if s.vnnmap.generation == INVALID_GENERATION {
        out.push_str("Generation:INVALID\n");
    } else {
        out.push_str(&format!("Generation:{}\n", s.vnnmap.generation));
    }
    out.push_str(&format!("Size:{}\n", s.vnnmap.map.len()));
    for (i, lmaster) in s.vnnmap.map.iter().enumerate() {
        out.push_str(&format!("hash:{i} lmaster:{lmaster}\n"));
    }
    out.push_str(&format!(
        "Recovery mode:{} ({})\n",
        if s.recmode == recmode::NORMAL {
            "NORMAL"
        } else {
            "RECOVERY"
        },
        s.recmode as i32
    ));
    out.push_str(&leader_line(s.leader));
    out
}

/// `Leader:N`, or `Leader:UNKNOWN`.
pub fn leader_line(leader: Option<u32>) -> String {
    match leader {
        Some(l) => format!("Leader:{l}\n"),
        None => "Leader:UNKNOWN\n".to_string(),
    }
}

/// `ctdb nodestatus`: the header only for `all`.
pub fn nodestatus_text(
    map: &NodeMap,
    mypnn: u32,
    all: bool,
    partially_online: &[u32],
    machine: Machine<'_>,
) -> String {
    match machine {
        Some(sep) => nodemap_machine(map, mypnn, partially_online, sep),
        None => nodemap_text(map, mypnn, all, partially_online),
    }
}

/// `nodestatus`'s exit code: the OR of the shown nodes' flags.
pub fn nodestatus_code(map: &NodeMap) -> u32 {
    map.nodes.iter().fold(0, |acc, n| acc | n.flags)
}

/// `ctdb listnodes`: the nodes file's addresses (deleted nodes skipped).
pub fn listnodes_text(nodes: &[(u32, IpAddr, bool)], machine: Machine<'_>) -> String {
    let mut out = String::new();
    for (pnn, addr, deleted) in nodes {
        if *deleted {
            continue;
        }
        match machine {
            Some(sep) => out.push_str(&machine_line(sep, &[pnn.to_string(), addr.to_string()])),
            None => out.push_str(&format!("{addr}\n")),
        }
    }
    out
}

/// Keeps the nodes a node string (`all`, or `0,2`) names; `None` for the current node.
pub fn select_nodes(
    map: &NodeMap,
    nodestring: Option<&str>,
    cmd_pnn: u32,
) -> Result<NodeMap, String> {
    let Some(ns) = nodestring else {
        return Ok(NodeMap {
            nodes: map
                .nodes
                .iter()
                .filter(|n| n.pnn == cmd_pnn)
                .copied()
                .collect(),
        });
    };
    if ns == "all" {
        return Ok(map.clone());
    }
    let mut nodes: Vec<NodeAndFlags> = Vec::new();
    for tok in ns.split(',').filter(|t| !t.is_empty()) {
        let pnn = parse_c_ulong(tok).ok_or_else(|| format!("Invalid node {tok}"))? as u32;
        let n = map
            .nodes
            .iter()
            .find(|n| n.pnn == pnn)
            .ok_or_else(|| format!("Node {pnn} does not exist"))?;
        nodes.push(*n);
    }
    Ok(NodeMap { nodes })
}

/// `strtoul(s, NULL, 0)` for a whole token: decimal, `0x` hex or leading-0 octal.
pub fn parse_c_ulong(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pnn: u32, ip: &str, flags: u32) -> NodeAndFlags {
        NodeAndFlags {
            pnn,
            flags,
            addr: SockAddr::V4(format!("{ip}:4379").parse().unwrap()),
        }
    }

    /// The reference cluster of client-commands.txt.
    fn reference() -> Status {
        Status {
            nodemap: NodeMap {
                nodes: vec![
                    node(0, "127.0.0.1", 0),
                    node(1, "127.0.0.2", 0),
                    node(2, "127.0.0.3", 0),
                ],
            },
            vnnmap: VnnMap {
                generation: 1_734_266_231,
                map: vec![0, 1, 2],
            },
            recmode: 0,
            leader: Some(1),
            partially_online: vec![],
        }
    }

    #[test]
    fn status_matches_samba() {
        let expected = "Number of nodes:3
pnn:0 127.0.0.1        OK (THIS NODE)
pnn:1 127.0.0.2        OK
pnn:2 127.0.0.3        OK
Generation:1734266231
Size:3
hash:0 lmaster:0
hash:1 lmaster:1
hash:2 lmaster:2
Recovery mode:NORMAL (0)
Leader:1
";
        assert_eq!(status_text(&reference(), 0, None), expected);
    }

    #[test]
    fn status_while_banned_matches_samba() {
        let mut s = reference();
        s.nodemap.nodes[2].flags = node::BANNED;
        s.vnnmap.generation = 1_061_821_354;
        let expected = "Number of nodes:3
pnn:0 127.0.0.1        OK (THIS NODE)
pnn:1 127.0.0.2        OK
pnn:2 127.0.0.3        BANNED|INACTIVE
Generation:1061821354
Size:3
hash:0 lmaster:0
hash:1 lmaster:1
hash:2 lmaster:2
Recovery mode:NORMAL (0)
Leader:1
";
        assert_eq!(status_text(&s, 0, None), expected);
    }

    #[test]
    fn machine_status_matches_samba() {
        let expected = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|
|0|127.0.0.1|0|0|0|0|0|0|0|0|Y|
|1|127.0.0.2|0|0|0|0|0|0|0|0|N|
|2|127.0.0.3|0|0|0|0|0|0|0|0|N|
";
        assert_eq!(status_text(&reference(), 0, Some("|")), expected);
    }

    #[test]
    fn invalid_generation_recovery_and_unknown_leader() {
        let mut s = reference();
        s.vnnmap.generation = INVALID_GENERATION;
        s.recmode = 1;
        s.leader = None;
        let text = status_text(&s, 0, None);
        assert!(text.contains("\nGeneration:INVALID\n"));
        assert!(text.contains("\nRecovery mode:RECOVERY (1)\n"));
        assert!(text.ends_with("\nLeader:UNKNOWN\n"));
    }

    #[test]
    fn flags() {
        assert_eq!(flags_text(0), "OK");
        assert_eq!(flags_text(node::DISCONNECTED), "DISCONNECTED|INACTIVE");
        assert_eq!(flags_text(node::PERMANENTLY_DISABLED), "DISABLED");
        assert_eq!(flags_text(node::UNHEALTHY), "UNHEALTHY");
        assert_eq!(flags_text(node::STOPPED), "STOPPED|INACTIVE");
        assert_eq!(
            flags_text(node::PERMANENTLY_DISABLED | node::UNHEALTHY),
            "DISABLED|UNHEALTHY"
        );
    }

    #[test]
    fn deleted_nodes_are_counted_not_shown() {
        let mut s = reference();
        s.nodemap.nodes[1].flags = node::DELETED;
        let text = nodemap_text(&s.nodemap, 0, true, &[]);
        assert_eq!(
            text,
            "Number of nodes:3 (including 1 deleted nodes)
pnn:0 127.0.0.1        OK (THIS NODE)
pnn:2 127.0.0.3        OK
"
        );
    }

    #[test]
    fn nodestatus_matches_samba() {
        let s = reference();
        let one = select_nodes(&s.nodemap, None, 0).unwrap();
        assert_eq!(
            nodestatus_text(&one, 0, false, &[], None),
            "pnn:0 127.0.0.1        OK (THIS NODE)\n"
        );
        let all = select_nodes(&s.nodemap, Some("all"), 0).unwrap();
        assert_eq!(
            nodestatus_text(&all, 0, true, &[], None),
            "Number of nodes:3
pnn:0 127.0.0.1        OK (THIS NODE)
pnn:1 127.0.0.2        OK
pnn:2 127.0.0.3        OK
"
        );
        // `ctdb -n 2 nodestatus`
        let two = select_nodes(&s.nodemap, None, 2).unwrap();
        assert_eq!(
            nodestatus_text(&two, 2, false, &[], None),
            "pnn:2 127.0.0.3        OK (THIS NODE)\n"
        );
        assert_eq!(nodestatus_code(&all), 0);
        let mut banned = s.nodemap.clone();
        banned.nodes[2].flags = node::BANNED;
        assert_eq!(nodestatus_code(&banned), node::BANNED);
        assert_eq!(
            select_nodes(&s.nodemap, Some("0,7"), 0).unwrap_err(),
            "Node 7 does not exist"
        );
        assert_eq!(
            select_nodes(&s.nodemap, Some("0,2"), 0)
                .unwrap()
                .nodes
                .len(),
            2
        );
        assert_eq!(
            select_nodes(&s.nodemap, Some("x"), 0).unwrap_err(),
            "Invalid node x"
        );
    }

    #[test]
    fn partially_online_replaces_flags() {
        let s = reference();
        let text = nodemap_text(&s.nodemap, 0, false, &[1]);
        assert!(text.contains("pnn:1 127.0.0.2        PARTIALLYONLINE\n"));
        let m = nodemap_machine(&s.nodemap, 0, &[1], "|");
        assert!(m.contains("|1|127.0.0.2|0|0|0|0|0|0|0|1|N|\n"));
    }

    #[test]
    fn listnodes_matches_samba() {
        let nodes: Vec<(u32, IpAddr, bool)> = vec![
            (0, "127.0.0.1".parse().unwrap(), false),
            (1, "127.0.0.2".parse().unwrap(), false),
            (2, "127.0.0.3".parse().unwrap(), false),
        ];
        assert_eq!(
            listnodes_text(&nodes, None),
            "127.0.0.1\n127.0.0.2\n127.0.0.3\n"
        );
        assert_eq!(listnodes_text(&nodes[..1], Some("|")), "|0|127.0.0.1|\n");
        let with_deleted = vec![nodes[0], (1, "0.0.0.0".parse().unwrap(), true)];
        assert_eq!(listnodes_text(&with_deleted, None), "127.0.0.1\n");
    }

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_ulong("12"), Some(12));
        assert_eq!(parse_c_ulong("0x1f"), Some(31));
        assert_eq!(parse_c_ulong("010"), Some(8));
        assert_eq!(parse_c_ulong("0"), Some(0));
        assert_eq!(parse_c_ulong("z"), None);
    }
}
