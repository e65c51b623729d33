//! Leadership without a recovery lock: a lease granted by a majority of the nodes file.
//!
//! Samba without a recovery lock lets each side of a partition elect its own leader.
//! Here a node leads only while it holds a lease that a majority of the nodes file's
//! nodes (deleted entries aside) granted it, itself included:
//! - Every node keeps one [`Promise`]: to at most one candidate at a time, for the lease
//!   time (ElectionTimeout) from when it answered. While a promise to one node is live it
//!   refuses every other candidate and names the holder; the holder may renew it.
//! - A candidate asks every connected node ([`LeaseRequest`], srvid
//!   [`LEASE_REQUEST`](ctdb_protocol::srvid::rs::LEASE_REQUEST)) and counts the grants of
//!   one attempt ([`Campaign`]). With a majority it holds the lease until the attempt's
//!   *start* plus the lease time less a margin: every promise of that attempt was given
//!   later, so the lease always ends before any granter may promise another node — two
//!   leases never overlap, and two majorities always share a node.
//! - The leader renews every third of the lease time, also while a long recovery runs
//!   (the renewal is its own task). A leader that cannot renew loses the lease when it
//!   runs out and stops leading.
//! - A node that neither holds a lease nor has a live promise to another node is cut off
//!   from any leader (it is in a minority, or no leader exists yet). After a third of a
//!   lease time of that the daemon isolates it: recovery mode, databases frozen (no calls,
//!   migrations or commits served), public addresses released. It rejoins through the
//!   recovery that the leader runs when it sees it again.
//!
//! Terms number the leases a node won (the next above any it has heard of); they are for
//! logs and for telling the current holder apart, safety comes from the promises.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};

use crate::messages::{u32_at, u64_at};

/// How much earlier than the promises a lease ends, for clocks that do not tick alike.
pub const MARGIN: Duration = Duration::from_millis(100);

/// How many nodes make a majority of `nodes` (the nodes file's entries that are not
/// deleted).
pub fn majority(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// A candidate's request: grant (or renew) my lease of this term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRequest {
    pub candidate: u32,
    pub term: u64,
    /// Which attempt of the candidate this is; echoed in the reply.
    pub attempt: u64,
}

impl LeaseRequest {
    pub const SIZE: usize = 20;

    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(Self::SIZE);
        out.put_u32_le(self.candidate);
        out.put_u64_le(self.term);
        out.put_u64_le(self.attempt);
        out.into()
    }

    pub fn from_bytes(data: &[u8]) -> Option<Self> {
        let data = data.get(..Self::SIZE)?;
        Some(Self {
            candidate: u32_at(data, 0),
            term: u64_at(data, 4),
            attempt: u64_at(data, 12),
        })
    }
}

/// A node's answer to a [`LeaseRequest`]: granted, or refused because its promise
/// belongs to `holder` (of `holder_term`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseReply {
    pub granter: u32,
    pub attempt: u64,
    pub granted: bool,
    pub holder: u32,
    pub holder_term: u64,
}

impl LeaseReply {
    pub const SIZE: usize = 28;

    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(Self::SIZE);
        out.put_u32_le(self.granter);
        out.put_u64_le(self.attempt);
        out.put_u32_le(u32::from(self.granted));
        out.put_u32_le(self.holder);
        out.put_u64_le(self.holder_term);
        out.into()
    }

    pub fn from_bytes(data: &[u8]) -> Option<Self> {
        let data = data.get(..Self::SIZE)?;
        Some(Self {
            granter: u32_at(data, 0),
            attempt: u64_at(data, 4),
            granted: u32_at(data, 12) != 0,
            holder: u32_at(data, 16),
            holder_term: u64_at(data, 20),
        })
    }
}

/// A promise given: to whom, for which term, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub holder: u32,
    pub term: u64,
    pub until: Instant,
}

/// The granter's side: at most one live promise at a time.
#[derive(Debug, Default)]
pub struct Promise {
    grant: Option<Grant>,
    /// The highest term this node has heard of.
    highest_term: u64,
}

impl Promise {
    /// Grants `request` for `lease` from `now` when no promise to another node is live
    /// (a renewal by the holder is always granted); otherwise refuses, naming the holder.
    pub fn consider(
        &mut self,
        request: &LeaseRequest,
        lease: Duration,
        now: Instant,
    ) -> Result<(), Grant> {
        self.highest_term = self.highest_term.max(request.term);
        match self.live(now) {
            Some(g) if g.holder != request.candidate => Err(g),
            _ => {
                self.grant = Some(Grant {
                    holder: request.candidate,
                    term: request.term,
                    until: now + lease,
                });
                Ok(())
            }
        }
    }

