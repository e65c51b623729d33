//! Typed control payloads, one module per family, and the table that says which
//! payload every control opcode carries in its request and in its reply.
//!
//! Layouts follow the seed header where it defines them and Samba 4.17 elsewhere
//! (checked against the captured vectors). Controls that answer in the reply's status
//! word (GET_PNN, GET_PID, PING, GET_RECMODE, PROCESS_EXISTS, ...) have an
//! [`Shape::Empty`] reply.

pub mod db;
pub mod ip;
pub mod misc;
pub mod node;
pub mod script;
pub mod stats;
pub mod tunable;

use bytes::{BufMut, Bytes};

pub use db::{
    DbMap, DbMapEntry, DbPriority, DbSeqnumRequest, DbStatistics, DbVacuum, HotKey, KeyData,
    PullDb, PullDbExt, PullDbPage, RecBuffer, RecData, SetDmaster, TransDb, TraverseAll,
    TraverseAllExt, TraverseStart, TraverseStartExt,
};
pub use ip::{
    AddrInfo, Connection, Iface, IfaceList, PublicIp, PublicIpInfo, PublicIpList, PublicIpV4,
    TickleList,
};
pub use misc::{EchoData, NotifyData, PidSrvid, ServerId, SetFailpoint, SrvidList};
pub use node::{BanState, NodeAndFlags, NodeFlagChange, NodeMap, SockAddr, VnnMap};
pub use script::{Script, ScriptList};
pub use stats::{
    ClientCounters, LatencyCounter, NodeCounters, Statistics, StatisticsList, TimeoutCounters,
    Timeval, Uptime,
};
pub use tunable::{Tunable, TunableList, TunableName, VarList};

use crate::error::{DecodeError, Result};
use crate::opcode::Opcode;
use crate::wire::{Reader, Wire};

/// Decodes `count` items of at least `min_size` bytes each, reserving no more than the
/// input can hold.
pub(crate) fn get_vec<T: Wire>(r: &mut Reader<'_>, count: u32, min_size: usize) -> Result<Vec<T>> {
    let mut v = Vec::with_capacity(r.capacity_for(count, min_size));
    for _ in 0..count {
        v.push(T::decode(r)?);
    }
    Ok(v)
}

/// A C `bool`: one byte, 0 or 1.
pub(crate) fn get_bool(r: &mut Reader<'_>) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(DecodeError::InvalidValue {
            what: "bool",
            value: other.into(),
        }),
    }
}

pub(crate) fn put_bool<B: BufMut>(out: &mut B, v: bool) {
    out.put_u8(u8::from(v));
}

