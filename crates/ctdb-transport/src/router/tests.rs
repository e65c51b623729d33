//! One test per route of the [`Router`], on a node 0 of four: node 1 connected, node 2
//! disconnected, node 3 connected but BANNED; no node 4.

use std::sync::{Mutex, RwLock};

use ctdb_protocol::flags::{control::NOREPLY, node as node_flags};
use ctdb_protocol::{Keepalive, ReplyCall, ReplyDmaster, ReqCall, ReqMessage};

use super::*;
use crate::routing;

const ME: u32 = 0;
const GEN: u32 = 0x1234;
const CLIENT: u64 = 7;

struct FakeView {
    flags: Vec<u32>,
    forwarded: Mutex<ForwardTable>,
    routes: RwLock<Routes>,
}

impl FakeView {
    fn new() -> Self {
        Self {
            flags: vec![0, 0, node_flags::DISCONNECTED, node_flags::BANNED],
            forwarded: Mutex::new(ForwardTable::default()),
            routes: RwLock::new(Routes::default()),
        }
    }

    fn waiting(&self) -> usize {
        self.forwarded.lock().unwrap().len()
    }
}

impl View for FakeView {
    fn generation(&self) -> u32 {
        GEN
    }
    fn broadcast_targets(&self, destnode: u32) -> Vec<u32> {
        routing::targets(destnode, ME, &self.flags)
    }
    fn is_node(&self, pnn: u32) -> bool {
        (pnn as usize) < self.flags.len()
    }
    fn is_connected(&self, pnn: u32) -> bool {
        self.is_node(pnn) && pnn != ME && self.flags[pnn as usize] & node_flags::DISCONNECTED == 0
    }
    fn control_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn forwarded(&self) -> MutexGuard<'_, ForwardTable> {
        self.forwarded.lock().unwrap()
    }
    fn routes(&self) -> RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap()
    }
}

fn router() -> Router {
    Router {
        pnn: ME,
        max_packet_len: 1 << 20,
    }
}

fn frame(p: Packet) -> Frame {
    Frame::new(Bytes::from(p.to_bytes()), 1 << 20).unwrap()
}

fn packet(destnode: u32, srcnode: u32, reqid: u32, body: Body) -> Packet {
    Packet {
        generation: GEN,
        destnode,
        srcnode,
        reqid,
        body,
    }
}

fn control(opcode: Opcode, flags: u32) -> Body {
    Body::ReqControl(ReqControl {
        opcode,
        srvid: 0,
        client_id: 0,
        flags,
        data: Bytes::new(),
    })
}

fn call(key: &[u8]) -> Body {
    Body::ReqCall(ReqCall {
        flags: 0,
        db_id: 1,
        callid: 0,
        hopcount: 0,
        key: Bytes::copy_from_slice(key),
        calldata: Bytes::new(),
    })
}

fn message(srvid: u64) -> Body {
    Body::ReqMessage(ReqMessage {
        srvid,
        data: Bytes::from_static(b"hi"),
    })
}

fn decode(bytes: &[u8]) -> Packet {
    Packet::from_slice(bytes).unwrap()
}

/// The error message of a REPLY_CONTROL with status -1.
fn control_error(p: &Packet) -> String {
    match &p.body {
        Body::ReplyControl(r) => {
            assert_eq!(r.status, -1, "{r:?}");
            r.error_message().unwrap_or_default()
        }
        other => panic!("expected REPLY_CONTROL, got {other:?}"),
    }
}

/// The one action, which must be a packet for local client `client`.
fn to_client(actions: Vec<Action>, client: u64) -> Packet {
    match <[Action; 1]>::try_from(actions) {
        Ok([Action::Client { client: c, packet }]) => {
            assert_eq!(c, client);
            let p = decode(&packet);
            assert_eq!(
                (p.destnode, p.srcnode),
                (0, ME),
                "as ctdbd sends to clients"
            );
            p
        }
        other => panic!("expected one packet for client {client}, got {other:?}"),
    }
}

fn component(action: &Action) -> (Owner, &Envelope, bool, Option<&Action>) {
    match action {
        Action::Component {
            owner,
            envelope,
            hold,
            otherwise,
        } => (*owner, envelope, *hold, otherwise.as_deref()),
        other => panic!("expected a packet for a component, got {other:?}"),
    }
}

