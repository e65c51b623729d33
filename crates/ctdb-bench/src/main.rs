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
    let ours = nodes::OurNode::start()?;
    let samba = nodes::SambaNode::start(samba_script)?;
    ours.wait_ready().await?;
    println!(
        "clients: {clients}, {} s per run, {rounds} rounds (alternating)",
        duration.as_secs()
    );
    let mut summary = Vec::new();
    for &w in workloads {
        let (mut best_ours, mut best_samba) = (0f64, 0f64);
        for _ in 0..rounds {
            let r = workload::run(&ours.socket, w, clients, duration)
                .await
                .map_err(|e| format!("ours: {e}"))?;
            print_report("ctdb-rs", w, &r);
            best_ours = best_ours.max(r.ops_per_sec());
            let r = workload::run(&samba.socket, w, clients, duration)
                .await
                .map_err(|e| format!("samba: {e}"))?;
            print_report("samba", w, &r);
            best_samba = best_samba.max(r.ops_per_sec());
        }
        summary.push((w, best_ours, best_samba));
    }
    println!("\nworkload   ctdb-rs ops/s   samba ops/s   ratio (ours/samba, best of {rounds})");
    for (w, o, s) in summary {
        println!("{:<10} {:>13.0} {:>13.0} {:>8.2}", w.name(), o, s, o / s);
    }
    Ok(())
}
