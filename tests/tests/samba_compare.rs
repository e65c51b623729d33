//! Samba's `ctdb` tool prints the same node list, flags and recovery mode against our
//! 3-node cluster as against a Samba cluster of the same size.

use std::path::Path;
use std::process::{Command, Stdio};

use ctdb_tests::samba::SambaCluster;
use ctdb_tests::{samba_ctdb, TestCluster};

/// Replaces the parts that differ between any two clusters: addresses (and the
/// padding that follows them), generation, leader.
fn normalise(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l
                .replace(prefix, "ADDR")
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if l.starts_with("Generation:") && l != "Generation:INVALID" {
                "Generation:G".to_string()
            } else if l.starts_with("Leader:") {
                "Leader:L".to_string()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samba_tool_sees_the_same_cluster_as_on_samba() {
    let Some(ctdb) = samba_ctdb() else { return };
    let samba = SambaCluster::start(3, "127.0.7");
    let ours = TestCluster::start(3);
    ours.healthy(&[0, 1, 2]).await;
    let our_prefix = {
        let addrs = ours.nodes[0].addresses();
        addrs[0]
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .expect("address")
    };
    for args in [
        &["status"][..],
        &["nodestatus"],
        &["nodestatus", "all"],
        &["listnodes"],
        &["-X", "status"],
    ] {
        let theirs = normalise(&samba.tool(&ctdb, args), "127.0.7");
        let out = ours.nodes[0].tool(&ctdb, args);
        let mine = normalise(&String::from_utf8_lossy(&out.stdout), &our_prefix);
        assert_eq!(mine, theirs, "ctdb {args:?}");
    }
    // The leader is a node of the cluster on both.
    let leader = String::from_utf8_lossy(&ours.nodes[0].tool(&ctdb, &["leader"]).stdout)
        .trim()
        .to_string();
    assert!(
        ["0", "1", "2"].contains(&leader.as_str()),
        "leader {leader}"
    );
}

/// Runs Samba's tool with `env`, feeding `stdin`; returns what it printed and its
/// exit code, as one text.
fn run_tool(ctdb: &Path, env: &[(&str, String)], args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(ctdb)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ctdb");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("ctdb output");
    format!(
        "$ ctdb {}\n{}{}rc={}\n",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    )
}

/// The TDB file of database `name` on `node`, as GETDBPATH reports it.
async fn ours_path(node: &ctdb_tests::TestNode, name: &str) -> std::path::PathBuf {
    let here = ctdb_protocol::flags::dest::CURRENT_NODE;
    let client = node.ready().await;
    let maps = client.get_dbmap(here).await.expect("dbmap");
    for db in maps.dbs {
        if client.get_dbname(here, db.db_id).await.expect("name") == name {
            return client
                .get_dbpath(here, db.db_id)
                .await
                .expect("path")
                .into();
        }
    }
    panic!("{name} is not attached");
}

/// Record commands through node 0 and node 1 (pnn, arguments, standard input).
const RECORD_STEPS: &[(usize, &[&str], &str)] = &[
    (0, &["attach", "rtest.tdb"], ""),
    (0, &["writekey", "rtest.tdb", "k1", "v1"], ""),
    (0, &["readkey", "rtest.tdb", "k1"], ""),
    (1, &["readkey", "rtest.tdb", "k1"], ""),
    (1, &["writekey", "rtest.tdb", "k1", "v2"], ""),
    (0, &["readkey", "rtest.tdb", "k1"], ""),
    (0, &["readkey", "rtest.tdb", "missing"], ""),
    (0, &["deletekey", "rtest.tdb", "k1"], ""),
    (0, &["readkey", "rtest.tdb", "k1"], ""),
    (0, &["writekey", "rtest.tdb", "k2", "v2"], ""),
    (0, &["cattdb", "rtest.tdb"], ""),
    (1, &["cattdb", "rtest.tdb"], ""),
    (0, &["attach", "rptest.tdb", "persistent"], ""),
    (0, &["pstore", "rptest.tdb", "pk", "pv"], ""),
    (0, &["pfetch", "rptest.tdb", "pk"], ""),
    (1, &["pfetch", "rptest.tdb", "pk"], ""),
    (0, &["ptrans", "rptest.tdb"], "\"a\" \"1\"\n\"b\" \"2\"\n"),
    (1, &["pfetch", "rptest.tdb", "a"], ""),
    (0, &["pdelete", "rptest.tdb", "pk"], ""),
    (0, &["pfetch", "rptest.tdb", "pk"], ""),
    (0, &["cattdb", "rptest.tdb"], ""),
    (1, &["cattdb", "rptest.tdb"], ""),
    (0, &["getdbseqnum", "rptest.tdb"], ""),
];

/// Every number and time of a statistics print-out, and its spacing, made alike.
fn normalise_counters(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut l = String::with_capacity(line.len());
            for c in line.chars() {
                if !c.is_ascii_digit() {
                    l.push(c);
                } else if !l.ends_with('N') {
                    l.push('N');
                }
            }
            let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
            if l.starts_with("Current time of statistics") {
                "Current time of statistics : T".to_string()
            } else if l.starts_with("Statistics collected since") {
                "Statistics collected since : T".to_string()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first entry of `ctdb stats` (how many there are depends on the uptime).
fn first_stats_entry(text: &str) -> String {
    let mut entries = text.split("CTDB version");
    let _ = entries.next();
    let entry = format!("CTDB version{}", entries.next().unwrap_or_default());
    // The last entry ends with the exit code run_tool adds.
    entry
        .lines()
        .filter(|l| !l.starts_with("rc="))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samba_tool_record_commands_and_statistics_print_as_on_samba() {
    let Some(ctdb) = samba_ctdb() else { return };
    let prefix = ctdb_tests::loopback_subnet();
    let samba = SambaCluster::start(2, &prefix);
    let ours = TestCluster::start(2);
    ours.healthy(&[0, 1]).await;
    let samba_env = |pnn: usize| {
        vec![
            ("CTDB_TEST_MODE", "yes".to_string()),
            (
                "CTDB_BASE",
                samba
                    .dir
                    .path()
                    .join(format!("node.{pnn}"))
                    .display()
                    .to_string(),
            ),
            ("CTDB_SOCKET", samba.socket(pnn).display().to_string()),
        ]
    };
    let our_env = |pnn: usize| {
        let node = &ours.nodes[pnn];
        vec![
            ("CTDB_BASE", node.dir().display().to_string()),
            ("CTDB_SOCKET", node.socket.display().to_string()),
        ]
    };
    for (pnn, args, stdin) in RECORD_STEPS {
        let theirs = run_tool(&ctdb, &samba_env(*pnn), args, stdin);
        let mine = run_tool(&ctdb, &our_env(*pnn), args, stdin);
        // Byte for byte, record headers (RSN, dmaster, flags) included.
        assert_eq!(mine, theirs, "node {pnn}: ctdb {args:?}");
    }
    // tstore and tfetch work on the TDB file at GETDBPATH itself, no daemon involved.
    // (Against Samba's own daemon they fail: "Failed to open TDB file", as its volatile
    // files use robust mutexes the tool does not open them with; ours use fcntl locks.)
    let file = ours_path(&ours.nodes[0], "rtest.tdb").await;
    let file = file.display().to_string();
    let stored = run_tool(
        &ctdb,
        &our_env(0),
        &["tstore", &file, "tk", "0x7465737431"],
        "",
    );
    assert!(stored.ends_with("rc=0\n"), "{stored}");
    let fetched = run_tool(&ctdb, &our_env(0), &["tfetch", &file, "tk"], "");
    assert!(
        fetched.ends_with("rc=0\n") && fetched.contains("test1"),
        "{fetched}"
    );
    let fetched = run_tool(&ctdb, &our_env(0), &["tfetch", &file, "k2"], "");
    assert!(
        fetched.contains("v2"),
        "a record the daemon wrote: {fetched}"
    );
    // Samba's tool reads 4.17's statistics layout only.
    let theirs = run_tool(&ctdb, &samba_env(0), &["statistics"], "");
    let mine = run_tool(&ctdb, &our_env(0), &["statistics"], "");
    assert_eq!(normalise_counters(&mine), normalise_counters(&theirs));
    // The history fills every StatHistoryInterval (1 s): wait for an entry on both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let theirs = run_tool(&ctdb, &samba_env(0), &["stats"], "");
        let mine = run_tool(&ctdb, &our_env(0), &["stats"], "");
        if mine.contains("CTDB version") && theirs.contains("CTDB version") {
            assert_eq!(
                normalise_counters(&first_stats_entry(&mine)),
                normalise_counters(&first_stats_entry(&theirs)),
                "ctdb stats"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stats history:\nours: {mine}\nSamba: {theirs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Our tool reads the same history and prints it as Samba's tool does (`stats 1`
    // prints up to two entries there). The history gains an entry every second: a pair
    // read across that moment is read again.
    let mut tries = 0;
    loop {
        let samba_on_ours = run_tool(&ctdb, &our_env(0), &["stats", "1"], "");
        let ours_on_ours = run_tool(&ctdb_tests::bin("ctdb"), &our_env(0), &["stats", "1"], "");
        let (a, b) = (
            normalise_counters(&ours_on_ours),
            normalise_counters(&samba_on_ours),
        );
        tries += 1;
        if a == b || tries == 5 {
            assert_eq!(a, b, "our ctdb stats");
            break;
        }
    }
    // And through another node: forwarded, still in Samba's layout.
    let mine = run_tool(&ctdb, &our_env(0), &["statistics", "-n", "1"], "");
    assert!(mine.contains("num_clients"), "{mine}");
}