macro_rules! control_data {
    ($($variant:ident($ty:ty) => $doc:literal,)*) => {
        /// The layout of one control payload, without the data.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Shape {
            /// No data.
            Empty,
            /// Bytes this crate does not interpret (unknown or obsolete layouts).
            Raw,
            /// A NUL-terminated string filling the payload; an empty payload is none.
            String,
            /// Text filling the payload with no terminating NUL (Samba 4.17's
            /// DUMP_MEMORY reply).
            Text,
            /// A `double`.
            Double,
            /// `ctdb_statistics`: the seed's 336 bytes, or Samba 4.17's 488 on decode.
            Statistics,
            /// `ctdb_statistics_wire`, entries in either layout on decode.
            StatisticsList,
            /// `ctdb_tunable_list`.
            TunableList,
            /// `ctdb_db_statistics`.
            DbStatistics,
            $(#[doc = $doc] $variant,)*
        }

        /// A decoded control payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ControlData {
            Empty,
            Raw(Bytes),
            String(Option<String>),
            Text(String),
            Double(f64),
            Statistics(Box<Statistics>),
            StatisticsList(StatisticsList),
            TunableList(Box<TunableList>),
            DbStatistics(Box<DbStatistics>),
            $(#[doc = $doc] $variant($ty),)*
        }

        impl ControlData {
            /// The shape this value encodes as.
            pub fn shape(&self) -> Shape {
                match self {
                    ControlData::Empty => Shape::Empty,
                    ControlData::Raw(_) => Shape::Raw,
                    ControlData::String(_) => Shape::String,
                    ControlData::Text(_) => Shape::Text,
                    ControlData::Double(_) => Shape::Double,
                    ControlData::Statistics(_) => Shape::Statistics,
                    ControlData::StatisticsList(_) => Shape::StatisticsList,
                    ControlData::TunableList(_) => Shape::TunableList,
                    ControlData::DbStatistics(_) => Shape::DbStatistics,
                    $(ControlData::$variant(_) => Shape::$variant,)*
                }
            }

            /// Decodes a whole payload of the given shape (trailing bytes are an error).
            pub fn decode(shape: Shape, data: &[u8]) -> Result<Self> {
                Ok(match shape {
                    Shape::Empty => {
                        Reader::new(data).finish()?;
                        ControlData::Empty
                    }
                    Shape::Raw => ControlData::Raw(Bytes::copy_from_slice(data)),
                    Shape::String if data.is_empty() => ControlData::String(None),
                    Shape::String => ControlData::String(Some(String::from_bytes(data)?)),
                    Shape::Text => ControlData::Text(String::from_utf8(data.to_vec()).map_err(
                        |_| DecodeError::InvalidValue {
                            what: "text that is not UTF-8",
                            value: data.len() as u64,
                        },
                    )?),
                    Shape::Double => {
                        let mut r = Reader::new(data);
                        let v = r.f64()?;
                        r.finish()?;
                        ControlData::Double(v)
                    }
                    Shape::Statistics => {
                        ControlData::Statistics(Box::new(Statistics::decode_any(data)?))
                    }
                    Shape::StatisticsList => {
                        ControlData::StatisticsList(StatisticsList::decode_any(data)?)
                    }
                    Shape::TunableList => {
                        ControlData::TunableList(Box::new(TunableList::from_bytes(data)?))
                    }
                    Shape::DbStatistics => {
                        ControlData::DbStatistics(Box::new(DbStatistics::from_bytes(data)?))
                    }
                    $(Shape::$variant => ControlData::$variant(<$ty>::from_bytes(data)?),)*
                })
            }

            pub fn encode<B: BufMut>(&self, out: &mut B) {
                match self {
                    ControlData::Empty | ControlData::String(None) => {}
                    ControlData::Raw(b) => out.put_slice(b),
                    ControlData::String(Some(s)) => s.encode(out),
                    ControlData::Text(s) => out.put_slice(s.as_bytes()),
                    ControlData::Double(v) => out.put_f64_le(*v),
                    ControlData::Statistics(s) => s.encode(out),
                    ControlData::StatisticsList(s) => s.encode(out),
                    ControlData::TunableList(t) => t.encode(out),
                    ControlData::DbStatistics(d) => d.encode(out),
                    $(ControlData::$variant(v) => v.encode(out),)*
                }
            }
        }
    };
}