    /// The promise in force at `now`, if any.
    pub fn live(&self, now: Instant) -> Option<Grant> {
        self.grant.filter(|g| g.until > now)
    }

    /// Notes a term heard of elsewhere.
    pub fn heard_term(&mut self, term: u64) {
        self.highest_term = self.highest_term.max(term);
    }

    pub fn highest_term(&self) -> u64 {
        self.highest_term
    }
}

/// One attempt of a candidate: the grants counted so far.
#[derive(Debug)]
pub struct Campaign {
    pub attempt: u64,
    pub term: u64,
    pub started: Instant,
    granted: BTreeSet<u32>,
    /// A live holder a granter named in a refusal: (pnn, term).
    pub refused_for: Option<(u32, u64)>,
}

impl Campaign {
    pub fn new(attempt: u64, term: u64, started: Instant) -> Self {
        Self {
            attempt,
            term,
            started,
            granted: BTreeSet::new(),
            refused_for: None,
        }
    }

    /// Counts a reply of this attempt (others are ignored).
    pub fn count(&mut self, reply: &LeaseReply) {
        if reply.attempt != self.attempt {
            return;
        }
        if reply.granted {
            self.granted.insert(reply.granter);
        } else {
            self.refused_for = Some((reply.holder, reply.holder_term));
        }
    }

    pub fn grants(&self) -> usize {
        self.granted.len()
    }

    /// Until when a majority of `nodes` makes this attempt's lease hold, if it does.
    pub fn won(&self, nodes: usize, lease: Duration) -> Option<Instant> {
        (self.grants() >= majority(nodes)).then(|| self.started + lease.saturating_sub(MARGIN))
    }
}

/// What the daemon's loop and the lease task share.
#[derive(Debug)]
pub struct Leases {
    pub pnn: u32,
    pub promise: Promise,
    /// The lease time (ElectionTimeout), set by the loop each round.
    pub lease: Duration,
    /// Set by the loop: campaign for (or renew) this node's lease, asking these nodes;
    /// `None`: do not.
    pub want: Option<Want>,
    /// This node's lease: until when, and its term.
    pub held: Option<(Instant, u64)>,
    campaign: Option<Campaign>,
    next_attempt: u64,
    /// The last holder another node named when it refused us, and when.
    refused: Option<(u32, Instant)>,
    /// Where each promise is noted, so that a restarted daemon keeps it.
    file: Option<PathBuf>,
}

/// Whom a campaign asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The nodes file's entries that are not deleted: the majority is of these.
    pub nodes: usize,
    /// The other nodes to ask (the connected ones).
    pub ask: Vec<u32>,
}

impl Leases {
    /// The lease state of a daemon that (re)starts: the promise it gave before a
    /// restart, if `file` recorded one that is still live, holds on.
    pub fn new(pnn: u32, lease: Duration, file: Option<PathBuf>, now: Instant) -> Self {
        let grant = file
            .as_deref()
            .and_then(load_promise)
            .map(|(holder, term, left)| Grant {
                holder,
                term,
                until: now + left,
            });
        if let Some(g) = grant {
            tracing::info!(
                holder = g.holder,
                term = g.term,
                "a promise of the last run still holds"
            );
        }
        Self {
            pnn,
            promise: Promise {
                grant,
                highest_term: grant.map_or(0, |g| g.term),
            },
            lease,
            want: None,
            held: None,
            campaign: None,
            next_attempt: 1,
            refused: None,
            file,
        }
    }

    /// This node's lease, if it holds one at `now`.
    pub fn holding(&self, now: Instant) -> Option<u64> {
        self.held.filter(|(until, _)| *until > now).map(|(_, t)| t)
    }

    /// The live promise of this node to another node, if any.
    pub fn promised_elsewhere(&self, now: Instant) -> Option<Grant> {
        self.promise
            .live(now)
            .filter(|g| g.holder != self.pnn && g.holder != ctdb_protocol::flags::dest::UNKNOWN_PNN)
    }

    /// Whether some leader reaches this node: it holds a lease or promised one.
    pub fn in_cluster(&self, now: Instant) -> bool {
        self.holding(now).is_some() || self.promised_elsewhere(now).is_some()
    }

