//! The write checker (issue 10): clients keep writing while components and nodes are
//! killed and the network is cut; every acknowledged write must survive.
//!
//! One 3-node cluster without a recovery lock (leaders hold a majority lease), started
//! with `CTDB_RS_FAULT_INJECTION=1`. For the run's duration (60 s by default,
//! `CTDB_RS_CHECKER_SECS` for longer) writers run on every node at once:
//!
//! - **volatile**: one client per node increments 8 counters of its own
//!   (`n{pnn}-k{i}`): it reads the record with its header (FETCH_WITH_HEADER, which
//!   migrates it here), then stores the next value with a compare-and-store. Each key
//!   has one writer because a volatile record lives on its dmaster only (Samba's
//!   semantics): a record written on both sides of a cut keeps one side's value, so two
//!   writers of one key across a cut would lose writes by design, not by a bug.
//! - **persistent**: one client per node runs transactions, each writing a new key of
//!   its own (`p{pnn}-t{seq}`) and incrementing a counter of its own (`p{pnn}-count`).
//!
//! A write answered with success is acknowledged; one that failed or timed out may or
//! may not have happened, so the writer reads again before going on (a reconnect when
//! the node's transport died). Every read is checked as it comes: a counter below its
//! last acknowledged value (a lost write, later hidden by new increments), above the
//! highest value ever sent, or a record sequence number (RSN) lower than one seen
//! before, is reported.
//!
//! Meanwhile one fault at a time, in random order (the seed is printed; set
//! `CTDB_RS_CHECKER_SEED` to replay one), each followed by a wait until the cluster is
//! healthy again: SIGKILL of a component (ctdb-db, ctdb-recoverd, ctdb-transport or
//! ctdb-eventd) of a node, a crash of a whole node (every process SIGKILLed) and its
//! restart, and a network cut of one node for 5–8 s (transport's fault point
//! `transport::cut` on all three nodes, see README "Fault points"; keepalives are set to
//! 1 s × 3 so that both sides see the partition) then healed. Bans are off (faults make
//! recoveries fail; a banned node would sit out the rest of a short run).
//!
//! At the end the writers stop and, once all three nodes are healthy, on every node:
//! every volatile counter is at least its last acknowledged value and at most the
//! highest value sent, with an RSN no lower than any its writer saw; every acknowledged
//! persistent key holds its value, every persistent counter is in its range, the
//! sequence number counts at least every acknowledged commit, and the persistent
//! database (PULL_DB, headers included, `__db_sequence_number__` too) is the same
//! byte for byte on every node. It prints one line (written to the terminal even
//! without `--nocapture`), e.g.
//!
//! ```text
//! checker: 1234 acknowledged writes checked (800 volatile, 434 persistent), faults: 5 component kills, 2 node crashes, 2 cuts, 0 lost
//! ```
//!
//! and fails when anything was lost. A longer run is one command:
//!
//! ```sh
//! cargo build --workspace --bins && CTDB_RS_CHECKER_SECS=900 cargo test -p ctdb-tests --test checker -- --nocapture
//! ```

use std::time::{Duration, Instant};

use ctdb_client::Client;
use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_tests::checker::{
    attach_databases, print_problems, say, verify, Verdict, Writers, OP_TIMEOUT, WRITES_BEGAN,
};
use ctdb_tests::TestCluster;

const HERE: u32 = dest::CURRENT_NODE;
const NODES: [u32; 3] = [0, 1, 2];
const FAULT_INJECTION: (&str, &str) = ("CTDB_RS_FAULT_INJECTION", "1");
const COMPONENTS: [&str; 4] = ["ctdb-db", "ctdb-recoverd", "ctdb-transport", "ctdb-eventd"];

/// xorshift64*: enough randomness to pick faults, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// SET_FAILPOINT `transport::cut` on the node behind `client`: cuts it off `peers`
/// (none: heals). Returns how many packets its cut dropped so far.
async fn cut(client: &Client, peers: &[u32]) -> Result<u64, String> {
    let actions = if peers.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = peers.iter().map(u32::to_string).collect();
        format!("return({})", list.join(","))
    };
    ctdb_tests::failpoint(client, "transport", "transport::cut", Some(&actions)).await
}

/// Tunables live in transport (a restarted one has the defaults again): keepalives
/// that notice a cut in 3 s, and no bans.
async fn tune(clients: &[Option<Client>]) {
    for c in clients.iter().flatten() {
        for (name, value) in [
            ("KeepaliveInterval", 1),
            ("KeepaliveLimit", 3),
            ("EnableBans", 0),
        ] {
            c.set_tunable(HERE, name, value)
                .await
                .unwrap_or_else(|e| panic!("{name} on node {}: {e}", c.pnn()));
        }
    }
}

