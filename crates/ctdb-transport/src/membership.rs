//! Live membership: the nodes file read again while the node runs.
//!
//! GET_NODES_FILE answers with the file as it is on disk now (flags DELETED or 0), so
//! that `ctdb reloadnodes` can compare it with the running node map. RELOAD_NODES_FILE
//! applies it, following Samba's rules: a node's pnn is its line and never moves; a
//! line that became `#` (deleted) drops that node's connections for good; a new line,
//! or one whose address changed, is a new node to connect to; the others keep their
//! connections untouched. Then the local recovery daemon hears RELOAD_NODES, and the
//! leader's next look at the node map finds the change and recovers the databases onto
//! the new set of nodes.
//!
//! Unlike Samba's daemon, which answers first and reads the file a second later (and
//! stops when it cannot), the file is read before the answer: a file that cannot be
//! read, or that no longer has this node at its pnn, is refused with the reason, and
//! the running membership stays as it was.

use std::sync::Arc;

use bytes::Bytes;
use ctdb_common::nodes::NodeEntry;
use ctdb_protocol::control::{NodeAndFlags, NodeMap, SockAddr};
use ctdb_protocol::flags::{control as control_flags, node as node_flags};
use ctdb_protocol::packet::Header;
use ctdb_protocol::{srvid, Body, Packet, ReplyControl, ReqControl, ReqMessage, Wire};
use tracing::{info, warn};

use crate::controls::{ok, status};
use crate::{peers, Node};

/// GET_NODES_FILE and RELOAD_NODES_FILE: the file is read off the runtime (a name in
/// it may wait for DNS), then answered.
pub fn handle(node: &Arc<Node>, client: u64, header: &Header, control: &ReqControl, reload: bool) {
    let node = node.clone();
    let header = *header;
    let noreply = control.flags & control_flags::NOREPLY != 0;
    tokio::spawn(async move {
        let config = node.config.clone();
        let read = tokio::task::spawn_blocking(move || config.read_nodes())
            .await
            .map_err(|e| format!("reading the nodes file failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        let reply = match (read, reload) {
            (Ok(nodes), false) => ok(file_map(&node, &nodes).to_bytes()),
            (Ok(nodes), true) => match apply(&node, &nodes) {
                Ok(()) => status(0),
                Err(e) => {
                    warn!("nodes file not reloaded: {e}");
                    ReplyControl::error(-1, &e)
                }
            },
            (Err(e), _) => {
                warn!("cannot read the nodes file: {e}");
                ReplyControl::error(-1, &e)
            }
        };
        if !noreply {
            node.reply_control(client, &header, reply);
        }
    });
}

/// The nodes file as a node map: each line's address (a name's as it resolves now)
/// and DELETED for a `#` line, as Samba's daemon answers GET_NODES_FILE.
fn file_map(node: &Node, nodes: &[NodeEntry]) -> NodeMap {
    let port = node.config.cluster.port;
    NodeMap {
        nodes: nodes
            .iter()
            .map(|n| NodeAndFlags {
                pnn: n.pnn,
                flags: if n.deleted { node_flags::DELETED } else { 0 },
                addr: SockAddr::from(std::net::SocketAddr::new(n.addr, port)),
            })
            .collect(),
    }
}

/// Makes `nodes` the running membership (see the module's text).
pub fn apply(node: &Arc<Node>, nodes: &[NodeEntry]) -> Result<(), String> {
    let me = node.pnn;
    match nodes.get(me as usize) {
        Some(own) if !own.deleted => {}
        Some(_) => return Err(format!("the nodes file deletes this node (pnn {me})")),
        None => {
            return Err(format!(
                "the nodes file has {} lines: this node (pnn {me}) is not in it",
                nodes.len()
            ))
        }
    }
    let was_connected = node.mesh.connected();
    let changes = node.mesh.reload(nodes, me);
    {
        let mut state = node.state();
        state.flags.resize(nodes.len(), node_flags::DISCONNECTED);
        for n in nodes {
            let flags = &mut state.flags[n.pnn as usize];
            if n.deleted {
                *flags = node_flags::DELETED | node_flags::DISCONNECTED;
            } else if changes.added.contains(&n.pnn) {
                *flags = (*flags & !node_flags::DELETED) | node_flags::DISCONNECTED;
            }
        }
    }
    for &pnn in &changes.removed {
        if was_connected.contains(&pnn) {
            warn!(peer = pnn, "node {pnn} left the nodes file while connected");
            node.node_lost(pnn);
        }
    }
    for &pnn in &changes.added {
        peers::connect_to(node, pnn);
    }
    info!(
        nodes = nodes.len(),
        added = ?changes.added,
        removed = ?changes.removed,
        "nodes file reloaded"
    );
    // The recovery daemon looks at the cluster again at once (Samba's RELOAD_NODES).
    let message = Packet {
        generation: node.state().generation,
        destnode: me,
        srcnode: me,
        reqid: 0,
        body: Body::ReqMessage(ReqMessage {
            srvid: srvid::RELOAD_NODES,
            data: Bytes::new(),
        }),
    };
    node.carry_out(vec![crate::router::Action::Message {
        srvid: srvid::RELOAD_NODES,
        packet: Bytes::from(message.to_bytes()),
    }]);
    Ok(())
}
