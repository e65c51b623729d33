//! Opt-in mutual TLS on the node-to-node port (`[cluster] tls certificate`, `tls key`,
//! `tls ca`; see `ctdb_common::config::ClusterConfig::tls`).
//!
//! Every connection between nodes is TLS (1.2 or 1.3, rustls with ring) and both ends
//! present a certificate signed by the configured CA. A node is who its certificate
//! says only if the certificate names the node's address of the nodes file as an IP
//! address subjectAltName: the connecting side asks for the address it dials, the
//! accepting side checks the address the connection comes from (the one the nodes
//! file identified). Anything else is refused with a log line that says why. Without
//! the keys, connections are plain TCP as in Samba.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use ctdb_common::config::TlsConfig;

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    File {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS set-up: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn file_error(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

fn private_key_file(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
    let uid = meta.uid();
    if uid != 0 && uid != ctdb_common::secure::daemon_uid() {
        return Err(file_error(path, format!("key file owned by uid {uid}")));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "key file mode {:04o} lets group or others at it (make it 0600)",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// This node's TLS ends: the acceptor for inbound node connections, the connector
/// for ours.
pub struct NodeTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl NodeTls {
    /// Reads the certificate, key and CA files. The key file must be the node's own:
    /// owned by root or the node's user and readable by nobody else.
    pub fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        private_key_file(&config.key)?;
        let certs = certificates(&config.certificate)?;
        let key =
            PrivateKeyDer::from_pem_file(&config.key).map_err(|e| file_error(&config.key, e))?;
        let mut roots = RootCertStore::empty();
        for ca in certificates(&config.ca)? {
            roots.add(ca).map_err(|e| file_error(&config.ca, e))?;
        }
        let roots = Arc::new(roots);
        // ring, not aws-lc-rs (a large C build): rustls 0.23.48 deprecates ring's
        // provider only because it has no post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    /// The handshake of an inbound connection from the node `who` (its name in the
    /// nodes file, or else its address): its certificate must be the CA's and name it.
    pub async fn accept(
        &self,
        stream: TcpStream,
        who: Identity,
    ) -> io::Result<server::TlsStream<TcpStream>> {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, "no certificate"))?;
        names(cert, &who)?;
        Ok(tls)
    }

    /// The handshake of our connection to the node `who`: its certificate must be the
    /// CA's and name it.
    pub async fn connect(
        &self,
        stream: TcpStream,
        who: Identity,
    ) -> io::Result<client::TlsStream<TcpStream>> {
        let name = who.server_name()?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// Who a node is, as its certificate must say: the DNS name of its nodes-file line,
/// or the address of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Ip(ip) => ip.fmt(f),
            Identity::Name(name) => f.write_str(name),
        }
    }
}

impl Identity {
    fn server_name(&self) -> io::Result<ServerName<'static>> {
        match self {
            Identity::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
            Identity::Name(name) => ServerName::try_from(name.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}"))),
        }
    }
}

/// Whether `cert` names `who`.
fn names(cert: &CertificateDer<'_>, who: &Identity) -> io::Result<()> {
    let refused = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| refused(format!("unreadable certificate: {e}")))?;
    cert.verify_is_valid_for_subject_name(&who.server_name()?)
        .map_err(|e| refused(format!("its certificate is not for {who}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("node.key");
        std::fs::write(&key, "not a key").expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let config = TlsConfig {
            certificate: dir.path().join("node.pem"),
            key: key.clone(),
            ca: dir.path().join("ca.pem"),
        };
        let err = NodeTls::load(&config).err().expect("refused").to_string();
        assert!(
            err.contains(&key.display().to_string()) && err.contains("0644"),
            "{err}"
        );
    }
}
