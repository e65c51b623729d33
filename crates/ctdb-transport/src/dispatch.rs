//! Carries the [`Router`]'s actions out: the one place where a routed packet meets a
//! socket (a client's, the mesh's, a component's link) or transport's own handlers.
//! The connections call in here with each frame they read.
//!
//! Every request read from a client or a node gets a trace id ([`ctdb_rpc::trace`])
//! and is routed inside a `request` span (debug level) that names it with the
//! client or srcnode, the reqid, the operation and the database: the envelopes it
//! becomes carry the id to the component, whose span for the packet shows it too, and
//! what the component sends back is routed inside a `component packet` span under the
//! same id. At trace level (`ctdb setdebug DEBUG`) one line per packet says where it
//! came from. With the level off a span costs a check of the level, no allocation.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, RwLockReadGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::packet::{Header, Operation};
use ctdb_protocol::{Frame, ReplyControl};
use ctdb_rpc::trace::TraceId;
use ctdb_rpc::Envelope;
use tracing::{debug, info, warn};

use crate::forward::ForwardTable;
use crate::router::{packet_db_id, stamp, Action, OpName, Router, View};
use crate::routing::{self, Owner, Routes};
use crate::{controls, Node};

impl View for Node {
    fn generation(&self) -> u32 {
        self.state().generation
    }

    fn broadcast_targets(&self, destnode: u32) -> Vec<u32> {
        routing::targets(destnode, self.pnn, &self.state().flags)
    }

    fn is_node(&self, pnn: u32) -> bool {
        pnn == self.pnn || self.mesh.is_peer(pnn)
    }

    fn is_connected(&self, pnn: u32) -> bool {
        self.mesh.is_connected(pnn)
    }

