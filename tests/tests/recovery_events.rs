//! Issue 11: START_RECOVERY and END_RECOVERY are answered once their events ran, as
//! Samba's daemon answers them, so the leader's takeover run needs no fixed wait after
//! a recovery; `startup` runs after the first `recovered` only.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctdb_eventd::{Eventd, EventdConfig};
use ctdb_protocol::{Body, Opcode, Packet};
use ctdb_recoverd::Recoverd;
use ctdb_rpc::component::{lock, Outbox, PacketHandler};
use ctdb_tests::control_envelope;

/// Sends `opcode` to `recoverd` and waits for its answer; the time it took.
async fn answered(recoverd: &Arc<Mutex<Recoverd>>, opcode: Opcode) -> Duration {
    let (out, mut rx) = Outbox::new();
    let began = Instant::now();
    lock(recoverd).handle(control_envelope(opcode), &out);
    let reply = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("answered in time")
        .expect("a reply");
    match Packet::from_slice(&reply.packet).unwrap().body {
        Body::ReplyControl(r) => assert_eq!(r.status, 0),
        other => panic!("{other:?}"),
    }
    began.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_controls_answer_after_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let legacy = events.join("legacy");
    std::fs::create_dir_all(&legacy).unwrap();
    let log = dir.path().join("events.log");
    let script = legacy.join("10.slow.script");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in startrecovery|recovered) sleep 0.5 ;; esac\necho \"$1\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let eventd = Eventd::new(EventdConfig::new(&events));
    let socket = ctdb_rpc::uds::socket_path(dir.path(), "eventd");
    let router = tonic::transport::Server::builder().add_service(eventd.clone().into_server());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let (socket, stop) = (socket.clone(), stop.clone());
        async move {
            ctdb_rpc::component::serve_on(&socket, router, stop.cancelled_owned())
                .await
                .unwrap()
        }
    });
    let recoverd = Arc::new(Mutex::new(
        Recoverd::new(0, None)
            .with_eventd(ctdb_rpc::uds::channel(&socket))
            .with_startup_marker(dir.path().join("recoverd.startup")),
    ));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();

    let took = answered(&recoverd, Opcode::StartRecovery).await;
    assert!(
        took >= Duration::from_millis(500),
        "answered after {took:?}"
    );
    assert_eq!(logged(), "startrecovery\n");
    let took = answered(&recoverd, Opcode::EndRecovery).await;
    assert!(
        took >= Duration::from_millis(500),
        "answered after {took:?}"
    );
    assert_eq!(logged(), "startrecovery\nrecovered\nstartup\n");
    // The next recovery: no second startup.
    answered(&recoverd, Opcode::StartRecovery).await;
    answered(&recoverd, Opcode::EndRecovery).await;
    assert_eq!(
        logged(),
        "startrecovery\nrecovered\nstartup\nstartrecovery\nrecovered\n"
    );
    stop.cancel();
    server.await.unwrap();
}
