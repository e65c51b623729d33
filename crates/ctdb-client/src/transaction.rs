//! Transactions on persistent databases, committed with one TRANS3_COMMIT as Samba
//! 4.17's client commits them.
//!
//! Reads go to the daemon (which answers persistent reads from its local copy) and are
//! remembered with their RSN; writes stay here until the commit, which sends every
//! written key with the RSN read plus one and this client's pnn as dmaster, followed by
//! the database's sequence number record, incremented the same way. Instead of Samba's
//! g_lock, ctdb-rs refuses a commit whose records changed since they were read
//! ([`ClientError::Conflict`]); the caller runs the transaction again.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use ctdb_protocol::control::{RecBuffer, RecData};
use ctdb_protocol::flags::{dest, DB_SEQNUM_KEY, TRANS3_CONFLICT};
use ctdb_protocol::{LtdbHeader, Opcode, Wire};

use crate::{Client, ClientError, Result, DEFAULT_TIMEOUT};

/// How many times [`Client::persistent_store`] runs its transaction on conflicts.
const CONFLICT_ATTEMPTS: u32 = 10;

/// The key of the sequence number record: the name and its NUL, as Samba's clients
/// store it.
fn seqnum_key() -> Bytes {
    let mut key = Vec::with_capacity(DB_SEQNUM_KEY.len() + 1);
    key.extend_from_slice(DB_SEQNUM_KEY.as_bytes());
    key.push(0);
    key.into()
}

/// A sequence number record's value: none yet is 0.
fn decode_seqnum(data: &[u8]) -> Result<u64> {
    match data.len() {
        0 => Ok(0),
        8 => u64::from_bytes(data).map_err(|e| ClientError::Unexpected(e.to_string())),
        n => Err(ClientError::Unexpected(format!(
            "sequence number record of {n} bytes (expected 8)"
        ))),
    }
}

/// What a transaction read and wrote, without the connection.
#[derive(Debug, Default)]
struct WriteSet {
    /// Per key read: the RSN and the data.
    read: HashMap<Bytes, (u64, Bytes)>,
    /// Keys written, in the order first written, with their latest data.
    writes: Vec<(Bytes, Bytes)>,
    /// Position of each written key in `writes`.
    index: HashMap<Bytes, usize>,
}

impl WriteSet {
    fn written(&self, key: &[u8]) -> Option<&Bytes> {
        self.index.get(key).map(|&i| &self.writes[i].1)
    }

    /// Records a write of a key already read. As Samba's client, a first write of the
    /// data already there is no write at all.
    fn write(&mut self, key: &[u8], data: &[u8]) {
        if let Some(&i) = self.index.get(key) {
            self.writes[i].1 = Bytes::copy_from_slice(data);
            return;
        }
        if self.read.get(key).is_some_and(|(_, old)| old[..] == *data) {
            return;
        }
        let key = Bytes::copy_from_slice(key);
        self.index.insert(key.clone(), self.writes.len());
        self.writes.push((key, Bytes::copy_from_slice(data)));
    }

    fn rsn_read(&self, key: &[u8]) -> u64 {
        self.read.get(key).map_or(0, |(rsn, _)| *rsn)
    }

    /// The TRANS3_COMMIT payload: every written key, then the sequence number record
    /// (read with `seqnum_rsn` and value `seqnum`) bumped by one.
    fn commit_buffer(&self, db_id: u32, pnn: u32, seqnum_rsn: u64, seqnum: u64) -> RecBuffer {
        let seq_key = seqnum_key();
        let header = |rsn: u64| LtdbHeader {
            rsn: rsn + 1,
            dmaster: pnn,
            reserved1: 0,
            flags: 0,
        };
        let mut records: Vec<RecData> = self
            .writes
            .iter()
            .filter(|(key, _)| *key != seq_key)
            .map(|(key, data)| RecData::with_header(0, key, &header(self.rsn_read(key)), data))
            .collect();
        records.push(RecData::with_header(
            0,
            &seq_key,
            &header(seqnum_rsn),
            &(seqnum + 1).to_le_bytes(),
        ));
        RecBuffer { db_id, records }
    }
}

/// A transaction on a persistent database; see [`Client::transaction`].
pub struct Transaction {
    client: Client,
    db_id: u32,
    set: WriteSet,
}

impl Transaction {
    /// The key's RSN and data as first read by this transaction.
    async fn read(&mut self, key: &[u8]) -> Result<(u64, Bytes)> {
        if let Some(r) = self.set.read.get(key) {
            return Ok(r.clone());
        }
        // No migration: persistent records are read where they are.
        let (header, data) = self
            .client
            .fetch_with_header_flags(self.db_id, key, 0)
            .await?;
        self.set
            .read
            .insert(Bytes::copy_from_slice(key), (header.rsn, data.clone()));
        Ok((header.rsn, data))
    }

