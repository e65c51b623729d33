//! Records of a database by call functions: fetch with the ltdb header,
//! compare-and-store, store, delete; and a database's sequence number.

use bytes::Bytes;
use ctdb_protocol::control::DbSeqnumRequest;
use ctdb_protocol::flags::call;
use ctdb_protocol::{LtdbHeader, Opcode, ReplyCall, ReqCall, Wire};

use crate::{Client, ClientError, Result};

/// Call data of a COMPARE_STORE_FUNC: the expected length (`STORE_ANYWAY` without an
/// expectation), the expected bytes, then the new data.
pub(crate) fn compare_store_calldata(expected: Option<&[u8]>, new: &[u8]) -> Vec<u8> {
    let expected_len = expected.map_or(0, <[u8]>::len);
    let mut data = Vec::with_capacity(4 + expected_len + new.len());
    let word = match expected {
        // A packet's length is a u32, so no sendable expectation overflows this.
        Some(e) => e.len() as u32,
        None => call::STORE_ANYWAY,
    };
    data.extend_from_slice(&word.to_le_bytes());
    if let Some(e) = expected {
        data.extend_from_slice(e);
    }
    data.extend_from_slice(new);
    data
}

/// Splits a FETCH_WITH_HEADER_FUNC reply into the header and the data after it.
pub(crate) fn split_header_reply(data: &Bytes) -> Result<(LtdbHeader, Bytes)> {
    if data.len() < LtdbHeader::SIZE {
        return Err(ClientError::Unexpected(format!(
            "FETCH_WITH_HEADER reply of {} bytes is shorter than an ltdb header",
            data.len()
        )));
    }
    let header = LtdbHeader::from_bytes(&data[..LtdbHeader::SIZE])
        .map_err(|e| ClientError::Unexpected(format!("FETCH_WITH_HEADER reply: {e}")))?;
    Ok((header, data.slice(LtdbHeader::SIZE..)))
}

impl Client {
    async fn record_call(
        &self,
        db_id: u32,
        key: &[u8],
        callid: u32,
        flags: u32,
        calldata: Vec<u8>,
    ) -> Result<ReplyCall> {
        self.call(ReqCall {
            flags,
            db_id,
            callid,
            hopcount: 0,
            key: Bytes::copy_from_slice(key),
            calldata: calldata.into(),
        })
        .await
    }

    /// FETCH_WITH_HEADER_FUNC with the given call flags.
    pub(crate) async fn fetch_with_header_flags(
        &self,
        db_id: u32,
        key: &[u8],
        flags: u32,
    ) -> Result<(LtdbHeader, Bytes)> {
        let reply = self
            .record_call(db_id, key, call::FETCH_WITH_HEADER_FUNC, flags, Vec::new())
            .await?;
        split_header_reply(&reply.data)
    }

    /// A record's ltdb header and data, migrating the record to this node as Samba's
    /// `ctdb readkey` does. A missing record comes back with empty data.
    pub async fn fetch_with_header(&self, db_id: u32, key: &[u8]) -> Result<(LtdbHeader, Bytes)> {
        self.fetch_with_header_flags(db_id, key, call::IMMEDIATE_MIGRATION)
            .await
    }

