//! The controls recoverd owns.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ctdb_common::nodes::PublicAddress;
use ctdb_protocol::control::{self, ControlData};
use ctdb_protocol::flags::capability;
use ctdb_protocol::{Body, Opcode, Packet, ReplyControl, ReqControl, Wire};
use ctdb_rpc::component::{ControlTable, Outbox, PacketHandler};
use ctdb_rpc::eventd_client::EventdClient;
use ctdb_rpc::Envelope;
use tonic::transport::Channel;
use tracing::warn;

use crate::events::{recovery_event, run_event, run_event_with, Startup};
use crate::ips::{self, ip_of, Action, PublicIps};
use crate::tickles::{destination, Tickles};
use ctdb_protocol::control::{Connection, SockAddr};

/// State of the recovery daemon that its controls read and change.
#[derive(Debug)]
pub struct Recoverd {
    pub pnn: u32,
    /// The leader (recovery master) as this node knows it.
    pub leader: Option<u32>,
    pub leader_role: bool,
    pub lmaster_role: bool,
    /// The node whose START_RECOVERY or END_RECOVERY came last, and when: the loop
    /// takes it as that node's announcement that it leads.
    pub recovery_from: Option<(u32, std::time::Instant)>,
    pub reclock: Option<String>,
    /// The node's event daemon, for the events a control runs (IPREALLOCATED).
    pub eventd: Option<Channel>,
    /// This node's public addresses; shared with the tasks that run `takeip` and
    /// `releaseip` and record the result when the event is done.
    pub ips: Arc<Mutex<PublicIps>>,
    /// Whether the node's `startup` event ran (END_RECOVERY runs it once).
    pub startup: Arc<Mutex<Startup>>,
    /// The public_addresses file RELOAD_PUBLIC_IPS reads (none: no addresses).
    pub public_addresses_file: Option<std::path::PathBuf>,
    /// The clients' connections to each public address (see [`crate::tickles`]).
    pub tickles: Tickles,
    /// How often the leader this node knows changed (to another node or to none).
    pub leader_changes: u64,
    /// How often this node became the leader.
    pub elections_won: u64,
}

impl Recoverd {
    pub fn new(pnn: u32, reclock: Option<String>) -> Self {
        Self {
            pnn,
            leader: None,
            leader_role: true,
            lmaster_role: true,
            recovery_from: None,
            reclock,
            eventd: None,
            ips: Arc::new(Mutex::new(PublicIps::new(pnn, &[]))),
            startup: Arc::default(),
            public_addresses_file: None,
            tickles: Tickles::default(),
            leader_changes: 0,
            elections_won: 0,
        }
    }

    /// The leader as this round of the recovery daemon sees it; counts changes.
    pub fn set_leader(&mut self, leader: Option<u32>) {
        if leader != self.leader {
            self.leader_changes += 1;
            if leader == Some(self.pnn) {
                self.elections_won += 1;
            }
        }
        self.leader = leader;
    }

    /// The public address a connection of a tickle control is to, if this node has it.
    fn tickle_address(&self, conn: &Connection) -> Result<std::net::IpAddr, String> {
        match destination(conn) {
            Some(addr) if self.ips().contains(addr) => Ok(addr),
            _ => Err(format!(
                "{} is not a public address",
                conn.dst
                    .socket_addr()
                    .map_or_else(|| "the destination".to_string(), |a| a.ip().to_string())
            )),
        }
    }

    /// The file `ctdb reloadips` makes this node read again (none: no addresses).
    pub fn with_public_addresses_file(mut self, path: Option<std::path::PathBuf>) -> Self {
        self.public_addresses_file = path;
        self
    }

