//! The recovery daemon's main loop, driven through the node's client socket like
//! Samba's recovery daemon: every RecoverInterval it learns the leader, takes part in
//! the election, and, when it leads, announces itself, checks the cluster, recovers and
//! runs takeover runs. Its other srvids are served beside the loop (`messages`), which
//! wakes it early when a message needs a round.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_client::{Client, ClientError, Message};
use ctdb_common::tunables::Tunables;
use ctdb_protocol::control::{BanState, NodeFlagChange, NodeMap};
use ctdb_protocol::flags::{capability, dest, node};
use ctdb_protocol::{srvid, Opcode, Wire};
use tokio::sync::mpsc::Receiver;
use tokio::sync::Notify;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use crate::banning::Culprits;
use crate::election::{choose_leader, is_active, ElectionMessage, Roles};
use crate::lease::{self, Leases, Want};
use crate::messages::{self, answer, failure, Requests, Takeover};
use crate::monitor::{assess, gather};
use crate::nodes::ok;
use crate::reclock::{self, Attempt, LockSpec, RecoveryLock};
use crate::recovery::{recover, Plan};
use crate::{takeover, Recoverd};

/// Wakes the loop at every change of the node states transport publishes
/// (`WatchNodes`: node flags, generation), following them again after a transport
/// restart.
async fn follow_nodes(transport: Channel, wake: Arc<Notify>) {
    let mut client = ctdb_rpc::transport_client::TransportClient::new(transport);
    loop {
        match client.watch_nodes(ctdb_rpc::Empty {}).await {
            Ok(response) => {
                let mut states = response.into_inner();
                while let Ok(Some(_)) = states.message().await {
                    wake.notify_one();
                }
                debug!("transport's node states ended; following them again");
            }
            Err(e) => debug!("cannot follow transport's node states yet: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How the loop reaches the rest of its node.
pub struct Monitor {
    pub socket: PathBuf,
    pub eventd: Channel,
    pub state: Arc<Mutex<Recoverd>>,
    /// What the srvids asked; kept across connections, like a disable's deadline.
    pub requests: Arc<Mutex<Requests>>,
    wake: Arc<Notify>,
    /// The leader lease and this node's promise; kept across connections.
    leases: Arc<Mutex<Leases>>,
    /// Transport's gRPC socket: its `WatchNodes` wakes the loop at every change.
    transport: Option<Channel>,
}

impl Monitor {
    pub fn new(socket: PathBuf, eventd: Channel, state: Arc<Mutex<Recoverd>>) -> Self {
        let pnn = ctdb_rpc::component::lock(&state).pnn;
        Self {
            socket,
            eventd,
            state,
            requests: Arc::default(),
            wake: Arc::default(),
            leases: Arc::new(Mutex::new(Leases::new(
                pnn,
                DEFAULT_LEASE,
                None,
                Instant::now(),
            ))),
            transport: None,
        }
    }

    /// Follows the node states transport publishes on `transport` (its gRPC socket):
    /// a node that goes or comes wakes the loop at once instead of at its next round.
    pub fn with_transport(mut self, transport: Channel) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Where this node notes the lease promise it gives, so that a restarted recovery
    /// daemon keeps it (see [`lease`]).
    pub fn with_promise_file(mut self, path: PathBuf) -> Self {
        let pnn = ctdb_rpc::component::lock(&self.state).pnn;
        self.leases = Arc::new(Mutex::new(Leases::new(
            pnn,
            DEFAULT_LEASE,
            Some(path),
            Instant::now(),
        )));
        self
    }

    /// Runs forever: (re)connects to the node and runs the loop while connected.
    pub async fn run(self) {
        if let Some(transport) = self.transport.clone() {
            tokio::spawn(follow_nodes(transport, self.wake.clone()));
        }
        loop {
            let client = match Client::connect(&self.socket).await {
                Ok(c) => c,
                Err(e) => {
                    debug!("node not reachable yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            info!(pnn = client.pnn(), "recovery daemon connected to its node");
            // The node's start time, which the startup marker holds.
            if let Ok(u) = client
                .uptime(ctdb_protocol::flags::dest::CURRENT_NODE)
                .await
            {
                let started = format!(
                    "{}.{:06}\n",
                    u.ctdbd_start_time.sec, u.ctdbd_start_time.usec
                );
                let startup = ctdb_rpc::component::lock(&self.state).startup.clone();
                ctdb_rpc::component::lock(&startup).node_started = Some(started);
            }
            let announcer = tokio::spawn(announce_leadership(
                client.clone(),
                self.state.clone(),
                self.leases.clone(),
            ));
            let lease_keeper = tokio::spawn(lease::keep(client.clone(), self.leases.clone()));
            let server = match messages::register(&client).await {
                Ok(inbox) => Some(tokio::spawn(messages::serve(
                    inbox,
                    client.clone(),
                    self.requests.clone(),
                    self.wake.clone(),
                ))),
                Err(e) => {
                    warn!("cannot register the recovery daemon's srvids: {e}");
                    None
                }
            };
            match Session::start(client, self.state.clone(), self.shared()).await {
                Ok(mut session) => session.run().await,
                Err(e) => warn!("cannot start monitoring: {e}"),
            }
            announcer.abort();
            lease_keeper.abort();
            if let Some(server) = server {
                server.abort();
            }
            {
                let mut state = ctdb_rpc::component::lock(&self.state);
                state.leader = None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn shared(&self) -> Shared {
        Shared {
            requests: self.requests.clone(),
            wake: self.wake.clone(),
            leases: self.leases.clone(),
        }
    }
}

/// The lease time before the first round reads ElectionTimeout (its default).
const DEFAULT_LEASE: Duration = Duration::from_secs(3);

/// What the loop shares with the message and lease tasks.
struct Shared {
    requests: Arc<Mutex<Requests>>,
    wake: Arc<Notify>,
    leases: Arc<Mutex<Leases>>,
}

/// While this node leads, tells every connected node so every second (the LEADER
/// message, data: our pnn), also while a long recovery runs (without a recovery lock,
/// only while its lease holds).
async fn announce_leadership(
    client: Client,
    state: Arc<Mutex<Recoverd>>,
    leases: Arc<Mutex<Leases>>,
) {
    loop {
        let (pnn, leader, with_lock) = {
            let state = ctdb_rpc::component::lock(&state);
            (state.pnn, state.leader, state.reclock.is_some())
        };
        // Without a lock, only while the lease holds (the loop may be busy with a long
        // recovery while it runs out): others take the announcement for a lease.
        let holding = with_lock
            || ctdb_rpc::component::lock(&leases)
                .holding(Instant::now())
                .is_some();
        if leader == Some(pnn) && holding {
            let data = Bytes::copy_from_slice(&pnn.to_le_bytes());
            if client
                .send_message(dest::BROADCAST_CONNECTED, srvid::samba::LEADER, data)
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The tunables the loop follows, read from the node each round.
#[derive(Debug, Clone, Copy)]
struct Settings {
    interval: Duration,
    recover_timeout: Duration,
    election_timeout: Duration,
    takeover_timeout: Duration,
    ban_period: u32,
    grace: Duration,
    enable_bans: bool,
    no_ip_failback: bool,
    /// TickleUpdateInterval.
    tickle_update: Duration,
}

/// The tunables [`Settings::read`] reads.
const TUNABLES_READ: [&str; 9] = [
    "RecoverInterval",
    "RecoverTimeout",
    "ElectionTimeout",
    "TakeoverTimeout",
    "RecoveryBanPeriod",
    "RecoveryGracePeriod",
    "EnableBans",
    "NoIPFailback",
    "TickleUpdateInterval",
];

impl Settings {
    /// Monitoring must not stall the loop for RecoverTimeout on one silent node: it
    /// waits ElectionTimeout at most.
    fn monitor_timeout(&self) -> Duration {
        self.election_timeout.min(self.recover_timeout)
    }

    /// The tunables as the node has them now. One that cannot be read (transport
    /// restarting, a timeout) keeps the value last read in `seen`, and only a tunable
    /// never read falls back to its default: a hiccup must not turn bans back on
    /// behind an administrator who switched them off.
    async fn read(
        client: &Client,
        seen: &mut std::collections::HashMap<&'static str, u32>,
    ) -> Self {
        let defaults = Tunables::default();
        let fallbacks: std::collections::HashMap<&'static str, u32> = TUNABLES_READ
            .iter()
            .map(|&name| {
                let last = seen.get(name).copied();
                (
                    name,
                    last.unwrap_or_else(|| defaults.get(name).unwrap_or(1)),
                )
            })
            .collect();
        let read = std::sync::Mutex::new(Vec::new());
        let get = |name: &'static str| {
            let fallback = fallbacks.get(name).copied().unwrap_or(1);
            let read = &read;
            async move {
                match client.get_tunable(dest::CURRENT_NODE, name).await {
                    Ok(value) => {
                        read.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((name, value));
                        value
                    }
                    Err(_) => fallback,
                }
            }
        };
        let (interval, timeout, election, takeover, ban, grace, bans, no_failback, tickles) = tokio::join!(
            get("RecoverInterval"),
            get("RecoverTimeout"),
            get("ElectionTimeout"),
            get("TakeoverTimeout"),
            get("RecoveryBanPeriod"),
            get("RecoveryGracePeriod"),
            get("EnableBans"),
            get("NoIPFailback"),
            get("TickleUpdateInterval"),
        );
        seen.extend(read.into_inner().unwrap_or_else(|p| p.into_inner()));
        let secs = |s: u32| Duration::from_secs(u64::from(s.max(1)));
        Self {
            interval: secs(interval),
            recover_timeout: secs(timeout),
            election_timeout: secs(election),
            takeover_timeout: secs(takeover),
            ban_period: ban,
            grace: Duration::from_secs(u64::from(grace)),
            enable_bans: bans != 0,
            no_ip_failback: no_failback != 0,
            tickle_update: secs(tickles),
        }
    }
}

/// One connection's worth of the loop.
struct Session {
    client: Client,
    state: Arc<Mutex<Recoverd>>,
    pnn: u32,
    leaders: Receiver<Message>,
    elections: Receiver<Message>,
    roles: Roles,
    /// The last leader announcement from another node: (its pnn, when).
    heard: Option<(u32, Instant)>,
    lock: Option<RecoveryLock>,
    culprits: Culprits,
    /// When we last announced our roles, and which.
    announced: Option<(Instant, u32)>,
    leading: bool,
    last_recovery_failed: bool,
    shared: Shared,
    /// A takeover run is due: a failed one is to be retried, a recovery ended, this
    /// node became leader, or the nodes that may host addresses changed.
    need_takeover_run: bool,
    /// The nodes that could host addresses at the last takeover run.
    last_eligible: Vec<u32>,
    /// Whether we already said that a disable holds back a recovery / takeover run.
    said_recovery_deferred: bool,
    said_takeover_deferred: bool,
    /// When a leader last reached this node (see [`Session::isolate_if_cut_off`]).
    last_in_cluster: Instant,
    /// Whether this node isolated itself for want of a majority.
    isolated: bool,
    /// Whether this node stopped serving for its ban.
    stopped_for_ban: bool,
    /// When this node last sent the others the tickle lists of its addresses.
    tickles_sent: Instant,
    /// No recovery lock: leadership and recoveries need a majority of the nodes.
    majority_rules: bool,
    /// Whether we already said that a recovery waits for a majority.
    said_minority_recovery: bool,
    /// The tunables as last read from the node (see [`Settings::read`]).
    tunables_seen: std::collections::HashMap<&'static str, u32>,
}

impl Session {
    async fn start(
        client: Client,
        state: Arc<Mutex<Recoverd>>,
        shared: Shared,
    ) -> Result<Self, ClientError> {
        let leaders = client.register_srvid(srvid::samba::LEADER).await?;
        let elections = client.register_srvid(srvid::samba::ELECTION).await?;
        let pnn = client.pnn();
        Ok(Self {
            client,
            state,
            pnn,
            leaders,
            elections,
            roles: Roles::default(),
            heard: None,
            lock: None,
            culprits: Culprits::default(),
            announced: None,
            leading: false,
            last_recovery_failed: false,
            shared,
            need_takeover_run: false,
            last_eligible: Vec::new(),
            said_recovery_deferred: false,
            said_takeover_deferred: false,
            last_in_cluster: Instant::now(),
            isolated: false,
            stopped_for_ban: false,
            tickles_sent: Instant::now(),
            majority_rules: true,
            said_minority_recovery: false,
            tunables_seen: std::collections::HashMap::new(),
        })
    }

    async fn run(&mut self) {
        loop {
            let settings = Settings::read(&self.client, &mut self.tunables_seen).await;
            match self.round(&settings).await {
                Ok(()) => {}
                Err(ClientError::Disconnected) => {
                    warn!("lost the connection to the node");
                    self.step_down("the node went away");
                    return;
                }
                Err(e) => warn!("monitoring round failed: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(settings.interval) => {}
                () = self.shared.wake.notified() => {}
                // A leader announcing itself: this node knows it at once (GET_RECMASTER),
                // not at its next round.
                Some(m) = self.leaders.recv() => self.heard_leader(&m),
            }
        }
    }

    /// One round: messages, election, and the leader's work.
    async fn round(&mut self, s: &Settings) -> Result<(), ClientError> {
        self.read_messages();
        let (leader_role, lmaster_role, reclock) = {
            let state = ctdb_rpc::component::lock(&self.state);
            (state.leader_role, state.lmaster_role, state.reclock.clone())
        };
        let caps = if leader_role {
            capability::RECMASTER
        } else {
            0
        } | if lmaster_role { capability::LMASTER } else { 0 };
        self.roles.set(self.pnn, caps);

        let mine = self.client.get_nodemap(dest::CURRENT_NODE).await?;
        let own_flags = mine
            .nodes
            .iter()
            .find(|n| n.pnn == self.pnn)
            .map_or(0, |n| n.flags);
        self.announce_roles(caps, own_flags, &mine, s);
        self.expire_own_ban(own_flags).await;
        self.stop_serving_while_banned(own_flags, s.election_timeout)
            .await;
        self.send_tickle_lists(s);
        let eligible = leader_role && is_active(own_flags);

        let spec = reclock.as_deref().and_then(LockSpec::parse);
        self.majority_rules = spec.is_none();
        let leader = match spec {
            Some(spec) => self.lock_election(&spec, eligible, &mine, s).await,
            None => {
                self.lock = None;
                let (leader, in_cluster) = self.lease_election(eligible, &mine, s);
                self.isolate_if_cut_off(in_cluster, s.election_timeout)
                    .await;
                leader
            }
        };
        let leading = leader == Some(self.pnn) && eligible;
        ctdb_rpc::component::lock(&self.state).set_leader(leader);
        {
            let mut requests = ctdb_rpc::component::lock(&self.shared.requests);
            if leading {
                requests.leading = true;
            } else {
                requests.not_leading();
            }
        }
        if leading != self.leading {
            if leading {
                info!(pnn = self.pnn, "this node is the leader now");
                // Announced at once (the announcer repeats it every second), so that
                // the other nodes know their leader before its first recovery ends.
                let data = Bytes::copy_from_slice(&self.pnn.to_le_bytes());
                let _ =
                    self.client
                        .send_message(dest::BROADCAST_CONNECTED, srvid::samba::LEADER, data);
                self.culprits = Culprits::default();
                // Place the addresses as this leader sees fit.
                self.need_takeover_run = true;
            } else {
                info!(?leader, "this node no longer leads");
                self.need_takeover_run = false;
            }
            self.leading = leading;
        }
        if leading {
            self.lead(&mine, s).await;
        }
        Ok(())
    }

    /// A LEADER message: which node announced itself, and when we heard it.
    fn heard_leader(&mut self, m: &Message) {
        if let Some(pnn) = m
            .data
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        {
            if pnn != self.pnn {
                self.heard = Some((pnn, Instant::now()));
            }
        }
    }

    fn read_messages(&mut self) {
        while let Ok(m) = self.leaders.try_recv() {
            self.heard_leader(&m);
        }
        let from_recovery = ctdb_rpc::component::lock(&self.state).recovery_from.take();
        if let Some((pnn, when)) = from_recovery {
            if self.heard.is_none_or(|(_, heard)| heard < when) {
                self.heard = Some((pnn, when));
            }
        }
        while let Ok(m) = self.elections.try_recv() {
            if let Some(e) = ElectionMessage::from_bytes(&m.data) {
                if e.pnn != self.pnn {
                    self.roles.set(e.pnn, e.capabilities);
                }
            }
        }
    }

    /// Tells every node our roles when they change, and again every ElectionTimeout.
    fn announce_roles(&mut self, caps: u32, own_flags: u32, mine: &NodeMap, s: &Settings) {
        let due = match self.announced {
            Some((when, sent)) => sent != caps || when.elapsed() >= s.election_timeout,
            None => true,
        };
        if !due {
            return;
        }
        let connected = mine
            .nodes
            .iter()
            .filter(|n| n.flags & node::DISCONNECTED == 0)
            .count() as u32;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let message = ElectionMessage {
            num_connected: if caps & capability::RECMASTER != 0 {
                connected
            } else {
                0
            },
            priority_sec: now.as_secs() as i64,
            priority_usec: i64::from(now.subsec_micros()),
            pnn: self.pnn,
            node_flags: own_flags,
            capabilities: caps,
        };
        match self.client.send_message(
            dest::BROADCAST_CONNECTED,
            srvid::samba::ELECTION,
            message.to_bytes(),
        ) {
            Ok(()) => self.announced = Some((Instant::now(), caps)),
            Err(e) => debug!("cannot announce roles: {e}"),
        }
    }

    /// Election with a recovery lock: the holder leads. We race for the lock when we may
    /// lead and no active node announced itself leader within ElectionTimeout.
    async fn lock_election(
        &mut self,
        spec: &LockSpec,
        eligible: bool,
        mine: &NodeMap,
        s: &Settings,
    ) -> Option<u32> {
        if let Some(lock) = &mut self.lock {
            let lost = if lock.spec() != spec {
                Some("the recovery lock setting changed".to_string())
            } else if !eligible {
                Some("this node may not lead".to_string())
            } else {
                lock.still_held().err()
            };
            if let Some(why) = lost {
                self.step_down(&why);
            }
        }
        // Two holders of "the" lock: it is not shared (a file on each node's own disk,
        // or a helper that says yes to everyone). The higher pnn yields, and does not
        // try again while it hears the other lead.
        let rival = self
            .heard
            .filter(|(pnn, when)| *pnn < self.pnn && when.elapsed() < s.election_timeout);
        if let (Some(_), Some((rival, _))) = (&self.lock, rival) {
            tracing::error!(
                rival,
                ?spec,
                "another node leads holding the recovery lock too: the lock is not shared \
                 by the nodes (check its path or helper); yielding to the lower pnn"
            );
            self.step_down("another node holds the recovery lock too");
        }
        let heard = self.heard.filter(|(pnn, when)| {
            when.elapsed() < s.election_timeout
                && mine
                    .nodes
                    .iter()
                    .any(|n| n.pnn == *pnn && is_active(n.flags))
        });
        let mut contended = false;
        if self.lock.is_none() && eligible && heard.is_none() {
            match reclock::try_take(spec, s.recover_timeout).await {
                Attempt::Held(lock) => {
                    info!(?spec, "took the recovery lock");
                    self.lock = Some(lock);
                }
                Attempt::Contended => {
                    debug!("recovery lock held elsewhere");
                    contended = true;
                }
                Attempt::Failed(e) => warn!("cannot take the recovery lock: {e}"),
            }
        }
        if self.lock.is_some() {
            Some(self.pnn)
        } else if contended {
            // Someone holds the lock: the last leader we heard is the best guess.
            self.heard.map(|(pnn, _)| pnn)
        } else {
            heard.map(|(pnn, _)| pnn)
        }
    }

    /// Election without a recovery lock: this node leads while it holds a lease from a
    /// majority of the nodes file (see [`lease`]). It campaigns when it may lead, holds
    /// the lease already, or is the node the rules would choose and no other leader is
    /// known (one it promised its lease to, one heard announcing itself, or one named
    /// in a refusal). Returns the leader as this node knows it, and whether some leader
    /// reaches this node (it holds the lease, promised it to a live holder, or heard a
    /// leader within a lease time).
    fn lease_election(
        &mut self,
        eligible: bool,
        mine: &NodeMap,
        s: &Settings,
    ) -> (Option<u32>, bool) {
        let now = Instant::now();
        let lease = s.election_timeout;
        let nodes = mine
            .nodes
            .iter()
            .filter(|n| n.flags & node::DELETED == 0)
            .count();
        let ask: Vec<u32> = mine
            .nodes
            .iter()
            .filter(|n| n.pnn != self.pnn && n.flags & (node::DISCONNECTED | node::DELETED) == 0)
            .map(|n| n.pnn)
            .collect();
        let heard = self
            .heard
            .filter(|(pnn, when)| *pnn != self.pnn && when.elapsed() < lease)
            .map(|(pnn, _)| pnn);
        let chosen = choose_leader(mine, &self.roles);
        let mut leases = ctdb_rpc::component::lock(&self.shared.leases);
        leases.lease = lease;
        if !eligible {
            leases.held = None;
        }
        let holding = leases.holding(now).is_some();
        let other = leases
            .promised_elsewhere(now)
            .map(|g| g.holder)
            .or(heard)
            .or_else(|| leases.refused_for(now));
        let campaign = eligible && (holding || (other.is_none() && chosen == Some(self.pnn)));
        leases.want = campaign.then_some(Want { nodes, ask });
        let leader = if holding { Some(self.pnn) } else { other };
        // A leader announces itself only while it holds its lease: hearing it is as good
        // as a promise to it (ours may still belong to a campaign of our own).
        (leader, leases.in_cluster(now) || heard.is_some())
    }

    /// A node that no leader has reached since its promise ran out is in a minority (or
    /// no leader exists yet): it stops serving until a recovery takes it back — recovery
    /// mode, databases frozen, public addresses released. Asserted again every round
    /// (a restarted database daemon starts thawed).
    async fn isolate_if_cut_off(&mut self, in_cluster: bool, lease: Duration) {
        let now = Instant::now();
        if in_cluster {
            if self.isolated {
                info!("a leader reaches this node again: its recovery will take it back");
            }
            self.last_in_cluster = now;
            self.isolated = false;
            return;
        }
        // A third of a lease time of grace: one missed renewal is no cut.
        if now.duration_since(self.last_in_cluster) < lease / 3 {
            return;
        }
        if !self.isolated {
            warn!(
                seconds = now.duration_since(self.last_in_cluster).as_secs_f32(),
                "no leader with a majority reaches this node: stopping service \
                 (recovery mode, databases frozen, public addresses released)"
            );
            self.isolated = true;
        }
        self.stop_serving(lease).await;
    }

    /// This node serves nothing until a recovery takes it back: recovery mode, every
    /// database frozen (local clients wait), its public addresses released.
    async fn stop_serving(&self, t: Duration) {
        let here = dest::CURRENT_NODE;
        let active = Bytes::from(ctdb_protocol::flags::recmode::ACTIVE.to_bytes());
        if let Err(e) = ok(&self.client, here, Opcode::SetRecmode, active, t).await {
            warn!("cannot enter recovery mode: {e}");
        }
        if let Err(e) = ok(&self.client, here, Opcode::Freeze, Bytes::new(), t).await {
            warn!("cannot freeze the databases: {e}");
        }
        if let Err(e) = takeover::release_own(&self.client, self.pnn, t).await {
            warn!("cannot release the public addresses: {e}");
        }
    }

    /// Every TickleUpdateInterval, the tickle list of each address this node holds goes
    /// to every connected node (SET_TCP_TICKLE_LIST, no reply), as Samba's holder
    /// sends it: a node that came up after a client registered its connection (or an
    /// `addtickle`, which tells one node only) learns it so.
    fn send_tickle_lists(&mut self, s: &Settings) {
        if self.tickles_sent.elapsed() < s.tickle_update {
            return;
        }
        self.tickles_sent = Instant::now();
        let lists: Vec<ctdb_protocol::control::TickleList> = {
            let state = ctdb_rpc::component::lock(&self.state);
            let held = ctdb_rpc::component::lock(&state.ips).list(false);
            held.ips
                .iter()
                .filter(|ip| ip.pnn == self.pnn)
                .map(|ip| state.tickles.list(ip.addr, 0))
                .collect()
        };
        for list in lists {
            let data = Bytes::from(list.to_bytes());
            if let Err(e) = self.client.control_noreply(
                dest::BROADCAST_CONNECTED,
                Opcode::SetTcpTickleList,
                0,
                data,
            ) {
                debug!("cannot send a tickle list: {e}");
            }
        }
    }

    /// A banned node stops serving, as Samba's does: its clients must not commit in a
    /// generation the others left (each failed round would ask for another recovery),
    /// nor reach addresses it should not hold. The recovery after the ban takes it back.
    async fn stop_serving_while_banned(&mut self, own_flags: u32, t: Duration) {
        let banned = own_flags & node::BANNED != 0;
        if banned && !self.stopped_for_ban {
            warn!("this node is banned: stopping service until a recovery takes it back");
            self.stop_serving(t).await;
        }
        self.stopped_for_ban = banned;
    }

    fn step_down(&mut self, why: &str) {
        if self.lock.take().is_some() {
            info!(why, "released the recovery lock");
        }
        if self.leading {
            info!(why, "stepping down as leader");
            self.leading = false;
        }
    }

    /// Transport keeps a ban's BANNED flag until told otherwise: when our ban has run
    /// out, lift it.
    async fn expire_own_ban(&self, own_flags: u32) {
        if own_flags & node::BANNED == 0 {
            return;
        }
        let here = dest::CURRENT_NODE;
        let Ok(data) = self
            .client
            .control(here, Opcode::GetBanState, 0, Bytes::new())
            .await
        else {
            return;
        };
        if matches!(BanState::from_bytes(&data), Ok(b) if b.time == 0) {
            info!("the ban ran out: lifting it");
            let lift = BanState {
                pnn: self.pnn,
                time: 0,
            };
            if let Err(e) = self
                .client
                .control(here, Opcode::SetBanState, 0, lift.to_bytes().into())
                .await
            {
                warn!("cannot lift the ban: {e}");
            }
        }
    }

    /// The leader's round: check every active node, push flags, recover when needed.
    async fn lead(&mut self, mine: &NodeMap, s: &Settings) {
        let client = &self.client;
        let connected: Vec<u32> = mine
            .nodes
            .iter()
            .filter(|n| n.flags & (node::DISCONNECTED | node::DELETED) == 0)
            .map(|n| n.pnn)
            .collect();
        let (states, errors) = gather(client, &connected, s.monitor_timeout()).await;
        for e in errors {
            warn!("cannot read the state of {e}");
        }
        let a = assess(self.pnn, mine, &states, &self.roles);
        for (to, change) in &a.flag_updates {
            info!(
                to,
                node = change.pnn,
                flags = format!("{:#x}", change.new_flags),
                "pushing node flags"
            );
            let data = Bytes::from(change.to_bytes());
            if let Err(e) = ok(client, *to, Opcode::ModifyFlags, data, s.monitor_timeout()).await {
                warn!("cannot push flags: {e}");
            }
        }
        let Some(why) = a.recovery else {
            self.takeover(mine, &connected, s).await;
            return;
        };
        // Without a recovery lock a recovery installs a generation only for a majority
        // of the nodes file: every node of its vnn map must apply a commit, so a
        // generation of fewer nodes would let a minority acknowledge commits the next
        // recovery drops (a leader whose lease still runs may see its peers
        // disconnected for a moment, e.g. right after its transport restarted).
        if self.majority_rules {
            let nodes = mine
                .nodes
                .iter()
                .filter(|n| n.flags & node::DELETED == 0)
                .count();
            if a.active.len() < crate::lease::majority(nodes) {
                if !self.said_minority_recovery {
                    info!(
                        reason = %why,
                        active = ?a.active,
                        nodes,
                        "recovery needed, but the active nodes are no majority: waiting"
                    );
                    self.said_minority_recovery = true;
                }
                return;
            }
            self.said_minority_recovery = false;
        }
        // Disabled recoveries (Samba's tool, around reloadnodes): wait, and look again
        // next round.
        let begun = ctdb_rpc::component::lock(&self.shared.requests)
            .recoveries
            .begin(Instant::now());
        if let Err(left) = begun {
            if !self.said_recovery_deferred {
                info!(
                    reason = %why,
                    seconds_left = left.as_secs(),
                    "recovery needed, but recoveries are disabled: waiting"
                );
                self.said_recovery_deferred = true;
            }
            return;
        }
        self.said_recovery_deferred = false;
        info!(reason = %why, "recovery needed");
        if let Some(culprit) = a.culprit.filter(|_| !self.last_recovery_failed) {
            self.culprits.add(culprit, Instant::now(), s.grace);
        }
        let generations: Vec<(u32, u32)> = states
            .iter()
            .filter(|s| a.active.contains(&s.pnn))
            .map(|s| (s.pnn, s.vnnmap.generation))
            .collect();
        let plan = Plan {
            leader: self.pnn,
            incumbents: crate::recovery::incumbents(&generations, self.pnn),
            active: a.active,
            vnnmap: a.vnnmap,
            old_generations: states.iter().map(|s| s.vnnmap.generation).collect(),
            timeout: s.recover_timeout,
        };
        let result = recover(client, &plan).await;
        ctdb_rpc::component::lock(&self.shared.requests)
            .recoveries
            .end();
        match result {
            // Samba's leader follows each recovery with a takeover run; every node
            // answered END_RECOVERY once its `recovered` ran, so the run goes now.
            Ok(_) => {
                self.last_recovery_failed = false;
                self.need_takeover_run = true;
            }
            Err(f) => {
                warn!("{f}");
                self.last_recovery_failed = true;
                self.culprits.add(f.culprit, Instant::now(), s.grace);
            }
        }
        self.ban_culprits(mine, s).await;
    }

    /// The leader's takeover run, when one is needed or asked for and takeover runs
    /// are not disabled; answers the requests that were waiting with the result.
    async fn takeover(&mut self, mine: &NodeMap, connected: &[u32], s: &Settings) {
        let eligible: Vec<u32> = mine
            .nodes
            .iter()
            .filter(|n| connected.contains(&n.pnn))
            .filter(|n| n.flags & (node::INACTIVE | node::DISABLED) == 0)
            .map(|n| n.pnn)
            .collect();
        if eligible != self.last_eligible {
            self.need_takeover_run = true;
        }
        if !self.need_takeover_run {
            match takeover::in_order(&self.client, connected, &eligible, s.monitor_timeout()).await
            {
                Ok(true) => {}
                Ok(false) => {
                    info!("public addresses are not where they belong: takeover run");
                    self.need_takeover_run = true;
                }
                Err(e) => debug!("cannot check the public addresses: {e}"),
            }
        }
        let now = Instant::now();
        let due = self.need_takeover_run;
        let start = ctdb_rpc::component::lock(&self.shared.requests).start_takeover(now, due);
        let (waiting, rebalance) = match start {
            Takeover::Idle => return,
            Takeover::Deferred(left) => {
                if !self.said_takeover_deferred {
                    info!(
                        seconds_left = left.as_secs(),
                        "takeover run due, but takeover runs are disabled: waiting"
                    );
                    self.said_takeover_deferred = true;
                }
                return;
            }
            Takeover::Run { waiting, rebalance } => (waiting, rebalance),
        };
        self.said_takeover_deferred = false;
        let run = takeover::Run {
            leader: self.pnn,
            connected,
            eligible: &eligible,
            rebalance: &rebalance,
            failback: !s.no_ip_failback,
            timeout: s.takeover_timeout,
        };
        let result = takeover::run(&self.client, &run).await;
        let value = {
            let mut requests = ctdb_rpc::component::lock(&self.shared.requests);
            requests.takeover_runs.end();
            match &result {
                Ok(()) => self.pnn as i32,
                Err(_) => {
                    // Keep the nodes to rebalance for the retry.
                    requests.rebalance.extend(rebalance.iter().copied());
                    failure(nix::errno::Errno::EIO)
                }
            }
        };
        match result {
            Ok(()) => {
                info!(answered = waiting.len(), "takeover run done");
                self.need_takeover_run = false;
                self.last_eligible = eligible;
            }
            Err(e) => {
                warn!("takeover run failed, retrying next round: {e}");
                self.need_takeover_run = true;
            }
        }
        for w in waiting {
            answer(&self.client, w.pnn, w.srvid, value);
        }
    }

    async fn ban_culprits(&mut self, mine: &NodeMap, s: &Settings) {
        for pnn in self.culprits.to_ban(mine.nodes.len(), s.enable_bans) {
            warn!(
                pnn,
                recoveries = self.culprits.count(pnn),
                seconds = s.ban_period,
                "node keeps causing recoveries: banning it"
            );
            self.culprits.forget(pnn);
            let ban = BanState {
                pnn,
                time: s.ban_period,
            };
            let data = Bytes::from(ban.to_bytes());
            if let Err(e) = ok(
                &self.client,
                pnn,
                Opcode::SetBanState,
                data,
                s.recover_timeout,
            )
            .await
            {
                warn!("cannot ban node {pnn}: {e}");
            }
            // Tell the others at once, also when the banned node cannot hear it; its own
            // view wins again once it answers.
            let old_flags = mine
                .nodes
                .iter()
                .find(|n| n.pnn == pnn)
                .map_or(0, |n| n.flags);
            let change = NodeFlagChange {
                pnn,
                new_flags: old_flags | node::BANNED,
                old_flags,
            };
            for other in mine
                .nodes
                .iter()
                .filter(|n| n.pnn != pnn && n.flags & (node::DISCONNECTED | node::DELETED) == 0)
            {
                let data = Bytes::from(change.to_bytes());
                let t = s.monitor_timeout();
                if let Err(e) = ok(&self.client, other.pnn, Opcode::ModifyFlags, data, t).await {
                    warn!("cannot tell node {} of the ban: {e}", other.pnn);
                }
            }
        }
    }
}
