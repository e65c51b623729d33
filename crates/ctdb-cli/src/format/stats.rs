//! `statistics`: Samba 4.17's full `ctdb_statistics`, decoded from either the 488-byte
//! layout Samba sends or the seed's 336-byte one (ctdb-rs), and printed as Samba does.

use ctdb_protocol::control::{LatencyCounter, Statistics, Timeval};
use ctdb_protocol::{Reader, Wire};

use super::{ctime, interval, Tz};

/// `CTDB_PROTOCOL`, printed as "CTDB version".
pub const CTDB_PROTOCOL: u32 = 1;

/// Every counter `ctdb statistics` prints, named as Samba names them. Fields the seed's
/// layout lacks (tunnels, lock buckets, hop buckets, read-only counters) stay 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsView {
    /// (name, value) in Samba's print order.
    pub counters: Vec<(&'static str, u32)>,
    pub hop_count_buckets: [u32; 16],
    pub lock_buckets: [u32; 16],
    pub locks_latency: LatencyCounter,
    pub reclock_ctdbd: LatencyCounter,
    pub reclock_recd: LatencyCounter,
    pub call_latency: LatencyCounter,
    pub childwrite_latency: LatencyCounter,
    pub start_time: Timeval,
    pub current_time: Timeval,
}

/// Samba's counter names in print order.
pub const COUNTER_NAMES: [&str; 38] = [
    "num_clients",
    "frozen",
    "recovering",
    "num_recoveries",
    "client_packets_sent",
    "client_packets_recv",
    "node_packets_sent",
    "node_packets_recv",
    "keepalive_packets_sent",
    "keepalive_packets_recv",
    "node.req_call",
    "node.reply_call",
    "node.req_dmaster",
    "node.reply_dmaster",
    "node.reply_error",
    "node.req_message",
    "node.req_control",
    "node.reply_control",
    "node.req_tunnel",
    "client.req_call",
    "client.req_message",
    "client.req_control",
    "client.req_tunnel",
    "timeouts.call",
    "timeouts.control",
    "timeouts.traverse",
    "locks.num_calls",
    "locks.num_current",
    "locks.num_pending",
    "locks.num_failed",
    "total_calls",
    "pending_calls",
    "childwrite_calls",
    "pending_childwrite_calls",
    "memory_used",
    "max_hop_count",
    "total_ro_delegations",
    "total_ro_revokes",
];

fn named(values: [u32; 38]) -> Vec<(&'static str, u32)> {
    COUNTER_NAMES.iter().copied().zip(values).collect()
}

