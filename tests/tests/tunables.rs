//! Tunables outlive a restart of transport (which holds them): `ctdb setvar` values are
//! kept in the run directory, as they live as long as Samba's daemon; and a node starts
//! with Samba's `ctdb.tunables` in CTDB_BASE.

use ctdb_tests::{bin, TestCluster};

fn getvar(cluster: &TestCluster, name: &str) -> String {
    let out = cluster.nodes[0].tool(&bin("ctdb"), &["getvar", name]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (shown, value) = text.split_once('=').expect("NAME = value");
    assert_eq!(shown.trim(), name);
    value.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunables_survive_a_transport_restart_and_ctdb_tunables_is_read() {
    let cluster =
        TestCluster::start_with_files(1, &[("ctdb.tunables", "# ours\nKeepaliveInterval=2\n")]);
    cluster.healthy(&[0]).await;
    assert_eq!(getvar(&cluster, "KeepaliveInterval"), "2");

    let out = cluster.nodes[0].tool(&bin("ctdb"), &["setvar", "EnableBans", "0"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(getvar(&cluster, "EnableBans"), "0");

    cluster.nodes[0].restart_component("ctdb-transport").await;
    cluster.healthy(&[0]).await;
    assert_eq!(getvar(&cluster, "EnableBans"), "0", "lost with transport");
    assert_eq!(getvar(&cluster, "KeepaliveInterval"), "2");
}
