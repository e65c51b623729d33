//! Public address commands: `ip [all]`, `ipinfo`, `ifaces`, `setifacelink`, `moveip`,
//! `addip`, `delip`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::control::{
    AddrInfo, Connection, IfaceList, PublicIp, PublicIpInfo, PublicIpList, SockAddr, TickleList,
};
use ctdb_protocol::flags::{dest, node};
use ctdb_protocol::{srvid, Opcode, Wire};

use ctdb_protocol::control::ip::IFACE_SIZE;

use super::{usage_fail, CmdResult, Ctx, Fail};
use crate::format::ips::{ifaces_text, ip_text, ipinfo_text, sort_key, IpLine};
use crate::{err, out};

/// Samba's `moveip` tries five times, three seconds apart.
const MOVE_TRIES: u32 = 5;
const MOVE_PAUSE: Duration = Duration::from_secs(3);

fn ip_of(addr: &SockAddr) -> Option<IpAddr> {
    addr.socket_addr().map(|a| a.ip())
}

fn sock(addr: IpAddr) -> Vec<u8> {
    SockAddr::from(SocketAddr::new(addr, 0)).to_bytes()
}

/// Samba's get_all_public_ips(): every active node's list; an address is shown on
/// the node that claims it, else with -1.
async fn all_public_ips(ctx: &Ctx<'_>) -> Result<BTreeMap<IpAddr, u32>, Fail> {
    let map = ctx.nodemap().await?;
    let mut all: BTreeMap<IpAddr, u32> = BTreeMap::new();
    for n in map.nodes.iter().filter(|n| n.flags & node::INACTIVE == 0) {
        let list: PublicIpList = ctx
            .typed(n.pnn, Opcode::GetPublicIps, Vec::new())
            .await
            .map_err(|f| Fail::new(f.msg, 1))?;
        for ip in &list.ips {
            let Some(addr) = ip_of(&ip.addr) else {
                continue;
            };
            if ip.pnn == n.pnn {
                all.insert(addr, ip.pnn);
            } else {
                all.entry(addr).or_insert(dest::UNKNOWN_PNN);
            }
        }
    }
    Ok(all)
}

pub(super) async fn ip(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let all = match args {
        [] => false,
        [a] if a == "all" => true,
        _ => return Err(usage_fail("ip")),
    };
    let mut held: Vec<(IpAddr, u32)> = if all {
        all_public_ips(ctx).await?.into_iter().collect()
    } else {
        let list: PublicIpList = ctx
            .typed(ctx.cmd_pnn, Opcode::GetPublicIps, Vec::new())
            .await?;
        list.ips
            .iter()
            .filter_map(|ip| ip_of(&ip.addr).map(|a| (a, ip.pnn)))
            .collect()
    };
    held.sort_by_key(|(a, _)| sort_key(a));
    let mut lines = Vec::new();
    for (addr, pnn) in held {
        let ask = if all { pnn } else { ctx.cmd_pnn };
        // Samba asks each address's details (for -v) of the node that holds it.
        let info = if ask == dest::UNKNOWN_PNN {
            None
        } else {
            Some(
                ctx.typed::<PublicIpInfo>(ask, Opcode::GetPublicIpInfo, sock(addr))
                    .await?,
            )
        };
        lines.push(IpLine { addr, pnn, info });
    }
    let title = (!all).then_some(ctx.cmd_pnn);
    out(&ip_text(&lines, title, ctx.machine(), ctx.opts.verbose));
    Ok(0)
}

/// An address argument, or Samba's complaint about it.
fn ip_arg_of(arg: &str) -> Result<IpAddr, Fail> {
    arg.parse::<IpAddr>()
        .map_err(|_| Fail::new(format!("Invalid IP address {arg}"), 1))
}

pub(super) async fn ipinfo(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [arg] = args else {
        return Err(usage_fail("ipinfo"));
    };
    let addr = ip_arg_of(arg)?;
    let info = ctx
        .typed::<PublicIpInfo>(ctx.cmd_pnn, Opcode::GetPublicIpInfo, sock(addr))
        .await;
    match info {
        Ok(info) => {
            out(&ipinfo_text(&info, addr, ctx.cmd_pnn));
            Ok(0)
        }
        Err(f) => {
            if f.code == -1 {
                out(&format!(
                    "Node {} does not know about IP {arg}\n",
                    ctx.cmd_pnn
                ));
            }
            Err(f)
        }
    }
}

