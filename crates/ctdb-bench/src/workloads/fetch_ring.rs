//! `fetch_ring`: Samba's fetch_ring. One client per node; a token goes around the
//! ring by messages, and its holder fetches one record with IMMEDIATE_MIGRATION (the
//! record migrates to the holder's node) before passing the token on. Every fetch is
//! a migration; its latency is the fetch call's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctdb_protocol::flags::call;

use super::fetch::fetch_call;
use super::{next_message, run_ring, Result, Ring};
use crate::stats::Report;

const DB: &str = "fetch_ring.tdb";
const KEY: &[u8] = b"ctdb-bench-fetch-ring";
/// How long a member waits for the token before it calls it lost.
const PATIENCE: Duration = Duration::from_secs(10);

pub async fn run(sockets: &[PathBuf], duration: Duration) -> Result<Report> {
    let (ring, db_id) = Ring::join_distinct(sockets, DB).await?;
    let addrs = ring.addresses();
    // The token starts with member 0.
    let first = addrs[0];
    ring.members[0]
        .client
        .send_message(first.pnn, first.srvid, Bytes::new())?;
    run_ring(ring, duration, move |i, mut member, mut stop| {
        let next = addrs[(i + 1) % addrs.len()];
        async move {
            let mut report = Report::default();
            while next_message(&mut member.inbox, &mut stop, PATIENCE)
                .await?
                .is_some()
            {
                let t = Instant::now();
                let key = Bytes::from_static(KEY);
                member
                    .client
                    .call(fetch_call(db_id, key, call::IMMEDIATE_MIGRATION))
                    .await?;
                report.latency.record(t.elapsed());
                report.ops += 1;
                member
                    .client
                    .send_message(next.pnn, next.srvid, Bytes::new())?;
            }
            Ok(report)
        }
    })
    .await
}
