//! The script runner against temporary events directories.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{alive, EventsDir};
use ctdb_eventd::runner::{
    list_scripts, run_event, set_script_enabled, RunOptions, Runner, MAX_SCRIPT_OUTPUT,
    SCRIPT_PATH, STATUS_CANCELED, STATUS_DISABLED, STATUS_TIMEDOUT, STATUS_UNTRUSTED,
};
use tokio_util::sync::CancellationToken;

fn opts(timeout: Duration) -> RunOptions {
    RunOptions {
        timeout,
        debug_script: None,
    }
}

async fn run(
    dir: &EventsDir,
    event: &str,
    args: &[&str],
    timeout: Duration,
) -> ctdb_eventd::RunResult {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_event(
        dir.path(),
        event,
        &args,
        &opts(timeout),
        &CancellationToken::new(),
    )
    .await
}

#[tokio::test]
async fn scripts_run_in_name_order_with_event_and_args() {
    let d = EventsDir::new();
    let log = d.file("log");
    for name in ["20.second", "10.first", "30.third"] {
        d.script(
            name,
            &format!("echo \"{name} $*\" >> {}", log.display()),
            true,
        );
    }
    let r = run(
        &d,
        "takeip",
        &["eth0", "10.0.0.1", "24"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status, 0, "{r:?}");
    let names: Vec<_> = r.scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["10.first", "20.second", "30.third"]);
    assert!(r
        .scripts
        .iter()
        .all(|s| s.status == 0 && s.finished >= s.start));
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(
        log,
        "10.first takeip eth0 10.0.0.1 24\n20.second takeip eth0 10.0.0.1 24\n30.third takeip eth0 10.0.0.1 24\n"
    );
}

#[tokio::test]
async fn first_failure_sets_status_and_stops_the_run() {
    let d = EventsDir::new();
    let marker = d.file("later-ran");
    d.script("10.ok", "exit 0", true);
    d.script("20.bad", "echo broken; exit 3", true);
    d.script("30.later", &format!("touch {}", marker.display()), true);
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert_eq!(r.status, 3);
    assert_eq!(r.scripts.len(), 2, "later scripts are not listed: {r:?}");
    let failed = r.failed_script().unwrap();
    assert_eq!(failed.name, "20.bad");
    assert_eq!(failed.output, "broken\n");
    assert!(!marker.exists(), "a script after the failure ran");
    assert!(r.summary().contains("20.bad"), "{}", r.summary());
}

#[tokio::test]
async fn script_past_the_timeout_is_killed_with_its_children() {
    let d = EventsDir::new();
    let pids = d.file("pids");
    d.script("10.ok", "echo fine", true);
    d.script(
        "20.hang",
        &format!(
            "sleep 30 & echo $! > {p}; echo $$ >> {p}; echo started; sleep 30",
            p = pids.display()
        ),
        true,
    );
    d.script("30.never", "exit 0", true);
    let t = Instant::now();
    let r = run(&d, "monitor", &[], Duration::from_millis(700)).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "run took {:?}",
        t.elapsed()
    );
    assert_eq!(r.status, STATUS_TIMEDOUT);
    assert_eq!(r.scripts.len(), 2);
    assert_eq!(r.scripts[1].status, STATUS_TIMEDOUT);
    assert_eq!(r.scripts[1].status_text(), "TIMEDOUT");
    assert_eq!(r.scripts[1].output, "started\n");
    // The script and the child it left in the background are both gone.
    let pids: Vec<u32> = std::fs::read_to_string(pids)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(!alive(p), "pid {p} survived the timeout");
    }
}

#[tokio::test]
async fn a_hung_script_gets_term_before_kill() {
    let d = EventsDir::new();
    let cleaned = d.file("cleaned-up");
    let stubborn = d.file("stubborn");
    // The script cleans up on TERM; its child ignores TERM and is killed after.
    d.script(
        "10.hang",
        &format!(
            "trap 'touch {c}; exit 1' TERM\n             sh -c 'trap \"\" TERM; echo $$ > {s}; exec sleep 30' &\n             echo started\n             while :; do sleep 0.05; done",
            c = cleaned.display(),
            s = stubborn.display()
        ),
        true,
    );
    let r = run(&d, "monitor", &[], Duration::from_millis(500)).await;
    assert_eq!(r.status, STATUS_TIMEDOUT);
    assert!(cleaned.exists(), "the script never saw SIGTERM");
    let child: u32 = std::fs::read_to_string(&stubborn)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(child) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(child), "the child that ignored SIGTERM survived");
}

