//! `ctdb-db`: serves the database component of one node on its Unix socket.

use std::sync::{Arc, Mutex};

use ctdb_common::Config;
use ctdb_db::{DbDaemon, DbDirs, Options};
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
    let pnn = match config.pnn() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let dirs = DbDirs {
        volatile: config.database.volatile_dir.clone(),
        persistent: config.database.persistent_dir.clone(),
        state: config.database.state_dir.clone(),
    };
    // One sled database per node, beside the state databases.
    let sled_path = config.database.state_dir.join("ctdb-rs.sled");
    if let Err(e) = std::fs::create_dir_all(&config.database.state_dir) {
        tracing::error!("cannot create {}: {e}", config.database.state_dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let daemon = match DbDaemon::open(&sled_path, Options::new(pnn, dirs)) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("cannot open {}: {e}", sled_path.display());
            return std::process::ExitCode::FAILURE;
        }
    };

    let handler = Arc::new(Mutex::new(daemon));
    let (outbox, rx) = Outbox::new();
    let component = PacketComponent::with_outbox("db", handler.clone(), outbox, rx);
    let router = tonic::transport::Server::builder().add_service(component.into_server());
    let socket = socket_path(&config.run_dir, "db");
    tracing::info!(socket = %socket.display(), sled = %sled_path.display(), "serving");
    let served = serve_on(&socket, router, terminated()).await;

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
