//! Counters: `struct timeval`, `latency_counter`, `ctdb_statistics`, the statistics
//! history and the uptime.

use bytes::BufMut;

use super::get_vec;
use crate::error::Result;
use crate::wire::{put_zeros, Reader, Wire};

/// `struct timeval` on x86-64: two 64-bit fields (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Timeval {
    pub sec: i64,
    pub usec: i64,
}

impl Timeval {
    pub const SIZE: usize = 16;
}

impl Wire for Timeval {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i64_le(self.sec);
        out.put_i64_le(self.usec);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            sec: r.i64()?,
            usec: r.i64()?,
        })
    }
}

/// `struct latency_counter`: int num, 4 bytes of padding, min, max, total (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LatencyCounter {
    pub num: i32,
    pub min: f64,
    pub max: f64,
    pub total: f64,
}

impl LatencyCounter {
    pub const SIZE: usize = 32;
}

impl Wire for LatencyCounter {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i32_le(self.num);
        put_zeros(out, 4);
        out.put_f64_le(self.min);
        out.put_f64_le(self.max);
        out.put_f64_le(self.total);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.i32()?;
        r.skip(4)?;
        Ok(Self {
            num,
            min: r.f64()?,
            max: r.f64()?,
            total: r.f64()?,
        })
    }
}

/// `ctdb_statistics.node`: packets received from other nodes, by operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCounters {
    pub req_call: u32,
    pub reply_call: u32,
    pub req_dmaster: u32,
    pub reply_dmaster: u32,
    pub reply_error: u32,
    pub req_message: u32,
    pub req_control: u32,
    pub reply_control: u32,
}

/// `ctdb_statistics.client`: packets received from clients, by operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientCounters {
    pub req_call: u32,
    pub req_message: u32,
    pub req_control: u32,
}

/// `ctdb_statistics.timeouts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutCounters {
    pub call: u32,
    pub control: u32,
    pub traverse: u32,
}

/// `ctdb_statistics` (STATISTICS reply, GET_STAT_HISTORY entries).
///
/// The seed's layout wins: this struct has the seed's fields and always encodes the
/// seed's 336 bytes. Samba 4.17 sends 488 bytes (`node.req_tunnel`,
/// `client.req_tunnel`, a `locks` block instead of the lockwait counters, hop-count
/// buckets and read-only delegation counters); [`Statistics::decode_any`] accepts that
/// form too, maps `locks.num_calls`/`num_current`/`latency` onto
/// `lockwait_calls`/`pending_lockwait_calls`/`lockwait_latency`, and drops what the
/// seed has no field for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statistics {
    pub num_clients: u32,
    pub frozen: u32,
    pub recovering: u32,
    pub client_packets_sent: u32,
    pub client_packets_recv: u32,
    pub node_packets_sent: u32,
    pub node_packets_recv: u32,
    pub keepalive_packets_sent: u32,
    pub keepalive_packets_recv: u32,
    pub node: NodeCounters,
    pub client: ClientCounters,
    pub timeouts: TimeoutCounters,
    pub reclock_ctdbd: LatencyCounter,
    pub reclock_recd: LatencyCounter,
    pub total_calls: u32,
    pub pending_calls: u32,
    pub lockwait_calls: u32,
    pub pending_lockwait_calls: u32,
    pub childwrite_calls: u32,
    pub pending_childwrite_calls: u32,
    pub memory_used: u32,
    pub last_counter: u32,
    pub max_hop_count: u32,
    pub call_latency: LatencyCounter,
    pub lockwait_latency: LatencyCounter,
    pub childwrite_latency: LatencyCounter,
    pub num_recoveries: u32,
    pub statistics_start_time: Timeval,
    pub statistics_current_time: Timeval,
}

impl Statistics {
    /// The seed's `sizeof(struct ctdb_statistics)`.
    pub const SIZE: usize = 336;
    /// Samba 4.17's.
    pub const SAMBA_SIZE: usize = 488;

    /// Decodes a whole payload in either layout, chosen by its length.
    pub fn decode_any(buf: &[u8]) -> Result<Self> {
        if buf.len() == Self::SAMBA_SIZE {
            let mut r = Reader::new(buf);
            let s = Self::decode_samba(&mut r)?;
            r.finish()?;
            Ok(s)
        } else {
            Self::from_bytes(buf)
        }
    }