#[tokio::test]
async fn non_executable_scripts_are_skipped_and_listed_disabled() {
    let d = EventsDir::new();
    let marker = d.file("disabled-ran");
    d.script(
        "10.off",
        &format!("touch {}; exit 1", marker.display()),
        false,
    );
    d.script("20.on", "exit 0", true);
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert_eq!(r.status, 0);
    assert_eq!(r.scripts.len(), 2);
    assert_eq!(r.scripts[0].name, "10.off");
    assert_eq!(r.scripts[0].status, STATUS_DISABLED);
    assert_eq!(r.scripts[0].status_text(), "DISABLED");
    assert_eq!(r.scripts[1].status, 0);
    assert!(!marker.exists());
}

#[tokio::test]
async fn output_is_captured_from_both_streams_and_truncated() {
    let d = EventsDir::new();
    d.script("10.talk", "echo out; echo err >&2; echo out2", true);
    // 200 KB: more than a pipe holds, so the script would hang if we stopped reading.
    d.script(
        "20.flood",
        "i=0; while [ $i -lt 4000 ]; do echo 0123456789012345678901234567890123456789012345678; i=$((i+1)); done; exit 7",
        true,
    );
    let r = run(&d, "monitor", &[], Duration::from_secs(20)).await;
    assert_eq!(r.scripts[0].output, "out\nerr\nout2\n");
    assert_eq!(r.status, 7);
    let flood = &r.scripts[1].output;
    assert_eq!(flood.len(), MAX_SCRIPT_OUTPUT);
    assert!(flood.starts_with("0123456789"));
    // On the wire the output field is 512 bytes with its NUL.
    let wire = r.to_wire();
    assert_eq!(wire.scripts[1].output.len(), MAX_SCRIPT_OUTPUT);
}

#[tokio::test]
async fn legacy_layout_and_odd_files() {
    let d = EventsDir::new();
    d.legacy_script("05.legacy.script", "echo legacy", true);
    d.legacy_script("06.nosuffix", "exit 1", true);
    d.script("10.plain", "echo plain", true);
    d.script("README", "exit 1", true);
    d.script("20.editor~", "exit 1", true);
    d.script("30.pkg.rpmsave", "exit 1", true);
    std::fs::create_dir(d.file("40.dir")).unwrap();
    let names: Vec<_> = list_scripts(d.path())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["05.legacy", "10.plain"]);
    let r = run(&d, "startup", &[], Duration::from_secs(10)).await;
    assert_eq!(r.status, 0);
    assert_eq!(r.output(), "legacy\nplain\n");
    // A missing events directory has no scripts.
    let r = run_event(
        &d.file("missing"),
        "monitor",
        &[],
        &opts(Duration::from_secs(1)),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!((r.status, r.scripts.len()), (0, 0));
}

#[tokio::test]
async fn enable_and_disable_set_the_execute_bit() {
    let d = EventsDir::new();
    let p = d.script("10.svc", "exit 0", true);
    let l = d.legacy_script("20.other.script", "exit 0", true);
    set_script_enabled(d.path(), "10.svc", false).unwrap();
    assert_eq!(common::mode(&p), 0o644);
    set_script_enabled(d.path(), "10.svc", true).unwrap();
    assert_eq!(common::mode(&p) & 0o100, 0o100);
    set_script_enabled(d.path(), "20.other.script", false).unwrap();
    assert_eq!(common::mode(&l), 0o644);
    assert!(set_script_enabled(d.path(), "99.nope", false).is_err());
    assert!(set_script_enabled(d.path(), "../10.svc", false).is_err());
}

