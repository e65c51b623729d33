//! Samba's event interface on our node: `ctdb event run|status|script list|enable|
//! disable` and `ctdb scriptstatus`, with Samba's tool (through its `ctdb-event`
//! helper, on `<run dir>/eventd.socket`) and with ours, print the same against our node
//! as against Samba's ctdbd — output and exit code, start times and durations aside.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ctdb_tests::samba::SambaCluster;
use ctdb_tests::{bin, samba_ctdb, TestCluster};

/// The same event scripts on both nodes: one that says hello, one disabled, one that
/// fails `monitor`, and one after it.
const SCRIPTS: &[(&str, &str, u32)] = &[
    ("01.hello", "#!/bin/sh\necho \"hello $1 $2\"\n", 0o755),
    ("02.off", "#!/bin/sh\necho off\n", 0o644),
    (
        "05.failmon",
        "#!/bin/sh\n[ \"$1\" = monitor ] && [ -z \"$2\" ] && { echo 'bad thing'; exit 3; }\nexit 0\n",
        0o755,
    ),
    ("10.after", "#!/bin/sh\nexit 0\n", 0o755),
];

/// Commands in order; each is run with both tools against both daemons.
const STEPS: &[&[&str]] = &[
    &["event", "run", "10", "legacy", "monitor"],
    &["event", "status", "legacy", "monitor"],
    &["scriptstatus"],
    &["scriptstatus", "monitor"],
    &["event", "status", "legacy", "nosuchevent"],
    &["event", "status", "other", "monitor"],
    &["event", "run", "10", "other", "monitor"],
    &["event", "script", "list", "legacy"],
    &["event", "run", "10", "legacy", "monitor", "with", "args"],
    &["event", "status", "legacy", "monitor"],
    &["event", "script", "disable", "legacy", "05.failmon"],
    &["event", "script", "enable", "legacy", "20.shipped"],
    &["event", "script", "enable", "legacy", "99.none"],
    &["event", "script", "list", "legacy"],
    &["event", "run", "10", "legacy", "startrecovery"],
    &["event", "status", "legacy", "startrecovery"],
    &["event", "script", "disable", "legacy", "20.shipped"],
    &["event", "script", "enable", "legacy", "05.failmon"],
    &["event", "script", "list", "legacy"],
    &["event", "status"],
];

fn install_scripts(base: &Path) {
    let legacy = base.join("events/legacy");
    let shipped = base.join("share/events/legacy");
    for dir in [&legacy, &shipped] {
        std::fs::create_dir_all(dir).expect("events dir");
    }
    for (name, text, mode) in SCRIPTS {
        let path = legacy.join(format!("{name}.script"));
        std::fs::write(&path, text).expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).expect("mode");
    }
    let path = shipped.join("20.shipped.script");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("shipped script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("mode");
}

/// Start times and durations vary; everything else must not.
fn normalise(text: &str) -> String {
    let date = regex::Regex::new(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}").expect("re");
    let secs = regex::Regex::new(r" \d+\.\d{3} ").expect("re");
    secs.replace_all(&date.replace_all(text, "DATE"), " SECS ")
        .into_owned()
}

fn run(tool: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run ctdb");
    normalise(&format!(
        "$ ctdb {}\n{}{}rc={}\n",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    ))
}

fn env_for(base: &Path, socket: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CTDB_TEST_MODE", "yes".to_string()),
        ("CTDB_BASE", base.display().to_string()),
        ("CTDB_SOCKET", socket.display().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_commands_print_as_on_samba() {
    let Some(samba_tool) = samba_ctdb() else {
        return;
    };
    let our_tool = bin("ctdb");
    let prefix = ctdb_tests::loopback_subnet();
    let samba = SambaCluster::start(1, &prefix);
    // No periodic monitor run of our own in the middle of the steps (it would change
    // `event status` where Samba's node ran none): only the one after startup.
    let ours = TestCluster::start_with_env(1, &[("CTDB_MONITOR_INTERVAL", "3600")]);
    ours.healthy(&[0]).await;

    let samba_base = samba.dir.path().join("node.0");
    let our_base: PathBuf = ours.nodes[0].dir().to_path_buf();
    install_scripts(&samba_base);
    install_scripts(&our_base);
    let samba_env = env_for(&samba_base, &samba.socket(0));
    let our_env = env_for(&our_base, &ours.nodes[0].socket);

    let mut transcript = String::new();
    for args in STEPS {
        let reference = run(&samba_tool, &samba_env, args);
        for (who, tool, env) in [
            ("Samba's tool, our node", &samba_tool, &our_env),
            ("our tool, Samba's node", &our_tool, &samba_env),
            ("our tool, our node", &our_tool, &our_env),
        ] {
            let got = run(tool, env, args);
            assert_eq!(
                got, reference,
                "{who}: ctdb {args:?}\n(the steps so far on Samba:\n{transcript})"
            );
        }
        transcript.push_str(&reference);
    }
    // The failing monitor was seen, and so were the disabled and the shipped script.
    assert!(transcript.contains("OUTPUT: bad thing"), "{transcript}");
    assert!(transcript.contains("DISABLED"), "{transcript}");
    assert!(transcript.contains("* 20.shipped"), "{transcript}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_socket_refuses_garbage_and_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ours = TestCluster::start(1);
    ours.healthy(&[0]).await;
    let socket = ours.nodes[0].run_dir().join("eventd.socket");
    // A length that is no message, then an unknown command: each connection is closed
    // (nothing is answered), and the daemon goes on serving the next one.
    for bad in [
        vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0],
        vec![16, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0],
    ] {
        let mut s = tokio::net::UnixStream::connect(&socket)
            .await
            .expect("connect");
        s.write_all(&bad).await.expect("write");
        let mut buf = Vec::new();
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "answered garbage with {buf:?}");
    }
    let out = Command::new(bin("ctdb"))
        .args(["event", "status", "legacy", "startup"])
        .envs(env_for(ours.nodes[0].dir(), &ours.nodes[0].socket))
        .output()
        .expect("ctdb");
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        ours.logs()
    );
}