pub(super) async fn ifaces(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    if !args.is_empty() {
        return Err(usage_fail("ifaces"));
    }
    let list: IfaceList = ctx
        .typed(ctx.cmd_pnn, Opcode::GetIfaces, Vec::new())
        .await?;
    out(&ifaces_text(&list.ifaces, ctx.cmd_pnn, ctx.machine()));
    Ok(0)
}

pub(super) async fn moveip(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [ip_arg, pnn_arg] = args else {
        return Err(usage_fail("moveip"));
    };
    let addr = ip_arg_of(ip_arg)?;
    let pnn = match pnn_arg.parse::<u32>() {
        Ok(p) if p != dest::UNKNOWN_PNN => p,
        _ => return Err(Fail::new(format!("Invalid PNN {pnn_arg}"), 1)),
    };
    let mut result = Ok(0);
    for attempt in 0..MOVE_TRIES {
        if attempt > 0 {
            tokio::time::sleep(MOVE_PAUSE).await;
        }
        result = move_once(ctx, addr, pnn).await;
        match &result {
            Ok(_) => return Ok(0),
            // Each failed try says why, as Samba's does.
            Err(f) if !f.msg.is_empty() => err(&format!("{}\n", f.msg)),
            Err(_) => {}
        }
    }
    let code = result.err().map_or(1, |f| f.code);
    Err(Fail::new(
        format!("Failed to move IP {ip_arg} to node {pnn}"),
        code,
    ))
}

/// One try: the target must list the address; every other active node releases it
/// to the target, then the target takes it over.
async fn move_once(ctx: &mut Ctx<'_>, addr: IpAddr, pnn: u32) -> CmdResult {
    // Samba stops the nodes' address checks for twice the time limit meanwhile.
    let secs = (2 * ctx.opts.timelimit.max(1)) as u32;
    ctx.client
        .send_message(
            dest::BROADCAST_CONNECTED,
            srvid::DISABLE_IP_CHECK,
            Bytes::from(secs.to_le_bytes().to_vec()),
        )
        .map_err(|_| Fail::new("Failed to disable IP check", 1))?;
    let list: PublicIpList = ctx
        .typed(pnn, Opcode::GetPublicIps, Vec::new())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to get Public IPs from node {pnn}", f.msg),
                f.code,
            )
        })?;
    if !list.ips.iter().any(|ip| ip_of(&ip.addr) == Some(addr)) {
        return Err(Fail::new(
            format!("Node {pnn} CANNOT host IP address {addr}"),
            1,
        ));
    }
    let map = ctx.nodemap().await?;
    let ip = PublicIp {
        pnn,
        addr: SocketAddr::new(addr, 0).into(),
    };
    for n in map
        .nodes
        .iter()
        .filter(|n| n.pnn != pnn && n.flags & node::INACTIVE == 0)
    {
        ctx.control(n.pnn, Opcode::ReleaseIp, ip.to_bytes())
            .await
            .map_err(|f| Fail::new(format!("{}\nFailed to release IP on nodes", f.msg), f.code))?;
    }
    ctx.control(pnn, Opcode::TakeoverIp, ip.to_bytes())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to takeover IP on node {pnn}", f.msg),
                f.code,
            )
        })?;
    Ok(0)
}

/// Whether node `pnn` lists `addr` among its public addresses.
async fn knows(ctx: &Ctx<'_>, pnn: u32, addr: IpAddr) -> Result<bool, Fail> {
    let list: PublicIpList = ctx
        .typed(pnn, Opcode::GetPublicIps, Vec::new())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to get Public IPs from node {pnn}", f.msg),
                1,
            )
        })?;
    Ok(list.ips.iter().any(|ip| ip_of(&ip.addr) == Some(addr)))
}

