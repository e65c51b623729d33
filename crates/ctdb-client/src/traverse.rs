//! Cluster-wide traverse of a database, as Samba's `ctdb catdb` runs it: register a
//! srvid in the client range, TRAVERSE_START_EXT, then one message per record (a
//! `ctdb_rec_data` whose data is the ltdb header and the value) until an empty one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::control::{RecData, TraverseStartExt};
use ctdb_protocol::flags::dest;
use ctdb_protocol::srvid::samba::CLIENT_RANGE;
use ctdb_protocol::{LtdbHeader, Opcode, Wire};

use crate::{Client, ClientError, Result, DEFAULT_TIMEOUT};

/// One record a traverse delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraversedRecord {
    pub key: Bytes,
    pub header: LtdbHeader,
    pub data: Bytes,
}

/// Traverses started by this process, so that each gets its own srvid.
static TRAVERSES: AtomicU32 = AtomicU32::new(0);

/// The srvid of this process's `n`th traverse: Samba's `CLIENT_RANGE | pid`, with the
/// count in the bits above the pid (24 of them, below the range's top byte).
pub(crate) fn traverse_srvid(pid: u32, n: u32) -> u64 {
    CLIENT_RANGE | (u64::from(n & 0x00FF_FFFF) << 32) | u64::from(pid)
}

/// TRAVERSE_START_EXT's data. Samba's tool sends reqid 0: the srvid tells the
/// traverses apart.
fn start_request(db_id: u32, srvid: u64, with_empty: bool) -> Vec<u8> {
    TraverseStartExt {
        db_id,
        reqid: 0,
        srvid,
        withemptyrecords: with_empty,
    }
    .to_bytes()
}

/// One traverse message: `None` for the end marker (no key, no data).
pub(crate) fn parse_traverse_message(data: &[u8]) -> Result<Option<TraversedRecord>> {
    let rec = RecData::from_bytes(data)
        .map_err(|e| ClientError::Unexpected(format!("traverse message: {e}")))?;
    if rec.key.is_empty() && rec.data.is_empty() {
        return Ok(None);
    }
    if rec.data.len() < LtdbHeader::SIZE {
        return Err(ClientError::Unexpected(format!(
            "traverse record of {} bytes has no ltdb header",
            rec.data.len()
        )));
    }
    let header = LtdbHeader::from_bytes(&rec.data[..LtdbHeader::SIZE])
        .map_err(|e| ClientError::Unexpected(format!("traverse record header: {e}")))?;
    Ok(Some(TraversedRecord {
        key: rec.key,
        header,
        data: rec.data.slice(LtdbHeader::SIZE..),
    }))
}

impl Client {
    /// Every record of the database on every node (with `with_empty`, also records
    /// whose data is empty), as the daemon's traverse delivers them.
    pub async fn traverse(&self, db_id: u32, with_empty: bool) -> Result<Vec<TraversedRecord>> {
        self.traverse_timeout(db_id, with_empty, DEFAULT_TIMEOUT)
            .await
    }

