//! `ip`, `ipinfo` and `ifaces`, as Samba 4.17's tool prints them.

use std::net::IpAddr;

use ctdb_protocol::control::{Iface, PublicIpInfo};

use super::Machine;

/// One line of `ctdb ip`: the address, the node holding it, and (for `-v`) its
/// details when known.
#[derive(Debug, Clone)]
pub struct IpLine {
    pub addr: IpAddr,
    pub pnn: u32,
    pub info: Option<PublicIpInfo>,
}

/// Samba sorts by `ctdb_sock_addr_cmp`: family (IPv4 first), then address bytes.
pub fn sort_key(addr: &IpAddr) -> (u8, Vec<u8>) {
    match addr {
        IpAddr::V4(a) => (0, a.octets().to_vec()),
        IpAddr::V6(a) => (1, a.octets().to_vec()),
    }
}

fn join(ifaces: &[&Iface]) -> String {
    ifaces
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `ctdb ip [all]`; `cmd_pnn` names the node in the title (None: all nodes).
pub fn ip_text(lines: &[IpLine], cmd_pnn: Option<u32>, machine: Machine, verbose: bool) -> String {
    let mut s = String::new();
    match (machine, cmd_pnn) {
        (Some(sep), _) => {
            s.push_str(&format!("{sep}Public IP{sep}Node{sep}"));
            if verbose {
                s.push_str(&format!(
                    "ActiveInterfaces{sep}AvailableInterfaces{sep}ConfiguredInterfaces{sep}"
                ));
            }
            s.push('\n');
        }
        (None, None) => s.push_str("Public IPs on ALL nodes\n"),
        (None, Some(p)) => s.push_str(&format!("Public IPs on node {p}\n")),
    }
    for l in lines {
        let pnn = l.pnn as i32;
        match machine {
            Some(sep) => s.push_str(&format!("{sep}{}{sep}{pnn}{sep}", l.addr)),
            None => s.push_str(&l.addr.to_string()),
        }
        if !verbose {
            if machine.is_some() {
                s.push('\n');
            } else {
                s.push_str(&format!(" {pnn}\n"));
            }
            continue;
        }
        let (mut active, mut avail, mut conf) = (String::new(), String::new(), String::new());
        if let Some(info) = &l.info {
            let all: Vec<&Iface> = info.ifaces.iter().collect();
            let up: Vec<&Iface> = info.ifaces.iter().filter(|i| i.link_state != 0).collect();
            conf = join(&all);
            avail = join(&up);
            if let Some(i) = info.ifaces.get(info.active_idx as usize) {
                active = i.name.clone();
            }
        }
        match machine {
            Some(sep) => s.push_str(&format!("{active}{sep}{avail}{sep}{conf}{sep}\n")),
            None => s.push_str(&format!(
                " node[{pnn}] active[{active}] available[{avail}] configured[{conf}]\n"
            )),
        }
    }
    s
}

/// `ctdb ipinfo ADDR`.
pub fn ipinfo_text(info: &PublicIpInfo, addr: IpAddr, cmd_pnn: u32) -> String {
    let mut s = format!(
        "Public IP[{addr}] info on node {cmd_pnn}\nIP:{addr}\nCurrentNode:{}\nNumInterfaces:{}\n",
        info.ip.pnn,
        info.ifaces.len()
    );
    for (i, iface) in info.ifaces.iter().enumerate() {
        s.push_str(&format!(
            "Interface[{}]: Name:{} Link:{} References:{}{}\n",
            i + 1,
            iface.name,
            if iface.link_state == 0 { "down" } else { "up" },
            iface.references,
            if i as u32 == info.active_idx {
                " (active)"
            } else {
                ""
            }
        ));
    }
    s
}

/// `ctdb ifaces`.
pub fn ifaces_text(ifaces: &[Iface], cmd_pnn: u32, machine: Machine) -> String {
    if ifaces.is_empty() {
        return format!("No interfaces configured on node {cmd_pnn}\n");
    }
    let mut s = match machine {
        Some(sep) => format!("{sep}Name{sep}LinkStatus{sep}References{sep}\n"),
        None => format!("Interfaces on node {cmd_pnn}\n"),
    };
    for i in ifaces {
        match machine {
            Some(sep) => s.push_str(&format!(
                "{sep}{}{sep}{}{sep}{}{sep}\n",
                i.name, i.link_state, i.references
            )),
            None => s.push_str(&format!(
                "name:{} link:{} references:{}\n",
                i.name,
                if i.link_state != 0 { "up" } else { "down" },
                i.references
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use ctdb_protocol::control::PublicIp;

    use super::*;

    fn lo() -> Iface {
        Iface {
            name: "lo".into(),
            link_state: 1,
            references: 0,
        }
    }

    fn addr() -> IpAddr {
        "10.250.0.1".parse().expect("ip")
    }

    #[test]
    fn ip_matches_samba() {
        // client-commands.txt [ip], [ip all], [ip all (after addip)].
        assert_eq!(ip_text(&[], Some(0), None, false), "Public IPs on node 0\n");
        assert_eq!(ip_text(&[], None, None, false), "Public IPs on ALL nodes\n");
        let line = IpLine {
            addr: addr(),
            pnn: u32::MAX,
            info: None,
        };
        assert_eq!(
            ip_text(std::slice::from_ref(&line), None, None, false),
            "Public IPs on ALL nodes\n10.250.0.1 -1\n"
        );
        assert_eq!(
            ip_text(&[line], None, Some("|"), false),
            "|Public IP|Node|\n|10.250.0.1|-1|\n"
        );
    }

    #[test]
    fn ip_verbose_names_the_interfaces() {
        let info = PublicIpInfo {
            ip: PublicIp {
                pnn: 1,
                addr: SocketAddr::new(addr(), 0).into(),
            },
            active_idx: 0,
            ifaces: vec![
                lo(),
                Iface {
                    name: "eth1".into(),
                    link_state: 0,
                    references: 0,
                },
            ],
        };
        let line = IpLine {
            addr: addr(),
            pnn: 1,
            info: Some(info),
        };
        assert_eq!(
            ip_text(&[line], Some(1), None, true),
            "Public IPs on node 1\n10.250.0.1 node[1] active[lo] available[lo] configured[lo,eth1]\n"
        );
    }

    #[test]
    fn ipinfo_and_ifaces_match_samba() {
        // client-commands.txt [ipinfo] and [ifaces (after addip)], [ifaces].
        let info = PublicIpInfo {
            ip: PublicIp {
                pnn: u32::MAX,
                addr: SocketAddr::new(addr(), 0).into(),
            },
            active_idx: u32::MAX,
            ifaces: vec![lo()],
        };
        assert_eq!(
            ipinfo_text(&info, addr(), 0),
            "Public IP[10.250.0.1] info on node 0\nIP:10.250.0.1\nCurrentNode:4294967295\n\
             NumInterfaces:1\nInterface[1]: Name:lo Link:up References:0\n"
        );
        assert_eq!(
            ifaces_text(&[lo()], 0, None),
            "Interfaces on node 0\nname:lo link:up references:0\n"
        );
        assert_eq!(
            ifaces_text(&[], 0, None),
            "No interfaces configured on node 0\n"
        );
        assert_eq!(
            ifaces_text(&[lo()], 0, Some("|")),
            "|Name|LinkStatus|References|\n|lo|1|0|\n"
        );
    }
}
