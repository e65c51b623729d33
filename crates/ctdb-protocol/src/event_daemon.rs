//! The event daemon protocol of Samba 4.17 (`ctdb/event/event_protocol.h`): what
//! Samba's `ctdb event run|status` and `ctdb scriptstatus` (through its `ctdb-event`
//! helper) send to `<run dir>/eventd.socket`, and what they expect back.
//!
//! A message is a 12-byte header — total length, a version (0 in every message Samba's
//! tool and daemon exchange), a request id the reply echoes — followed by a `uint32`
//! command and its fields. Strings are "stringn": a `uint32` length that counts the
//! terminating NUL, then the bytes and the NUL; length 0 is a NULL string. A
//! `struct timeval` is two 64-bit fields. Integers are little-endian.

use bytes::BufMut;

use crate::control::Timeval;
use crate::error::{DecodeError, Result};
use crate::wire::Reader;

/// The header: length, version, reqid.
pub const HEADER_LEN: usize = 12;
/// Run every script even after one fails (`CTDB_EVENT_RUN_ALL`, Samba's test mode).
pub const RUN_ALL: u32 = 1;

const CMD_RUN: u32 = 1;
const CMD_STATUS: u32 = 2;
const CMD_SCRIPT: u32 = 3;

/// `run <timeout> <component> <event> <args>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    pub component: String,
    pub event: String,
    /// The event's arguments, one space-separated string (NULL when there are none).
    pub args: Option<String>,
    /// Seconds; 0 leaves the daemon's own timeout.
    pub timeout: u32,
    pub flags: u32,
}

/// `status <component> <event>`: the last completed run of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    pub component: String,
    pub event: String,
}

/// Enable or disable one script of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRequest {
    pub component: String,
    pub script: String,
    pub enable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Run(RunRequest),
    Status(StatusRequest),
    Script(ScriptRequest),
}

/// One script of a run, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatus {
    pub name: String,
    pub begin: Timeval,
    pub end: Timeval,
    /// 0, the script's exit status, or a negative errno (`-ETIMEDOUT`, `-ENOEXEC` for a
    /// disabled script, ...).
    pub result: i32,
    /// NULL on the wire when empty.
    pub output: String,
}

/// The answer to `status` when its result is 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The run's outcome: 0, or the status of the script that ended it.
    pub summary: i32,
    pub scripts: Vec<ScriptStatus>,
}

/// A reply: the command it answers, a result (0 or a positive errno) and, for a
/// successful `status`, the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Run { result: i32 },
    Status { result: i32, status: Option<Status> },
    Script { result: i32 },
}

/// A request or reply with its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<T> {
    pub version: u32,
    pub reqid: u32,
    pub body: T,
}

fn put_stringn<B: BufMut>(out: &mut B, s: Option<&str>) {
    match s {
        None => out.put_u32_le(0),
        Some(s) => {
            out.put_u32_le(s.len() as u32 + 1);
            out.put_slice(s.as_bytes());
            out.put_u8(0);
        }
    }
}

/// A stringn; the text ends at its first NUL, as C reads it.
fn get_stringn(r: &mut Reader<'_>) -> Result<Option<String>> {
    let bytes = r.len_prefixed()?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    Ok(Some(String::from_utf8_lossy(text).into_owned()))
}

fn get_string(r: &mut Reader<'_>, what: &'static str) -> Result<String> {
    get_stringn(r)?.ok_or(DecodeError::InvalidValue { what, value: 0 })
}

fn put_timeval<B: BufMut>(out: &mut B, t: &Timeval) {
    out.put_i64_le(t.sec);
    out.put_i64_le(t.usec);
}

fn get_timeval(r: &mut Reader<'_>) -> Result<Timeval> {
    Ok(Timeval {
        sec: r.i64()?,
        usec: r.i64()?,
    })
}

