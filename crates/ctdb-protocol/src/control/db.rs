//! Databases: the db map, records and record buffers, pull/push, traverse, vacuuming and
//! per-database statistics.

use bytes::{BufMut, Bytes};

use super::{get_bool, get_vec, put_bool};
use crate::control::stats::LatencyCounter;
use crate::error::{DecodeError, Result};
use crate::ltdb::{split_record, LtdbHeader};
use crate::wire::{put_zeros, Reader, Wire};

/// `ctdb_dbid` flag bits (Samba).
pub mod db_flags {
    pub const PERSISTENT: u8 = 0x01;
    pub const READONLY: u8 = 0x02;
    pub const STICKY: u8 = 0x04;
    pub const REPLICATED: u8 = 0x08;
}

/// One entry of the db map: db_id, a flags byte and 3 bytes of padding (8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbMapEntry {
    pub db_id: u32,
    /// [`db_flags`] bits.
    pub flags: u8,
}

impl DbMapEntry {
    pub const SIZE: usize = 8;
}

impl Wire for DbMapEntry {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u8(self.flags);
        put_zeros(out, 3);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let db_id = r.u32()?;
        let flags = r.u8()?;
        r.skip(3)?;
        Ok(Self { db_id, flags })
    }
}

/// `ctdb_dbid_map` (GET_DBMAP reply): uint32 num, then the entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbMap {
    pub dbs: Vec<DbMapEntry>,
}

impl Wire for DbMap {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.dbs.len() as u32);
        for d in &self.dbs {
            d.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let num = r.u32()?;
        Ok(Self {
            dbs: get_vec(r, num, DbMapEntry::SIZE)?,
        })
    }
}

/// `ctdb_rec_data`: length (of the whole entry), reqid, keylen, datalen, key, data.
///
/// Where a record travels with its ltdb header (pull, push, update, traverse), the
/// 24-byte header is the start of `data`; see [`RecData::with_header`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecData {
    pub reqid: u32,
    pub key: Bytes,
    pub data: Bytes,
}

impl RecData {
    /// Size of the fixed part before the key.
    pub const FIXED: usize = 16;

    /// A record whose data is `header` followed by `value`.
    pub fn with_header(reqid: u32, key: &[u8], header: &LtdbHeader, value: &[u8]) -> Self {
        let mut data = Vec::with_capacity(LtdbHeader::SIZE + value.len());
        header.encode(&mut data);
        data.extend_from_slice(value);
        Self {
            reqid,
            key: Bytes::copy_from_slice(key),
            data: data.into(),
        }
    }

    /// Splits `data` into the ltdb header and the value after it.
    pub fn header(&self) -> Result<(LtdbHeader, &[u8])> {
        split_record(&self.data)
    }

    /// The `length` field: the whole entry, no padding.
    pub fn wire_len(&self) -> usize {
        Self::FIXED + self.key.len() + self.data.len()
    }
}

impl Wire for RecData {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.wire_len() as u32);
        out.put_u32_le(self.reqid);
        out.put_u32_le(self.key.len() as u32);
        out.put_u32_le(self.data.len() as u32);
        out.put_slice(&self.key);
        out.put_slice(&self.data);
    }

    /// Accepts a `length` larger than the entry (the extra bytes are skipped), never a
    /// smaller one; records sent by Samba 4.17 always carry the exact length.
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let length = r.u32()? as usize;
        let reqid = r.u32()?;
        let keylen = r.u32()? as usize;
        let datalen = r.u32()? as usize;
        let needed = keylen
            .checked_add(datalen)
            .and_then(|n| n.checked_add(Self::FIXED))
            .unwrap_or(usize::MAX);
        if length < needed {
            return Err(DecodeError::InvalidValue {
                what: "ctdb_rec_data length",
                value: length as u64,
            });
        }
        let key = Bytes::copy_from_slice(r.bytes(keylen)?);
        let data = Bytes::copy_from_slice(r.bytes(datalen)?);
        r.skip(length - needed)?;
        Ok(Self { reqid, key, data })
    }
}

