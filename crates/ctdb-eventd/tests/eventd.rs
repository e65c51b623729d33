//! The controls eventd owns (through `PacketHandler::handle`), the monitor loop, and the
//! gRPC services on a Unix socket.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::EventsDir;
use ctdb_eventd::runner::STATUS_DISABLED;
use ctdb_eventd::{
    monitor, Eventd, EventdConfig, HealthSink, TransportHealth, MONITORING_ACTIVE,
    MONITORING_DISABLED,
};
use ctdb_protocol::control::ScriptList;
use ctdb_protocol::event::EventCall;
use ctdb_protocol::wire::Wire;
use ctdb_protocol::{Body, Opcode, Packet, ReplyControl, ReqControl};
use ctdb_rpc::component::{Outbox, PacketHandler};
use ctdb_rpc::Envelope;
use tokio_util::sync::CancellationToken;

const CLIENT: u64 = 17;

fn config(d: &EventsDir) -> EventdConfig {
    EventdConfig {
        script_timeout: Duration::from_secs(10),
        monitor_interval: Duration::from_millis(100),
        ..EventdConfig::new(d.path())
    }
}

fn request(opcode: Opcode, data: Vec<u8>, flags: u32) -> Envelope {
    let packet = Packet {
        generation: 9,
        destnode: 1,
        srcnode: 4,
        reqid: 4242,
        body: Body::ReqControl(ReqControl {
            opcode,
            srvid: 0,
            client_id: 0,
            flags,
            data: data.into(),
        }),
    };
    Envelope {
        client: CLIENT,
        from_node: u32::MAX,
        packet: packet.to_bytes().into(),
        trace: 0,
    }
}

fn string_data(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Takes the next reply off the outbox and checks how it is addressed.
async fn reply(rx: &mut ctdb_rpc::queue::QueueRx<Envelope>) -> ReplyControl {
    let env = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no reply in time")
        .expect("outbox closed");
    assert_eq!(env.client, CLIENT);
    let p = Packet::from_slice(&env.packet).unwrap();
    assert_eq!((p.reqid, p.srcnode, p.destnode), (4242, 1, 4));
    match p.body {
        Body::ReplyControl(r) => r,
        other => panic!("not a REPLY_CONTROL: {other:?}"),
    }
}

async fn control(eventd: &mut Eventd, opcode: Opcode, data: Vec<u8>) -> ReplyControl {
    let (out, mut rx) = Outbox::new();
    eventd.handle(request(opcode, data, 0), &out);
    reply(&mut rx).await
}

#[tokio::test]
async fn get_event_script_status_returns_the_seed_layout() {
    let d = EventsDir::new();
    d.script("10.first", "echo one", true);
    d.script("20.off", "exit 0", false);
    d.script("30.fails", "echo sick; exit 2", true);
    d.script("40.never", "exit 0", true);
    let mut eventd = Eventd::new(config(&d));

    let monitor = EventCall::Monitor.as_u32().to_le_bytes().to_vec();
    let r = control(&mut eventd, Opcode::GetEventScriptStatus, monitor.clone()).await;
    assert_eq!(r.status, -1, "never run");
    assert!(r.error_message().unwrap().contains("monitor"));

    let run = eventd.runner().run_monitor().await.unwrap();
    assert_eq!(run.status, 2);

    let r = control(&mut eventd, Opcode::GetEventScriptStatus, monitor).await;
    assert_eq!(r.status, 0);
    assert_eq!(r.data.len(), 8 + 3 * 584, "seed's ctdb_scripts_wire size");
    assert_eq!(&r.data[..4], &3u32.to_le_bytes());
    let list = ScriptList::from_bytes(&r.data).unwrap();
    let got: Vec<_> = list
        .scripts
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.output.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.first", 0, "one\n"),
            ("20.off", STATUS_DISABLED, ""),
            ("30.fails", 2, "sick\n"),
        ]
    );
    let s = &list.scripts[0];
    assert!(
        s.start.sec > 1_600_000_000
            && (s.finished.sec, s.finished.usec) >= (s.start.sec, s.start.usec)
    );

    // Another event's status is kept apart; an unknown event number is an error.
    let startup = EventCall::Startup.as_u32().to_le_bytes().to_vec();
    assert_eq!(
        control(&mut eventd, Opcode::GetEventScriptStatus, startup)
            .await
            .status,
        -1
    );
    let bad = 99u32.to_le_bytes().to_vec();
    assert_eq!(
        control(&mut eventd, Opcode::GetEventScriptStatus, bad)
            .await
            .status,
        -1
    );
    let short = vec![8, 0];
    let r = control(&mut eventd, Opcode::GetEventScriptStatus, short).await;
    assert_eq!(r.status, -1);
    assert!(r.error_message().unwrap().contains("malformed"));
}