    /// [`Client::traverse`], giving up when the daemon is silent for `timeout` (for
    /// the control's reply or between two records).
    pub async fn traverse_timeout(
        &self,
        db_id: u32,
        with_empty: bool,
        timeout: Duration,
    ) -> Result<Vec<TraversedRecord>> {
        let srvid = traverse_srvid(
            std::process::id(),
            TRAVERSES.fetch_add(1, Ordering::Relaxed),
        );
        let mut rx = self.register_srvid(srvid).await?;
        let result = async {
            let reply = self
                .control_raw(
                    dest::CURRENT_NODE,
                    Opcode::TraverseStartExt,
                    0,
                    start_request(db_id, srvid, with_empty).into(),
                    timeout,
                )
                .await?;
            if reply.status != 0 {
                return Err(crate::failed(Opcode::TraverseStartExt, &reply));
            }
            let mut records = Vec::new();
            loop {
                let message = match tokio::time::timeout(timeout, rx.recv()).await {
                    Ok(Some(m)) => m,
                    Ok(None) => return Err(ClientError::Disconnected),
                    Err(_) => return Err(ClientError::Timeout(timeout)),
                };
                match parse_traverse_message(&message.data)? {
                    Some(record) => records.push(record),
                    None => return Ok(records),
                }
            }
        }
        .await;
        // Deregister whatever happened; a failure to do so only matters on success.
        let deregistered = self.deregister_srvid(srvid).await;
        let records = result?;
        deregistered?;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn start_request_matches_samba() {
        // TRAVERSE_START_EXT of `ctdb catdb capture_vol.tdb` (pid 0x1985).
        assert_eq!(
            start_request(0x6896_115a, traverse_srvid(0x1985, 0), false),
            hex("5a1196680000000085190000000000be0000000000000000")
        );
        assert_eq!(start_request(1, 2, true)[16], 1);
    }

    #[test]
    fn samba_traverse_messages() {
        // The data of REQ_MESSAGEs Samba 4.17 sent for `ctdb catdb capture_vol.tdb`.
        let record = hex(concat!(
            "35000000000000000400000021000000",
            "6b657932",
            "020000000000000000000000000000000000000000000000",
            "76616c75652d74776f"
        ));
        let r = parse_traverse_message(&record).unwrap().unwrap();
        assert_eq!(&r.key[..], b"key2");
        assert_eq!(&r.data[..], b"value-two");
        assert_eq!(
            r.header,
            LtdbHeader {
                rsn: 2,
                dmaster: 0,
                reserved1: 0,
                flags: 0
            }
        );
        let end = hex("10000000000000000000000000000000");
        assert_eq!(parse_traverse_message(&end).unwrap(), None);
    }

    #[test]
    fn record_with_only_a_header_is_an_empty_record() {
        let rec = RecData::with_header(0, b"k", &LtdbHeader::default(), b"");
        let r = parse_traverse_message(&rec.to_bytes()).unwrap().unwrap();
        assert!(r.data.is_empty());
        assert_eq!(&r.key[..], b"k");
    }

    #[test]
    fn malformed_messages_are_errors() {
        let good = RecData::with_header(0, b"key", &LtdbHeader::default(), b"v").to_bytes();
        // Truncated anywhere.
        for n in 0..good.len() {
            assert!(parse_traverse_message(&good[..n]).is_err(), "{n}");
        }
        // Trailing bytes.
        let mut long = good.clone();
        long.push(0);
        assert!(parse_traverse_message(&long).is_err());
        // A length below the entry, or lengths that overflow.
        let mut bad = good.clone();
        bad[0] = 4;
        assert!(parse_traverse_message(&bad).is_err());
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&[0xff; 8]);
        assert!(parse_traverse_message(&huge).is_err());
        // A key with data shorter than an ltdb header.
        let short = RecData {
            reqid: 0,
            key: Bytes::from_static(b"k"),
            data: Bytes::from_static(b"0123456789"),
        };
        assert!(matches!(
            parse_traverse_message(&short.to_bytes()),
            Err(ClientError::Unexpected(_))
        ));
        // No key but data: not the end marker, and no header either.
        let keyless = RecData {
            reqid: 0,
            key: Bytes::new(),
            data: Bytes::from_static(b"x"),
        };
        assert!(parse_traverse_message(&keyless.to_bytes()).is_err());
    }

    #[test]
    fn srvids_lie_in_samba_client_range() {
        assert_eq!(traverse_srvid(0x1985, 0), 0xbe00_0000_0000_1985);
        assert_eq!(traverse_srvid(0x1985, 1), 0xbe00_0001_0000_1985);
        // The count never reaches the range's top byte.
        assert_eq!(traverse_srvid(u32::MAX, u32::MAX) >> 56, 0xbe);
    }
}
