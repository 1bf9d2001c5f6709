//! Event records, kept a block at a time: each append writes its events as blocks of
//! up to [`BLOCK_EVENTS`], one sled key each, keyed by the sequence number of the
//! block's first event. sled pays per key written (it copies the tree node a key lands
//! in), so one key per event capped ingest near 60,000 events/s on its own.
//!
//! Blocks stay small on purpose. sled stores a tree node of more than a quarter of its
//! 512 KB segment as a separate blob, and its page cache does not hold such nodes to
//! `cache_capacity`: with blocks of 256 events (about 80 KB), a server's memory grew
//! with every block a query read, to 4.3 GB after queries over 10 million events. With
//! 16 (about 5 KB) it stays near the cache size.
//!
//! A block's value is a table then the records:
//! `n` (u32 BE), then per event `seq` (u64 BE), `time` (u64 BE), `end` (u32 BE, where
//! its record ends in the data), then the records ([`crate::codec::encode`]) one after
//! the other. The table is in sequence order, so one event is found by a binary search
//! without decoding the others.
//!
//! Each block has a summary under its own key (`B` first seq): its last sequence
//! number, event count, oldest and newest time and stored bytes. The summaries are
//! small and read whole at open: they give the store's oldest and newest time, tell a
//! purge which blocks hold events older than its time, and give the next sequence
//! number.

use crate::codec::EventId;

pub const BLOCK: u8 = b'b';
pub const BLOCK_META: u8 = b'B';
/// Events per block at most.
pub const BLOCK_EVENTS: usize = 16;
const ENTRY: usize = 20;

pub fn key(tag: u8, first_seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = tag;
    k[1..].copy_from_slice(&first_seq.to_be_bytes());
    k
}

pub fn seq_of_key(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

/// What the store keeps in memory about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    pub last_seq: u64,
    pub events: u32,
    pub tmin: u64,
    pub tmax: u64,
    /// The block's share of `stored_bytes`: its records and their index entries.
    pub bytes: u64,
}

impl BlockMeta {
    pub fn encode(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..8].copy_from_slice(&self.last_seq.to_be_bytes());
        b[8..12].copy_from_slice(&self.events.to_be_bytes());
        b[12..20].copy_from_slice(&self.tmin.to_be_bytes());
        b[20..28].copy_from_slice(&self.tmax.to_be_bytes());
        b[28..].copy_from_slice(&self.bytes.to_be_bytes());
        b
    }

    pub fn decode(v: &[u8]) -> Option<BlockMeta> {
        let v: &[u8; 36] = v.try_into().ok()?;
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(BlockMeta {
            last_seq: u64_at(0),
            events: u32::from_be_bytes(v[8..12].try_into().ok()?),
            tmin: u64_at(12),
            tmax: u64_at(20),
            bytes: u64_at(28),
        })
    }
}

/// Adds a block of `events` (ascending sequence numbers, at least one) and its summary
/// to `b`; `bytes` is their share of `stored_bytes`. Returns the block's first
/// sequence number and its summary.
pub fn put(b: &mut sled::Batch, events: &[(EventId, &[u8])], bytes: u64) -> (u64, BlockMeta) {
    let times = || events.iter().map(|(id, _)| id.time);
    let meta = BlockMeta {
        last_seq: events[events.len() - 1].0.seq,
        events: events.len() as u32,
        tmin: times().min().unwrap_or(0),
        tmax: times().max().unwrap_or(0),
        bytes,
    };
    let first = events[0].0.seq;
    b.insert(&key(BLOCK, first)[..], encode(events));
    b.insert(&key(BLOCK_META, first)[..], &meta.encode()[..]);
    (first, meta)
}

/// The value of a block of `events` (ascending sequence numbers) with their records.
pub fn encode(events: &[(EventId, &[u8])]) -> Vec<u8> {
    let data: usize = events.iter().map(|(_, r)| r.len()).sum();
    let mut out = Vec::with_capacity(4 + events.len() * ENTRY + data);
    out.extend_from_slice(&(events.len() as u32).to_be_bytes());
    let mut end = 0u32;
    for (id, r) in events {
        end += r.len() as u32;
        out.extend_from_slice(&id.seq.to_be_bytes());
        out.extend_from_slice(&id.time.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
    }
    for (_, r) in events {
        out.extend_from_slice(r);
    }
    out
}

/// A block value, read in place.
pub struct Block<'a> {
    table: &'a [u8],
    data: &'a [u8],
}

impl<'a> Block<'a> {
    /// None when the value is too short for its own table.
    pub fn parse(v: &'a [u8]) -> Option<Block<'a>> {
        let n = u32::from_be_bytes(v.get(..4)?.try_into().ok()?) as usize;
        let table = v.get(4..4 + n.checked_mul(ENTRY)?)?;
        let data = &v[4 + n * ENTRY..];
        let b = Block { table, data };
        // The last record must end inside the data.
        if n > 0 && b.end(n - 1) > data.len() {
            return None;
        }
        Some(b)
    }

    pub fn len(&self) -> usize {
        self.table.len() / ENTRY
    }

    fn field(&self, i: usize, at: usize) -> u64 {
        let e = &self.table[i * ENTRY..];
        u64::from_be_bytes(e[at..at + 8].try_into().unwrap_or([0; 8]))
    }

    fn end(&self, i: usize) -> usize {
        let e = &self.table[i * ENTRY + 16..i * ENTRY + 20];
        u32::from_be_bytes(e.try_into().unwrap_or([0; 4])) as usize
    }

    pub fn id(&self, i: usize) -> EventId {
        EventId {
            seq: self.field(i, 0),
            time: self.field(i, 8),
        }
    }

    /// The record of the `i`th event; None when the table is damaged.
    pub fn record(&self, i: usize) -> Option<&'a [u8]> {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        self.data.get(start..self.end(i))
    }

    /// The position of the event with sequence number `seq`.
    pub fn find(&self, seq: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.field(mid, 0).cmp(&seq) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_find_each_record_by_sequence_number() {
        let recs: Vec<(EventId, Vec<u8>)> = [(3u64, 50u64), (4, 40), (9, 60)]
            .iter()
            .map(|&(seq, time)| (EventId { time, seq }, format!("record {seq}").into_bytes()))
            .collect();
        let refs: Vec<(EventId, &[u8])> = recs.iter().map(|(i, r)| (*i, &r[..])).collect();
        let v = encode(&refs);
        let b = Block::parse(&v).unwrap();
        assert_eq!(b.len(), 3);
        for (i, (id, r)) in recs.iter().enumerate() {
            assert_eq!(b.find(id.seq), Some(i));
            assert_eq!(b.id(i), *id);
            assert_eq!(b.record(i), Some(&r[..]));
        }
        assert_eq!(b.find(5), None);
        assert!(Block::parse(&v[..v.len() - 1]).is_none(), "a cut record");
        assert!(Block::parse(&v[..10]).is_none(), "a cut table");
        let m = BlockMeta {
            last_seq: 9,
            events: 3,
            tmin: 40,
            tmax: 60,
            bytes: 1234,
        };
        assert_eq!(BlockMeta::decode(&m.encode()), Some(m));
    }
}
