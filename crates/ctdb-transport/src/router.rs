//! The router: where each packet goes, by who sent it and its destnode. No I/O: a frame
//! and where it came from go in, a list of [`Action`]s comes out, and the connections
//! ([`crate::dispatch`]) only read frames in and carry actions out.
//!
//! Routing by destnode, for what clients send and for the node-level packets the
//! components send (envelope client 0):
//!
//! - this node (or `CURRENT_NODE`): handled by transport, or by the owning component;
//! - another pnn: over the node mesh. A control leaves under a reqid of transport's own
//!   (the [`ForwardTable`]), srcnode = this node and (from a client) `client_id` filled
//!   in; its REPLY_CONTROL comes back through that table and reaches the asker under its
//!   own reqid (a client's with destnode 0 and srcnode = this node, as Samba's). A
//!   control for a disconnected or unknown node, one whose node disconnects while it
//!   waits, or one unanswered after ControlTimeout, gets an error reply (status -1, the
//!   message naming the node);
//! - a broadcast (`routing::targets`): each target, this node included. A broadcast
//!   control without NOREPLY gets every node's reply, each under the asker's reqid
//!   (Samba's semantics: most askers only wait for one, so they use NOREPLY);
//! - from a peer: controls to their owner (the reply goes back to that node with
//!   destnode = its pnn and the original reqid), replies to the forward table,
//!   REQ_MESSAGE to the local clients of its srvid, call/dmaster packets to db with
//!   `from_node` = the peer, keepalives are only counted;
//! - a REQ_CALL db sends on keeps its srcnode (the asker, as CTDB's lmaster does: the
//!   dmaster migrates the record to the asker directly); every other node-level packet
//!   leaves with srcnode = this node. A REQ_CALL from a peer whose srcnode is no node of
//!   the cluster is dropped.
//!
//! A node-level packet for this node itself (db's REQ_CALL to its own lmaster role, a
//! component's control broadcast) goes round the loopback ([`Action::Node`] to this
//! node) and is routed as if a peer had sent it, with `from_node` = this node's pnn.

use std::sync::{MutexGuard, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ctdb_protocol::flags::dest;
use ctdb_protocol::packet::{Header, Operation};
use ctdb_protocol::{Body, Frame, Opcode, Packet, ReplyControl, ReplyError, ReqControl};
use ctdb_rpc::Envelope;
use tracing::{debug, warn};

use crate::forward::{Asker, ForwardTable};
use crate::routing::{Owner, Routes};

/// Client ids at and above this stand for another node that sent us a request: a
/// reply "to the client" goes back to that node.
pub(crate) const NODE_ORIGIN: u64 = u64::MAX - 0xFFFF_FFFF;

pub(crate) fn node_origin(pnn: u32) -> u64 {
    NODE_ORIGIN + u64::from(pnn)
}

/// Header field offsets (`struct ctdb_req_header`) and the control's `client_id`.
const OPERATION: usize = 16;
const DESTNODE: std::ops::Range<usize> = 20..24;
const SRCNODE: std::ops::Range<usize> = 24..28;
const REQID: std::ops::Range<usize> = 28..32;
const CLIENT_ID: std::ops::Range<usize> = 48..52;

pub(crate) fn patch(packet: &mut [u8], at: std::ops::Range<usize>, value: u32) {
    if let Some(field) = packet.get_mut(at) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}

pub(crate) fn is_noreply(flags: u32) -> bool {
    flags & ctdb_protocol::flags::control::NOREPLY != 0
}

/// What the router asks the connections to do.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send to local client `client` (destnode 0 and srcnode = this node already in).
    Client { client: u64, packet: Bytes },
    /// Send to node `pnn` over the mesh, or round the loopback when it is this node.
    /// `forwarded`: the reqid of a forwarded control waiting for its reply, which gets
    /// an error at once if the packet cannot go ([`Router::not_sent`]).
    Node {
        pnn: u32,
        packet: Bytes,
        forwarded: Option<u32>,
    },
    /// Hand to a component; `hold`: held while it restarts (a request that has a
    /// reply), else dropped when it is down; `otherwise`: what to do instead when it
    /// cannot go (an error reply).
    Component {
        owner: Owner,
        envelope: Envelope,
        hold: bool,
        otherwise: Option<Box<Action>>,
    },
    /// Deliver a REQ_MESSAGE to the local clients registered for `srvid`.
    Message { srvid: u64, packet: Bytes },
    /// A control transport answers itself, for `client` (a node origin for a peer's).
    Control {
        client: u64,
        header: Header,
        control: ReqControl,
    },
    /// A control passing through to its owner that transport takes note of.
    Observe(Opcode),
}