    /// The addresses the public_addresses file lists now (a missing file lists none,
    /// as Samba reads it).
    fn read_public_addresses(&self) -> Result<Vec<PublicAddress>, String> {
        let Some(path) = &self.public_addresses_file else {
            return Ok(Vec::new());
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                ctdb_common::nodes::parse_public_addresses(&text, path).map_err(|e| e.to_string())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Where the node notes that its `startup` event ran (see [`Startup`]).
    pub fn with_startup_marker(self, path: std::path::PathBuf) -> Self {
        *ctdb_rpc::component::lock(&self.startup) = Startup::new(Some(path));
        self
    }

    /// The addresses of the public_addresses file.
    pub fn with_public_addresses(self, addresses: &[PublicAddress]) -> Self {
        *ctdb_rpc::component::lock(&self.ips) = PublicIps::new(self.pnn, addresses);
        self
    }

    pub fn with_eventd(mut self, eventd: Channel) -> Self {
        self.eventd = Some(eventd);
        self
    }
}

/// A control as recoverd's handlers see it.
struct Request<'a> {
    control: &'a ReqControl,
    /// The node that sent it.
    srcnode: u32,
    to: &'a ReplyTo,
    out: &'a Outbox,
}

/// What a handler answers: the reply now, `Ok(None)` when it is sent later (by a task,
/// once an event ran) or already, or the message of an error reply.
type Answer = Result<Option<ReplyControl>, String>;

/// One control of recoverd's.
type Handler = fn(&mut Recoverd, &Request<'_>) -> Answer;

/// Every control ctdb-recoverd answers, and its handler: what recoverd dispatches and
/// what it declares to transport (which routes these here) are this one table.
static CONTROLS: ControlTable<Handler> = ControlTable::new(&[
    // leadership and roles
    (Opcode::GetRecmaster, Recoverd::get_recmaster),
    (Opcode::SetRecmaster, Recoverd::set_recmaster),
    (Opcode::SetRecmasterrole, Recoverd::set_role),
    (Opcode::SetLmasterrole, Recoverd::set_role),
    (Opcode::GetCapabilities, Recoverd::get_capabilities),
    (Opcode::RecdPing, |_, _| now(status(0))),
    (Opcode::RecdReclockLatency, |_, _| now(status(0))),
    (Opcode::GetReclockFile, Recoverd::get_reclock_file),
    (Opcode::SetReclockFile, Recoverd::set_reclock_file),
    // recovery and takeover events
    (Opcode::StartRecovery, Recoverd::recovery),
    (Opcode::EndRecovery, Recoverd::recovery),
    (Opcode::Ipreallocated, Recoverd::ipreallocated),
    // public addresses
    (Opcode::TakeoverIp, Recoverd::takeover_or_release),
    (Opcode::ReleaseIp, Recoverd::takeover_or_release),
    (Opcode::GetPublicIps, Recoverd::get_public_ips),
    (Opcode::GetPublicIpInfo, Recoverd::get_public_ip_info),
    (Opcode::AddPublicIp, Recoverd::add_public_ip),
    (Opcode::DelPublicIp, Recoverd::del_public_ip),
    (Opcode::ReloadPublicIps, Recoverd::reload_public_ips),
    (Opcode::GetIfaces, |r, _| {
        now(ok(r.ips().ifaces().to_bytes()))
    }),
    (Opcode::SetIfaceLinkState, Recoverd::set_iface_link_state),
    (Opcode::SendGratiousArp, Recoverd::send_gratious_arp),
    // clients' connections (tickles)
    (Opcode::TcpClient, Recoverd::tcp_client),
    (Opcode::TcpAdd, Recoverd::tcp_add),
    (Opcode::TcpAddDelayedUpdate, Recoverd::tcp_add),
    (Opcode::TcpRemove, Recoverd::tcp_remove),
    (Opcode::TcpClientDisconnected, Recoverd::tcp_remove),
    // The connection went to another smbd process of this node: still here.
    (Opcode::TcpClientPassed, |_, _| now(status(0))),
    (Opcode::GetTcpTickleList, Recoverd::get_tcp_tickle_list),
    (Opcode::SetTcpTickleList, Recoverd::set_tcp_tickle_list),
    // fault injection in test clusters (recovery.rs lists the points)
    (Opcode::SetFailpoint, Recoverd::set_failpoint),
]);

/// The opcodes of the controls ctdb-recoverd owns.
pub fn owned_controls() -> Vec<Opcode> {
    CONTROLS.opcodes().collect()
}

fn now(reply: ReplyControl) -> Answer {
    Ok(Some(reply))
}

fn decoded(control: &ReqControl) -> Result<ControlData, String> {
    control::decode_request(control.opcode, &control.data)
        .map_err(|e| format!("bad {} request: {e}", control.opcode))
}

fn unexpected(data: ControlData) -> String {
    format!("unexpected payload {data:?}")
}

impl Recoverd {
    /// No leader known (none elected yet, or this node is cut off): Samba's "unknown"
    /// (-1 as a pnn).
    fn get_recmaster(&mut self, _: &Request<'_>) -> Answer {
        now(status(
            self.leader
                .unwrap_or(ctdb_protocol::flags::dest::UNKNOWN_PNN) as i32,
        ))
    }

    fn set_recmaster(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::Uint32(pnn) => {
                self.leader = Some(pnn);
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// SET_RECMASTERROLE and SET_LMASTERROLE.
    fn set_role(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::Uint32(on) => {
                if r.control.opcode == Opcode::SetRecmasterrole {
                    self.leader_role = on != 0;
                } else {
                    self.lmaster_role = on != 0;
                }
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// The roles SET_RECMASTERROLE and SET_LMASTERROLE set, beside the rest of what a
    /// node of Samba 4.17 says it can.
    fn get_capabilities(&mut self, _: &Request<'_>) -> Answer {
        let roles = capability::RECMASTER | capability::LMASTER;
        let mut caps = capability::DEFAULT & !roles;
        if self.leader_role {
            caps |= capability::RECMASTER;
        }
        if self.lmaster_role {
            caps |= capability::LMASTER;
        }
        now(ok(caps.to_bytes()))
    }

    fn get_reclock_file(&mut self, _: &Request<'_>) -> Answer {
        now(ok(ControlData::String(self.reclock.clone()).to_bytes()))
    }

    fn set_reclock_file(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::String(path) => {
                self.reclock = path.filter(|p| !p.is_empty());
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// START_RECOVERY / END_RECOVERY: answered once their event ran (see `events`),
    /// meanwhile the other controls are served.
    fn recovery(&mut self, r: &Request<'_>) -> Answer {
        // Only the leader runs recoveries: as good as its announcement, and here
        // before it when this daemon has just started.
        if r.srcnode != self.pnn && r.srcnode < ctdb_protocol::flags::dest::UNKNOWN_PNN {
            self.recovery_from = Some((r.srcnode, std::time::Instant::now()));
        }
        let Some(eventd) = self.eventd.clone() else {
            return now(status(0));
        };
        let end = r.control.opcode == Opcode::EndRecovery;
        let (startup, to, out) = (self.startup.clone(), r.to.clone(), r.out.clone());
        tokio::spawn(async move {
            recovery_event(eventd, end, startup).await;
            to.send(&out, status(0));
        });
        Ok(None)
    }

    /// The event takes as long as its scripts: answered when it is done, meanwhile the
    /// other controls are served.
    fn ipreallocated(&mut self, r: &Request<'_>) -> Answer {
        let Some(eventd) = self.eventd.clone() else {
            return now(status(0));
        };
        let (to, out) = (r.to.clone(), r.out.clone());
        tokio::spawn(async move {
            let code = run_event(&mut EventdClient::new(eventd), "ipreallocated").await;
            to.send(&out, status(code));
        });
        Ok(None)
    }

    /// TAKEOVER_IP / RELEASE_IP: the address's `takeip` / `releaseip` event where one
    /// is to run, answered when it is done.
    fn takeover_or_release(&mut self, r: &Request<'_>) -> Answer {
        let (addr, holder, action) = self.ip_action(r.control)?;
        let event = match action {
            Action::Record => None,
            Action::Run(event) => Some(event),
        };
        let (Some(event), Some(eventd)) = (event, self.eventd.clone()) else {
            self.ips().record(addr, holder);
            return now(status(0));
        };
        let (ips, to, out) = (self.ips.clone(), r.to.clone(), r.out.clone());
        // A takeover: the segment learns where the address is now (gratuitous ARP on
        // the interface, takeip's first argument), and the clients of the address's
        // last holder are tickled.
        let takeover = event.event == "takeip";
        let tickle = takeover.then(|| {
            let all = SockAddr::from(std::net::SocketAddr::new(addr, 0));
            self.tickles.list(all, 0).connections
        });
        let iface = event.args.first().cloned().filter(|_| takeover);
        tokio::spawn(async move {
            let mut eventd = EventdClient::new(eventd);
            let code = run_event_with(&mut eventd, event.event, event.args).await;
            if code == 0 {
                ctdb_rpc::component::lock(&ips).record(addr, holder);
                to.tell_clients(&out, event.event, addr);
            }
            to.send(&out, status(code));
            if let Some(iface) = iface.filter(|_| code == 0) {
                tokio::spawn(crate::gratuitous_arp::announce(addr, iface));
            }
            if let Some(connections) = tickle.filter(|_| code == 0) {
                send_tickles(addr, connections).await;
            }
        });
        Ok(None)
    }

    fn get_public_ips(&mut self, r: &Request<'_>) -> Answer {
        let only_available = r.control.flags & ips::ONLY_AVAILABLE != 0;
        now(ok(self.ips().list(only_available).to_bytes()))
    }

    fn get_public_ip_info(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::SockAddr(addr) => {
                let info = ip_of(&addr).and_then(|a| self.ips().info(a));
                match info {
                    Some(info) => now(ok(info.to_bytes())),
                    None => Err("not a public address of this node".into()),
                }
            }
            other => Err(unexpected(other)),
        }
    }

    fn add_public_ip(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::AddrInfo(info) => {
                let addr = ip_of(&info.addr).ok_or("not an IP address")?;
                let prefix = u8::try_from(info.mask).map_err(|_| "bad mask bits")?;
                let ifaces = info
                    .iface
                    .map(|i| i.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                self.ips().add(PublicAddress {
                    addr,
                    prefix,
                    ifaces,
                })?;
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// DEL_PUBLIC_IP of an address held here: released first (its `releaseip` event),
    /// then forgotten.
    fn del_public_ip(&mut self, r: &Request<'_>) -> Answer {
        if let Some((addr, event, eventd)) = self.release_to_delete(r.control) {
            let (ips, to, out) = (self.ips.clone(), r.to.clone(), r.out.clone());
            tokio::spawn(async move {
                let mut eventd = EventdClient::new(eventd);
                let code = run_event_with(&mut eventd, event.event, event.args).await;
                let reply = if code == 0 {
                    to.tell_clients(&out, event.event, addr);
                    let mut ips = ctdb_rpc::component::lock(&ips);
                    ips.record(addr, ctdb_protocol::flags::dest::UNKNOWN_PNN);
                    match ips.delete(addr) {
                        Ok(()) => status(0),
                        Err(e) => ReplyControl::error(-1, &e),
                    }
                } else {
                    status(code)
                };
                to.send(&out, reply);
            });
            return Ok(None);
        }
        match decoded(r.control)? {
            ControlData::AddrInfo(info) => {
                let addr = ip_of(&info.addr).ok_or("not an IP address")?;
                self.ips().delete(addr)?;
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// RELOAD_PUBLIC_IPS: new addresses join the list (a takeover run places them);
    /// addresses gone from the file are released where held here (`releaseip`), then
    /// forgotten. Answered when that is done.
    fn reload_public_ips(&mut self, r: &Request<'_>) -> Answer {
        let file = self.read_public_addresses()?;
        let (added, removed) = self.ips().changes(&file);
        if let Some(eventd) = self.eventd.clone() {
            let (ips, to, out) = (self.ips.clone(), r.to.clone(), r.out.clone());
            tokio::spawn(async move {
                let reply = reload_public_ips(&ips, added, removed, eventd, &to, &out).await;
                to.send(&out, reply);
            });
            return Ok(None);
        }
        // Without the event daemon (tests) nothing is held: only the list.
        let mut ips = self.ips();
        for a in added {
            ips.add(a)?;
        }
        for addr in &removed {
            ips.delete(*addr)?;
        }
        drop(ips);
        for addr in removed {
            self.tickles.forget(addr);
        }
        now(status(0))
    }

    fn set_iface_link_state(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::Iface(iface) => {
                self.ips().set_link(&iface.name, iface.link_state != 0)?;
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// `ctdb gratarp <ip> <iface>`: announced in the background, answered now.
    fn send_gratious_arp(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::AddrInfo(info) => {
                let addr = ip_of(&info.addr).ok_or("not an IP address")?;
                let iface = info.iface.filter(|i| !i.is_empty()).ok_or("no interface")?;
                let rt = tokio::runtime::Handle::try_current()
                    .map_err(|_| "ctdb-recoverd has no runtime".to_string())?;
                rt.spawn(crate::gratuitous_arp::announce(addr, iface));
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    /// A client's connection to a public address: kept here, and every connected node
    /// keeps it too (TCP_ADD, no reply), for whichever takes the address over.
    fn tcp_client(&mut self, r: &Request<'_>) -> Answer {
        let spread = matches!(
            decoded(r.control),
            Ok(ControlData::Connection(conn)) if self.tickle_address(&conn).is_ok()
        );
        let reply = self
            .tcp_add(r)
            .map(|reply| reply.unwrap_or_default())
            .unwrap_or_else(|e| ReplyControl::error(-1, &e));
        r.to.send(r.out, reply);
        if spread {
            let packet = Packet {
                generation: r.to.generation,
                destnode: ctdb_protocol::flags::dest::BROADCAST_CONNECTED,
                srcnode: self.pnn,
                reqid: 0,
                body: Body::ReqControl(ReqControl {
                    opcode: Opcode::TcpAdd,
                    srvid: 0,
                    client_id: 0,
                    flags: ctdb_protocol::flags::control::NOREPLY,
                    data: r.control.data.clone(),
                }),
            };
            r.out.to_client(0, packet.to_bytes());
        }
        Ok(None)
    }

    /// TCP_CLIENT, TCP_ADD and TCP_ADD_DELAYED_UPDATE: the connection is kept.
    fn tcp_add(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::Connection(conn) => match self.tickle_address(&conn) {
                Ok(addr) => {
                    self.tickles.add(addr, conn);
                    now(status(0))
                }
                // Samba's clients register every connection; one not to a public
                // address is no error for them.
                Err(_) if r.control.opcode == Opcode::TcpClient => now(status(0)),
                Err(e) => Err(e),
            },
            other => Err(unexpected(other)),
        }
    }

    /// TCP_REMOVE and TCP_CLIENT_DISCONNECTED.
    fn tcp_remove(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::Connection(conn) => {
                if let Some(addr) = destination(&conn) {
                    self.tickles.remove(addr, &conn);
                }
                now(status(0))
            }
            other => Err(unexpected(other)),
        }
    }

    fn get_tcp_tickle_list(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::SockAddr(addr) => match ip_of(&addr) {
                Some(ip) if self.ips().contains(ip) => {
                    let port = addr.socket_addr().map_or(0, |a| a.port());
                    now(ok(self.tickles.list(addr, port).to_bytes()))
                }
                // Samba answers 1 for an address that is not public.
                _ => now(status(1)),
            },
            other => Err(unexpected(other)),
        }
    }

    fn set_tcp_tickle_list(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::TickleList(list) => match ip_of(&list.addr) {
                Some(ip) if self.ips().contains(ip) => {
                    self.tickles.set(ip, list.connections);
                    now(status(0))
                }
                _ => Err("not a public address".into()),
            },
            other => Err(unexpected(other)),
        }
    }

    fn set_failpoint(&mut self, r: &Request<'_>) -> Answer {
        match decoded(r.control)? {
            ControlData::SetFailpoint(request) if request.component == "recoverd" => {
                let count = ctdb_rpc::faults::apply(
                    crate::recovery::FAULT_POINTS,
                    &request.name,
                    request.actions.as_deref(),
                )?;
                now(ok(count.to_le_bytes().to_vec()))
            }
            ControlData::SetFailpoint(request) => Err(format!(
                "SET_FAILPOINT for {:?} reached recoverd",
                request.component
            )),
            other => Err(unexpected(other)),
        }
    }
}

impl Recoverd {
    fn ips(&self) -> std::sync::MutexGuard<'_, PublicIps> {
        ctdb_rpc::component::lock(&self.ips)
    }

    /// For a DEL_PUBLIC_IP of an address held here: the address, its `releaseip` event
    /// and the event daemon to run it.
    fn release_to_delete(
        &self,
        control: &ReqControl,
    ) -> Option<(std::net::IpAddr, ips::IpEvent, Channel)> {
        let eventd = self.eventd.clone()?;
        let Ok(ControlData::AddrInfo(info)) =
            control::decode_request(control.opcode, &control.data)
        else {
            return None;
        };
        let addr = ip_of(&info.addr)?;
        match self
            .ips()
            .release(addr, ctdb_protocol::flags::dest::UNKNOWN_PNN)
        {
            Action::Run(event) => Some((addr, event, eventd)),
            Action::Record => None,
        }
    }

    /// TAKEOVER_IP / RELEASE_IP: the action to take, or an error reply.
    fn ip_action(&self, control: &ReqControl) -> Result<(std::net::IpAddr, u32, Action), String> {
        let ip = match control::decode_request(control.opcode, &control.data) {
            Ok(ControlData::PublicIp(ip)) => ip,
            Ok(other) => return Err(format!("unexpected payload {other:?}")),
            Err(e) => return Err(format!("bad {} request: {e}", control.opcode)),
        };
        let addr = ip_of(&ip.addr).ok_or("not an IP address")?;
        let action = if control.opcode == Opcode::TakeoverIp {
            if ip.pnn != self.pnn {
                return Err(format!(
                    "TAKEOVER_IP for node {} sent to {}",
                    ip.pnn, self.pnn
                ));
            }
            self.ips().takeover(addr)?
        } else {
            self.ips().release(addr, ip.pnn)
        };
        Ok((addr, ip.pnn, action))
    }
}

fn status(status: i32) -> ReplyControl {
    ReplyControl {
        status,
        ..Default::default()
    }
}

fn ok(data: Vec<u8>) -> ReplyControl {
    ReplyControl {
        status: 0,
        data: Bytes::from(data),
        errmsg: Bytes::new(),
    }
}

impl PacketHandler for Recoverd {
    /// Counters beyond Samba's statistics (the metrics endpoint shows them).
    fn statistics(&self) -> ctdb_rpc::StatisticsPart {
        ctdb_rpc::StatisticsPart {
            counters: [
                ("leader_changes".to_string(), self.leader_changes),
                ("elections_won".to_string(), self.elections_won),
            ]
            .into(),
            latencies: Default::default(),
        }
    }

    fn ownership(&self) -> ctdb_rpc::Ownership {
        CONTROLS.ownership()
    }

    fn handle(&mut self, envelope: Envelope, out: &Outbox) {
        // One span per request, under the trace id transport gave it.
        let _span = ctdb_rpc::trace::request_span(&envelope);
        tracing::trace!("from transport");
        let packet = match Packet::from_slice(&envelope.packet) {
            Ok(p) => p,
            Err(e) => {
                warn!("dropping bad packet: {e}");
                return;
            }
        };
        let Body::ReqControl(control) = &packet.body else {
            warn!(operation = ?packet.operation(), "recoverd only takes controls");
            return;
        };
        let to = ReplyTo {
            generation: packet.generation,
            destnode: packet.srcnode,
            srcnode: self.pnn,
            reqid: packet.reqid,
            client: envelope.client,
            wanted: control.flags & ctdb_protocol::flags::control::NOREPLY == 0,
            trace: envelope.trace,
        };
        let request = Request {
            control,
            srcnode: packet.srcnode,
            to: &to,
            out,
        };
        let answer = match CONTROLS.get(control.opcode) {
            Some(handler) => handler(self, &request),
            None => Err(control.opcode.unhandled_by("ctdb-recoverd")),
        };
        match answer {
            Ok(Some(reply)) => to.send(out, reply),
            Ok(None) => {}
            Err(e) => to.send(out, ReplyControl::error(-1, &e)),
        }
    }
}

/// Tickle ACKs to the clients of `addr` ([`ctdb_common::tickle_ack`]), twice: the second
/// half a second later, in case the first raced the address's arrival.
async fn send_tickles(addr: std::net::IpAddr, connections: Vec<Connection>) {
    if connections.is_empty() {
        return;
    }
    let pairs: Vec<_> = connections
        .iter()
        .filter_map(|c| Some((c.dst.socket_addr()?, c.src.socket_addr()?)))
        .collect();
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let mut failed = 0;
        for &(server, client) in &pairs {
            if let Err(e) = ctdb_common::tickle_ack::send(server, client) {
                failed += 1;
                tracing::debug!(%server, %client, "tickle ACK not sent: {e}");
            }
        }
        tracing::info!(%addr, sent = pairs.len() - failed, failed, "tickle ACKs sent");
    }
}

/// RELOAD_PUBLIC_IPS's work (see `handle`): adds `added`, releases and deletes
/// `removed`; the reply.
async fn reload_public_ips(
    ips: &Mutex<PublicIps>,
    added: Vec<PublicAddress>,
    removed: Vec<std::net::IpAddr>,
    eventd: Channel,
    to: &ReplyTo,
    out: &Outbox,
) -> ReplyControl {
    use ctdb_protocol::flags::dest::UNKNOWN_PNN;
    for a in added {
        let addr = a.addr;
        if let Err(e) = ctdb_rpc::component::lock(ips).add(a) {
            warn!("reloadips: cannot add {addr}: {e}");
        }
    }
    let mut eventd = EventdClient::new(eventd);
    for addr in removed {
        let action = ctdb_rpc::component::lock(ips).release(addr, UNKNOWN_PNN);
        if let Action::Run(event) = action {
            let code = run_event_with(&mut eventd, event.event, event.args).await;
            if code != 0 {
                return ReplyControl::error(-1, &format!("releasing {addr} failed ({code})"));
            }
            to.tell_clients(out, event.event, addr);
        }
        let mut ips = ctdb_rpc::component::lock(ips);
        ips.record(addr, UNKNOWN_PNN);
        if let Err(e) = ips.delete(addr) {
            return ReplyControl::error(-1, &e);
        }
    }
    status(0)
}

/// Where a control's reply goes.
#[derive(Debug, Clone)]
struct ReplyTo {
    generation: u32,
    destnode: u32,
    srcnode: u32,
    reqid: u32,
    client: u64,
    wanted: bool,
    /// The request's trace id: its answer carries it back, however late.
    trace: u64,
}

impl ReplyTo {
    /// After `takeip` / `releaseip` ran, Samba's daemon tells its own clients (smbd
    /// closes its connections on a released address): TAKE_IP / RELEASE_IP with the
    /// address as a NUL-terminated string.
    fn tell_clients(&self, out: &Outbox, event: &str, addr: std::net::IpAddr) {
        let srvid = match event {
            "takeip" => ctdb_protocol::srvid::TAKE_IP,
            "releaseip" => ctdb_protocol::srvid::RELEASE_IP,
            _ => return,
        };
        let mut data = addr.to_string().into_bytes();
        data.push(0);
        let packet = Packet {
            generation: self.generation,
            destnode: self.srcnode,
            srcnode: self.srcnode,
            reqid: 0,
            body: Body::ReqMessage(ctdb_protocol::ReqMessage {
                srvid,
                data: Bytes::from(data),
            }),
        };
        out.to_client_traced(0, self.trace, packet.to_bytes());
    }

    fn send(&self, out: &Outbox, reply: ReplyControl) {
        if !self.wanted {
            return;
        }
        let reply = Packet {
            generation: self.generation,
            destnode: self.destnode,
            srcnode: self.srcnode,
            reqid: self.reqid,
            body: Body::ReplyControl(reply),
        };
        out.send(Envelope {
            client: self.client,
            from_node: u32::MAX,
            packet: reply.to_bytes().into(),
            trace: self.trace,
        });
    }
}

#[cfg(test)]
mod tests {
    //! The public address controls, fed what Samba 4.17's tool sent to a Samba node
    //! (vectors/samba-4.17/client.jsonl), answer what that node answered.

    use super::*;

    /// The packet captured as record `i` of client.jsonl.
    fn packet(i: u32) -> Packet {
        crate::vectors::packet("client.jsonl", i)
    }

    /// Feeds request `i` to `state` and checks the answer against reply `i + 1`.
    fn same_answer(state: &mut Recoverd, i: u32) {
        let Body::ReqControl(request) = packet(i).body else {
            panic!("i={i} is not a control");
        };
        let Body::ReplyControl(samba) = packet(i + 1).body else {
            panic!("i={} is not a reply", i + 1);
        };
        let (out, _) = Outbox::new();
        let to = ReplyTo {
            generation: 0,
            destnode: 0,
            srcnode: 0,
            reqid: 0,
            client: 1,
            wanted: true,
            trace: 0,
        };
        let handler = CONTROLS
            .get(request.opcode)
            .unwrap_or_else(|| panic!("{} not in the table", request.opcode));
        let r = Request {
            control: &request,
            srcnode: 0,
            to: &to,
            out: &out,
        };
        let ours = handler(state, &r)
            .unwrap_or_else(|e| panic!("{}: {e}", request.opcode))
            .unwrap_or_else(|| panic!("{}: answered later", request.opcode));
        assert_eq!(
            (ours.status, ours.data.to_vec()),
            (samba.status, samba.data.to_vec()),
            "{} (i={i})",
            request.opcode
        );
    }

    #[test]
    fn public_address_controls_answer_as_samba_did() {
        let mut node0 = Recoverd::new(0, None);
        // `ip`, `ifaces` with no public addresses.
        same_answer(&mut node0, 990);
        same_answer(&mut node0, 1008);
        // `addip 10.250.0.1/24 lo`, then `ipinfo 10.250.0.1`.
        same_answer(&mut node0, 1565);
        same_answer(&mut node0, 1584);
        // `delip`: the list it reads first, then the delete.
        same_answer(&mut node0, 1676);
        same_answer(&mut node0, 1678);
        let after = node0.ips().list(false);
        assert!(after.ips.is_empty());
    }
}
