//! ctdb-bench: CTDB workloads against any socket(s), ours or Samba's, and a compare
//! mode that runs them on a ctdb-rs cluster and a Samba cluster in one go.

#![forbid(unsafe_code)]

mod cluster;
mod compare;
mod procs;
mod smbd;
mod stats;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use crate::compare::{CompareArgs, Spec};
use crate::workloads::{message_ring::DEFAULT_IN_FLIGHT, Options, Workload};

#[derive(Parser)]
#[command(name = "ctdb-bench", about = "CTDB benchmarks, ours beside Samba's")]
struct Args {
    /// Concurrent clients (one connection each) of ping, fetch, transaction_loop and
    /// the memory check.
    #[arg(long, default_value_t = 16, global = true)]
    clients: usize,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5, global = true)]
    seconds: u64,
    /// Messages in flight around the ring (message_ring).
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT, global = true)]
    in_flight: usize,
    /// transaction_loop: the clients commit one at a time (Samba's ctdbd refuses a
    /// commit while another one on the database is in progress).
    #[arg(long, global = true)]
    one_commit_at_a_time: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload: ping | fetch | fetch_ring | message_ring | transaction_loop.
    /// The ring workloads take one socket per node (`--socket A --socket B ...`); the
    /// others use the first socket.
    Run {
        workload: String,
        #[arg(long = "socket", default_value = "/tmp/ctdb.socket")]
        sockets: Vec<PathBuf>,
    },
    /// Measures the node's memory (its processes' VmRSS/VmHWM) before and after
    /// `--fetches` fetches of records that were never written.
    Memory {
        #[arg(long, default_value_t = 2_000_000)]
        fetches: u64,
        /// Seconds to wait after the fetches before measuring again.
        #[arg(long, default_value_t = 10)]
        settle: u64,
        #[arg(long, default_value = "/tmp/ctdb.socket")]
        socket: PathBuf,
    },
    /// Fills a database with `--records` records, asks for a recovery and reports how
    /// long it took.
    Recovery {
        #[arg(long, default_value_t = 10_000)]
        records: u32,
        /// Bytes of data per record (0: empty records made through calls; above 0:
        /// written into the node's TDB file as Samba's clients write them).
        #[arg(long, default_value_t = 0)]
        value_bytes: usize,
        #[arg(long, default_value = "/tmp/ctdb.socket")]
        socket: PathBuf,
    },
    /// Kills node `--victim` (every pid given) and reports how long the node at
    /// `--socket` took to notice and to finish recovering without it.
    Detect {
        #[arg(long)]
        victim: u32,
        #[arg(long, num_args = 1.., required = true)]
        pids: Vec<i32>,
        #[arg(long, default_value = "/tmp/ctdb.socket")]
        socket: PathBuf,
    },
    /// Starts a ctdb-rs cluster and a Samba ctdbd cluster on loopback addresses, runs
    /// the workloads on both (alternating, `--rounds` times), the memory check on node
    /// 0 of each, prints one table, and stops both clusters.
    Compare {
        /// Comma-separated workloads; `name:N` runs it with N clients.
        #[arg(
            long,
            default_value = "fetch,fetch_ring,fetch_lock_ring,message_ring,transaction_loop:1,transaction_loop:16"
        )]
        workloads: String,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// First three octets of our nodes' addresses (scripts/cluster.sh uses
        /// 127.0.0, the tests 127.100-199).
        #[arg(long, default_value = "127.0.9")]
        our_addresses: String,
        #[arg(long, default_value = "127.0.8")]
        samba_addresses: String,
        /// Samba's cluster script (shared/tools/samba-cluster.sh).
        #[arg(long, default_value = "../shared/tools/samba-cluster.sh")]
        samba_script: PathBuf,
        /// Run our database component inside transport's process.
        #[arg(long)]
        db_in_transport: bool,
        /// Our nodes talk TLS with the certificates in this directory, made by
        /// `scripts/tls-certs.sh DIR <our addresses>` (ca.pem, node.N.pem, node.N.key).
        #[arg(long)]
        tls_dir: Option<PathBuf>,
        /// Fetches of never-written records in the memory check (0: skip it).
        #[arg(long, default_value_t = 2_000_000)]
        memory_fetches: u64,
        /// Seconds to wait after the memory check's fetches before measuring again.
        #[arg(long, default_value_t = 10)]
        settle: u64,
    },
    /// Samba's smbd on a 2-node ctdb-rs cluster and on a 2-node Samba ctdbd cluster:
    /// smbtorture's smb2.bench.path-contention-shared, SMB connections over both nodes
    /// opening and closing one path (`--seconds` per run); prints opens/s of each side
    /// and the ratio.
    Smbd {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value = "127.0.9")]
        our_addresses: String,
        #[arg(long, default_value = "127.0.8")]
        samba_addresses: String,
        #[arg(long, default_value = "../shared/tools/samba-cluster.sh")]
        samba_script: PathBuf,
        #[arg(long, default_value = "../shared/tools/smbd-on-cluster.sh")]
        smbd_script: PathBuf,
    },
}