control_data! {
    Uint32(u32) => "A uint32 (log level, recovery mode, role, capabilities, ...).",
    Int32(i32) => "An int32 (a pid, tdb flags).",
    Uint64(u64) => "A uint64 (a srvid, a sequence number).",
    DbId(u32) => "A database id.",
    DbSeqnumRequest(DbSeqnumRequest) => "db_id and 4 bytes of padding (GET_DB_SEQNUM).",
    NodeMap(NodeMap) => "`ctdb_node_map`.",
    VnnMap(VnnMap) => "`ctdb_vnn_map`.",
    NodeFlagChange(NodeFlagChange) => "`ctdb_node_flag_change`.",
    BanState(BanState) => "`ctdb_ban_state`.",
    SockAddr(SockAddr) => "`ctdb_sock_addr`.",
    DbMap(DbMap) => "`ctdb_dbid_map`.",
    RecData(RecData) => "`ctdb_rec_data`.",
    RecBuffer(RecBuffer) => "`ctdb_rec_buffer` / marshall buffer.",
    PullDb(PullDb) => "`ctdb_pulldb`.",
    PullDbExt(PullDbExt) => "`ctdb_pulldb_ext`.",
    PullDbPage(PullDbPage) => "ctdb-rs's paged pull: db_id, lmaster, max_bytes, after.",
    TransDb(TransDb) => "`ctdb_transdb`.",
    DbPriority(DbPriority) => "`ctdb_db_priority`.",
    SetDmaster(SetDmaster) => "db_id and dmaster (obsolete SET_DMASTER).",
    TraverseStart(TraverseStart) => "`ctdb_traverse_start`.",
    TraverseStartExt(TraverseStartExt) => "`ctdb_traverse_start_ext`.",
    TraverseAll(TraverseAll) => "`ctdb_traverse_all`.",
    TraverseAllExt(TraverseAllExt) => "`ctdb_traverse_all_ext`.",
    KeyData(KeyData) => "`ctdb_key_data`.",
    DbVacuum(DbVacuum) => "`ctdb_db_vacuum`.",
    Tunable(Tunable) => "`ctdb_tunable`.",
    TunableName(TunableName) => "A length-prefixed tunable name.",
    VarList(VarList) => "`ctdb_var_list`.",
    Uptime(Uptime) => "`ctdb_uptime`.",
    PublicIp(PublicIp) => "`ctdb_public_ip`.",
    PublicIpV4(PublicIpV4) => "The seed's obsolete `ctdb_public_ipv4`.",
    PublicIpList(PublicIpList) => "`ctdb_public_ip_list`.",
    PublicIpInfo(PublicIpInfo) => "`ctdb_public_ip_info`.",
    Iface(Iface) => "`ctdb_iface`.",
    IfaceList(IfaceList) => "`ctdb_iface_list`.",
    Connection(Connection) => "`ctdb_connection`.",
    TickleList(TickleList) => "`ctdb_tickle_list`.",
    AddrInfo(AddrInfo) => "`ctdb_addr_info`.",
    ScriptList(ScriptList) => "The seed's `ctdb_scripts_wire`.",
    ServerId(ServerId) => "`ctdb_server_id`.",
    PidSrvid(PidSrvid) => "`ctdb_pid_srvid`.",
    NotifyData(NotifyData) => "`ctdb_notify_data`.",
    EchoData(EchoData) => "`ctdb_echo_data`.",
    SetFailpoint(SetFailpoint) => "ctdb-rs's fault point switch: component, name, actions.",
    SrvidList(SrvidList) => "An array of srvids (CHECK_SRVIDS).",
}

impl ControlData {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// True unless the payload was left uninterpreted.
    pub fn is_typed(&self) -> bool {
        !matches!(self, ControlData::Raw(_))
    }
}

