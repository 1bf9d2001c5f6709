//! Event records, kept a block at a time: each append writes its events as blocks of
//! up to [`BLOCK_EVENTS`], each one record of a segment file ([`crate::segments`]),
//! found by the block's summary. Stores written before segment files hold each block
//! as a sled value keyed by the sequence number of its first event (`b` seq); those
//! are read where they are.
//!
//! A block is a table then the records:
//! `n` (u32 BE), then per event `seq` (u64 BE), `time` (u64 BE), `end` (u32 BE, where
//! its record ends in the data), then the records ([`crate::codec::encode_into`]) one
//! after the other. The table is in sequence order, so one event is found by a binary search
//! without decoding the others.
//!
//! The records are stored packed with LZ4: [`PACKED`], the table as above, the length
//! of the records (u32 BE), then the records as one LZ4 block. Log lines of one block
//! share hosts, file names, header names and words, so they pack to less than half.
//! The records are packed by the threads that read a batch ([`Records`]), before the
//! sequence numbers are known, so the write under the store's lock only lays out the
//! table. Records that would not shrink, and every block written before packing, are
//! stored as they are: the value's first byte, the high byte of `n`, is then 0.
//!
//! Each block has a summary under its own sled key (`B` first seq): its last sequence
//! number, event count, oldest and newest time, stored bytes and where its record is.
//! The summaries are small and read whole at open: they give the store's oldest and
//! newest time, tell a purge which blocks hold events older than its time, and give
//! the next sequence number.

use crate::codec::EventId;
use crate::segments::{Frames, Kind, Loc};
use std::borrow::Cow;

pub const BLOCK: u8 = b'b';
pub const BLOCK_META: u8 = b'B';
/// Events per block at most. Packed, a block of 32 log lines is about 5.4 KB: each
/// event a query reads unpacks only 32, and a block read is one small read.
pub const BLOCK_EVENTS: usize = 32;
const ENTRY: usize = 20;
/// The first byte of a packed block.
pub const PACKED: u8 = 1;
/// The largest block unpacked: more means a damaged length, not a block.
const MAX_UNPACKED: usize = 64 << 20;

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
    /// Where the block is in the segment files; None for a block kept in sled.
    pub loc: Option<Loc>,
}

const META_BYTES: usize = 36;

impl BlockMeta {
    /// 36 bytes, then the [`Loc`] (16 bytes) when there is one.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(META_BYTES + Loc::BYTES);
        b.extend_from_slice(&self.last_seq.to_be_bytes());
        b.extend_from_slice(&self.events.to_be_bytes());
        b.extend_from_slice(&self.tmin.to_be_bytes());
        b.extend_from_slice(&self.tmax.to_be_bytes());
        b.extend_from_slice(&self.bytes.to_be_bytes());
        if let Some(loc) = &self.loc {
            b.extend_from_slice(&loc.encode());
        }
        b
    }

    pub fn decode(v: &[u8]) -> Option<BlockMeta> {
        let (v, loc) = match v.len() {
            META_BYTES => (v, None),
            n if n == META_BYTES + Loc::BYTES => {
                (&v[..META_BYTES], Some(Loc::decode(&v[META_BYTES..])?))
            }
            _ => return None,
        };
        let u64_at = |i: usize| u64::from_be_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(BlockMeta {
            last_seq: u64_at(0),
            events: u32::from_be_bytes(v[8..12].try_into().ok()?),
            tmin: u64_at(12),
            tmax: u64_at(20),
            bytes: u64_at(28),
            loc,
        })
    }
}

/// The records of a block, ready to store but for their sequence numbers.
#[derive(Debug, Default)]
pub struct Records {
    /// Each event's sequence number less the block's first.
    offsets: Vec<u64>,
    times: Vec<u64>,
    /// Where each record ends in the records unpacked.
    ends: Vec<u32>,
    data: Vec<u8>,
    /// Set by [`Records::pack`] when packing made the records smaller: `data` is then
    /// the LZ4 block of records of this length.
    packed_from: Option<u32>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// The size of the block's value.
    pub fn bytes(&self) -> usize {
        9 + self.len() * ENTRY + self.data.len()
    }

