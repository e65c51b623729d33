//! Samba's event daemon socket, `<run dir>/eventd.socket`: what Samba's `ctdb event
//! run|status` and `ctdb scriptstatus` talk to (through its `ctdb-event` helper), in the
//! protocol of [`ctdb_protocol::event_daemon`].
//!
//! One component is served, `legacy`: the scripts of the events directory (see
//! [`crate::runner`]). Another component's directory does not exist here, and the
//! answer says so (ENOENT), as Samba's does for a missing one. Results follow Samba's
//! daemon: `run` answers 0, ETIMEDOUT, ECANCELED or ENOEXEC (a script failed);
//! `status` answers EINVAL for an event that has never run, else the last completed
//! run, each script with its times, result and output. `script` sets or clears a
//! script's execute bit, as Samba's own tool does without asking the daemon.
//! Script enable/disable and `script list` are otherwise done by the tools themselves
//! on the directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctdb_protocol::event_daemon::{
    Message, Reply, Request, RunRequest, ScriptStatus, Status, StatusRequest,
};
use futures::StreamExt;
use nix::errno::Errno;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::runner::{self, RunResult, STATUS_CANCELED, STATUS_TIMEDOUT};
use crate::Eventd;

/// The socket's file name in the run directory (Samba's `eventd.socket`).
pub const SOCKET_NAME: &str = "eventd.socket";
/// The only component: Samba 4.17's scripts live in `events/legacy`.
pub const COMPONENT: &str = "legacy";
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
/// A request is a few names; anything longer is not one.
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a connection may sit without sending a whole request.
const IDLE: Duration = Duration::from_secs(60);

fn codec() -> LengthDelimitedCodec {
    // The length field counts the whole message, itself included.
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .length_adjustment(0)
        .num_skip(0)
        .max_frame_length(MAX_MESSAGE)
        .new_codec()
}

/// Serves `run_dir/eventd.socket` until `shutdown`.
pub fn serve(
    eventd: Eventd,
    run_dir: &Path,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = run_dir.join(SOCKET_NAME);
    let listener = ctdb_rpc::uds::bind_listener(&path)?;
    tracing::info!(socket = %path.display(), "serving Samba's event protocol");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p,
                () = shutdown.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: wait instead of spinning.
                        tracing::warn!("event socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let (eventd, shutdown) = (eventd.clone(), shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = connection(eventd, stream) => {}
                    () = shutdown.cancelled() => {}
                }
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

/// Answers the requests of one connection, in order, until it closes or misbehaves.
async fn connection(eventd: Eventd, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, codec());
    loop {
        let frame = match tokio::time::timeout(IDLE, frames.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                tracing::warn!("event socket: unreadable message: {e}; closing");
                return;
            }
            Ok(None) | Err(_) => return,
        };
        let request = match Message::<Request>::from_bytes(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("event socket: malformed request: {e}; closing");
                return;
            }
        };
        let body = answer(&eventd, request.body).await;
        let reply = Message {
            version: request.version,
            reqid: request.reqid,
            body,
        };
        if write.write_all(&reply.to_bytes()).await.is_err() {
            return;
        }
    }
}

async fn answer(eventd: &Eventd, request: Request) -> Reply {
    match request {
        Request::Run(run) => Reply::Run {
            result: run_event(eventd, &run).await,
        },
        Request::Status(status) => status_of(eventd, &status),
        Request::Script(script) => Reply::Script {
            result: if script.component != COMPONENT {
                Errno::ENOENT as i32
            } else {
                match runner::set_script_enabled(
                    eventd.runner().events_dir(),
                    &script.script,
                    script.enable,
                ) {
                    Ok(_) => 0,
                    Err(runner::ScriptError::InvalidName(_)) => Errno::EINVAL as i32,
                    Err(runner::ScriptError::NotFound(_)) => Errno::ENOENT as i32,
                    Err(runner::ScriptError::Io { .. }) => Errno::EIO as i32,
                }
            },
        },
    }
}

/// Runs the event; the answer is 0 or the positive errno Samba's daemon gives.
async fn run_event(eventd: &Eventd, run: &RunRequest) -> i32 {
    if run.component != COMPONENT {
        return Errno::ENOENT as i32;
    }
    let args: Vec<String> = run
        .args
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let timeout = (run.timeout > 0).then(|| Duration::from_secs(u64::from(run.timeout)));
    let span = tracing::info_span!("event run", event = %run.event);
    let result = eventd
        .run_named(&run.event, &args, timeout)
        .instrument(span)
        .await;
    match result.status {
        0 => 0,
        STATUS_TIMEDOUT => Errno::ETIMEDOUT as i32,
        STATUS_CANCELED => Errno::ECANCELED as i32,
        // The events directory could not be read.
        s if result.scripts.is_empty() && s < 0 => -s,
        _ => Errno::ENOEXEC as i32,
    }
}

fn status_of(eventd: &Eventd, status: &StatusRequest) -> Reply {
    if status.component != COMPONENT {
        return Reply::Status {
            result: Errno::ENOENT as i32,
            status: None,
        };
    }
    match eventd.runner().last_run(&status.event) {
        None => Reply::Status {
            result: Errno::EINVAL as i32,
            status: None,
        },
        Some(run) => Reply::Status {
            result: 0,
            status: Some(wire_status(&run)),
        },
    }
}

fn wire_status(run: &RunResult) -> Status {
    Status {
        summary: run.status,
        scripts: run
            .scripts
            .iter()
            .map(|s| {
                let wire = s.to_wire();
                ScriptStatus {
                    name: wire.name,
                    begin: wire.start,
                    end: wire.finished,
                    result: wire.status,
                    output: s.output.clone(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::Decoder;

    #[test]
    fn frames_are_whole_messages() {
        let mut buf =
            bytes::BytesMut::from(&[16u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99][..]);
        let frame = codec().decode(&mut buf).expect("decodes").expect("a frame");
        assert_eq!(frame.len(), 16, "{frame:?}");
        assert_eq!(&buf[..], &[99]);
    }
}
