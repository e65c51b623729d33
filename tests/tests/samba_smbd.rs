//! Samba's smbd runs clustered on our nodes as on Samba's own ctdbd: one smbd per node
//! of a 3-node cluster, one shared directory, checked with a real SMB client
//! (`tests/smb/smb_checks.py`, PyPI's smbprotocol): a file crosses nodes byte for byte,
//! byte-range locks conflict across nodes, a file open through one node sees what
//! another wrote. The same checks run against Samba's ctdbd, the reference. And a kill
//! of ctdb-db under a running smbd costs its clients nothing.

use ctdb_tests::samba::{smb_python, SambaCluster, Smbds};
use ctdb_tests::{loopback_subnet, TestCluster};

fn assert_passed(what: &str, out: &std::process::Output, smbds: &Smbds) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{what}:\n{text}");
    assert!(
        out.status.success(),
        "{what}: SMB checks failed:\n{text}\n{}",
        smbds.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smbd_serves_files_and_locks_across_ctdb_rs_nodes_and_survives_a_db_restart() {
    let Some(python) = smb_python() else { return };
    let cluster = TestCluster::start(3);
    cluster.healthy(&[0, 1, 2]).await;
    let prefix = cluster.nodes[0].addresses()[0]
        .rsplit_once('.')
        .map(|(p, _)| p.to_string())
        .expect("node address");
    let sockets: Vec<_> = cluster.nodes.iter().map(|n| n.socket.clone()).collect();
    let smbds = Smbds::start(&sockets, &prefix);
    assert_passed("ctdb-rs", &smbds.checks(&python), &smbds);

    // A handle and a lock held through node 0's smbd while node 0's ctdb-db is killed
    // and restarted: both survive, and every file still reads through every node.
    let held = smbds.hold(&python);
    cluster.nodes[0].kill_and_wait_restart("ctdb-db").await;
    cluster.healthy(&[0, 1, 2]).await;
    let (ok, text) = held.release();
    println!("across a ctdb-db restart:\n{text}");
    assert!(
        ok,
        "SMB checks across a ctdb-db restart failed:\n{text}\n{}\n{}",
        smbds.log_tail(),
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_checks_pass_on_sambas_ctdbd() {
    let Some(python) = smb_python() else { return };
    let prefix = loopback_subnet();
    let samba = SambaCluster::start(3, &prefix);
    let smbds = Smbds::start(&samba.sockets(), &prefix);
    assert_passed("Samba's ctdbd", &smbds.checks(&python), &smbds);
}