    /// The record's data as this transaction sees it (its own writes included);
    /// `None` when it is missing or empty.
    pub async fn fetch(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        let data = match self.set.written(key) {
            Some(d) => d.clone(),
            None => self.read(key).await?.1,
        };
        Ok((!data.is_empty()).then_some(data))
    }

    /// Writes `data` to the record at commit. As Samba's client, a first write of the
    /// data the record already holds is no write.
    pub async fn store(&mut self, key: &[u8], data: &[u8]) -> Result<()> {
        if self.set.written(key).is_none() {
            // The RSN to write above, and the data to compare with.
            self.read(key).await?;
        }
        self.set.write(key, data);
        Ok(())
    }

    /// Deletes the record at commit (stores empty data, as Samba's `pdelete`).
    pub async fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.store(key, &[]).await
    }

    /// Sends the writes and the bumped sequence number in one TRANS3_COMMIT; nothing
    /// when nothing was written.
    pub async fn commit(mut self) -> Result<()> {
        if self.set.writes.is_empty() {
            return Ok(());
        }
        let (seqnum_rsn, seqnum_data) = self.read(&seqnum_key()).await?;
        let seqnum = decode_seqnum(&seqnum_data)?;
        let buffer = self
            .set
            .commit_buffer(self.db_id, self.client.pnn(), seqnum_rsn, seqnum);
        let reply = self
            .client
            .control_raw(
                dest::CURRENT_NODE,
                Opcode::Trans3Commit,
                0,
                buffer.to_bytes().into(),
                DEFAULT_TIMEOUT,
            )
            .await?;
        match reply.status {
            0 => Ok(()),
            TRANS3_CONFLICT => Err(ClientError::Conflict),
            _ => Err(crate::failed(Opcode::Trans3Commit, &reply)),
        }
    }
}

impl Client {
    /// Starts a transaction on the persistent (or replicated) database `db_id`.
    pub fn transaction(&self, db_id: u32) -> Transaction {
        Transaction {
            client: self.clone(),
            db_id,
            set: WriteSet::default(),
        }
    }

