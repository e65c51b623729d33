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