/// `ctdb_rec_buffer` / the seed's marshall buffer: db_id, count, then `count` records
/// back to back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecBuffer {
    pub db_id: u32,
    pub records: Vec<RecData>,
}

impl Wire for RecBuffer {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.records.len() as u32);
        for rec in &self.records {
            rec.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let db_id = r.u32()?;
        let count = r.u32()?;
        Ok(Self {
            db_id,
            records: get_vec(r, count, RecData::FIXED)?,
        })
    }
}

/// `ctdb_pulldb` (PULL_DB): db_id, lmaster (`0xFFFFFFFF` = any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullDb {
    pub db_id: u32,
    pub lmaster: u32,
}

impl Wire for PullDb {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.lmaster);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            lmaster: r.u32()?,
        })
    }
}

/// `ctdb_pulldb_ext` (DB_PULL, DB_PUSH_START): db_id, lmaster, srvid (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullDbExt {
    pub db_id: u32,
    pub lmaster: u32,
    pub srvid: u64,
}

impl Wire for PullDbExt {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.lmaster);
        out.put_u64_le(self.srvid);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            lmaster: r.u32()?,
            srvid: r.u64()?,
        })
    }
}

/// PULL_DB_PAGE (a ctdb-rs extension): one page of a database's records in key order,
/// those after `after` (all from the start when it is `None`), at most about
/// `max_bytes` of them but at least one while any remain; the reply is a
/// `ctdb_rec_buffer`, empty at the end. A recovery pulls a database of any size in
/// bounded pages this way. Layout: db_id, lmaster, max_bytes, a from-start flag, then
/// the key length-prefixed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PullDbPage {
    pub db_id: u32,
    /// CTDB_LMASTER_ANY or the pnn whose records to take, as PULL_DB.
    pub lmaster: u32,
    pub max_bytes: u32,
    pub after: Option<Bytes>,
}

impl Wire for PullDbPage {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.lmaster);
        out.put_u32_le(self.max_bytes);
        out.put_u32_le(u32::from(self.after.is_none()));
        let key = self.after.as_deref().unwrap_or_default();
        out.put_u32_le(key.len() as u32);
        out.put_slice(key);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let db_id = r.u32()?;
        let lmaster = r.u32()?;
        let max_bytes = r.u32()?;
        let from_start = r.u32()? != 0;
        let key = r.len_prefixed()?;
        Ok(Self {
            db_id,
            lmaster,
            max_bytes,
            after: (!from_start).then(|| Bytes::copy_from_slice(key)),
        })
    }
}

/// `ctdb_transdb` (WIPE_DATABASE, DB_TRANSACTION_START/COMMIT): db_id, transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransDb {
    pub db_id: u32,
    pub tid: u32,
}

impl Wire for TransDb {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.tid);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            tid: r.u32()?,
        })
    }
}

/// `ctdb_db_priority` (SET_DB_PRIORITY, obsolete in Samba 4.17): db_id, priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbPriority {
    pub db_id: u32,
    pub priority: u32,
}

impl Wire for DbPriority {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.priority);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            priority: r.u32()?,
        })
    }
}

/// SET_DMASTER (obsolete, not in Samba 4.17): db_id, dmaster, as older CTDB laid it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetDmaster {
    pub db_id: u32,
    pub dmaster: u32,
}

impl Wire for SetDmaster {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.dmaster);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            dmaster: r.u32()?,
        })
    }
}

/// The GET_DB_SEQNUM request: db_id and 4 bytes of padding (exactly 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbSeqnumRequest {
    pub db_id: u32,
}

impl Wire for DbSeqnumRequest {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        put_zeros(out, 4);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let db_id = r.u32()?;
        r.skip(4)?;
        Ok(Self { db_id })
    }
}

/// `ctdb_traverse_start` (TRAVERSE_START, TRAVERSE_KILL): 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraverseStart {
    pub db_id: u32,
    pub reqid: u32,
    pub srvid: u64,
}

impl Wire for TraverseStart {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.reqid);
        out.put_u64_le(self.srvid);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            reqid: r.u32()?,
            srvid: r.u64()?,
        })
    }
}

