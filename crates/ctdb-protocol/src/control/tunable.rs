//! Tunables: SET_TUNABLE, GET_TUNABLE, LIST_TUNABLES and GET_ALL_TUNABLES.

use bytes::BufMut;

use crate::error::{DecodeError, Result};
use crate::wire::{get_cstring, put_cstring, Reader, Wire};

/// `ctdb_tunable` (SET_TUNABLE): value, length of the name with its NUL, the name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tunable {
    pub name: String,
    pub value: u32,
}

impl Wire for Tunable {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.value);
        out.put_u32_le(self.name.len() as u32 + 1);
        put_cstring(out, &self.name);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let value = r.u32()?;
        let len = r.u32()? as usize;
        let name = get_cstring(r, len)?;
        Ok(Self { name, value })
    }
}

/// The GET_TUNABLE request: a uint32 length (with the NUL), then the NUL-terminated
/// name (Samba's `ctdb_stringn`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunableName(pub String);

impl Wire for TunableName {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.0.len() as u32 + 1);
        put_cstring(out, &self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let len = r.u32()? as usize;
        get_cstring(r, len).map(Self)
    }
}

/// `ctdb_var_list` (LIST_TUNABLES reply): uint32 length, then the names joined by
/// `:` as one NUL-terminated string.
///
/// Samba 4.17's daemon writes a `:` before every name (`":SeqnumInterval:..."`), and
/// so does [`VarList::encode`]; decoding skips empty names, so the form without the
/// leading `:` is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VarList {
    pub vars: Vec<String>,
}