/// Waits until `active` are healthy (TestCluster::healthy: a generous timeout, with
/// the logs when it runs out), then sets the tunables again.
async fn heal(cluster: &TestCluster, active: &[u32]) -> Vec<Option<Client>> {
    let clients = cluster.healthy(active).await;
    tune(&clients).await;
    clients
}

#[derive(Default)]
struct Faults {
    kills: u64,
    crashes: u64,
    cuts: u64,
    restarts: u64,
}

/// One fault at a time for `run_for`: each kind once first, in random order, then at
/// random; each followed by a wait until the cluster is healthy again.
async fn random_faults(
    cluster: &mut TestCluster,
    run_for: Duration,
    seed: u64,
    faults: &mut Faults,
) {
    let mut rng = Rng(seed);
    let writes_began = *WRITES_BEGAN.get_or_init(Instant::now);
    let mut first = vec![0u64, 1, 2];
    while writes_began.elapsed() < run_for {
        // Writers work undisturbed a moment between faults.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
        let kind = if first.is_empty() {
            // Component kills half the time, crashes and cuts a quarter each.
            [0, 0, 1, 2][rng.below(4) as usize]
        } else {
            first.remove(rng.below(first.len() as u64) as usize)
        };
        let victim = rng.below(3) as u32;
        let at = writes_began.elapsed().as_secs_f64();
        let t = Instant::now();
        let what = match kind {
            0 => {
                let component = COMPONENTS[rng.below(4) as usize];
                cluster.nodes[victim as usize]
                    .kill_and_wait_restart(component)
                    .await;
                heal(cluster, &NODES).await;
                faults.kills += 1;
                format!("{component} of node {victim} killed")
            }
            1 => {
                cluster.nodes[victim as usize].crash();
                let others: Vec<u32> = NODES.iter().copied().filter(|&p| p != victim).collect();
                heal(cluster, &others).await;
                let alone = t.elapsed();
                cluster.nodes[victim as usize].restart();
                heal(cluster, &NODES).await;
                faults.crashes += 1;
                format!(
                    "node {victim} crashed (the others healthy after {:.1}s) and restarted",
                    alone.as_secs_f64()
                )
            }
            _ => {
                let what = cut_one(cluster, victim, 5000 + rng.below(3000)).await;
                heal(cluster, &NODES).await;
                faults.cuts += 1;
                what
            }
        };
        say(&format!(
            "checker: [{at:5.1}s] {what}; healthy again after {:.1}s",
            t.elapsed().as_secs_f64()
        ));
    }
}

