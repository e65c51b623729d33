//! Who owns which control.
//!
//! Each component declares the controls it serves when transport connects to it
//! (`Declare`, from the same table the component dispatches by), and transport routes
//! by those declarations ([`Routes`]). [`owner`] is DESIGN.md's table, kept as the
//! reference the declarations are tested against, for transport's own controls, and
//! for a component that has not declared yet (transport has not reached it since it
//! started): what the table gives it is held for it as before.

use std::collections::HashMap;

use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_protocol::Opcode;
use tracing::{error, info};

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
/// it; its `ctdb_killtcp` helper works without the daemon); Samba's streamed recovery
/// controls (DB_PULL, DB_PUSH_START/CONFIRM, for a leader that is Samba's ctdbd) are
/// not built.
pub const NOT_YET: &[(Opcode, Owner)] = &[
    (Opcode::DbPull, Owner::Db),
    (Opcode::DbPushStart, Owner::Db),
    (Opcode::DbPushConfirm, Owner::Db),
    (Opcode::KillTcp, Owner::Recoverd),
];

/// The owner of `opcode` in DESIGN.md's table, or `None` when nobody serves it
/// (obsolete, not built yet or unknown): such a control gets an error reply from
/// transport (see [`route`]). The components' declarations must give each of them
/// what this gives it (`tests/tests/routing_table.rs`); transport routes by the
/// declarations ([`Routes`]).
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

/// Where a control goes when no component has declared anything (see [`Routes`]):
/// the [`owner`] of its opcode, except SET_FAILPOINT (ctdb-rs's fault injection in
/// test clusters), which goes to the component its data names: the first
/// NUL-terminated field, `db`, `recoverd` or `transport` (only they have fault points;
/// transport's is the network cut, [`crate::peers::parse_cut`]).
/// `Err` is the reason for an error reply.
pub fn route(opcode: Opcode, data: &[u8]) -> Result<Owner, String> {
    Routes::default().route(opcode, data)
}

/// The component SET_FAILPOINT's data names.
fn failpoint_component(data: &[u8]) -> Result<Owner, String> {
    let component = data.split(|&b| b == 0).next().unwrap_or_default();
    match component {
        b"db" => Ok(Owner::Db),
        b"recoverd" => Ok(Owner::Recoverd),
        b"transport" => Ok(Owner::Transport),
        other => Err(format!(
            "SET_FAILPOINT: no fault points in component {:?} (db, recoverd and transport \
             have them)",
            String::from_utf8_lossy(other)
        )),
    }
}

/// A control two components declared: the one that declared first keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    pub opcode: Opcode,
    pub kept: Owner,
    pub refused: Owner,
}

/// What transport routes controls by: each component's declaration, as made when its
/// connection last came up. No I/O: the links feed it ([`Routes::declare`]), the router
/// reads it.
#[derive(Debug, Default)]
pub struct Routes {
    /// The declarations in the order the components first made them; one declaring
    /// again keeps its place.
    declared: Vec<(Owner, Vec<Opcode>)>,
    /// Each declared opcode's component (the first to declare it).
    owners: HashMap<Opcode, Owner>,
}

impl Routes {
    /// `who` declares it serves `controls`, replacing what it declared before. The
    /// conflicts with other components' declarations come back (the first declarer
    /// keeps an opcode; transport keeps its own controls). SET_FAILPOINT is addressed
    /// by its data, not owned: any component with fault points declares it.
    pub fn declare(
        &mut self,
        who: Owner,
        controls: impl IntoIterator<Item = Opcode>,
    ) -> Vec<Conflict> {
        let mut controls: Vec<Opcode> = controls.into_iter().collect();
        let mut seen = std::collections::HashSet::new();
        controls.retain(|op| seen.insert(*op));
        match self.declared.iter_mut().find(|(owner, _)| *owner == who) {
            Some((_, before)) => *before = controls,
            None => self.declared.push((who, controls)),
        }
        self.rebuild(who)
    }

