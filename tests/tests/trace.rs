//! Issue 11, observability: transport gives each request a trace id, logs it in its
//! span for the request, carries it to the component over the packet socket, and the
//! component's lines for that request and transport's for the answer name the same id.
//! One grep of the node's log for the id finds each process's lines (db's for a control
//! and for a call, recoverd's for one of its controls).

use std::time::{Duration, Instant};

use ctdb_tests::{bin, TestCluster};

/// The ids of `trace=<16 hex digits>` in `line`.
fn trace_ids(line: &str) -> Vec<&str> {
    line.match_indices("trace=")
        .filter_map(|(at, _)| line.get(at + 6..at + 22))
        .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect()
}

/// The process a log line is from (`transport`, `db`, ...): what precedes `[pid]: `.
fn process(line: &str) -> Option<&str> {
    let (before, _) = line.split_once("]: ")?;
    let (before, _) = before.rsplit_once('[')?;
    Some(before.rsplit(' ').next().unwrap_or(before))
}

/// A request of a local client that transport logged with `op` (and `also`), whose id
/// the lines of `component` name too and under which transport routed its answer: the
/// id, or why none is yet.
fn traced_through(log: &str, component: &str, op: &str, also: &str) -> Result<String, String> {
    let lines: Vec<&str> = log.lines().collect();
    let asked: Vec<&str> = lines
        .iter()
        .filter(|l| process(l) == Some("transport"))
        .filter(|l| l.contains("request{") && l.contains(op) && l.contains(also))
        .filter(|l| l.contains("from client"))
        .flat_map(|l| trace_ids(l))
        .collect();
    if asked.is_empty() {
        return Err(format!("transport logged no {op} of a client"));
    }
    for id in &asked {
        let named = |who: &str, what: &str| {
            lines
                .iter()
                .any(|l| process(l) == Some(who) && l.contains(what) && trace_ids(l).contains(id))
        };
        let answer = format!("component=\"{component}\"");
        if named(component, "request{") && named("transport", &answer) {
            return Ok(id.to_string());
        }
    }
    Err(format!(
        "none of the ids of {op} ({asked:?}) is in {component}'s lines and transport's line \
         of the answer"
    ))
}

/// Waits until `check` finds what it looks for in the node's log.
async fn wait_for(
    cluster: &TestCluster,
    what: &str,
    check: impl Fn(&str) -> Result<String, String>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check(&cluster.nodes[0].log()) {
            Ok(found) => return found,
            Err(why) if Instant::now() >= deadline => {
                panic!("{what}: {why}\n{}", cluster.logs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_id_names_a_request_in_transport_and_in_db() {
    let cluster = TestCluster::start_with_env(1, &[("CTDB_DEBUGLEVEL", "DEBUG")]);
    cluster.healthy(&[0]).await;
    let node = &cluster.nodes[0];
    let ctdb = bin("ctdb");
    let run = |args: &[&str]| {
        let out = node.tool(&ctdb, args);
        assert!(
            out.status.success(),
            "ctdb {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // A control db owns.
    run(&["getdbmap"]);
    let control = wait_for(&cluster, "GET_DBMAP", |log| {
        traced_through(log, "db", "CTDB_CONTROL_GET_DBMAP", "")
    })
    .await;

    // A call on a volatile database: transport's span names the database too.
    run(&["attach", "trace.tdb"]);
    run(&["writekey", "trace.tdb", "traced", "value"]);
    let read = run(&["readkey", "trace.tdb", "traced"]);
    assert!(read.contains("value"), "{read}");
    let db_id = run(&["-X", "getdbmap"])
        .lines()
        .find(|l| l.contains("|trace.tdb|"))
        .and_then(|l| l.split('|').nth(1).map(str::to_string))
        .expect("trace.tdb in the db map");
    let db_id = u32::from_str_radix(db_id.trim_start_matches("0x"), 16).expect("db id");
    let call = wait_for(&cluster, "REQ_CALL", |log| {
        traced_through(log, "db", "op=CTDB_REQ_CALL", &format!("db_id={db_id}"))
    })
    .await;
    assert_ne!(control, call, "each request has its own id");

    // A control of the recovery daemon's: the same in its lines.
    run(&["ifaces"]);
    wait_for(&cluster, "GET_IFACES", |log| {
        traced_through(log, "recoverd", "CTDB_CONTROL_GET_IFACES", "")
    })
    .await;

    // Every line with the call's id is transport's or db's, and both are there.
    let log = node.log();
    let mut who: Vec<&str> = log
        .lines()
        .filter(|l| trace_ids(l).contains(&call.as_str()))
        .filter_map(process)
        .collect();
    who.sort_unstable();
    who.dedup();
    assert_eq!(who, ["db", "transport"], "lines of trace={call}");
}