#[tokio::test]
async fn disable_and_enable_script_controls() {
    let d = EventsDir::new();
    let p = d.script("10.svc", "exit 0", true);
    let mut eventd = Eventd::new(config(&d));

    let r = control(&mut eventd, Opcode::DisableScript, string_data("10.svc")).await;
    assert_eq!(r.status, 0);
    assert_eq!(common::mode(&p) & 0o111, 0, "exec bits cleared");
    let run = eventd.run_event(EventCall::Monitor, &[], None).await;
    assert_eq!(run.scripts[0].status, STATUS_DISABLED);

    let r = control(&mut eventd, Opcode::EnableScript, string_data("10.svc")).await;
    assert_eq!(r.status, 0);
    assert_eq!(common::mode(&p) & 0o100, 0o100);

    let r = control(
        &mut eventd,
        Opcode::DisableScript,
        string_data("99.missing"),
    )
    .await;
    assert_eq!(r.status, -1);
    assert!(r.error_message().unwrap().contains("99.missing"));
    let r = control(&mut eventd, Opcode::EnableScript, Vec::new()).await;
    assert_eq!(r.status, -1);
}

#[tokio::test]
async fn unknown_control_gets_status_minus_one() {
    let d = EventsDir::new();
    let mut eventd = Eventd::new(config(&d));
    let r = control(&mut eventd, Opcode::GetDbmap, Vec::new()).await;
    assert_eq!(r.status, -1);
    assert!(r
        .error_message()
        .unwrap()
        .contains("CTDB_CONTROL_GET_DBMAP"));
    let r = control(&mut eventd, Opcode::Unknown(4000), vec![1, 2, 3]).await;
    assert_eq!(r.status, -1);
}

#[tokio::test]
async fn malformed_packets_are_answered_or_dropped_never_panic() {
    let d = EventsDir::new();
    let mut eventd = Eventd::new(config(&d));
    let (out, mut rx) = Outbox::new();
    // A control whose data length runs past the packet.
    let mut env = request(Opcode::GetMonmode, Vec::new(), 0);
    let mut packet = env.packet.to_vec();
    packet[56..60].copy_from_slice(&1000u32.to_le_bytes());
    env.packet = packet.into();
    eventd.handle(env, &out);
    let r = reply(&mut rx).await;
    assert_eq!(r.status, -1);
    // Garbage and non-control packets: nothing to answer.
    for packet in [
        vec![1, 2, 3],
        Packet::new(Body::ReplyControl(ReplyControl::default())).to_bytes(),
    ] {
        eventd.handle(
            Envelope {
                client: CLIENT,
                from_node: u32::MAX,
                packet: packet.into(),
                trace: 0,
            },
            &out,
        );
    }
    // NOREPLY is honoured.
    eventd.handle(request(Opcode::GetMonmode, Vec::new(), 1), &out);
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn monitor_mode_controls_use_samba_values() {
    let d = EventsDir::new();
    let mut eventd = Eventd::new(config(&d));
    assert_eq!(
        control(&mut eventd, Opcode::GetMonmode, vec![])
            .await
            .status,
        MONITORING_ACTIVE
    );
    assert_eq!(
        control(&mut eventd, Opcode::DisableMonitor, vec![])
            .await
            .status,
        0
    );
    assert_eq!(
        control(&mut eventd, Opcode::GetMonmode, vec![])
            .await
            .status,
        MONITORING_DISABLED
    );
    assert!(!eventd.monitoring_enabled());
    assert_eq!(
        control(&mut eventd, Opcode::EnableMonitor, vec![])
            .await
            .status,
        0
    );
    assert_eq!(
        control(&mut eventd, Opcode::GetMonmode, vec![])
            .await
            .status,
        MONITORING_ACTIVE
    );
}

#[tokio::test]
async fn run_eventscripts_does_not_block_the_handler() {
    let d = EventsDir::new();
    let log = d.file("log");
    d.script(
        "10.slow",
        &format!(
            "sleep 0.5; echo \"$*\" >> {}; [ \"$1\" != releaseip ]",
            log.display()
        ),
        true,
    );
    let mut eventd = Eventd::new(config(&d));
    let (out, mut rx) = Outbox::new();
    let t = Instant::now();
    eventd.handle(
        request(
            Opcode::RunEventscripts,
            string_data("takeip eth0 10.0.0.5 24"),
            0,
        ),
        &out,
    );
    assert!(t.elapsed() < Duration::from_millis(300), "handle blocked");
    assert!(rx.try_recv().is_err(), "replied before the run ended");
    let r = reply(&mut rx).await;
    assert_eq!(r.status, 0);
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "takeip eth0 10.0.0.5 24\n"
    );

    eventd.handle(
        request(Opcode::RunEventscripts, string_data("releaseip eth0"), 0),
        &out,
    );
    let r = reply(&mut rx).await;
    assert_eq!(r.status, 1);
    assert!(r.error_message().unwrap().contains("10.slow"));

    let r = control(
        &mut eventd,
        Opcode::RunEventscripts,
        string_data("nosuchevent"),
    )
    .await;
    assert_eq!(r.status, -1);
}

