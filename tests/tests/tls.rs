//! Opt-in mutual TLS between nodes (`[cluster] tls certificate/key/ca`): nodes whose
//! certificates name their nodes-file addresses form a cluster; a node whose
//! certificate names another address, or is signed by another CA, is refused.
//! Certificates are made with the openssl command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ctdb_protocol::flags::dest::CURRENT_NODE;
use ctdb_protocol::flags::node::DISCONNECTED;
use ctdb_tests::{loopback_subnet, TestCluster, TestNode};

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A CA in `dir`: its certificate and key.
fn ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&cert),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
    ]);
    (cert, key)
}

/// A node certificate signed by `ca`, naming `ip`: its certificate and key.
fn node_cert(dir: &Path, name: &str, ca: &(PathBuf, PathBuf), ip: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
        ),
    )
    .expect("ext file");
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        s(&key),
        "-out",
        s(&csr),
        "-subj",
        &format!("/CN={name}"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&ca.0),
        "-CAkey",
        s(&ca.1),
        "-CAcreateserial",
        "-out",
        s(&cert),
        "-days",
        "2",
        "-extfile",
        s(&ext),
    ]);
    (cert, key)
}

/// `n` nodes with TLS; node `i` presents the certificate and key `make` gives it and
/// trusts the CA it names.
fn start(
    n: usize,
    make: impl Fn(&Path, usize, &str) -> (PathBuf, PathBuf, PathBuf),
) -> TestCluster {
    let root = tempfile::Builder::new()
        .prefix("ctdb-rs-tls")
        .tempdir()
        .expect("temp dir");
    let certs = root.path().join("certs");
    std::fs::create_dir(&certs).expect("certs dir");
    let subnet = loopback_subnet();
    let addrs: Vec<String> = (1..=n).map(|i| format!("{subnet}.{i}")).collect();
    let nodes = (0..n)
        .map(|i| {
            let (cert, key, ca) = make(&certs, i, &addrs[i]);
            let conf = format!(
                "[cluster]\n\tnode address = {}\n\ttls certificate = {}\n\
                 \ttls key = {}\n\ttls ca = {}\n",
                addrs[i],
                cert.display(),
                key.display(),
                ca.display()
            );
            let dir = root.path().join(format!("node.{i}"));
            TestNode::start_in(&dir, i as u32, &addrs, &conf)
        })
        .collect();
    TestCluster { nodes, root }
}

/// Node 0 still sees node 1 disconnected after a while, and its log says why.
async fn refused(cluster: &TestCluster, why: &str) {
    // Not `ready()`: without node 1 there is no majority, so no recovery.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = ctdb_client::Client::connect(&cluster.nodes[0].socket)
        .await
        .expect("node 0 serves its clients");
    let map = client.get_nodemap(CURRENT_NODE).await.expect("nodemap");
    assert!(
        map.nodes[1].flags & DISCONNECTED != 0,
        "node 1 got in: {map:?}"
    );
    let log = cluster.logs();
    assert!(log.contains(why), "no '{why}' in the logs:\n{log}");
}

#[tokio::test]
async fn nodes_whose_certificates_name_their_addresses_form_a_cluster_and_heal() {
    let mut cluster = start(3, |dir, i, addr| {
        let ca = if i == 0 {
            ca(dir, "ca")
        } else {
            (dir.join("ca.pem"), dir.join("ca.key"))
        };
        let (cert, key) = node_cert(dir, &format!("node{i}"), &ca, addr);
        (cert, key, ca.0)
    });
    cluster.healthy(&[0, 1, 2]).await;
    assert!(cluster.logs().contains("tls=true"));
    // A node that crashes and comes back is taken in again over TLS.
    cluster.nodes[2].crash();
    cluster.healthy(&[0, 1]).await;
    cluster.nodes[2].restart();
    cluster.healthy(&[0, 1, 2]).await;
}

#[tokio::test]
async fn a_node_whose_certificate_names_another_address_is_refused() {
    let cluster = start(2, |dir, i, addr| {
        let ca_files = (dir.join("ca.pem"), dir.join("ca.key"));
        let ca = if i == 0 { ca(dir, "ca") } else { ca_files };
        // Node 1's certificate is the CA's but not for its address.
        let named = if i == 0 {
            addr.to_string()
        } else {
            "10.9.9.9".into()
        };
        let (cert, key) = node_cert(dir, &format!("node{i}"), &ca, &named);
        (cert, key, ca.0)
    });
    refused(&cluster, "not for").await;
}

#[tokio::test]
async fn a_node_with_another_ca_s_certificate_is_refused() {
    let cluster = start(2, |dir, i, addr| {
        let ours = if i == 0 {
            ca(dir, "ca")
        } else {
            (dir.join("ca.pem"), dir.join("ca.key"))
        };
        // Node 1 trusts the cluster's CA but its own certificate is another CA's.
        let signer = if i == 0 {
            ours.clone()
        } else {
            ca(dir, "rogue")
        };
        let (cert, key) = node_cert(dir, &format!("node{i}"), &signer, addr);
        (cert, key, ours.0)
    });
    refused(&cluster, "TLS").await;
}
