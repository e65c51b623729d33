//! `getdbmap` and `getdbstatus`.

use ctdb_protocol::control::DbStatistics;
use ctdb_protocol::flags::db;

use super::stats::{buckets, latency_line};

use super::{bit, machine_line, Machine};

/// What `getdbmap` shows of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    pub db_id: u32,
    /// `ctdb_protocol::flags::db` bits.
    pub flags: u8,
    pub name: String,
    pub path: String,
    /// The DB_GET_HEALTH string; `None` when healthy.
    pub health: Option<String>,
}

/// `ctdb getdbmap`.
pub fn getdbmap_text(dbs: &[DbInfo], machine: Machine<'_>) -> String {
    let mut out = match machine {
        Some(sep) => machine_line(
            sep,
            &[
                "ID",
                "Name",
                "Path",
                "Persistent",
                "Sticky",
                "Unhealthy",
                "Readonly",
                "Replicated",
            ],
        ),
        None => format!("Number of databases:{}\n", dbs.len()),
    };
    for d in dbs {
        let persistent = d.flags & db::PERSISTENT != 0;
        let readonly = d.flags & db::READONLY != 0;
        let sticky = d.flags & db::STICKY != 0;
        let replicated = d.flags & db::REPLICATED != 0;
        let unhealthy = d.health.is_some();
        match machine {
            Some(sep) => out.push_str(&machine_line(
                sep,
                &[
                    format!("0x{:08X}", d.db_id),
                    d.name.clone(),
                    d.path.clone(),
                    bit(persistent).to_string(),
                    bit(sticky).to_string(),
                    bit(unhealthy).to_string(),
                    bit(readonly).to_string(),
                    bit(replicated).to_string(),
                ],
            )),
            None => out.push_str(&format!(
                "dbid:0x{:08x} name:{} path:{}{}{}{}{}{}\n",
                d.db_id,
                d.name,
                d.path,
                if persistent { " PERSISTENT" } else { "" },
                if sticky { " STICKY" } else { "" },
                if readonly { " READONLY" } else { "" },
                if replicated { " REPLICATED" } else { "" },
                if unhealthy { " UNHEALTHY" } else { "" },
            )),
        }
    }
    out
}

/// `ctdb getdbstatus`: `health` is the DB_GET_HEALTH string, `None` when healthy.
pub fn getdbstatus_text(
    db_id: u32,
    name: &str,
    path: &str,
    flags: u8,
    health: Option<&str>,
) -> String {
    let yes_no = |bit: u8| if flags & bit != 0 { "yes" } else { "no" };
    format!(
        "dbid: 0x{db_id:08x}\nname: {name}\npath: {path}\nPERSISTENT: {}\nREPLICATED: {}\n\
         STICKY: {}\nREADONLY: {}\nHEALTH: {}\n",
        yes_no(db::PERSISTENT),
        yes_no(db::REPLICATED),
        yes_no(db::STICKY),
        yes_no(db::READONLY),
        health.unwrap_or("OK")
    )
}