/// `ctdb_traverse_start_ext` (TRAVERSE_START_EXT): the 16 bytes of
/// [`TraverseStart`], a bool byte and 7 bytes of tail padding (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraverseStartExt {
    pub db_id: u32,
    pub reqid: u32,
    pub srvid: u64,
    pub withemptyrecords: bool,
}

impl Wire for TraverseStartExt {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.reqid);
        out.put_u64_le(self.srvid);
        put_bool(out, self.withemptyrecords);
        put_zeros(out, 7);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let v = Self {
            db_id: r.u32()?,
            reqid: r.u32()?,
            srvid: r.u64()?,
            withemptyrecords: get_bool(r)?,
        };
        r.skip(7)?;
        Ok(v)
    }
}

/// `ctdb_traverse_all` (TRAVERSE_ALL): 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraverseAll {
    pub db_id: u32,
    pub reqid: u32,
    pub pnn: u32,
    pub client_reqid: u32,
    pub srvid: u64,
}

impl Wire for TraverseAll {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.reqid);
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.client_reqid);
        out.put_u64_le(self.srvid);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            reqid: r.u32()?,
            pnn: r.u32()?,
            client_reqid: r.u32()?,
            srvid: r.u64()?,
        })
    }
}

/// `ctdb_traverse_all_ext` (TRAVERSE_ALL_EXT): [`TraverseAll`], a bool byte and 7
/// bytes of tail padding (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraverseAllExt {
    pub db_id: u32,
    pub reqid: u32,
    pub pnn: u32,
    pub client_reqid: u32,
    pub srvid: u64,
    pub withemptyrecords: bool,
}

impl Wire for TraverseAllExt {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        out.put_u32_le(self.reqid);
        out.put_u32_le(self.pnn);
        out.put_u32_le(self.client_reqid);
        out.put_u64_le(self.srvid);
        put_bool(out, self.withemptyrecords);
        put_zeros(out, 7);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let v = Self {
            db_id: r.u32()?,
            reqid: r.u32()?,
            pnn: r.u32()?,
            client_reqid: r.u32()?,
            srvid: r.u64()?,
            withemptyrecords: get_bool(r)?,
        };
        r.skip(7)?;
        Ok(v)
    }
}

/// `ctdb_key_data` (SCHEDULE_FOR_DELETION): db_id, 4 bytes of padding, the ltdb
/// header, keylen, key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyData {
    pub db_id: u32,
    pub header: LtdbHeader,
    pub key: Bytes,
}

impl KeyData {
    pub const FIXED: usize = 36;
}

impl Wire for KeyData {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        put_zeros(out, 4);
        self.header.encode(out);
        out.put_u32_le(self.key.len() as u32);
        out.put_slice(&self.key);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let db_id = r.u32()?;
        r.skip(4)?;
        let header = LtdbHeader::decode(r)?;
        let key = Bytes::copy_from_slice(r.len_prefixed()?);
        Ok(Self { db_id, header, key })
    }
}

/// `ctdb_db_vacuum` (DB_VACUUM): db_id and a bool byte, 5 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbVacuum {
    pub db_id: u32,
    pub full_vacuum_run: bool,
}

impl Wire for DbVacuum {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.db_id);
        put_bool(out, self.full_vacuum_run);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            db_id: r.u32()?,
            full_vacuum_run: get_bool(r)?,
        })
    }
}

/// `MAX_COUNT_BUCKETS`.
pub const COUNT_BUCKETS: usize = 16;
/// `MAX_HOT_KEYS`.
pub const MAX_HOT_KEYS: usize = 10;

/// One hot key of [`DbStatistics`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HotKey {
    pub count: u32,
    /// The sender's `TDB_DATA.dptr`: meaningless here, kept so the bytes survive.
    pub key_ptr: u64,
    pub key: Bytes,
}