    /// Decodes Samba 4.17's 488-byte layout.
    pub fn decode_samba(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = Self::default();
        s.decode_head(r)?;
        s.node = decode_node(r)?;
        r.skip(4)?; // node.req_tunnel
        s.client = decode_client(r)?;
        r.skip(4)?; // client.req_tunnel
        s.timeouts = decode_timeouts(r)?;
        r.skip(4)?;
        s.reclock_ctdbd = LatencyCounter::decode(r)?;
        s.reclock_recd = LatencyCounter::decode(r)?;
        s.lockwait_calls = r.u32()?; // locks.num_calls
        s.pending_lockwait_calls = r.u32()?; // locks.num_current
        r.skip(8)?; // locks.num_pending, locks.num_failed
        s.lockwait_latency = LatencyCounter::decode(r)?; // locks.latency
        r.skip(16 * 4)?; // locks.buckets
        s.total_calls = r.u32()?;
        s.pending_calls = r.u32()?;
        s.childwrite_calls = r.u32()?;
        s.pending_childwrite_calls = r.u32()?;
        s.memory_used = r.u32()?;
        s.last_counter = r.u32()?;
        s.max_hop_count = r.u32()?;
        r.skip(16 * 4 + 4)?; // hop_count_bucket, padding
        s.call_latency = LatencyCounter::decode(r)?;
        s.childwrite_latency = LatencyCounter::decode(r)?;
        s.num_recoveries = r.u32()?;
        r.skip(4)?;
        s.statistics_start_time = Timeval::decode(r)?;
        s.statistics_current_time = Timeval::decode(r)?;
        r.skip(8)?; // total_ro_delegations, total_ro_revokes
        Ok(s)
    }

    /// Encodes Samba 4.17's 488-byte layout, what Samba's `ctdb statistics` and
    /// `ctdb stats` read (they are the only readers of these replies): the seed's
    /// lockwait counters go to `locks`, what the seed has no field for is zero.
    pub fn encode_samba<B: BufMut>(&self, out: &mut B) {
        self.encode_head(out);
        self.encode_node(out);
        out.put_u32_le(0); // node.req_tunnel
        let c = &self.client;
        for v in [c.req_call, c.req_message, c.req_control] {
            out.put_u32_le(v);
        }
        out.put_u32_le(0); // client.req_tunnel
        let t = &self.timeouts;
        for v in [t.call, t.control, t.traverse] {
            out.put_u32_le(v);
        }
        put_zeros(out, 4);
        self.reclock_ctdbd.encode(out);
        self.reclock_recd.encode(out);
        out.put_u32_le(self.lockwait_calls); // locks.num_calls
        out.put_u32_le(self.pending_lockwait_calls); // locks.num_current
        put_zeros(out, 8); // locks.num_pending, locks.num_failed
        self.lockwait_latency.encode(out); // locks.latency
        put_zeros(out, 16 * 4); // locks.buckets
        for v in [
            self.total_calls,
            self.pending_calls,
            self.childwrite_calls,
            self.pending_childwrite_calls,
            self.memory_used,
            self.last_counter,
            self.max_hop_count,
        ] {
            out.put_u32_le(v);
        }
        put_zeros(out, 16 * 4 + 4); // hop_count_bucket, padding
        self.call_latency.encode(out);
        self.childwrite_latency.encode(out);
        out.put_u32_le(self.num_recoveries);
        put_zeros(out, 4);
        self.statistics_start_time.encode(out);
        self.statistics_current_time.encode(out);
        put_zeros(out, 8); // total_ro_delegations, total_ro_revokes
    }

    /// [`encode_samba`](Self::encode_samba) into a new buffer.
    pub fn to_samba_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::SAMBA_SIZE);
        self.encode_samba(&mut out);
        out
    }

    fn encode_head<B: BufMut>(&self, out: &mut B) {
        for v in [
            self.num_clients,
            self.frozen,
            self.recovering,
            self.client_packets_sent,
            self.client_packets_recv,
            self.node_packets_sent,
            self.node_packets_recv,
            self.keepalive_packets_sent,
            self.keepalive_packets_recv,
        ] {
            out.put_u32_le(v);
        }
    }

    fn encode_node<B: BufMut>(&self, out: &mut B) {
        let n = &self.node;
        for v in [
            n.req_call,
            n.reply_call,
            n.req_dmaster,
            n.reply_dmaster,
            n.reply_error,
            n.req_message,
            n.req_control,
            n.reply_control,
        ] {
            out.put_u32_le(v);
        }
    }

    fn decode_head(&mut self, r: &mut Reader<'_>) -> Result<()> {
        self.num_clients = r.u32()?;
        self.frozen = r.u32()?;
        self.recovering = r.u32()?;
        self.client_packets_sent = r.u32()?;
        self.client_packets_recv = r.u32()?;
        self.node_packets_sent = r.u32()?;
        self.node_packets_recv = r.u32()?;
        self.keepalive_packets_sent = r.u32()?;
        self.keepalive_packets_recv = r.u32()?;
        Ok(())
    }
}

fn decode_node(r: &mut Reader<'_>) -> Result<NodeCounters> {
    Ok(NodeCounters {
        req_call: r.u32()?,
        reply_call: r.u32()?,
        req_dmaster: r.u32()?,
        reply_dmaster: r.u32()?,
        reply_error: r.u32()?,
        req_message: r.u32()?,
        req_control: r.u32()?,
        reply_control: r.u32()?,
    })
}

