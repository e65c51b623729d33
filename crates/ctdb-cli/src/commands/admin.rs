//! `process-exists`, `detach`, `dumpmemory`, `rddumpmemory`, `setdbreadonly`,
//! `setdbsticky`, `dbstatistics`, `setlmasterrole`, `setleaderrole` and
//! `checktcpport`: single controls (or one message) with Samba 4.17's argument checks,
//! messages and exit codes.

use bytes::Bytes;
use ctdb_protocol::control::{DbStatistics, PidSrvid, TunableName};
use ctdb_protocol::flags::{db, node, recmode};
use ctdb_protocol::{srvid, Opcode, Wire};

use super::nodectl::{reply_srvid, send_message};
use super::records::find_db;
use super::{usage_fail, CmdResult, Ctx, Fail, EMSGSIZE};
use crate::format::dbs::dbstatistics_text;
use crate::format::misc::process_exists_text;
use crate::messages::{c_atoi, smb_strtoul, srvid_message};
use crate::{err, out, out_bytes};

/// `ctdb process-exists <pid> [<srvid>]`: the exit code is the daemon's answer.
pub(super) async fn process_exists(ctx: &Ctx<'_>, args: &[String]) -> CmdResult {
    if args.is_empty() || args.len() > 2 {
        return Err(usage_fail("process-exists"));
    }
    let pid = c_atoi(&args[0]);
    // A srvid that is no number ends the command with the parser's error, silently.
    let srvid = match args.get(1) {
        Some(s) => smb_strtoul(s).map_err(Fail::quiet)?,
        None => 0,
    };
    let (opcode, data) = if srvid == 0 {
        (Opcode::ProcessExists, pid.to_bytes())
    } else {
        (Opcode::CheckPidSrvid, PidSrvid { pid, srvid }.to_bytes())
    };
    let reply = ctx
        .client
        .control_raw(ctx.cmd_pnn, opcode, 0, Bytes::from(data), ctx.timeout)
        .await
        .map_err(|e| ctx.transport_fail(opcode, ctx.cmd_pnn, &e))?;
    out(&process_exists_text(pid, srvid, reply.status));
    Ok(reply.status)
}

/// `ctdb detach <db> ...`: only with recovery over, every active node refusing new
/// client attaches, and only volatile databases.
pub(super) async fn detach(ctx: &mut Ctx<'_>, args: &[String]) -> CmdResult {
    if args.is_empty() {
        return Err(usage_fail("detach"));
    }
    let mode = ctx.control_status(ctx.cmd_pnn, Opcode::GetRecmode).await?;
    if mode as u32 == recmode::ACTIVE {
        return Err(Fail::new(
            "Database cannot be detached when recovery is active",
            1,
        ));
    }
    let map = ctx.nodemap().await?;
    for n in &map.nodes {
        if n.flags & (node::DISCONNECTED | node::DELETED) != 0 {
            continue;
        }
        if n.flags & node::INACTIVE != 0 {
            return Err(Fail::new(
                format!(
                    "Database cannot be detached on inactive (stopped or banned) node {}",
                    n.pnn
                ),
                1,
            ));
        }
        let value: u32 = ctx
            .typed(
                n.pnn,
                Opcode::GetTunable,
                TunableName("AllowClientDBAttach".to_string()).to_bytes(),
            )
            .await
            .map_err(|f| {
                Fail::new(
                    format!(
                        "{}\nUnable to get tunable AllowClientDBAttach from node {}",
                        f.msg, n.pnn
                    ),
                    f.code,
                )
            })?;
        if value == 1 {
            return Err(Fail::new(
                format!(
                    "Database access is still active on node {}. Set AllowclientDBAttach=0 on all nodes.",
                    n.pnn
                ),
                1,
            ));
        }
    }
    let mut code = 0;
    for arg in args {
        let d = match find_db(ctx, arg).await {
            Ok(d) => d,
            Err(f) => {
                err(&format!("{}\n", f.msg));
                continue;
            }
        };
        if !d.volatile() {
            return Err(Fail::new("Only volatile databases can be detached", 1));
        }
        // Samba's client library words its failures with the database's name.
        let why = match ctx
            .client
            .control_raw(
                ctx.pnn,
                Opcode::DbDetach,
                0,
                Bytes::from(d.id.to_bytes()),
                ctx.timeout,
            )
            .await
        {
            Ok(r) if r.status == 0 => None,
            Ok(r) => Some((format!("DB_DETACH failed, ret={}", r.status), r.status)),
            Err(e) => {
                let f = ctx.transport_fail(Opcode::DbDetach, ctx.pnn, &e);
                Some((format!("control failed, ret={}", f.code), f.code))
            }
        };
        if let Some((what, ret)) = why {
            err(&format!(
                "detach: {} {what}\nDatabase {} detach failed\n",
                d.name, d.name
            ));
            code = ret;
        }
    }
    Ok(code)
}

/// `ctdb dumpmemory`: the daemon's memory report, as a C string (up to its NUL, which
/// 4.17 leaves out).
pub(super) async fn dumpmemory(ctx: &Ctx<'_>) -> CmdResult {
    let data = ctx
        .control(ctx.cmd_pnn, Opcode::DumpMemory, Vec::new())
        .await?;
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    out_bytes(&data[..end]);
    Ok(0)
}

