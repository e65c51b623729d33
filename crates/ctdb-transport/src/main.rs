use std::sync::{Arc, Mutex};

use ctdb_common::Config;
use ctdb_transport::routing::Owner;
use ctdb_transport::InProcess;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctdb-transport: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    ctdb_common::logging::init("transport", &config.logging.location, &config.logging.level);
    ctdb_common::logging::abort_on_panic("transport");
    if let Err(e) = config.prepare_dirs(config.database.in_transport) {
        tracing::error!("refusing to start: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let mut in_process = InProcess::new();
    let mut db = None;
    if config.database.in_transport {
        match ctdb_db::open_from_config(&config) {
            Ok(daemon) => {
                let daemon = Arc::new(Mutex::new(daemon));
                ctdb_db::ltdb::spawn_background(daemon.clone());
                in_process.insert(Owner::Db, daemon.clone());
                db = Some(daemon);
            }
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let stop = ctdb_rpc::component::terminated();
    let result = ctdb_transport::run_with(config, stop, in_process).await;
    if let Some(db) = db {
        if let Err(e) = ctdb_rpc::component::lock(&db).flush() {
            tracing::error!("flushing the databases failed: {e}");
        }
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