/// `ctdb dbstatistics`: the counters of one database, as Samba lays them out (plain
/// counters first, then the `locks` group indented under its name), its buckets, its
/// latencies and the hot keys in hex.
pub fn dbstatistics_text(name: &str, s: &DbStatistics) -> String {
    let mut out = format!("DB Statistics {name}\n");
    for (label, value) in [
        ("db_ro_delegations", s.db_ro_delegations),
        ("db_ro_revokes", s.db_ro_revokes),
    ] {
        out.push_str(&format!(" {label:<22}    {value:>10}\n"));
    }
    out.push_str(" locks\n");
    for (label, value) in [
        ("num_calls", s.locks_num_calls),
        ("num_current", s.locks_num_current),
        ("num_pending", s.locks_num_pending),
        ("num_failed", s.locks_num_failed),
    ] {
        out.push_str(&format!("     {label:<22}{value:>10}\n"));
    }
    out.push_str(&buckets("hop_count_buckets", &s.hop_count_bucket));
    out.push_str(&buckets("lock_buckets", &s.locks_buckets));
    out.push_str(&latency_line(
        "locks_latency      MIN/AVG/MAX",
        &s.locks_latency,
    ));
    out.push_str(&latency_line(
        "vacuum_latency     MIN/AVG/MAX",
        &s.vacuum_latency,
    ));
    out.push_str(&format!(" Num Hot Keys:     {}\n", s.num_hot_keys));
    for k in s.hot_keys.iter().take(s.num_hot_keys as usize) {
        out.push_str(&format!("     Count:{} Key:", k.count));
        for b in k.key.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(db_id: u32, name: &str, flags: u8) -> DbInfo {
        let dir = if flags & db::PERSISTENT != 0 {
            "persistent"
        } else {
            "volatile"
        };
        DbInfo {
            db_id,
            flags,
            name: name.to_string(),
            path: format!("REF/node.0/db/{dir}/{name}.0"),
            health: None,
        }
    }

    #[test]
    fn empty_dbmap_matches_samba() {
        assert_eq!(getdbmap_text(&[], None), "Number of databases:0\n");
        assert_eq!(
            getdbmap_text(&[], Some("|")),
            "|ID|Name|Path|Persistent|Sticky|Unhealthy|Readonly|Replicated|\n"
        );
    }

    #[test]
    fn dbmap_with_flags_matches_samba() {
        let dbs = vec![
            info(0x4d2a432b, "g_lock.tdb", 0),
            info(0x50c36498, "capture_sticky.tdb", db::STICKY),
            info(0xdb491c38, "capture_ro.tdb", db::READONLY),
            info(0xf03ed0b2, "capture_mig.tdb", 0),
            info(0xfce09386, "capture_repl.tdb", db::REPLICATED),
            info(0x6ef91a74, "capture_pers.tdb", db::PERSISTENT),
            info(0x6896115a, "capture_vol.tdb", 0),
        ];
        let expected = "Number of databases:7
dbid:0x4d2a432b name:g_lock.tdb path:REF/node.0/db/volatile/g_lock.tdb.0
dbid:0x50c36498 name:capture_sticky.tdb path:REF/node.0/db/volatile/capture_sticky.tdb.0 STICKY
dbid:0xdb491c38 name:capture_ro.tdb path:REF/node.0/db/volatile/capture_ro.tdb.0 READONLY
dbid:0xf03ed0b2 name:capture_mig.tdb path:REF/node.0/db/volatile/capture_mig.tdb.0
dbid:0xfce09386 name:capture_repl.tdb path:REF/node.0/db/volatile/capture_repl.tdb.0 REPLICATED
dbid:0x6ef91a74 name:capture_pers.tdb path:REF/node.0/db/persistent/capture_pers.tdb.0 PERSISTENT
dbid:0x6896115a name:capture_vol.tdb path:REF/node.0/db/volatile/capture_vol.tdb.0
";
        assert_eq!(getdbmap_text(&dbs, None), expected);
    }

    #[test]
    fn machine_dbmap_matches_samba() {
        // As Samba 4.17 printed it for a ctdb-rs node.
        let dbs = vec![
            DbInfo {
                db_id: 0x7706f64d,
                flags: db::REPLICATED,
                name: "t3.tdb".into(),
                path: "/tmp/clinode/db/volatile/t3.tdb.0".into(),
                health: None,
            },
            DbInfo {
                db_id: 0x4c4dfd07,
                flags: db::PERSISTENT,
                name: "t2.tdb".into(),
                path: "/tmp/clinode/db/persistent/t2.tdb.0".into(),
                health: Some("NO-HEALTHY-NODES".into()),
            },
        ];
        assert_eq!(
            getdbmap_text(&dbs, Some("|")),
            "|ID|Name|Path|Persistent|Sticky|Unhealthy|Readonly|Replicated|
|0x7706F64D|t3.tdb|/tmp/clinode/db/volatile/t3.tdb.0|0|0|0|0|1|
|0x4C4DFD07|t2.tdb|/tmp/clinode/db/persistent/t2.tdb.0|1|0|1|0|0|
"
        );
        assert!(getdbmap_text(&dbs, None).contains("t2.tdb.0 PERSISTENT UNHEALTHY\n"));
    }

    #[test]
    fn getdbstatus_matches_samba() {
        assert_eq!(
            getdbstatus_text(
                0x6896115a,
                "capture_vol.tdb",
                "REF/node.0/db/volatile/capture_vol.tdb.0",
                0,
                None
            ),
            "dbid: 0x6896115a
name: capture_vol.tdb
path: REF/node.0/db/volatile/capture_vol.tdb.0
PERSISTENT: no
REPLICATED: no
STICKY: no
READONLY: no
HEALTH: OK
"
        );
        assert_eq!(
            getdbstatus_text(
                0x6ef91a74,
                "capture_pers.tdb",
                "REF/node.2/db/persistent/capture_pers.tdb.2",
                db::PERSISTENT,
                None
            ),
            "dbid: 0x6ef91a74
name: capture_pers.tdb
path: REF/node.2/db/persistent/capture_pers.tdb.2
PERSISTENT: yes
REPLICATED: no
STICKY: no
READONLY: no
HEALTH: OK
"
        );
        let s = getdbstatus_text(
            1,
            "r",
            "p",
            db::REPLICATED | db::STICKY | db::READONLY,
            Some("NO-HEALTHY-NODES"),
        );
        assert!(
            s.ends_with("REPLICATED: yes\nSTICKY: yes\nREADONLY: yes\nHEALTH: NO-HEALTHY-NODES\n"),
            "{s}"
        );
    }

    #[test]
    fn dbstatistics_matches_samba_layout() {
        use ctdb_protocol::control::{HotKey, LatencyCounter};
        let mut s = DbStatistics {
            db_ro_delegations: 3,
            db_ro_revokes: 1,
            locks_num_calls: 12,
            locks_num_current: 0,
            locks_num_pending: 2,
            locks_num_failed: 4_294_967_295,
            locks_latency: LatencyCounter {
                num: 4,
                min: 0.000_5,
                max: 0.25,
                total: 0.5,
            },
            num_hot_keys: 2,
            hot_keys: vec![
                HotKey {
                    count: 7,
                    key_ptr: 0,
                    key: bytes::Bytes::from_static(b"k\x01"),
                },
                HotKey {
                    count: 1,
                    key_ptr: 0,
                    key: bytes::Bytes::from_static(b"\xff"),
                },
                // Past num_hot_keys: not shown.
                HotKey {
                    count: 9,
                    key_ptr: 0,
                    key: bytes::Bytes::from_static(b"zz"),
                },
            ],
            ..Default::default()
        };
        s.hop_count_bucket[0] = 5;
        s.locks_buckets[15] = 2;
        assert_eq!(
            dbstatistics_text("locking.tdb", &s),
            "DB Statistics locking.tdb\n\
             \x20db_ro_delegations                  3\n\
             \x20db_ro_revokes                      1\n\
             \x20locks\n\
             \x20    num_calls                     12\n\
             \x20    num_current                    0\n\
             \x20    num_pending                    2\n\
             \x20    num_failed            4294967295\n\
             \x20hop_count_buckets: 5 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
             \x20lock_buckets: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2\n\
             \x20locks_latency      MIN/AVG/MAX     0.000500/0.125000/0.250000 sec out of 4\n\
             \x20vacuum_latency     MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0\n\
             \x20Num Hot Keys:     2\n\
             \x20    Count:7 Key:6b01\n\
             \x20    Count:1 Key:ff\n"
        );
        s.num_hot_keys = 0;
        assert!(dbstatistics_text("x", &s).ends_with(" Num Hot Keys:     0\n"));
    }
}