/// `ctdb rddumpmemory`: asks the recovery daemon for its memory report and prints
/// the answer as it comes. Like Samba, waits for it as long as the tool may run.
pub(super) async fn rddumpmemory(ctx: &mut Ctx<'_>) -> CmdResult {
    let (id, mut rx) = reply_srvid(ctx).await?;
    send_message(
        ctx,
        ctx.cmd_pnn,
        srvid::MEM_DUMP,
        srvid_message(ctx.pnn, id),
    )?;
    if let Some(m) = rx.recv().await {
        // The report is a C string: up to its NUL.
        let end = m.data.iter().position(|&b| b == 0).unwrap_or(m.data.len());
        out_bytes(&m.data[..end]);
    }
    let _ = ctx.client.deregister_srvid(id).await;
    Ok(0)
}

/// `ctdb setdbreadonly|setdbsticky <db>`: volatile databases only.
pub(super) async fn set_db_flag(ctx: &Ctx<'_>, command: &str, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(usage_fail(command));
    }
    let (opcode, what) = if command == "setdbsticky" {
        (Opcode::SetDbSticky, "STICKY")
    } else {
        (Opcode::SetDbReadonly, "READONLY")
    };
    let d = find_db(ctx, &args[0]).await?;
    if d.flags & (db::PERSISTENT | db::REPLICATED) != 0 {
        return Err(Fail::new(
            format!("{what} can be set only on volatile DB"),
            1,
        ));
    }
    ctx.control(ctx.cmd_pnn, opcode, d.id.to_bytes()).await?;
    Ok(0)
}

/// `ctdb dbstatistics <db>`.
pub(super) async fn dbstatistics(ctx: &Ctx<'_>, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(usage_fail("dbstatistics"));
    }
    let d = find_db(ctx, &args[0]).await?;
    let opcode = Opcode::GetDbStatistics;
    let stats = match ctx.control(ctx.cmd_pnn, opcode, d.id.to_bytes()).await {
        Ok(data) => DbStatistics::from_bytes(&data).map_err(|_| {
            Fail::new(
                format!(
                    "Control GET_DB_STATISTICS failed to node {}, ret={EMSGSIZE}",
                    ctx.cmd_pnn
                ),
                EMSGSIZE,
            )
        }),
        Err(f) => Err(f),
    }
    .map_err(|f| {
        Fail::new(
            format!("{}\nFailed to get statistics for DB {}", f.msg, d.name),
            f.code,
        )
    })?;
    out(&dbstatistics_text(&d.name, &stats));
    Ok(0)
}

/// `ctdb setlmasterrole|setleaderrole on|off`.
pub(super) async fn set_role(ctx: &Ctx<'_>, command: &str, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(usage_fail(command));
    }
    let on: u32 = match args[0].as_str() {
        "on" => 1,
        "off" => 0,
        _ => return Err(usage_fail(command)),
    };
    let opcode = if command == "setleaderrole" {
        Opcode::SetRecmasterrole
    } else {
        Opcode::SetLmasterrole
    };
    ctx.control(ctx.cmd_pnn, opcode, on.to_bytes()).await?;
    Ok(0)
}

/// `ctdb checktcpport <port>`: whether a TCP socket can be bound to the port on
/// every IPv4 address (no SO_REUSEADDR, as Samba); exits with the bind's errno.
pub(super) fn checktcpport(args: &[String]) -> CmdResult {
    if args.len() != 1 {
        // Samba asks for the usage of "chktcpport", a name it does not know: the
        // whole usage.
        return Err(usage_fail("chktcpport"));
    }
    // atoi() into an unsigned int; htons() keeps the low 16 bits.
    let port = c_atoi(&args[0]) as u32;
    let errno = |e: &std::io::Error| e.raw_os_error().unwrap_or(1);
    let socket = match tokio::net::TcpSocket::new_v4() {
        Ok(s) => s,
        Err(e) => return Err(Fail::new("Failed to open local socket", errno(&e))),
    };
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port as u16));
    match socket.bind(addr) {
        Ok(()) => Ok(0),
        Err(e) => Err(Fail::new(
            format!("Failed to bind to TCP port {port}"),
            errno(&e),
        )),
    }
}

/// Where Samba's Debian package installs its helper programs (`CTDB_HELPER_BINDIR`).
const HELPER_BINDIR: &str = "/usr/libexec/ctdb";
const EINTR: i32 = 4;

/// `ctdb lvs|natgw leader|list|status`: runs Samba's helper for it (`CTDB_LVS_HELPER`
/// or `CTDB_NATGW_HELPER`, else `ctdb_lvs`/`ctdb_natgw` in the helper directory) with
/// the argument, and answers with its exit code. A helper exiting with 64 + n (as a
/// helper that cannot run does) means error n.
pub(super) async fn helper(command: &str, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(usage_fail(command));
    }
    let (var, program, desc) = if command == "natgw" {
        ("CTDB_NATGW_HELPER", "ctdb_natgw", "NAT gateway helper")
    } else {
        ("CTDB_LVS_HELPER", "ctdb_lvs", "LVS helper")
    };
    let path = std::env::var(var).unwrap_or_else(|_| format!("{HELPER_BINDIR}/{program}"));
    let status = match tokio::process::Command::new(&path)
        .args(args)
        .status()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            // Samba's child exits with 64 + errno when exec fails.
            let n = e.raw_os_error().unwrap_or(8);
            return Err(Fail::new(format!("{desc} failed with error {n}"), n));
        }
    };
    if let Some(code) = status.code() {
        if (64..255).contains(&code) {
            return Err(Fail::new(
                format!("{desc} failed with error {}", code - 64),
                code - 64,
            ));
        }
        return Ok(code);
    }
    let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
    Err(Fail::new(
        format!("{desc} terminated with signal {signal}"),
        EINTR,
    ))
}