impl Wire for VarList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        let len: usize = self.vars.iter().map(|v| v.len() + 1).sum();
        out.put_u32_le(len as u32 + 1);
        for v in &self.vars {
            out.put_u8(b':');
            out.put_slice(v.as_bytes());
        }
        out.put_u8(0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let len = r.u32()? as usize;
        let s = get_cstring(r, len)?;
        Ok(Self {
            vars: s
                .split(':')
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

macro_rules! tunable_list {
    ($($field:ident => $name:literal,)*) => {
        /// `ctdb_tunable_list` (GET_ALL_TUNABLES reply): Samba 4.17's struct of 62
        /// uint32 fields in this order (248 bytes), obsolete ones included.
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct TunableList {
            $(pub $field: u32,)*
        }

        impl TunableList {
            /// Samba's tunable names, in wire order.
            pub const NAMES: &'static [&'static str] = &[$($name,)*];
            pub const SIZE: usize = Self::NAMES.len() * 4;

            /// The value of the tunable Samba calls `name` (case-insensitive, as
            /// Samba matches them).
            pub fn get(&self, name: &str) -> Option<u32> {
                $(if name.eq_ignore_ascii_case($name) { return Some(self.$field); })*
                None
            }

            /// Sets the tunable Samba calls `name`; false if there is none.
            pub fn set(&mut self, name: &str, value: u32) -> bool {
                $(if name.eq_ignore_ascii_case($name) { self.$field = value; return true; })*
                false
            }

            /// The values in wire order.
            pub fn values(&self) -> Vec<u32> {
                vec![$(self.$field,)*]
            }

            /// Builds the list from values in wire order.
            pub fn from_values(values: &[u32]) -> Result<Self> {
                if values.len() != Self::NAMES.len() {
                    return Err(DecodeError::InvalidValue {
                        what: "tunable count",
                        value: values.len() as u64,
                    });
                }
                let mut it = values.iter().copied();
                Ok(Self { $($field: it.next().unwrap_or_default(),)* })
            }
        }

        impl Wire for TunableList {
            fn encode<B: BufMut>(&self, out: &mut B) {
                $(out.put_u32_le(self.$field);)*
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self> {
                Ok(Self { $($field: r.u32()?,)* })
            }
        }
    };
}

tunable_list! {
    max_redirect_count => "MaxRedirectCount",
    seqnum_interval => "SeqnumInterval",
    control_timeout => "ControlTimeout",
    traverse_timeout => "TraverseTimeout",
    keepalive_interval => "KeepaliveInterval",
    keepalive_limit => "KeepaliveLimit",
    recover_timeout => "RecoverTimeout",
    recover_interval => "RecoverInterval",
    election_timeout => "ElectionTimeout",
    takeover_timeout => "TakeoverTimeout",
    monitor_interval => "MonitorInterval",
    tickle_update_interval => "TickleUpdateInterval",
    script_timeout => "EventScriptTimeout",
    monitor_timeout_count => "MonitorTimeoutCount",
    script_unhealthy_on_timeout => "EventScriptUnhealthyOnTimeout",
    recovery_grace_period => "RecoveryGracePeriod",
    recovery_ban_period => "RecoveryBanPeriod",
    database_hash_size => "DatabaseHashSize",
    database_max_dead => "DatabaseMaxDead",
    rerecovery_timeout => "RerecoveryTimeout",
    enable_bans => "EnableBans",
    deterministic_public_ips => "DeterministicIPs",
    reclock_ping_period => "ReclockPingPeriod",
    no_ip_failback => "NoIPFailback",
    disable_ip_failover => "DisableIPFailover",
    verbose_memory_names => "VerboseMemoryNames",
    recd_ping_timeout => "RecdPingTimeout",
    recd_ping_failcount => "RecdFailCount",
    log_latency_ms => "LogLatencyMs",
    reclock_latency_ms => "RecLockLatencyMs",
    recovery_drop_all_ips => "RecoveryDropAllIPs",
    verify_recovery_lock => "VerifyRecoveryLock",
    vacuum_interval => "VacuumInterval",
    vacuum_max_run_time => "VacuumMaxRunTime",
    repack_limit => "RepackLimit",
    vacuum_limit => "VacuumLimit",
    max_queue_depth_drop_msg => "MaxQueueDropMsg",
    allow_unhealthy_db_read => "AllowUnhealthyDBRead",
    stat_history_interval => "StatHistoryInterval",
    deferred_attach_timeout => "DeferredAttachTO",
    vacuum_fast_path_count => "VacuumFastPathCount",
    lcp2_public_ip_assignment => "LCP2PublicIPs",
    allow_client_db_attach => "AllowClientDBAttach",
    recover_pdb_by_seqnum => "RecoverPDBBySeqNum",
    deferred_rebalance_on_node_add => "DeferredRebalanceOnNodeAdd",
    fetch_collapse => "FetchCollapse",
    hopcount_make_sticky => "HopcountMakeSticky",
    sticky_duration => "StickyDuration",
    sticky_pindown => "StickyPindown",
    no_ip_takeover => "NoIPTakeover",
    db_record_count_warn => "DBRecordCountWarn",
    db_record_size_warn => "DBRecordSizeWarn",
    db_size_warn => "DBSizeWarn",
    pulldb_preallocation_size => "PullDBPreallocation",
    no_ip_host_on_all_disabled => "NoIPHostOnAllDisabled",
    samba3_hack => "Samba3AvoidDeadlocks",
    mutex_enabled => "TDBMutexEnabled",
    lock_processes_per_db => "LockProcessesPerDB",
    rec_buffer_size_limit => "RecBufferSizeLimit",
    queue_buffer_size => "QueueBufferSize",
    ip_alloc_algorithm => "IPAllocAlgorithm",
    allow_mixed_versions => "AllowMixedVersions",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunable_layouts() {
        let t = Tunable {
            name: "RecoverInterval".into(),
            value: 2,
        };
        let b = t.to_bytes();
        assert_eq!(b.len(), 8 + 16);
        assert_eq!(&b[4..8], &[16, 0, 0, 0]);
        assert_eq!(Tunable::from_bytes(&b), Ok(t));
        let n = TunableName("KeepaliveInterval".into());
        assert_eq!(n.to_bytes().len(), 4 + 18);
        assert_eq!(TunableName::from_bytes(&n.to_bytes()), Ok(n));
    }

    #[test]
    fn var_list_uses_a_leading_colon() {
        let v = VarList {
            vars: vec!["A".into(), "Bc".into()],
        };
        let b = v.to_bytes();
        assert_eq!(b, [6, 0, 0, 0, b':', b'A', b':', b'B', b'c', 0]);
        assert_eq!(VarList::from_bytes(&b), Ok(v.clone()));
        assert_eq!(VarList::from_bytes(b"\x05\0\0\0A:Bc\0"), Ok(v));
    }

    #[test]
    fn tunable_list_is_62_words() {
        assert_eq!(TunableList::SIZE, 248);
        let mut t = TunableList::default();
        assert!(t.set("recoverinterval", 1));
        assert_eq!(t.get("RecoverInterval"), Some(1));
        assert_eq!(t.get("NoSuchTunable"), None);
        let b = t.to_bytes();
        assert_eq!(b.len(), 248);
        assert_eq!(b[7 * 4], 1);
        assert_eq!(TunableList::from_values(&t.values()), Ok(t));
    }
}
