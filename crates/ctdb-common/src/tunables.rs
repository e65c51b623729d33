//! Samba 4.17's tunables (`ctdb listvars`, `getvar`, `setvar`), with their defaults.
//!
//! Obsolete tunables are still known by name, as in Samba: they can be read and set
//! (callers may warn, see [`Tunables::is_obsolete`]) but are not listed.

/// An unknown tunable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tunable variable '{0}'")]
pub struct TunableError(pub String);

struct Def {
    name: &'static str,
    default: u32,
    obsolete: bool,
}

const fn live(name: &'static str, default: u32) -> Def {
    Def {
        name,
        default,
        obsolete: false,
    }
}

const fn obsolete(name: &'static str, default: u32) -> Def {
    Def {
        name,
        default,
        obsolete: true,
    }
}

/// In Samba's order; the live ones are exactly what Samba 4.17's `ctdb listvars` shows.
const DEFS: &[Def] = &[
    obsolete("MaxRedirectCount", 3),
    live("SeqnumInterval", 1000),
    live("ControlTimeout", 60),
    live("TraverseTimeout", 20),
    live("KeepaliveInterval", 5),
    live("KeepaliveLimit", 5),
    live("RecoverTimeout", 30),
    live("RecoverInterval", 1),
    live("ElectionTimeout", 3),
    live("TakeoverTimeout", 9),
    live("MonitorInterval", 15),
    live("TickleUpdateInterval", 20),
    live("EventScriptTimeout", 30),
    live("MonitorTimeoutCount", 20),
    obsolete("EventScriptUnhealthyOnTimeout", 0),
    live("RecoveryGracePeriod", 120),
    live("RecoveryBanPeriod", 300),
    live("DatabaseHashSize", 100_001),
    live("DatabaseMaxDead", 5),
    live("RerecoveryTimeout", 10),
    live("EnableBans", 1),
    obsolete("DeterministicIPs", 0),
    obsolete("LCP2PublicIPs", 1),
    obsolete("ReclockPingPeriod", 60),
    live("NoIPFailback", 0),
    obsolete("DisableIPFailover", 0),
    live("VerboseMemoryNames", 0),
    live("RecdPingTimeout", 60),
    live("RecdFailCount", 10),
    live("LogLatencyMs", 0),
    live("RecLockLatencyMs", 1000),
    live("RecoveryDropAllIPs", 120),
    obsolete("VerifyRecoveryLock", 1),
    live("VacuumInterval", 10),
    live("VacuumMaxRunTime", 120),
    live("RepackLimit", 10_000),
    obsolete("VacuumLimit", 5_000),
    live("VacuumFastPathCount", 60),
    live("MaxQueueDropMsg", 1_000_000),
    live("AllowUnhealthyDBRead", 0),
    live("StatHistoryInterval", 1),
    live("DeferredAttachTO", 120),
    live("AllowClientDBAttach", 1),
    obsolete("RecoverPDBBySeqNum", 1),
    obsolete("DeferredRebalanceOnNodeAdd", 300),
    live("FetchCollapse", 1),
    live("HopcountMakeSticky", 50),
    live("StickyDuration", 600),
    live("StickyPindown", 200),
    live("NoIPTakeover", 0),
    live("DBRecordCountWarn", 100_000),
    live("DBRecordSizeWarn", 10_000_000),
    live("DBSizeWarn", 100_000_000),
    live("PullDBPreallocation", 10 * 1024 * 1024),
    obsolete("NoIPHostOnAllDisabled", 1),
    obsolete("Samba3AvoidDeadlocks", 0),
    obsolete("TDBMutexEnabled", 1),
    live("LockProcessesPerDB", 200),
    live("RecBufferSizeLimit", 1_000_000),
    live("QueueBufferSize", 1024),
    live("IPAllocAlgorithm", 2),
    live("AllowMixedVersions", 0),
];

fn index(name: &str) -> Option<usize> {
    DEFS.iter().position(|d| d.name.eq_ignore_ascii_case(name))
}

/// The current values of all tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunables {
    values: Vec<u32>,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            values: DEFS.iter().map(|d| d.default).collect(),
        }
    }
}

macro_rules! accessors {
    ($($(#[$doc:meta])* $fn:ident => $name:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $fn(&self) -> u32 {
                self.value_of($name)
            }
        )*
    };
}

macro_rules! flags {
    ($($fn:ident => $name:literal;)*) => {
        $(
            pub fn $fn(&self) -> bool {
                self.value_of($name) != 0
            }
        )*
    };
}

impl Tunables {
    /// A tunable's value; names are case-insensitive, as in Samba.
    pub fn get(&self, name: &str) -> Option<u32> {
        index(name).map(|i| self.values[i])
    }

    /// Sets a tunable (obsolete ones too, as Samba does).
    pub fn set(&mut self, name: &str, value: u32) -> Result<(), TunableError> {
        let i = index(name).ok_or_else(|| TunableError(name.to_string()))?;
        self.values[i] = value;
        Ok(())
    }

