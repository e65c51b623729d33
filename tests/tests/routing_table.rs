//! Issue 11: components declare what they own, and transport routes by it.
//!
//! - Each component's declaration (its control table, [`PacketHandler::ownership`]) is
//!   what DESIGN.md's table (`routing::owner`) gives it: DESIGN, the table and the
//!   handlers agree.
//! - Every opcode transport routes to a component, given the three declarations, is
//!   handled there (empty data: a decoding error is fine, "not handled" is not), and
//!   every opcode nobody declares gets transport's clean error.
//! - A running node routes by what its components declared.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ctdb_protocol::opcode::UNHANDLED;
use ctdb_protocol::{Body, Opcode, Packet};
use ctdb_rpc::component::{Outbox, PacketHandler};
use ctdb_tests::{control_envelope, TestNode};
use ctdb_transport::routing::{owner, Owner, Routes};

/// The three components' handlers, as their processes make them.
struct Handlers {
    _dir: tempfile::TempDir,
    handlers: Vec<(Owner, Arc<Mutex<dyn PacketHandler>>)>,
}

fn handlers() -> Handlers {
    let dir = tempfile::tempdir().unwrap();
    let dirs = ctdb_db::DbDirs {
        volatile: dir.path().join("volatile"),
        persistent: dir.path().join("persistent"),
        state: dir.path().join("state"),
    };
    let db = ctdb_db::DbDaemon::open(&dir.path().join("db.sled"), ctdb_db::Options::new(0, dirs))
        .unwrap();
    let recoverd = ctdb_recoverd::Recoverd::new(0, None);
    let eventd =
        ctdb_eventd::Eventd::new(ctdb_eventd::EventdConfig::new(dir.path().join("events")));
    Handlers {
        _dir: dir,
        handlers: vec![
            (
                Owner::Db,
                Arc::new(Mutex::new(db)) as Arc<Mutex<dyn PacketHandler>>,
            ),
            (Owner::Recoverd, Arc::new(Mutex::new(recoverd))),
            (Owner::Eventd, Arc::new(Mutex::new(eventd))),
        ],
    }
}

/// What `handler` declares, as opcodes.
fn declaration(handler: &Arc<Mutex<dyn PacketHandler>>) -> Vec<Opcode> {
    ctdb_rpc::component::lock(handler)
        .ownership()
        .controls
        .into_iter()
        .map(Opcode::from_u32)
        .collect()
}

/// Transport's routes once every component declared.
fn declared_routes(handlers: &Handlers) -> Routes {
    let mut routes = Routes::default();
    for (who, handler) in &handlers.handlers {
        let conflicts = routes.declare(*who, declaration(handler));
        assert!(conflicts.is_empty(), "{conflicts:?}");
    }
    routes
}

/// Whether `handler` answers `opcode` "not handled".
async fn unhandled(handler: &Arc<Mutex<dyn PacketHandler>>, opcode: Opcode) -> bool {
    let (out, mut rx) = Outbox::new();
    // "Not handled" is answered while the packet is handled, from the component's
    // table lookup: nothing to wait for.
    ctdb_rpc::component::lock(handler).handle(control_envelope(opcode), &out);
    let mut missing = false;
    while let Ok(e) = rx.try_recv() {
        if let Ok(Packet {
            body: Body::ReplyControl(r),
            ..
        }) = Packet::from_slice(&e.packet)
        {
            missing |= String::from_utf8_lossy(&r.errmsg).contains(UNHANDLED);
        }
    }
    missing
}

/// Every opcode this crate knows, and a few it does not.
fn every_opcode() -> impl Iterator<Item = Opcode> {
    Opcode::ALL
        .iter()
        .copied()
        .chain([9999, 0x4352_ffff, u32::MAX].map(Opcode::from_u32))
}