/// `ctdb_db_statistics` (GET_DB_STATISTICS reply), Samba 4.17's layout: the C struct
/// as it lies in memory (464 bytes, each hot key a count, 4 bytes of padding and a
/// `TDB_DATA` of pointer and size) followed by the bytes of the first
/// `num_hot_keys` keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbStatistics {
    pub locks_num_calls: u32,
    pub locks_num_current: u32,
    pub locks_num_pending: u32,
    pub locks_num_failed: u32,
    pub locks_latency: LatencyCounter,
    pub locks_buckets: [u32; COUNT_BUCKETS],
    pub vacuum_latency: LatencyCounter,
    pub db_ro_delegations: u32,
    pub db_ro_revokes: u32,
    pub hop_count_bucket: [u32; COUNT_BUCKETS],
    /// How many hot keys are valid (Samba always sends 10).
    pub num_hot_keys: u32,
    /// Always [`MAX_HOT_KEYS`] entries on the wire; missing ones encode as zeros.
    pub hot_keys: Vec<HotKey>,
}

impl DbStatistics {
    /// Size without the key bytes.
    pub const FIXED: usize = 464;
}

fn put_buckets<B: BufMut>(out: &mut B, b: &[u32; COUNT_BUCKETS]) {
    for v in b {
        out.put_u32_le(*v);
    }
}

fn get_buckets(r: &mut Reader<'_>) -> Result<[u32; COUNT_BUCKETS]> {
    let mut b = [0u32; COUNT_BUCKETS];
    for v in &mut b {
        *v = r.u32()?;
    }
    Ok(b)
}

