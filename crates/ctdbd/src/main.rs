//! ctdbd: runs one node's four components from one configuration.
//!
//! Each component is its own process; one that dies is restarted with back-off, and
//! SIGTERM/SIGINT stops them all — after the node handed its public addresses to the
//! others ([`hand_over_addresses`]), so that clients of a node shut down on purpose
//! reconnect at once. SHUTDOWN (`ctdb shutdown`) reaches ctdbd the same way: transport
//! sends it SIGTERM. A component that exits on its own, cleanly or not, is restarted:
//! one component can be restarted (SIGTERM to it) without taking the node down.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ctdb_common::Config;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Components in start order; transport last so clients find a node that can answer.
const COMPONENTS: [&str; 4] = ["ctdb-db", "ctdb-eventd", "ctdb-recoverd", "ctdb-transport"];
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A component that ran this long before dying is restarted without delay.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A component that dies this many times in a row, each time before STABLE_AFTER, is
/// not started again (a corrupt store would crash it for ever): the node goes
/// UNHEALTHY, saying why, or stops if it was transport.
const GIVE_UP_AFTER: u32 = 5;

/// Where the component binaries are: beside this one.
fn binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Why a component's supervision loop ended.
enum Ended {
    Stopped,
    /// The component kept dying; it is not started again.
    GaveUp(&'static str),
}

/// Tells transport that the node is unhealthy because `component` is given up on.
async fn report_given_up(run_dir: &Path, component: &str, reason: &str) {
    let channel = ctdb_rpc::uds::channel(ctdb_rpc::uds::socket_path(run_dir, "transport"));
    let mut client = ctdb_rpc::transport_client::TransportClient::new(channel);
    let health = ctdb_rpc::Health {
        healthy: false,
        reason: format!("{component}: {reason}"),
        source: "supervisor".to_string(),
    };
    for _ in 0..10 {
        match client.set_health(health.clone()).await {
            Ok(_) => return,
            Err(e) => warn!("cannot tell transport the node is unhealthy: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn supervise(name: &'static str, run_dir: PathBuf, mut stop: watch::Receiver<bool>) -> Ended {
    let path = binary(name);
    // Tests and operators find a component's process through its pid file.
    let pid_file = run_dir.join(format!("{name}.pid"));
    let mut backoff = Duration::from_millis(100);
    let mut quick_deaths = 0;
    loop {
        let started = Instant::now();
        let mut child = match Command::new(&path)
            .env(SUPERVISOR_ENV, std::process::id().to_string())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                error!(component = name, "cannot start {}: {e}", path.display());
                if sleep_or_stop(&mut stop, backoff).await {
                    return Ended::Stopped;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        info!(component = name, pid = child.id(), "started");
        if let Some(pid) = child.id() {
            let _ = std::fs::write(&pid_file, format!("{pid}\n"));
        }
        tokio::select! {
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                // Whatever the status: SHUTDOWN reaches ctdbd as SIGTERM (transport sends
                // it), so a component that exits on its own was stopped by someone else
                // (an operator's rolling restart) or failed: it is started again.
                warn!(component = name, %status, "component exited; restarting");
            }
            _ = stop.changed() => {
                terminate(name, &mut child).await;
                return Ended::Stopped;
            }
        }
        if started.elapsed() > STABLE_AFTER {
            backoff = Duration::from_millis(100);
            quick_deaths = 0;
        } else {
            quick_deaths += 1;
            if quick_deaths >= GIVE_UP_AFTER {
                let reason =
                    format!("died {quick_deaths} times in a row within seconds of starting; not restarted (see its log)");
                error!(component = name, "{reason}");
                let _ = std::fs::remove_file(&pid_file);
                if name != "ctdb-transport" {
                    report_given_up(&run_dir, name, &reason).await;
                }
                return Ended::GaveUp(name);
            }
        }
        if sleep_or_stop(&mut stop, backoff).await {
            return Ended::Stopped;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps for `d`; true when a stop was requested meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// SIGTERM, then SIGKILL if the component does not exit in time.
async fn terminate(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        warn!(component = name, "did not stop in time; killing");
        let _ = child.kill().await;
    }
}

/// Tells each component the pid of the ctdbd that runs it (transport turns SHUTDOWN
/// into a SIGTERM to it, so that the node hands its addresses over first).
const SUPERVISOR_ENV: &str = "CTDB_RS_SUPERVISOR";

/// Longest a stopping node waits for its public addresses to move away.
const HANDOVER_LIMIT: Duration = Duration::from_secs(5);

/// Before a node stops on purpose: if it holds public addresses, it marks itself
/// STOPPED (as `ctdb stop` does: it can host nothing), asks the leader for a takeover
/// run, and waits (at most [`HANDOVER_LIMIT`]) until it holds none — `releaseip` ran
/// here and the others took them. A node that cannot be asked is stopped as it is.
async fn hand_over_addresses(config: &Config) {
    use ctdb_protocol::control::PublicIpList;
    use ctdb_protocol::flags::dest::{BROADCAST_CONNECTED, CURRENT_NODE};
    use ctdb_protocol::{Opcode, Wire};
    let ask = async {
        let client = ctdb_client::Client::connect(&config.socket).await.ok()?;
        let pnn = client.pnn();
        let to_node = |opcode| client.control(CURRENT_NODE, opcode, 0, bytes::Bytes::new());
        let held = || async {
            let data = to_node(Opcode::GetPublicIps).await.ok()?;
            let list = PublicIpList::from_bytes(&data).ok()?;
            Some(list.ips.iter().filter(|ip| ip.pnn == pnn).count())
        };
        if held().await? == 0 {
            return Some(0);
        }
        info!("handing this node's public addresses to the others first");
        to_node(Opcode::StopNode).await.ok()?;
        // TAKEOVER_RUN with no one to answer (srvid 0).
        let mut request = pnn.to_le_bytes().to_vec();
        request.extend_from_slice(&[0; 12]);
        let _ = client.send_message(
            BROADCAST_CONNECTED,
            ctdb_protocol::srvid::TAKEOVER_RUN,
            bytes::Bytes::from(request),
        );
        loop {
            match held().await {
                Some(0) => return Some(0),
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                None => return None,
            }
        }
    };
    match tokio::time::timeout(HANDOVER_LIMIT, ask).await {
        Ok(Some(_)) => info!("no public address held here: stopping"),
        Ok(None) => warn!("cannot ask the node about its public addresses: stopping"),
        Err(_) => warn!("public addresses still held after {HANDOVER_LIMIT:?}: stopping"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ctdbd: {e}");
            return ExitCode::from(2);
        }
    };
    ctdb_common::logging::init("ctdbd", &config.logging.location, &config.logging.level);
    if let Err(e) = config.pnn() {
        error!("{e}");
        return ExitCode::from(2);
    }
    if let Err(e) = config.prepare_dirs(true) {
        error!("refusing to start: {e}");
        eprintln!("ctdbd: refusing to start: {e}");
        return ExitCode::FAILURE;
    }
    info!(socket = %config.socket.display(), run_dir = %config.run_dir.display(), "starting node");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for name in COMPONENTS {
        if name == "ctdb-db" && config.database.in_transport {
            // Transport runs the database component itself.
            continue;
        }
        tasks.spawn(supervise(name, config.run_dir.clone(), stop_rx.clone()));
    }
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let mut code = ExitCode::SUCCESS;
    loop {
        tokio::select! {
            signal = async {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                }
            } => {
                info!("{signal}: stopping the node");
                hand_over_addresses(&config).await;
            }
            Some(ended) = tasks.join_next() => match ended {
                Ok(Ended::GaveUp("ctdb-transport")) => {
                    error!("transport cannot run: stopping the node");
                    code = ExitCode::FAILURE;
                }
                // The node goes on without it, UNHEALTHY.
                Ok(Ended::GaveUp(_)) => continue,
                _ => {}
            },
        }
        break;
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    info!("node stopped");
    code
}
