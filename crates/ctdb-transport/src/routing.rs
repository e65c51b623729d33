//! Who owns which control: the one table transport routes by (DESIGN.md).

use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_protocol::Opcode;

/// A component of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Transport,
    Db,
    Recoverd,
    Eventd,
}

impl Owner {
    pub const COMPONENTS: [Owner; 3] = [Owner::Db, Owner::Recoverd, Owner::Eventd];

    pub fn name(self) -> &'static str {
        match self {
            Owner::Transport => "transport",
            Owner::Db => "db",
            Owner::Recoverd => "recoverd",
            Owner::Eventd => "eventd",
        }
    }
}

/// Controls Samba 4.17 itself no longer serves (it answers them "not implemented"):
/// transport answers them so, and no component sees them.
pub const OBSOLETE: &[Opcode] = &[
    Opcode::SetDmaster,
    Opcode::PersistentStore,
    Opcode::TransactionStart,
    Opcode::TransactionCommit,
    Opcode::TransactionCancel,
    Opcode::StartPersistentUpdate,
    Opcode::CancelPersistentUpdate,
    Opcode::Trans2Commit,
    Opcode::Trans2Finished,
    Opcode::Trans2Error,
    Opcode::Trans2CommitRetry,
    Opcode::Trans2Active,
    Opcode::SetDbPriority,
    Opcode::GetDbPriority,
    Opcode::ReceiveRecords,
    Opcode::TakeoverIpV4,
    Opcode::ReleaseIpV4,
    Opcode::GetPublicIpsV4,
    Opcode::SetNatgwstate,
];

/// Controls DESIGN.md gives a component that does not serve them yet: answered by
/// transport with an error naming the owner to be, never routed to a component that
/// would only say it does not handle them. KILL_TCP (Samba 4.17's tool no longer sends
/// it; its `ctdb_killtcp` helper works without the daemon); DB_DETACH and Samba's streamed recovery
/// controls (DB_PULL, DB_PUSH_START/CONFIRM, for a leader that is Samba's ctdbd) are
/// not built.
pub const NOT_YET: &[(Opcode, Owner)] = &[
    (Opcode::DbDetach, Owner::Db),
    (Opcode::DbPull, Owner::Db),
    (Opcode::DbPushStart, Owner::Db),
    (Opcode::DbPushConfirm, Owner::Db),
    (Opcode::KillTcp, Owner::Recoverd),
];

