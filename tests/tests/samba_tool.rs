//! Samba's own `ctdb` tool, pointed at our node with CTDB_SOCKET, gets correct answers.

use ctdb_tests::{samba_ctdb, TestNode};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: stdout {} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samba_ctdb_tool_works_against_our_node() {
    let Some(ctdb) = samba_ctdb() else { return };
    let node = TestNode::start("");
    let client = node.ready().await;
    let run = |args: &[&str]| stdout(&node.tool(&ctdb, args));

    let ping = run(&["ping"]);
    assert!(ping.starts_with("response from 0 time="), "{ping}");
    assert!(ping.contains("clients)"), "{ping}");
    assert_eq!(run(&["pnn"]), "0\n");
    let addr = node.addresses()[0].clone();
    assert_eq!(run(&["listnodes"]), format!("{addr}\n"));

    let status = run(&["status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], "Number of nodes:1", "{status}");
    assert!(lines[1].starts_with(&format!("pnn:0 {addr} ")), "{status}");
    assert!(lines[1].ends_with("(THIS NODE)"), "{status}");
    assert!(lines[2].starts_with("Generation:"), "{status}");
    assert_ne!(lines[2], "Generation:INVALID", "{status}");
    assert_eq!(lines[3], "Size:1");
    assert_eq!(lines[4], "hash:0 lmaster:0");
    assert_eq!(lines[5], "Recovery mode:NORMAL (0)");
    assert_eq!(lines[6], "Leader:0");

    let uptime = run(&["uptime"]);
    assert!(
        uptime.starts_with("Current time of node 0        :"),
        "{uptime}"
    );
    assert!(
        uptime.contains("Ctdbd start time              : (000 00:0"),
        "{uptime}"
    );
    assert!(
        uptime.contains("Duration of last recovery/failover:"),
        "{uptime}"
    );

    assert_eq!(run(&["getdbmap"]), "Number of databases:0\n");
    run(&["attach", "tool_vol.tdb"]);
    run(&["attach", "tool_pers.tdb", "persistent"]);
    let dbmap = run(&["getdbmap"]);
    let base = node.dir().display().to_string();
    // Samba's ids for these names, as a Samba cluster would give them.
    let vol_id = client
        .attach(0xF000_0001, "tool_vol.tdb", false)
        .await
        .expect("attach");
    let pers_id = client
        .attach(0xF000_0001, "tool_pers.tdb", true)
        .await
        .expect("attach");
    assert_eq!(
        dbmap,
        format!(
            "Number of databases:2\n\
             dbid:0x{pers_id:08x} name:tool_pers.tdb path:{base}/db/persistent/tool_pers.tdb.0 PERSISTENT\n\
             dbid:0x{vol_id:08x} name:tool_vol.tdb path:{base}/db/volatile/tool_vol.tdb.0\n"
        )
    );

    let vars = run(&["listvars"]);
    assert_eq!(vars.lines().count(), 49, "{vars}");
    assert!(vars.contains("RecoverInterval            = 1\n"), "{vars}");
    assert_eq!(
        run(&["getvar", "KeepaliveLimit"]),
        "KeepaliveLimit             = 5\n"
    );
    run(&["setvar", "KeepaliveLimit", "7"]);
    assert_eq!(
        run(&["getvar", "KeepaliveLimit"]),
        "KeepaliveLimit             = 7\n"
    );

    let transport_pid = node.component_pid("ctdb-transport").expect("transport pid");
    assert_eq!(run(&["getpid"]), format!("{transport_pid}\n"));
    assert_eq!(run(&["getcapabilities"]), "LEADER: YES\nLMASTER: YES\n");
    assert_eq!(run(&["runstate"]), "RUNNING\n");
    assert_eq!(run(&["getdebug"]), "NOTICE\n");
}

/// Samba's `catdb` and `getdbstatus` print what ours prints, record for record, for
/// records written through our daemon (volatile and persistent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samba_catdb_and_getdbstatus_agree_with_ours() {
    let Some(samba) = samba_ctdb() else { return };
    let ours = ctdb_tests::bin("ctdb");
    let node = TestNode::start("");
    let client = node.ready().await;
    let here = ctdb_protocol::flags::dest::CURRENT_NODE;
    let vol = client
        .attach(here, "cat_vol.tdb", false)
        .await
        .expect("attach");
    let pers = client
        .attach(here, "cat_pers.tdb", true)
        .await
        .expect("attach");
    for (k, v) in [("key1", "value1"), ("key2", "value-two"), ("key3", "v3")] {
        client
            .store(vol, k.as_bytes(), v.as_bytes())
            .await
            .expect("store");
    }
    client.delete(vol, b"key3").await.expect("delete");
    client
        .fetch(vol, b"never-written")
        .await
        .expect("empty fetch");
    for (k, v) in [("pkey1", "pvalue1"), ("pkey2", "pvalue\x01two")] {
        client
            .persistent_store(pers, k.as_bytes(), v.as_bytes())
            .await
            .expect("pstore");
    }

    for (db, live) in [("cat_vol.tdb", 2), ("cat_pers.tdb", 3)] {
        let theirs = stdout(&node.tool(&samba, &["catdb", db]));
        assert!(
            theirs.ends_with(&format!("Dumped {live} records\n")),
            "{db}: {theirs}"
        );
        assert_eq!(
            stdout(&node.tool(&ours, &["catdb", db])),
            theirs,
            "catdb {db}"
        );
        let status = stdout(&node.tool(&samba, &["getdbstatus", db]));
        assert!(status.contains(&format!("name: {db}\n")), "{status}");
        assert_eq!(
            stdout(&node.tool(&ours, &["getdbstatus", db])),
            status,
            "getdbstatus {db}"
        );
    }
    let theirs = stdout(&node.tool(&samba, &["catdb", "cat_pers.tdb"]));
    assert!(theirs.contains("key(5) = \"pkey2\"\n"), "{theirs}");
    assert!(
        theirs.contains("data(10) = \"pvalue\\01two\"\n"),
        "{theirs}"
    );
}

/// The records of a `catdb` output, each block as one string, sorted (two traverses of a
/// cluster may return the nodes' records in different orders), and the count line.
fn catdb_blocks(out: &str) -> (Vec<String>, String) {
    let mut blocks: Vec<String> = out
        .split("\n\n")
        .map(str::trim)
        .filter(|b| b.starts_with("key("))
        .map(str::to_string)
        .collect();
    blocks.sort();
    let last = out.lines().last().unwrap_or_default().to_string();
    (blocks, last)
}

/// On a 3-node cluster, records held by different nodes: Samba's `catdb` through any
/// node shows every record once, as ours does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samba_catdb_across_our_cluster_agrees_with_ours() {
    let Some(samba) = samba_ctdb() else { return };
    let ours = ctdb_tests::bin("ctdb");
    let cluster = ctdb_tests::TestCluster::start(3);
    let clients: Vec<_> = cluster
        .healthy(&[0, 1, 2])
        .await
        .into_iter()
        .flatten()
        .collect();
    let here = ctdb_protocol::flags::dest::CURRENT_NODE;
    let mut db = 0;
    for c in &clients {
        db = c.attach(here, "spread.tdb", false).await.expect("attach");
    }
    // Each node writes its own keys, so each is dmaster of some.
    for c in &clients {
        for i in 0..5 {
            let key = format!("node{}-key{i}", c.pnn());
            c.store(db, key.as_bytes(), b"v").await.expect("store");
        }
    }
    for node in &cluster.nodes {
        let theirs = stdout(&node.tool(&samba, &["catdb", "spread.tdb"]));
        let (blocks, last) = catdb_blocks(&theirs);
        assert_eq!(last, "Dumped 15 records", "node {}: {theirs}", node.pnn);
        assert_eq!(blocks.len(), 15);
        let mine = stdout(&node.tool(&ours, &["catdb", "spread.tdb"]));
        assert_eq!(catdb_blocks(&mine), (blocks, last), "node {}", node.pnn);
    }
}