/// Health reports collected in memory.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<(bool, String)>>>);

impl HealthSink for Reports {
    fn set_health(
        &self,
        healthy: bool,
        reason: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        self.0.lock().unwrap().push((healthy, reason));
        Box::pin(async { Ok(()) })
    }
}

impl Reports {
    fn get(&self) -> Vec<(bool, String)> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<(bool, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.get()
    }
}

#[tokio::test]
async fn monitoring_starts_after_startup_and_reports_health() {
    let d = EventsDir::new();
    let log = d.file("log");
    let sick = d.file("sick");
    d.script(
        "10.check",
        &format!(
            "echo $1 >> {log}; if [ $1 = monitor ] && [ -e {sick} ]; then echo service down; exit 1; fi",
            log = log.display(),
            sick = sick.display()
        ),
        true,
    );
    let eventd = Eventd::new(EventdConfig {
        startup_grace: Duration::from_secs(3600),
        ..config(&d)
    });
    let reports = Reports::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(monitor::run(
        eventd.clone(),
        reports.clone(),
        shutdown.clone(),
    ));

    // init and setup run, but no monitor before startup.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "init\nsetup\n");
    assert!(reports.get().is_empty());

    eventd.run_event(EventCall::Startup, &[], None).await;
    let got = reports.wait_for(1).await;
    assert_eq!(got[0], (true, String::new()));

    std::fs::write(&sick, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reports.get().iter().any(|(h, _)| !h) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, reason) = reports.get().into_iter().find(|(h, _)| !h).unwrap();
    assert!(
        reason.contains("10.check") && reason.contains("service down"),
        "{reason}"
    );

    // Disabled monitoring stops the reports.
    eventd.set_monitoring(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = reports.get().len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(reports.get().len(), n);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn monitoring_starts_without_startup_after_the_grace() {
    let d = EventsDir::new();
    d.script("10.check", "exit 0", true);
    let eventd = Eventd::new(EventdConfig {
        startup_grace: Duration::from_millis(300),
        ..config(&d)
    });
    let reports = Reports::default();
    let shutdown = CancellationToken::new();
    let t = Instant::now();
    let task = tokio::spawn(monitor::run(
        eventd.clone(),
        reports.clone(),
        shutdown.clone(),
    ));
    let got = reports.wait_for(1).await;
    assert_eq!(got.first(), Some(&(true, String::new())));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(!eventd.startup_done());
    shutdown.cancel();
    task.await.unwrap();
}

/// A stand-in transport that records SetHealth calls.
#[derive(Clone, Default)]
struct FakeTransport(Reports);

#[tonic::async_trait]
impl ctdb_rpc::transport_server::Transport for FakeTransport {
    async fn set_health(
        &self,
        request: tonic::Request<ctdb_rpc::Health>,
    ) -> Result<tonic::Response<ctdb_rpc::Empty>, tonic::Status> {
        let h = request.into_inner();
        self.0 .0.lock().unwrap().push((h.healthy, h.reason));
        Ok(tonic::Response::new(ctdb_rpc::Empty {}))
    }

    async fn get_node_info(
        &self,
        _: tonic::Request<ctdb_rpc::Empty>,
    ) -> Result<tonic::Response<ctdb_rpc::NodeInfo>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }

    type WatchNodesStream = tokio_stream::Empty<Result<ctdb_rpc::NodeStates, tonic::Status>>;

    async fn watch_nodes(
        &self,
        _: tonic::Request<ctdb_rpc::Empty>,
    ) -> Result<tonic::Response<Self::WatchNodesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

#[tokio::test]
async fn health_reaches_a_transport_that_comes_up_late() {
    let d = EventsDir::new();
    d.script("10.check", "echo down; exit 1", true);
    let run_dir = tempfile::tempdir().unwrap();
    let eventd = Eventd::new(EventdConfig {
        startup_grace: Duration::ZERO,
        ..config(&d)
    });
    let path = ctdb_rpc::uds::socket_path(run_dir.path(), "transport");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(monitor::run(
        eventd.clone(),
        TransportHealth::new(&path),
        shutdown.clone(),
    ));
    // Several monitor runs fail to report: nothing breaks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!task.is_finished());

    let transport = FakeTransport::default();
    let router = tonic::transport::Server::builder().add_service(
        ctdb_rpc::transport_server::TransportServer::new(transport.clone()),
    );
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        let path = path.clone();
        async move {
            ctdb_rpc::component::serve_on(&path, router, stop.cancelled_owned())
                .await
                .unwrap()
        }
    });
    let got = transport.0.wait_for(1).await;
    assert!(!got.is_empty(), "no health report reached transport");
    assert!(!got[0].0);
    assert!(
        got[0].1.contains("10.check: down") || got[0].1.contains("10.check"),
        "{}",
        got[0].1
    );
    shutdown.cancel();
    stop.cancel();
    task.await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn grpc_services_on_the_eventd_socket() {
    let d = EventsDir::new();
    d.script("10.svc", "echo \"ran $*\"; [ \"$1\" != releaseip ]", true);
    let run_dir = tempfile::tempdir().unwrap();
    let path = ctdb_rpc::uds::socket_path(run_dir.path(), "eventd");
    let eventd = Eventd::new(config(&d));
    let router = tonic::transport::Server::builder()
        .add_service(
            ctdb_rpc::component::PacketComponent::new("eventd", eventd.clone()).into_server(),
        )
        .add_service(eventd.clone().into_server());
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let (stop, path) = (stop.clone(), path.clone());
        async move {
            ctdb_rpc::component::serve_on(&path, router, stop.cancelled_owned())
                .await
                .unwrap()
        }
    });

    let channel = ctdb_rpc::uds::channel(&path);
    let mut client = ctdb_rpc::eventd_client::EventdClient::new(channel.clone());
    let mut reply = None;
    for _ in 0..50 {
        match client
            .run_event(ctdb_rpc::RunEventRequest {
                event: "takeip".into(),
                args: vec!["eth0".into(), "10.0.0.9".into(), "24".into()],
                timeout_secs: 0,
            })
            .await
        {
            Ok(r) => {
                reply = Some(r.into_inner());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let reply = reply.expect("eventd socket never answered");
    assert_eq!(reply.status, 0);
    assert_eq!(reply.output, "ran takeip eth0 10.0.0.9 24\n");

    let reply = client
        .run_event(ctdb_rpc::RunEventRequest {
            event: "releaseip".into(),
            args: vec![],
            timeout_secs: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, 1);
    assert!(reply.output.contains("10.svc"), "{}", reply.output);

    let err = client
        .run_event(ctdb_rpc::RunEventRequest {
            event: "bogus".into(),
            args: vec![],
            timeout_secs: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The packet socket: a GET_MONMODE.
    let component = ctdb_rpc::component::PacketComponent::new("eventd", eventd.clone());
    let packets = component.serve_packets(run_dir.path()).unwrap();
    let socket = ctdb_rpc::packets::socket_path(run_dir.path(), "eventd");
    let mut conn = ctdb_rpc::packets::PacketClient::connect(&socket, Duration::from_secs(5))
        .await
        .unwrap();
    conn.send(&[request(Opcode::GetMonmode, Vec::new(), 0)])
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .unwrap()
        .unwrap()
        .expect("a reply");
    let p = Packet::from_slice(&reply.packet).unwrap();
    assert_eq!(reply.client, CLIENT);
    match p.body {
        Body::ReplyControl(r) => assert_eq!(r.status, MONITORING_ACTIVE),
        other => panic!("{other:?}"),
    }
    packets.abort();
    stop.cancel();
    server.await.unwrap();
}