fn decode_client(r: &mut Reader<'_>) -> Result<ClientCounters> {
    Ok(ClientCounters {
        req_call: r.u32()?,
        req_message: r.u32()?,
        req_control: r.u32()?,
    })
}

fn decode_timeouts(r: &mut Reader<'_>) -> Result<TimeoutCounters> {
    Ok(TimeoutCounters {
        call: r.u32()?,
        control: r.u32()?,
        traverse: r.u32()?,
    })
}

impl Wire for Statistics {
    /// The seed's 336-byte layout.
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.encode_head(out);
        self.encode_node(out);
        let c = &self.client;
        for v in [c.req_call, c.req_message, c.req_control] {
            out.put_u32_le(v);
        }
        let t = &self.timeouts;
        for v in [t.call, t.control, t.traverse] {
            out.put_u32_le(v);
        }
        put_zeros(out, 4);
        self.reclock_ctdbd.encode(out);
        self.reclock_recd.encode(out);
        for v in [
            self.total_calls,
            self.pending_calls,
            self.lockwait_calls,
            self.pending_lockwait_calls,
            self.childwrite_calls,
            self.pending_childwrite_calls,
            self.memory_used,
            self.last_counter,
            self.max_hop_count,
        ] {
            out.put_u32_le(v);
        }
        put_zeros(out, 4);
        self.call_latency.encode(out);
        self.lockwait_latency.encode(out);
        self.childwrite_latency.encode(out);
        out.put_u32_le(self.num_recoveries);
        put_zeros(out, 4);
        self.statistics_start_time.encode(out);
        self.statistics_current_time.encode(out);
    }

    /// The seed's 336-byte layout.
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = Self::default();
        s.decode_head(r)?;
        s.node = decode_node(r)?;
        s.client = decode_client(r)?;
        s.timeouts = decode_timeouts(r)?;
        r.skip(4)?;
        s.reclock_ctdbd = LatencyCounter::decode(r)?;
        s.reclock_recd = LatencyCounter::decode(r)?;
        s.total_calls = r.u32()?;
        s.pending_calls = r.u32()?;
        s.lockwait_calls = r.u32()?;
        s.pending_lockwait_calls = r.u32()?;
        s.childwrite_calls = r.u32()?;
        s.pending_childwrite_calls = r.u32()?;
        s.memory_used = r.u32()?;
        s.last_counter = r.u32()?;
        s.max_hop_count = r.u32()?;
        r.skip(4)?;
        s.call_latency = LatencyCounter::decode(r)?;
        s.lockwait_latency = LatencyCounter::decode(r)?;
        s.childwrite_latency = LatencyCounter::decode(r)?;
        s.num_recoveries = r.u32()?;
        r.skip(4)?;
        s.statistics_start_time = Timeval::decode(r)?;
        s.statistics_current_time = Timeval::decode(r)?;
        Ok(s)
    }
}

/// `ctdb_statistics_wire` (GET_STAT_HISTORY reply): uint32 num, 4 bytes of padding
/// (the array is 8-aligned), then the entries. Encodes the seed's 336-byte entries;
/// decodes those or Samba 4.17's 488-byte ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatisticsList {
    pub stats: Vec<Statistics>,
}

impl StatisticsList {
    /// Decodes a whole payload, choosing the entry size from its length.
    pub fn decode_any(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let num = r.u32()?;
        r.skip(4)?;
        let samba = num > 0 && r.remaining() as u64 == u64::from(num) * 488;
        let stats = if samba {
            let mut v = Vec::with_capacity(r.capacity_for(num, Statistics::SAMBA_SIZE));
            for _ in 0..num {
                v.push(Statistics::decode_samba(&mut r)?);
            }
            v
        } else {
            get_vec(&mut r, num, Statistics::SIZE)?
        };
        r.finish()?;
        Ok(Self { stats })
    }
}

impl StatisticsList {
    /// Samba 4.17's form: 488-byte entries (see [`Statistics::encode_samba`]).
    pub fn to_samba_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.stats.len() * Statistics::SAMBA_SIZE);
        out.put_u32_le(self.stats.len() as u32);
        put_zeros(&mut out, 4);
        for s in &self.stats {
            s.encode_samba(&mut out);
        }
        out
    }
}

impl Wire for StatisticsList {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.stats.len() as u32);
        put_zeros(out, 4);
        for s in &self.stats {
            s.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        r.skip(4)?;
        Ok(Self {
            stats: get_vec(r, num, Statistics::SIZE)?,
        })
    }
}

/// `ctdb_uptime` (UPTIME reply): four timevals (64 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uptime {
    pub current_time: Timeval,
    pub ctdbd_start_time: Timeval,
    pub last_recovery_started: Timeval,
    pub last_recovery_finished: Timeval,
}