/// Header and body into one message, the length field filled in.
fn frame(version: u32, reqid: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_u32_le(0);
    out.put_u32_le(version);
    out.put_u32_le(reqid);
    body(&mut out);
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn unknown_command(cmd: u32) -> DecodeError {
    DecodeError::InvalidValue {
        what: "event command",
        value: u64::from(cmd),
    }
}

/// Reads a header and checks its length against the message's.
fn header(r: &mut Reader<'_>, total: usize) -> Result<(u32, u32)> {
    let length = r.u32()?;
    if length as usize != total {
        return Err(DecodeError::InvalidValue {
            what: "event message length",
            value: u64::from(length),
        });
    }
    Ok((r.u32()?, r.u32()?))
}

impl Message<Request> {
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(self.version, self.reqid, |out| match &self.body {
            Request::Run(run) => {
                out.put_u32_le(CMD_RUN);
                put_stringn(out, Some(&run.component));
                put_stringn(out, Some(&run.event));
                put_stringn(out, run.args.as_deref());
                out.put_u32_le(run.timeout);
                out.put_u32_le(run.flags);
            }
            Request::Status(status) => {
                out.put_u32_le(CMD_STATUS);
                put_stringn(out, Some(&status.component));
                put_stringn(out, Some(&status.event));
            }
            Request::Script(script) => {
                out.put_u32_le(CMD_SCRIPT);
                put_stringn(out, Some(&script.component));
                put_stringn(out, Some(&script.script));
                out.put_u32_le(u32::from(script.enable));
            }
        })
    }

    /// One whole message, as the length field delimits it.
    pub fn from_bytes(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let (version, reqid) = header(&mut r, buf.len())?;
        let body = match r.u32()? {
            CMD_RUN => Request::Run(RunRequest {
                component: get_string(&mut r, "run component")?,
                event: get_string(&mut r, "run event")?,
                args: get_stringn(&mut r)?,
                timeout: r.u32()?,
                flags: r.u32()?,
            }),
            CMD_STATUS => Request::Status(StatusRequest {
                component: get_string(&mut r, "status component")?,
                event: get_string(&mut r, "status event")?,
            }),
            CMD_SCRIPT => Request::Script(ScriptRequest {
                component: get_string(&mut r, "script component")?,
                script: get_string(&mut r, "script name")?,
                enable: match r.u32()? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(DecodeError::InvalidValue {
                            what: "script action",
                            value: u64::from(other),
                        })
                    }
                },
            }),
            other => return Err(unknown_command(other)),
        };
        r.finish()?;
        Ok(Self {
            version,
            reqid,
            body,
        })
    }
}

impl Message<Reply> {
    pub fn to_bytes(&self) -> Vec<u8> {
        frame(self.version, self.reqid, |out| match &self.body {
            Reply::Run { result } => {
                out.put_u32_le(CMD_RUN);
                out.put_i32_le(*result);
            }
            Reply::Script { result } => {
                out.put_u32_le(CMD_SCRIPT);
                out.put_i32_le(*result);
            }
            Reply::Status { result, status } => {
                out.put_u32_le(CMD_STATUS);
                out.put_i32_le(*result);
                // Only a successful status carries the run.
                if let (0, Some(status)) = (*result, status) {
                    out.put_i32_le(status.summary);
                    out.put_i32_le(status.scripts.len() as i32);
                    for s in &status.scripts {
                        put_stringn(out, Some(&s.name));
                        put_timeval(out, &s.begin);
                        put_timeval(out, &s.end);
                        out.put_i32_le(s.result);
                        put_stringn(out, (!s.output.is_empty()).then_some(s.output.as_str()));
                    }
                }
            }
        })
    }

