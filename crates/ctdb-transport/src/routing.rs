//! Who owns which control: the one table transport routes by (DESIGN.md).

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

/// The owner of `opcode`, or `None` when nobody serves it (obsolete or unknown): such
/// a control gets an error reply.
pub fn owner(opcode: Opcode) -> Option<Owner> {
    use Opcode::*;
    Some(match opcode {
        ProcessExists | Statistics | StatisticsReset | Ping | GetDebug | SetDebug | GetNodemap
        | ModifyFlags | RegisterSrvid | DeregisterSrvid | CheckSrvids | GetPid | GetPnn
        | Shutdown | SetTunable | GetTunable | ListTunables | GetAllTunables | Uptime
        | ReloadNodesFile | GetCapabilities | StopNode | ContinueNode | SetBanState
        | GetBanState | RegisterNotify | DeregisterNotify | GetStatHistory | GetRunstate
        | GetNodesFile | CheckPidSrvid | EchoData | DisableNode | EnableNode | Startup => {
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
        | StartRecovery
        | EndRecovery
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
        | TcpClientPassed => Owner::Recoverd,

        GetEventScriptStatus | EnableScript | DisableScript | RunEventscripts | EnableMonitor
        | DisableMonitor | GetMonmode => Owner::Eventd,

        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_of_the_design_table_has_one_owner() {
        assert_eq!(owner(Opcode::Ping), Some(Owner::Transport));
        assert_eq!(owner(Opcode::DbAttach), Some(Owner::Db));
        assert_eq!(owner(Opcode::GetIfaces), Some(Owner::Recoverd));
        assert_eq!(owner(Opcode::GetEventScriptStatus), Some(Owner::Eventd));
        assert_eq!(owner(Opcode::Unknown(9999)), None);
        assert_eq!(owner(Opcode::GetNodemapV4), None);
        let owned = Opcode::ALL
            .iter()
            .filter(|&&op| owner(op).is_some())
            .count();
        assert!(owned > 120, "{owned} controls owned");
    }
}
