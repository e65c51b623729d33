//! Event script calls (`enum ctdb_eventscript_call`) and their script-facing names.

macro_rules! events {
    ($($num:literal => $variant:ident, $name:literal;)*) => {
        /// An event the event daemon runs scripts for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventCall {
            $($variant,)*
        }

        impl EventCall {
            pub const ALL: &'static [EventCall] = &[$(EventCall::$variant,)*];

            pub const fn from_u32(n: u32) -> Option<Self> {
                match n {
                    $($num => Some(EventCall::$variant),)*
                    _ => None,
                }
            }

            pub const fn as_u32(self) -> u32 {
                match self {
                    $(EventCall::$variant => $num,)*
                }
            }

            /// The name scripts receive as their first argument.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventCall::$variant => $name,)*
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(EventCall::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

events! {
    0 => Init, "init";
    1 => Setup, "setup";
    2 => Startup, "startup";
    3 => StartRecovery, "startrecovery";
    4 => Recovered, "recovered";
    5 => TakeIp, "takeip";
    6 => ReleaseIp, "releaseip";
    7 => Stopped, "stopped";
    8 => Monitor, "monitor";
    9 => Status, "status";
    10 => Shutdown, "shutdown";
    11 => Reload, "reload";
    12 => UpdateIp, "updateip";
    13 => IpReallocated, "ipreallocated";
}

impl std::fmt::Display for EventCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Script status values of `ctdb_script_wire.status`.
pub const MONITOR_SCRIPT_OK: i32 = 0;
pub const MONITOR_SCRIPT_TIMEOUT: i32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(EventCall::ALL.len(), 14);
        for &e in EventCall::ALL {
            assert_eq!(EventCall::from_u32(e.as_u32()), Some(e));
            assert_eq!(EventCall::from_name(e.name()), Some(e));
        }
        assert_eq!(EventCall::from_u32(14), None);
        assert_eq!(EventCall::Monitor.name(), "monitor");
    }
}
