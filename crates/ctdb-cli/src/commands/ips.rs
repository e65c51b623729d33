//! Public address commands: `ip [all]`, `ipinfo`, `ifaces`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ctdb_protocol::control::{IfaceList, PublicIpInfo, PublicIpList, SockAddr};
use ctdb_protocol::flags::{dest, node};
use ctdb_protocol::{Opcode, Wire};

use super::{usage_fail, CmdResult, Ctx, Fail};
use crate::format::ips::{ifaces_text, ip_text, ipinfo_text, sort_key, IpLine};
use crate::out;

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

pub(super) async fn ipinfo(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    let [arg] = args else {
        return Err(usage_fail("ipinfo"));
    };
    let Ok(addr) = arg.parse::<IpAddr>() else {
        return Err(Fail::new(format!("Invalid IP address {arg}"), 1));
    };
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
