//! `compare`: a ctdb-rs cluster and a Samba cluster side by side on this machine,
//! every workload run on both in turn, one table of ratios.

use std::path::PathBuf;
use std::time::Duration;

use crate::cluster::{OurCluster, SambaCluster};
use crate::procs::{self, Memory};
use crate::stats::Report;
use crate::workloads::{self, memory::MemoryCheck, Options, Workload};

/// A workload with, optionally, its own number of clients (`transaction_loop:16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub workload: Workload,
    pub clients: Option<usize>,
}

impl Spec {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, clients) = match s.split_once(':') {
            Some((name, n)) => match n.parse::<usize>() {
                Ok(n) if n > 0 => (name, Some(n)),
                _ => return Err(format!("bad client count in {s:?}")),
            },
            None => (s, None),
        };
        let workload = Workload::parse(name).ok_or_else(|| {
            let known: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!("unknown workload {name:?} (known: {})", known.join(", "))
        })?;
        if workload.is_ring() && clients.is_some() {
            return Err(format!("{name} has one client per node; drop the :N"));
        }
        Ok(Self { workload, clients })
    }

    pub fn parse_list(list: &str) -> Result<Vec<Self>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect()
    }

    fn label(&self, opts: &Options) -> String {
        let w = self.workload;
        match w {
            Workload::FetchRing | Workload::FetchLockRing => {
                format!("{} ({} nodes)", w.name(), opts.sockets.len())
            }
            Workload::MessageRing => format!(
                "{} ({} nodes, {} in flight)",
                w.name(),
                opts.sockets.len(),
                opts.in_flight
            ),
            _ => {
                let n = self.clients.unwrap_or(opts.clients);
                let s = if n == 1 { "" } else { "s" };
                format!("{} ({n} client{s})", w.name())
            }
        }
    }
}

pub struct CompareArgs {
    pub specs: Vec<Spec>,
    pub rounds: usize,
    pub nodes: usize,
    pub clients: usize,
    pub in_flight: usize,
    pub duration: Duration,
    pub our_prefix: String,
    pub samba_prefix: String,
    pub samba_script: PathBuf,
    pub db_in_transport: bool,
    /// Our nodes talk TLS with the certificates of this directory
    /// (`scripts/tls-certs.sh DIR ADDR...`).
    pub tls_dir: Option<PathBuf>,
    /// Empty-record fetches of the memory check (0: no check).
    pub memory_fetches: u64,
    pub settle: Duration,
}

const SIDES: [&str; 2] = ["ctdb-rs", "Samba"];

pub fn print_run(who: &str, label: &str, unit: &str, r: &Report) {
    let retries = if r.retries > 0 {
        format!(", {} retries", r.retries)
    } else {
        String::new()
    };
    println!(
        "{who:<8} {label:<40} {:>9.0} {unit}/s  p50 {:>6} us  p99 {:>6} us  ({} in {:.1} s{retries})",
        r.ops_per_sec(),
        r.p50(),
        r.p99(),
        r.ops,
        r.elapsed.as_secs_f64()
    );
}

pub async fn compare(args: CompareArgs) -> Result<(), String> {
    println!(
        "starting a {n}-node ctdb-rs cluster on {}.x and a {n}-node Samba cluster on {}.x",
        args.our_prefix,
        args.samba_prefix,
        n = args.nodes
    );
    let ours = OurCluster::start(
        args.nodes,
        &args.our_prefix,
        args.db_in_transport,
        args.tls_dir.as_deref(),
    )?;
    let samba = SambaCluster::start(&args.samba_script, args.nodes, &args.samba_prefix)?;
    let ready = Duration::from_secs(90);
    workloads::wait_healthy(&ours.sockets, ready)
        .await
        .map_err(|e| format!("ctdb-rs ({}): {e}", ours.dir().display()))?;
    workloads::wait_healthy(&samba.sockets, ready)
        .await
        .map_err(|e| format!("Samba: {e}"))?;
    let sockets = [ours.sockets.clone(), samba.sockets.clone()];
    println!(
        "{} s per run, {} rounds, sides alternating; best round of each kept\n",
        args.duration.as_secs(),
        args.rounds
    );

    let mut rows = Vec::new();
    for spec in &args.specs {
        let opts = |side: usize| Options {
            sockets: sockets[side].clone(),
            clients: spec.clients.unwrap_or(args.clients),
            in_flight: args.in_flight,
            // Samba refuses concurrent commits on one database; ours groups them.
            one_commit_at_a_time: side == 1,
            duration: args.duration,
        };
        let label = spec.label(&opts(0));
        let mut best: [Option<Report>; 2] = [None, None];
        for round in 0..args.rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let r = workloads::run(spec.workload, &opts(side))
                    .await
                    .map_err(|e| format!("{} {label}: {e}", SIDES[side]))?;
                print_run(SIDES[side], &label, spec.workload.unit(), &r);
                if best[side]
                    .as_ref()
                    .is_none_or(|b| r.ops_per_sec() > b.ops_per_sec())
                {
                    best[side] = Some(r);
                }
            }
        }
        let [Some(a), Some(b)] = best else {
            return Err("no rounds were run (--rounds 0)".into());
        };
        rows.push((label, spec.workload.unit(), a, b));
    }

    // Memory of node 0 after the workloads, then the empty-fetch check.
    let mut after_workloads = [Memory::default(); 2];
    let mut checks: [Option<MemoryCheck>; 2] = [None, None];
    for side in 0..2 {
        let socket = &sockets[side][0];
        after_workloads[side] = node_memory(socket).await?;
        if args.memory_fetches > 0 {
            let check =
                workloads::memory::run(socket, args.clients, args.memory_fetches, args.settle)
                    .await
                    .map_err(|e| format!("{} memory check: {e}", SIDES[side]))?;
            print_check(SIDES[side], &check);
            checks[side] = Some(check);
        }
    }

    print_table(&rows);
    print_memory(&after_workloads, &checks, args.settle);
    Ok(())
}

