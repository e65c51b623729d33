//! What transport knows about its node: flags, tunables, run state, times.

use std::time::SystemTime;

use ctdb_common::tunables::Tunables;
use ctdb_protocol::flags::node;

/// Samba's run states (`enum ctdb_runstate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Unknown = 0,
    Init = 1,
    Setup = 2,
    FirstRecovery = 3,
    Startup = 4,
    Running = 5,
    Shutdown = 6,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Unknown => "UNKNOWN",
            RunState::Init => "INIT",
            RunState::Setup => "SETUP",
            RunState::FirstRecovery => "FIRST_RECOVERY",
            RunState::Startup => "STARTUP",
            RunState::Running => "RUNNING",
            RunState::Shutdown => "SHUTDOWN",
        }
    }
}

/// Mutable state of the node, behind one lock in [`crate::Node`].
#[derive(Debug)]
pub struct NodeState {
    pub tunables: Tunables,
    /// Flags of every node of the nodes file, by pnn.
    pub flags: Vec<u32>,
    pub runstate: RunState,
    pub debug_level: i32,
    /// Whether `ctdb setdebug` (SET_DEBUG) set `debug_level`: a component that
    /// (re)connects is then given it, else it keeps the level it was started with.
    pub debug_set: bool,
    pub started: SystemTime,
    pub last_recovery_started: Option<SystemTime>,
    pub last_recovery_finished: Option<SystemTime>,
    /// Seconds left of a ban of this node (0 = not banned) and when it was set.
    pub ban: Option<(u32, SystemTime)>,
    /// Generation of the vnn map, as last seen on packets from db.
    pub generation: u32,
    /// Why this node is unhealthy, by who said so (eventd's monitor: "", ctdbd:
    /// "supervisor"); UNHEALTHY while any is here.
    pub unhealthy: std::collections::BTreeMap<String, String>,
}

impl NodeState {
    pub fn new(num_nodes: usize, pnn: u32, deleted: &[bool], debug_level: i32) -> Self {
        let flags = (0..num_nodes)
            .map(|i| {
                if deleted.get(i).copied().unwrap_or(false) {
                    node::DELETED | node::DISCONNECTED
                } else if i as u32 == pnn {
                    0
                } else {
                    node::DISCONNECTED
                }
            })
            .collect();
        Self {
            tunables: Tunables::default(),
            flags,
            runstate: RunState::FirstRecovery,
            debug_level,
            debug_set: false,
            started: SystemTime::now(),
            last_recovery_started: None,
            last_recovery_finished: None,
            ban: None,
            generation: ctdb_protocol::flags::INVALID_GENERATION,
            unhealthy: Default::default(),
        }
    }

    /// Sets or clears `bits` of node `pnn`'s flags; false for an unknown pnn.
    pub fn set_flags(&mut self, pnn: u32, set: u32, clear: u32) -> bool {
        match self.flags.get_mut(pnn as usize) {
            Some(f) => {
                *f = (*f | set) & !clear;
                true
            }
            None => false,
        }
    }
}
