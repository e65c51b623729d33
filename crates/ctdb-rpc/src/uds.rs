//! gRPC over Unix sockets in the node's run directory: never reachable from another host.

use std::os::unix::fs::PermissionsExt;
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

/// Binds a Unix listener at `path`, replacing a stale socket file from an earlier run:
/// the connections of a component's gRPC server. A connection from a process of
/// another user than the node's (or root) is dropped (see [`trusted_peer`]).
pub fn bind(
    path: &Path,
) -> std::io::Result<impl tokio_stream::Stream<Item = std::io::Result<UnixStream>>> {
    use tokio_stream::StreamExt;
    let listener = tokio_stream::wrappers::UnixListenerStream::new(bind_listener(path)?);
    let path = path.to_path_buf();
    Ok(listener.filter(move |accepted| match accepted {
        Ok(stream) => trusted_peer(stream, &path),
        Err(_) => true,
    }))
}

/// Whether the process at the other end of `stream`, accepted on the internal socket
/// `path`, runs as the node's user or as root (its `SO_PEERCRED`); logs the refusal
/// of any other, whose connection the caller then drops. A file mode is one fence
/// (the sockets are 0600), this is the second: a socket or directory whose mode was
/// opened by mistake still lets no one else in.
pub fn trusted_peer(stream: &UnixStream, path: &Path) -> bool {
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 || cred.uid() == ctdb_common::secure::daemon_uid() => true,
        Ok(cred) => {
            tracing::warn!(
                socket = %path.display(),
                uid = cred.uid(),
                pid = cred.pid().unwrap_or(0),
                "connection from another user refused"
            );
            false
        }
        Err(e) => {
            tracing::warn!(socket = %path.display(), "connection refused: no peer credentials: {e}");
            false
        }
    }
}

/// Like [`bind`], the listener itself. The socket's directory must be safe (see
/// `ctdb_common::secure`: made if missing, refused if someone else owns it or may
/// write to it), and the socket is bound under the umask 0077 (then made 0600), so no
/// other user can connect to it at any moment.
pub fn bind_listener(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        ctdb_common::secure::ensure_socket_dir(parent)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = ctdb_common::secure::with_umask(|| tokio::net::UnixListener::bind(path))?;
    // 0700 from the bind; 0600 as Samba's smbd and tools expect of a socket.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}
