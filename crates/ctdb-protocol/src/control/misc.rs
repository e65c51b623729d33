//! Clients and processes: server ids, pid/srvid pairs, notify data, echo data and
//! srvid lists.

use bytes::{BufMut, Bytes};

use super::get_vec;
use crate::error::{DecodeError, Result};
use crate::wire::{Reader, Wire};

/// `ctdb_server_id` (Samba 4.17, the same as Samba's `server_id`): pid u64, task_id,
/// vnn, unique_id u64 (24 bytes). Used for REGISTER/UNREGISTER/CHECK_SERVER_ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ServerId {
    pub pid: u64,
    pub task_id: u32,
    pub vnn: u32,
    pub unique_id: u64,
}

impl ServerId {
    pub const SIZE: usize = 24;
}

impl Wire for ServerId {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u64_le(self.pid);
        out.put_u32_le(self.task_id);
        out.put_u32_le(self.vnn);
        out.put_u64_le(self.unique_id);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pid: r.u64()?,
            task_id: r.u32()?,
            vnn: r.u32()?,
            unique_id: r.u64()?,
        })
    }
}

/// `ctdb_pid_srvid` (CHECK_PID_SRVID): pid i32 then srvid u64, packed field by field
/// as Samba 4.17 sends it (12 bytes, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PidSrvid {
    pub pid: i32,
    pub srvid: u64,
}

impl Wire for PidSrvid {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i32_le(self.pid);
        out.put_u64_le(self.srvid);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            pid: r.i32()?,
            srvid: r.u64()?,
        })
    }
}

/// `ctdb_notify_data` (REGISTER_NOTIFY): srvid, uint32 length, data sent to the srvid
/// when the client disconnects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyData {
    pub srvid: u64,
    pub data: Bytes,
}

impl Wire for NotifyData {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u64_le(self.srvid);
        out.put_u32_le(self.data.len() as u32);
        out.put_slice(&self.data);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            srvid: r.u64()?,
            data: Bytes::copy_from_slice(r.len_prefixed()?),
        })
    }
}

/// `ctdb_echo_data` (ECHO_DATA request and reply): timeout in milliseconds, uint32
/// length, data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EchoData {
    pub timeout: u32,
    pub data: Bytes,
}

impl Wire for EchoData {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.timeout);
        out.put_u32_le(self.data.len() as u32);
        out.put_slice(&self.data);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            timeout: r.u32()?,
            data: Bytes::copy_from_slice(r.len_prefixed()?),
        })
    }
}

/// CHECK_SRVIDS request: an array of uint64 srvids filling the payload, no count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SrvidList {
    pub srvids: Vec<u64>,
}

impl Wire for SrvidList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        for s in &self.srvids {
            out.put_u64_le(*s);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let n = (r.remaining() / 8) as u32;
        Ok(Self {
            srvids: get_vec(r, n, 8)?,
        })
    }
}

/// SET_FAILPOINT (a ctdb-rs extension, test clusters only): switches a named fault
/// point of one component of the node on or off. Layout: `component NUL name`, then
/// `NUL actions` when the request changes the point (the `fail` crate's action string,
/// e.g. `return`, `1*return`, `return(abort)`; empty: remove the point); without that
/// third field the request only reads. No terminating NUL. The reply is a uint64: how
/// many times the point fired in that process before this request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetFailpoint {
    /// `db`, `recoverd` or `transport`: whom transport routes the control to.
    pub component: String,
    pub name: String,
    /// `None`: only read the count; `Some("")`: remove the point.
    pub actions: Option<String>,
}

impl Wire for SetFailpoint {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_slice(self.component.as_bytes());
        out.put_u8(0);
        out.put_slice(self.name.as_bytes());
        if let Some(actions) = &self.actions {
            out.put_u8(0);
            out.put_slice(actions.as_bytes());
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let mut fields = r.rest().splitn(3, |&b| b == 0);
        let mut field = |index: u64, may_be_empty: bool| -> Result<Option<String>> {
            let Some(bytes) = fields.next() else {
                return Ok(None);
            };
            match std::str::from_utf8(bytes) {
                Ok(s) if may_be_empty || !s.is_empty() => Ok(Some(s.to_string())),
                _ => Err(DecodeError::InvalidValue {
                    what: "SET_FAILPOINT field (component and name: non-empty UTF-8)",
                    value: index,
                }),
            }
        };
        let component = field(0, false)?.unwrap_or_default();
        let name = field(1, false)?.ok_or(DecodeError::UnterminatedString)?;
        let actions = field(2, true)?;
        Ok(Self {
            component,
            name,
            actions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ServerId::default().to_bytes().len(), ServerId::SIZE);
        let p = PidSrvid {
            pid: 2340,
            srvid: 0xf100000000000000,
        };
        let b = p.to_bytes();
        assert_eq!(b.len(), 12);
        assert_eq!(PidSrvid::from_bytes(&b), Ok(p));
        let e = EchoData {
            timeout: 100,
            data: Bytes::from_static(b"abc"),
        };
        assert_eq!(e.to_bytes().len(), 11);
        assert_eq!(EchoData::from_bytes(&e.to_bytes()), Ok(e));
        let n = NotifyData {
            srvid: 1,
            data: Bytes::from_static(b"bye"),
        };
        assert_eq!(n.to_bytes().len(), 15);
        assert_eq!(NotifyData::from_bytes(&n.to_bytes()), Ok(n));
        let s = SrvidList { srvids: vec![1, 2] };
        assert_eq!(SrvidList::from_bytes(&s.to_bytes()), Ok(s));
        assert!(SrvidList::from_bytes(&[0; 9]).is_err());
    }

    #[test]
    fn set_failpoint_fields() {
        let set = SetFailpoint {
            component: "db".into(),
            name: "db::wipe".into(),
            actions: Some("return".into()),
        };
        assert_eq!(set.to_bytes(), b"db\0db::wipe\0return");
        assert_eq!(SetFailpoint::from_bytes(&set.to_bytes()), Ok(set));
        let remove = SetFailpoint::from_bytes(b"db\0db::wipe\0").unwrap();
        assert_eq!(remove.actions.as_deref(), Some(""));
        let read = SetFailpoint::from_bytes(b"recoverd\0recoverd::push").unwrap();
        assert_eq!(read.actions, None);
        assert_eq!(SetFailpoint::from_bytes(&read.to_bytes()), Ok(read));
        for bad in [
            &b""[..],
            b"db",
            b"db\0",
            b"\0x\0return",
            b"db\0\xff\0return",
        ] {
            assert!(SetFailpoint::from_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