impl Wire for DbStatistics {
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u32_le(self.locks_num_calls);
        out.put_u32_le(self.locks_num_current);
        out.put_u32_le(self.locks_num_pending);
        out.put_u32_le(self.locks_num_failed);
        self.locks_latency.encode(out);
        put_buckets(out, &self.locks_buckets);
        self.vacuum_latency.encode(out);
        out.put_u32_le(self.db_ro_delegations);
        out.put_u32_le(self.db_ro_revokes);
        put_buckets(out, &self.hop_count_bucket);
        out.put_u32_le(self.num_hot_keys);
        put_zeros(out, 4);
        let empty = HotKey::default();
        let keys = (0..MAX_HOT_KEYS).map(|i| self.hot_keys.get(i).unwrap_or(&empty));
        for k in keys.clone() {
            out.put_u32_le(k.count);
            put_zeros(out, 4);
            out.put_u64_le(k.key_ptr);
            out.put_u64_le(k.key.len() as u64);
        }
        for k in keys.take(self.num_hot_keys as usize) {
            out.put_slice(&k.key);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let locks_num_calls = r.u32()?;
        let locks_num_current = r.u32()?;
        let locks_num_pending = r.u32()?;
        let locks_num_failed = r.u32()?;
        let locks_latency = LatencyCounter::decode(r)?;
        let locks_buckets = get_buckets(r)?;
        let vacuum_latency = LatencyCounter::decode(r)?;
        let db_ro_delegations = r.u32()?;
        let db_ro_revokes = r.u32()?;
        let hop_count_bucket = get_buckets(r)?;
        let num_hot_keys = r.u32()?;
        if num_hot_keys as usize > MAX_HOT_KEYS {
            return Err(DecodeError::InvalidValue {
                what: "num_hot_keys",
                value: num_hot_keys.into(),
            });
        }
        r.skip(4)?;
        let mut sizes = [0u64; MAX_HOT_KEYS];
        let mut hot_keys = Vec::with_capacity(MAX_HOT_KEYS);
        for (i, size) in sizes.iter_mut().enumerate() {
            let count = r.u32()?;
            r.skip(4)?;
            let key_ptr = r.u64()?;
            *size = r.u64()?;
            if i >= num_hot_keys as usize && *size != 0 {
                return Err(DecodeError::InvalidValue {
                    what: "size of an unused hot key",
                    value: *size,
                });
            }
            hot_keys.push(HotKey {
                count,
                key_ptr,
                key: Bytes::new(),
            });
        }
        for (k, size) in hot_keys.iter_mut().zip(sizes).take(num_hot_keys as usize) {
            let n = usize::try_from(size).unwrap_or(usize::MAX);
            k.key = Bytes::copy_from_slice(r.bytes(n)?);
        }
        Ok(Self {
            locks_num_calls,
            locks_num_current,
            locks_num_pending,
            locks_num_failed,
            locks_latency,
            locks_buckets,
            vacuum_latency,
            db_ro_delegations,
            db_ro_revokes,
            hop_count_bucket,
            num_hot_keys,
            hot_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_map_entries_are_8_bytes() {
        let m = DbMap {
            dbs: vec![
                DbMapEntry {
                    db_id: 0x6ef91a74,
                    flags: db_flags::PERSISTENT,
                },
                DbMapEntry {
                    db_id: 1,
                    flags: db_flags::REPLICATED,
                },
            ],
        };
        let b = m.to_bytes();
        assert_eq!(b.len(), 4 + 16);
        assert_eq!(&b[4..12], &[0x74, 0x1a, 0xf9, 0x6e, 1, 0, 0, 0]);
        assert_eq!(DbMap::from_bytes(&b), Ok(m));
    }

    #[test]
    fn rec_data_length_counts_the_whole_entry() {
        let h = LtdbHeader {
            rsn: 5,
            dmaster: 1,
            reserved1: 0,
            flags: 0,
        };
        let rec = RecData::with_header(7, b"key", &h, b"value");
        let b = rec.to_bytes();
        assert_eq!(b.len(), 16 + 3 + 24 + 5);
        assert_eq!(
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(RecData::from_bytes(&b), Ok(rec.clone()));
        let (hh, v) = rec.header().unwrap();
        assert_eq!((hh, v), (h, &b"value"[..]));
        // A length below the entry is refused.
        let mut bad = b.clone();
        bad[0] = 10;
        assert!(RecData::from_bytes(&bad).is_err());

        let buf = RecBuffer {
            db_id: 9,
            records: vec![rec.clone(), rec],
        };
        let bb = buf.to_bytes();
        assert_eq!(bb.len(), 8 + 2 * b.len());
        assert_eq!(RecBuffer::from_bytes(&bb), Ok(buf));
        assert!(RecBuffer::from_bytes(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn fixed_sizes() {
        assert_eq!(DbSeqnumRequest { db_id: 1 }.to_bytes().len(), 8);
        assert_eq!(TraverseStart::default().to_bytes().len(), 16);
        assert_eq!(TraverseStartExt::default().to_bytes().len(), 24);
        assert_eq!(TraverseAll::default().to_bytes().len(), 24);
        assert_eq!(TraverseAllExt::default().to_bytes().len(), 32);
        assert_eq!(PullDbExt::default().to_bytes().len(), 16);
        let page = PullDbPage {
            db_id: 7,
            lmaster: u32::MAX,
            max_bytes: 1 << 20,
            after: Some(Bytes::from_static(b"")),
        };
        assert_eq!(PullDbPage::from_bytes(&page.to_bytes()).unwrap(), page);
        let first = PullDbPage {
            after: None,
            ..page
        };
        assert_eq!(first.to_bytes().len(), 20);
        assert_eq!(PullDbPage::from_bytes(&first.to_bytes()).unwrap(), first);
        assert_eq!(DbVacuum::default().to_bytes().len(), 5);
        assert_eq!(KeyData::default().to_bytes().len(), KeyData::FIXED);
        assert_eq!(
            DbStatistics::default().to_bytes().len(),
            DbStatistics::FIXED
        );
        // bool bytes other than 0/1 are refused.
        assert!(DbVacuum::from_bytes(&[0, 0, 0, 0, 2]).is_err());
    }

    #[test]
    fn db_statistics_carries_hot_keys() {
        let mut s = DbStatistics {
            num_hot_keys: 10,
            hot_keys: vec![HotKey::default(); 10],
            ..Default::default()
        };
        s.hot_keys[0] = HotKey {
            count: 1,
            key_ptr: 0x5635_57ae_0da0,
            key: Bytes::from_static(b"key3"),
        };
        let b = s.to_bytes();
        assert_eq!(b.len(), 468);
        assert_eq!(DbStatistics::from_bytes(&b), Ok(s));
    }
}