    /// `who` said nothing of what it serves (it does not answer `Declare`): routed to
    /// by the table again, as before it first declared.
    pub fn forget(&mut self, who: Owner) {
        self.declared.retain(|(owner, _)| *owner != who);
        self.rebuild(who);
    }

    /// Gives each declared opcode its first declarer; the conflicts `who` is part of.
    fn rebuild(&mut self, who: Owner) -> Vec<Conflict> {
        self.owners.clear();
        let mut conflicts = Vec::new();
        for (component, controls) in &self.declared {
            for &opcode in controls {
                if opcode == Opcode::SetFailpoint {
                    continue;
                }
                let first = match owner(opcode) {
                    Some(Owner::Transport) => Some(Owner::Transport),
                    _ => self.owners.get(&opcode).copied(),
                };
                match first {
                    Some(kept) if kept != *component => {
                        if *component == who || kept == who {
                            conflicts.push(Conflict {
                                opcode,
                                kept,
                                refused: *component,
                            });
                        }
                    }
                    _ => {
                        self.owners.insert(opcode, *component);
                    }
                }
            }
        }
        conflicts
    }

    /// What `who` declared, if it did.
    pub fn declared(&self, who: Owner) -> Option<&[Opcode]> {
        self.declared
            .iter()
            .find(|(owner, _)| *owner == who)
            .map(|(_, controls)| controls.as_slice())
    }

    /// Where a control goes: transport's own controls to transport, a declared one to
    /// the component that declared it (first), SET_FAILPOINT to the component its data
    /// names ([`route`]), and one nobody declared to what the table gives it while that
    /// component has not declared yet. `Err` is the reason for an error reply.
    pub fn route(&self, opcode: Opcode, data: &[u8]) -> Result<Owner, String> {
        if opcode == Opcode::SetFailpoint {
            let named = failpoint_component(data)?;
            return match self.declared(named) {
                Some(controls) if !controls.contains(&opcode) => Err(format!(
                    "SET_FAILPOINT: no fault points in component {:?}",
                    named.name()
                )),
                _ => Ok(named),
            };
        }
        let table = owner(opcode);
        if table == Some(Owner::Transport) {
            return Ok(Owner::Transport);
        }
        if let Some(&declared) = self.owners.get(&opcode) {
            return Ok(declared);
        }
        match table {
            Some(to_be) if self.declared(to_be).is_none() => Ok(to_be),
            Some(to_be) => Err(format!(
                "unsupported control {} ({}: not served by ctdb-{})",
                opcode.as_u32(),
                opcode.name(),
                to_be.name()
            )),
            None => Err(unrouted(opcode)),
        }
    }

    /// Logs what [`declare`](Self::declare) found: the conflicts as errors.
    pub fn log_declaration(who: Owner, controls: usize, conflicts: &[Conflict]) {
        info!(
            component = who.name(),
            controls, "component declared its controls"
        );
        for c in conflicts {
            error!(
                opcode = c.opcode.as_u32(),
                "control {} declared by both ctdb-{} and ctdb-{}: ctdb-{} keeps it",
                c.opcode.name(),
                c.kept.name(),
                c.refused.name(),
                c.kept.name()
            );
        }
    }
}

