//! ctdb-eventd: serves the packet stream and the `Eventd` service on
//! `<run_dir>/eventd.sock`, runs `init`, `setup` and then `monitor`, and reports health
//! to transport. Stops on SIGTERM or SIGINT, killing any script in flight.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ctdb_eventd::{monitor, Eventd, EventdConfig, TransportHealth};
use ctdb_rpc::component::PacketComponent;
use ctdb_rpc::uds::socket_path;
use tokio_util::sync::CancellationToken;

/// How long open connections may take to close once we are told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match ctdb_common::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctdb-eventd: {e}");
            return ExitCode::FAILURE;
        }
    };
    ctdb_common::logging::init(
        "ctdb-eventd",
        &config.logging.location,
        &config.logging.level,
    );
    ctdb_common::logging::abort_on_panic("eventd");
    if let Err(e) = config.prepare_dirs(false) {
        tracing::error!("refusing to start: {e}");
        return std::process::ExitCode::FAILURE;
    }

    let ev = &config.event;
    let eventd = Eventd::new(EventdConfig {
        events_dir: ev.events_dir.clone(),
        script_timeout: Duration::from_secs(ev.script_timeout_secs.max(1)),
        monitor_interval: Duration::from_secs(ev.monitor_interval_secs.max(1)),
        debug_script: ev
            .debug_script
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        startup_grace: Duration::from_secs(30),
    });

    let shutdown = CancellationToken::new();
    {
        let (shutdown, eventd) = (shutdown.clone(), eventd.clone());
        tokio::spawn(async move {
            ctdb_rpc::component::terminated().await;
            // Kill whatever runs now; a monitor in flight counts for nothing.
            eventd.shutdown();
            shutdown.cancel();
        });
    }

    let path = socket_path(&config.run_dir, "eventd");
    let health = TransportHealth::new(socket_path(&config.run_dir, "transport"));
    let monitoring = tokio::spawn(monitor::run(eventd.clone(), health, shutdown.clone()));

    tracing::info!(
        socket = %path.display(),
        events_dir = %eventd.config().events_dir.display(),
        "ctdb-eventd serving"
    );
    let samba_socket =
        match ctdb_eventd::event_socket::serve(eventd.clone(), &config.run_dir, shutdown.clone()) {
            Ok(task) => task,
            Err(e) => {
                tracing::error!(
                    socket = %config.run_dir.join(ctdb_eventd::event_socket::SOCKET_NAME).display(),
                    "cannot serve Samba's event socket: {e}"
                );
                return ExitCode::FAILURE;
            }
        };
    let component = PacketComponent::new("eventd", eventd.clone());
    if let Err(e) = component.serve_packets(&config.run_dir) {
        tracing::error!("{e}");
        return std::process::ExitCode::FAILURE;
    }
    let router = tonic::transport::Server::builder()
        .add_service(component.into_server())
        .add_service(eventd.clone().into_server());
    let stop = shutdown.clone();
    let serve = ctdb_rpc::component::serve_on(&path, router, async move {
        stop.cancelled().await;
    });
    // Graceful shutdown waits for open gRPC streams: give them a few seconds, no more.
    let served = tokio::select! {
        r = serve => r,
        () = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: exiting anyway");
            Ok(())
        }
    };

    shutdown.cancel();
    eventd.shutdown();
    let _ = monitoring.await;
    let _ = samba_socket.await;
    let _ = std::fs::remove_file(&path);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(socket = %path.display(), error = %e, "cannot serve");
            ExitCode::FAILURE
        }
    }
}