    fn control_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.state().tunables.control_timeout().max(1)))
    }

    fn forwarded(&self) -> MutexGuard<'_, ForwardTable> {
        self.forwarded_table()
    }

    fn routes(&self) -> RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Node {
    pub(crate) fn router(&self) -> Router {
        Router {
            pnn: self.pnn,
            max_packet_len: self.max_packet_len,
        }
    }

    /// A REPLY_CONTROL for the request `req`, to the client `client`.
    pub(crate) fn reply_control(self: &Arc<Self>, client: u64, req: &Header, reply: ReplyControl) {
        let action = self.router().reply_control(&**self, client, req, reply);
        self.carry_out(vec![action]);
    }

    /// Routes one packet from local client `client`.
    pub(crate) fn from_client(self: &Arc<Self>, client: u64, frame: Frame) {
        let stats = &self.stats;
        stats.client_packets_recv.fetch_add(1, Ordering::Relaxed);
        let header = frame.header;
        let trace = self.traces.next();
        let _span = tracing::debug_span!(
            "request",
            trace = %TraceId(trace),
            client,
            srcnode = header.srcnode,
            reqid = header.reqid,
            op = %OpName(&frame.bytes),
            db_id = packet_db_id(&frame.bytes),
        )
        .entered();
        tracing::trace!("from client {client}");
        let counter = match Operation::from_u32(header.operation) {
            Some(Operation::ReqControl) => Some(&stats.client_req_control),
            Some(Operation::ReqCall) => Some(&stats.client_req_call),
            Some(Operation::ReqMessage) => Some(&stats.client_req_message),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let mut actions = self.router().client_packet(&**self, client, frame);
        stamp(&mut actions, trace);
        self.carry_out(actions);
    }

    /// Routes one packet from node `pnn` (this node's own pnn: the loopback).
    pub(crate) fn from_peer(self: &Arc<Self>, pnn: u32, frame: Frame) {
        if pnn != self.pnn {
            self.stats.node_packets_recv.fetch_add(1, Ordering::Relaxed);
        }
        if frame.header.operation == Operation::ReqKeepalive as u32 {
            self.stats
                .keepalive_packets_recv
                .fetch_add(1, Ordering::Relaxed);
            let actions = self.router().peer_packet(&**self, pnn, frame);
            return self.carry_out(actions);
        }
        let header = frame.header;
        let trace = self.traces.next();
        let _span = tracing::debug_span!(
            "request",
            trace = %TraceId(trace),
            node = pnn,
            srcnode = header.srcnode,
            reqid = header.reqid,
            op = %OpName(&frame.bytes),
            db_id = packet_db_id(&frame.bytes),
        )
        .entered();
        tracing::trace!("from node {pnn}");
        let mut actions = self.router().peer_packet(&**self, pnn, frame);
        stamp(&mut actions, trace);
        self.carry_out(actions);
    }

    /// Routes what component `owner` sent, under the trace id of the request it
    /// answers (or of the packet whose handling sent it).
    pub(crate) fn from_component(self: &Arc<Self>, owner: Owner, envelope: Envelope) {
        let _span = tracing::debug_span!(
            "component packet",
            trace = %TraceId(envelope.trace),
            component = owner.name(),
            client = envelope.client,
            reqid = crate::router::reqid_of(&envelope.packet),
            op = %OpName(&envelope.packet),
            db_id = packet_db_id(&envelope.packet),
        )
        .entered();
        tracing::trace!(
            "from {}, to {}",
            owner.name(),
            if envelope.client == 0 {
                "its destnode"
            } else {
                "the client"
            }
        );
        let actions = self.router().component_packet(&**self, owner, envelope);
        self.carry_out(actions);
    }

    /// Node `pnn` went away: what waited for it gets an error now, and this node asks
    /// for a recovery (see [`Router::node_lost`]).
    pub(crate) fn node_lost(&self, pnn: u32) {
        let actions = self.router().node_lost(self, pnn);
        if actions.iter().any(|a| {
            matches!(
                a,
                Action::Component {
                    owner: Owner::Db,
                    ..
                }
            )
        }) && self.link(Owner::Db).is_some()
        {
            info!(
                peer = pnn,
                "connection to node {pnn} lost: asking for a recovery"
            );
        }
        self.carry(actions, None);
    }

    fn waits(&self) -> MutexGuard<'_, crate::component_waits::ComponentWaits<Action>> {
        self.component_waits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `owner` sent `envelope`: if it answers a control, that control no longer waits.
    pub(crate) fn component_answered(&self, owner: Owner, envelope: &Envelope) {
        let Ok(header) = Header::parse(&envelope.packet, u32::MAX) else {
            return;
        };
        if header.operation != Operation::ReplyControl as u32 {
            return;
        }
        let origin = match envelope.client {
            0 => crate::router::node_origin(header.destnode),
            client => client,
        };
        self.waits().answered(owner, origin, header.reqid);
    }

    /// `owner`'s process went away: the controls it had not answered get their error.
    pub(crate) fn component_lost(&self, owner: Owner) {
        let lost = self.waits().lost(owner);
        if !lost.is_empty() {
            warn!(
                component = owner.name(),
                controls = lost.len(),
                "the component went away before answering: its askers get an error"
            );
            self.carry(lost, None);
        }
    }

    /// Controls whose reply did not come within ControlTimeout get an error.
    pub(crate) fn expire_forwarded(&self) {
        let actions = self.router().expire(self, Instant::now());
        self.carry(actions, None);
    }

    pub(crate) fn forwarded_table(&self) -> MutexGuard<'_, ForwardTable> {
        self.forwarded.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Does what the router asked, in order.
    pub(crate) fn carry_out(self: &Arc<Self>, actions: Vec<Action>) {
        self.carry(actions, Some(self));
    }

    /// As [`carry_out`](Self::carry_out); `this` runs transport's own controls, which
    /// only the routes of client and peer packets ask for.
    fn carry(&self, actions: Vec<Action>, this: Option<&Arc<Self>>) {
        for action in actions {
            self.carry_one(action, this);
        }
    }

    fn carry_one(&self, action: Action, this: Option<&Arc<Self>>) {
        match action {
            Action::Client { client, packet } => {
                self.stats
                    .client_packets_sent
                    .fetch_add(1, Ordering::Relaxed);
                self.clients.send(client, packet);
            }
            Action::Node {
                pnn,
                packet,
                forwarded,
            } => {
                if !self.send_to_node(pnn, packet) {
                    if let Some(reqid) = forwarded {
                        let error = self.router().not_sent(self, reqid, pnn);
                        self.carry(error.into_iter().collect(), this);
                    }
                }
            }
            Action::Component {
                owner,
                envelope,
                hold,
                otherwise,
            } => {
                let control = control_asker(&envelope);
                let sent = self.link(owner).is_some_and(|link| {
                    if hold {
                        link.send_or_hold(envelope)
                    } else {
                        link.send(envelope)
                    }
                });
                if sent {
                    // Its asker hears at once if the component dies before answering.
                    if let (Some((origin, reqid)), Some(instead)) = (control, otherwise) {
                        self.waits().handed(owner, origin, reqid, *instead);
                    }
                } else {
                    match otherwise {
                        Some(instead) => self.carry_one(*instead, this),
                        None => debug!(
                            component = owner.name(),
                            "{} is down: packet dropped",
                            owner.name()
                        ),
                    }
                }
            }
            Action::Message { srvid, packet } => {
                let n = self.clients.deliver(srvid, &packet);
                debug!(srvid = format_args!("{srvid:#x}"), delivered = n, "message");
            }
            Action::Control {
                client,
                header,
                control,
            } => match this {
                Some(node) => controls::handle(node, client, &header, control),
                None => warn!(opcode = %control.opcode, "a control to answer where none can be"),
            },
            Action::Observe(opcode) => controls::observe(self, opcode),
        }
    }
}

impl Node {
    /// Component `owner`'s connection came up and it declared what it serves (`None`:
    /// it did not say): controls are routed by that from now on.
    pub(crate) fn declared(&self, owner: Owner, ownership: Option<ctdb_rpc::Ownership>) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        match ownership {
            Some(ownership) => {
                let controls = ownership.controls.len();
                let opcodes = ownership
                    .controls
                    .into_iter()
                    .map(ctdb_protocol::Opcode::from_u32);
                let conflicts = routes.declare(owner, opcodes);
                Routes::log_declaration(owner, controls, &conflicts);
            }
            None => {
                warn!(
                    component = owner.name(),
                    "component did not declare its controls: routing to it by the table"
                );
                routes.forget(owner);
            }
        }
    }

    /// A component published its state (`WatchState`): ctdb-db's generation is the
    /// generation of the packets transport makes itself.
    pub(crate) fn state_changed(&self, owner: Owner, state: ctdb_rpc::ComponentState) {
        if owner == Owner::Db {
            self.state().generation = state.generation;
        }
    }
}

/// For a control sent to a component: who asked (a local client, or
/// [`crate::router::node_origin`] of the node it came from) and under which reqid.
fn control_asker(envelope: &Envelope) -> Option<(u64, u32)> {
    let header = Header::parse(&envelope.packet, u32::MAX).ok()?;
    if header.operation != Operation::ReqControl as u32 {
        return None;
    }
    let origin = match envelope.client {
        0 => crate::router::node_origin(envelope.from_node),
        client => client,
    };
    Some((origin, header.reqid))
}
