//! The router: where each packet goes, by who sent it and its destnode.
//!
//! Routing by destnode, for what clients send and for the node-level packets the
//! components send back (envelope client 0):
//!
//! - this node (or `CURRENT_NODE`): handled here, or by the owning component;
//! - another pnn: over the node mesh ([`peers`]). A control leaves under a reqid of
//!   transport's own, srcnode = this node and (from a client) `client_id` filled in;
//!   its REPLY_CONTROL comes back through the [`forward`] table and reaches the asker
//!   under its own reqid (a client's with destnode 0 and srcnode = this node, as
//!   Samba's). A control for a disconnected or unknown node, one whose node
//!   disconnects while it waits, or one unanswered after ControlTimeout, gets an
//!   error reply (status -1, the message naming the node);
//! - a broadcast (`routing::targets`): each target, this node included. A broadcast
//!   control without NOREPLY gets every node's reply, each under the asker's reqid
//!   (Samba's semantics: most askers only wait for one, so they use NOREPLY);
//! - from a peer: controls to their owner (the reply goes back to that node with
//!   destnode = its pnn and the original reqid), replies to the forward table,
//!   REQ_MESSAGE to the local clients of its srvid, call/dmaster packets to db with
//!   `from_node` = the peer, keepalives are counted.
//!
//! A node-level packet for this node itself (db's REQ_CALL to its own lmaster role, a
//! component's control broadcast) goes round the loopback and is handled as if a peer
//! had sent it, with `from_node` = this node's pnn.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ctdb_protocol::flags::dest;
use ctdb_protocol::packet::{Header, Operation, HEADER_SIZE};
use ctdb_protocol::{Body, Frame, Packet, ReplyControl, ReplyError};
use ctdb_rpc::Envelope;
use tracing::{debug, info, warn};

use crate::forward::{Asker, ForwardTable};
use crate::links::Deliver;
use crate::routing::{self, Owner};
use crate::{controls, Node};

/// Client ids at and above this stand for another node that sent us a request: a
/// reply "to the client" goes back to that node.
pub(crate) const NODE_ORIGIN: u64 = u64::MAX - 0xFFFF_FFFF;

pub(crate) fn node_origin(pnn: u32) -> u64 {
    NODE_ORIGIN + u64::from(pnn)
}

/// Header field offsets (`struct ctdb_req_header`) and the control's `client_id`.
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

impl Node {
    pub(crate) fn is_local(&self, destnode: u32) -> bool {
        destnode == dest::CURRENT_NODE || destnode == self.pnn
    }

    /// Whether `pnn` is this node or a node of the nodes file.
    pub(crate) fn is_node(&self, pnn: u32) -> bool {
        pnn == self.pnn || self.mesh.peer(pnn).is_some()
    }

    /// The nodes a packet for `destnode` goes to, this one included where it is one.
    pub(crate) fn targets(&self, destnode: u32) -> Vec<u32> {
        if self.is_local(destnode) {
            return vec![self.pnn];
        }
        if !dest::is_broadcast(destnode) {
            return vec![destnode];
        }
        routing::targets(destnode, self.pnn, &self.state().flags)
    }

    /// Sends a packet to a local client, as ctdbd does: destnode 0, srcnode = this node.
    /// A node-origin "client" gets it over the mesh instead (destnode = that node).
    pub(crate) fn to_client(&self, client: u64, mut packet: Vec<u8>) {
        if client >= NODE_ORIGIN {
            let pnn = (client - NODE_ORIGIN) as u32;
            patch(&mut packet, DESTNODE, pnn);
            patch(&mut packet, SRCNODE, self.pnn);
            self.send_to_node(pnn, Bytes::from(packet));
            return;
        }
        patch(&mut packet, DESTNODE, 0);
        patch(&mut packet, SRCNODE, self.pnn);
        self.stats
            .client_packets_sent
            .fetch_add(1, Ordering::Relaxed);
        self.clients.send(client, Bytes::from(packet));
    }

