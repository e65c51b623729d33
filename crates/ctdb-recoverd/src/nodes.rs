//! How the leader reaches the nodes: controls to a pnn, answered by that node's owner
//! of the control (transport forwards them over the node mesh), and messages to a
//! srvid there. Traits, so that the monitoring, recovery and takeover rules run against
//! an in-memory cluster in tests.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use ctdb_client::Client;
use ctdb_protocol::flags::dest;
use ctdb_protocol::{Opcode, ReplyControl};
use futures::future::join_all;

pub trait Nodes: Sync {
    /// Sends a control to node `pnn` and returns its reply, whatever its status.
    fn control(
        &self,
        pnn: u32,
        opcode: Opcode,
        data: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<ReplyControl, String>> + Send;

    /// As [`Nodes::control`], with the control's flags word; by default the flags are
    /// dropped (in-memory test clusters).
    fn control_flagged(
        &self,
        pnn: u32,
        opcode: Opcode,
        _flags: u32,
        data: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<ReplyControl, String>> + Send {
        self.control(pnn, opcode, data, timeout)
    }
}

impl Nodes for Client {
    async fn control(
        &self,
        pnn: u32,
        opcode: Opcode,
        data: Bytes,
        timeout: Duration,
    ) -> Result<ReplyControl, String> {
        self.control_flagged(pnn, opcode, 0, data, timeout).await
    }

    async fn control_flagged(
        &self,
        pnn: u32,
        opcode: Opcode,
        flags: u32,
        data: Bytes,
        timeout: Duration,
    ) -> Result<ReplyControl, String> {
        let destnode = if pnn == self.pnn() {
            dest::CURRENT_NODE
        } else {
            pnn
        };
        self.control_with_flags(destnode, opcode, 0, flags, data, timeout)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Messages to a srvid on a node (no answer at the protocol level).
pub trait Messenger: Sync {
    fn message(&self, pnn: u32, srvid: u64, data: Bytes) -> Result<(), String>;
}

impl Messenger for Client {
    fn message(&self, pnn: u32, srvid: u64, data: Bytes) -> Result<(), String> {
        self.send_message(pnn, srvid, data)
            .map_err(|e| e.to_string())
    }
}

/// A failed control: which node, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeError {
    pub pnn: u32,
    pub error: String,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}: {}", self.pnn, self.error)
    }
}

/// A control whose reply must have status 0; returns the reply data.
pub async fn ok<N: Nodes>(
    nodes: &N,
    pnn: u32,
    opcode: Opcode,
    data: Bytes,
    timeout: Duration,
) -> Result<Bytes, NodeError> {
    let fail = |error: String| NodeError { pnn, error };
    let reply = nodes
        .control(pnn, opcode, data, timeout)
        .await
        .map_err(fail)?;
    if reply.status != 0 {
        let message = reply.error_message().unwrap_or_default();
        return Err(fail(format!(
            "{opcode} failed with status {} {message}",
            reply.status
        )));
    }
    Ok(reply.data)
}

/// A control whose answer is its (non-negative) status word, like GET_RECMODE.
pub async fn status<N: Nodes>(
    nodes: &N,
    pnn: u32,
    opcode: Opcode,
    timeout: Duration,
) -> Result<u32, NodeError> {
    let reply = nodes
        .control(pnn, opcode, Bytes::new(), timeout)
        .await
        .map_err(|error| NodeError { pnn, error })?;
    u32::try_from(reply.status).map_err(|_| NodeError {
        pnn,
        error: format!("{opcode} failed with status {}", reply.status),
    })
}

/// The same control to every node at once; the first failure (in pnn order) if any.
pub async fn on_all<N: Nodes>(
    nodes: &N,
    pnns: &[u32],
    opcode: Opcode,
    data: Bytes,
    timeout: Duration,
) -> Result<Vec<Bytes>, NodeError> {
    join_all(
        pnns.iter()
            .map(|&pnn| ok(nodes, pnn, opcode, data.clone(), timeout)),
    )
    .await
    .into_iter()
    .collect()
}
