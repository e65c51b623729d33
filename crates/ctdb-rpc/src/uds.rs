//! gRPC over Unix sockets in the node's run directory: never reachable from another host.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The socket of `component` in `run_dir`.
pub fn socket_path(run_dir: &Path, component: &str) -> PathBuf {
    run_dir.join(format!("{component}.sock"))
}

/// A lazily connecting channel to the gRPC server on `path`: it (re)connects on use, so
/// a restarted component is reached again without rebuilding clients.
pub fn channel(path: impl Into<PathBuf>) -> Channel {
    let path = path.into();
    // The URI is required by the API but never used: the connector dials the socket.
    Endpoint::from_static("http://[::1]:50051").connect_with_connector_lazy(tower::service_fn(
        move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        },
    ))
}

/// Binds a Unix listener at `path`, replacing a stale socket file from an earlier run.
pub fn bind(path: &Path) -> std::io::Result<tokio_stream::wrappers::UnixListenerStream> {
    bind_listener(path).map(tokio_stream::wrappers::UnixListenerStream::new)
}

/// Like [`bind`], the listener itself.
pub fn bind_listener(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    tokio::net::UnixListener::bind(path)
}
