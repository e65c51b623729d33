//! The commands our `ctdb` tool gained late (process-exists, detach, dumpmemory,
//! rddumpmemory, setdbreadonly, setdbsticky, dbstatistics, tfetch, tstore,
//! setlmasterrole, setleaderrole, checktcpport, lvs, natgw): run with our tool and with Samba
//! 4.17's against the same node of ours, they print the same bytes on stdout and
//! stderr and exit with the same status; where the output cannot repeat (memory
//! reports), both have its shape.

use std::path::Path;
use std::process::Output;

use ctdb_tests::{samba_ctdb, TestNode};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `args` with both tools; asserts the same stdout, stderr and exit status.
fn same(node: &TestNode, samba: &Path, args: &[&str]) -> Output {
    let ours = node.tool(&ctdb_tests::bin("ctdb"), args);
    let theirs = node.tool(samba, args);
    assert_eq!(
        (text(&ours.stdout), text(&ours.stderr), ours.status.code()),
        (
            text(&theirs.stdout),
            text(&theirs.stderr),
            theirs.status.code()
        ),
        "ctdb {args:?}: ours (left) and Samba's (right)"
    );
    ours
}

/// As [`same`], and the command succeeded.
fn same_ok(node: &TestNode, samba: &Path, args: &[&str]) -> String {
    let out = same(node, samba, args);
    assert!(
        out.status.success(),
        "ctdb {args:?}: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `args` with one tool; asserts success.
fn run_ok(node: &TestNode, tool: &Path, args: &[&str]) -> String {
    let out = node.tool(tool, args);
    assert!(
        out.status.success(),
        "{} {args:?}: {:?} {} {}",
        tool.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commands_match_samba_tool() {
    let Some(samba) = samba_ctdb() else { return };
    let ours = ctdb_tests::bin("ctdb");
    let node = TestNode::start("");
    let client = node.ready().await;

    // Wrong arguments: the command's usage (checktcpport: the whole list), exit 1.
    for args in [
        &["process-exists"][..],
        &["process-exists", "1", "2", "3"],
        &["detach"],
        &["setdbreadonly"],
        &["setdbsticky", "a", "b"],
        &["dbstatistics"],
        &["setlmasterrole"],
        &["setlmasterrole", "maybe"],
        &["setleaderrole", "ON"],
        &["tfetch", "x"],
        &["tstore", "a", "b"],
        &["tstore", "a", "b", "c", "1", "2", "3"],
        &["checktcpport"],
        &["checktcpport", "1", "2"],
        &["lvs"],
        &["natgw", "leader", "list"],
    ] {
        let out = same(&node, &samba, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stdout).starts_with("Usage:"), "{args:?}");
    }

    // process-exists: this process, then one that cannot exist; with a srvid this
    // test's client registered, and one nobody did.
    let me = std::process::id().to_string();
    assert_eq!(
        same_ok(&node, &samba, &["process-exists", &me]),
        format!("PID {me} exists\n")
    );
    let out = same(&node, &samba, &["process-exists", "2147483647"]);
    assert_eq!(text(&out.stdout), "PID 2147483647 does not exist\n");
    assert_eq!(out.status.code(), Some(1));
    let _rx = client
        .register_srvid(0xF100_0000_0000_4242)
        .await
        .expect("register srvid");
    assert_eq!(
        same_ok(
            &node,
            &samba,
            &["process-exists", &me, "0xF100000000004242"]
        ),
        format!("PID {me} with SRVID 0xf100000000004242 exists\n")
    );
    let out = same(
        &node,
        &samba,
        &["process-exists", &me, "0xF100000000004243"],
    );
    assert!(text(&out.stdout).ends_with("does not exist\n"));
    assert_ne!(out.status.code(), Some(0));
    // A srvid that is no number: the parser's error as exit status, nothing printed.
    for srvid in ["junk", "x1"] {
        let out = same(&node, &samba, &["process-exists", &me, srvid]);
        assert_eq!(out.status.code(), Some(22), "{srvid}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }

    // Databases to work on.
    run_ok(&node, &ours, &["attach", "more_vol.tdb"]);
    run_ok(&node, &ours, &["attach", "more_vol2.tdb"]);
    run_ok(&node, &ours, &["attach", "more_pers.tdb", "persistent"]);

    // setdbreadonly / setdbsticky: refused on persistent and unknown databases.
    for args in [
        &["setdbreadonly", "more_pers.tdb"][..],
        &["setdbsticky", "more_pers.tdb"],
        &["setdbreadonly", "nosuch.tdb"],
        &["setdbsticky", "0x12345678"],
    ] {
        let out = same(&node, &samba, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    run_ok(&node, &ours, &["setdbreadonly", "more_vol.tdb"]);
    run_ok(&node, &samba, &["setdbsticky", "more_vol.tdb"]);
    let status = same_ok(&node, &samba, &["getdbstatus", "more_vol.tdb"]);
    assert!(status.contains("STICKY: yes\nREADONLY: yes\n"), "{status}");
    run_ok(&node, &samba, &["setdbreadonly", "more_vol2.tdb"]);
    run_ok(&node, &ours, &["setdbsticky", "more_vol2.tdb"]);
    let status = same_ok(&node, &samba, &["getdbstatus", "more_vol2.tdb"]);
    assert!(status.contains("STICKY: yes\nREADONLY: yes\n"), "{status}");
    // Again: nothing changes, still fine.
    same_ok(&node, &samba, &["setdbreadonly", "more_vol2.tdb"]);
    same_ok(&node, &samba, &["setdbsticky", "more_vol2.tdb"]);

    // dbstatistics, by name and by id; unknown databases.
    run_ok(&node, &ours, &["writekey", "more_vol.tdb", "k1", "v1"]);
    let stats = same_ok(&node, &samba, &["dbstatistics", "more_vol.tdb"]);
    assert!(stats.starts_with("DB Statistics more_vol.tdb\n"), "{stats}");
    assert!(stats.contains(" Num Hot Keys:"), "{stats}");
    let vol2_id = client
        .attach(0xF000_0001, "more_vol2.tdb", false)
        .await
        .expect("attach");
    same_ok(
        &node,
        &samba,
        &["dbstatistics", &format!("0x{vol2_id:08x}")],
    );
    same_ok(&node, &samba, &["dbstatistics", "more_pers.tdb"]);
    let out = same(&node, &samba, &["dbstatistics", "nosuch.tdb"]);
    assert_eq!(out.status.code(), Some(1));

    // Roles: each setting is taken by the daemon the same way from either tool, and
    // GET_CAPABILITIES shows it.
    for (args, caps) in [
        (&["setlmasterrole", "off"][..], "LEADER: YES\nLMASTER: NO\n"),
        (&["setlmasterrole", "on"], "LEADER: YES\nLMASTER: YES\n"),
        (&["setleaderrole", "off"], "LEADER: NO\nLMASTER: YES\n"),
        (&["setleaderrole", "on"], "LEADER: YES\nLMASTER: YES\n"),
    ] {
        assert_eq!(same_ok(&node, &samba, args), "", "{args:?}");
        assert_eq!(
            same_ok(&node, &samba, &["getcapabilities"]),
            caps,
            "after {args:?}"
        );
    }

    // dumpmemory: the daemon's memory report as text; rddumpmemory: the recovery
    // daemon's report. Their contents change from run to run.
    for tool in [&ours, &samba] {
        let out = node.tool(tool, &["dumpmemory"]);
        assert!(out.status.success(), "{}: {out:?}", tool.display());
        assert!(out.stdout.len() > 1, "{}", tool.display());
        assert_eq!(out.stdout.last(), Some(&b'\n'), "{}", tool.display());
        assert!(!out.stdout.contains(&0), "{}", tool.display());
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        let out = node.tool(tool, &["rddumpmemory"]);
        assert!(out.status.success(), "{}: {out:?}", tool.display());
        assert!(!out.stdout.is_empty(), "{}", tool.display());
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }

    // tstore / tfetch on the node's own file of a volatile database.
    let path = same_ok(&node, &samba, &["getdbstatus", "more_vol2.tdb"])
        .lines()
        .find_map(|l| l.strip_prefix("path: ").map(str::to_string))
        .expect("path");
    run_ok(
        &node,
        &ours,
        &["tstore", &path, "key1", "value\"1\\", "7", "3"],
    );
    let fetched = same_ok(&node, &samba, &["tfetch", &path, "key1"]);
    assert_eq!(
        fetched,
        "dmaster: 3\nrsn: 7\nflags: 0x00000000\ndata(8) = \"value\\221\\5C\"\n"
    );
    run_ok(
        &node,
        &samba,
        &["tstore", &path, "0x6b32", "0x00ff", "0x10"],
    );
    same_ok(&node, &samba, &["tfetch", &path, "k2"]);
    run_ok(&node, &samba, &["tstore", &path, "k3", "v"]);
    same_ok(&node, &samba, &["tfetch", &path, "0x6b33"]);
    // Into a file: the whole record, header first.
    let dir = tempfile::tempdir().expect("tempdir");
    let mine = dir.path().join("ours.rec");
    let theirs = dir.path().join("theirs.rec");
    let mine_s = mine.display().to_string();
    let theirs_s = theirs.display().to_string();
    let a = node.tool(&ours, &["tfetch", &path, "key1", &mine_s]);
    let b = node.tool(&samba, &["tfetch", &path, "key1", &theirs_s]);
    assert_eq!((a.stdout, a.status.code()), (b.stdout, b.status.code()));
    let record = std::fs::read(&mine).expect("record file");
    assert_eq!(record, std::fs::read(&theirs).expect("record file"));
    assert_eq!(record.len(), 24 + 8);
    // A record shorter than a header; a missing key; odd hex; files that are not TDB
    // files (the text file must stay as it was).
    run_ok(&node, &samba, &["tstore", &path, "k4", "v"]);
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "not a tdb\n").expect("write");
    let plain_s = plain.display().to_string();
    let missing = dir.path().join("missing.tdb").display().to_string();
    for args in [
        &["tfetch", &path, "nosuchkey"][..],
        &["tfetch", &path, "0x123"],
        &["tstore", &path, "0x1", "v"],
        &["tstore", &path, "k", "0xabc"],
        &["tstore", &path, "k", "v", "junk"],
        &["tfetch", &missing, "k"],
        &["tstore", &missing, "k", "v"],
        &["tfetch", &plain_s, "k"],
        &["tstore", &plain_s, "k", "v"],
    ] {
        let out = same(&node, &samba, args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
    }
    assert!(!Path::new(&missing).exists());
    assert_eq!(
        std::fs::read_to_string(&plain).expect("read"),
        "not a tdb\n"
    );

    // detach: refused while clients may attach, for persistent databases; an unknown
    // name is only reported.
    let out = same(&node, &samba, &["detach", "more_vol.tdb"]);
    assert_eq!(
        text(&out.stderr),
        "Database access is still active on node 0. Set AllowclientDBAttach=0 on all nodes.\n"
    );
    run_ok(&node, &ours, &["setvar", "AllowClientDBAttach", "0"]);
    let out = same(&node, &samba, &["detach", "more_pers.tdb"]);
    assert_eq!(
        text(&out.stderr),
        "Only volatile databases can be detached\n"
    );
    let out = same(&node, &samba, &["detach", "nosuch.tdb"]);
    assert_eq!(out.status.code(), Some(0));
    // Each tool detaches a volatile database (the node drops it from its map, its
    // file goes), and reports an unknown name beside it; re-attached, it is empty.
    run_ok(&node, &ours, &["writekey", "more_vol.tdb", "k", "v"]);
    let file = run_ok(&node, &ours, &["getdbstatus", "more_vol.tdb"])
        .lines()
        .find_map(|l| l.strip_prefix("path: ").map(str::to_string))
        .expect("path: in getdbstatus");
    for tool in [&ours, &samba] {
        let out = node.tool(tool, &["detach", "more_vol.tdb", "nosuch.tdb"]);
        assert_eq!(
            (text(&out.stderr), out.status.code()),
            (
                "No database matching 'nosuch.tdb' found\n".to_string(),
                Some(0)
            ),
            "{}",
            tool.display()
        );
        ctdb_tests::wait_for("more_vol.tdb detached", || {
            !run_ok(&node, &ours, &["getdbmap"]).contains("name:more_vol.tdb ")
        })
        .await;
        assert!(!Path::new(&file).exists(), "{file} is still there");
        run_ok(&node, &ours, &["setvar", "AllowClientDBAttach", "1"]);
        run_ok(&node, &ours, &["attach", "more_vol.tdb"]);
        assert_eq!(
            run_ok(&node, &ours, &["catdb", "more_vol.tdb"]),
            "Dumped 0 records\n"
        );
        run_ok(&node, &ours, &["setvar", "AllowClientDBAttach", "0"]);
    }
    // The node itself refuses while clients may attach (the tool checks first, but
    // another client need not).
    run_ok(&node, &ours, &["setvar", "AllowClientDBAttach", "1"]);
    let db_id = u32::from_str_radix(
        run_ok(&node, &ours, &["getdbmap"])
            .lines()
            .find(|l| l.contains("name:more_vol.tdb "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|id| id.strip_prefix("dbid:0x"))
            .expect("more_vol.tdb in getdbmap"),
        16,
    )
    .expect("db id");
    let reply = client
        .control_raw(
            ctdb_protocol::flags::dest::CURRENT_NODE,
            ctdb_protocol::Opcode::DbDetach,
            0,
            bytes::Bytes::copy_from_slice(&db_id.to_le_bytes()),
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("DB_DETACH answered");
    assert_eq!(reply.status, -1, "{reply:?}");
    assert!(
        text(&reply.errmsg).contains("AllowClientDBAttach"),
        "{reply:?}"
    );

    // checktcpport: a port some socket holds, a free one (0: any), and no -n.
    let held = std::net::TcpListener::bind("0.0.0.0:0").expect("listen");
    let port = held.local_addr().expect("addr").port().to_string();
    let out = same(&node, &samba, &["checktcpport", &port]);
    assert_eq!(
        text(&out.stderr),
        format!("Failed to bind to TCP port {port}\n")
    );
    assert_eq!(out.status.code(), Some(98));
    same_ok(&node, &samba, &["checktcpport", "0"]);
    let out = same(&node, &samba, &["-n", "0", "checktcpport", "0"]);
    assert_eq!(out.status.code(), Some(1));

    // lvs and natgw run a helper program with their argument and exit as it does;
    // 64 + n from the helper is error n. A helper that is not there is error 2.
    let helper = dir.path().join("helper.sh");
    std::fs::write(
        &helper,
        "#!/bin/sh\necho \"helper: $*\"\ncase \"$1\" in leader) exit 0;; list) exit 3;; *) exit 66;; esac\n",
    )
    .expect("write helper");
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let nowhere = dir.path().join("nowhere");
    for (var, command) in [("CTDB_LVS_HELPER", "lvs"), ("CTDB_NATGW_HELPER", "natgw")] {
        for (program, arg, code) in [
            (&helper, "leader", 0),
            (&helper, "list", 3),
            (&helper, "status", 2),
            (&nowhere, "status", 2),
        ] {
            let run = |tool: &Path| {
                std::process::Command::new(tool)
                    .args([command, arg])
                    .env("CTDB_SOCKET", &node.socket)
                    .env(var, program)
                    .output()
                    .expect("run ctdb")
            };
            let (a, b) = (run(&ours), run(&samba));
            assert_eq!(
                (text(&a.stdout), text(&a.stderr), a.status.code()),
                (text(&b.stdout), text(&b.stderr), b.status.code()),
                "ctdb {command} {arg} with {}",
                program.display()
            );
            assert_eq!(a.status.code(), Some(code), "{command} {arg}");
        }
    }
}

/// The usage list names the new commands where Samba's does, in the same words.
#[test]
fn usage_lists_the_new_commands_as_samba() {
    let Some(samba) = samba_ctdb() else { return };
    let list = |tool: &Path| {
        let out = std::process::Command::new(tool).output().expect("run ctdb");
        assert_eq!(out.status.code(), Some(1));
        text(&out.stdout)
            .lines()
            .skip_while(|l| *l != "Commands:")
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let theirs = list(&samba);
    assert!(theirs.len() > 70, "{theirs:?}");
    assert_eq!(list(&ctdb_tests::bin("ctdb")), theirs);
}

/// Through another node (`-n 1` of two): the commands Samba lets run elsewhere are
/// answered by that node, the others are refused in Samba's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commands_through_another_node() {
    let Some(samba) = samba_ctdb() else { return };
    let cluster = ctdb_tests::TestCluster::start(2);
    cluster.healthy(&[0, 1]).await;
    let node = &cluster.nodes[0];
    let ours = ctdb_tests::bin("ctdb");

    // Local-only commands and checktcpport (no daemon at all).
    for args in [
        &["-n", "1", "detach", "x.tdb"][..],
        &["-n", "1", "lvs", "list"],
        &["-n", "1", "natgw", "list"],
        &["-n", "1", "checktcpport", "0"],
    ] {
        let out = same(node, &samba, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    assert_eq!(
        text(&node.tool(&ours, &["-n", "1", "detach", "x.tdb"]).stderr),
        "Node cannot be specified for command detach\n"
    );

    run_ok(node, &ours, &["attach", "far_vol.tdb"]);
    // Only a client of the node counts as an existing process.
    let out = same(node, &samba, &["-n", "1", "process-exists", "1"]);
    assert_eq!(text(&out.stdout), "PID 1 does not exist\n");
    for args in [
        &["-n", "1", "setdbsticky", "far_vol.tdb"][..],
        &["-n", "1", "setdbreadonly", "far_vol.tdb"],
        &["-n", "1", "dbstatistics", "far_vol.tdb"],
        &["-n", "1", "setlmasterrole", "on"],
        &["-n", "1", "setleaderrole", "on"],
    ] {
        same_ok(node, &samba, args);
    }
    // The flags were set on node 1, not here.
    let here = same_ok(node, &samba, &["getdbstatus", "far_vol.tdb"]);
    assert!(here.contains("STICKY: no\nREADONLY: no\n"), "{here}");
    let there = same_ok(node, &samba, &["-n", "1", "getdbmap"]);
    assert!(there.contains("name:far_vol.tdb"), "{there}");
    assert!(there.contains(" STICKY READONLY"), "{there}");

    for tool in [&ours, &samba] {
        let out = node.tool(tool, &["-n", "1", "dumpmemory"]);
        assert!(out.status.success(), "{}: {out:?}", tool.display());
        assert!(out.stdout.len() > 1 && !out.stdout.contains(&0));
        let out = node.tool(tool, &["-n", "1", "rddumpmemory"]);
        assert!(out.status.success(), "{}: {out:?}", tool.display());
        assert!(!out.stdout.is_empty(), "{}", tool.display());
    }
}