fn node(action: &Action) -> (u32, Packet, Option<u32>) {
    match action {
        Action::Node {
            pnn,
            packet,
            forwarded,
        } => (*pnn, decode(packet), *forwarded),
        other => panic!("expected a packet for a node, got {other:?}"),
    }
}

#[test]
fn a_clients_control_that_transport_owns_is_answered_by_transport() {
    let view = FakeView::new();
    let p = packet(dest::CURRENT_NODE, 0, 5, control(Opcode::Ping, 0));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    match &actions[..] {
        [Action::Control {
            client,
            header,
            control,
        }] => {
            assert_eq!(
                (*client, header.reqid, control.opcode),
                (CLIENT, 5, Opcode::Ping)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_clients_control_for_a_component_goes_to_it_held_with_an_error_otherwise() {
    let view = FakeView::new();
    let p = packet(ME, 0, 5, control(Opcode::GetDbmap, 0));
    let actions = router().client_packet(&view, CLIENT, frame(p.clone()));
    assert!(matches!(actions[0], Action::Observe(Opcode::GetDbmap)));
    let (owner, envelope, hold, otherwise) = component(&actions[1]);
    assert_eq!(
        (owner, envelope.client, envelope.from_node, hold),
        (Owner::Db, CLIENT, u32::MAX, true)
    );
    assert_eq!(envelope.packet, p.to_bytes());
    let Some(Action::Client {
        client,
        packet: bytes,
    }) = otherwise
    else {
        panic!("{otherwise:?}");
    };
    assert_eq!(*client, CLIENT);
    let error = decode(bytes);
    assert_eq!(error.reqid, 5);
    assert!(control_error(&error).contains("db is not available"));
    assert_eq!(actions.len(), 2);

    // NOREPLY: nothing instead.
    let p = packet(ME, 0, 6, control(Opcode::GetDbmap, NOREPLY));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    assert!(component(&actions[1]).3.is_none());
}

#[test]
fn a_clients_control_nobody_owns_gets_an_error() {
    let view = FakeView::new();
    let p = packet(ME, 0, 5, control(Opcode::SetDmaster, 0));
    let error = to_client(router().client_packet(&view, CLIENT, frame(p)), CLIENT);
    assert_eq!(error.reqid, 5);
    assert!(!control_error(&error).is_empty());
    let p = packet(ME, 0, 5, control(Opcode::SetDmaster, NOREPLY));
    assert!(router().client_packet(&view, CLIENT, frame(p)).is_empty());
}

/// The component a client's control for this node goes to, or transport's error.
fn routed(view: &FakeView, opcode: Opcode) -> Result<Owner, String> {
    let p = packet(ME, 0, 5, control(opcode, 0));
    let actions = router().client_packet(view, CLIENT, frame(p));
    match &actions[..] {
        [Action::Observe(_), Action::Component { owner, .. }] => Ok(*owner),
        [Action::Control { .. }] => Ok(Owner::Transport),
        _ => Err(control_error(&to_client(actions, CLIENT))),
    }
}

#[test]
fn a_control_goes_where_its_component_declared_it() {
    let view = FakeView::new();
    // Nobody declared yet: DESIGN's table, held for the component as before.
    assert_eq!(routed(&view, Opcode::GetIfaces), Ok(Owner::Recoverd));
    assert_eq!(routed(&view, Opcode::GetDbmap), Ok(Owner::Db));
    // Eventd declares GET_IFACES (a component restarted with another table): it goes
    // there from now on, and recoverd's declaration, made later, does not take it.
    view.routes
        .write()
        .unwrap()
        .declare(Owner::Eventd, [Opcode::GetIfaces, Opcode::GetMonmode]);
    let conflicts = view
        .routes
        .write()
        .unwrap()
        .declare(Owner::Recoverd, [Opcode::GetIfaces, Opcode::GetRecmaster]);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(routed(&view, Opcode::GetIfaces), Ok(Owner::Eventd));
    assert_eq!(routed(&view, Opcode::GetRecmaster), Ok(Owner::Recoverd));
    // Recoverd declared, without GET_PUBLIC_IPS: transport's error, nothing held.
    let why = routed(&view, Opcode::GetPublicIps).unwrap_err();
    assert!(why.contains("not served by ctdb-recoverd"), "{why}");
    // Db has not declared: still its table's.
    assert_eq!(routed(&view, Opcode::GetDbmap), Ok(Owner::Db));
    // Transport's own controls stay transport's whatever a component declares.
    view.routes
        .write()
        .unwrap()
        .declare(Owner::Db, [Opcode::Ping, Opcode::GetDbmap]);
    assert_eq!(routed(&view, Opcode::Ping), Ok(Owner::Transport));
    assert_eq!(routed(&view, Opcode::GetDbmap), Ok(Owner::Db));
    assert!(routed(&view, Opcode::Getdbpath).is_err());
}

#[test]
fn a_clients_bad_control_gets_an_error() {
    let view = FakeView::new();
    let mut bytes = packet(ME, 0, 5, control(Opcode::Ping, 0)).to_bytes();
    // A data length (after opcode, pad, srvid, client_id and flags) beyond the body.
    bytes[56..60].copy_from_slice(&1000u32.to_le_bytes());
    let f = Frame::new(Bytes::from(bytes), 1 << 20).unwrap();
    let error = to_client(router().client_packet(&view, CLIENT, f), CLIENT);
    assert_eq!(error.reqid, 5);
    assert!(!control_error(&error).is_empty());
}

#[test]
fn a_clients_control_for_another_node_leaves_under_our_reqid_and_its_reply_comes_back() {
    let view = FakeView::new();
    let p = packet(1, 0, 5, control(Opcode::GetDbmap, 0));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    let [ref action] = actions[..] else {
        panic!("{actions:?}")
    };
    let (pnn, out, forwarded) = node(action);
    assert_eq!((pnn, out.destnode, out.srcnode), (1, 1, ME));
    assert_eq!(forwarded, Some(out.reqid));
    let Body::ReqControl(c) = &out.body else {
        panic!("{out:?}")
    };
    assert_eq!(c.client_id, CLIENT as u32, "the daemon fills in the client");
    assert_eq!(view.waiting(), 1);

    // Node 1's reply, under our reqid, reaches the client under its own.
    let reply = packet(
        ME,
        1,
        out.reqid,
        Body::ReplyControl(ReplyControl {
            status: 0,
            data: Bytes::from_static(b"map"),
            errmsg: Bytes::new(),
        }),
    );
    // From the wrong node it is not the reply.
    assert!(router()
        .peer_packet(&view, 3, frame(reply.clone()))
        .is_empty());
    let back = to_client(router().peer_packet(&view, 1, frame(reply.clone())), CLIENT);
    assert_eq!(back.reqid, 5);
    assert!(matches!(&back.body, Body::ReplyControl(r) if &r.data[..] == b"map"));
    assert_eq!(view.waiting(), 0);
    // A second one is late.
    assert!(router().peer_packet(&view, 1, frame(reply)).is_empty());
}

#[test]
fn a_clients_control_for_a_node_that_cannot_get_it_gets_an_error() {
    let view = FakeView::new();
    for (pnn, why) in [
        (2, "node 2 is disconnected"),
        (4, "node 4 is not a node of this cluster"),
    ] {
        let p = packet(pnn, 0, 5, control(Opcode::GetDbmap, 0));
        let error = to_client(router().client_packet(&view, CLIENT, frame(p)), CLIENT);
        assert_eq!(control_error(&error), why);
        assert_eq!((error.reqid, error.srcnode), (5, ME));
        let p = packet(pnn, 0, 5, control(Opcode::GetDbmap, NOREPLY));
        assert!(router().client_packet(&view, CLIENT, frame(p)).is_empty());
    }
    assert_eq!(view.waiting(), 0);
}

#[test]
fn a_forwarded_control_that_cannot_go_after_all_gets_an_error() {
    let view = FakeView::new();
    let p = packet(1, 0, 5, control(Opcode::GetDbmap, 0));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    let (_, _, forwarded) = node(&actions[0]);
    let reqid = forwarded.unwrap();
    let error = router().not_sent(&view, reqid, 1).unwrap();
    let error = to_client(vec![error], CLIENT);
    assert_eq!(
        (error.reqid, control_error(&error)),
        (5, "node 1 is disconnected".into())
    );
    assert!(
        router().not_sent(&view, reqid, 1).is_none(),
        "answered once"
    );
}

#[test]
fn a_clients_broadcast_control_goes_to_every_target_this_node_included() {
    let view = FakeView::new();
    let p = packet(
        dest::BROADCAST_CONNECTED,
        0,
        5,
        control(Opcode::GetDbmap, 0),
    );
    let actions = router().client_packet(&view, CLIENT, frame(p));
    // Here (observed, to db), node 1 and node 3 (banned but connected); not node 2.
    assert_eq!(actions.len(), 4, "{actions:?}");
    assert_eq!(component(&actions[1]).0, Owner::Db);
    assert_eq!(node(&actions[2]).0, 1);
    assert_eq!(node(&actions[3]).0, 3);
    assert_eq!(view.waiting(), 2);
    // A broadcast nobody is in gets an error.
    let mut view = FakeView::new();
    view.flags = vec![node_flags::BANNED; 4];
    let p = packet(dest::BROADCAST_VNNMAP, 0, 5, control(Opcode::GetDbmap, 0));
    let error = to_client(router().client_packet(&view, CLIENT, frame(p)), CLIENT);
    assert_eq!(control_error(&error), "no node to send to");
}

#[test]
fn a_clients_call_goes_to_db_with_an_error_otherwise() {
    let view = FakeView::new();
    let p = packet(dest::CURRENT_NODE, 0, 9, call(b"k"));
    let actions = router().client_packet(&view, CLIENT, frame(p.clone()));
    let [ref action] = actions[..] else {
        panic!("{actions:?}")
    };
    let (owner, envelope, hold, otherwise) = component(action);
    assert_eq!((owner, envelope.client, hold), (Owner::Db, CLIENT, true));
    assert_eq!(envelope.packet, p.to_bytes());
    let Some(Action::Client {
        client,
        packet: bytes,
    }) = otherwise
    else {
        panic!("{otherwise:?}")
    };
    let error = decode(bytes);
    assert_eq!((*client, error.reqid, error.destnode), (CLIENT, 9, 0));
    assert!(matches!(error.body, Body::ReplyError(_)));
}

#[test]
fn a_clients_message_goes_to_local_clients_and_other_nodes() {
    let view = FakeView::new();
    let p = packet(ME, 0, 0, message(0x42));
    match &router().client_packet(&view, CLIENT, frame(p))[..] {
        [Action::Message { srvid, packet }] => {
            assert_eq!(*srvid, 0x42);
            assert_eq!(decode(packet).destnode, ME);
        }
        other => panic!("{other:?}"),
    }
    let p = packet(1, 0, 0, message(0x42));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    let (pnn, out, forwarded) = node(&actions[0]);
    assert_eq!(
        (pnn, out.destnode, out.srcnode, forwarded),
        (1, 1, ME, None)
    );
    let p = packet(dest::BROADCAST_CONNECTED, 0, 0, message(0x42));
    let actions = router().client_packet(&view, CLIENT, frame(p));
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(matches!(actions[0], Action::Message { srvid: 0x42, .. }));
    assert_eq!(node(&actions[1]).1.destnode, 1);
    assert_eq!(node(&actions[2]).1.destnode, 3);
}

#[test]
fn clients_may_not_send_node_packets() {
    let view = FakeView::new();
    let p = packet(ME, 0, 0, Body::ReplyCall(ReplyCall::default()));
    assert!(router().client_packet(&view, CLIENT, frame(p)).is_empty());
}

#[test]
fn a_peers_keepalive_is_only_counted() {
    let view = FakeView::new();
    let p = packet(ME, 1, 0, Body::Keepalive(Keepalive::default()));
    assert!(router().peer_packet(&view, 1, frame(p)).is_empty());
}

#[test]
fn a_peers_control_for_transport_is_answered_back_to_that_node() {
    let view = FakeView::new();
    let p = packet(ME, 1, 77, control(Opcode::Ping, 0));
    let actions = router().peer_packet(&view, 1, frame(p));
    let [Action::Control { client, header, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(*client, node_origin(1));
    // Its reply goes over the mesh to node 1 under node 1's reqid.
    let reply = router().reply_control(&view, *client, header, ReplyControl::error(0, ""));
    let (pnn, out, forwarded) = node(&reply);
    assert_eq!(
        (pnn, out.destnode, out.srcnode, out.reqid, forwarded),
        (1, 1, ME, 77, None)
    );
}

#[test]
fn a_peers_control_for_a_component_goes_to_it_from_that_node() {
    let view = FakeView::new();
    let p = packet(ME, 1, 77, control(Opcode::StartRecovery, 0));
    let actions = router().peer_packet(&view, 1, frame(p.clone()));
    assert!(matches!(actions[0], Action::Observe(Opcode::StartRecovery)));
    let (owner, envelope, hold, otherwise) = component(&actions[1]);
    assert_eq!(
        (owner, envelope.client, envelope.from_node, hold),
        (Owner::Recoverd, 0, 1, true)
    );
    assert_eq!(envelope.packet, p.to_bytes());
    let (pnn, error, _) = node(otherwise.unwrap());
    assert_eq!((pnn, error.reqid), (1, 77));
    assert!(control_error(&error).contains("not available"));
    // One nobody owns: the error goes back to the node.
    let p = packet(ME, 1, 78, control(Opcode::SetDmaster, 0));
    let actions = router().peer_packet(&view, 1, frame(p));
    let (pnn, error, _) = node(&actions[0]);
    assert_eq!((pnn, error.reqid), (1, 78));
}

#[test]
fn a_peers_message_goes_to_local_clients() {
    let view = FakeView::new();
    let p = packet(ME, 1, 0, message(0x99));
    match &router().peer_packet(&view, 1, frame(p))[..] {
        [Action::Message { srvid, packet }] => {
            assert_eq!(*srvid, 0x99);
            assert_eq!(decode(packet).destnode, ME);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_peers_call_packets_go_to_db_from_that_node() {
    let view = FakeView::new();
    let dmaster = Body::ReplyDmaster(ReplyDmaster {
        db_id: 1,
        rsn: 2,
        key: Bytes::from_static(b"k"),
        data: Bytes::new(),
        rec_flags: None,
    });
    // A REQ_CALL sent on by the lmaster 1 keeps its asker 3 as srcnode.
    for (srcnode, body) in [
        (3, call(b"k")),
        (1, dmaster),
        (1, Body::ReplyCall(ReplyCall::default())),
        (1, Body::ReplyError(ReplyError::new(1, "no"))),
    ] {
        let p = packet(ME, srcnode, 5, body);
        let actions = router().peer_packet(&view, 1, frame(p.clone()));
        let [ref action] = actions[..] else {
            panic!("{actions:?}")
        };
        let (owner, envelope, hold, otherwise) = component(action);
        assert_eq!(
            (owner, envelope.client, envelope.from_node),
            (Owner::Db, 0, 1)
        );
        assert!(!hold && otherwise.is_none());
        assert_eq!(envelope.packet, p.to_bytes(), "passed on unchanged");
    }
}

#[test]
fn a_peers_call_whose_asker_is_no_node_is_dropped() {
    let view = FakeView::new();
    for srcnode in [4, dest::CURRENT_NODE, dest::BROADCAST_ALL] {
        let p = packet(ME, srcnode, 5, call(b"k"));
        assert!(router().peer_packet(&view, 1, frame(p)).is_empty());
    }
}

#[test]
fn a_peers_unexpected_operation_is_dropped() {
    let view = FakeView::new();
    let mut bytes = packet(ME, 1, 0, call(b"k")).to_bytes();
    // The operation word: REQ_TUNNEL, recognised, never accepted.
    bytes[16..20].copy_from_slice(&(Operation::ReqTunnel as u32).to_le_bytes());
    let f = Frame::new(Bytes::from(bytes), 1 << 20).unwrap();
    assert!(router().peer_packet(&view, 1, f).is_empty());
}

#[test]
fn a_components_reply_goes_to_its_client_and_db_tells_the_generation() {
    let view = FakeView::new();
    let p = packet(0, ME, 5, Body::ReplyCall(ReplyCall::default()));
    let mut p2 = p.clone();
    p2.generation = 0x777;
    let actions = router().component_packet(
        &view,
        Owner::Db,
        Envelope {
            client: CLIENT,
            from_node: u32::MAX,
            packet: p2.to_bytes().into(),
            trace: 0,
        },
    );
    let out = to_client(actions, CLIENT);
    assert_eq!(out.reqid, 5);
    // Another component's says nothing of the generation.
    let actions = router().component_packet(
        &view,
        Owner::Recoverd,
        Envelope {
            client: CLIENT,
            from_node: u32::MAX,
            packet: p.to_bytes().into(),
            trace: 0,
        },
    );
    to_client(actions, CLIENT);
}

fn from_db(p: Packet) -> Vec<Action> {
    router().component_packet(
        &FakeView::new(),
        Owner::Db,
        Envelope {
            client: 0,
            from_node: u32::MAX,
            packet: p.to_bytes().into(),
            trace: 0,
        },
    )
}

#[test]
fn a_call_db_sends_on_keeps_its_askers_srcnode_other_node_packets_get_ours() {
    // The lmaster's db sends node 2's call on to node 1, the dmaster.
    let actions = from_db(packet(1, 2, 0x0200_0001, call(b"k")));
    let (pnn, out, _) = node(&actions[0]);
    assert_eq!(
        (pnn, out.destnode, out.srcnode, out.reqid),
        (1, 1, 2, 0x0200_0001)
    );
    // Any other node packet leaves as from this node.
    let dmaster = Body::ReplyDmaster(ReplyDmaster {
        db_id: 1,
        rsn: 2,
        key: Bytes::from_static(b"k"),
        data: Bytes::new(),
        rec_flags: None,
    });
    let actions = from_db(packet(3, 9, 0x0300_0001, dmaster));
    let (pnn, out, _) = node(&actions[0]);
    assert_eq!(
        (pnn, out.destnode, out.srcnode, out.reqid),
        (3, 3, ME, 0x0300_0001)
    );
    // To this node: round the loopback.
    let actions = from_db(packet(ME, ME, 1, call(b"k")));
    assert_eq!(node(&actions[0]).0, ME);
}

#[test]
fn a_components_broadcast_packet_goes_to_each_target_with_its_destnode() {
    let actions = from_db(packet(
        dest::BROADCAST_CONNECTED,
        ME,
        0,
        Body::ReplyCall(ReplyCall::default()),
    ));
    let dests: Vec<(u32, u32)> = actions
        .iter()
        .map(|a| {
            let (pnn, p, _) = node(a);
            (pnn, p.destnode)
        })
        .collect();
    assert_eq!(dests, [(0, 0), (1, 1), (3, 3)]);
}

#[test]
fn a_components_control_goes_out_under_our_reqid_and_its_reply_comes_back_to_it() {
    let view = FakeView::new();
    let p = packet(1, ME, 42, control(Opcode::GetDbmap, 0));
    let envelope = Envelope {
        client: 0,
        from_node: u32::MAX,
        packet: p.to_bytes().into(),
        trace: 0,
    };
    let actions = router().component_packet(&view, Owner::Recoverd, envelope);
    let (pnn, out, forwarded) = node(&actions[0]);
    assert_eq!((pnn, out.srcnode, forwarded), (1, ME, Some(out.reqid)));
    let Body::ReqControl(c) = &out.body else {
        panic!()
    };
    assert_eq!(c.client_id, 0, "a component is no client");
    let reply = packet(
        ME,
        1,
        out.reqid,
        Body::ReplyControl(ReplyControl::error(0, "")),
    );
    let actions = router().peer_packet(&view, 1, frame(reply));
    let (owner, envelope, hold, _) = component(&actions[0]);
    assert_eq!(
        (owner, envelope.client, envelope.from_node, hold),
        (Owner::Recoverd, 0, 1, false)
    );
    assert_eq!(decode(&envelope.packet).reqid, 42);

    // To this node: round the loopback, and waited for like any other.
    let p = packet(ME, ME, 43, control(Opcode::GetDbmap, 0));
    let envelope = Envelope {
        client: 0,
        from_node: u32::MAX,
        packet: p.to_bytes().into(),
        trace: 0,
    };
    let actions = router().component_packet(&view, Owner::Recoverd, envelope);
    let (pnn, _, forwarded) = node(&actions[0]);
    assert_eq!(pnn, ME);
    assert!(forwarded.is_some());
}

#[test]
fn a_components_control_for_nobody_or_a_lost_node_gets_an_error_back() {
    let view = FakeView::new();
    let send = |destnode: u32| {
        let p = packet(destnode, ME, 42, control(Opcode::GetDbmap, 0));
        router().component_packet(
            &view,
            Owner::Recoverd,
            Envelope {
                client: 0,
                from_node: u32::MAX,
                packet: p.to_bytes().into(),
                trace: 0,
            },
        )
    };
    let actions = send(2);
    let (owner, envelope, _, _) = component(&actions[0]);
    assert_eq!(owner, Owner::Recoverd);
    let error = decode(&envelope.packet);
    assert_eq!(
        (error.reqid, control_error(&error)),
        (42, "node 2 is disconnected".into())
    );

    // Node 1 goes away while a control waits for it: an error, and db asks for a
    // recovery.
    let actions = send(1);
    assert_eq!(node(&actions[0]).0, 1);
    let lost = router().node_lost(&view, 1);
    assert_eq!(lost.len(), 2, "{lost:?}");
    let (owner, envelope, _, _) = component(&lost[0]);
    assert_eq!(owner, Owner::Recoverd);
    assert_eq!(
        control_error(&decode(&envelope.packet)),
        "node 1 disconnected"
    );
    let (owner, envelope, _, _) = component(&lost[1]);
    assert_eq!((owner, envelope.from_node), (Owner::Db, ME));
    let recmode = decode(&envelope.packet);
    assert!(
        matches!(&recmode.body, Body::ReqControl(c) if c.opcode == Opcode::SetRecmode && c.flags == NOREPLY)
    );
}

#[test]
fn a_forwarded_control_unanswered_in_time_gets_an_error() {
    let view = FakeView::new();
    let p = packet(3, 0, 5, control(Opcode::GetDbmap, 0));
    router().client_packet(&view, CLIENT, frame(p));
    assert!(router().expire(&view, Instant::now()).is_empty());
    let late = Instant::now() + Duration::from_secs(61);
    let error = to_client(router().expire(&view, late), CLIENT);
    assert_eq!(
        (error.reqid, control_error(&error)),
        (5, "control to node 3 timed out".into())
    );
    assert_eq!(view.waiting(), 0);
}

#[test]
fn the_envelopes_a_request_becomes_carry_its_trace_id() {
    let view = FakeView::new();
    // A client's call: to db, under the request's id.
    let mut actions = router().client_packet(&view, CLIENT, frame(packet(ME, ME, 9, call(b"k"))));
    stamp(&mut actions, 0xabc);
    assert_eq!(component(&actions[0]).1.trace, 0xabc);
    // A peer's control for a component: observed, then to the component.
    let p = packet(ME, 1, 10, control(Opcode::GetDbmap, 0));
    let mut actions = router().peer_packet(&view, 1, frame(p));
    stamp(&mut actions, 0xdef);
    let traces: Vec<u64> = actions
        .iter()
        .filter(|a| matches!(a, Action::Component { .. }))
        .map(|a| component(a).1.trace)
        .collect();
    assert_eq!(traces, vec![0xdef]);
    // An id given before (a component's request answered by a node) stays.
    let mut actions = vec![Action::Component {
        owner: Owner::Db,
        envelope: Envelope {
            client: 0,
            from_node: 1,
            packet: bytes::Bytes::new(),
            trace: 5,
        },
        hold: false,
        otherwise: None,
    }];
    stamp(&mut actions, 6);
    assert_eq!(component(&actions[0]).1.trace, 5);
}

#[test]
fn spans_name_the_operation_and_the_database_from_the_bytes() {
    let req_call = packet(ME, ME, 1, call(b"k")).to_bytes();
    assert_eq!(packet_db_id(&req_call), Some(1));
    assert_eq!(OpName(&req_call).to_string(), "CTDB_REQ_CALL");
    let dmaster = packet(
        ME,
        1,
        2,
        Body::ReplyDmaster(ReplyDmaster {
            db_id: 0x1234_5678,
            rsn: 2,
            key: Bytes::from_static(b"k"),
            data: Bytes::new(),
            rec_flags: None,
        }),
    )
    .to_bytes();
    assert_eq!(packet_db_id(&dmaster), Some(0x1234_5678));
    let control = packet(ME, ME, 3, control(Opcode::GetDbmap, 0)).to_bytes();
    assert_eq!(packet_db_id(&control), None);
    assert_eq!(reqid_of(&control), Some(3));
    assert_eq!(
        OpName(&control).to_string(),
        format!("CTDB_REQ_CONTROL {}", Opcode::GetDbmap)
    );
    let reply = packet(ME, ME, 3, Body::ReplyControl(ReplyControl::error(-1, "x"))).to_bytes();
    assert_eq!(OpName(&reply).to_string(), "CTDB_REPLY_CONTROL");
    // Bytes that are no packet say so; nothing panics.
    assert_eq!(OpName(&[1, 2]).to_string(), "(short)");
    assert_eq!(packet_db_id(&[0; 20]), None);
    assert_eq!(
        OpName(&[0xff; 20]).to_string(),
        format!("operation {}", u32::MAX)
    );
}
