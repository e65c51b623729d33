//! Issue 13 on docker-compose: a rolling restart of all twelve components (3 nodes ×
//! transport, db, recoverd, eventd; the namespace holder `nodeN` is none) under load,
//! and not one acknowledged write lost.
//!
//! The cluster is `docker-compose.yml` with the nodes' run directories as directories
//! of the host (`deploy/compose/rundirs/docker-compose.override.yml`), so the write
//! checker's clients (`ctdb_tests::checker`, see `tests/tests/checker.rs`) run here and
//! connect to every node's client socket: on every node one writer increments volatile
//! counters of its own and one commits persistent transactions, keeping account of
//! every acknowledged write. Meanwhile each component container is restarted in turn
//! (`docker restart`: SIGTERM, then started again), node by node, the cluster healthy
//! again before the next. At the end every acknowledged write must be on every node.
//! Prints the acknowledged writes checked, how many were lost (must be 0) and the
//! longest time a writer went without an acknowledged write (per writer too, with when
//! it ended).
//!
//! A read that shows a record sequence number lower than an earlier read's, with a
//! value no lower than the last acknowledged, is a write that was never acknowledged
//! (its client saw it fail or time out) seen and then undone: a persistent commit that
//! failed while a transport restarted, visible on its node, then rolled back by the
//! recovery. checker.rs counts it as a problem; here it is printed (`UNDONE:`) and
//! counted, and fails the test only with `CTDB_RS_STRICT_READS` set, since what must
//! hold is that no acknowledged write is lost.
//!
//! Skipped (and passing) where docker is not usable, except in CI, where it must be.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctdb_client::Client;
use ctdb_protocol::flags::{dest, INVALID_GENERATION};
use ctdb_tests::checker::{
    attach_databases, is_undone_unacknowledged, print_problems, say, verify, Report, Verdict,
    Writers, WRITES_BEGAN,
};
use ctdb_tests::compose::{self, ComposeCluster, Layout, COMPONENTS, NODES};

const HERE: u32 = dest::CURRENT_NODE;
const ALL: [u32; 3] = [0, 1, 2];
/// How long the cluster may take to be healthy again.
const SETTLE: Duration = Duration::from_secs(90);
/// Set, the test fails on an unacknowledged write seen and then undone too.
const STRICT: &str = "CTDB_RS_STRICT_READS";
/// The user the containers run as.
const NOBODY: u32 = 65534;

/// The tunables of this run (they live in transport: a restarted one has the defaults
/// again): no bans (a restart may fail recoveries, and a banned node would sit out the
/// rest of the run), keepalives of 1 s × 3.
const TUNABLES: [(&str, u32); 3] = [
    ("KeepaliveInterval", 1),
    ("KeepaliveLimit", 3),
    ("EnableBans", 0),
];

async fn tune(c: &Client) -> Result<(), String> {
    for (name, value) in TUNABLES {
        c.set_tunable(HERE, name, value)
            .await
            .map_err(|e| format!("{name} on node {}: {e}", c.pnn()))?;
    }
    Ok(())
}

/// Every node of `nodes` (pnn, client socket) answers on its socket, sees all of them
/// with no flags, is not recovering and has the same generation and a vnn map of all.
/// Sets the tunables of every node it reaches first, so a restarted transport has them
/// again as soon as it answers, not only once the cluster is healthy.
async fn check(nodes: &[(u32, PathBuf)]) -> Result<Vec<Client>, String> {
    let all: Vec<u32> = nodes.iter().map(|(p, _)| *p).collect();
    let mut clients = Vec::new();
    let mut generation = None;
    for (pnn, socket) in nodes {
        let c = tokio::time::timeout(Duration::from_secs(5), Client::connect(socket))
            .await
            .map_err(|_| format!("node {pnn}: connecting timed out"))?
            .map_err(|e| format!("node {pnn}: {e}"))?;
        tune(&c).await?;
        let map = c.get_nodemap(HERE).await.map_err(|e| e.to_string())?;
        if let Some(n) = map.nodes.iter().find(|n| n.flags != 0) {
            return Err(format!(
                "node {pnn} sees node {} with flags {:#x}",
                n.pnn, n.flags
            ));
        }
        if c.get_recmode(HERE).await.map_err(|e| e.to_string())? != 0 {
            return Err(format!("node {pnn} is recovering"));
        }
        let vnn = c.get_vnnmap(HERE).await.map_err(|e| e.to_string())?;
        if vnn.generation == INVALID_GENERATION || vnn.map != all {
            return Err(format!(
                "node {pnn} has generation {} vnn map {:?}",
                vnn.generation, vnn.map
            ));
        }
        match generation {
            None => generation = Some(vnn.generation),
            Some(g) if g != vnn.generation => {
                return Err(format!("generations differ: {g} and {}", vnn.generation))
            }
            _ => {}
        }
        clients.push(c);
    }
    Ok(clients)
}

