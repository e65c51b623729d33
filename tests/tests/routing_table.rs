//! Issue 11: every control transport routes to a component is handled there. Each
//! control of the routing table is handed to its component's handler (empty data; a
//! decoding error is fine, "not handled" is not), and every opcode the table leaves
//! unrouted gets transport's clean error.

use std::sync::{Arc, Mutex};

use ctdb_protocol::opcode::UNHANDLED;
use ctdb_protocol::{Body, Opcode, Packet};
use ctdb_rpc::component::{Outbox, PacketHandler};
use ctdb_tests::control_envelope;
use ctdb_transport::routing::{owner, route, Owner};

/// The controls routed to `who` that `handler` answers "not handled".
async fn unhandled(who: Owner, handler: Arc<Mutex<dyn PacketHandler>>) -> Vec<Opcode> {
    let mut missing = Vec::new();
    for &opcode in Opcode::ALL {
        if owner(opcode) != Some(who) || opcode == Opcode::Shutdown {
            continue;
        }
        let (out, mut rx) = Outbox::new();
        ctdb_rpc::component::lock(&handler).handle(control_envelope(opcode), &out);
        // Replies sent later by a task come within a moment, or not at all.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), async {
            tokio::task::yield_now().await;
        })
        .await;
        while let Ok(e) = rx.try_recv() {
            if let Ok(Packet {
                body: Body::ReplyControl(r),
                ..
            }) = Packet::from_slice(&e.packet)
            {
                if String::from_utf8_lossy(&r.errmsg).contains(UNHANDLED) {
                    missing.push(opcode);
                }
            }
        }
    }
    missing
}

#[tokio::test]
async fn every_routed_control_is_handled_by_its_component() {
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
    let mut missing = Vec::new();
    for (who, handler) in [
        (
            Owner::Db,
            Arc::new(Mutex::new(db)) as Arc<Mutex<dyn PacketHandler>>,
        ),
        (Owner::Recoverd, Arc::new(Mutex::new(recoverd))),
        (Owner::Eventd, Arc::new(Mutex::new(eventd))),
    ] {
        for opcode in unhandled(who, handler).await {
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
}

#[test]
fn unrouted_controls_get_a_clean_error() {
    for op in [Opcode::Unknown(9999), Opcode::GetNodemapV4] {
        let why = route(op, b"").unwrap_err();
        assert!(why.contains("unsupported control"), "{why}");
    }
}
