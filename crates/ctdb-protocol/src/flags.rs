//! Flag words and well-known numbers of the seed.

/// `CTDB_PATH`: the default client socket.
pub const DEFAULT_SOCKET: &str = "/tmp/ctdb.socket";
/// `CTDB_PORT`: the default node-to-node TCP port.
pub const DEFAULT_PORT: u16 = 4379;

/// Call functions built into every daemon.
pub mod call {
    pub const NULL_FUNC: u32 = 0xFF00_0001;
    pub const FETCH_FUNC: u32 = 0xFF00_0002;
    /// Samba's later call that returns the ltdb header with the data.
    pub const FETCH_WITH_HEADER_FUNC: u32 = 0xFF00_0003;
    /// ctdb-rs extension (clients of ours cannot write the ltdb directly, as Samba's
    /// do): compare-and-store. Call data: a u32 expected length (`STORE_ANYWAY`: store
    /// whatever is there), the expected data, then the new data. REPLY_CALL status 0
    /// when stored, [`COMPARE_MISMATCH`] when the record held something else; the reply
    /// data is the record's data after the call. Storing empty data deletes.
    pub const COMPARE_STORE_FUNC: u32 = 0xFF00_0010;
    /// Expected length of a [`COMPARE_STORE_FUNC`] that stores unconditionally.
    pub const STORE_ANYWAY: u32 = u32::MAX;
    /// REPLY_CALL status of a [`COMPARE_STORE_FUNC`] that found other data.
    pub const COMPARE_MISMATCH: u32 = 1;

    /// `ctdb_call.flags` / REQ_CALL flags.
    pub const IMMEDIATE_MIGRATION: u32 = 0x0000_0001;
    pub const VACUUM_MIGRATION: u32 = 0x0000_0002;
    /// Samba's read-only delegation request.
    pub const WANT_READONLY: u32 = 0x0000_0004;
}

/// Destination node numbers with a special meaning.
pub mod dest {
    /// Used on the client socket: the local daemon.
    pub const CURRENT_NODE: u32 = 0xF000_0001;
    /// Every node of the cluster, active or not.
    pub const BROADCAST_ALL: u32 = 0xF000_0002;
    /// Every node of the current vnn map.
    pub const BROADCAST_VNNMAP: u32 = 0xF000_0003;
    /// Every connected node.
    pub const BROADCAST_CONNECTED: u32 = 0xF000_0004;
    /// Not a node (`CTDB_UNKNOWN_PNN` in Samba).
    pub const UNKNOWN_PNN: u32 = 0xFFFF_FFFF;

    pub const fn is_broadcast(destnode: u32) -> bool {
        matches!(
            destnode,
            BROADCAST_ALL | BROADCAST_VNNMAP | BROADCAST_CONNECTED
        )
    }
}

/// REQ_CONTROL flags.
pub mod control {
    pub const NOREPLY: u32 = 0x0000_0001;
    pub const OPCODE_SPECIFIC: u32 = 0xFFFF_0000;
    /// Samba: a DB_ATTACH sent while recovering a peer that lacks the database.
    pub const ATTACH_RECOVERY: u32 = 0x0002_0000;
}

/// Node flags of the node map.
pub mod node {
    pub const DISCONNECTED: u32 = 0x0000_0001;
    pub const UNHEALTHY: u32 = 0x0000_0002;
    pub const PERMANENTLY_DISABLED: u32 = 0x0000_0004;
    pub const BANNED: u32 = 0x0000_0008;
    pub const DELETED: u32 = 0x0000_0010;
    pub const STOPPED: u32 = 0x0000_0020;
    pub const DISABLED: u32 = UNHEALTHY | PERMANENTLY_DISABLED;
    pub const INACTIVE: u32 = DELETED | DISCONNECTED | BANNED | STOPPED;
}

/// Database flags of the db map (Samba 4.17).
pub mod db {
    pub const PERSISTENT: u8 = 0x01;
    pub const READONLY: u8 = 0x02;
    pub const STICKY: u8 = 0x04;
    pub const REPLICATED: u8 = 0x08;
}

/// Node capabilities (GET_CAPABILITIES).
pub mod capability {
    pub const RECMASTER: u32 = 0x0000_0001;
    pub const LMASTER: u32 = 0x0000_0002;
    pub const LVS: u32 = 0x0000_0004;
    pub const NATGW: u32 = 0x0000_0008;
    /// What a default node answers: 0x00030003 in Samba 4.17.
    pub const DEFAULT: u32 = 0x0003_0003;
}

/// Recovery modes (GET/SET_RECMODE).
pub mod recmode {
    pub const NORMAL: u32 = 0;
    pub const ACTIVE: u32 = 1;
}

/// The generation a node uses before its first recovery.
pub const INVALID_GENERATION: u32 = 1;

/// Key of the transaction lock record in a persistent database.
pub const TRANSACTION_LOCK_KEY: &str = "__transaction_lock__";
/// Key of the sequence number record in a persistent database.
pub const DB_SEQNUM_KEY: &str = "__db_sequence_number__";

/// Status of a TRANS3_COMMIT that ctdb-rs refused because a record in it changed
/// since the client read it (its RSN is not above the stored one): nothing of the
/// commit was applied, and the client may run its transaction again. Other failures
/// are -1, as Samba's.
pub const TRANS3_CONFLICT: i32 = 1;

/// Results of TRANS2_COMMIT.
pub mod trans2 {
    pub const SUCCESS: u32 = 0;
    pub const TIMEOUT: u32 = 1;
    pub const ALLFAIL: u32 = 2;
    pub const SOMEFAIL: u32 = 3;
}

pub const CTDB_ERR_INVALID: u32 = 1;
pub const CTDB_ERR_NOMEM: u32 = 2;