/// What the router reads of the node's state.
pub(crate) trait View {
    /// The generation error replies carry.
    fn generation(&self) -> u32;
    /// The nodes a broadcast destnode stands for (`routing::targets`).
    fn broadcast_targets(&self, destnode: u32) -> Vec<u32>;
    /// Whether `pnn` is a node of the nodes file (this one included).
    fn is_node(&self, pnn: u32) -> bool;
    /// Whether our connection to node `pnn` is up.
    fn is_connected(&self, pnn: u32) -> bool;
    /// How long a forwarded control waits for its reply.
    fn control_timeout(&self) -> Duration;
    /// The controls waiting for replies from other nodes.
    fn forwarded(&self) -> MutexGuard<'_, ForwardTable>;
    /// What the components declared they serve ([`Routes`]).
    fn routes(&self) -> RwLockReadGuard<'_, Routes>;

    /// Where a control for this node goes ([`Routes::route`]).
    fn route(&self, opcode: Opcode, data: &[u8]) -> Result<Owner, String> {
        let routes = self.routes();
        routes.route(opcode, data)
    }
}

/// Gives every envelope for a component among `actions` the trace id `trace` of the
/// request they came of, unless it has one already (see [`ctdb_rpc::trace`]).
pub(crate) fn stamp(actions: &mut [Action], trace: u64) {
    for action in actions {
        if let Action::Component { envelope, .. } = action {
            if envelope.trace == 0 {
                envelope.trace = trace;
            }
        }
    }
}

/// Where the operation's `db_id` is in the packets that have one (`ctdb_req_call`,
/// `ctdb_req_dmaster`, `ctdb_reply_dmaster`).
const REQ_CALL_DB_ID: usize = 36;
const DMASTER_DB_ID: usize = 32;
const CONTROL_OPCODE: usize = 32;

/// The little-endian `u32` at byte `at` of `packet`, if it has one there.
pub(crate) fn u32_at(packet: &[u8], at: usize) -> Option<u32> {
    packet
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

/// A packet's reqid, read from its bytes.
pub(crate) fn reqid_of(packet: &[u8]) -> Option<u32> {
    u32_at(packet, REQID.start)
}

/// The database a call or migration packet is about, read from its bytes.
pub(crate) fn packet_db_id(packet: &[u8]) -> Option<u32> {
    match Operation::from_u32(u32_at(packet, OPERATION)?)? {
        Operation::ReqCall => u32_at(packet, REQ_CALL_DB_ID),
        Operation::ReqDmaster | Operation::ReplyDmaster => u32_at(packet, DMASTER_DB_ID),
        _ => None,
    }
}

/// A packet's operation as logs name it, the control's opcode too: formatted only
/// when a span or event that shows it is enabled.
pub(crate) struct OpName<'a>(pub &'a [u8]);

impl std::fmt::Display for OpName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(operation) = u32_at(self.0, OPERATION) else {
            return f.write_str("(short)");
        };
        match Operation::from_u32(operation) {
            Some(op @ (Operation::ReqControl | Operation::ReplyControl)) => {
                f.write_str(op.name())?;
                // A reply's opcode is not in its packet.
                match (op, u32_at(self.0, CONTROL_OPCODE)) {
                    (Operation::ReqControl, Some(opcode)) => {
                        write!(f, " {}", Opcode::from(opcode))
                    }
                    _ => Ok(()),
                }
            }
            Some(op) => f.write_str(op.name()),
            None => write!(f, "operation {operation}"),
        }
    }
}

/// The routing decisions of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Router {
    pub pnn: u32,
    pub max_packet_len: u32,
}

impl Router {
    pub(crate) fn is_local(&self, destnode: u32) -> bool {
        destnode == dest::CURRENT_NODE || destnode == self.pnn
    }

    /// The nodes a packet for `destnode` goes to, this one included where it is one.
    pub(crate) fn targets(&self, view: &dyn View, destnode: u32) -> Vec<u32> {
        if self.is_local(destnode) {
            return vec![self.pnn];
        }
        if !dest::is_broadcast(destnode) {
            return vec![destnode];
        }
        view.broadcast_targets(destnode)
    }

