//! `message_ring`: Samba's message_ring. One client per node; member 0 sends
//! `in_flight` messages (alternately forwards and backwards, as Samba's test sends one
//! each way), and every member passes each message it gets to its neighbour in the
//! message's direction (REQ_MESSAGE to that member's node and srvid). Counts every
//! delivery; the latency is a whole round, measured when a message is back at member 0.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{fail, next_message, run_ring, Address, Result, Ring};
use crate::stats::Report;

/// Samba's message_ring keeps one message going each way.
pub const DEFAULT_IN_FLIGHT: usize = 2;
const PATIENCE: Duration = Duration::from_secs(10);

/// A ring message: its direction (+1 or -1) and when its round started (ns since the
/// run's origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub forward: bool,
    pub round_start_ns: u64,
}

impl Token {
    pub const LEN: usize = 9;

    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(Self::LEN);
        b.push(u8::from(self.forward));
        b.extend_from_slice(&self.round_start_ns.to_le_bytes());
        Bytes::from(b)
    }

    pub fn decode(data: &[u8]) -> Option<Self> {
        let (&dir, stamp) = data.split_first()?;
        Some(Self {
            forward: match dir {
                0 => false,
                1 => true,
                _ => return None,
            },
            round_start_ns: u64::from_le_bytes(stamp.try_into().ok()?),
        })
    }
}

/// The member after `i` in a ring of `n` in the given direction.
pub fn neighbour(i: usize, n: usize, forward: bool) -> usize {
    if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    }
}

pub async fn run(sockets: &[PathBuf], in_flight: usize, duration: Duration) -> Result<Report> {
    if in_flight == 0 {
        return fail("message_ring needs at least one message in flight");
    }
    let ring = Ring::join(sockets).await?;
    let addrs: Vec<Address> = ring.addresses();
    let n = addrs.len();
    let origin = Instant::now();
    let now_ns = move || origin.elapsed().as_nanos() as u64;
    run_ring(ring, duration, move |i, mut member, mut stop| {
        let addrs = addrs.clone();
        async move {
            let send = |token: Token| {
                let to = addrs[neighbour(i, n, token.forward)];
                member.client.send_message(to.pnn, to.srvid, token.encode())
            };
            if i == 0 {
                for k in 0..in_flight {
                    send(Token {
                        forward: k % 2 == 0,
                        round_start_ns: now_ns(),
                    })?;
                }
            }
            let mut report = Report::default();
            while let Some(m) = next_message(&mut member.inbox, &mut stop, PATIENCE).await? {
                let Some(mut token) = Token::decode(&m.data) else {
                    return fail(format!("malformed ring message of {} bytes", m.data.len()));
                };
                report.ops += 1;
                if i == 0 {
                    let now = now_ns();
                    let round = now.saturating_sub(token.round_start_ns);
                    report.latency.record(Duration::from_nanos(round));
                    token.round_start_ns = now;
                }
                send(token)?;
            }
            Ok(report)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        for t in [
            Token {
                forward: true,
                round_start_ns: 0,
            },
            Token {
                forward: false,
                round_start_ns: u64::MAX,
            },
        ] {
            let b = t.encode();
            assert_eq!(b.len(), Token::LEN);
            assert_eq!(Token::decode(&b), Some(t));
        }
    }

    #[test]
    fn bad_tokens_are_refused() {
        assert_eq!(Token::decode(&[]), None);
        assert_eq!(Token::decode(&[1, 2, 3]), None);
        assert_eq!(Token::decode(&[2; Token::LEN]), None);
        assert_eq!(Token::decode(&[1; Token::LEN + 1]), None);
    }

    #[test]
    fn neighbours_wrap() {
        assert_eq!(neighbour(2, 3, true), 0);
        assert_eq!(neighbour(0, 3, false), 2);
        assert_eq!(neighbour(1, 3, false), 0);
    }
}
