//! Issue 13: live membership. A 3-node cluster without a recovery lock (leaders hold
//! a majority lease: no shared file at all) grows to four nodes and shrinks back to
//! three with `ctdb reloadnodes`, as Samba's administrators do it: the new node's line
//! is added to every nodes file and the node started; later it is stopped and its line
//! becomes `#` (pnns never move). Records written before stay readable on every node,
//! and no process of the other nodes is restarted along the way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ctdb_protocol::flags::{dest, node as node_flags};
use ctdb_tests::{bin, TestCluster, TestNode};

const VOLATILE: &str = "membership_volatile.tdb";
const PERSISTENT: &str = "membership_persistent.tdb";
const PROCESSES: [&str; 4] = ["ctdb-transport", "ctdb-db", "ctdb-recoverd", "ctdb-eventd"];

/// Runs our `ctdb` tool on `node`; its stdout, or a panic with both outputs.
fn ctdb(node: &TestNode, args: &[&str]) -> String {
    let out = node.tool(&bin("ctdb"), args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctdb {args:?} on node {}: {}\nstdout: {stdout}\nstderr: {}",
        node.pnn,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The pid of each process of nodes `pnns`, by node and process.
fn pids(cluster: &TestCluster, pnns: &[u32]) -> BTreeMap<(u32, &'static str), i32> {
    let mut all = BTreeMap::new();
    for &pnn in pnns {
        let node = &cluster.nodes[pnn as usize];
        for p in PROCESSES {
            let pid = node
                .component_pid(p)
                .unwrap_or_else(|| panic!("node {pnn} has no {p}"));
            all.insert((pnn, p), pid);
        }
    }
    all
}

fn write_nodes_file(cluster: &TestCluster, lines: &[String]) {
    for node in &cluster.nodes {
        std::fs::write(node.dir().join("nodes"), lines.join("\n") + "\n").expect("nodes file");
    }
}

/// Every record written so far reads back on `node` with its value.
fn check_records(node: &TestNode, records: &[(String, String)], after: &str) {
    for (key, value) in records {
        let v = ctdb(node, &["readkey", VOLATILE, key]);
        assert!(
            v.contains(&format!("Data: size:{} ptr:[{value}]", value.len())),
            "volatile {key} on node {} after {after}: {v}",
            node.pnn
        );
        let p = ctdb(node, &["pfetch", PERSISTENT, key]);
        assert_eq!(
            p.trim_end(),
            value,
            "persistent {key} on node {} after {after}",
            node.pnn
        );
    }
}

/// Waits until node `pnn` has `flags` for node `of` in its node map.
async fn wait_flags(cluster: &TestCluster, pnn: u32, of: u32, flags: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = &cluster.nodes[pnn as usize];
    loop {
        if let Ok(c) = ctdb_client::Client::connect(&node.socket).await {
            if let Ok(map) = c.get_nodemap(dest::CURRENT_NODE).await {
                if map.nodes.iter().any(|n| n.pnn == of && n.flags == flags) {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {pnn} never saw node {of} with flags {flags:#x}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_to_four_nodes_and_back_to_three_live() {
    let mut cluster = TestCluster::start_without_lock(3);
    cluster.healthy(&[0, 1, 2]).await;
    let mut lines = cluster.nodes[0].addresses();
    assert_eq!(lines.len(), 3);

    ctdb(&cluster.nodes[0], &["attach", VOLATILE]);
    ctdb(&cluster.nodes[0], &["attach", PERSISTENT, "persistent"]);
    let mut records = Vec::new();
    for i in 0..6u32 {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        let node = &cluster.nodes[(i % 3) as usize];
        ctdb(node, &["writekey", VOLATILE, &key, &value]);
        ctdb(node, &["pstore", PERSISTENT, &key, &value]);
        records.push((key, value));
    }
    let before = pids(&cluster, &[0, 1, 2]);

    // Nothing to do while the file is unchanged.
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["reloadnodes"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No change in nodes file"),
        "{out:?}"
    );

    // ---- 3 -> 4: the new line on every node, the node started, a reload ----
    let subnet = lines[0].rsplit_once('.').expect("an IPv4 address").0;
    let new_addr = format!("{subnet}.4");
    lines.push(new_addr.clone());
    write_nodes_file(&cluster, &lines);
    let dir = cluster.root.path().join("node.3");
    let conf = format!("[cluster]\n\tnode address = {new_addr}\n");
    cluster
        .nodes
        .push(TestNode::start_in(&dir, 3, &lines, &conf));
    let started = Instant::now();
    let out = ctdb(&cluster.nodes[0], &["reloadnodes"]);
    assert!(out.contains("Node 3 is NEW"), "reloadnodes said: {out}");
    let clients = cluster.healthy(&[0, 1, 2, 3]).await;
    eprintln!(
        "membership: 4 nodes OK {} ms after reloadnodes",
        started.elapsed().as_millis()
    );
    let map = clients[0]
        .as_ref()
        .expect("node 0")
        .get_nodemap(dest::CURRENT_NODE)
        .await
        .expect("nodemap");
    assert_eq!(map.nodes.len(), 4);
    for node in &cluster.nodes {
        check_records(node, &records, "growing to four nodes");
    }
    // The new node takes writes, and the others read them.
    ctdb(
        &cluster.nodes[3],
        &["writekey", VOLATILE, "key-new", "from-3"],
    );
    ctdb(
        &cluster.nodes[3],
        &["pstore", PERSISTENT, "key-new", "from-3"],
    );
    records.push(("key-new".into(), "from-3".into()));
    check_records(&cluster.nodes[1], &records, "a write on the new node");
    assert_eq!(
        pids(&cluster, &[0, 1, 2]),
        before,
        "a process was restarted"
    );

    // ---- 4 -> 3: the node stopped, its line deleted, a reload ----
    // The volatile record node 3 wrote lives on node 3 only (Samba's semantics for a
    // node that goes away): read it elsewhere first, so that it migrates.
    check_records(&cluster.nodes[2], &records, "before node 3 leaves");
    cluster.nodes[3].stop();
    for pnn in 0..3 {
        wait_flags(&cluster, pnn, 3, node_flags::DISCONNECTED).await;
    }
    // The recovery node 3's going started is over (reloadnodes cannot disable
    // recoveries while one runs).
    cluster.healthy(&[0, 1, 2]).await;
    lines[3] = format!("#{new_addr}");
    write_nodes_file(&cluster, &lines);
    let started = Instant::now();
    // Samba's own tool this time (ours when it is not installed, outside CI).
    let out = match ctdb_tests::samba_ctdb() {
        Some(samba) => {
            // A recovery may still start in between (the leader's look at the
            // shrunken cluster): the tool then says so, and is run again.
            let mut tries = 0;
            let out = loop {
                let out = cluster.nodes[1].tool(&samba, &["reloadnodes"]);
                let busy =
                    String::from_utf8_lossy(&out.stderr).contains("Failed to disable recoveries");
                if out.status.success() || !busy || tries == 5 {
                    break out;
                }
                tries += 1;
                cluster.healthy(&[0, 1, 2]).await;
            };
            assert!(out.status.success(), "Samba's ctdb reloadnodes: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        None => ctdb(&cluster.nodes[1], &["reloadnodes"]),
    };
    assert!(out.contains("Node 3 is DELETED"), "reloadnodes said: {out}");
    cluster.healthy(&[0, 1, 2]).await;
    for pnn in 0..3 {
        wait_flags(
            &cluster,
            pnn,
            3,
            node_flags::DELETED | node_flags::DISCONNECTED,
        )
        .await;
    }
    eprintln!(
        "membership: back to 3 nodes {} ms after reloadnodes",
        started.elapsed().as_millis()
    );
    let status = ctdb(&cluster.nodes[0], &["status"]);
    assert!(
        status.contains("Number of nodes:4 (including 1 deleted nodes)"),
        "{status}"
    );
    for node in &cluster.nodes[..3] {
        check_records(node, &records, "shrinking to three nodes");
    }
    assert_eq!(
        pids(&cluster, &[0, 1, 2]),
        before,
        "a process was restarted"
    );

    // A nodes file that deletes the node reading it is refused, and changes nothing.
    let mut bad = lines.clone();
    bad[0] = format!("#{}", lines[0]);
    std::fs::write(cluster.nodes[0].dir().join("nodes"), bad.join("\n") + "\n").expect("nodes");
    let c0 = clients[0].as_ref().expect("node 0");
    let reply = c0
        .control_raw(
            dest::CURRENT_NODE,
            ctdb_protocol::Opcode::ReloadNodesFile,
            0,
            bytes::Bytes::new(),
            Duration::from_secs(5),
        )
        .await
        .expect("RELOAD_NODES_FILE answered");
    assert_ne!(reply.status, 0, "a file deleting this node must be refused");
    assert!(
        String::from_utf8_lossy(&reply.errmsg).contains("deletes this node"),
        "{reply:?}"
    );
    cluster.healthy(&[0, 1, 2]).await;
}