    /// A packet for `client`, as ctdbd sends it: destnode 0, srcnode = this node. A
    /// node-origin "client" gets it over the mesh instead (destnode = that node).
    pub(crate) fn for_client(&self, client: u64, packet: impl Into<BytesMut>) -> Action {
        let mut packet: BytesMut = packet.into();
        if client >= NODE_ORIGIN {
            let pnn = (client - NODE_ORIGIN) as u32;
            patch(&mut packet, DESTNODE, pnn);
            patch(&mut packet, SRCNODE, self.pnn);
            return Action::Node {
                pnn,
                packet: packet.freeze(),
                forwarded: None,
            };
        }
        patch(&mut packet, DESTNODE, 0);
        patch(&mut packet, SRCNODE, self.pnn);
        Action::Client {
            client,
            packet: packet.freeze(),
        }
    }

    /// A REPLY_CONTROL for the request `req`, to `client`.
    pub(crate) fn reply_control(
        &self,
        view: &dyn View,
        client: u64,
        req: &Header,
        reply: ReplyControl,
    ) -> Action {
        let packet = Packet {
            generation: view.generation(),
            destnode: req.srcnode,
            srcnode: self.pnn,
            reqid: req.reqid,
            body: Body::ReplyControl(reply),
        };
        self.for_client(client, packet.to_bytes().as_slice())
    }

    /// An error reply to a control, unless it asked for none.
    fn control_error(
        &self,
        view: &dyn View,
        client: u64,
        req: &Header,
        flags: u32,
        msg: &str,
    ) -> Option<Action> {
        (!is_noreply(flags))
            .then(|| self.reply_control(view, client, req, ReplyControl::error(-1, msg)))
    }

