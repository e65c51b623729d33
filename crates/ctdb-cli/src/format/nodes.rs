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

/// A node as the nodes file lists it: (pnn, address, deleted).
pub type FileNode = (u32, IpAddr, bool);

/// What `disable`/`enable`/`stop`/`continue`/`ban`/`unban` print (on stderr, exit 0)
/// when the node already is in the wanted state: `desc` is `disabled`, `stopped` or
/// `banned`; `set` whether the command sets the flag.
pub fn already_text(pnn: u32, desc: &str, set: bool) -> String {
    if set {
        format!("Node {pnn} is already {desc}")
    } else {
        format!("Node {pnn} is not {desc}")
    }
}

/// Whether a node's nodes file (GET_NODES_FILE) lists the same nodes as ours.
///
/// Samba compares every flag; its daemons answer with the file's flags only (0 or
/// DELETED), so only the DELETED bit is compared here, which also suits a daemon
/// answering with its live node map. Deleted nodes need no matching address.
pub fn nodes_file_identical(file: &[FileNode], remote: &NodeMap) -> bool {
    file.len() == remote.nodes.len()
        && file
            .iter()
            .zip(&remote.nodes)
            .all(|(&(pnn, ip, deleted), r)| {
                let r_deleted = r.flags & node::DELETED != 0;
                pnn == r.pnn
                    && deleted == r_deleted
                    && (deleted || r.addr.socket_addr().map(|a| a.ip()) == Some(ip))
            })
}

/// The verdict of comparing the running node map with the nodes file (`reloadnodes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodesFileChanges {
    pub stdout: String,
    pub stderr: String,
    /// Some node is new, deleted or undeleted: the nodes must reload the file.
    pub reload: bool,
    /// A change that cannot be applied: nothing is reloaded.
    pub failed: bool,
}