impl Wire for Uptime {
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.current_time.encode(out);
        self.ctdbd_start_time.encode(out);
        self.last_recovery_started.encode(out);
        self.last_recovery_finished.encode(out);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            current_time: Timeval::decode(r)?,
            ctdbd_start_time: Timeval::decode(r)?,
            last_recovery_started: Timeval::decode(r)?,
            last_recovery_finished: Timeval::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_seed() {
        assert_eq!(Timeval::default().to_bytes().len(), 16);
        let l = LatencyCounter {
            num: 3,
            min: 0.5,
            max: 2.0,
            total: 3.0,
        };
        let b = l.to_bytes();
        assert_eq!(b.len(), LatencyCounter::SIZE);
        assert_eq!(&b[4..8], &[0, 0, 0, 0]);
        assert_eq!(LatencyCounter::from_bytes(&b), Ok(l));
        assert_eq!(Statistics::default().to_bytes().len(), Statistics::SIZE);
        assert_eq!(Uptime::default().to_bytes().len(), 64);
    }

    #[test]
    fn seed_layout_offsets() {
        let s = Statistics {
            num_clients: 1,
            max_hop_count: 7,
            num_recoveries: 9,
            statistics_start_time: Timeval { sec: 11, usec: 12 },
            ..Default::default()
        };
        let b = s.to_bytes();
        assert_eq!(b[192], 7);
        assert_eq!(b[296], 9);
        assert_eq!(b[304], 11);
        assert_eq!(b[312], 12);
        assert_eq!(Statistics::decode_any(&b), Ok(s));
    }

    #[test]
    fn samba_layout_is_accepted() {
        let mut b = vec![0u8; Statistics::SAMBA_SIZE];
        b[0] = 2; // num_clients
        b[36] = 5; // node.req_call
        b[68] = 6; // node.req_tunnel (dropped)
        b[72] = 7; // client.req_call
        b[168] = 8; // locks.num_calls
        b[280] = 9; // total_calls
        b[304] = 10; // max_hop_count
        b[440] = 11; // num_recoveries
        b[448] = 12; // start time
        let s = Statistics::decode_any(&b).unwrap();
        assert_eq!(s.num_clients, 2);
        assert_eq!(s.node.req_call, 5);
        assert_eq!(s.client.req_call, 7);
        assert_eq!(s.lockwait_calls, 8);
        assert_eq!(s.total_calls, 9);
        assert_eq!(s.max_hop_count, 10);
        assert_eq!(s.num_recoveries, 11);
        assert_eq!(s.statistics_start_time.sec, 12);
        assert_eq!(s.to_bytes().len(), 336);

        let mut list = vec![2, 0, 0, 0, 0, 0, 0, 0];
        list.extend_from_slice(&b);
        list.extend_from_slice(&b);
        let l = StatisticsList::decode_any(&list).unwrap();
        assert_eq!(l.stats.len(), 2);
        assert_eq!(l.to_bytes().len(), 8 + 2 * 336);
        assert_eq!(StatisticsList::decode_any(&l.to_bytes()), Ok(l));
    }

    #[test]
    fn samba_layout_round_trips() {
        let s = Statistics {
            num_clients: 3,
            keepalive_packets_recv: 9,
            node: NodeCounters {
                reply_control: 7,
                ..Default::default()
            },
            client: ClientCounters {
                req_control: 5,
                ..Default::default()
            },
            timeouts: TimeoutCounters {
                traverse: 2,
                ..Default::default()
            },
            lockwait_calls: 4,
            pending_lockwait_calls: 1,
            total_calls: 11,
            max_hop_count: 6,
            num_recoveries: 8,
            call_latency: LatencyCounter {
                num: 2,
                min: 0.5,
                max: 1.5,
                total: 2.0,
            },
            statistics_current_time: Timeval { sec: 12, usec: 34 },
            ..Default::default()
        };
        let bytes = s.to_samba_bytes();
        assert_eq!(bytes.len(), Statistics::SAMBA_SIZE);
        // Offsets of Samba 4.17's struct: num_recoveries at 440, current time at 464.
        assert_eq!(&bytes[440..444], &8u32.to_le_bytes());
        assert_eq!(&bytes[464..472], &12i64.to_le_bytes());
        assert_eq!(&bytes[480..488], &[0; 8]);
        assert_eq!(Statistics::decode_any(&bytes).unwrap(), s);
        let list = StatisticsList {
            stats: vec![s.clone(), s],
        };
        let bytes = list.to_samba_bytes();
        assert_eq!(bytes.len(), 8 + 2 * Statistics::SAMBA_SIZE);
        assert_eq!(StatisticsList::decode_any(&bytes).unwrap(), list);
    }
}
