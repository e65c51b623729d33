use std::sync::{Arc, Mutex};

use ctdb_common::Config;
use ctdb_recoverd::daemon::Monitor;
use ctdb_recoverd::Recoverd;
use ctdb_rpc::component::{Outbox, PacketComponent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctdb-recoverd: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    ctdb_common::logging::init("recoverd", &config.logging.location, &config.logging.level);
    ctdb_common::logging::abort_on_panic("recoverd");
    if let Err(e) = config.prepare_dirs(false) {
        tracing::error!("refusing to start: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let pnn = match config.pnn() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let eventd = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(&config.run_dir, "eventd"));
    let state = Arc::new(Mutex::new(
        Recoverd::new(pnn, config.cluster.recovery_lock.clone())
            .with_eventd(eventd.clone())
            .with_startup_marker(config.run_dir.join("recoverd.startup"))
            .with_public_addresses_file(config.public_addresses_file())
            .with_public_addresses(&config.public_addresses),
    ));
    let (outbox, rx) = Outbox::new();
    let component = PacketComponent::with_outbox("recoverd", state.clone(), outbox, rx);
    if let Err(e) = component.serve_packets(&config.run_dir) {
        tracing::error!("{e}");
        return std::process::ExitCode::FAILURE;
    }
    let router = tonic::transport::Server::builder().add_service(component.into_server());
    let path = ctdb_rpc::uds::socket_path(&config.run_dir, "recoverd");
    let transport =
        ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(&config.run_dir, "transport"));
    let monitor = Monitor::new(config.socket.clone(), eventd, state)
        .with_promise_file(config.run_dir.join("recoverd.promise"))
        .with_transport(transport);
    tokio::spawn(monitor.run());

    let stop = ctdb_rpc::component::terminated();
    match ctdb_rpc::component::serve_on(&path, router, stop).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("serving {}: {e}", path.display());
            std::process::ExitCode::FAILURE
        }
    }
}