async fn run(args: Args) -> Result<(), String> {
    let duration = Duration::from_secs(args.seconds);
    let text = |e: workloads::BenchError| e.to_string();
    match args.command {
        Command::Run { workload, sockets } => {
            let w = Workload::parse(&workload).ok_or(format!("unknown workload {workload}"))?;
            let opts = Options {
                sockets,
                clients: args.clients,
                in_flight: args.in_flight,
                one_commit_at_a_time: args.one_commit_at_a_time,
                duration,
            };
            let r = workloads::run(w, &opts).await.map_err(text)?;
            compare::print_run("node", w.name(), w.unit(), &r);
        }
        Command::Memory {
            fetches,
            settle,
            socket,
        } => {
            let settle = Duration::from_secs(settle);
            let check = workloads::memory::run(&socket, args.clients, fetches, settle)
                .await
                .map_err(text)?;
            compare::print_check("node", &check);
        }
        Command::Recovery {
            records,
            value_bytes,
            socket,
        } => {
            let name = format!("ctdb_bench_recovery_{records}_{value_bytes}.tdb");
            let d =
                workloads::recovery::recovery(&socket, records, args.clients, &name, value_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            let mib = records as f64 * value_bytes as f64 / f64::from(1 << 20);
            println!(
                "recovery of {records} records ({mib:.1} MiB of data): {:.3} s",
                d.as_secs_f64()
            );
        }
        Command::Detect {
            victim,
            pids,
            socket,
        } => {
            let (d, r) = workloads::detect::failure_detection(&socket, victim, &pids)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "node {victim} killed: marked disconnected after {:.3} s, recovered after {:.3} s",
                d.as_secs_f64(),
                r.as_secs_f64()
            );
        }
        Command::Compare {
            workloads,
            rounds,
            nodes,
            our_addresses,
            samba_addresses,
            samba_script,
            db_in_transport,
            tls_dir,
            memory_fetches,
            settle,
        } => {
            let args = CompareArgs {
                specs: Spec::parse_list(&workloads)?,
                rounds,
                nodes,
                clients: args.clients,
                in_flight: args.in_flight,
                duration,
                our_prefix: our_addresses,
                samba_prefix: samba_addresses,
                samba_script,
                db_in_transport,
                tls_dir,
                memory_fetches,
                settle: Duration::from_secs(settle),
            };
            compare::compare(args).await?;
        }
        Command::Smbd {
            rounds,
            connections,
            our_addresses,
            samba_addresses,
            samba_script,
            smbd_script,
        } => {
            smbd::run(smbd::SmbdArgs {
                rounds,
                connections,
                seconds: args.seconds,
                our_prefix: our_addresses,
                samba_prefix: samba_addresses,
                samba_script,
                smbd_script,
            })
            .await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // On SIGINT or SIGTERM the run is dropped, and with it any cluster `compare`
    // started.
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ctdb-bench: cannot handle SIGTERM: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctdb-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