    /// Routes one packet from local client `client`.
    pub(crate) fn client_packet(&self, view: &dyn View, client: u64, frame: Frame) -> Vec<Action> {
        let header = frame.header;
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqControl) => {
                let control = match frame.packet() {
                    Ok(Packet {
                        body: Body::ReqControl(c),
                        ..
                    }) => c,
                    Ok(_) => return Vec::new(),
                    Err(e) => {
                        warn!(client, "bad control packet: {e}");
                        let error = ReplyControl::error(-1, &e.to_string());
                        return vec![self.reply_control(view, client, &header, error)];
                    }
                };
                let targets = self.targets(view, header.destnode);
                let mut actions = Vec::with_capacity(targets.len().max(1));
                if targets.is_empty() {
                    actions.extend(self.control_error(
                        view,
                        client,
                        &header,
                        control.flags,
                        "no node to send to",
                    ));
                }
                for pnn in targets {
                    if pnn == self.pnn {
                        self.route_control(
                            view,
                            client,
                            &header,
                            control.clone(),
                            &frame.bytes,
                            &mut actions,
                        );
                    } else {
                        let asker = Asker::Client {
                            client,
                            reqid: header.reqid,
                            srcnode: header.srcnode,
                        };
                        self.forward_control(
                            view,
                            asker,
                            control.flags,
                            &frame.bytes,
                            pnn,
                            &mut actions,
                        );
                    }
                }
                actions
            }
            Some(Operation::ReqCall) => {
                let err = Packet {
                    generation: view.generation(),
                    destnode: header.srcnode,
                    srcnode: self.pnn,
                    reqid: header.reqid,
                    body: Body::ReplyError(ReplyError::new(
                        u32::MAX,
                        "database component is not available",
                    )),
                };
                vec![Action::Component {
                    owner: Owner::Db,
                    envelope: Envelope {
                        client,
                        from_node: u32::MAX,
                        packet: frame.bytes.clone(),
                        trace: 0,
                    },
                    hold: true,
                    otherwise: Some(Box::new(self.for_client(client, err.to_bytes().as_slice()))),
                }]
            }
            Some(Operation::ReqMessage) => {
                self.send_message(view, frame, &|| format!("client {client}"))
            }
            _ => {
                warn!(
                    client,
                    operation = header.operation,
                    "clients may not send this operation; dropped"
                );
                Vec::new()
            }
        }
    }

    /// A REQ_MESSAGE (from a client or a component of this node) to the node(s) of its
    /// destnode; the local part goes to this node's clients.
    fn send_message(
        &self,
        view: &dyn View,
        frame: Frame,
        from: &dyn Fn() -> String,
    ) -> Vec<Action> {
        let srvid = match frame.packet() {
            Ok(Packet {
                body: Body::ReqMessage(m),
                ..
            }) => m.srvid,
            Ok(_) => return Vec::new(),
            Err(e) => {
                warn!("bad message packet from {}: {e}", from());
                return Vec::new();
            }
        };
        self.targets(view, frame.header.destnode)
            .into_iter()
            .map(|pnn| {
                let mut p = BytesMut::from(&frame.bytes[..]);
                patch(&mut p, DESTNODE, pnn);
                if pnn == self.pnn {
                    Action::Message {
                        srvid,
                        packet: p.freeze(),
                    }
                } else {
                    patch(&mut p, SRCNODE, self.pnn);
                    Action::Node {
                        pnn,
                        packet: p.freeze(),
                        forwarded: None,
                    }
                }
            })
            .collect()
    }

    /// A control (the whole packet, `bytes`) for node `pnn` under a reqid of our own,
    /// with srcnode = this node; its reply finds `asker` again through the forward
    /// table. A control that needs a reply and cannot go gets an error.
    fn forward_control(
        &self,
        view: &dyn View,
        asker: Asker,
        flags: u32,
        bytes: &[u8],
        pnn: u32,
        actions: &mut Vec<Action>,
    ) {
        if pnn != self.pnn && !view.is_connected(pnn) {
            if !is_noreply(flags) {
                let why = if view.is_node(pnn) {
                    format!("node {pnn} is disconnected")
                } else {
                    format!("node {pnn} is not a node of this cluster")
                };
                actions.push(self.answer_error(view, asker, pnn, &why));
            }
            return;
        }
        let mut packet = BytesMut::from(bytes);
        patch(&mut packet, DESTNODE, pnn);
        patch(&mut packet, SRCNODE, self.pnn);
        if let Asker::Client { client, .. } = asker {
            // Samba fills in the daemon's id for the client when it forwards.
            patch(&mut packet, CLIENT_ID, client as u32);
        }
        let forwarded = (!is_noreply(flags)).then(|| {
            let deadline = Instant::now() + view.control_timeout();
            let reqid = view.forwarded().insert(asker, pnn, deadline);
            patch(&mut packet, REQID, reqid);
            reqid
        });
        actions.push(Action::Node {
            pnn,
            packet: packet.freeze(),
            forwarded,
        });
    }

    /// The forwarded control `reqid` could not go to node `pnn`: its asker's error.
    pub(crate) fn not_sent(&self, view: &dyn View, reqid: u32, pnn: u32) -> Option<Action> {
        let pending = view.forwarded().cancel(reqid)?;
        Some(self.answer_error(
            view,
            pending.asker,
            pnn,
            &format!("node {pnn} is disconnected"),
        ))
    }

    /// The REPLY_CONTROL `packet` from node `pnn`, for whoever asked.
    fn answer(&self, asker: Asker, pnn: u32, packet: &[u8]) -> Action {
        let mut packet = BytesMut::from(packet);
        patch(&mut packet, REQID, asker.reqid());
        match asker {
            Asker::Client { client, .. } => self.for_client(client, packet),
            Asker::Component { owner, .. } => Action::Component {
                owner,
                envelope: Envelope {
                    client: 0,
                    from_node: pnn,
                    packet: packet.freeze(),
                    trace: 0,
                },
                hold: false,
                otherwise: None,
            },
        }
    }

    /// An error answer to a forwarded control, as from node `pnn`.
    fn answer_error(&self, view: &dyn View, asker: Asker, pnn: u32, msg: &str) -> Action {
        let destnode = match asker {
            Asker::Client { srcnode, .. } => srcnode,
            Asker::Component { .. } => self.pnn,
        };
        let packet = Packet {
            generation: view.generation(),
            destnode,
            srcnode: pnn,
            reqid: asker.reqid(),
            body: Body::ReplyControl(ReplyControl::error(-1, msg)),
        };
        self.answer(asker, pnn, &packet.to_bytes())
    }

    /// Node `pnn` went away: what waited for it gets an error now, and db hears that
    /// packets may have been lost with the connection (a record migration half done):
    /// SET_RECMODE active (NOREPLY, as a failed commit round sends), so that the leader
    /// runs a recovery, which puts every record's copies right — even when the
    /// connection is back before the leader's next look at the node map (a restarted
    /// transport reconnects within a fraction of a second).
    pub(crate) fn node_lost(&self, view: &dyn View, pnn: u32) -> Vec<Action> {
        let lost = view.forwarded().fail_node(pnn);
        let mut actions: Vec<Action> = lost
            .into_iter()
            .map(|p| self.answer_error(view, p.asker, pnn, &format!("node {pnn} disconnected")))
            .collect();
        let recmode = Packet {
            generation: ctdb_protocol::flags::INVALID_GENERATION,
            destnode: self.pnn,
            srcnode: self.pnn,
            reqid: 0,
            body: Body::ReqControl(ReqControl {
                opcode: Opcode::SetRecmode,
                srvid: 0,
                client_id: 0,
                flags: ctdb_protocol::flags::control::NOREPLY,
                data: Bytes::from(ctdb_protocol::Wire::to_bytes(
                    &ctdb_protocol::flags::recmode::ACTIVE,
                )),
            }),
        };
        actions.push(Action::Component {
            owner: Owner::Db,
            envelope: Envelope {
                client: 0,
                from_node: self.pnn,
                packet: recmode.to_bytes().into(),
                trace: 0,
            },
            hold: false,
            otherwise: None,
        });
        actions
    }

    /// Controls whose reply did not come by `now` get an error.
    pub(crate) fn expire(&self, view: &dyn View, now: Instant) -> Vec<Action> {
        let expired = view.forwarded().expire(now);
        expired
            .into_iter()
            .map(|p| {
                warn!(peer = p.pnn, "control to node {} timed out", p.pnn);
                let msg = format!("control to node {} timed out", p.pnn);
                self.answer_error(view, p.asker, p.pnn, &msg)
            })
            .collect()
    }

    /// Routes one packet from node `pnn` (this node's own pnn: the loopback).
    pub(crate) fn peer_packet(&self, view: &dyn View, pnn: u32, frame: Frame) -> Vec<Action> {
        let header = frame.header;
        let origin = node_origin(pnn);
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqKeepalive) => Vec::new(),
            Some(Operation::ReqControl) => match frame.packet() {
                Ok(Packet {
                    body: Body::ReqControl(control),
                    ..
                }) => match view.route(control.opcode, &control.data) {
                    Ok(Owner::Transport) => vec![Action::Control {
                        client: origin,
                        header,
                        control,
                    }],
                    Ok(owner) => {
                        // Held while the component restarts, as a local client's are:
                        // a leader's recovery step is not failed (and this node not
                        // blamed) for a component that is back in a moment.
                        let msg = format!("{} is not available", owner.name());
                        let otherwise = self
                            .control_error(view, origin, &header, control.flags, &msg)
                            .map(Box::new);
                        vec![
                            Action::Observe(control.opcode),
                            Action::Component {
                                owner,
                                envelope: Envelope {
                                    client: 0,
                                    from_node: pnn,
                                    packet: frame.bytes.clone(),
                                    trace: 0,
                                },
                                hold: true,
                                otherwise,
                            },
                        ]
                    }
                    Err(why) => self
                        .control_error(view, origin, &header, control.flags, &why)
                        .into_iter()
                        .collect(),
                },
                Ok(_) => Vec::new(),
                Err(e) => {
                    warn!(peer = pnn, "bad control from node {pnn}: {e}");
                    self.control_error(view, origin, &header, 0, &e.to_string())
                        .into_iter()
                        .collect()
                }
            },
            Some(Operation::ReplyControl) => {
                let Some(pending) = view.forwarded().take(header.reqid, pnn) else {
                    debug!(
                        peer = pnn,
                        reqid = header.reqid,
                        "late or unknown control reply"
                    );
                    return Vec::new();
                };
                vec![match frame.packet() {
                    Ok(Packet {
                        body: Body::ReplyControl(_),
                        ..
                    }) => self.answer(pending.asker, pnn, &frame.bytes),
                    _ => self.answer_error(view, pending.asker, pnn, "malformed reply from node"),
                }]
            }
            Some(Operation::ReqMessage) => match frame.packet() {
                Ok(Packet {
                    body: Body::ReqMessage(m),
                    ..
                }) => {
                    let mut packet = BytesMut::from(&frame.bytes[..]);
                    patch(&mut packet, DESTNODE, self.pnn);
                    vec![Action::Message {
                        srvid: m.srvid,
                        packet: packet.freeze(),
                    }]
                }
                _ => {
                    warn!(peer = pnn, "bad message from node {pnn}");
                    Vec::new()
                }
            },
            Some(Operation::ReqCall) if !view.is_node(header.srcnode) => {
                // A call sent on keeps its asker's srcnode: the record goes there.
                warn!(
                    peer = pnn,
                    srcnode = header.srcnode,
                    "REQ_CALL from node {pnn} names no node of this cluster as its asker; dropped"
                );
                Vec::new()
            }
            Some(
                Operation::ReqCall
                | Operation::ReplyCall
                | Operation::ReqDmaster
                | Operation::ReplyDmaster
                | Operation::ReplyError,
            ) => vec![Action::Component {
                owner: Owner::Db,
                envelope: Envelope {
                    client: 0,
                    from_node: pnn,
                    packet: frame.bytes.clone(),
                    trace: 0,
                },
                hold: false,
                otherwise: None,
            }],
            _ => {
                warn!(
                    peer = pnn,
                    operation = header.operation,
                    "unexpected operation from node {pnn}"
                );
                Vec::new()
            }
        }
    }

    /// Routes what component `owner` sent: a reply to a local client (envelope client
    /// non-zero), or a node-level packet by its destnode, to other nodes over the mesh
    /// and to this node through the loopback.
    pub(crate) fn component_packet(
        &self,
        view: &dyn View,
        owner: Owner,
        envelope: Envelope,
    ) -> Vec<Action> {
        let mut actions = Vec::with_capacity(1);
        if envelope.client != 0 {
            actions.push(self.for_client(envelope.client, &envelope.packet[..]));
            return actions;
        }
        let frame = match Frame::new(envelope.packet, self.max_packet_len) {
            Ok(f) => f,
            Err(e) => {
                warn!(
                    component = owner.name(),
                    "bad packet from {}: {e}",
                    owner.name()
                );
                return actions;
            }
        };
        let header = frame.header;
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqControl) => {
                let flags = match frame.packet() {
                    Ok(Packet {
                        body: Body::ReqControl(c),
                        ..
                    }) => c.flags,
                    _ => {
                        warn!(
                            component = owner.name(),
                            "bad control from {}",
                            owner.name()
                        );
                        return actions;
                    }
                };
                let asker = Asker::Component {
                    owner,
                    reqid: header.reqid,
                };
                let targets = self.targets(view, header.destnode);
                if targets.is_empty() && !is_noreply(flags) {
                    actions.push(self.answer_error(view, asker, self.pnn, "no node to send to"));
                }
                for pnn in targets {
                    self.forward_control(view, asker, flags, &frame.bytes, pnn, &mut actions);
                }
            }
            Some(Operation::ReqMessage) => {
                actions.extend(self.send_message(view, frame, &|| owner.name().to_string()))
            }
            op => {
                // A REQ_CALL db sends on keeps its asker's srcnode, as CTDB's lmaster
                // does: the dmaster migrates the record to the asker directly.
                let keep_srcnode = op == Some(Operation::ReqCall);
                for pnn in self.targets(view, header.destnode) {
                    let mut p = BytesMut::from(&frame.bytes[..]);
                    if !keep_srcnode {
                        patch(&mut p, SRCNODE, self.pnn);
                    }
                    if dest::is_broadcast(header.destnode) {
                        patch(&mut p, DESTNODE, pnn);
                    }
                    actions.push(Action::Node {
                        pnn,
                        packet: p.freeze(),
                        forwarded: None,
                    });
                }
            }
        }
        actions
    }

    /// A control for this node from `client`: to transport's own handler or to its
    /// owner (held while the owner restarts), or an error when nobody serves it.
    fn route_control(
        &self,
        view: &dyn View,
        client: u64,
        header: &Header,
        control: ReqControl,
        bytes: &Bytes,
        actions: &mut Vec<Action>,
    ) {
        match view.route(control.opcode, &control.data) {
            Ok(Owner::Transport) => actions.push(Action::Control {
                client,
                header: *header,
                control,
            }),
            Ok(owner) => {
                let msg = format!("{} is not available for {}", owner.name(), control.opcode);
                let otherwise = self
                    .control_error(view, client, header, control.flags, &msg)
                    .map(Box::new);
                actions.push(Action::Observe(control.opcode));
                actions.push(Action::Component {
                    owner,
                    envelope: Envelope {
                        client,
                        from_node: u32::MAX,
                        packet: bytes.clone(),
                        trace: 0,
                    },
                    hold: true,
                    otherwise,
                });
            }
            Err(why) => {
                actions.extend(self.control_error(view, client, header, control.flags, &why))
            }
        }
    }
}

#[cfg(test)]
mod tests;
