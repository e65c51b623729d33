//! ctdb-bench: CTDB workloads against any socket, and a compare mode that runs the
//! same workloads against a ctdb-rs node and a Samba ctdbd in one go.

#![forbid(unsafe_code)]

mod nodes;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::workload::{Report, Workload};

#[derive(Parser)]
#[command(name = "ctdb-bench", about = "CTDB benchmarks, ours beside Samba's")]
struct Args {
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload against a socket (ours or Samba's).
    Run {
        /// ping | fetch
        workload: String,
        #[arg(long, default_value = "/tmp/ctdb.socket")]
        socket: PathBuf,
    },
    /// Fills a database with `--records` records, asks for a recovery and reports how
    /// long it took.
    Recovery {
        #[arg(long, default_value_t = 10_000)]
        records: u32,
        #[arg(long, default_value = "/tmp/ctdb.socket")]
        socket: PathBuf,
    },
    /// Fetches one record in turn through each socket (one per node), migrating it on
    /// every call.
    Ring {
        #[arg(long, num_args = 2.., required = true)]
        sockets: Vec<PathBuf>,
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
    /// Starts a one-node ctdb-rs and a one-node Samba ctdbd, runs the workloads on
    /// both (alternating, `--rounds` times) and prints the ratios.
    Compare {
        /// Comma-separated workloads.
        #[arg(long, default_value = "ping,fetch")]
        workloads: String,
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Samba's cluster script (shared/tools/samba-cluster.sh).
        #[arg(long, default_value = "../shared/tools/samba-cluster.sh")]
        samba_script: PathBuf,
    },
}

fn print_report(who: &str, workload: Workload, r: &Report) {
    println!(
        "{who:<8} {:<8} {:>10.0} ops/s   p50 {:>6} us   p99 {:>6} us   ({} ops in {:.1} s)",
        workload.name(),
        r.ops_per_sec(),
        r.percentile_us(0.50),
        r.percentile_us(0.99),
        r.ops,
        r.elapsed.as_secs_f64()
    );
}

fn parse_workloads(list: &str) -> Result<Vec<Workload>, String> {
    list.split(',')
        .map(|w| Workload::parse(w.trim()).ok_or_else(|| format!("unknown workload {w}")))
        .collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let duration = Duration::from_secs(args.seconds);
    let result = match args.command {
        Command::Run { workload, socket } => match Workload::parse(&workload) {
            Some(w) => workload::run(&socket, w, args.clients, duration)
                .await
                .map(|r| print_report("node", w, &r))
                .map_err(|e| e.to_string()),
            None => Err(format!("unknown workload {workload}")),
        },
        Command::Recovery { records, socket } => {
            let name = format!("ctdb_bench_recovery_{records}.tdb");
            workload::recovery(&socket, records, args.clients, &name)
                .await
                .map(|d| println!("recovery of {records} records: {:.3} s", d.as_secs_f64()))
                .map_err(|e| e.to_string())
        }
        Command::Ring { sockets } => workload::migrate_ring(&sockets, duration)
            .await
            .map(|r| {
                println!(
                    "ring over {} nodes: {:.0} migrations/s, p50 {} us, p99 {} us",
                    sockets.len(),
                    r.ops_per_sec(),
                    r.percentile_us(0.5),
                    r.percentile_us(0.99)
                )
            })
            .map_err(|e| e.to_string()),
        Command::Detect {
            victim,
            pids,
            socket,
        } => workload::failure_detection(&socket, victim, &pids)
            .await
            .map(|(d, r)| {
                println!(
                    "node {victim} killed: marked disconnected after {:.3} s, recovered after {:.3} s",
                    d.as_secs_f64(),
                    r.as_secs_f64()
                )
            })
            .map_err(|e| e.to_string()),
        Command::Compare {
            workloads,
            rounds,
            samba_script,
        } => match parse_workloads(&workloads) {
            Ok(list) => compare(&list, rounds, &samba_script, args.clients, duration).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctdb-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn compare(
    workloads: &[Workload],
    rounds: usize,
    samba_script: &std::path::Path,
    clients: usize,
    duration: Duration,
) -> Result<(), String> {
    // Ours twice: four processes (the default), and db inside transport's process.
    let split = nodes::OurNode::start(false)?;
    let colocated = nodes::OurNode::start(true)?;
    let samba = nodes::SambaNode::start(samba_script)?;
    split.wait_ready().await?;
    colocated.wait_ready().await?;
    let targets = [
        ("ctdb-rs", &split.socket),
        ("rs-colo", &colocated.socket),
        ("samba", &samba.socket),
    ];
    println!(
        "clients: {clients}, {} s per run, {rounds} rounds (alternating)",
        duration.as_secs()
    );
    let mut summary = Vec::new();
    for &w in workloads {
        let mut best = [0f64; 3];
        for _ in 0..rounds {
            for (i, (who, socket)) in targets.iter().enumerate() {
                let r = workload::run(socket, w, clients, duration)
                    .await
                    .map_err(|e| format!("{who}: {e}"))?;
                print_report(who, w, &r);
                best[i] = best[i].max(r.ops_per_sec());
            }
        }
        summary.push((w, best));
    }
    println!(
        "\nbest of {rounds}: ops/s and ratio to Samba\n\
         workload    ctdb-rs   rs-colo     samba   ctdb-rs/samba  rs-colo/samba"
    );
    for (w, [split, colo, samba]) in summary {
        println!(
            "{:<8} {:>10.0} {:>9.0} {:>9.0} {:>15.2} {:>14.2}",
            w.name(),
            split,
            colo,
            samba,
            split / samba,
            colo / samba
        );
    }
    Ok(())
}