impl StatsView {
    /// Decodes a STATISTICS reply (or one GET_STAT_HISTORY entry) in either layout.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() == Statistics::SAMBA_SIZE {
            Self::decode_samba(buf)
        } else {
            Statistics::from_bytes(buf)
                .ok()
                .map(|s| Self::from_seed(&s))
        }
    }

    /// Decodes a GET_STAT_HISTORY reply (`ctdb_statistics_list`): a count, 4 bytes of
    /// padding, then the entries in either layout (told apart by the length).
    pub fn decode_history(buf: &[u8]) -> Option<Vec<Self>> {
        let num = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let rest = buf.get(8..)?;
        if num == 0 {
            return Some(Vec::new());
        }
        let size = rest.len() / num;
        if size * num != rest.len() || (size != Statistics::SIZE && size != Statistics::SAMBA_SIZE)
        {
            return None;
        }
        rest.chunks(size).map(Self::decode).collect()
    }

    /// From the seed's layout: what it lacks is 0.
    pub fn from_seed(s: &Statistics) -> Self {
        let values = [
            s.num_clients,
            s.frozen,
            s.recovering,
            s.num_recoveries,
            s.client_packets_sent,
            s.client_packets_recv,
            s.node_packets_sent,
            s.node_packets_recv,
            s.keepalive_packets_sent,
            s.keepalive_packets_recv,
            s.node.req_call,
            s.node.reply_call,
            s.node.req_dmaster,
            s.node.reply_dmaster,
            s.node.reply_error,
            s.node.req_message,
            s.node.req_control,
            s.node.reply_control,
            0,
            s.client.req_call,
            s.client.req_message,
            s.client.req_control,
            0,
            s.timeouts.call,
            s.timeouts.control,
            s.timeouts.traverse,
            s.lockwait_calls,
            s.pending_lockwait_calls,
            0,
            0,
            s.total_calls,
            s.pending_calls,
            s.childwrite_calls,
            s.pending_childwrite_calls,
            s.memory_used,
            s.max_hop_count,
            0,
            0,
        ];
        Self {
            counters: named(values),
            locks_latency: s.lockwait_latency,
            reclock_ctdbd: s.reclock_ctdbd,
            reclock_recd: s.reclock_recd,
            call_latency: s.call_latency,
            childwrite_latency: s.childwrite_latency,
            start_time: s.statistics_start_time,
            current_time: s.statistics_current_time,
            ..Default::default()
        }
    }

    /// Samba 4.17's 488-byte layout (offsets in the vectors' README).
    fn decode_samba(buf: &[u8]) -> Option<Self> {
        let mut r = Reader::new(buf);
        let r = &mut r;
        let head = u32s(r, 9)?; // num_clients .. keepalive_packets_recv
        let node = u32s(r, 9)?;
        let client = u32s(r, 4)?;
        let timeouts = u32s(r, 3)?;
        r.skip(4).ok()?;
        let reclock_ctdbd = LatencyCounter::decode(r).ok()?;
        let reclock_recd = LatencyCounter::decode(r).ok()?;
        let locks = u32s(r, 4)?;
        let locks_latency = LatencyCounter::decode(r).ok()?;
        let lock_buckets = u32s(r, 16)?;
        // total_calls, pending_calls, childwrite_calls, pending_childwrite_calls,
        // memory_used, __last_counter, max_hop_count
        let mid = u32s(r, 7)?;
        let hop_buckets = u32s(r, 16)?;
        r.skip(4).ok()?;
        let call_latency = LatencyCounter::decode(r).ok()?;
        let childwrite_latency = LatencyCounter::decode(r).ok()?;
        let num_recoveries = r.u32().ok()?;
        r.skip(4).ok()?;
        let start_time = Timeval::decode(r).ok()?;
        let current_time = Timeval::decode(r).ok()?;
        let ro_delegations = r.u32().ok()?;
        let ro_revokes = r.u32().ok()?;
        r.finish().ok()?;
        let mut values = Vec::with_capacity(38);
        values.extend_from_slice(&head[..3]);
        values.push(num_recoveries);
        values.extend_from_slice(&head[3..]);
        values.extend_from_slice(&node);
        values.extend_from_slice(&client);
        values.extend_from_slice(&timeouts);
        values.extend_from_slice(&locks);
        values.extend_from_slice(&mid[..5]);
        values.push(mid[6]);
        values.push(ro_delegations);
        values.push(ro_revokes);
        Some(Self {
            counters: named(values.try_into().ok()?),
            hop_count_buckets: hop_buckets.try_into().ok()?,
            lock_buckets: lock_buckets.try_into().ok()?,
            locks_latency,
            reclock_ctdbd,
            reclock_recd,
            call_latency,
            childwrite_latency,
            start_time,
            current_time,
        })
    }
}

fn u32s(r: &mut Reader<'_>, n: usize) -> Option<Vec<u32>> {
    (0..n).map(|_| r.u32().ok()).collect()
}

fn avg(l: &LatencyCounter) -> f64 {
    if l.num != 0 {
        l.total / f64::from(l.num)
    } else {
        0.0
    }
}

pub(crate) fn latency_line(label: &str, l: &LatencyCounter) -> String {
    format!(
        " {label:<30}     {:.6}/{:.6}/{:.6} sec out of {}\n",
        l.min,
        avg(l),
        l.max,
        l.num
    )
}

pub(crate) fn buckets(label: &str, b: &[u32; 16]) -> String {
    let mut s = format!(" {label}:");
    for v in b {
        s.push_str(&format!(" {v}"));
    }
    s.push('\n');
    s
}

