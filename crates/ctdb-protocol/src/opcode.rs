//! Control opcodes: the seed's 0–128, Samba's later 129–160, and ctdb-rs's own
//! extensions (0x4352_xxxx, between our nodes only).

/// What every component's error says of a control it does not handle: a test finds
/// routes to components that do not handle what is routed to them by these words.
pub const UNHANDLED: &str = "is not handled by";

macro_rules! opcodes {
    ($($num:literal => $variant:ident, $name:literal;)*) => {
        /// A control opcode. Numbers this crate does not know are kept in
        /// [`Opcode::Unknown`] so that they survive a decode/encode round trip.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $($variant,)*
            Unknown(u32),
        }

        impl Opcode {
            /// Every opcode this crate knows, in numeric order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant,)*];

            pub const fn from_u32(n: u32) -> Self {
                match n {
                    $($num => Opcode::$variant,)*
                    other => Opcode::Unknown(other),
                }
            }

            pub const fn as_u32(self) -> u32 {
                match self {
                    $(Opcode::$variant => $num,)*
                    Opcode::Unknown(n) => n,
                }
            }

            /// The error of a component given a control it does not handle (the same
            /// words everywhere, see [`UNHANDLED`]).
            pub fn unhandled_by(self, component: &str) -> String {
                format!("control {} ({}) {UNHANDLED} {component}", self.name(), self.as_u32())
            }

            /// The C name (the seed's spelling for 0–128, Samba's above).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Opcode::$variant => $name,)*
                    Opcode::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

opcodes! {
      0 => ProcessExists, "CTDB_CONTROL_PROCESS_EXISTS";
      1 => Statistics, "CTDB_CONTROL_STATISTICS";
      3 => Ping, "CTDB_CONTROL_PING";
      4 => Getdbpath, "CTDB_CONTROL_GETDBPATH";
      5 => Getvnnmap, "CTDB_CONTROL_GETVNNMAP";
      6 => Setvnnmap, "CTDB_CONTROL_SETVNNMAP";
      7 => GetDebug, "CTDB_CONTROL_GET_DEBUG";
      8 => SetDebug, "CTDB_CONTROL_SET_DEBUG";
      9 => GetDbmap, "CTDB_CONTROL_GET_DBMAP";
     10 => GetNodemapV4, "CTDB_CONTROL_GET_NODEMAPv4";
     11 => SetDmaster, "CTDB_CONTROL_SET_DMASTER";
     13 => PullDb, "CTDB_CONTROL_PULL_DB";
     14 => PushDb, "CTDB_CONTROL_PUSH_DB";
     15 => GetRecmode, "CTDB_CONTROL_GET_RECMODE";
     16 => SetRecmode, "CTDB_CONTROL_SET_RECMODE";
     17 => StatisticsReset, "CTDB_CONTROL_STATISTICS_RESET";
     18 => DbAttach, "CTDB_CONTROL_DB_ATTACH";
     19 => SetCall, "CTDB_CONTROL_SET_CALL";
     20 => TraverseStart, "CTDB_CONTROL_TRAVERSE_START";
     21 => TraverseAll, "CTDB_CONTROL_TRAVERSE_ALL";
     22 => TraverseData, "CTDB_CONTROL_TRAVERSE_DATA";
     23 => RegisterSrvid, "CTDB_CONTROL_REGISTER_SRVID";
     24 => DeregisterSrvid, "CTDB_CONTROL_DEREGISTER_SRVID";
     25 => GetDbname, "CTDB_CONTROL_GET_DBNAME";
     26 => EnableSeqnum, "CTDB_CONTROL_ENABLE_SEQNUM";
     27 => UpdateSeqnum, "CTDB_CONTROL_UPDATE_SEQNUM";
     29 => DumpMemory, "CTDB_CONTROL_DUMP_MEMORY";
     30 => GetPid, "CTDB_CONTROL_GET_PID";
     31 => GetRecmaster, "CTDB_CONTROL_GET_RECMASTER";
     32 => SetRecmaster, "CTDB_CONTROL_SET_RECMASTER";
     33 => Freeze, "CTDB_CONTROL_FREEZE";
     34 => Thaw, "CTDB_CONTROL_THAW";
     35 => GetPnn, "CTDB_CONTROL_GET_PNN";
     36 => Shutdown, "CTDB_CONTROL_SHUTDOWN";
     37 => GetMonmode, "CTDB_CONTROL_GET_MONMODE";
     42 => TakeoverIpV4, "CTDB_CONTROL_TAKEOVER_IPv4";
     43 => ReleaseIpV4, "CTDB_CONTROL_RELEASE_IPv4";
     44 => TcpClient, "CTDB_CONTROL_TCP_CLIENT";
     45 => TcpAdd, "CTDB_CONTROL_TCP_ADD";
     46 => TcpRemove, "CTDB_CONTROL_TCP_REMOVE";
     47 => Startup, "CTDB_CONTROL_STARTUP";
     48 => SetTunable, "CTDB_CONTROL_SET_TUNABLE";
     49 => GetTunable, "CTDB_CONTROL_GET_TUNABLE";
     50 => ListTunables, "CTDB_CONTROL_LIST_TUNABLES";
     51 => GetPublicIpsV4, "CTDB_CONTROL_GET_PUBLIC_IPSv4";
     52 => ModifyFlags, "CTDB_CONTROL_MODIFY_FLAGS";
     53 => GetAllTunables, "CTDB_CONTROL_GET_ALL_TUNABLES";
     54 => KillTcp, "CTDB_CONTROL_KILL_TCP";
     55 => GetTcpTickleList, "CTDB_CONTROL_GET_TCP_TICKLE_LIST";
     56 => SetTcpTickleList, "CTDB_CONTROL_SET_TCP_TICKLE_LIST";
     57 => RegisterServerId, "CTDB_CONTROL_REGISTER_SERVER_ID";
     58 => UnregisterServerId, "CTDB_CONTROL_UNREGISTER_SERVER_ID";
     59 => CheckServerId, "CTDB_CONTROL_CHECK_SERVER_ID";
     60 => GetServerIdList, "CTDB_CONTROL_GET_SERVER_ID_LIST";
     61 => DbAttachPersistent, "CTDB_CONTROL_DB_ATTACH_PERSISTENT";
     62 => PersistentStore, "CTDB_CONTROL_PERSISTENT_STORE";
     63 => UpdateRecord, "CTDB_CONTROL_UPDATE_RECORD";
     64 => SendGratiousArp, "CTDB_CONTROL_SEND_GRATIOUS_ARP";
     65 => TransactionStart, "CTDB_CONTROL_TRANSACTION_START";
     66 => TransactionCommit, "CTDB_CONTROL_TRANSACTION_COMMIT";
     67 => WipeDatabase, "CTDB_CONTROL_WIPE_DATABASE";
     69 => Uptime, "CTDB_CONTROL_UPTIME";
     70 => StartRecovery, "CTDB_CONTROL_START_RECOVERY";
     71 => EndRecovery, "CTDB_CONTROL_END_RECOVERY";
     72 => ReloadNodesFile, "CTDB_CONTROL_RELOAD_NODES_FILE";
     74 => TryDeleteRecords, "CTDB_CONTROL_TRY_DELETE_RECORDS";
     75 => EnableMonitor, "CTDB_CONTROL_ENABLE_MONITOR";
     76 => DisableMonitor, "CTDB_CONTROL_DISABLE_MONITOR";
     77 => AddPublicIp, "CTDB_CONTROL_ADD_PUBLIC_IP";
     78 => DelPublicIp, "CTDB_CONTROL_DEL_PUBLIC_IP";
     79 => RunEventscripts, "CTDB_CONTROL_RUN_EVENTSCRIPTS";
     80 => GetCapabilities, "CTDB_CONTROL_GET_CAPABILITIES";
     81 => StartPersistentUpdate, "CTDB_CONTROL_START_PERSISTENT_UPDATE";
     82 => CancelPersistentUpdate, "CTDB_CONTROL_CANCEL_PERSISTENT_UPDATE";
     83 => Trans2Commit, "CTDB_CONTROL_TRANS2_COMMIT";
     84 => Trans2Finished, "CTDB_CONTROL_TRANS2_FINISHED";
     85 => Trans2Error, "CTDB_CONTROL_TRANS2_ERROR";
     86 => Trans2CommitRetry, "CTDB_CONTROL_TRANS2_COMMIT_RETRY";
     87 => RecdPing, "CTDB_CONTROL_RECD_PING";
     88 => ReleaseIp, "CTDB_CONTROL_RELEASE_IP";
     89 => TakeoverIp, "CTDB_CONTROL_TAKEOVER_IP";
     90 => GetPublicIps, "CTDB_CONTROL_GET_PUBLIC_IPS";
     91 => GetNodemap, "CTDB_CONTROL_GET_NODEMAP";
     96 => GetEventScriptStatus, "CTDB_CONTROL_GET_EVENT_SCRIPT_STATUS";
     97 => TraverseKill, "CTDB_CONTROL_TRAVERSE_KILL";
     98 => RecdReclockLatency, "CTDB_CONTROL_RECD_RECLOCK_LATENCY";
     99 => GetReclockFile, "CTDB_CONTROL_GET_RECLOCK_FILE";
    100 => SetReclockFile, "CTDB_CONTROL_SET_RECLOCK_FILE";
    101 => StopNode, "CTDB_CONTROL_STOP_NODE";
    102 => ContinueNode, "CTDB_CONTROL_CONTINUE_NODE";
    103 => SetNatgwstate, "CTDB_CONTROL_SET_NATGWSTATE";
    104 => SetLmasterrole, "CTDB_CONTROL_SET_LMASTERROLE";
    105 => SetRecmasterrole, "CTDB_CONTROL_SET_RECMASTERROLE";
    107 => EnableScript, "CTDB_CONTROL_ENABLE_SCRIPT";
    108 => DisableScript, "CTDB_CONTROL_DISABLE_SCRIPT";
    109 => SetBanState, "CTDB_CONTROL_SET_BAN_STATE";
    110 => GetBanState, "CTDB_CONTROL_GET_BAN_STATE";
    111 => SetDbPriority, "CTDB_CONTROL_SET_DB_PRIORITY";
    112 => GetDbPriority, "CTDB_CONTROL_GET_DB_PRIORITY";
    113 => TransactionCancel, "CTDB_CONTROL_TRANSACTION_CANCEL";
    114 => RegisterNotify, "CTDB_CONTROL_REGISTER_NOTIFY";
    115 => DeregisterNotify, "CTDB_CONTROL_DEREGISTER_NOTIFY";
    116 => Trans2Active, "CTDB_CONTROL_TRANS2_ACTIVE";
    117 => GetLog, "CTDB_CONTROL_GET_LOG";
    118 => ClearLog, "CTDB_CONTROL_CLEAR_LOG";
    119 => Trans3Commit, "CTDB_CONTROL_TRANS3_COMMIT";
    120 => GetDbSeqnum, "CTDB_CONTROL_GET_DB_SEQNUM";
    121 => DbSetHealthy, "CTDB_CONTROL_DB_SET_HEALTHY";
    122 => DbGetHealth, "CTDB_CONTROL_DB_GET_HEALTH";
    123 => GetPublicIpInfo, "CTDB_CONTROL_GET_PUBLIC_IP_INFO";
    124 => GetIfaces, "CTDB_CONTROL_GET_IFACES";
    125 => SetIfaceLinkState, "CTDB_CONTROL_SET_IFACE_LINK_STATE";
    126 => TcpAddDelayedUpdate, "CTDB_CONTROL_TCP_ADD_DELAYED_UPDATE";
    127 => GetStatHistory, "CTDB_CONTROL_GET_STAT_HISTORY";
    128 => ScheduleForDeletion, "CTDB_CONTROL_SCHEDULE_FOR_DELETION";
    129 => SetDbReadonly, "CTDB_CONTROL_SET_DB_READONLY";
    130 => CheckSrvids, "CTDB_CONTROL_CHECK_SRVIDS";
    131 => TraverseStartExt, "CTDB_CONTROL_TRAVERSE_START_EXT";
    132 => GetDbStatistics, "CTDB_CONTROL_GET_DB_STATISTICS";
    133 => SetDbSticky, "CTDB_CONTROL_SET_DB_STICKY";
    134 => ReloadPublicIps, "CTDB_CONTROL_RELOAD_PUBLIC_IPS";
    135 => TraverseAllExt, "CTDB_CONTROL_TRAVERSE_ALL_EXT";
    136 => ReceiveRecords, "CTDB_CONTROL_RECEIVE_RECORDS";
    137 => Ipreallocated, "CTDB_CONTROL_IPREALLOCATED";
    138 => GetRunstate, "CTDB_CONTROL_GET_RUNSTATE";
    139 => DbDetach, "CTDB_CONTROL_DB_DETACH";
    140 => GetNodesFile, "CTDB_CONTROL_GET_NODES_FILE";
    141 => DbFreeze, "CTDB_CONTROL_DB_FREEZE";
    142 => DbThaw, "CTDB_CONTROL_DB_THAW";
    143 => DbTransactionStart, "CTDB_CONTROL_DB_TRANSACTION_START";
    144 => DbTransactionCommit, "CTDB_CONTROL_DB_TRANSACTION_COMMIT";
    145 => DbTransactionCancel, "CTDB_CONTROL_DB_TRANSACTION_CANCEL";
    146 => DbPull, "CTDB_CONTROL_DB_PULL";
    147 => DbPushStart, "CTDB_CONTROL_DB_PUSH_START";
    148 => DbPushConfirm, "CTDB_CONTROL_DB_PUSH_CONFIRM";
    149 => DbOpenFlags, "CTDB_CONTROL_DB_OPEN_FLAGS";
    150 => DbAttachReplicated, "CTDB_CONTROL_DB_ATTACH_REPLICATED";
    151 => CheckPidSrvid, "CTDB_CONTROL_CHECK_PID_SRVID";
    152 => TunnelRegister, "CTDB_CONTROL_TUNNEL_REGISTER";
    153 => TunnelDeregister, "CTDB_CONTROL_TUNNEL_DEREGISTER";
    154 => VacuumFetch, "CTDB_CONTROL_VACUUM_FETCH";
    155 => DbVacuum, "CTDB_CONTROL_DB_VACUUM";
    156 => EchoData, "CTDB_CONTROL_ECHO_DATA";
    157 => DisableNode, "CTDB_CONTROL_DISABLE_NODE";
    158 => EnableNode, "CTDB_CONTROL_ENABLE_NODE";
    159 => TcpClientDisconnected, "CTDB_CONTROL_TCP_CLIENT_DISCONNECTED";
    160 => TcpClientPassed, "CTDB_CONTROL_TCP_CLIENT_PASSED";
    // ctdb-rs's own, between our nodes only (Samba's tools never send them): far above
    // Samba's numbers so that a later Samba opcode cannot collide.
    0x4352_0001 => PullDbPage, "CTDB_RS_CONTROL_PULL_DB_PAGE";
    0x4352_0002 => SetFailpoint, "CTDB_RS_CONTROL_SET_FAILPOINT";
}

impl From<u32> for Opcode {
    fn from(n: u32) -> Self {
        Opcode::from_u32(n)
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> Self {
        op.as_u32()
    }
}

impl std::fmt::Display for Opcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opcode::Unknown(n) => write!(f, "UNKNOWN({n})"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknowns_survive() {
        for &op in Opcode::ALL {
            assert_eq!(Opcode::from_u32(op.as_u32()), op);
        }
        assert_eq!(Opcode::from_u32(9999), Opcode::Unknown(9999));
        assert_eq!(Opcode::Unknown(9999).as_u32(), 9999);
        // Removed numbers of the seed stay unknown.
        for removed in [2, 12, 28, 38, 39, 40, 41, 68, 73] {
            assert_eq!(Opcode::from_u32(removed), Opcode::Unknown(removed));
        }
    }

    #[test]
    fn names_follow_the_seed_and_samba() {
        assert_eq!(Opcode::GetPnn.name(), "CTDB_CONTROL_GET_PNN");
        assert_eq!(Opcode::GetNodemapV4.as_u32(), 10);
        assert_eq!(Opcode::SendGratiousArp.as_u32(), 64);
        assert_eq!(Opcode::ScheduleForDeletion.as_u32(), 128);
        assert_eq!(Opcode::DbPull.as_u32(), 146);
        assert_eq!(Opcode::TcpClientPassed.as_u32(), 160);
        assert_eq!(Opcode::ALL.len(), 115 + 32 + 2, "seed, Samba, ctdb-rs");
        assert_eq!(Opcode::from_u32(0x4352_0001), Opcode::PullDbPage);
        assert_eq!(Opcode::from_u32(0x4352_0002), Opcode::SetFailpoint);
    }
}