    /// A REPLY_CONTROL for the request `req`, to the client `client`.
    pub(crate) fn reply_control(&self, client: u64, req: &Header, reply: ReplyControl) {
        let generation = self.state().generation;
        let packet = Packet {
            generation,
            destnode: req.srcnode,
            srcnode: self.pnn,
            reqid: req.reqid,
            body: Body::ReplyControl(reply),
        };
        self.to_client(client, packet.to_bytes());
    }

    pub(crate) fn control_error(&self, client: u64, req: &Header, flags: u32, msg: &str) {
        if !is_noreply(flags) {
            self.reply_control(client, req, ReplyControl::error(-1, msg));
        }
    }

    /// Routes one packet from local client `client`.
    pub(crate) fn from_client(self: &Arc<Self>, client: u64, frame: Frame) {
        self.stats
            .client_packets_recv
            .fetch_add(1, Ordering::Relaxed);
        let header = frame.header;
        let _span = tracing::debug_span!(
            "client packet",
            client,
            reqid = header.reqid,
            operation = header.operation
        )
        .entered();
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqControl) => {
                self.stats
                    .client_req_control
                    .fetch_add(1, Ordering::Relaxed);
                let packet = match frame.packet() {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(client, "bad control packet: {e}");
                        self.reply_control(
                            client,
                            &header,
                            ReplyControl::error(-1, &e.to_string()),
                        );
                        return;
                    }
                };
                let Body::ReqControl(control) = packet.body else {
                    return;
                };
                let targets = self.targets(header.destnode);
                if targets.is_empty() {
                    self.control_error(client, &header, control.flags, "no node to send to");
                }
                for pnn in targets {
                    if pnn == self.pnn {
                        self.route_control(client, &header, control.clone(), frame.bytes.clone());
                    } else {
                        let asker = Asker::Client {
                            client,
                            reqid: header.reqid,
                            srcnode: header.srcnode,
                        };
                        self.forward_control(asker, control.flags, &frame.bytes, pnn);
                    }
                }
            }
            Some(Operation::ReqCall) => {
                self.stats.client_req_call.fetch_add(1, Ordering::Relaxed);
                if !self.send_to(Owner::Db, client, frame.bytes) {
                    let err = Packet {
                        generation: self.state().generation,
                        destnode: header.srcnode,
                        srcnode: self.pnn,
                        reqid: header.reqid,
                        body: Body::ReplyError(ReplyError::new(
                            u32::MAX,
                            "database component is not available",
                        )),
                    };
                    self.to_client(client, err.to_bytes());
                }
            }
            Some(Operation::ReqMessage) => {
                self.stats
                    .client_req_message
                    .fetch_add(1, Ordering::Relaxed);
                self.send_message(frame, &|| format!("client {client}"));
            }
            _ => warn!(
                client,
                operation = header.operation,
                "clients may not send this operation; dropped"
            ),
        }
    }

    /// Sends a REQ_MESSAGE (from a client or a component of this node) to the node(s)
    /// of its destnode; the local part goes to this node's clients.
    pub(crate) fn send_message(&self, frame: Frame, from: &dyn Fn() -> String) {
        let srvid = match frame.packet() {
            Ok(Packet {
                body: Body::ReqMessage(m),
                ..
            }) => m.srvid,
            Ok(_) => return,
            Err(e) => {
                warn!("bad message packet from {}: {e}", from());
                return;
            }
        };
        for pnn in self.targets(frame.header.destnode) {
            if pnn == self.pnn {
                self.deliver_message(srvid, &frame.bytes);
            } else {
                let mut p = frame.bytes.to_vec();
                patch(&mut p, DESTNODE, pnn);
                patch(&mut p, SRCNODE, self.pnn);
                self.send_to_node(pnn, Bytes::from(p));
            }
        }
    }

    /// Delivers a REQ_MESSAGE to the local clients registered for `srvid`.
    pub(crate) fn deliver_message(&self, srvid: u64, packet: &[u8]) {
        let mut packet = BytesMut::from(packet);
        patch(&mut packet, DESTNODE, self.pnn);
        let n = self.clients.deliver(srvid, &packet.freeze());
        debug!(srvid = format_args!("{srvid:#x}"), delivered = n, "message");
    }

    /// Queues a packet for node `pnn` (this node: the loopback); false when it cannot
    /// go now.
    pub(crate) fn send_to_node(&self, pnn: u32, packet: Bytes) -> bool {
        if pnn == self.pnn {
            return match self.loopback.send(packet) {
                Ok(()) => true,
                Err(e) => {
                    if matches!(e, ctdb_rpc::queue::Refused::Full(_)) {
                        warn!("the loopback is full: packet to this node dropped");
                    }
                    false
                }
            };
        }
        let sent = self.mesh.send(pnn, packet);
        if sent {
            self.stats.node_packets_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            debug!(peer = pnn, "node {pnn} is not connected; packet dropped");
        }
        sent
    }

    pub(crate) fn forwarded(&self) -> MutexGuard<'_, ForwardTable> {
        self.forwarded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a control (the whole packet, `bytes`) to node `pnn` under a reqid of our
    /// own, with srcnode = this node; its reply finds `asker` again through the
    /// forwarded table. A control that needs a reply and cannot go gets an error.
    pub(crate) fn forward_control(&self, asker: Asker, flags: u32, bytes: &[u8], pnn: u32) {
        let reachable = pnn == self.pnn || self.mesh.is_connected(pnn);
        if !reachable {
            if !is_noreply(flags) {
                let why = if self.mesh.peer(pnn).is_some() {
                    format!("node {pnn} is disconnected")
                } else {
                    format!("node {pnn} is not a node of this cluster")
                };
                self.answer_error(asker, pnn, &why);
            }
            return;
        }
        let mut packet = bytes.to_vec();
        patch(&mut packet, DESTNODE, pnn);
        patch(&mut packet, SRCNODE, self.pnn);
        if let Asker::Client { client, .. } = asker {
            // Samba fills in the daemon's id for the client when it forwards.
            patch(&mut packet, CLIENT_ID, client as u32);
        }
        if is_noreply(flags) {
            self.send_to_node(pnn, Bytes::from(packet));
            return;
        }
        let timeout = u64::from(self.state().tunables.control_timeout().max(1));
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let reqid = self.forwarded().insert(asker, pnn, deadline);
        patch(&mut packet, REQID, reqid);
        if !self.send_to_node(pnn, Bytes::from(packet)) && self.forwarded().cancel(reqid).is_some()
        {
            self.answer_error(asker, pnn, &format!("node {pnn} is disconnected"));
        }
    }

    /// Hands the REPLY_CONTROL `packet` from node `pnn` back to whoever asked.
    pub(crate) fn answer(&self, asker: Asker, pnn: u32, mut packet: Vec<u8>) {
        patch(&mut packet, REQID, asker.reqid());
        match asker {
            Asker::Client { client, .. } => self.to_client(client, packet),
            Asker::Component { owner, .. } => {
                let sent = self.link(owner).is_some_and(|link| {
                    link.send(Envelope {
                        client: 0,
                        from_node: pnn,
                        packet,
                    })
                });
                if !sent {
                    debug!(
                        component = owner.name(),
                        "control reply for a component that is down"
                    );
                }
            }
        }
    }

    /// Answers a forwarded control with an error, as from node `pnn`.
    pub(crate) fn answer_error(&self, asker: Asker, pnn: u32, msg: &str) {
        let destnode = match asker {
            Asker::Client { srcnode, .. } => srcnode,
            Asker::Component { .. } => self.pnn,
        };
        let packet = Packet {
            generation: self.state().generation,
            destnode,
            srcnode: pnn,
            reqid: asker.reqid(),
            body: Body::ReplyControl(ReplyControl::error(-1, msg)),
        };
        self.answer(asker, pnn, packet.to_bytes());
    }

    /// Node `pnn` went away: what waited for it gets an error now.
    pub(crate) fn node_lost(&self, pnn: u32) {
        let lost = self.forwarded().fail_node(pnn);
        for p in lost {
            self.answer_error(p.asker, pnn, &format!("node {pnn} disconnected"));
        }
        self.ask_for_recovery(pnn);
    }

    /// Packets to or from node `pnn` may have been lost with its connection (a record
    /// migration half done): this node enters recovery mode (SET_RECMODE to its
    /// database component, as a failed commit round does), so that the leader runs a
    /// recovery, which puts every record's copies right — even when the connection is
    /// back before the leader's next look at the node map (a restarted transport
    /// reconnects within a fraction of a second).
    fn ask_for_recovery(&self, pnn: u32) {
        let packet = ctdb_protocol::Packet {
            generation: ctdb_protocol::flags::INVALID_GENERATION,
            destnode: self.pnn,
            srcnode: self.pnn,
            reqid: 0,
            body: ctdb_protocol::Body::ReqControl(ctdb_protocol::ReqControl {
                opcode: ctdb_protocol::Opcode::SetRecmode,
                srvid: 0,
                client_id: 0,
                flags: ctdb_protocol::flags::control::NOREPLY,
                data: Bytes::from(ctdb_protocol::Wire::to_bytes(
                    &ctdb_protocol::flags::recmode::ACTIVE,
                )),
            }),
        };
        if self.to_component(Owner::Db, self.pnn, Bytes::from(packet.to_bytes())) {
            info!(
                peer = pnn,
                "connection to node {pnn} lost: asking for a recovery"
            );
        }
    }

    /// Controls whose reply did not come within ControlTimeout get an error.
    pub(crate) fn expire_forwarded(&self) {
        let expired = self.forwarded().expire(Instant::now());
        for p in expired {
            warn!(peer = p.pnn, "control to node {} timed out", p.pnn);
            self.answer_error(
                p.asker,
                p.pnn,
                &format!("control to node {} timed out", p.pnn),
            );
        }
    }

    /// Routes one packet from node `pnn` (this node's own pnn: the loopback).
    pub(crate) fn from_peer(self: &Arc<Self>, pnn: u32, frame: Frame) {
        if pnn != self.pnn {
            self.stats.node_packets_recv.fetch_add(1, Ordering::Relaxed);
        }
        let header = frame.header;
        match Operation::from_u32(header.operation) {
            Some(Operation::ReqKeepalive) => {
                self.stats
                    .keepalive_packets_recv
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some(Operation::ReqControl) => match frame.packet() {
                Ok(Packet {
                    body: Body::ReqControl(control),
                    ..
                }) => {
                    let origin = node_origin(pnn);
                    match routing::route(control.opcode, &control.data) {
                        Ok(Owner::Transport) => controls::handle(self, origin, &header, control),
                        Ok(owner) => {
                            controls::observe(self, &control);
                            // Held while the component restarts, as a local client's
                            // are: a leader's recovery step is not failed (and this
                            // node not blamed) for a component that is back in a moment.
                            let held = self.link(owner).is_some_and(|link| {
                                link.send_or_hold(Envelope {
                                    client: 0,
                                    from_node: pnn,
                                    packet: frame.bytes.to_vec(),
                                })
                            });
                            if !held {
                                self.control_error(
                                    origin,
                                    &header,
                                    control.flags,
                                    &format!("{} is not available", owner.name()),
                                );
                            }
                        }
                        Err(why) => self.control_error(origin, &header, control.flags, &why),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(peer = pnn, "bad control from node {pnn}: {e}");
                    self.control_error(node_origin(pnn), &header, 0, &e.to_string());
                }
            },
            Some(Operation::ReplyControl) => {
                let Some(pending) = self.forwarded().take(header.reqid, pnn) else {
                    debug!(
                        peer = pnn,
                        reqid = header.reqid,
                        "late or unknown control reply"
                    );
                    return;
                };
                match frame.packet() {
                    Ok(Packet {
                        body: Body::ReplyControl(_),
                        ..
                    }) => self.answer(pending.asker, pnn, frame.bytes.to_vec()),
                    _ => self.answer_error(pending.asker, pnn, "malformed reply from node"),
                }
            }
            Some(Operation::ReqMessage) => match frame.packet() {
                Ok(Packet {
                    body: Body::ReqMessage(m),
                    ..
                }) => self.deliver_message(m.srvid, &frame.bytes),
                _ => warn!(peer = pnn, "bad message from node {pnn}"),
            },
            Some(Operation::ReqCall) if !self.is_node(header.srcnode) => {
                // A call sent on keeps its asker's srcnode: the record goes there.
                warn!(
                    peer = pnn,
                    srcnode = header.srcnode,
                    "REQ_CALL from node {pnn} names no node of this cluster as its asker; dropped"
                );
            }
            Some(
                Operation::ReqCall
                | Operation::ReplyCall
                | Operation::ReqDmaster
                | Operation::ReplyDmaster
                | Operation::ReplyError,
            ) => {
                if !self.to_component(Owner::Db, pnn, frame.bytes) {
                    debug!(peer = pnn, "database component down; call packet dropped");
                }
            }
            _ => warn!(
                peer = pnn,
                operation = header.operation,
                "unexpected operation from node {pnn}"
            ),
        }
    }

    /// Hands a node-level packet from node `pnn` to component `owner`.
    pub(crate) fn to_component(&self, owner: Owner, pnn: u32, packet: Bytes) -> bool {
        self.link(owner).is_some_and(|link| {
            link.send(Envelope {
                client: 0,
                from_node: pnn,
                packet: packet.to_vec(),
            })
        })
    }

    /// Routes a node-level packet a component sent (envelope client 0) by its
    /// destnode: to other nodes over the mesh, to this node through the loopback.
    pub(crate) fn route_from_component(&self, owner: Owner, packet: Vec<u8>) {
        let frame = match Frame::new(Bytes::from(packet), self.max_packet_len) {
            Ok(f) => f,
            Err(e) => {
                warn!(
                    component = owner.name(),
                    "bad packet from {}: {e}",
                    owner.name()
                );
                return;
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
                        return;
                    }
                };
                let asker = Asker::Component {
                    owner,
                    reqid: header.reqid,
                };
                let targets = self.targets(header.destnode);
                if targets.is_empty() && !is_noreply(flags) {
                    self.answer_error(asker, self.pnn, "no node to send to");
                }
                for pnn in targets {
                    self.forward_control(asker, flags, &frame.bytes, pnn);
                }
            }
            Some(Operation::ReqMessage) => self.send_message(frame, &|| owner.name().to_string()),
            op => {
                // A REQ_CALL db sends on keeps its asker's srcnode, as CTDB's lmaster
                // does: the dmaster migrates the record to the asker directly.
                let keep_srcnode = op == Some(Operation::ReqCall);
                for pnn in self.targets(header.destnode) {
                    let mut p = frame.bytes.to_vec();
                    if !keep_srcnode {
                        patch(&mut p, SRCNODE, self.pnn);
                    }
                    if dest::is_broadcast(header.destnode) {
                        patch(&mut p, DESTNODE, pnn);
                    }
                    self.send_to_node(pnn, Bytes::from(p));
                }
            }
        }
    }

    /// Hands a local client's packet to `owner`, held while it restarts.
    pub(crate) fn send_to(&self, owner: Owner, client: u64, packet: Bytes) -> bool {
        self.link(owner).is_some_and(|link| {
            link.send_or_hold(Envelope {
                client,
                from_node: u32::MAX,
                packet: packet.to_vec(),
            })
        })
    }

    pub(crate) fn route_control(
        self: &Arc<Self>,
        client: u64,
        header: &Header,
        control: ctdb_protocol::ReqControl,
        bytes: Bytes,
    ) {
        match routing::route(control.opcode, &control.data) {
            Ok(Owner::Transport) => controls::handle(self, client, header, control),
            Ok(owner) => {
                controls::observe(self, &control);
                if !self.send_to(owner, client, bytes) {
                    self.control_error(
                        client,
                        header,
                        control.flags,
                        &format!("{} is not available for {}", owner.name(), control.opcode),
                    );
                }
            }
            Err(why) => self.control_error(client, header, control.flags, &why),
        }
    }
}

impl Deliver for Node {
    fn deliver_from(&self, owner: Owner, envelope: Envelope) {
        if owner == Owner::Db && envelope.packet.len() >= HEADER_SIZE {
            if let Ok(h) = Header::parse(&envelope.packet, u32::MAX) {
                self.state().generation = h.generation;
            }
        }
        if envelope.client != 0 {
            self.to_client(envelope.client, envelope.packet);
        } else {
            self.route_from_component(owner, envelope.packet);
        }
    }
}