/// One network cut of `victim` for `secs`, then healed; checks that the others saw it
/// DISCONNECTED meanwhile (the cut is a real partition).
async fn cut_one(cluster: &TestCluster, victim: u32, millis: u64) -> String {
    let clients = heal(cluster, &NODES).await;
    let others: Vec<u32> = NODES.iter().copied().filter(|&p| p != victim).collect();
    let started = Instant::now();
    for &pnn in &NODES {
        let peers = if pnn == victim {
            others.clone()
        } else {
            vec![victim]
        };
        let c = clients[pnn as usize].as_ref().expect("client");
        cut(c, &peers)
            .await
            .unwrap_or_else(|e| panic!("cutting node {pnn} off {peers:?}: {e}"));
    }
    let watcher = clients[others[0] as usize].as_ref().expect("client");
    let mut noticed = None;
    while started.elapsed() < Duration::from_millis(millis) {
        if noticed.is_none() {
            let map = tokio::time::timeout(OP_TIMEOUT, watcher.get_nodemap(HERE)).await;
            if let Ok(Ok(map)) = map {
                if map
                    .nodes
                    .iter()
                    .any(|n| n.pnn == victim && n.flags & node_flags::DISCONNECTED != 0)
                {
                    noticed = Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut dropped = 0;
    for &pnn in &NODES {
        let c = clients[pnn as usize].as_ref().expect("client");
        dropped += cut(c, &[])
            .await
            .unwrap_or_else(|e| panic!("healing the cut on node {pnn}: {e}"));
    }
    let noticed = noticed.unwrap_or_else(|| {
        panic!(
            "node {} never saw node {victim} DISCONNECTED in a {millis} ms cut\nlogs:\n{}",
            others[0],
            cluster.logs()
        )
    });
    format!(
        "node {victim} cut off for {:.1}s (node {} saw it DISCONNECTED after {:.1}s; {dropped} \
         packets dropped)",
        millis as f64 / 1000.0,
        others[0],
        noticed.as_secs_f64()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kills_crashes_and_cuts() {
    let run_for = Duration::from_secs(
        std::env::var("CTDB_RS_CHECKER_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let seed = std::env::var("CTDB_RS_CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    say(&format!(
        "checker: {}s of writes and faults, seed {seed} (CTDB_RS_CHECKER_SEED replays it)",
        run_for.as_secs()
    ));
    run_checker(Plan::Random { run_for, seed }).await;
}

/// Issue 13's rolling restart: every component of every node restarted in turn, as an
/// operator (or a Kubernetes rollout) does, while the writers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_rolling_restart_of_every_component() {
    say("checker: rolling restart of the 12 components under load");
    run_checker(Plan::Rolling).await;
}

/// What happens to the cluster while the writers write.
enum Plan {
    /// One fault at a time, at random (from `seed`), for `run_for`.
    Random { run_for: Duration, seed: u64 },
    /// Node by node, each component stopped (SIGTERM) and restarted by its supervisor,
    /// the cluster healthy again before the next.
    Rolling,
}

async fn run_checker(plan: Plan) {
    let began = Instant::now();
    let mut cluster = TestCluster::start_without_lock_with_env(3, &[FAULT_INJECTION]);
    let clients = heal(&cluster, &NODES).await;
    let c0 = clients[0].as_ref().expect("client");
    let (vdb, pdb) = attach_databases(&clients.iter().flatten().collect::<Vec<_>>()).await;
    // Transport refuses a bad cut clearly.
    let e = cut(c0, &[0]).await.unwrap_err();
    assert!(e.contains("not another live node"), "{e}");
    drop(clients);

    let nodes: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| (n.pnn, n.socket.clone()))
        .collect();
    let writers = Writers::start(&nodes, vdb, pdb);

    let writes_began = *WRITES_BEGAN.get_or_init(Instant::now);
    let mut faults = Faults::default();
    let seed = match plan {
        Plan::Random { run_for, seed } => {
            random_faults(&mut cluster, run_for, seed, &mut faults).await;
            seed
        }
        Plan::Rolling => {
            for pnn in NODES {
                for component in COMPONENTS {
                    // Writers work undisturbed a moment between restarts.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let at = writes_began.elapsed().as_secs_f64();
                    let t = Instant::now();
                    cluster.nodes[pnn as usize]
                        .restart_component(component)
                        .await;
                    heal(&cluster, &NODES).await;
                    faults.restarts += 1;
                    say(&format!(
                        "checker: [{at:5.1}s] {component} of node {pnn} restarted; healthy \
                         again after {:.1}s",
                        t.elapsed().as_secs_f64()
                    ));
                }
            }
            0
        }
    };

    let (volatile_reports, persistent_reports) = writers.stop().await;
    let clients: Vec<Client> = heal(&cluster, &NODES).await.into_iter().flatten().collect();
    let Verdict {
        volatile: v,
        persistent: p,
        problems,
        longest_stall: stall,
    } = verify(
        "checker",
        &clients,
        vdb,
        pdb,
        &volatile_reports,
        &persistent_reports,
    )
    .await;
    print_problems("checker", "LOST", &problems);
    say(&format!(
        "checker: {} acknowledged writes checked ({v} volatile, {p} persistent), faults: {} \
         component kills, {} node crashes, {} cuts, {} component restarts, {} lost, longest \
         stall of a writer {:.1}s ({:.0}s)",
        v + p,
        faults.kills,
        faults.crashes,
        faults.cuts,
        faults.restarts,
        problems.len(),
        stall.as_secs_f64(),
        began.elapsed().as_secs_f64()
    ));
    if !problems.is_empty() {
        // The nodes' logs outlive the cluster's directory, for a look at what happened.
        let kept = std::env::temp_dir().join(format!("ctdb-rs-checker-{seed}"));
        let _ = std::fs::create_dir_all(&kept);
        for node in &cluster.nodes {
            let _ = std::fs::write(kept.join(format!("node{}.log", node.pnn)), node.log());
        }
        panic!(
            "{} problems (seed {seed}), the first: {}\nevery node's log: {}",
            problems.len(),
            problems[0],
            kept.display()
        );
    }
    assert!(
        v > 0 && p > 0,
        "the writers acknowledged nothing: {v} volatile, {p} persistent"
    );
}
