//! Message handler ids (srvids): the seed's reserved values, then Samba 4.17's.

/// "Give me all messages": a handler registered with this id sees every message.
pub const ALL: u64 = u64::MAX;
/// The seed's recovery srvid; Samba 4.17 uses the same value for elections.
pub const RECOVERY: u64 = 0xF100_0000_0000_0000;
pub const RECONFIGURE: u64 = 0xF200_0000_0000_0000;
pub const RELEASE_IP: u64 = 0xF300_0000_0000_0000;
pub const TAKE_IP: u64 = 0xF301_0000_0000_0000;
pub const SET_NODE_FLAGS: u64 = 0xF400_0000_0000_0000;
pub const RECD_UPDATE_IP: u64 = 0xF500_0000_0000_0000;
pub const VACUUM_FETCH: u64 = 0xF700_0000_0000_0000;
pub const MEM_DUMP: u64 = 0xF800_0000_0000_0000;
pub const PUSH_NODE_FLAGS: u64 = 0xF900_0000_0000_0000;
pub const RELOAD_NODES: u64 = 0xFA00_0000_0000_0000;
pub const TAKEOVER_RUN: u64 = 0xFB00_0000_0000_0000;
pub const DISABLE_IP_CHECK: u64 = 0xFC00_0000_0000_0000;
pub const TAKEOVER_RUN_RESPONSE: u64 = 0xFD00_0000_0000_0000;
pub const SAMBA_NOTIFY: u64 = 0xFE00_0000_0000_0000;
pub const SAMBA_RANGE: u64 = 0xFE00_0000_0000_0000;
pub const NFSD_RANGE: u64 = 0xFE01_0000_0000_0000;
pub const ISCSID_RANGE: u64 = 0xFE02_0000_0000_0000;
pub const TEST_RANGE: u64 = 0xFE03_0000_0000_0000;
pub const TRAVERSE_RANGE: u64 = 0xFE04_0000_0000_0000;

/// Mask of the top 32 bits that name a reserved range.
pub const RANGE_MASK: u64 = 0xFFFF_FFFF_0000_0000;

/// Whether `srvid` lies in the range whose top 32 bits are those of `range`.
pub const fn in_range(srvid: u64, range: u64) -> bool {
    srvid & RANGE_MASK == range & RANGE_MASK
}

/// ctdb-rs's own srvids, between its recovery daemons (Samba's nodes never send them).
pub mod rs {
    /// A candidate asks for (or renews) its leader lease (see ctdb-recoverd's `lease`).
    pub const LEASE_REQUEST: u64 = 0xF1C5_0000_0000_0001;
    /// The answer to a lease request, to the candidate.
    pub const LEASE_REPLY: u64 = 0xF1C5_0000_0000_0002;
}

/// Srvids as Samba 4.17 numbers them where they differ from the seed.
pub mod samba {
    /// Election messages (the seed's RECOVERY value).
    pub const ELECTION: u64 = 0xF100_0000_0000_0000;
    /// Per-transfer recovery data: `RECOVERY | n`.
    pub const RECOVERY: u64 = 0xF001_0000_0000_0000;
    /// The leader's periodic announcement (data: its pnn).
    pub const LEADER: u64 = 0xF101_0000_0000_0000;
    pub const REBALANCE_NODE: u64 = 0xFB01_0000_0000_0000;
    pub const DISABLE_TAKEOVER_RUNS: u64 = 0xFB03_0000_0000_0000;
    pub const DISABLE_RECOVERIES: u64 = 0xFB04_0000_0000_0000;
    pub const NFSD_RANGE: u64 = 0xEE00_0000_0000_0000;
    pub const ISCSID_RANGE: u64 = 0xDE00_0000_0000_0000;
    pub const TOOL_RANGE: u64 = 0xCE00_0000_0000_0000;
    pub const CLIENT_RANGE: u64 = 0xBE00_0000_0000_0000;
    pub const TEST_RANGE: u64 = 0xAE00_0000_0000_0000;
}