    /// Answers another node's request.
    pub fn answer(&mut self, request: &LeaseRequest, now: Instant) -> LeaseReply {
        let result = self.promise.consider(request, self.lease, now);
        if result.is_ok() {
            self.save_promise();
        }
        LeaseReply {
            granter: self.pnn,
            attempt: request.attempt,
            granted: result.is_ok(),
            holder: result.map_or_else(|g| g.holder, |()| request.candidate),
            holder_term: result.map_or_else(|g| g.term, |()| request.term),
        }
    }

    /// Starts an attempt when the loop wants one: returns the request to send to the
    /// nodes of [`Want::ask`] (this node's own answer is counted already).
    pub fn start_attempt(&mut self, now: Instant) -> Option<(LeaseRequest, Vec<u32>)> {
        let want = self.want.clone()?;
        let term = match self.holding(now) {
            Some(term) => term,
            None => self.promise.highest_term() + 1,
        };
        let request = LeaseRequest {
            candidate: self.pnn,
            term,
            attempt: self.next_attempt,
        };
        self.next_attempt += 1;
        self.campaign = Some(Campaign::new(request.attempt, term, now));
        let own = self.answer(&request, now);
        self.count(&own, now);
        Some((request, want.ask))
    }

    /// Counts a reply; returns the lease's end when this reply won or renewed it.
    pub fn count(&mut self, reply: &LeaseReply, now: Instant) -> Option<Instant> {
        self.promise.heard_term(reply.holder_term);
        if !reply.granted
            && reply.holder != self.pnn
            && reply.holder != ctdb_protocol::flags::dest::UNKNOWN_PNN
        {
            self.refused = Some((reply.holder, now));
        }
        let nodes = self.want.as_ref()?.nodes;
        let campaign = self.campaign.as_mut()?;
        campaign.count(reply);
        let until = campaign.won(nodes, self.lease)?;
        let term = campaign.term;
        self.campaign = None;
        if until > now {
            self.held = Some((until, term));
            return Some(until);
        }
        None
    }

    /// The holder another node named when it last refused us, if that was within a
    /// lease time.
    pub fn refused_for(&self, now: Instant) -> Option<u32> {
        self.refused
            .filter(|(_, when)| now.duration_since(*when) < self.lease)
            .map(|(pnn, _)| pnn)
    }
}

impl Leases {
    fn save_promise(&self) {
        let (Some(file), Some(g)) = (&self.file, self.promise.grant) else {
            return;
        };
        let left = g.until.saturating_duration_since(Instant::now());
        let until = SystemTime::now() + left;
        let ms = until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if let Err(e) = std::fs::write(file, format!("{} {} {ms}\n", g.holder, g.term)) {
            tracing::warn!(file = %file.display(), "cannot note the lease promise: {e}");
        }
    }
}

/// A promise noted by an earlier run: (holder, term, time left), if still live.
fn load_promise(file: &Path) -> Option<(u32, u64, Duration)> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut words = text.split_whitespace();
    let holder = words.next()?.parse().ok()?;
    let term = words.next()?.parse().ok()?;
    let ms: u64 = words.next()?.parse().ok()?;
    let until = UNIX_EPOCH + Duration::from_millis(ms);
    let left = until.duration_since(SystemTime::now()).ok()?;
    Some((holder, term, left))
}

