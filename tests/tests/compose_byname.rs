//! Issue 13 on docker-compose: nodes by name. The cluster's nodes file
//! (`deploy/compose/byname/nodes`) lists the compose services' names, `node0`-`node2`,
//! which docker's DNS resolves to the nodes' addresses. Node 2's five containers are
//! removed and created again with another address (`CTDB_RS_NODE2_HOST`), as a
//! StatefulSet's pod comes back with a new IP; the cluster must be all OK again with
//! node 2 at its new address in every node's map, and the records written before must
//! be there: a persistent one read on the recreated node, volatile ones written on the
//! surviving nodes read everywhere.
//!
//! Prints the time from `docker-compose up` of the recreated node to all nodes OK.
//! Skipped (and passing) where docker is not usable, except in CI, where it must be.

use std::time::{Duration, Instant};

use ctdb_tests::compose::{self, ComposeCluster, Layout};

const ALL: [u32; 3] = [0, 1, 2];
const VOLATILE: &str = "byname.tdb";
const PERSISTENT: &str = "byname_p.tdb";
/// How long the cluster may take to agree after a change.
const SETTLE: Duration = Duration::from_secs(90);
/// The node that moves, and the last octet of its new address.
const MOVED: u32 = 2;
const NEW_HOST: u32 = 23;

fn layout() -> Layout {
    Layout {
        config: "deploy/compose/byname",
        ..Layout::default()
    }
}

/// The address `ctdb status` on node `on` shows for node `pnn` (`pnn:2 172.30.9.13 OK`).
fn address_seen(cluster: &ComposeCluster, on: u32, pnn: u32) -> Result<String, String> {
    let out = cluster.ctdb(on, &["status"])?;
    out.lines()
        .find_map(|l| {
            let mut words = l.strip_prefix("pnn:")?.split_whitespace();
            (words.next()? == pnn.to_string()).then(|| words.next().map(str::to_string))?
        })
        .ok_or_else(|| format!("no line of node {pnn} in `ctdb status` of node {on}:\n{out}"))
}

/// Peers notice a silent node in 3 s; tunables live in transport, so a recreated node
/// has the defaults.
fn fast_keepalives(cluster: &ComposeCluster, nodes: &[u32]) {
    for &pnn in nodes {
        for (var, value) in [("KeepaliveInterval", "1"), ("KeepaliveLimit", "3")] {
            cluster
                .ctdb(pnn, &["setvar", var, value])
                .unwrap_or_else(|e| panic!("setvar {var} on node {pnn}: {e}"));
        }
    }
}