    /// Adds the record of an event of time `time` whose sequence number is the
    /// block's first plus `offset` (more than the last one's), which `write` appends to
    /// the buffer it is given; returns the record's length.
    pub fn push(&mut self, offset: u64, time: u64, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let start = self.data.len();
        write(&mut self.data);
        self.offsets.push(offset);
        self.times.push(time);
        self.ends.push(self.data.len() as u32);
        self.data.len() - start
    }

    /// Packs the records with LZ4, unless that does not make them smaller. Called
    /// once, after the last [`Records::push`].
    pub fn pack(&mut self) {
        let mut out = vec![0; lz4_flex::block::get_maximum_output_size(self.data.len())];
        if let Ok(n) = lz4_flex::block::compress_into(&self.data, &mut out) {
            if n < self.data.len() {
                out.truncate(n);
                self.packed_from = Some(self.data.len() as u32);
                self.data = out;
            }
        }
    }

    /// Appends the block's value to `out`, its first event having sequence number
    /// `first_seq`.
    fn value_into(&self, first_seq: u64, out: &mut Vec<u8>) {
        let n = self.len();
        out.reserve(9 + n * ENTRY + self.data.len());
        if self.packed_from.is_some() {
            out.push(PACKED);
        }
        out.extend_from_slice(&(n as u32).to_be_bytes());
        for ((offset, time), end) in self.offsets.iter().zip(&self.times).zip(&self.ends) {
            out.extend_from_slice(&(first_seq + offset).to_be_bytes());
            out.extend_from_slice(&time.to_be_bytes());
            out.extend_from_slice(&end.to_be_bytes());
        }
        if let Some(len) = self.packed_from {
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(&self.data);
    }

    #[cfg(test)]
    fn value(&self, first_seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.value_into(first_seq, &mut out);
        out
    }

    /// Adds the block, its first event having sequence number `first_seq`, to the
    /// records to write, as a record of `kind`.
    pub fn frame(&self, frames: &mut Frames, kind: Kind, first_seq: u64) {
        frames.push(kind, |out| self.value_into(first_seq, out));
    }

    /// The block's summary once its record is at `loc`; `bytes` is its share of
    /// `stored_bytes`.
    pub fn meta(&self, first_seq: u64, bytes: u64, loc: Loc) -> BlockMeta {
        BlockMeta {
            last_seq: first_seq + self.offsets.last().copied().unwrap_or(0),
            events: self.len() as u32,
            tmin: self.times.iter().copied().min().unwrap_or(0),
            tmax: self.times.iter().copied().max().unwrap_or(0),
            bytes,
            loc: Some(loc),
        }
    }
}

/// Adds the summary of the block starting at `first_seq` to `b`.
pub fn put_meta(b: &mut sled::Batch, first_seq: u64, meta: &BlockMeta) {
    b.insert(&key(BLOCK_META, first_seq)[..], meta.encode());
}

/// The records of `events` (ascending sequence numbers, at least one), packed.
pub fn records(events: &[(EventId, &[u8])]) -> Records {
    let mut r = records_of(events);
    r.pack();
    r
}

/// The records of `events`, not packed.
fn records_of(events: &[(EventId, &[u8])]) -> Records {
    let mut r = Records::default();
    for (id, rec) in events {
        r.push(id.seq - events[0].0.seq, id.time, |out| {
            out.extend_from_slice(rec)
        });
    }
    r
}

/// A block, read in place from its value when stored as it is, else with its records
/// unpacked.
pub struct Block<'a> {
    table: Cow<'a, [u8]>,
    data: Cow<'a, [u8]>,
    n: usize,
}