/// The lease task: answers other nodes' requests, and while the loop wants it runs an
/// attempt every third of the lease time. Ends when the node's connection does.
pub async fn keep(client: ctdb_client::Client, leases: Arc<Mutex<Leases>>) {
    use ctdb_protocol::srvid::rs;
    use ctdb_rpc::component::lock;
    let (mut requests, mut replies) = match tokio::try_join!(
        client.register_srvid(rs::LEASE_REQUEST),
        client.register_srvid(rs::LEASE_REPLY)
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot register the lease srvids: {e}");
            return;
        }
    };
    let period = lock(&leases).lease / 3;
    let mut tick = tokio::time::interval(period.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sent = tokio::select! {
            m = requests.recv() => {
                let Some(m) = m else { return };
                let Some(request) = LeaseRequest::from_bytes(&m.data) else { continue };
                let reply = lock(&leases).answer(&request, Instant::now());
                client.send_message(request.candidate, rs::LEASE_REPLY, reply.to_bytes())
            }
            m = replies.recv() => {
                let Some(m) = m else { return };
                let Some(reply) = LeaseReply::from_bytes(&m.data) else { continue };
                let mut l = lock(&leases);
                let was_holding = l.holding(Instant::now());
                if let Some(until) = l.count(&reply, Instant::now()) {
                    if was_holding.is_none() {
                        tracing::info!(
                            term = l.held.map_or(0, |(_, t)| t),
                            ms_left = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                            "won the leader lease from a majority"
                        );
                    }
                }
                Ok(())
            }
            _ = tick.tick() => {
                let attempt = lock(&leases).start_attempt(Instant::now());
                let Some((request, ask)) = attempt else { continue };
                let data = request.to_bytes();
                ask.iter().try_for_each(|&pnn| {
                    client.send_message(pnn, rs::LEASE_REQUEST, data.clone())
                })
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);

    fn request(candidate: u32, term: u64) -> LeaseRequest {
        LeaseRequest {
            candidate,
            term,
            attempt: 1,
        }
    }

    #[test]
    fn majorities_of_the_nodes_file() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn messages_round_trip_and_short_ones_are_refused() {
        let r = LeaseRequest {
            candidate: 2,
            term: 7,
            attempt: 99,
        };
        assert_eq!(LeaseRequest::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(LeaseRequest::from_bytes(&r.to_bytes()[..19]), None);
        let a = LeaseReply {
            granter: 1,
            attempt: 99,
            granted: false,
            holder: 0,
            holder_term: 6,
        };
        assert_eq!(LeaseReply::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(LeaseReply::from_bytes(&a.to_bytes()[..27]), None);
    }

    #[test]
    fn a_promise_goes_to_one_node_at_a_time_until_it_runs_out() {
        let t0 = Instant::now();
        let mut p = Promise::default();
        assert!(p.consider(&request(0, 1), LEASE, t0).is_ok());
        // Another candidate is refused and told who holds it.
        let refused = p.consider(&request(1, 2), LEASE, t0 + Duration::from_secs(1));
        assert_eq!(refused.map_err(|g| (g.holder, g.term)), Err((0, 1)));
        // The holder renews, whatever terms others announced.
        assert!(p
            .consider(&request(0, 1), LEASE, t0 + Duration::from_secs(2))
            .is_ok());
        assert_eq!(p.highest_term(), 2);
        assert!(p
            .consider(&request(1, 2), LEASE, t0 + Duration::from_millis(4900))
            .is_err());
        // Not renewed for a lease time: free for another.
        assert!(p
            .consider(&request(1, 2), LEASE, t0 + Duration::from_secs(5))
            .is_ok());
        assert_eq!(
            p.live(t0 + Duration::from_secs(5)).map(|g| g.holder),
            Some(1)
        );
        assert_eq!(p.live(t0 + Duration::from_secs(8)), None);
    }

    #[test]
    fn a_lease_needs_a_majority_and_ends_before_its_promises() {
        let t0 = Instant::now();
        let mut c = Campaign::new(5, 3, t0);
        let reply = |granter, attempt, granted| LeaseReply {
            granter,
            attempt,
            granted,
            holder: if granted { 0 } else { 4 },
            holder_term: 2,
        };
        c.count(&reply(0, 5, true));
        assert_eq!(c.won(3, LEASE), None);
        // A reply of an older attempt does not count, nor one node twice.
        c.count(&reply(1, 4, true));
        c.count(&reply(0, 5, true));
        assert_eq!(c.won(3, LEASE), None);
        c.count(&reply(2, 5, false));
        assert_eq!(c.refused_for, Some((4, 2)));
        c.count(&reply(1, 5, true));
        let until = c.won(3, LEASE).expect("two of three");
        assert!(until < t0 + LEASE);
        // Four nodes need three.
        assert_eq!(c.won(4, LEASE), None);
    }

    /// Two candidates on the two sides of a partition of five nodes, each granted by
    /// the nodes it reaches: at most one can win, whatever the split.
    #[test]
    fn two_sides_of_a_partition_never_both_lead() {
        let t0 = Instant::now();
        for split in 0..=5usize {
            let mut promises: Vec<Promise> = (0..5).map(|_| Promise::default()).collect();
            let mut left = Campaign::new(1, 1, t0);
            let mut right = Campaign::new(1, 1, t0);
            for (pnn, promise) in promises.iter_mut().enumerate() {
                let (candidate, campaign) = if pnn < split {
                    (0, &mut left)
                } else {
                    (4, &mut right)
                };
                let granted = promise.consider(&request(candidate, 1), LEASE, t0).is_ok();
                campaign.count(&LeaseReply {
                    granter: pnn as u32,
                    attempt: 1,
                    granted,
                    holder: candidate,
                    holder_term: 1,
                });
            }
            let winners = [left.won(5, LEASE), right.won(5, LEASE)]
                .iter()
                .filter(|w| w.is_some())
                .count();
            assert_eq!(winners, 1, "split at {split}");
        }
    }
}