/// Waits until [`check`] passes.
async fn heal(nodes: &[(u32, PathBuf)]) -> Vec<Client> {
    let deadline = Instant::now() + SETTLE;
    let clients = loop {
        match check(nodes).await {
            Ok(clients) => break clients,
            Err(why) => assert!(
                Instant::now() < deadline,
                "the cluster is not healthy within {SETTLE:?}: {why}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_rolling_restart_of_the_compose_cluster() {
    if !compose::can_run() {
        return;
    }
    let began = Instant::now();
    let image = tokio::task::block_in_place(compose::image)
        .expect("build the image with deploy/build-image.sh");

    // Node N's run directory: the host's run/nodeN, nobody's, 0755. Declared before the
    // cluster, so it is removed after the cluster is down.
    let run = tempfile::Builder::new()
        .prefix("ctdb-rs-compose-run")
        .tempdir()
        .expect("temporary directory");
    let mut nodes = Vec::new();
    for pnn in 0..NODES {
        let dir = run.path().join(format!("node{pnn}"));
        std::fs::create_dir(&dir).expect("run directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod run directory");
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).expect("chown run directory");
        nodes.push((pnn, dir.join("ctdb.socket")));
    }
    let layout = Layout {
        files: vec![
            "docker-compose.yml",
            "deploy/compose/rundirs/docker-compose.override.yml",
        ],
        env: vec![("CTDB_RS_RUN_DIR", run.path().display().to_string())],
        ..Layout::default()
    };
    let cluster = tokio::task::block_in_place(|| ComposeCluster::up_with(&image, layout))
        .expect("docker-compose up");
    say(&format!(
        "compose_rolling: project {} on {}.0/24, rolling restart of the 12 components under load",
        cluster.project, cluster.subnet
    ));

    let clients = heal(&nodes).await;
    let (vdb, pdb) = attach_databases(&clients.iter().collect::<Vec<_>>()).await;
    drop(clients);

    let writers = Writers::start(&nodes, vdb, pdb);
    let writes_began = *WRITES_BEGAN.get_or_init(Instant::now);
    let mut restarts = 0;
    for pnn in ALL {
        for component in COMPONENTS {
            // Writers work undisturbed a moment between restarts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let service = format!("node{pnn}-{component}");
            let at = writes_began.elapsed().as_secs_f64();
            let t = Instant::now();
            let before =
                tokio::task::block_in_place(|| cluster.inspect(&service, "{{.State.StartedAt}}"))
                    .expect("docker inspect");
            tokio::task::block_in_place(|| {
                compose::docker(&["restart", "-t", "10", cluster.container(&service)])
            })
            .unwrap_or_else(|e| panic!("docker restart {service}: {e}"));
            // A restarted transport has the default tunables (bans on): set them as
            // soon as it answers.
            let deadline = Instant::now() + SETTLE;
            while Instant::now() < deadline {
                let socket = &nodes[pnn as usize].1;
                if let Ok(Ok(c)) =
                    tokio::time::timeout(Duration::from_secs(2), Client::connect(socket)).await
                {
                    if tune(&c).await.is_ok() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let after = tokio::task::block_in_place(|| {
                cluster.inspect(&service, "{{.State.Status}} {{.State.StartedAt}}")
            })
            .expect("docker inspect");
            assert!(
                after.starts_with("running ") && !after.ends_with(&before),
                "{service} was not restarted: {after}"
            );
            heal(&nodes).await;
            restarts += 1;
            say(&format!(
                "compose_rolling: [{at:5.1}s] {service} restarted; healthy again after {:.1}s",
                t.elapsed().as_secs_f64()
            ));
        }
    }

    let (volatile_reports, persistent_reports) = writers.stop().await;
    let clients = heal(&nodes).await;
    let Verdict {
        volatile: v,
        persistent: p,
        problems,
        longest_stall,
    } = verify(
        "compose_rolling",
        &clients,
        vdb,
        pdb,
        &volatile_reports,
        &persistent_reports,
    )
    .await;
    let (undone, lost): (Vec<String>, Vec<String>) = problems
        .into_iter()
        .partition(|p| is_undone_unacknowledged(p));
    print_problems("compose_rolling", "LOST", &lost);
    print_problems("compose_rolling", "UNDONE", &undone);
    let stalls = |reports: &[Report]| -> Vec<String> {
        reports
            .iter()
            .map(|r| {
                format!(
                    "{:.1}s to [{:5.1}s]",
                    r.longest_stall.as_secs_f64(),
                    r.longest_stall_ended
                )
            })
            .collect()
    };
    say(&format!(
        "compose_rolling: longest stall of the writers of nodes 0-2: volatile {:?}, \
         persistent {:?}",
        stalls(&volatile_reports),
        stalls(&persistent_reports)
    ));
    say(&format!(
        "compose_rolling: {} acknowledged writes checked ({v} volatile, {p} persistent), {restarts} \
         component restarts, {} lost, {} unacknowledged writes seen and then undone, longest \
         stall of a writer {:.1}s ({:.0}s)",
        v + p,
        lost.len(),
        undone.len(),
        longest_stall.as_secs_f64(),
        began.elapsed().as_secs_f64()
    ));
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost or wrong, the first: {}",
        lost.len(),
        lost[0]
    );
    assert!(
        undone.is_empty() || std::env::var_os(STRICT).is_none(),
        "{} unacknowledged writes seen and then undone ({STRICT} is set), the first: {}",
        undone.len(),
        undone[0]
    );
    assert_eq!(restarts, NODES as usize * COMPONENTS.len());
    assert!(
        v > 0 && p > 0,
        "the writers acknowledged nothing: {v} volatile, {p} persistent"
    );
}