/// The owner of `opcode`, or `None` when nobody serves it (obsolete, not built yet or
/// unknown): such a control gets an error reply from transport (see [`route`]).
pub fn owner(opcode: Opcode) -> Option<Owner> {
    use Opcode::*;
    if OBSOLETE.contains(&opcode) || NOT_YET.iter().any(|&(op, _)| op == opcode) {
        return None;
    }
    Some(match opcode {
        ProcessExists | Statistics | StatisticsReset | Ping | GetDebug | SetDebug | GetNodemap
        | ModifyFlags | RegisterSrvid | DeregisterSrvid | CheckSrvids | GetPid | GetPnn
        | Shutdown | SetTunable | GetTunable | ListTunables | GetAllTunables | Uptime
        | ReloadNodesFile | StopNode | ContinueNode | SetBanState | GetBanState
        | RegisterNotify | DeregisterNotify | GetStatHistory | GetRunstate | GetNodesFile
        | CheckPidSrvid | EchoData | DisableNode | EnableNode | Startup | DumpMemory => {
            Owner::Transport
        }

        Getdbpath
        | Getvnnmap
        | Setvnnmap
        | GetDbmap
        | GetDbname
        | DbAttach
        | DbAttachPersistent
        | DbAttachReplicated
        | DbDetach
        | DbOpenFlags
        | GetRecmode
        | SetRecmode
        | Freeze
        | Thaw
        | PullDb
        | PullDbPage
        | PushDb
        | WipeDatabase
        | SetDmaster
        | TraverseStart
        | TraverseStartExt
        | TraverseAll
        | TraverseAllExt
        | TraverseData
        | TraverseKill
        | EnableSeqnum
        | UpdateSeqnum
        | GetDbSeqnum
        | PersistentStore
        | UpdateRecord
        | TransactionStart
        | TransactionCommit
        | TransactionCancel
        | Trans2Commit
        | Trans2Finished
        | Trans2Error
        | Trans2CommitRetry
        | Trans2Active
        | Trans3Commit
        | StartPersistentUpdate
        | CancelPersistentUpdate
        | TryDeleteRecords
        | ScheduleForDeletion
        | DbSetHealthy
        | DbGetHealth
        | SetDbPriority
        | GetDbPriority
        | SetDbReadonly
        | SetDbSticky
        | GetDbStatistics
        | DbFreeze
        | DbThaw
        | DbTransactionStart
        | DbTransactionCommit
        | DbTransactionCancel
        | DbPull
        | DbPushStart
        | DbPushConfirm
        | VacuumFetch
        | DbVacuum
        | ReceiveRecords => Owner::Db,

        GetRecmaster
        | SetRecmaster
        | SetRecmasterrole
        | SetLmasterrole
        | GetCapabilities
        | RecdPing
        | RecdReclockLatency
        | GetReclockFile
        | SetReclockFile
        | TakeoverIp
        | ReleaseIp
        | TakeoverIpV4
        | ReleaseIpV4
        | GetPublicIps
        | GetPublicIpsV4
        | GetPublicIpInfo
        | AddPublicIp
        | DelPublicIp
        | GetIfaces
        | SetIfaceLinkState
        | SendGratiousArp
        | TcpClient
        | TcpAdd
        | TcpRemove
        | TcpAddDelayedUpdate
        | GetTcpTickleList
        | SetTcpTickleList
        | KillTcp
        | SetNatgwstate
        | ReloadPublicIps
        | Ipreallocated
        | TcpClientDisconnected
        | TcpClientPassed
        | StartRecovery
        | EndRecovery => Owner::Recoverd,

        GetEventScriptStatus | EnableScript | DisableScript | RunEventscripts | EnableMonitor
        | DisableMonitor | GetMonmode => Owner::Eventd,

        _ => return None,
    })
}

/// Where a control goes: the [`owner`] of its opcode, except SET_FAILPOINT (ctdb-rs's
/// fault injection in test clusters), which goes to the component its data names: the
/// first NUL-terminated field, `db`, `recoverd` or `transport` (only they have fault
/// points; transport's is the network cut, [`crate::peers::parse_cut`]).
/// `Err` is the reason for an error reply.
pub fn route(opcode: Opcode, data: &[u8]) -> Result<Owner, String> {
    if opcode == Opcode::SetFailpoint {
        let component = data.split(|&b| b == 0).next().unwrap_or_default();
        return match component {
            b"db" => Ok(Owner::Db),
            b"recoverd" => Ok(Owner::Recoverd),
            b"transport" => Ok(Owner::Transport),
            other => Err(format!(
                "SET_FAILPOINT: no fault points in component {:?} (db, recoverd and transport \
                 have them)",
                String::from_utf8_lossy(other)
            )),
        };
    }
    owner(opcode).ok_or_else(|| {
        if OBSOLETE.contains(&opcode) {
            format!(
                "unsupported control {} (obsolete: {})",
                opcode.as_u32(),
                opcode.name()
            )
        } else if let Some((_, to_be)) = NOT_YET.iter().find(|&&(op, _)| op == opcode) {
            format!(
                "unsupported control {} ({}: not built yet in ctdb-{})",
                opcode.as_u32(),
                opcode.name(),
                to_be.name()
            )
        } else {
            format!("unsupported control {}", opcode.as_u32())
        }
    })
}