    /// `Some(true)` for a tunable Samba keeps only for compatibility, `None` if unknown.
    pub fn is_obsolete(name: &str) -> Option<bool> {
        index(name).map(|i| DEFS[i].obsolete)
    }

    /// Samba's spelling of a tunable name given in any case.
    pub fn canonical_name(name: &str) -> Option<&'static str> {
        index(name).map(|i| DEFS[i].name)
    }

    /// The listed (non-obsolete) tunables and their values, in `ctdb listvars` order.
    pub fn list(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        DEFS.iter()
            .zip(&self.values)
            .filter(|(d, _)| !d.obsolete)
            .map(|(d, v)| (d.name, *v))
    }

    /// The tunables that differ from their defaults, one `Name=value` line each (the
    /// format of Samba's `ctdb.tunables`).
    pub fn changed_text(&self) -> String {
        let defaults = Tunables::default();
        DEFS.iter()
            .zip(self.values.iter().zip(&defaults.values))
            .filter(|(_, (now, default))| now != default)
            .map(|(d, (now, _))| format!("{}={now}\n", d.name))
            .collect()
    }

    /// Applies `Name=value` lines (blank lines and `#` comments skipped); the first
    /// line that is not one is refused with its number, and nothing after it is taken.
    pub fn apply_text(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line
                .split_once('=')
                .and_then(|(name, value)| Some((name.trim(), value.trim().parse::<u32>().ok()?)));
            let Some((name, value)) = parsed else {
                return Err(format!(
                    "line {}: expected Name=value, found {line:?}",
                    i + 1
                ));
            };
            self.set(name, value)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
        }
        Ok(())
    }

    /// The listed (non-obsolete) tunable names, in `ctdb listvars` order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        DEFS.iter().filter(|d| !d.obsolete).map(|d| d.name)
    }

    fn value_of(&self, name: &str) -> u32 {
        let i = index(name);
        debug_assert!(i.is_some(), "accessor for unknown tunable {name}");
        i.map_or(0, |i| self.values[i])
    }

    accessors! {
        seqnum_interval => "SeqnumInterval";
        control_timeout => "ControlTimeout";
        traverse_timeout => "TraverseTimeout";
        keepalive_interval => "KeepaliveInterval";
        keepalive_limit => "KeepaliveLimit";
        recover_timeout => "RecoverTimeout";
        recover_interval => "RecoverInterval";
        election_timeout => "ElectionTimeout";
        takeover_timeout => "TakeoverTimeout";
        monitor_interval => "MonitorInterval";
        tickle_update_interval => "TickleUpdateInterval";
        event_script_timeout => "EventScriptTimeout";
        monitor_timeout_count => "MonitorTimeoutCount";
        recovery_grace_period => "RecoveryGracePeriod";
        recovery_ban_period => "RecoveryBanPeriod";
        database_hash_size => "DatabaseHashSize";
        database_max_dead => "DatabaseMaxDead";
        rerecovery_timeout => "RerecoveryTimeout";
        recd_ping_timeout => "RecdPingTimeout";
        recd_fail_count => "RecdFailCount";
        log_latency_ms => "LogLatencyMs";
        rec_lock_latency_ms => "RecLockLatencyMs";
        recovery_drop_all_ips => "RecoveryDropAllIPs";
        vacuum_interval => "VacuumInterval";
        vacuum_max_run_time => "VacuumMaxRunTime";
        repack_limit => "RepackLimit";
        vacuum_fast_path_count => "VacuumFastPathCount";
        max_queue_drop_msg => "MaxQueueDropMsg";
        stat_history_interval => "StatHistoryInterval";
        deferred_attach_timeout => "DeferredAttachTO";
        hopcount_make_sticky => "HopcountMakeSticky";
        sticky_duration => "StickyDuration";
        sticky_pindown => "StickyPindown";
        db_record_count_warn => "DBRecordCountWarn";
        db_record_size_warn => "DBRecordSizeWarn";
        db_size_warn => "DBSizeWarn";
        pulldb_preallocation => "PullDBPreallocation";
        lock_processes_per_db => "LockProcessesPerDB";
        rec_buffer_size_limit => "RecBufferSizeLimit";
        queue_buffer_size => "QueueBufferSize";
        ip_alloc_algorithm => "IPAllocAlgorithm";
        /// Obsolete in Samba (not listed) but still held, default 3.
        max_redirect_count => "MaxRedirectCount";
    }

    flags! {
        enable_bans => "EnableBans";
        no_ip_failback => "NoIPFailback";
        verbose_memory_names => "VerboseMemoryNames";
        allow_unhealthy_db_read => "AllowUnhealthyDBRead";
        allow_client_db_attach => "AllowClientDBAttach";
        fetch_collapse => "FetchCollapse";
        no_ip_takeover => "NoIPTakeover";
        allow_mixed_versions => "AllowMixedVersions";
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn changed_tunables_are_written_and_read_back() {
        let mut t = Tunables::default();
        assert_eq!(t.changed_text(), "");
        t.set("enablebans", 0).unwrap();
        t.set("KeepaliveInterval", 1).unwrap();
        let text = t.changed_text();
        assert_eq!(text, "KeepaliveInterval=1\nEnableBans=0\n");
        let mut back = Tunables::default();
        back.apply_text(&format!("# kept\n\n{text}")).unwrap();
        assert_eq!(back.get("EnableBans"), Some(0));
        assert_eq!(back.get("KeepaliveInterval"), Some(1));
        let e = back
            .apply_text("EnableBans=1\nNoSuchTunable=3\n")
            .unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(back
            .apply_text("EnableBans")
            .unwrap_err()
            .contains("Name=value"));
    }

    use super::*;

    /// `ctdb listvars` of a default Samba 4.17 node.
    const LISTVARS: &str = "\
SeqnumInterval             = 1000
ControlTimeout             = 60
TraverseTimeout            = 20
KeepaliveInterval          = 5
KeepaliveLimit             = 5
RecoverTimeout             = 30
RecoverInterval            = 1
ElectionTimeout            = 3
TakeoverTimeout            = 9
MonitorInterval            = 15
TickleUpdateInterval       = 20
EventScriptTimeout         = 30
MonitorTimeoutCount        = 20
RecoveryGracePeriod        = 120
RecoveryBanPeriod          = 300
DatabaseHashSize           = 100001
DatabaseMaxDead            = 5
RerecoveryTimeout          = 10
EnableBans                 = 1
NoIPFailback               = 0
VerboseMemoryNames         = 0
RecdPingTimeout            = 60
RecdFailCount              = 10
LogLatencyMs               = 0
RecLockLatencyMs           = 1000
RecoveryDropAllIPs         = 120
VacuumInterval             = 10
VacuumMaxRunTime           = 120
RepackLimit                = 10000
VacuumFastPathCount        = 60
MaxQueueDropMsg            = 1000000
AllowUnhealthyDBRead       = 0
StatHistoryInterval        = 1
DeferredAttachTO           = 120
AllowClientDBAttach        = 1
FetchCollapse              = 1
HopcountMakeSticky         = 50
StickyDuration             = 600
StickyPindown              = 200
NoIPTakeover               = 0
DBRecordCountWarn          = 100000
DBRecordSizeWarn           = 10000000
DBSizeWarn                 = 100000000
PullDBPreallocation        = 10485760
LockProcessesPerDB         = 200
RecBufferSizeLimit         = 1000000
QueueBufferSize            = 1024
IPAllocAlgorithm           = 2
AllowMixedVersions         = 0
";

    #[test]
    fn defaults_match_listvars() {
        let t = Tunables::default();
        let listed: Vec<String> = t.list().map(|(n, v)| format!("{n:<26} = {v}")).collect();
        let expected: Vec<&str> = LISTVARS.lines().collect();
        assert_eq!(listed, expected);
        assert_eq!(t.list().count(), 49);
        assert!(Tunables::names().eq(t.list().map(|(n, _)| n)));
    }

    #[test]
    fn typed_accessors() {
        let t = Tunables::default();
        assert_eq!(t.recover_interval(), 1);
        assert_eq!(t.keepalive_interval(), 5);
        assert_eq!(t.keepalive_limit(), 5);
        assert_eq!(t.recover_timeout(), 30);
        assert_eq!(t.election_timeout(), 3);
        assert_eq!(t.monitor_interval(), 15);
        assert_eq!(t.event_script_timeout(), 30);
        assert_eq!(t.recovery_ban_period(), 300);
        assert_eq!(t.recovery_grace_period(), 120);
        assert_eq!(t.deferred_attach_timeout(), 120);
        assert_eq!(t.database_hash_size(), 100_001);
        assert_eq!(t.max_redirect_count(), 3);
        assert!(t.enable_bans());
        assert!(t.allow_client_db_attach());
        assert!(!t.no_ip_takeover());
    }

    #[test]
    fn get_and_set_are_case_insensitive() {
        let mut t = Tunables::default();
        assert_eq!(t.get("keepaliveinterval"), Some(5));
        t.set("KEEPALIVEINTERVAL", 7).expect("set");
        assert_eq!(t.get("KeepaliveInterval"), Some(7));
        assert_eq!(t.keepalive_interval(), 7);
        assert_eq!(t.set("NoSuchVar", 1), Err(TunableError("NoSuchVar".into())));
        assert_eq!(t.get("NoSuchVar"), None);
        assert_eq!(
            Tunables::canonical_name("recoverinterval"),
            Some("RecoverInterval")
        );
    }

    #[test]
    fn obsolete_tunables_are_known_but_not_listed() {
        let mut t = Tunables::default();
        assert_eq!(Tunables::is_obsolete("maxredirectcount"), Some(true));
        assert_eq!(Tunables::is_obsolete("RecoverInterval"), Some(false));
        assert_eq!(Tunables::is_obsolete("bogus"), None);
        t.set("VerifyRecoveryLock", 0).expect("obsolete set");
        assert_eq!(t.get("VerifyRecoveryLock"), Some(0));
        assert!(t.list().all(|(n, _)| n != "VerifyRecoveryLock"));
    }
}