/// Samba's check of a nodes file against the running node map: changed addresses and
/// still-connected deleted nodes are errors; deleted, undeleted and new nodes call
/// for a reload.
pub fn nodes_file_changes(map: &NodeMap, file: &[FileNode]) -> NodesFileChanges {
    let mut c = NodesFileChanges::default();
    let line = |s: &mut String, l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    for (i, n) in map.nodes.iter().enumerate() {
        let Some(&(_, ip, file_deleted)) = file.get(i) else {
            line(
                &mut c.stderr,
                format!(
                    "Node {} ({}) missing from nodes file",
                    n.pnn,
                    addr_text(&n.addr)
                ),
            );
            c.failed = true;
            continue;
        };
        let deleted = n.flags & node::DELETED != 0;
        match (deleted, file_deleted) {
            (true, true) => {}
            (false, false) => {
                if n.addr.socket_addr().map(|a| a.ip()) != Some(ip) {
                    line(
                        &mut c.stderr,
                        format!(
                            "Node {} has changed IP address (was {}, now {ip})",
                            n.pnn,
                            addr_text(&n.addr)
                        ),
                    );
                    c.failed = true;
                } else if n.flags & node::DISCONNECTED != 0 {
                    line(
                        &mut c.stderr,
                        format!(
                            "WARNING: Node {} is disconnected. You MUST fix this node manually!",
                            n.pnn
                        ),
                    );
                }
            }
            (false, true) => {
                line(&mut c.stdout, format!("Node {} is DELETED", n.pnn));
                c.reload = true;
                if n.flags & node::DISCONNECTED == 0 {
                    line(
                        &mut c.stderr,
                        format!("ERROR: Node {} is still connected", n.pnn),
                    );
                    c.failed = true;
                }
            }
            (true, false) => {
                line(&mut c.stdout, format!("Node {} is UNDELETED", n.pnn));
                c.reload = true;
            }
        }
    }
    if c.failed {
        line(
            &mut c.stderr,
            "ERROR: Nodes will not be reloaded due to previous error".to_string(),
        );
        return c;
    }
    for &(pnn, _, _) in file.iter().skip(map.nodes.len()) {
        line(&mut c.stdout, format!("Node {pnn} is NEW"));
        c.reload = true;
    }
    c
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

    /// Every state `disable`, `stop`, `ban` and a lost connection leave a node in.
    #[test]
    fn status_with_every_node_state() {
        let mut s = reference();
        s.nodemap.nodes.push(node(3, "127.0.0.4", 0));
        s.nodemap.nodes.push(node(4, "127.0.0.5", 0));
        s.nodemap.nodes[1].flags = node::PERMANENTLY_DISABLED;
        s.nodemap.nodes[2].flags = node::BANNED;
        s.nodemap.nodes[3].flags = node::STOPPED;
        s.nodemap.nodes[4].flags = node::DISCONNECTED | node::UNHEALTHY;
        s.vnnmap = VnnMap {
            generation: INVALID_GENERATION,
            map: vec![0, 1],
        };
        s.recmode = recmode::ACTIVE;
        let expected = "Number of nodes:5
pnn:0 127.0.0.1        OK (THIS NODE)
pnn:1 127.0.0.2        DISABLED
pnn:2 127.0.0.3        BANNED|INACTIVE
pnn:3 127.0.0.4        STOPPED|INACTIVE
pnn:4 127.0.0.5        DISCONNECTED|UNHEALTHY|INACTIVE
Generation:INVALID
Size:2
hash:0 lmaster:0
hash:1 lmaster:1
Recovery mode:RECOVERY (1)
Leader:1
";
        assert_eq!(status_text(&s, 0, None), expected);
        let machine = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|
|0|127.0.0.1|0|0|0|0|0|0|0|0|Y|
|1|127.0.0.2|0|0|0|1|0|0|0|0|N|
|2|127.0.0.3|0|0|1|0|0|0|1|0|N|
|3|127.0.0.4|0|0|0|0|0|1|1|0|N|
|4|127.0.0.5|1|0|0|0|1|0|1|0|N|
";
        assert_eq!(status_text(&s, 0, Some("|")), machine);
        // nodestatus's exit code is the OR of the flags shown.
        assert_eq!(
            nodestatus_code(&s.nodemap),
            node::PERMANENTLY_DISABLED
                | node::BANNED
                | node::STOPPED
                | node::DISCONNECTED
                | node::UNHEALTHY
        );
        // A node both disabled and banned, and one stopped while unhealthy.
        assert_eq!(
            flags_text(node::PERMANENTLY_DISABLED | node::BANNED),
            "DISABLED|BANNED|INACTIVE"
        );
        assert_eq!(
            flags_text(node::UNHEALTHY | node::STOPPED),
            "UNHEALTHY|STOPPED|INACTIVE"
        );
    }

    #[test]
    fn already_in_state_messages() {
        assert_eq!(
            already_text(2, "disabled", true),
            "Node 2 is already disabled"
        );
        assert_eq!(already_text(2, "stopped", false), "Node 2 is not stopped");
        assert_eq!(already_text(0, "banned", true), "Node 0 is already banned");
    }

    fn file(entries: &[(&str, bool)]) -> Vec<FileNode> {
        entries
            .iter()
            .enumerate()
            .map(|(i, &(ip, deleted))| (i as u32, ip.parse().unwrap(), deleted))
            .collect()
    }

    #[test]
    fn nodes_file_unchanged() {
        let s = reference();
        let f = file(&[
            ("127.0.0.1", false),
            ("127.0.0.2", false),
            ("127.0.0.3", false),
        ]);
        assert!(nodes_file_identical(&f, &s.nodemap));
        assert_eq!(
            nodes_file_changes(&s.nodemap, &f),
            NodesFileChanges::default()
        );
        // Live flags other than DELETED do not make a node's file differ.
        let mut live = s.nodemap.clone();
        live.nodes[2].flags = node::BANNED;
        assert!(nodes_file_identical(&f, &live));
        assert!(!nodes_file_identical(&f[..2], &live));
        let moved = file(&[
            ("127.0.0.1", false),
            ("127.0.0.9", false),
            ("127.0.0.3", false),
        ]);
        assert!(!nodes_file_identical(&moved, &live));
    }

    #[test]
    fn nodes_file_new_deleted_and_changed() {
        let mut map = reference().nodemap;
        // A new node at the end, node 2 deleted while disconnected.
        map.nodes[2].flags = node::DISCONNECTED;
        let f = file(&[
            ("127.0.0.1", false),
            ("127.0.0.2", false),
            ("0.0.0.0", true),
            ("127.0.0.4", false),
        ]);
        let c = nodes_file_changes(&map, &f);
        assert_eq!(c.stdout, "Node 2 is DELETED\nNode 3 is NEW\n");
        assert_eq!((c.stderr.as_str(), c.reload, c.failed), ("", true, false));

        // Deleting a node that is still connected, and moving one: refused.
        let map = reference().nodemap;
        let f = file(&[
            ("127.0.0.1", false),
            ("127.0.0.7", false),
            ("0.0.0.0", true),
        ]);
        let c = nodes_file_changes(&map, &f);
        assert_eq!(c.stdout, "Node 2 is DELETED\n");
        assert_eq!(
            c.stderr,
            "Node 1 has changed IP address (was 127.0.0.2, now 127.0.0.7)
ERROR: Node 2 is still connected
ERROR: Nodes will not be reloaded due to previous error
"
        );
        assert!(c.failed);

        // A node missing from the file; an undeleted node.
        let mut map = reference().nodemap;
        map.nodes[1].flags = node::DELETED | node::DISCONNECTED;
        let f = file(&[("127.0.0.1", false), ("127.0.0.2", false)]);
        let c = nodes_file_changes(&map, &f);
        assert_eq!(c.stdout, "Node 1 is UNDELETED\n");
        assert!(c
            .stderr
            .starts_with("Node 2 (127.0.0.3) missing from nodes file\n"));
        assert!(c.failed);

        // A disconnected node that stays: a warning only.
        let mut map = reference().nodemap;
        map.nodes[0].flags = node::DISCONNECTED;
        let f = file(&[
            ("127.0.0.1", false),
            ("127.0.0.2", false),
            ("127.0.0.3", false),
        ]);
        let c = nodes_file_changes(&map, &f);
        assert_eq!(
            c.stderr,
            "WARNING: Node 0 is disconnected. You MUST fix this node manually!\n"
        );
        assert!(!c.reload && !c.failed);
    }
}
