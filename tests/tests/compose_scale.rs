//! Issue 13: a docker-compose cluster scaled 3 → 4 → 3 live with `ctdb reloadnodes`.
//!
//! The pod-shaped cluster of `docker-compose.yml` (no recovery lock, nothing shared)
//! plus `deploy/compose/scale/node3.yml`, whose fourth node is left out of `up`
//! (profile `node3`). Growing: node 3's line goes into the nodes file (one
//! configuration directory, mounted into every container), its five containers start,
//! `ctdb reloadnodes` on node 0 says `Node 3 is NEW`, and the four nodes agree.
//! Shrinking: node 3's containers stop, its line becomes `#...`, `reloadnodes` says
//! `Node 3 is DELETED`, and the three agree again with node 3 listed as deleted.
//! Records written before (volatile and persistent, from every node) read back on every
//! node at each stage, and no container of nodes 0–2 was restarted or recreated
//! (their start times and restart counts are unchanged). Prints how long each reload
//! took to an agreed cluster.

use std::time::{Duration, Instant};

use ctdb_tests::compose::{self, ComposeCluster, Layout, COMPONENTS};

const VOLATILE: &str = "scale_volatile.tdb";
const PERSISTENT: &str = "scale_persistent.tdb";
const SETTLE: Duration = Duration::from_secs(90);

/// Start time and restart count of every container of nodes 0–2.
fn lifetimes(cluster: &ComposeCluster) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for pnn in 0..3 {
        let services = std::iter::once(format!("node{pnn}"))
            .chain(COMPONENTS.iter().map(|c| format!("node{pnn}-{c}")));
        for service in services {
            let life = cluster
                .inspect(&service, "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}")
                .expect("docker inspect");
            all.push((service, life));
        }
    }
    all
}

fn check_records(cluster: &ComposeCluster, nodes: &[u32], records: &[(String, String)]) {
    for &pnn in nodes {
        for (key, value) in records {
            let v = cluster
                .ctdb(pnn, &["readkey", VOLATILE, key])
                .unwrap_or_else(|e| panic!("readkey {key} on node {pnn}: {e}"));
            assert!(
                v.contains(&format!("ptr:[{value}]")),
                "volatile {key} on node {pnn}: {v}"
            );
            let p = cluster
                .ctdb(pnn, &["pfetch", PERSISTENT, key])
                .unwrap_or_else(|e| panic!("pfetch {key} on node {pnn}: {e}"));
            assert_eq!(p.trim_end(), value, "persistent {key} on node {pnn}");
        }
    }
}

fn write_nodes(cluster: &ComposeCluster, lines: &[String]) {
    std::fs::write(cluster.config_dir().join("nodes"), lines.join("\n") + "\n")
        .expect("nodes file");
}

/// `ctdb reloadnodes` on node `pnn` once every node reads the new file; its stdout.
fn reloadnodes(cluster: &ComposeCluster, pnn: u32, expect: &str) -> String {
    cluster.wait_for(
        &format!("reloadnodes saying {expect:?}"),
        Duration::from_secs(30),
        || {
            let out = cluster.ctdb(pnn, &["reloadnodes"])?;
            if out.contains(expect) {
                Ok(out)
            } else {
                Err(out)
            }
        },
    )
}

#[test]
fn a_compose_cluster_scales_to_four_nodes_and_back_live() {
    if !compose::can_run() {
        return;
    }
    let image = compose::image().expect("build the image with deploy/build-image.sh");
    let layout = Layout {
        files: vec!["docker-compose.yml", "deploy/compose/scale/node3.yml"],
        ..Layout::default()
    };
    let mut cluster = ComposeCluster::up_with(&image, layout).expect("docker-compose up");
    eprintln!(
        "compose_scale: project {} on {}.0/24",
        cluster.project, cluster.subnet
    );
    cluster.wait_agreed(&[0, 1, 2], SETTLE, |_| true);

    cluster.ctdb(0, &["attach", VOLATILE]).expect("attach");
    cluster
        .ctdb(0, &["attach", PERSISTENT, "persistent"])
        .expect("attach persistent");
    let mut records = Vec::new();
    for i in 0..6u32 {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        cluster
            .ctdb(i % 3, &["writekey", VOLATILE, &key, &value])
            .expect("writekey");
        cluster
            .ctdb(i % 3, &["pstore", PERSISTENT, &key, &value])
            .expect("pstore");
        records.push((key, value));
    }
    let before = lifetimes(&cluster);

    // ---- 3 -> 4 ----
    let mut lines: Vec<String> = (0..4).map(|p| cluster.address(p)).collect();
    write_nodes(&cluster, &lines);
    let node3: Vec<String> = std::iter::once("node3".to_string())
        .chain(COMPONENTS.iter().map(|c| format!("node3-{c}")))
        .collect();
    let mut args = vec!["--profile", "node3", "up", "-d"];
    args.extend(node3.iter().map(String::as_str));
    cluster
        .compose(&args, Duration::from_secs(120))
        .expect("start node 3");
    cluster.find_containers().expect("node 3's containers");
    let t = Instant::now();
    reloadnodes(&cluster, 0, "Node 3 is NEW");
    cluster.wait_agreed(&[0, 1, 2, 3], SETTLE, |_| true);
    eprintln!(
        "compose_scale: 4 nodes agree {} ms after reloadnodes",
        t.elapsed().as_millis()
    );
    check_records(&cluster, &[0, 1, 2, 3], &records);
    cluster
        .ctdb(3, &["pstore", PERSISTENT, "key-new", "from-3"])
        .expect("pstore on node 3");
    cluster
        .ctdb(3, &["writekey", VOLATILE, "key-new", "from-3"])
        .expect("writekey on node 3");
    records.push(("key-new".into(), "from-3".into()));
    // Read everywhere else, so that the volatile record is not on node 3 alone when it
    // goes (Samba's semantics for a node that leaves).
    check_records(&cluster, &[0, 1, 2], &records);
    assert_eq!(
        lifetimes(&cluster),
        before,
        "a container of nodes 0-2 restarted"
    );

    // ---- 4 -> 3 ----
    let mut args = vec!["--profile", "node3", "stop", "-t", "10"];
    args.extend(node3.iter().map(String::as_str));
    cluster
        .compose(&args, Duration::from_secs(120))
        .expect("stop node 3");
    cluster.wait_for("node 3 disconnected", SETTLE, || {
        for pnn in 0..3 {
            let s = cluster.status(pnn)?;
            if !s.flags(3).contains("DISCONNECTED") {
                return Err(format!("node {pnn} sees node 3 as {}", s.flags(3)));
            }
        }
        Ok(())
    });
    lines[3] = format!("#{}", lines[3]);
    write_nodes(&cluster, &lines);
    let t = Instant::now();
    reloadnodes(&cluster, 1, "Node 3 is DELETED");
    cluster.wait_for("node 3 deleted everywhere", SETTLE, || {
        for pnn in 0..3 {
            let s = cluster.ctdb(pnn, &["status"])?;
            if !s.contains("Number of nodes:4 (including 1 deleted nodes)") {
                return Err(format!("node {pnn}: {s}"));
            }
        }
        Ok(())
    });
    cluster.wait_agreed(&[0, 1, 2], SETTLE, |_| true);
    eprintln!(
        "compose_scale: 3 nodes agree, node 3 deleted, {} ms after reloadnodes",
        t.elapsed().as_millis()
    );
    check_records(&cluster, &[0, 1, 2], &records);
    assert_eq!(
        lifetimes(&cluster),
        before,
        "a container of nodes 0-2 restarted"
    );
}