#[test]
fn a_node_recreated_with_a_new_address_rejoins_by_name() {
    if !compose::can_run() {
        return;
    }
    let t0 = Instant::now();
    let image = compose::image().expect("build the image with deploy/build-image.sh");
    let mut cluster = ComposeCluster::up_with(&image, layout()).expect("docker-compose up");
    assert!(
        cluster.nodes_by_name(),
        "deploy/compose/byname/nodes lists names"
    );
    eprintln!(
        "compose_byname: project {} on {}.0/24",
        cluster.project, cluster.subnet
    );
    cluster.wait_agreed(&ALL, SETTLE, |_| true);
    eprintln!(
        "compose_byname: three nodes OK ({:.1}s)",
        t0.elapsed().as_secs_f64()
    );
    fast_keepalives(&cluster, &ALL);

    // Every node shows node 2 at the address its name resolved to.
    let old = cluster.container_address(MOVED).expect("node 2's address");
    assert_eq!(old, cluster.address(MOVED));
    for pnn in ALL {
        assert_eq!(
            address_seen(&cluster, pnn, MOVED).expect("status"),
            old,
            "node {pnn}'s map"
        );
    }

    // Records: volatile ones written on the nodes that stay (a volatile record lives
    // on its dmaster, so one written on node 2 alone would go with it, by design),
    // persistent ones on every node.
    cluster.ctdb(0, &["attach", VOLATILE]).expect("attach");
    cluster
        .ctdb(0, &["attach", PERSISTENT, "persistent"])
        .expect("attach persistent");
    let mut volatile = Vec::new();
    let mut persistent = Vec::new();
    for i in 0..6u32 {
        let (k, v) = (format!("key-{i}"), format!("value-{i}"));
        let on = i % 2;
        cluster
            .ctdb(on, &["writekey", VOLATILE, &k, &v])
            .unwrap_or_else(|e| panic!("writekey on node {on}: {e}"));
        volatile.push((k, v));
        let (k, v) = (format!("pkey-{i}"), format!("pvalue-{i}"));
        let on = i % 3;
        cluster
            .ctdb(on, &["pstore", PERSISTENT, &k, &v])
            .unwrap_or_else(|e| panic!("pstore on node {on}: {e}"));
        persistent.push((k, v));
    }

    // Node 2 goes: all five containers stopped and removed (its volumes stay).
    let t = Instant::now();
    cluster
        .remove_node(MOVED)
        .expect("docker-compose rm node 2");
    cluster.wait_agreed(&[0, 1], SETTLE, |_| true);
    eprintln!(
        "compose_byname: node {MOVED} removed, nodes 0 and 1 agree without it ({:.1}s)",
        t.elapsed().as_secs_f64()
    );

    // ... and comes back with a new address under the same name.
    let up = Instant::now();
    cluster
        .start_node(MOVED, NEW_HOST)
        .expect("docker-compose up node 2");
    let created = up.elapsed();
    let new = cluster.container_address(MOVED).expect("node 2's address");
    assert_ne!(new, old, "node 2 must come back with another address");
    assert_eq!(new, cluster.address(MOVED));
    cluster.wait_agreed(&ALL, SETTLE, |_| true);
    let rejoined = up.elapsed();
    // The map of every node shows the new address.
    for pnn in ALL {
        cluster.wait_for(
            &format!("node {pnn} shows node {MOVED} at {new}"),
            Duration::from_secs(30),
            || match address_seen(&cluster, pnn, MOVED)? {
                a if a == new => Ok(()),
                a => Err(format!("at {a}")),
            },
        );
    }
    eprintln!(
        "compose_byname: node {MOVED} recreated at {new} (was {old}): all OK {:.1}s after `up` \
         (`up` itself took {:.1}s)",
        rejoined.as_secs_f64(),
        created.as_secs_f64()
    );

    // The records written before are there, on every node (node 2 attaches the
    // databases again: it was recreated).
    for pnn in ALL {
        for (k, v) in &persistent {
            let out = cluster.wait_for(
                &format!("pfetch {k} on node {pnn}"),
                Duration::from_secs(20),
                || cluster.ctdb(pnn, &["pfetch", PERSISTENT, k]),
            );
            assert_eq!(out.trim_end(), v, "pfetch {k} on node {pnn}");
        }
        for (k, v) in &volatile {
            let out = cluster.wait_for(
                &format!("readkey {k} on node {pnn}"),
                Duration::from_secs(20),
                || cluster.ctdb(pnn, &["readkey", VOLATILE, k]),
            );
            assert!(
                out.contains(&format!("ptr:[{v}]")),
                "readkey {k} on node {pnn}: {out}"
            );
        }
    }
    // And the recreated node writes: a commit there is read on the others.
    cluster
        .ctdb(MOVED, &["pstore", PERSISTENT, "after", "moved"])
        .expect("pstore on the recreated node");
    for pnn in ALL {
        let out = cluster
            .ctdb(pnn, &["pfetch", PERSISTENT, "after"])
            .expect("pfetch");
        assert_eq!(out.trim_end(), "moved", "pfetch after on node {pnn}");
    }
    eprintln!(
        "compose_byname: records kept; {} persistent, {} volatile checked on 3 nodes ({:.0}s)",
        persistent.len(),
        volatile.len(),
        t0.elapsed().as_secs_f64()
    );
}