#[tokio::test]
async fn monitor_is_cancelled_by_another_event_and_keeps_no_status() {
    let d = EventsDir::new();
    let started = d.file("monitor-started");
    d.script(
        "10.slow",
        &format!(
            "if [ \"$1\" = monitor ]; then touch {}; sleep 30; fi; exit 0",
            started.display()
        ),
        true,
    );
    let runner = Arc::new(Runner::new(d.path(), opts(Duration::from_secs(60))));
    let monitor = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run_monitor().await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !started.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.exists());
    let t = Instant::now();
    let r = runner.run("startrecovery", &[], None).await;
    assert_eq!(r.status, 0);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        monitor.await.unwrap(),
        None,
        "a cancelled monitor counts for nothing"
    );
    assert!(runner.last_run("monitor").is_none());
    assert_eq!(runner.last_run("startrecovery"), Some(r));
    // A monitor that runs to the end is kept.
    std::fs::remove_file(&started).unwrap();
    d.script("10.slow", "exit 0", true);
    let m = runner.run_monitor().await.unwrap();
    assert_eq!(runner.last_run("monitor"), Some(m));
}

#[tokio::test]
async fn shutdown_kills_the_run_in_flight() {
    let d = EventsDir::new();
    d.script("10.hang", "sleep 30", true);
    let runner = Arc::new(Runner::new(d.path(), opts(Duration::from_secs(60))));
    let run = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run("startup", &[], None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    runner.shutdown();
    let r = run.await.unwrap();
    assert_eq!(r.status, STATUS_CANCELED);
    assert!(t.elapsed() < Duration::from_secs(3));
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_group_writable_script_is_not_run_and_its_status_says_why() {
    let d = EventsDir::new();
    let marker = d.file("ran");
    let script = d.legacy_script(
        "10.open.script",
        &format!("touch {}", marker.display()),
        true,
    );
    chmod(&script, 0o775);
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert!(!marker.exists(), "an untrusted script ran");
    assert_eq!(r.status, STATUS_UNTRUSTED, "{r:?}");
    let s = &r.scripts[0];
    assert_eq!((s.name.as_str(), s.status), ("10.open", STATUS_UNTRUSTED));
    assert!(
        s.output.contains(&script.display().to_string()) && s.output.contains("group or others"),
        "{}",
        s.output
    );
}

#[tokio::test]
async fn a_script_in_an_open_directory_is_not_run() {
    let d = EventsDir::new();
    let marker = d.file("ran");
    d.legacy_script(
        "10.fine.script",
        &format!("touch {}", marker.display()),
        true,
    );
    let legacy = d.path().join("legacy");
    chmod(&legacy, 0o777);
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert!(!marker.exists(), "a script another user could replace ran");
    assert_eq!(r.scripts[0].status, STATUS_UNTRUSTED, "{r:?}");
    assert!(r.scripts[0].output.contains(&legacy.display().to_string()));
}

#[tokio::test]
async fn a_script_owned_by_another_user_is_not_run() {
    if !nix::unistd::geteuid().is_root() {
        return; // only root can give a file away
    }
    let d = EventsDir::new();
    let marker = d.file("ran");
    let script = d.script("10.foreign", &format!("touch {}", marker.display()), true);
    nix::unistd::chown(&script, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert!(!marker.exists());
    assert_eq!(r.scripts[0].status, STATUS_UNTRUSTED, "{r:?}");
    assert!(r.scripts[0].output.contains("owned by uid 65534"));
}

#[tokio::test]
async fn scripts_get_a_clean_environment() {
    let d = EventsDir::new();
    let out = d.file("env");
    d.script("10.env", &format!("env > {}", out.display()), true);
    let r = run(&d, "monitor", &[], Duration::from_secs(10)).await;
    assert_eq!(r.status, 0, "{r:?}");
    let env = std::fs::read_to_string(&out).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(env.contains(&format!("PATH={SCRIPT_PATH}\n")), "{env}");
    assert!(names.contains(&"CTDB_BASE"), "{env}");
    for name in names {
        // What sh itself adds (PWD, SHLVL, _) is not the daemon's.
        assert!(
            name.starts_with("CTDB_") || ["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
            "{name} leaked into the script's environment:\n{env}"
        );
    }
}