pub(super) async fn addip(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [spec, iface] = args else {
        return Err(usage_fail("addip"));
    };
    let parsed = spec
        .split_once('/')
        .and_then(|(a, m)| Some((a.parse::<IpAddr>().ok()?, m.parse::<u32>().ok()?)));
    let Some((addr, mask)) = parsed else {
        return Err(Fail::new(format!("Invalid IP/Mask {spec}"), 1));
    };
    let pnn = ctx.cmd_pnn;
    if knows(ctx, pnn, addr).await? {
        err(&format!("Node already knows about IP {addr}\n"));
        return Ok(0);
    }
    let info = AddrInfo {
        addr: SocketAddr::new(addr, 0).into(),
        mask,
        iface: Some(iface.clone()),
    };
    let mut added = Err(Fail::quiet(1));
    for attempt in 0..MOVE_TRIES {
        if attempt > 0 {
            tokio::time::sleep(MOVE_PAUSE).await;
        }
        added = ctx.control(pnn, Opcode::AddPublicIp, info.to_bytes()).await;
        match &added {
            Ok(_) => break,
            Err(f) => err(&format!("{}\n", f.msg)),
        }
    }
    if let Err(f) = added {
        return Err(Fail::new(
            format!("Failed to add public IP to node {pnn}. Giving up"),
            f.code,
        ));
    }
    // Samba's tool then asks the leader to give the node its share.
    ctx.client
        .send_message(
            dest::BROADCAST_CONNECTED,
            srvid::samba::REBALANCE_NODE,
            Bytes::from(pnn.to_le_bytes().to_vec()),
        )
        .map_err(|_| Fail::new("Failed to ask recovery master to distribute IPs", 1))?;
    Ok(0)
}

pub(super) async fn delip(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [arg] = args else {
        return Err(usage_fail("delip"));
    };
    let addr = ip_arg_of(arg)?;
    let pnn = ctx.cmd_pnn;
    if !knows(ctx, pnn, addr).await? {
        err(&format!("Node does not know about IP address {addr}\n"));
        return Ok(0);
    }
    let info = AddrInfo {
        addr: SocketAddr::new(addr, 0).into(),
        mask: 0,
        iface: None,
    };
    ctx.control(pnn, Opcode::DelPublicIp, info.to_bytes())
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to delete public IP from node {pnn}", f.msg),
                f.code,
            )
        })?;
    Ok(0)
}

pub(super) async fn setifacelink(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [name, state] = args else {
        return Err(usage_fail("setifacelink"));
    };
    if name.len() > IFACE_SIZE {
        return Err(Fail::new(format!("Interface name '{name}' too long"), 1));
    }
    let pnn = ctx.cmd_pnn;
    let list: IfaceList = ctx
        .typed(pnn, Opcode::GetIfaces, Vec::new())
        .await
        .map_err(|f| {
            Fail::new(
                format!(
                    "{}\nFailed to get interface information from node {pnn}",
                    f.msg
                ),
                f.code,
            )
        })?;
    let Some(mut iface) = list.ifaces.into_iter().find(|i| &i.name == name) else {
        out(&format!("Interface {name} not configured on node {pnn}\n"));
        return Err(Fail::quiet(1));
    };
    iface.link_state = match state.as_str() {
        "up" => 1,
        "down" => 0,
        _ => return Err(usage_fail("setifacelink")),
    };
    iface.references = 0;
    ctx.control(pnn, Opcode::SetIfaceLinkState, iface.to_bytes())
        .await?;
    Ok(0)
}

/// An `IP:PORT` argument (`[IPv6]:PORT` for IPv6).
fn sock_arg_of(arg: &str) -> Result<SocketAddr, Fail> {
    arg.parse::<SocketAddr>()
        .map_err(|_| Fail::new(format!("Invalid IP address {arg}"), 1))
}