    /// Stores `new` if the record holds `expected` (any data when `None`); an
    /// `Ok(Err(current))` says it held `current` and nothing was stored. A ctdb-rs
    /// extension (COMPARE_STORE_FUNC): Samba's daemons do not answer it.
    pub async fn compare_store(
        &self,
        db_id: u32,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<Result<(), Bytes>> {
        let reply = self
            .record_call(
                db_id,
                key,
                call::COMPARE_STORE_FUNC,
                call::IMMEDIATE_MIGRATION,
                compare_store_calldata(expected, new),
            )
            .await?;
        compare_store_outcome(reply, new)
    }

    /// Stores `data` whatever the record held.
    pub async fn store(&self, db_id: u32, key: &[u8], data: &[u8]) -> Result<()> {
        self.compare_store(db_id, key, None, data)
            .await?
            .map_err(|_| {
                ClientError::Unexpected("an unconditional store reported a mismatch".into())
            })
    }

    /// Deletes a record: stores empty data, which is what a deleted record is.
    pub async fn delete(&self, db_id: u32, key: &[u8]) -> Result<()> {
        self.store(db_id, key, &[]).await
    }

    /// GET_DB_SEQNUM: the sequence number of a (persistent) database on `node`.
    pub async fn get_db_seqnum(&self, node: u32, db_id: u32) -> Result<u64> {
        let request = DbSeqnumRequest { db_id }.to_bytes();
        let data = self
            .control(node, Opcode::GetDbSeqnum, 0, request.into())
            .await?;
        u64::from_bytes(&data)
            .map_err(|e| ClientError::Unexpected(format!("GET_DB_SEQNUM reply: {e}")))
    }
}

/// What a COMPARE_STORE_FUNC reply says. A stored record comes back with the new
/// data; a daemon that does not know the call (Samba's answers status 0 and no data)
/// must not pass for one that stored.
fn compare_store_outcome(reply: ReplyCall, new: &[u8]) -> Result<Result<(), Bytes>> {
    // The constant's integer type is not the status word's; compare as i64.
    match i64::from(reply.status) {
        0 if reply.data[..] == *new => Ok(Ok(())),
        0 => Err(ClientError::Unexpected(
            "the daemon did not run COMPARE_STORE_FUNC (not a ctdb-rs daemon?)".into(),
        )),
        s if s == i64::from(call::COMPARE_MISMATCH) => Ok(Err(reply.data)),
        _ => Err(ClientError::CallFailed {
            status: reply.status,
            message: "COMPARE_STORE_FUNC failed".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_store_calldata_layout() {
        assert_eq!(
            compare_store_calldata(Some(b"old"), b"new!"),
            b"\x03\x00\x00\x00oldnew!".to_vec()
        );
        assert_eq!(
            compare_store_calldata(None, b"v"),
            b"\xff\xff\xff\xffv".to_vec()
        );
        // Expecting an empty (missing) record differs from expecting nothing.
        assert_eq!(
            compare_store_calldata(Some(b""), b""),
            b"\x00\x00\x00\x00".to_vec()
        );
    }

    #[test]
    fn compare_store_statuses() {
        let reply = |status, data: &'static [u8]| ReplyCall {
            status,
            data: Bytes::from_static(data),
        };
        assert_eq!(
            compare_store_outcome(reply(0, b"new"), b"new").unwrap(),
            Ok(())
        );
        assert_eq!(compare_store_outcome(reply(0, b""), b"").unwrap(), Ok(()));
        assert_eq!(
            compare_store_outcome(reply(1, b"current"), b"new").unwrap(),
            Err(Bytes::from_static(b"current"))
        );
        assert!(matches!(
            compare_store_outcome(reply(7, b""), b"new"),
            Err(ClientError::CallFailed { status: 7, .. })
        ));
        // Samba's daemon answers an unknown call id with status 0 and no data.
        assert!(matches!(
            compare_store_outcome(reply(0, b""), b"new"),
            Err(ClientError::Unexpected(_))
        ));
    }

    #[test]
    fn header_replies() {
        let h = LtdbHeader {
            rsn: 9,
            dmaster: 2,
            reserved1: 0,
            flags: 0x0001_0000,
        };
        let mut data = h.to_bytes();
        data.extend_from_slice(b"value");
        let (hh, v) = split_header_reply(&Bytes::from(data.clone())).unwrap();
        assert_eq!((hh, &v[..]), (h, &b"value"[..]));
        // Only the header: empty data.
        let (_, v) = split_header_reply(&Bytes::from(data[..24].to_vec())).unwrap();
        assert!(v.is_empty());
        for n in [0, 1, 23] {
            let short = Bytes::from(data[..n].to_vec());
            assert!(matches!(
                split_header_reply(&short),
                Err(ClientError::Unexpected(_))
            ));
        }
    }
}