#[test]
fn each_components_declaration_is_what_the_design_table_gives_it() {
    let handlers = handlers();
    let mut differences = Vec::new();
    for (who, handler) in &handlers.handlers {
        let declared: BTreeSet<u32> = declaration(handler)
            .into_iter()
            // Addressed by the component its data names, owned by none.
            .filter(|&op| op != Opcode::SetFailpoint)
            .map(Opcode::as_u32)
            .collect();
        let table: BTreeSet<u32> = Opcode::ALL
            .iter()
            .filter(|&&op| owner(op) == Some(*who))
            .map(|op| op.as_u32())
            .collect();
        let name = |n: &u32| format!("{} ({n})", Opcode::from_u32(*n).name());
        for n in declared.difference(&table) {
            differences.push(format!(
                "{} declares {}, the table does not",
                who.name(),
                name(n)
            ));
        }
        for n in table.difference(&declared) {
            differences.push(format!(
                "the table gives {} to {}, which does not declare it",
                name(n),
                who.name()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn components_with_fault_points_declare_set_failpoint() {
    let handlers = handlers();
    for (who, handler) in &handlers.handlers {
        let declares = declaration(handler).contains(&Opcode::SetFailpoint);
        let addressed = ctdb_transport::routing::route(
            Opcode::SetFailpoint,
            format!("{}\0x", who.name()).as_bytes(),
        )
        .is_ok();
        assert_eq!(declares, addressed, "{}", who.name());
    }
}

#[tokio::test]
async fn every_routed_control_is_handled_by_the_component_that_declared_it() {
    let handlers = handlers();
    let routes = declared_routes(&handlers);
    let mut missing = Vec::new();
    for opcode in every_opcode() {
        if opcode == Opcode::SetFailpoint {
            continue;
        }
        let Ok(who) = routes.route(opcode, b"") else {
            continue;
        };
        if who == Owner::Transport {
            continue;
        }
        let (_, handler) = handlers
            .handlers
            .iter()
            .find(|(owner, _)| *owner == who)
            .expect("a component");
        if unhandled(handler, opcode).await {
            missing.push(format!(
                "{} ({}) -> {}",
                opcode.name(),
                opcode.as_u32(),
                who.name()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "routed to a component that does not handle it:\n{}",
        missing.join("\n")
    );
    // SET_FAILPOINT reaches the component it names.
    for (who, data) in [
        (Owner::Db, &b"db\0x"[..]),
        (Owner::Recoverd, b"recoverd\0x"),
    ] {
        assert_eq!(routes.route(Opcode::SetFailpoint, data), Ok(who));
    }
}

#[test]
fn controls_nobody_declares_get_a_clean_error() {
    let handlers = handlers();
    let routes = declared_routes(&handlers);
    let mut unrouted = 0;
    for opcode in every_opcode() {
        if opcode == Opcode::SetFailpoint {
            continue;
        }
        let declared = handlers
            .handlers
            .iter()
            .any(|(_, h)| declaration(h).contains(&opcode));
        match routes.route(opcode, b"") {
            Ok(Owner::Transport) => assert_eq!(owner(opcode), Some(Owner::Transport)),
            Ok(who) => assert!(declared, "{opcode} routed to {} undeclared", who.name()),
            Err(why) => {
                assert!(!declared, "{opcode} declared but not routed: {why}");
                assert!(why.contains("unsupported control"), "{why}");
                unrouted += 1;
            }
        }
    }
    assert!(unrouted > 10, "{unrouted}");
    for op in [Opcode::Unknown(9999), Opcode::GetNodemapV4, Opcode::KillTcp] {
        let why = routes.route(op, b"").unwrap_err();
        assert!(why.contains("unsupported control"), "{why}");
    }
    let why = routes
        .route(Opcode::SetFailpoint, b"eventd\0x")
        .unwrap_err();
    assert!(why.contains("SET_FAILPOINT"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_routes_by_what_its_components_declared() {
    let node = TestNode::start("");
    let client = node.ready().await;
    const HERE: u32 = ctdb_protocol::flags::dest::CURRENT_NODE;
    // One control of each component's, answered there.
    client.get_dbmap(HERE).await.expect("db: GET_DBMAP");
    client
        .control_status(HERE, Opcode::GetRecmaster, bytes::Bytes::new())
        .await
        .expect("recoverd: GET_RECMASTER");
    client
        .control_status(HERE, Opcode::GetMonmode, bytes::Bytes::new())
        .await
        .expect("eventd: GET_MONMODE");
    // Nobody declares these: transport's error.
    for opcode in [Opcode::KillTcp, Opcode::Unknown(9999), Opcode::Trans2Commit] {
        let err = client
            .control(HERE, opcode, 0, bytes::Bytes::new())
            .await
            .expect_err("unsupported");
        assert!(err.to_string().contains("unsupported control"), "{err}");
    }
    let log = node.log();
    let declared: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("component declared its controls"))
        .collect();
    for component in ["db", "recoverd", "eventd"] {
        assert!(
            declared.iter().any(|l| l.contains(component)),
            "no declaration of {component} in the log:\n{}",
            declared.join("\n")
        );
    }
}