/// `gettickles <ip> [<port>]`: the connections the node keeps for a public address
/// (to one port only when given), as Samba prints them.
pub(super) async fn gettickles(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    if args.is_empty() || args.len() > 2 {
        return Err(usage_fail("gettickles"));
    }
    let port = match args.get(1) {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| Fail::new(format!("Invalid port {p}"), 1))?,
        None => 0,
    };
    let addr = ip_arg_of(&args[0])?;
    let request = SockAddr::from(SocketAddr::new(addr, port)).to_bytes();
    let list: TickleList = ctx
        .typed(ctx.cmd_pnn, Opcode::GetTcpTickleList, request)
        .await
        .map_err(|f| {
            Fail::new(
                format!("{}\nFailed to get list of connections", f.msg),
                f.code,
            )
        })?;
    let ip = |a: &SockAddr| {
        a.socket_addr()
            .map(|s| s.ip().to_string())
            .unwrap_or_default()
    };
    let port_of = |a: &SockAddr| a.socket_addr().map_or(0, |s| s.port());
    let with_port = |a: &SockAddr| a.socket_addr().map(|s| s.to_string()).unwrap_or_default();
    let mut text = String::new();
    if let Some(sep) = ctx.machine() {
        text += &format!("{sep}Source IP{sep}Port{sep}Destiation IP{sep}Port{sep}\n");
        for c in &list.connections {
            text += &format!(
                "{sep}{}{sep}{}{sep}{}{sep}{}{sep}\n",
                ip(&c.src),
                port_of(&c.src),
                ip(&c.dst),
                port_of(&c.dst)
            );
        }
    } else {
        text += &format!("Connections for IP: {}\n", ip(&list.addr));
        text += &format!("Num connections: {}\n", list.connections.len());
        for c in &list.connections {
            text += &format!("SRC: {}   DST: {}\n", with_port(&c.src), with_port(&c.dst));
        }
    }
    out(&text);
    Ok(0)
}

/// `addtickle <ip>:<port> <ip>:<port>` / `deltickle ...`: registers or removes a
/// connection (client first, then the public address) with the node.
pub(super) async fn tickle_change(ctx: &mut Ctx<'_>, command: &str, args: &[String]) -> CmdResult {
    let [src, dst] = args else {
        return Err(usage_fail(command));
    };
    let conn = Connection {
        src: SockAddr::from(sock_arg_of(src)?),
        dst: SockAddr::from(sock_arg_of(dst)?),
    };
    let (opcode, failed) = if command == "addtickle" {
        (Opcode::TcpAddDelayedUpdate, "Failed to register connection")
    } else {
        (Opcode::TcpRemove, "Failed to unregister connection")
    };
    ctx.control(ctx.cmd_pnn, opcode, conn.to_bytes())
        .await
        .map_err(|f| Fail::new(format!("{}\n{failed}", f.msg), f.code))?;
    Ok(0)
}

/// `gratarp <ip> <iface>`: the node announces the address on the interface (in the
/// background: an interface it does not have is only logged there, as Samba's).
pub(super) async fn gratarp(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [ip, iface] = args else {
        return Err(usage_fail("gratarp"));
    };
    let addr = ip_arg_of(ip)?;
    let pnn = ctx.cmd_pnn;
    let info = AddrInfo {
        addr: SocketAddr::new(addr, 0).into(),
        mask: 0,
        iface: Some(iface.clone()),
    };
    ctx.control(pnn, Opcode::SendGratiousArp, info.to_bytes())
        .await
        .map_err(|f| {
            Fail::new(
                format!(
                    "{}\nUnable to send gratuitous arp from node {pnn} for {ip}",
                    f.msg
                ),
                f.code,
            )
        })?;
    Ok(0)
}

/// `tickle <srcip:port> <dstip:port>`, or connections one per line on stdin: this tool
/// sends each client (the source) a tickle ACK from the server (the destination), so
/// the client's stack resets a connection the server no longer knows. No daemon is
/// involved; a raw socket needs CAP_NET_RAW.
pub(super) fn tickle(args: &[String]) -> CmdResult {
    let pairs: Vec<(SocketAddr, SocketAddr)> = match args {
        [src, dst] => vec![(sock_arg_of(src)?, sock_arg_of(dst)?)],
        [] => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Fail::new(format!("Failed to read connections: {e}"), 1))?;
            let mut pairs = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                let mut words = line.split_whitespace();
                match (words.next(), words.next()) {
                    (Some(src), Some(dst)) => pairs.push((sock_arg_of(src)?, sock_arg_of(dst)?)),
                    _ => return Err(Fail::new(format!("Invalid connection {line:?}"), 1)),
                }
            }
            pairs
        }
        _ => return Err(usage_fail("tickle")),
    };
    let single = pairs.len() == 1 && !args.is_empty();
    let failed = pairs
        .iter()
        .filter(|(client, server)| ctdb_common::tickle_ack::send(*server, *client).is_err())
        .count();
    match failed {
        0 => Ok(0),
        _ if single => Err(Fail::new("Failed to send tickle ack", 1)),
        n => Err(Fail::new(format!("Failed to send {n} tickles"), 1)),
    }
}