    pub fn from_bytes(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let (version, reqid) = header(&mut r, buf.len())?;
        let cmd = r.u32()?;
        let result = r.i32()?;
        let body = match cmd {
            CMD_RUN => Reply::Run { result },
            CMD_SCRIPT => Reply::Script { result },
            CMD_STATUS if result != 0 => Reply::Status {
                result,
                status: None,
            },
            CMD_STATUS => {
                let summary = r.i32()?;
                let count = r.i32()?;
                let count = u32::try_from(count).map_err(|_| DecodeError::InvalidValue {
                    what: "script count",
                    value: count as u64,
                })?;
                let mut scripts = Vec::with_capacity(r.capacity_for(count, 44));
                for _ in 0..count {
                    scripts.push(ScriptStatus {
                        name: get_stringn(&mut r)?.unwrap_or_default(),
                        begin: get_timeval(&mut r)?,
                        end: get_timeval(&mut r)?,
                        result: r.i32()?,
                        output: get_stringn(&mut r)?.unwrap_or_default(),
                    });
                }
                Reply::Status {
                    result,
                    status: Some(Status { summary, scripts }),
                }
            }
            other => return Err(unknown_command(other)),
        };
        r.finish()?;
        Ok(Self {
            version,
            reqid,
            body,
        })
    }
}