impl<'a> Block<'a> {
    /// None when the value does not unpack or is too short for its own table.
    pub fn parse(v: &'a [u8]) -> Option<Block<'a>> {
        let packed = *v.first()? == PACKED;
        let v = if packed { &v[1..] } else { v };
        let n = u32::from_be_bytes(v.get(..4)?.try_into().ok()?) as usize;
        let table_end = 4 + n.checked_mul(ENTRY)?;
        let table = v.get(4..table_end)?;
        let data = if packed {
            let len = u32::from_be_bytes(v.get(table_end..table_end + 4)?.try_into().ok()?);
            let len = len as usize;
            if len > MAX_UNPACKED {
                return None;
            }
            let plain = lz4_flex::block::decompress(&v[table_end + 4..], len).ok()?;
            (plain.len() == len).then_some(Cow::Owned(plain))?
        } else if v.first() == Some(&0) {
            Cow::Borrowed(&v[table_end..])
        } else {
            return None;
        };
        let b = Block {
            table: Cow::Borrowed(table),
            data,
            n,
        };
        // The last record must end inside the data.
        if n > 0 && b.end(n - 1) > b.data.len() {
            return None;
        }
        Some(b)
    }

    /// The block, owning its bytes.
    pub fn into_owned(self) -> Block<'static> {
        Block {
            table: Cow::Owned(self.table.into_owned()),
            data: Cow::Owned(self.data.into_owned()),
            n: self.n,
        }
    }

    pub fn len(&self) -> usize {
        self.n
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
    pub fn record(&self, i: usize) -> Option<&[u8]> {
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
            .map(|&(seq, time)| {
                let line = format!("record {seq} host=web-1 file=/var/log/app.log level=INFO");
                (EventId { time, seq }, line.repeat(4).into_bytes())
            })
            .collect();
        let refs: Vec<(EventId, &[u8])> = recs.iter().map(|(i, r)| (*i, &r[..])).collect();
        let mut records = records_of(&refs);
        let plain = records.value(3);
        records.pack();
        let packed = records.value(3);
        assert_eq!(packed[0], PACKED);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} packs to {}",
            plain.len(),
            packed.len()
        );
        // Blocks written before packing are read as they are.
        for v in [&packed, &plain] {
            let b = Block::parse(v).unwrap();
            assert_eq!(b.len(), 3);
            for (i, (id, r)) in recs.iter().enumerate() {
                assert_eq!(b.find(id.seq), Some(i));
                assert_eq!(b.id(i), *id);
                assert_eq!(b.record(i), Some(&r[..]));
            }
            assert_eq!(b.find(5), None);
            assert!(Block::parse(&v[..v.len() - 1]).is_none(), "a cut block");
            assert!(Block::parse(&v[..10]).is_none(), "a cut table");
        }
        // The length of the records follows the table: 1 + 4 + 3 entries.
        let at = 5 + 3 * ENTRY;
        let mut wrong_len = packed.clone();
        let len = u32::from_be_bytes(packed[at..at + 4].try_into().unwrap());
        wrong_len[at..at + 4].copy_from_slice(&(len + 1).to_be_bytes());
        assert!(
            Block::parse(&wrong_len).is_none(),
            "a wrong unpacked length"
        );
        wrong_len[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(
            Block::parse(&wrong_len).is_none(),
            "a length past the largest block"
        );
        assert!(
            Block::parse(&[7, 0, 0, 0, 0]).is_none(),
            "an unknown first byte"
        );
        let m = BlockMeta {
            last_seq: 9,
            events: 3,
            tmin: 40,
            tmax: 60,
            bytes: 1234,
            loc: None,
        };
        assert_eq!(BlockMeta::decode(&m.encode()), Some(m));
        let m = BlockMeta {
            loc: Some(Loc {
                file: 3,
                offset: 1 << 40,
                len: 5400,
            }),
            ..m
        };
        assert_eq!(BlockMeta::decode(&m.encode()), Some(m));
        assert_eq!(BlockMeta::decode(&m.encode()[..40]), None);
    }

    #[test]
    fn a_block_that_does_not_shrink_is_stored_as_it_is() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let id = EventId {
            time: 0x1234_5678_9abc_def0,
            seq: 0x0fed_cba9_8765_4321,
        };
        let mut records = records_of(&[(id, &noise[..])]);
        records.pack();
        let v = records.value(id.seq);
        assert_eq!(v[0], 0);
        assert_eq!(Block::parse(&v).unwrap().record(0), Some(&noise[..]));
    }
}