    /// Stores one record of a persistent database in its own transaction, run again
    /// (a bounded number of times) while it conflicts with other writers.
    pub async fn persistent_store(&self, db_id: u32, key: &[u8], data: &[u8]) -> Result<()> {
        let mut attempt = 0;
        loop {
            let mut t = self.transaction(db_id);
            t.store(key, data).await?;
            match t.commit().await {
                Err(ClientError::Conflict) if attempt + 1 < CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    // Let the other writer finish before reading again.
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }

    /// Deletes one record of a persistent database, as [`Client::persistent_store`].
    pub async fn persistent_delete(&self, db_id: u32, key: &[u8]) -> Result<()> {
        self.persistent_store(db_id, key, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctdb_protocol::{Body, Packet, ReqControl};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn read(set: &mut WriteSet, key: &[u8], rsn: u64, data: &[u8]) {
        set.read.insert(
            Bytes::copy_from_slice(key),
            (rsn, Bytes::copy_from_slice(data)),
        );
    }

    const PERS: u32 = 0x6ef9_1a74;

    #[test]
    fn pstore_commit_matches_samba_byte_for_byte() {
        // `ctdb pstore capture_pers.tdb pkey1 pvalue1` on a fresh database, node 0.
        let captured = hex(concat!(
            "c000000042445443010000000000000007000000000000000000000049ffff7f",
            "77000000000000000000000000000000000000000000000083000000741af96e",
            "020000003400000000000000050000001f000000706b65793101000000000000",
            "00000000000000000000000000000000007076616c7565314700000000000000",
            "17000000200000005f5f64625f73657175656e63655f6e756d6265725f5f0001",
            "0000000000000000000000000000000000000000000000010000000000000000"
        ));
        let mut set = WriteSet::default();
        read(&mut set, b"pkey1", 0, b"");
        set.write(b"pkey1", b"pvalue1");
        let buffer = set.commit_buffer(PERS, 0, 0, 0);
        let packet = Packet {
            generation: 0,
            // Samba addresses its own pnn; ctdb-rs's client says CURRENT_NODE.
            destnode: 0,
            srcnode: 0,
            reqid: 0x7fff_ff49,
            body: Body::ReqControl(ReqControl {
                opcode: Opcode::Trans3Commit,
                srvid: 0,
                client_id: 0,
                flags: 0,
                data: buffer.to_bytes().into(),
            }),
        };
        assert_eq!(packet.to_bytes(), captured);
    }

    #[test]
    fn ptrans_and_pdelete_commits_match_samba() {
        // `ctdb ptrans capture_pers.tdb` with two new keys, seqnum 1 (rsn 1) before.
        let ptrans = hex(concat!(
            "741af96e030000003400000000000000050000001f000000706b657932010000",
            "0000000000000000000000000000000000000000007076616c75653234000000",
            "00000000050000001f000000706b657933010000000000000000000000000000",
            "0000000000000000007076616c75653347000000000000001700000020000000",
            "5f5f64625f73657175656e63655f6e756d6265725f5f00020000000000000000",
            "0000000000000000000000000000000200000000000000"
        ));
        let mut set = WriteSet::default();
        read(&mut set, b"pkey2", 0, b"");
        read(&mut set, b"pkey3", 0, b"");
        set.write(b"pkey2", b"pvalue2");
        set.write(b"pkey3", b"pvalue3");
        assert_eq!(set.commit_buffer(PERS, 0, 1, 1).to_bytes(), ptrans);

        // `ctdb pdelete capture_pers.tdb pkey3`: pkey3 at rsn 1, seqnum 2 at rsn 2.
        let pdelete = hex(concat!(
            "741af96e020000002d000000000000000500000018000000706b657933020000",
            "0000000000000000000000000000000000000000004700000000000000170000",
            "00200000005f5f64625f73657175656e63655f6e756d6265725f5f0003000000",
            "00000000000000000000000000000000000000000300000000000000"
        ));
        let mut set = WriteSet::default();
        read(&mut set, b"pkey3", 1, b"pvalue3");
        set.write(b"pkey3", b"");
        assert_eq!(set.commit_buffer(PERS, 0, 2, 2).to_bytes(), pdelete);

        // `ctdb pstore capture_pers.tdb pkey9 from-node1` on node 1: dmaster 1.
        let on_node1 = hex(concat!(
            "741af96e0200000037000000000000000500000022000000706b657939010000",
            "00000000000100000000000000000000000000000066726f6d2d6e6f64653147",
            "0000000000000017000000200000005f5f64625f73657175656e63655f6e756d",
            "6265725f5f000400000000000000010000000000000000000000000000000400",
            "000000000000"
        ));
        let mut set = WriteSet::default();
        read(&mut set, b"pkey9", 0, b"");
        set.write(b"pkey9", b"from-node1");
        assert_eq!(set.commit_buffer(PERS, 1, 3, 3).to_bytes(), on_node1);
    }

    #[test]
    fn writes_keep_their_first_order_and_latest_data() {
        let mut set = WriteSet::default();
        read(&mut set, b"a", 4, b"old");
        read(&mut set, b"b", 0, b"");
        set.write(b"a", b"1");
        set.write(b"b", b"2");
        set.write(b"a", b"3");
        assert_eq!(set.written(b"a").map(|b| &b[..]), Some(&b"3"[..]));
        let buffer = set.commit_buffer(7, 2, 9, 41);
        let got: Vec<(Vec<u8>, LtdbHeader, Vec<u8>)> = buffer
            .records
            .iter()
            .map(|r| {
                let (h, v) = r.header().unwrap();
                (r.key.to_vec(), h, v.to_vec())
            })
            .collect();
        let h = |rsn| LtdbHeader {
            rsn,
            dmaster: 2,
            reserved1: 0,
            flags: 0,
        };
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), h(5), b"3".to_vec()),
                (b"b".to_vec(), h(1), b"2".to_vec()),
                (seqnum_key().to_vec(), h(10), 42u64.to_le_bytes().to_vec()),
            ]
        );
        assert_eq!(buffer.db_id, 7);
    }

    #[test]
    fn unchanged_first_write_is_no_write() {
        let mut set = WriteSet::default();
        read(&mut set, b"k", 3, b"same");
        set.write(b"k", b"same");
        assert!(set.writes.is_empty());
        // Deleting a missing record changes nothing either.
        read(&mut set, b"gone", 0, b"");
        set.write(b"gone", b"");
        assert!(set.writes.is_empty());
        // But writing back the original after a change is a write.
        set.write(b"k", b"other");
        set.write(b"k", b"same");
        assert_eq!(set.written(b"k").map(|b| &b[..]), Some(&b"same"[..]));
    }

    #[test]
    fn an_explicit_seqnum_write_is_replaced_by_the_bump() {
        let mut set = WriteSet::default();
        read(&mut set, &seqnum_key(), 1, &1u64.to_le_bytes());
        set.write(&seqnum_key(), &99u64.to_le_bytes());
        let buffer = set.commit_buffer(1, 0, 1, 1);
        assert_eq!(buffer.records.len(), 1);
        assert_eq!(&buffer.records[0].data[24..], &2u64.to_le_bytes());
    }

    #[test]
    fn seqnum_values() {
        assert_eq!(seqnum_key().len(), 23);
        assert_eq!(decode_seqnum(b"").unwrap(), 0);
        assert_eq!(decode_seqnum(&3u64.to_le_bytes()).unwrap(), 3);
        assert!(decode_seqnum(b"1234").is_err());
    }
}