/// The total length a message's first four bytes announce, once they are there.
pub fn frame_length(buf: &[u8]) -> Option<usize> {
    let len: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(len) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with strace from Samba 4.17's `ctdb event run 10 legacy monitor`, and
    // its daemon's answer for a failed script.
    const RUN: &[u8] = b"\x33\x00\x00\x00\x00\x00\x00\x00\x38\xff\xff\x7f\x01\x00\x00\x00\
\x07\x00\x00\x00legacy\x00\x08\x00\x00\x00monitor\x00\x00\x00\x00\x00\x0a\x00\x00\x00\
\x00\x00\x00\x00";
    const RUN_FAILED: &[u8] = b"\x14\x00\x00\x00\x00\x00\x00\x00\x38\xff\xff\x7f\
\x01\x00\x00\x00\x08\x00\x00\x00";
    // `ctdb event status legacy monitor` and its answer: 01.hello OK, 02.off disabled,
    // 05.failmon exited 3 saying "bad thing".
    const STATUS: &[u8] = b"\x27\x00\x00\x00\x00\x00\x00\x00\x38\xff\xff\x7f\x02\x00\x00\x00\
\x07\x00\x00\x00legacy\x00\x08\x00\x00\x00monitor\x00";
    const STATUS_REPLY: &[u8] = b"\xd5\x00\x00\x00\x00\x00\x00\x00\x38\xff\xff\x7f\
\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x03\x00\x00\x00\
\x09\x00\x00\x0001.hello\x00\x25\x90\x13\x6b\x00\x00\x00\x00\x2a\x23\x0a\x00\x00\x00\x00\x00\
\x25\x90\x13\x6b\x00\x00\x00\x00\xaf\x28\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\
\x0f\x00\x00\x00hello monitor\x0a\x00\
\x07\x00\x00\x0002.off\x00\x25\x90\x13\x6b\x00\x00\x00\x00\xda\x28\x0a\x00\x00\x00\x00\x00\
\x25\x90\x13\x6b\x00\x00\x00\x00\xdf\x28\x0a\x00\x00\x00\x00\x00\xf8\xff\xff\xff\
\x00\x00\x00\x00\
\x0b\x00\x00\x0005.failmon\x00\x25\x90\x13\x6b\x00\x00\x00\x00\xe0\x28\x0a\x00\x00\x00\x00\x00\
\x25\x90\x13\x6b\x00\x00\x00\x00\x08\x42\x0a\x00\x00\x00\x00\x00\x03\x00\x00\x00\
\x0b\x00\x00\x00bad thing\x0a\x00";
    const STATUS_NEVER_RAN: &[u8] = b"\x14\x00\x00\x00\x00\x00\x00\x00\x38\xff\xff\x7f\
\x02\x00\x00\x00\x16\x00\x00\x00";

    fn tv(sec: i64, usec: i64) -> Timeval {
        Timeval { sec, usec }
    }

    #[test]
    fn run_request_and_reply_are_samba_bytes() {
        let req = Message::<Request>::from_bytes(RUN).expect("decodes");
        assert_eq!(
            req,
            Message {
                version: 0,
                reqid: 0x7fff_ff38,
                body: Request::Run(RunRequest {
                    component: "legacy".into(),
                    event: "monitor".into(),
                    args: None,
                    timeout: 10,
                    flags: 0,
                }),
            }
        );
        assert_eq!(req.to_bytes(), RUN);
        let reply = Message {
            version: 0,
            reqid: 0x7fff_ff38,
            body: Reply::Run { result: 8 },
        };
        assert_eq!(reply.to_bytes(), RUN_FAILED);
        assert_eq!(
            Message::<Reply>::from_bytes(RUN_FAILED).expect("decodes"),
            reply
        );
    }

    #[test]
    fn status_request_and_reply_are_samba_bytes() {
        let req = Message::<Request>::from_bytes(STATUS).expect("decodes");
        assert_eq!(
            req.body,
            Request::Status(StatusRequest {
                component: "legacy".into(),
                event: "monitor".into(),
            })
        );
        assert_eq!(req.to_bytes(), STATUS);
        let sec = 0x6b13_9025;
        let reply = Message {
            version: 0,
            reqid: 0x7fff_ff38,
            body: Reply::Status {
                result: 0,
                status: Some(Status {
                    summary: 3,
                    scripts: vec![
                        ScriptStatus {
                            name: "01.hello".into(),
                            begin: tv(sec, 0x0a232a),
                            end: tv(sec, 0x0a28af),
                            result: 0,
                            output: "hello monitor\n".into(),
                        },
                        ScriptStatus {
                            name: "02.off".into(),
                            begin: tv(sec, 0x0a28da),
                            end: tv(sec, 0x0a28df),
                            result: -8,
                            output: String::new(),
                        },
                        ScriptStatus {
                            name: "05.failmon".into(),
                            begin: tv(sec, 0x0a28e0),
                            end: tv(sec, 0x0a4208),
                            result: 3,
                            output: "bad thing\n".into(),
                        },
                    ],
                }),
            },
        };
        assert_eq!(reply.to_bytes(), STATUS_REPLY);
        assert_eq!(
            Message::<Reply>::from_bytes(STATUS_REPLY).expect("decodes"),
            reply
        );
        let never = Message {
            version: 0,
            reqid: 0x7fff_ff38,
            body: Reply::Status {
                result: 22,
                status: None,
            },
        };
        assert_eq!(never.to_bytes(), STATUS_NEVER_RAN);
    }

    #[test]
    fn script_request_round_trips() {
        let req = Message {
            version: 0,
            reqid: 7,
            body: Request::Script(ScriptRequest {
                component: "legacy".into(),
                script: "10.interface".into(),
                enable: true,
            }),
        };
        assert_eq!(Message::<Request>::from_bytes(&req.to_bytes()), Ok(req));
    }

    #[test]
    fn malformed_messages_are_errors() {
        // Wrong length field, truncated strings, unknown commands, trailing bytes,
        // a forged script count: every one an error, none a panic.
        let mut wrong_len = RUN.to_vec();
        wrong_len[0] = 0x40;
        assert!(Message::<Request>::from_bytes(&wrong_len).is_err());
        for cut in 0..RUN.len() {
            let mut short = RUN[..cut].to_vec();
            if short.len() >= 4 {
                short[..4].copy_from_slice(&(cut as u32).to_le_bytes());
            }
            assert!(Message::<Request>::from_bytes(&short).is_err(), "cut {cut}");
        }
        let mut unknown = RUN.to_vec();
        unknown[12] = 9;
        assert!(Message::<Request>::from_bytes(&unknown).is_err());
        let mut forged = STATUS_REPLY[..28].to_vec();
        forged[24..28].copy_from_slice(&i32::MAX.to_le_bytes());
        forged[..4].copy_from_slice(&28u32.to_le_bytes());
        assert!(Message::<Reply>::from_bytes(&forged).is_err());
        let mut empty_component = STATUS.to_vec();
        empty_component.drain(16..27);
        empty_component.splice(16..16, [0, 0, 0, 0]);
        let len = empty_component.len() as u32;
        empty_component[..4].copy_from_slice(&len.to_le_bytes());
        assert!(Message::<Request>::from_bytes(&empty_component).is_err());
    }
}