/// The request and reply shapes of every control: the one table of this module.
pub const fn shapes(opcode: Opcode) -> (Shape, Shape) {
    use Opcode as O;
    use Shape as S;
    match opcode {
        // Process, statistics, debug.
        O::ProcessExists => (S::Int32, S::Empty), // pid; answer in status
        O::Statistics => (S::Empty, S::Statistics),
        O::Ping => (S::Empty, S::Empty), // number of clients in status
        O::GetDebug => (S::Empty, S::Uint32),
        O::SetDebug => (S::Uint32, S::Empty),
        O::StatisticsReset => (S::Empty, S::Empty),
        O::DumpMemory => (S::Empty, S::Text), // Samba sends no NUL
        O::GetPid => (S::Empty, S::Empty),    // pid in status
        O::GetPnn => (S::Empty, S::Empty),    // pnn in status
        O::Shutdown => (S::Empty, S::Empty),
        O::Uptime => (S::Empty, S::Uptime),
        O::GetCapabilities => (S::Empty, S::Uint32),
        O::GetStatHistory => (S::Empty, S::StatisticsList),
        O::GetRunstate => (S::Empty, S::Uint32),
        O::EchoData => (S::EchoData, S::EchoData),
        O::GetLog => (S::Raw, S::Empty), // obsolete, layout not confirmed
        O::ClearLog => (S::Empty, S::Empty),
        // Nodes and cluster state.
        O::Getvnnmap => (S::Empty, S::VnnMap),
        O::Setvnnmap => (S::VnnMap, S::Empty),
        O::GetNodemapV4 => (S::Empty, S::Raw), // obsolete
        O::GetNodemap => (S::Empty, S::NodeMap),
        O::GetNodesFile => (S::Empty, S::NodeMap),
        O::ReloadNodesFile => (S::Empty, S::Empty),
        O::GetRecmode => (S::Empty, S::Empty), // mode in status
        O::SetRecmode => (S::Uint32, S::Empty),
        O::GetRecmaster => (S::Empty, S::Empty), // pnn in status
        O::SetRecmaster => (S::Uint32, S::Empty),
        O::GetMonmode => (S::Empty, S::Empty), // mode in status
        O::ModifyFlags => (S::NodeFlagChange, S::Empty),
        O::StartRecovery => (S::Empty, S::Empty),
        O::EndRecovery => (S::Empty, S::Empty),
        O::RecdPing => (S::Empty, S::Empty),
        O::RecdReclockLatency => (S::Double, S::Empty),
        O::GetReclockFile => (S::Empty, S::String),
        O::SetReclockFile => (S::String, S::Empty),
        O::StopNode => (S::Empty, S::Empty),
        O::ContinueNode => (S::Empty, S::Empty),
        O::SetLmasterrole => (S::Uint32, S::Empty),
        O::SetRecmasterrole => (S::Uint32, S::Empty),
        O::SetBanState => (S::BanState, S::Empty),
        O::GetBanState => (S::Empty, S::BanState),
        O::Startup => (S::Empty, S::Empty),
        O::DisableNode => (S::Empty, S::Empty),
        O::EnableNode => (S::Empty, S::Empty),
        // Clients and srvids.
        O::RegisterSrvid => (S::Empty, S::Empty), // srvid in the header
        O::DeregisterSrvid => (S::Empty, S::Empty),
        O::CheckSrvids => (S::SrvidList, S::Raw), // obsolete; reply a byte bitmap
        O::RegisterServerId => (S::ServerId, S::Empty), // obsolete
        O::UnregisterServerId => (S::ServerId, S::Empty), // obsolete
        O::CheckServerId => (S::ServerId, S::Empty), // obsolete; answer in status
        O::GetServerIdList => (S::Empty, S::Raw), // obsolete, layout not confirmed
        O::RegisterNotify => (S::NotifyData, S::Empty),
        O::DeregisterNotify => (S::Uint64, S::Empty),
        O::CheckPidSrvid => (S::PidSrvid, S::Empty), // answer in status
        O::TunnelRegister => (S::Empty, S::Empty),   // tunnel id in the header's srvid
        O::TunnelDeregister => (S::Empty, S::Empty),
        // Tunables.
        O::SetTunable => (S::Tunable, S::Empty),
        O::GetTunable => (S::TunableName, S::Uint32),
        O::ListTunables => (S::Empty, S::VarList),
        O::GetAllTunables => (S::Empty, S::TunableList),
        // Databases.
        O::Getdbpath => (S::DbId, S::String),
        O::GetDbmap => (S::Empty, S::DbMap),
        O::GetDbname => (S::DbId, S::String),
        O::DbAttach => (S::String, S::DbId),
        O::DbAttachPersistent => (S::String, S::DbId),
        O::DbAttachReplicated => (S::String, S::DbId),
        O::DbDetach => (S::DbId, S::Empty),
        O::SetCall => (S::Raw, S::Empty), // obsolete: carried a function pointer
        O::EnableSeqnum => (S::DbId, S::Empty),
        O::UpdateSeqnum => (S::DbId, S::Empty),
        O::GetDbSeqnum => (S::DbSeqnumRequest, S::Uint64),
        O::SetDbPriority => (S::DbPriority, S::Empty),
        O::GetDbPriority => (S::DbId, S::Empty), // priority in status
        O::DbSetHealthy => (S::DbId, S::Empty),
        O::DbGetHealth => (S::DbId, S::String), // none = healthy
        O::SetDbReadonly => (S::DbId, S::Empty),
        O::SetDbSticky => (S::DbId, S::Empty),
        O::GetDbStatistics => (S::DbId, S::DbStatistics),
        O::DbOpenFlags => (S::DbId, S::Int32),
        O::SetDmaster => (S::SetDmaster, S::Empty), // obsolete
        O::ScheduleForDeletion => (S::KeyData, S::Empty),
        O::TryDeleteRecords => (S::RecBuffer, S::RecBuffer),
        O::VacuumFetch => (S::RecBuffer, S::Empty),
        O::DbVacuum => (S::DbVacuum, S::Empty),
        // Records, persistent updates and transactions.
        O::UpdateRecord => (S::RecBuffer, S::Empty),
        O::PersistentStore => (S::RecBuffer, S::Empty), // obsolete
        O::TransactionStart => (S::DbId, S::Empty),     // obsolete
        O::TransactionCommit => (S::DbId, S::Empty),    // obsolete
        O::TransactionCancel => (S::Empty, S::Empty),   // obsolete
        O::StartPersistentUpdate => (S::Empty, S::Empty), // obsolete
        O::CancelPersistentUpdate => (S::Empty, S::Empty), // obsolete
        O::Trans2Commit => (S::RecBuffer, S::Empty),    // obsolete
        O::Trans2Finished => (S::RecBuffer, S::Empty),  // obsolete
        O::Trans2Error => (S::RecBuffer, S::Empty),     // obsolete
        O::Trans2CommitRetry => (S::RecBuffer, S::Empty), // obsolete
        O::Trans2Active => (S::DbId, S::Empty),         // obsolete; answer in status
        O::Trans3Commit => (S::RecBuffer, S::Empty),
        // Traverse.
        O::TraverseStart => (S::TraverseStart, S::Empty),
        O::TraverseStartExt => (S::TraverseStartExt, S::Empty),
        O::TraverseAll => (S::TraverseAll, S::Empty),
        O::TraverseAllExt => (S::TraverseAllExt, S::Empty),
        O::TraverseData => (S::RecData, S::Empty),
        O::TraverseKill => (S::TraverseStart, S::Empty),
        // Recovery: the seed's way and Samba's per-database way.
        O::Freeze => (S::Empty, S::Empty),
        O::Thaw => (S::Empty, S::Empty),
        O::PullDb => (S::PullDb, S::RecBuffer),
        O::PullDbPage => (S::PullDbPage, S::RecBuffer),
        // Fault injection in test clusters: the reply is the point's fire count.
        O::SetFailpoint => (S::SetFailpoint, S::Uint64),
        O::PushDb => (S::RecBuffer, S::Empty),
        O::WipeDatabase => (S::TransDb, S::Empty),
        O::ReceiveRecords => (S::RecBuffer, S::RecBuffer),
        O::DbFreeze => (S::DbId, S::Empty),
        O::DbThaw => (S::DbId, S::Empty),
        O::DbTransactionStart => (S::TransDb, S::Empty),
        O::DbTransactionCommit => (S::TransDb, S::Empty),
        O::DbTransactionCancel => (S::DbId, S::Empty),
        O::DbPull => (S::PullDbExt, S::Uint32), // records arrive as messages
        O::DbPushStart => (S::PullDbExt, S::Empty),
        O::DbPushConfirm => (S::DbId, S::Uint32),
        // Public IPs, interfaces, TCP connections.
        O::TakeoverIpV4 => (S::PublicIpV4, S::Empty), // obsolete
        O::ReleaseIpV4 => (S::PublicIpV4, S::Empty),  // obsolete
        O::GetPublicIpsV4 => (S::Empty, S::Raw),      // obsolete
        O::TakeoverIp => (S::PublicIp, S::Empty),
        O::ReleaseIp => (S::PublicIp, S::Empty),
        O::GetPublicIps => (S::Empty, S::PublicIpList),
        O::GetPublicIpInfo => (S::SockAddr, S::PublicIpInfo),
        O::AddPublicIp => (S::AddrInfo, S::Empty),
        O::DelPublicIp => (S::AddrInfo, S::Empty),
        O::SendGratiousArp => (S::AddrInfo, S::Empty),
        O::ReloadPublicIps => (S::Empty, S::Empty),
        O::Ipreallocated => (S::Empty, S::Empty),
        O::GetIfaces => (S::Empty, S::IfaceList),
        O::SetIfaceLinkState => (S::Iface, S::Empty),
        O::SetNatgwstate => (S::Uint32, S::Empty), // obsolete
        O::TcpClient => (S::Connection, S::Empty),
        O::TcpAdd => (S::Connection, S::Empty),
        O::TcpRemove => (S::Connection, S::Empty),
        O::TcpAddDelayedUpdate => (S::Connection, S::Empty),
        O::TcpClientDisconnected => (S::Connection, S::Empty),
        O::TcpClientPassed => (S::Connection, S::Empty),
        O::KillTcp => (S::Connection, S::Empty), // obsolete
        O::GetTcpTickleList => (S::SockAddr, S::TickleList),
        O::SetTcpTickleList => (S::TickleList, S::Empty),
        // Event scripts (the seed's; Samba 4.17 moved them to its eventd).
        O::GetEventScriptStatus => (S::Uint32, S::ScriptList), // event number
        O::RunEventscripts => (S::String, S::Empty),
        O::EnableScript => (S::String, S::Empty),
        O::DisableScript => (S::String, S::Empty),
        O::EnableMonitor => (S::Empty, S::Empty),
        O::DisableMonitor => (S::Empty, S::Empty),
        O::Unknown(_) => (S::Raw, S::Raw),
    }
}