/// The nodes a packet for `destnode` goes to, this node (`me`) included where it is
/// one of them, given every node's flags by pnn:
///
/// - `CURRENT_NODE`: this node;
/// - `BROADCAST_ALL`: every node of the nodes file that is not deleted (connected or
///   not: a disconnected one gets nothing, and a control to it an error);
/// - `BROADCAST_VNNMAP`: every active node (not deleted, disconnected, banned or
///   stopped) — transport does not follow the vnn map, db owns it;
/// - `BROADCAST_CONNECTED`: every connected node and this one (never DISCONNECTED in
///   its own view);
/// - a pnn: that node, whatever it is (an unknown one gets an error later).
pub fn targets(destnode: u32, me: u32, flags: &[u32]) -> Vec<u32> {
    let all = |skip: u32| {
        (0..flags.len() as u32)
            .filter(|&p| flags[p as usize] & skip == 0)
            .collect()
    };
    match destnode {
        dest::CURRENT_NODE => vec![me],
        dest::BROADCAST_ALL => all(node_flags::DELETED),
        dest::BROADCAST_VNNMAP => all(node_flags::INACTIVE),
        dest::BROADCAST_CONNECTED => all(node_flags::DELETED | node_flags::DISCONNECTED),
        d if dest::is_broadcast(d) => Vec::new(),
        pnn => vec![pnn],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_reach_the_nodes_samba_sends_them_to() {
        use node_flags::{BANNED, DELETED, DISCONNECTED};
        // 0 us, 1 connected, 2 disconnected, 3 deleted, 4 banned but connected.
        let flags = [0, 0, DISCONNECTED, DELETED | DISCONNECTED, BANNED];
        assert_eq!(targets(dest::CURRENT_NODE, 0, &flags), [0]);
        assert_eq!(targets(2, 0, &flags), [2]);
        assert_eq!(targets(9, 0, &flags), [9]);
        assert_eq!(targets(dest::BROADCAST_ALL, 0, &flags), [0, 1, 2, 4]);
        assert_eq!(targets(dest::BROADCAST_CONNECTED, 0, &flags), [0, 1, 4]);
        assert_eq!(targets(dest::BROADCAST_VNNMAP, 0, &flags), [0, 1]);
        // A banned node still reaches everyone connected, itself included.
        let flags = [BANNED, 0, DISCONNECTED];
        assert_eq!(targets(dest::BROADCAST_CONNECTED, 0, &flags), [0, 1]);
        assert_eq!(targets(dest::BROADCAST_VNNMAP, 0, &flags), [1]);
    }

    #[test]
    fn every_control_of_the_design_table_has_one_owner() {
        assert_eq!(owner(Opcode::Ping), Some(Owner::Transport));
        assert_eq!(owner(Opcode::DbAttach), Some(Owner::Db));
        assert_eq!(owner(Opcode::GetIfaces), Some(Owner::Recoverd));
        assert_eq!(owner(Opcode::GetEventScriptStatus), Some(Owner::Eventd));
        assert_eq!(owner(Opcode::Unknown(9999)), None);
        assert_eq!(owner(Opcode::GetNodemapV4), None);
        assert_eq!(owner(Opcode::Trans2Commit), None, "obsolete");
        assert_eq!(owner(Opcode::KillTcp), None, "not built yet");
        assert!(route(Opcode::KillTcp, b"")
            .unwrap_err()
            .contains("not built yet in ctdb-recoverd"));
        let owned = Opcode::ALL
            .iter()
            .filter(|&&op| owner(op).is_some())
            .count();
        assert!(owned > 100, "{owned} controls owned");
    }

    #[test]
    fn set_failpoint_goes_to_the_component_it_names() {
        let failpoint = |data: &[u8]| route(Opcode::SetFailpoint, data);
        assert_eq!(failpoint(b"db\0db::wipe\0return"), Ok(Owner::Db));
        assert_eq!(failpoint(b"recoverd\0recoverd::push"), Ok(Owner::Recoverd));
        assert_eq!(
            failpoint(b"transport\0transport::cut\0return(1,2)"),
            Ok(Owner::Transport)
        );
        assert_eq!(
            failpoint(b"transport\0transport::cut"),
            Ok(Owner::Transport)
        );
        for bad in [&b""[..], b"eventd\0x", b"\xff\0x", b"Transport\0x"] {
            let e = failpoint(bad).unwrap_err();
            assert!(e.contains("SET_FAILPOINT"), "{e}");
        }
        assert_eq!(route(Opcode::Ping, b""), Ok(Owner::Transport));
        assert!(route(Opcode::Unknown(9999), b"").is_err());
    }
}