/// Why nobody serves `opcode`: obsolete, not built yet, or unknown.
fn unrouted(opcode: Opcode) -> String {
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
    fn two_components_declaring_one_control_the_first_keeps_it() {
        let mut routes = Routes::default();
        assert!(routes
            .declare(Owner::Db, [Opcode::GetDbmap, Opcode::GetIfaces])
            .is_empty());
        let conflicts = routes.declare(Owner::Recoverd, [Opcode::GetIfaces, Opcode::GetRecmaster]);
        assert_eq!(
            conflicts,
            [Conflict {
                opcode: Opcode::GetIfaces,
                kept: Owner::Db,
                refused: Owner::Recoverd,
            }]
        );
        assert_eq!(routes.route(Opcode::GetIfaces, b""), Ok(Owner::Db));
        assert_eq!(routes.route(Opcode::GetRecmaster, b""), Ok(Owner::Recoverd));
        // Db declaring again keeps its place: still the first.
        let conflicts = routes.declare(Owner::Db, [Opcode::GetDbmap, Opcode::GetIfaces]);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(routes.route(Opcode::GetIfaces, b""), Ok(Owner::Db));
        // A restarted db that no longer serves it: recoverd's declaration takes over.
        assert!(routes.declare(Owner::Db, [Opcode::GetDbmap]).is_empty());
        assert_eq!(routes.route(Opcode::GetIfaces, b""), Ok(Owner::Recoverd));
        // Transport keeps its own controls.
        let conflicts = routes.declare(Owner::Eventd, [Opcode::Ping, Opcode::GetMonmode]);
        assert_eq!(
            conflicts,
            [Conflict {
                opcode: Opcode::Ping,
                kept: Owner::Transport,
                refused: Owner::Eventd,
            }]
        );
        assert_eq!(routes.route(Opcode::Ping, b""), Ok(Owner::Transport));
        // SET_FAILPOINT is addressed by name, never a conflict.
        assert!(routes
            .declare(Owner::Recoverd, [Opcode::SetFailpoint, Opcode::GetIfaces])
            .is_empty());
        assert!(routes
            .declare(Owner::Db, [Opcode::SetFailpoint, Opcode::GetDbmap])
            .is_empty());
    }

    #[test]
    fn a_component_that_has_not_declared_gets_what_the_table_gives_it() {
        let mut routes = Routes::default();
        routes.declare(Owner::Recoverd, [Opcode::GetRecmaster]);
        // Db has not declared: its controls are its table's, held for it.
        assert_eq!(routes.route(Opcode::GetDbmap, b""), Ok(Owner::Db));
        // Recoverd has: what it left out gets transport's error.
        let why = routes.route(Opcode::GetIfaces, b"").unwrap_err();
        assert!(why.contains("not served by ctdb-recoverd"), "{why}");
        // Obsolete, not built, unknown: the same errors as the table's.
        assert!(routes
            .route(Opcode::Trans2Commit, b"")
            .unwrap_err()
            .contains("obsolete"));
        assert!(routes
            .route(Opcode::KillTcp, b"")
            .unwrap_err()
            .contains("not built yet in ctdb-recoverd"));
        assert!(routes.route(Opcode::Unknown(9999), b"").is_err());
        // A component that stops declaring (an older build) is routed by the table.
        routes.forget(Owner::Recoverd);
        assert_eq!(routes.route(Opcode::GetIfaces, b""), Ok(Owner::Recoverd));
        assert_eq!(routes.declared(Owner::Recoverd), None);
        // An opcode the table does not know, declared: routed.
        routes.declare(Owner::Eventd, [Opcode::Unknown(9999)]);
        assert_eq!(routes.route(Opcode::Unknown(9999), b""), Ok(Owner::Eventd));
    }

    #[test]
    fn set_failpoint_goes_to_a_component_that_declared_it() {
        let mut routes = Routes::default();
        routes.declare(Owner::Db, [Opcode::SetFailpoint]);
        routes.declare(Owner::Eventd, [Opcode::GetMonmode]);
        assert_eq!(
            routes.route(Opcode::SetFailpoint, b"db\0db::wipe"),
            Ok(Owner::Db)
        );
        // Recoverd has not declared yet: as the table says.
        assert_eq!(
            routes.route(Opcode::SetFailpoint, b"recoverd\0x"),
            Ok(Owner::Recoverd)
        );
        routes.declare(Owner::Recoverd, [Opcode::GetRecmaster]);
        assert!(routes
            .route(Opcode::SetFailpoint, b"recoverd\0x")
            .unwrap_err()
            .contains("no fault points"));
        assert!(routes
            .route(Opcode::SetFailpoint, b"eventd\0x")
            .unwrap_err()
            .contains("no fault points"));
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
