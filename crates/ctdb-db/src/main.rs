//! `ctdb-db`: serves the database component of one node on its Unix socket.

use std::sync::{Arc, Mutex};

use ctdb_common::Config;
use ctdb_rpc::component::{lock, serve_on, terminated, Outbox, PacketComponent};
use ctdb_rpc::uds::socket_path;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctdb-db: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    ctdb_common::logging::init("db", &config.logging.location, &config.logging.level);
    ctdb_common::logging::abort_on_panic("db");
    if let Err(e) = config.prepare_dirs(true) {
        tracing::error!("refusing to start: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let daemon = match ctdb_db::open_from_config(&config) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let handler = Arc::new(Mutex::new(daemon));
    ctdb_db::ltdb::spawn_background(handler.clone());
    let (outbox, rx) = Outbox::new();
    let component = PacketComponent::with_outbox("db", handler.clone(), outbox, rx);
    if let Err(e) = component.serve_packets(&config.run_dir) {
        tracing::error!("{e}");
        return std::process::ExitCode::FAILURE;
    }
    let closing = component.closing();
    let router = tonic::transport::Server::builder().add_service(component.into_server());
    let socket = socket_path(&config.run_dir, "db");
    tracing::info!(socket = %socket.display(), "serving");
    let stop = async move {
        terminated().await;
        closing.cancel();
    };
    let served = serve_on(&socket, router, stop).await;

    let flushed = lock(&handler).flush();
    if let Err(e) = &flushed {
        tracing::error!("flushing the store failed: {e}");
    }
    match served {
        Ok(()) if flushed.is_ok() => std::process::ExitCode::SUCCESS,
        Ok(()) => std::process::ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("serving {} failed: {e}", socket.display());
            std::process::ExitCode::FAILURE
        }
    }
}