/// `ctdb statistics`, human form.
pub fn statistics_text(s: &StatsView, tz: Tz) -> String {
    let mut out = format!("CTDB version {CTDB_PROTOCOL}\n");
    out.push_str(&format!(
        "Current time of statistics  :                {}\n",
        ctime(s.current_time.sec, tz)
    ));
    out.push_str(&format!(
        "Statistics collected since  : {} {}\n",
        interval(s.current_time.sec - s.start_time.sec),
        ctime(s.start_time.sec, tz)
    ));
    let mut prefix: Option<&str> = None;
    for (name, value) in &s.counters {
        match name.split_once('.') {
            Some((group, field)) => {
                if prefix != Some(group) {
                    prefix = Some(group);
                    out.push_str(&format!(" {group}\n"));
                }
                out.push_str(&format!("     {field:<22}{value:>10}\n"));
            }
            None => {
                prefix = None;
                out.push_str(&format!(" {name:<22}    {value:>10}\n"));
            }
        }
    }
    out.push_str(&buckets("hop_count_buckets", &s.hop_count_buckets));
    out.push_str(&buckets("lock_buckets", &s.lock_buckets));
    out.push_str(&latency_line(
        "locks_latency      MIN/AVG/MAX",
        &s.locks_latency,
    ));
    out.push_str(&latency_line(
        "reclock_ctdbd      MIN/AVG/MAX",
        &s.reclock_ctdbd,
    ));
    out.push_str(&latency_line(
        "reclock_recd       MIN/AVG/MAX",
        &s.reclock_recd,
    ));
    out.push_str(&latency_line(
        "call_latency       MIN/AVG/MAX",
        &s.call_latency,
    ));
    out.push_str(&latency_line(
        "childwrite_latency MIN/AVG/MAX",
        &s.childwrite_latency,
    ));
    out
}