pub const fn request_shape(opcode: Opcode) -> Shape {
    shapes(opcode).0
}

pub const fn reply_shape(opcode: Opcode) -> Shape {
    shapes(opcode).1
}

/// Decodes the data of a REQ_CONTROL with this opcode.
pub fn decode_request(opcode: Opcode, data: &[u8]) -> Result<ControlData, DecodeError> {
    ControlData::decode(request_shape(opcode), data)
}

/// Decodes the data of a successful REPLY_CONTROL (status 0) to this opcode.
pub fn decode_reply(opcode: Opcode, data: &[u8]) -> Result<ControlData, DecodeError> {
    ControlData::decode(reply_shape(opcode), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opcode_has_shapes_and_unknowns_are_raw() {
        let typed = Opcode::ALL
            .iter()
            .filter(|&&op| request_shape(op) != Shape::Raw && reply_shape(op) != Shape::Raw)
            .count();
        assert!(typed >= Opcode::ALL.len() - 8, "{typed}");
        assert_eq!(shapes(Opcode::Unknown(9999)), (Shape::Raw, Shape::Raw));
        assert_eq!(shapes(Opcode::GetPnn), (Shape::Empty, Shape::Empty));
        assert_eq!(reply_shape(Opcode::GetNodemap), Shape::NodeMap);
    }

    #[test]
    fn scalars_and_strings() {
        let d = decode_reply(Opcode::GetCapabilities, &[3, 0, 3, 0]).unwrap();
        assert_eq!(d, ControlData::Uint32(0x00030003));
        assert_eq!(d.to_bytes(), [3, 0, 3, 0]);
        assert_eq!(
            decode_reply(Opcode::GetReclockFile, &[]),
            Ok(ControlData::String(None))
        );
        let s = decode_reply(Opcode::GetDbname, b"g_lock.tdb\0").unwrap();
        assert_eq!(s, ControlData::String(Some("g_lock.tdb".into())));
        assert_eq!(s.to_bytes(), b"g_lock.tdb\0");
        assert!(decode_reply(Opcode::GetDbname, b"g_lock.tdb").is_err());
        assert!(decode_request(Opcode::GetPnn, &[0]).is_err());
        let l = decode_request(Opcode::RecdReclockLatency, &1.5f64.to_le_bytes()).unwrap();
        assert_eq!(l, ControlData::Double(1.5));
        assert_eq!(l.to_bytes(), 1.5f64.to_le_bytes());
        let raw = decode_request(Opcode::Unknown(9999), &[1, 2, 3]).unwrap();
        assert!(!raw.is_typed());
        assert_eq!(raw.to_bytes(), [1, 2, 3]);
    }

    #[test]
    fn shape_of_decoded_value_matches_table() {
        let d = decode_request(Opcode::GetDbSeqnum, &[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(d.shape(), request_shape(Opcode::GetDbSeqnum));
        assert_eq!(d.to_bytes().len(), 8);
    }
}
