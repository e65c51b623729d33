//! Issue 12: the interface event script ctdb-rs ships
//! (`deploy/events/legacy/10.interface.script`) puts a node's public addresses on the
//! interface and takes them off again. The three nodes of this test share the host's
//! `lo`, so the test sees that each address is there while held and gone once
//! released; it needs root (CAP_NET_ADMIN), which CI has.

use std::process::Command;
use std::time::{Duration, Instant};

use ctdb_tests::{bin, TestCluster};

const SCRIPT: &str = include_str!("../../deploy/events/legacy/10.interface.script");
const ADDRESSES: [&str; 3] = ["10.79.0.1", "10.79.0.2", "10.79.0.3"];

/// Removes the test's addresses from `lo` whatever happens.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        for a in ADDRESSES {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{a}/24"), "dev", "lo"])
                .output();
        }
    }
}

fn on_lo(addr: &str) -> bool {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "lo", "to", addr])
        .output()
        .expect("ip");
    !out.stdout.is_empty()
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeip_adds_the_address_and_releaseip_removes_it() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test changes addresses on lo: it needs root"
        );
        eprintln!("skipped: not root");
        return;
    }
    let _cleanup = Cleanup;
    let file: String = ADDRESSES.iter().map(|a| format!("{a}/24 lo\n")).collect();
    let cluster = TestCluster::start_with_files(
        3,
        &[
            ("public_addresses", &file),
            ("events/legacy/10.interface.script", SCRIPT),
        ],
    );
    cluster.healthy(&[0, 1, 2]).await;
    wait_for("every address on lo", || ADDRESSES.iter().all(|a| on_lo(a))).await;

    // One address leaves every node's file: its holder releases it, and it is gone.
    let two: String = ADDRESSES[..2]
        .iter()
        .map(|a| format!("{a}/24 lo\n"))
        .collect();
    for n in &cluster.nodes {
        std::fs::write(n.dir().join("public_addresses"), &two).unwrap();
    }
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["reloadips", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("10.79.0.3 gone from lo", || !on_lo(ADDRESSES[2])).await;
    assert!(on_lo(ADDRESSES[0]) && on_lo(ADDRESSES[1]));
}