/// `ctdb -X statistics`: a header line (when asked) and one line of values. As in
/// Samba, the header names a lockwait latency group that the values line lacks.
pub fn statistics_machine(s: &StatsView, header: bool, sep: &str) -> String {
    let mut out = String::new();
    if header {
        out.push_str(&format!("CTDB version{sep}"));
        out.push_str(&format!("Current time of statistics{sep}"));
        out.push_str(&format!("Statistics collected since{sep}"));
        for (name, _) in &s.counters {
            out.push_str(&format!("{name}{sep}"));
        }
        for group in [
            "reclock_ctdbd",
            "reclock_recd",
            "call",
            "lockwait",
            "childwrite",
        ] {
            for stat in ["num", "min", "avg", "max"] {
                out.push_str(&format!("{stat}_{group}_latency{sep}"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("{CTDB_PROTOCOL}{sep}"));
    out.push_str(&format!("{}{sep}", s.current_time.sec as u32));
    out.push_str(&format!("{}{sep}", s.start_time.sec as u32));
    for (_, v) in &s.counters {
        out.push_str(&format!("{v}{sep}"));
    }
    for l in [
        &s.reclock_ctdbd,
        &s.reclock_recd,
        &s.call_latency,
        &s.childwrite_latency,
    ] {
        out.push_str(&format!(
            "{}{sep}{:.6}{sep}{:.6}{sep}{:.6}{sep}",
            l.num,
            l.min,
            avg(l),
            l.max
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::utc;

    /// The `ctdb statistics` output of the reference capture (node 0).
    const REFERENCE: &str = "CTDB version 1
Current time of statistics  :                Wed Nov 25 02:47:57 2026
Statistics collected since  : (000 00:27:24) Wed Nov 25 02:20:33 2026
 num_clients                        2
 frozen                             0
 recovering                         0
 num_recoveries                     1
 client_packets_sent            16764
 client_packets_recv            15114
 node_packets_sent              35786
 node_packets_recv              13805
 keepalive_packets_sent           656
 keepalive_packets_recv           656
 node
     req_call                       0
     reply_call                     0
     req_dmaster                    0
     reply_dmaster                  0
     reply_error                    0
     req_message                 1645
     req_control                20015
     reply_control              15112
     req_tunnel                     0
 client
     req_call                       0
     req_message                    2
     req_control                15112
     req_tunnel                     0
 timeouts
     call                           0
     control                        0
     traverse                       0
 locks
     num_calls                      0
     num_current                    0
     num_pending                    0
     num_failed                     0
 total_calls                        0
 pending_calls                      0
 childwrite_calls                   0
 pending_childwrite_calls             0
 memory_used                    82821
 max_hop_count                      0
 total_ro_delegations               0
 total_ro_revokes                   0
 hop_count_buckets: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 lock_buckets: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 locks_latency      MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0
 reclock_ctdbd      MIN/AVG/MAX     0.014582/0.014582/0.014582 sec out of 1
 reclock_recd       MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0
 call_latency       MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0
 childwrite_latency MIN/AVG/MAX     0.000000/0.000000/0.000000 sec out of 0
";

    fn put(buf: &mut [u8], off: usize, v: u32) {
        buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// The reference values, written at Samba 4.17's offsets.
    fn samba_bytes() -> Vec<u8> {
        let mut b = vec![0u8; Statistics::SAMBA_SIZE];
        for (i, v) in [2, 0, 0, 16764, 15114, 35786, 13805, 656, 656]
            .into_iter()
            .enumerate()
        {
            put(&mut b, i * 4, v);
        }
        put(&mut b, 36 + 5 * 4, 1645); // node.req_message
        put(&mut b, 36 + 6 * 4, 20015);
        put(&mut b, 36 + 7 * 4, 15112);
        put(&mut b, 72 + 4, 2); // client.req_message
        put(&mut b, 72 + 8, 15112);
        // reclock.ctdbd: num 1, min = max = total = 0.014582
        put(&mut b, 104, 1);
        for off in [112, 120, 128] {
            b[off..off + 8].copy_from_slice(&0.014582f64.to_le_bytes());
        }
        put(&mut b, 296, 82821); // memory_used
        put(&mut b, 440, 1); // num_recoveries
        let now = 1_795_574_877i64;
        b[448..456].copy_from_slice(&(now - 27 * 60 - 24).to_le_bytes());
        b[464..472].copy_from_slice(&now.to_le_bytes());
        b
    }

    #[test]
    fn samba_layout_prints_like_samba() {
        let s = StatsView::decode(&samba_bytes()).expect("decode");
        assert_eq!(statistics_text(&s, utc), REFERENCE);
    }

    #[test]
    fn seed_layout_prints_the_same() {
        let full = StatsView::decode(&samba_bytes()).unwrap();
        let seed = Statistics {
            num_clients: 2,
            client_packets_sent: 16764,
            client_packets_recv: 15114,
            node_packets_sent: 35786,
            node_packets_recv: 13805,
            keepalive_packets_sent: 656,
            keepalive_packets_recv: 656,
            node: ctdb_protocol::control::stats::NodeCounters {
                req_message: 1645,
                req_control: 20015,
                reply_control: 15112,
                ..Default::default()
            },
            client: ctdb_protocol::control::stats::ClientCounters {
                req_message: 2,
                req_control: 15112,
                ..Default::default()
            },
            reclock_ctdbd: full.reclock_ctdbd,
            memory_used: 82821,
            num_recoveries: 1,
            statistics_start_time: full.start_time,
            statistics_current_time: full.current_time,
            ..Default::default()
        };
        let s = StatsView::decode(&seed.to_bytes()).expect("decode seed");
        assert_eq!(statistics_text(&s, utc), REFERENCE);
    }

    #[test]
    fn machine_form() {
        let s = StatsView::decode(&samba_bytes()).unwrap();
        let text = statistics_machine(&s, true, "|");
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with(
            "CTDB version|Current time of statistics|Statistics collected since|num_clients|frozen|"
        ));
        assert!(header.contains("|node.req_tunnel|client.req_call|"));
        assert!(header.ends_with("|max_childwrite_latency|"));
        let values = lines.next().unwrap();
        assert!(values.starts_with("1|1795574877|1795573233|2|0|0|1|16764|"));
        assert!(values.contains("|1|0.014582|0.014582|0.014582|"));
        assert_eq!(lines.next(), None);
        assert_eq!(header.split('|').count(), 3 + 38 + 20 + 1);
        assert_eq!(values.split('|').count(), 3 + 38 + 16 + 1);
    }
}
