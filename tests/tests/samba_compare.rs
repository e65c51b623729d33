//! Samba's `ctdb` tool prints the same node list, flags and recovery mode against our
//! 3-node cluster as against a Samba cluster of the same size.

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