async fn node_memory(socket: &std::path::Path) -> Result<Memory, String> {
    let c = ctdb_client::Client::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let pid = c
        .get_pid(ctdb_protocol::flags::dest::CURRENT_NODE)
        .await
        .map_err(|e| e.to_string())?;
    Ok(procs::memory(&procs::node_processes(pid)))
}

pub fn print_check(who: &str, c: &MemoryCheck) {
    println!(
        "{who:<8} memory check: {} empty fetches at {:.0}/s (p50 {} us); RSS {:.1} -> {:.1} MiB, {:.1} MiB {} s later (anonymous {:.1} -> {:.1} -> {:.1}); processes: {}",
        c.fetches.ops,
        c.fetches.ops_per_sec(),
        c.fetches.p50(),
        Memory::mib(c.before.rss_kib),
        Memory::mib(c.after.rss_kib),
        Memory::mib(c.settled.rss_kib),
        c.settle.as_secs(),
        Memory::mib(c.before.anon_kib),
        Memory::mib(c.after.anon_kib),
        Memory::mib(c.settled.anon_kib),
        procs::describe(&c.pids),
    );
}

fn print_table(rows: &[(String, &str, Report, Report)]) {
    println!(
        "\n| workload | ctdb-rs ops/s | Samba ops/s | ctdb-rs / Samba | ctdb-rs p50 / p99 µs | Samba p50 / p99 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, unit, a, b) in rows {
        let ratio = if b.ops_per_sec() > 0.0 {
            format!("{:.2}", a.ops_per_sec() / b.ops_per_sec())
        } else {
            "–".into()
        };
        println!(
            "| {label}, {unit} | {} | {} | {ratio} | {} / {} | {} / {} |",
            thousands(a.ops_per_sec()),
            thousands(b.ops_per_sec()),
            a.p50(),
            a.p99(),
            b.p50(),
            b.p99()
        );
    }
    println!(
        "\nfetch_ring: latency of the migrating fetch; message_ring: every delivery counts, \
         latency of a whole round. transaction_loop on Samba: the clients commit one at a \
         time (a lock in the bench), since Samba's ctdbd refuses a TRANS3_COMMIT while \
         another one on the database is in progress."
    );
}

fn print_memory(after: &[Memory; 2], checks: &[Option<MemoryCheck>; 2], settle: Duration) {
    let mib = |k: u64| format!("{:.1}", Memory::mib(k));
    println!("\n| node 0 memory, MiB | ctdb-rs | Samba |");
    println!("|---|---:|---:|");
    println!(
        "| processes measured | {} | {} |",
        after[0].processes, after[1].processes
    );
    println!(
        "| RSS after the workloads: now / peak / anonymous (VmRSS / VmHWM / RssAnon, summed) | {} / {} / {} | {} / {} / {} |",
        mib(after[0].rss_kib),
        mib(after[0].hwm_kib),
        mib(after[0].anon_kib),
        mib(after[1].rss_kib),
        mib(after[1].hwm_kib),
        mib(after[1].anon_kib)
    );
    if let [Some(a), Some(b)] = checks {
        let fetches = thousands(a.fetches.ops as f64);
        let secs = settle.as_secs();
        let row = |what: &str, f: fn(&Memory) -> u64| {
            let cell = |c: &MemoryCheck| {
                format!(
                    "{} → {} → {}",
                    mib(f(&c.before)),
                    mib(f(&c.after)),
                    mib(f(&c.settled))
                )
            };
            println!(
                "| {what} before → after {fetches} fetches of never-written records → {secs} s later | {} | {} |",
                cell(a),
                cell(b)
            );
        };
        row("RSS", |m| m.rss_kib);
        row("anonymous RSS", |m| m.anon_kib);
        println!(
            "| peak (VmHWM) after those fetches | {} | {} |",
            mib(a.settled.hwm_kib),
            mib(b.settled.hwm_kib)
        );
    }
}

/// 12345.6 -> "12,346".
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let list = Spec::parse_list("fetch, fetch_ring,transaction_loop:16,").unwrap();
        assert_eq!(
            list,
            [
                Spec {
                    workload: Workload::Fetch,
                    clients: None
                },
                Spec {
                    workload: Workload::FetchRing,
                    clients: None
                },
                Spec {
                    workload: Workload::TransactionLoop,
                    clients: Some(16)
                },
            ]
        );
        assert!(Spec::parse("fetch:0").is_err());
        assert!(Spec::parse("fetch:x").is_err());
        assert!(Spec::parse("message_ring:3").is_err());
        assert!(Spec::parse("nope").is_err());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(98_123.6), "98,124");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
