//! What a run measured: a latency histogram shared by every workload, and the report
//! built from it.

use std::time::Duration;

/// Values below this many microseconds have a bucket each.
const LINEAR: u64 = 128;
/// Buckets per power of two above `LINEAR`: a value is kept within 1/64 (1.6 %).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// `LINEAR` is 2^7.
const LINEAR_BITS: u32 = 7;
const BUCKETS: usize = LINEAR as usize + (64 - LINEAR_BITS as usize) * SUB as usize;

/// A latency histogram in microseconds: exact below 128 µs, log-linear above (each
/// bucket 1/64 of its power of two wide), so memory stays constant however many
/// operations a run makes, and histograms of several clients merge.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("p50", &self.percentile_us(0.5))
            .field("max", &self.max)
            .finish()
    }
}

fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= LINEAR_BITS
    let sub = (us >> (exp - SUB_BITS)) - SUB;
    LINEAR as usize + (exp - LINEAR_BITS) as usize * SUB as usize + sub as usize
}

/// The middle of bucket `i`'s range.
fn bucket_value(i: usize) -> u64 {
    if (i as u64) < LINEAR {
        return i as u64;
    }
    let j = i - LINEAR as usize;
    let exp = LINEAR_BITS + (j / SUB as usize) as u32;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (SUB + (j % SUB as usize) as u64) * width;
    low + (width - 1) / 2
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The latency (µs) at quantile `p` (0.0..=1.0), by nearest rank; 0 when empty.
    pub fn percentile_us(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(i).min(self.max);
            }
        }
        self.max
    }
}

/// What one run of a workload measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Operations completed (commits, migrations, messages delivered, ...).
    pub ops: u64,
    /// Attempts that had to be repeated (TRANS3_COMMIT conflicts).
    pub retries: u64,
    pub elapsed: Duration,
    /// Latency of each operation, or of each round for message_ring.
    pub latency: Histogram,
}

impl Report {
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    pub fn p50(&self) -> u64 {
        self.latency.percentile_us(0.50)
    }

    pub fn p99(&self) -> u64 {
        self.latency.percentile_us(0.99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_us: impl IntoIterator<Item = u64>) -> Histogram {
        let mut h = Histogram::default();
        for v in values_us {
            h.record(Duration::from_micros(v));
        }
        h
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::default();
        assert_eq!(h.percentile_us(0.5), 0);
        assert_eq!(h.total, 0);
    }

    #[test]
    fn small_values_are_exact() {
        let h = hist(1..=100);
        assert_eq!(h.percentile_us(0.0), 1);
        assert_eq!(h.percentile_us(0.5), 50);
        assert_eq!(h.percentile_us(0.99), 99);
        assert_eq!(h.percentile_us(1.0), 100);
    }

    #[test]
    fn large_values_within_two_percent() {
        for v in [128, 129, 1000, 4_321, 99_999, 1_234_567, 3_000_000_000] {
            let got = hist([v]).percentile_us(0.5);
            let err = (got as f64 - v as f64).abs() / v as f64;
            assert!(err < 0.02, "{v} -> {got}");
        }
    }

    #[test]
    fn buckets_are_monotonic_and_in_range() {
        let mut last = 0;
        for v in (0..200_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v}");
            assert!(b >= last, "{v}");
            last = b;
        }
    }

    #[test]
    fn p99_of_a_skewed_distribution() {
        // 990 fast operations and 10 slow ones: p99 is still fast, max is slow.
        let h = hist(std::iter::repeat_n(50, 990).chain(std::iter::repeat_n(10_000, 10)));
        assert_eq!(h.percentile_us(0.99), 50);
        assert!(h.percentile_us(0.999) > 9_800);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = hist([10, 20]);
        a.merge(&hist([30, 40]));
        assert_eq!(a.total, 4);
        assert_eq!(a.percentile_us(0.5), 20);
        assert_eq!(a.percentile_us(1.0), 40);
    }

    #[test]
    fn report_rate() {
        let r = Report {
            ops: 500,
            elapsed: Duration::from_millis(250),
            ..Report::default()
        };
        assert_eq!(r.ops_per_sec(), 2000.0);
        assert_eq!(Report::default().ops_per_sec(), 0.0);
    }
}
