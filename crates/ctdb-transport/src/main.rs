use ctdb_common::Config;

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
    let stop = ctdb_rpc::component::terminated();
    match ctdb_transport::run(config, stop).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
