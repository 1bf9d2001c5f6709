//! The index: for each indexed value (an index prefix, [`crate::codec::index_prefix`]),
//! the ids of the events that have it, in id order.
//!
//! New events are indexed in memory (the [`Memtable`]). Once it holds
//! [`crate::StoreOptions::run_events`] events it is written out as a [`Run`]: its
//! values in byte order, each with its posting list, packed into blocks of about
//! [`RUN_BLOCK_BYTES`], one after the other in a segment file ([`crate::segments`]),
//! with a header in sled (`R` first seq) that holds the first value of each block and
//! where the blocks are. Writing a run costs one sequential write for tens of
//! thousands of events, where a key per value and append cost one random write per
//! rare word (a trace id, an order number) and held ingest under 10,000 events/s.
//! Runs written before segment files keep their blocks in sled under consecutive keys
//! (`r` first seq, block number), and are read there.
//!
//! The memtable is not written: the event blocks are. A run covers the events of a
//! range of sequence numbers, so at open the events after the last run are read back
//! from their blocks and indexed again (`m covered` says where that starts).
//!
//! Purges do not rewrite runs. Runs wholly older than a purge are deleted; ids in the
//! others that a purge deleted are told by [`Purged`] and passed over.

use crate::codec::{self, EventId};
use crate::segments::{Disk, Loc, ReadError, Value};
use crate::StoreError;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

pub const RUN: u8 = b'r';
pub const RUN_HEADER: u8 = b'R';
/// Index blocks of a run are cut once they reach this size; one value with a long list
/// makes a longer block. A lookup reads one block of each run it visits.
pub const RUN_BLOCK_BYTES: usize = 4 * 1024;
/// The index prefix every event is in: the time order of the whole store.
pub const ALL: &[u8] = b"ia\0";

/// The purges so far, as pairs (time, seq): an event with a time before `time` and a
/// sequence number below `seq` (it was stored when the purge ran) is gone. Events
/// stored later with older times (a backfill) are not. A pair made obsolete by a later
/// purge reaching further is dropped, so this stays short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged(Vec<(u64, u64)>);

impl Purged {
    pub fn gone(&self, id: EventId) -> bool {
        self.0.iter().any(|&(t, s)| id.time < t && id.seq < s)
    }

    /// Records a purge of what was older than `time` when `next_seq` was the next
    /// sequence number to be given.
    pub fn add(&mut self, time: u64, next_seq: u64) {
        self.0.retain(|&(t, _)| t > time);
        self.0.push((time, next_seq));
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|(t, s)| t.to_be_bytes().into_iter().chain(s.to_be_bytes()))
            .collect()
    }

    pub fn decode(v: &[u8]) -> Purged {
        Purged(
            v.chunks_exact(16)
                .map(|c| (codec::u64_value(&c[..8]), codec::u64_value(&c[8..])))
                .collect(),
        )
    }
}

/// A batch's postings: for each index value, the positions in the batch of the events
/// under it, ascending. Made by a [`PostingsBuilder`].
///
/// Values are numbered in the order first seen, their bytes kept one after another
/// and their positions in one array, value after value. A table of value numbers
/// finds them by hash. Appends fill one for every batch, about 35 values for each
/// event, so no allocation is made per value or per list.
#[derive(Debug, Default)]
pub struct BatchPostings {
    table: hashbrown::HashTable<u32>,
    hashes: Vec<u64>,
    /// Value `v` is `bytes[ends[v - 1]..ends[v]]`.
    bytes: Vec<u8>,
    ends: Vec<u32>,
    /// The positions of value `v` are `positions[offsets[v]..offsets[v + 1]]`.
    offsets: Vec<u32>,
    positions: Vec<u32>,
}

/// The hash of an index value. FxHash alone leaves the low bits, which pick a
/// table's bucket, to the first bytes of short values (the kind of the value).
fn value_hash(value: &[u8]) -> u64 {
    mix(fxhash::hash64(value))
}

/// `a == b`, without a call to `memcmp` for the lengths of most values (4 to 16
/// bytes), which every lookup of a value in a batch's postings compares.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let u64_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
    let u32_at = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
    match n {
        // Two loads that overlap when shorter than twice their width.
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        _ => a == b,
    }
}

/// The number of `value`, of hash `h`, in a table of value numbers whose hashes
/// `hash_of` gives and whose bytes are `bytes` ended at `ends`.
fn find_value(
    table: &hashbrown::HashTable<u32>,
    hash_of: impl Fn(u32) -> u64,
    bytes: &[u8],
    ends: &[u32],
    value: &[u8],
    h: u64,
) -> Option<u32> {
    table
        .find(h, |&v| {
            hash_of(v) == h && same_bytes(value_at(bytes, ends, v), value)
        })
        .copied()
}

fn value_at<'b>(bytes: &'b [u8], ends: &[u32], v: u32) -> &'b [u8] {
    let v = v as usize;
    let start = if v == 0 { 0 } else { ends[v - 1] as usize };
    &bytes[start..ends[v] as usize]
}

impl BatchPostings {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    fn find(&self, value: &[u8]) -> Option<u32> {
        let hash_of = |v: u32| self.hashes[v as usize];
        find_value(
            &self.table,
            hash_of,
            &self.bytes,
            &self.ends,
            value,
            value_hash(value),
        )
    }

    fn positions_of(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.positions[self.offsets[v] as usize..self.offsets[v + 1] as usize]
    }

    /// The positions under `value`, if any.
    pub fn get(&self, value: &[u8]) -> Option<&[u32]> {
        self.find(value).map(|v| self.positions_of(v))
    }

    /// Every value with its positions, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u32])> + '_ {
        (0..self.len() as u32).map(|v| (value_at(&self.bytes, &self.ends, v), self.positions_of(v)))
    }

    /// The same postings, with `other`'s after them, its positions moved up by
    /// `shift` (the number of events of `self`).
    fn merged(&self, other: &BatchPostings, shift: u32) -> BatchPostings {
        // `self`'s values keep their numbers: copied, not looked up again.
        let mut pairs = Vec::with_capacity(self.positions.len() + other.positions.len());
        let mut slots = Vec::with_capacity(self.len() + other.len());
        for v in 0..self.len() as u32 {
            let list = self.positions_of(v);
            pairs.extend(list.iter().map(|&at| (v, at)));
            slots.push(Slot {
                hash: self.hashes[v as usize],
                last: list.last().copied().unwrap_or(u32::MAX),
                count: list.len() as u32,
            });
        }
        let mut b = PostingsBuilder {
            table: self.table.clone(),
            slots,
            bytes: self.bytes.clone(),
            ends: self.ends.clone(),
            pairs,
        };
        for (value, list) in other.iter() {
            list.iter().for_each(|&at| _ = b.add(value, at + shift));
        }
        b.build()
    }

    /// The same postings without the positions from `keep` on.
    fn truncated(&self, keep: u32) -> BatchPostings {
        let mut b = PostingsBuilder::with_capacity(self.len(), self.positions.len());
        for (value, list) in self.iter() {
            let kept = &list[..list.partition_point(|&at| at < keep)];
            kept.iter().for_each(|&at| _ = b.add(value, at));
        }
        b.build()
    }
}

/// Gathers a batch's postings as its events are read: each value is looked up once
/// per event that has it, and the pair (value, position) appended to one list, which
/// [`PostingsBuilder::finish`] sorts into each value's positions in one pass.
#[derive(Debug, Default)]
pub struct PostingsBuilder {
    table: hashbrown::HashTable<u32>,
    /// What a lookup reads of each value besides its bytes, together.
    slots: Vec<Slot>,
    bytes: Vec<u8>,
    ends: Vec<u32>,
    pairs: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    /// The last position added.
    last: u32,
    /// The number of positions.
    count: u32,
}

impl PostingsBuilder {
    /// Sized for `values` values and `entries` positions in all.
    pub fn with_capacity(values: usize, entries: usize) -> PostingsBuilder {
        PostingsBuilder {
            table: hashbrown::HashTable::with_capacity(values),
            slots: Vec::with_capacity(values),
            bytes: Vec::with_capacity(values * 12),
            ends: Vec::with_capacity(values),
            pairs: Vec::with_capacity(entries),
        }
    }

    /// Puts position `at` under `value`. Positions come in ascending order; the same
    /// position twice (a word seen twice in an event) is kept once, and false says so.
    pub fn add(&mut self, value: &[u8], at: u32) -> bool {
        let h = value_hash(value);
        let PostingsBuilder {
            table,
            slots,
            bytes,
            ends,
            pairs,
        } = self;
        let v = match find_value(table, |v| slots[v as usize].hash, bytes, ends, value, h) {
            Some(v) => {
                let slot = &mut slots[v as usize];
                if slot.last == at {
                    return false;
                }
                slot.last = at;
                slot.count += 1;
                v
            }
            None => {
                let v = ends.len() as u32;
                bytes.extend_from_slice(value);
                ends.push(bytes.len() as u32);
                slots.push(Slot {
                    hash: h,
                    last: at,
                    count: 1,
                });
                table.insert_unique(h, v, |&v| slots[v as usize].hash);
                v
            }
        };
        pairs.push((v, at));
        true
    }

    /// The postings, with every event of the batch, positions `0..events`, under
    /// [`ALL`].
    pub fn finish(mut self, events: u32) -> BatchPostings {
        for at in 0..events {
            self.add(ALL, at);
        }
        self.build()
    }

    fn build(self) -> BatchPostings {
        let mut offsets = Vec::with_capacity(self.slots.len() + 1);
        let mut sum = 0;
        offsets.push(0);
        for slot in &self.slots {
            sum += slot.count;
            offsets.push(sum);
        }
        // Each value's pairs are in position order, so its positions land in order.
        let mut next = offsets[..offsets.len() - 1].to_vec();
        let mut positions = vec![0; self.pairs.len()];
        for (v, at) in self.pairs {
            let i = &mut next[v as usize];
            positions[*i as usize] = at;
            *i += 1;
        }
        BatchPostings {
            table: self.table,
            hashes: self.slots.iter().map(|slot| slot.hash).collect(),
            bytes: self.bytes,
            ends: self.ends,
            offsets,
            positions,
        }
    }
}

/// The index of the events since the last run, in memory.
///
/// It keeps the tables of postings that appends gathered as they came (one per
/// thread that read a batch), instead of merging them into one table as batches
/// come: that merge held the memory index's lock for 1.8 s per million events in
/// store_bench, on the append's path, and the run writer sorts every value of the
/// memtable anyway, so it merges the tables there, off that path. A query looks a
/// value up in each table, a few dozen per memtable; small tables are merged
/// ([`SMALL_PART`]), so that many small appends do not make many tables.
#[derive(Debug, Default)]
pub struct Memtable {
    /// The first sequence number it covers.
    pub seq_lo: u64,
    /// Events in the order added; postings hold positions in this.
    ids: Vec<EventId>,
    /// The postings of each batch, with the position of its first event, in order.
    parts: Vec<(u32, BatchPostings)>,
    /// Queries see the positions below this: a batch is added while its events are
    /// still being written and made visible once they are ([`Memtable::publish`]).
    visible: u32,
    tmin: u64,
    tmax: u64,
}

/// A table of postings with fewer events than this is merged with the next ones
/// ([`Memtable::add_batch`]) rather than standing alone.
const SMALL_PART: u32 = 256;

impl Memtable {
    pub fn new(seq_lo: u64) -> Memtable {
        Memtable {
            seq_lo,
            tmin: u64::MAX,
            ..Memtable::default()
        }
    }

    /// The memtable that follows this one, sized for as many events and batches.
    pub fn next(&self, seq_lo: u64) -> Memtable {
        Memtable {
            ids: Vec::with_capacity(self.ids.len()),
            parts: Vec::with_capacity(self.parts.len()),
            ..Memtable::new(seq_lo)
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Indexes a stored event under each of `prefixes` (and [`ALL`]); queries see it
    /// at once.
    #[cfg(test)]
    pub fn add<'p>(&mut self, id: EventId, prefixes: impl IntoIterator<Item = &'p [u8]>) {
        let mut postings = PostingsBuilder::default();
        for p in prefixes {
            postings.add(p, 0);
        }
        self.add_batch(&[id], postings.finish(1));
        self.publish();
    }

    /// Makes every event added so far visible to queries.
    pub fn publish(&mut self) {
        self.visible = self.ids.len() as u32;
    }

    /// Indexes a batch of events: `ids`, and for each prefix the positions in `ids` of
    /// the events under it (all of them under [`ALL`], as [`PostingsBuilder::finish`]
    /// puts them). Queries do not see them until [`Memtable::publish`].
    pub fn add_batch(&mut self, ids: &[EventId], postings: BatchPostings) {
        if ids.is_empty() {
            return;
        }
        let base = self.ids.len() as u32;
        self.ids.extend_from_slice(ids);
        for id in ids {
            self.tmin = self.tmin.min(id.time);
            self.tmax = self.tmax.max(id.time);
        }
        self.parts.push((base, postings));
        // Small tables merge two at a time, each with one at most its own size, as in
        // a binary counter: many small writes make a few tables, and an event's
        // entries are merged again about log2(SMALL_PART) times at most.
        while let [.., (a, before), (b, last)] = &self.parts[..] {
            let (a, b) = (*a, *b);
            if b - a >= SMALL_PART || (self.ids.len() as u32 - b) < b - a {
                break;
            }
            let merged = before.merged(last, b - a);
            self.parts.pop();
            *self.parts.last_mut().expect("two tables") = (a, merged);
        }
    }

    /// Takes back the events from position `len` on, added by a batch whose write to
    /// disk failed. Rare, so it walks every value of the last table.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.ids.len() {
            return;
        }
        let cut = len as u32;
        while self.parts.last().is_some_and(|(start, _)| *start >= cut) {
            self.parts.pop();
        }
        if let Some((start, last)) = self.parts.last_mut() {
            let keep = cut - *start;
            *last = last.truncated(keep);
        }
        self.ids.truncate(len);
        self.visible = self.visible.min(cut);
        self.tmin = self.ids.iter().map(|id| id.time).min().unwrap_or(u64::MAX);
        self.tmax = self.ids.iter().map(|id| id.time).max().unwrap_or(0);
    }

    /// The positions under `prefix` that queries may see, table by table.
    fn lists<'m>(&'m self, prefix: &'m [u8]) -> impl Iterator<Item = u32> + 'm {
        self.parts
            .iter()
            .take_while(|(start, _)| *start < self.visible)
            .filter_map(move |(start, part)| {
                let list = part.get(prefix)?;
                let seen = self.visible - start;
                let list = &list[..list.partition_point(|&i| i < seen)];
                Some(list.iter().map(move |i| start + i))
            })
            .flatten()
    }

    /// The ids under `prefix` in `lo..=hi`, ascending, without purged ones.
    pub fn ids_of(&self, prefix: &[u8], lo: u128, hi: u128, purged: &Purged) -> Vec<u128> {
        let mut ids: Vec<u128> = self
            .lists(prefix)
            .map(|i| self.ids[i as usize])
            .filter(|id| !purged.gone(*id))
            .map(EventId::as_u128)
            .filter(|id| (lo..=hi).contains(id))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every value starting with `prefix`, with its number of (not purged) events.
    pub fn count_prefixed(&self, prefix: &[u8], purged: &Purged, out: &mut HashMap<Vec<u8>, u64>) {
        for (start, part) in &self.parts {
            if *start >= self.visible {
                break;
            }
            let seen = self.visible - start;
            for (term, list) in part.iter() {
                if term.starts_with(prefix) {
                    let n = list
                        .iter()
                        .take_while(|&&i| i < seen)
                        .filter(|&&i| !purged.gone(self.ids[(start + i) as usize]))
                        .count() as u64;
                    if n > 0 {
                        *out.entry(term.to_vec()).or_default() += n;
                    }
                }
            }
        }
    }

    /// The run of this memtable, covering sequence numbers up to `seq_hi`: its header
    /// and its index blocks. None when every event in it was purged.
    pub fn to_run(&self, seq_hi: u64, purged: &Purged) -> Option<(Run, Vec<Vec<u8>>)> {
        // Every table's values in byte order, a value's tables in batch order. Each
        // table is read once, in its own order, into entries that carry what sorting
        // and writing need: going back to the tables per entry after the sort missed
        // the CPU cache on most of them.
        let mut entries: Vec<Entry> =
            Vec::with_capacity(self.parts.iter().map(|(_, part)| part.len()).sum());
        for (start, part) in &self.parts {
            entries.extend(part.iter().map(|(t, l)| Entry::new(t, *start, l)));
        }
        entries.sort_unstable_by(|a, b| a.value_cmp(b).then_with(|| a.start.cmp(&b.start)));
        let same_value = |a: &Entry, b: &Entry| a.value_cmp(b).is_eq();
        let values = entries.chunk_by(same_value).count();
        // Lists hold positions in batch order, and a run keeps ids in id order, which
        // differs when times do: each position's rank in id order, so that a list is
        // sorted as small integers rather than as ids.
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.ids[i as usize]);
        let mut rank = vec![0u32; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        // The ids by rank, and which of them a purge took since they were added,
        // found once per event rather than once per list entry.
        let by_rank: Vec<EventId> = order.iter().map(|&i| self.ids[i as usize]).collect();
        let gone: Vec<bool> = by_rank.iter().map(|&id| purged.gone(id)).collect();
        let any_gone = gone.contains(&true);
        let mut blocks = Vec::new();
        let mut firsts: Vec<Box<[u8]>> = Vec::new();
        let mut bloom = Bloom::for_values(values);
        let mut block = Vec::with_capacity(RUN_BLOCK_BYTES + 1024);
        // A list has at most every event of the memtable: sized once, not grown.
        let mut ranks: Vec<u32> = Vec::with_capacity(self.ids.len());
        let mut ids = Vec::with_capacity(self.ids.len());
        let mut list = Vec::new();
        let (mut tmin, mut tmax, mut events) = (u64::MAX, 0, 0u64);
        for same in entries.chunk_by(same_value) {
            let head = same[0].key.to_be_bytes();
            let term = same[0].term(&head);
            ranks.clear();
            for e in same {
                ranks.extend(e.positions.iter().map(|&i| rank[(e.start + i) as usize]));
            }
            if !ranks.is_sorted() {
                ranks.sort_unstable();
            }
            ids.clear();
            if any_gone {
                let kept = ranks.iter().filter(|&&r| !gone[r as usize]);
                ids.extend(kept.map(|&r| by_rank[r as usize]));
            } else {
                ids.extend(ranks.iter().map(|&r| by_rank[r as usize]));
            }
            if ids.is_empty() {
                continue;
            }
            bloom.insert(term);
            if term == ALL {
                events = ids.len() as u64;
                tmin = ids[0].time;
                tmax = ids[ids.len() - 1].time;
            }
            if block.is_empty() {
                firsts.push(term.into());
            }
            put_entry(&mut block, term, &ids, (self.tmin, self.seq_lo), &mut list);
            if block.len() >= RUN_BLOCK_BYTES {
                blocks.push(std::mem::take(&mut block));
            }
        }
        if !block.is_empty() {
            blocks.push(block);
        }
        (events > 0).then_some((
            Run {
                seq_lo: self.seq_lo,
                seq_hi,
                tmin,
                tmax,
                events,
                firsts,
                bloom,
                time_base: Some(self.tmin),
                data: None,
            },
            blocks,
        ))
    }
}

/// The first 16 bytes of `term` as a big-endian integer, zero-padded: integers in
/// order are terms in byte order, or terms that share those bytes.
fn sort_key(term: &[u8]) -> u128 {
    let mut k = [0u8; 16];
    let n = term.len().min(16);
    k[..n].copy_from_slice(&term[..n]);
    u128::from_be_bytes(k)
}

/// A value of one table of a memtable, as [`Memtable::to_run`] sorts it.
struct Entry<'m> {
    /// The value's first 16 bytes ([`sort_key`]).
    key: u128,
    /// The value, in its table; read only past its first 16 bytes, which `key` has.
    value: &'m [u8],
    /// The table's first position in the memtable.
    start: u32,
    positions: &'m [u32],
}

impl<'m> Entry<'m> {
    fn new(value: &'m [u8], start: u32, positions: &'m [u32]) -> Entry<'m> {
        Entry {
            key: sort_key(value),
            value,
            start,
            positions,
        }
    }

    /// The value, from `head` (the key's bytes) when it fits there.
    fn term<'a>(&'a self, head: &'a [u8; 16]) -> &'a [u8] {
        let n = self.value.len();
        if n <= 16 {
            &head[..n]
        } else {
            self.value
        }
    }

    /// The byte order of the values. When the keys are equal and one value has at
    /// most 16 bytes, it is a prefix of the other (the other's next bytes are the
    /// key's zero padding), so the shorter comes first.
    fn value_cmp(&self, other: &Entry) -> std::cmp::Ordering {
        let (a, b) = (self.value.len(), other.value.len());
        self.key.cmp(&other.key).then_with(|| {
            if a > 16 && b > 16 {
                self.value[16..].cmp(&other.value[16..])
            } else {
                a.cmp(&b)
            }
        })
    }
}

/// An entry of an index block, as runs write it: varints of the value's length, then
/// the value, the first id less the run's `base` (its time less the earliest time of
/// the memtable, its seq less the run's first seq), the length of the rest of the
/// list, then that list ([`codec::encode_postings`]). Most values of a log (ids,
/// numbers) have one event, so the entry is mostly its value: about 19 bytes for a
/// 12-byte value, where the fixed-width layout before took 34.
fn put_entry(
    out: &mut Vec<u8>,
    term: &[u8],
    ids: &[EventId],
    base: (u64, u64),
    list: &mut Vec<u8>,
) {
    codec::put_varint(out, term.len() as u64);
    out.extend_from_slice(term);
    codec::put_varint(out, ids[0].time.wrapping_sub(base.0));
    codec::put_varint(out, ids[0].seq.wrapping_sub(base.1));
    list.clear();
    codec::encode_postings(ids, list);
    codec::put_varint(out, list.len() as u64);
    out.extend_from_slice(list);
}

/// An entry of the fixed-width layout of runs written before [`put_entry`]'s: the
/// value (u16 BE length, bytes), the first id (16 bytes), the list's length (u32 BE)
/// and the list.
fn fixed_entry<'b>(b: &mut &'b [u8]) -> Option<(&'b [u8], EventId, &'b [u8])> {
    let n = u16::from_be_bytes(b.get(..2)?.try_into().ok()?) as usize;
    let term = b.get(2..2 + n)?;
    let first = EventId::from_bytes(b.get(2 + n..18 + n)?)?;
    let len = u32::from_be_bytes(b.get(18 + n..22 + n)?.try_into().ok()?) as usize;
    let list = b.get(22 + n..22 + n + len)?;
    *b = &b[22 + n + len..];
    Some((term, first, list))
}

/// An entry as [`put_entry`] writes it, with the `base` of its run.
fn compact_entry<'b>(b: &mut &'b [u8], base: (u64, u64)) -> Option<(&'b [u8], EventId, &'b [u8])> {
    fn take<'b>(b: &mut &'b [u8], n: u64) -> Option<&'b [u8]> {
        let n = usize::try_from(n).ok()?;
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    let n = codec::get_varint(b)?;
    let term = take(b, n)?;
    let time = codec::get_varint(b)?.wrapping_add(base.0);
    let seq = codec::get_varint(b)?.wrapping_add(base.1);
    let len = codec::get_varint(b)?;
    let list = take(b, len)?;
    Some((term, EventId { time, seq }, list))
}

/// The entries of an index block of `run`, in value order: (value, first id, list
/// bytes). Stops at the first damaged entry, which it gives as an error.
fn entries<'b>(
    run: &Run,
    mut b: &'b [u8],
) -> impl Iterator<Item = Option<(&'b [u8], EventId, &'b [u8])>> {
    let base = run.time_base.map(|t| (t, run.seq_lo));
    std::iter::from_fn(move || {
        if b.is_empty() {
            return None;
        }
        let entry = match base {
            Some(base) => compact_entry(&mut b, base),
            None => fixed_entry(&mut b),
        };
        if entry.is_none() {
            b = &[];
        }
        Some(entry)
    })
}

/// A run's header, kept in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Sequence numbers `seq_lo..seq_hi` are covered.
    pub seq_lo: u64,
    pub seq_hi: u64,
    pub tmin: u64,
    pub tmax: u64,
    pub events: u64,
    /// The first value of each index block.
    firsts: Vec<Box<[u8]>>,
    bloom: Bloom,
    /// For blocks in the layout of [`put_entry`], the time its first ids are written
    /// from; None for the fixed-width layout of earlier runs.
    time_base: Option<u64>,
    /// Where the blocks are in the segment files (one after the other in one file);
    /// None for runs kept in sled.
    data: Option<Vec<Loc>>,
}

/// Where the blocks of lengths `lens` are when written one after the other in `file`
/// from `offset`, as a run's blocks are.
fn consecutive(file: u32, offset: u64, lens: &[u32]) -> Vec<Loc> {
    lens.iter()
        .scan(offset, |at, &len| {
            let loc = Loc {
                file,
                offset: *at,
                len,
            };
            *at += Loc::FRAMED + u64::from(len);
            Some(loc)
        })
        .collect()
}

/// The first byte of the header of a run whose blocks are in the layout of
/// [`put_entry`], followed by its time base (u64 BE). Earlier headers start with the
/// run's last seq (u64 BE), whose first byte is 0 below 2^56.
const COMPACT_RUN: u8 = 0xff;
/// The first byte of the header of a run of [`COMPACT_RUN`]'s layout whose blocks are
/// in a segment file: the time base (u64 BE), the file (u32 BE), the first block's
/// offset (u64 BE), the number of blocks (u32 BE) and each block's length (u32 BE).
const SEGMENT_RUN: u8 = 0xfe;

/// A Bloom filter of a run's values, kept in its header: a walk for a rare value (a
/// trace id, a user) passes over the runs without it instead of reading an index
/// block of each. 10 bits per value and 7 probes: about 1% false positives, for about
/// 1.3 bytes of memory per value of each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    bits: Vec<u64>,
}

const BLOOM_PROBES: u64 = 7;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Bloom {
    pub fn for_values(n: usize) -> Bloom {
        Bloom {
            bits: vec![0; (n * 10).div_ceil(64).max(1)],
        }
    }

    /// The bits of `value`: by double hashing of its hash.
    fn probes(bits: usize, value: &[u8]) -> impl Iterator<Item = usize> {
        let h = fxhash::hash64(value);
        let (h1, h2) = (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15) | 1);
        let m = bits as u64 * 64;
        (0..BLOOM_PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    pub fn insert(&mut self, value: &[u8]) {
        for b in Self::probes(self.bits.len(), value) {
            self.bits[b / 64] |= 1 << (b % 64);
        }
    }

    pub fn may_have(&self, value: &[u8]) -> bool {
        Self::probes(self.bits.len(), value).all(|b| self.bits[b / 64] & (1 << (b % 64)) != 0)
    }
}

pub fn run_key(seq_lo: u64, block: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = RUN;
    k[1..9].copy_from_slice(&seq_lo.to_be_bytes());
    k[9..].copy_from_slice(&block.to_be_bytes());
    k
}

pub fn run_header_key(seq_lo: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = RUN_HEADER;
    k[1..].copy_from_slice(&seq_lo.to_be_bytes());
    k
}

impl Run {
    pub fn blocks(&self) -> u32 {
        self.firsts.len() as u32
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match (&self.data, self.time_base) {
            (Some(d), t) => {
                out.push(SEGMENT_RUN);
                out.extend_from_slice(&t.unwrap_or(0).to_be_bytes());
                let first = d.first().map_or((0, 0), |l| (l.file, l.offset));
                out.extend_from_slice(&first.0.to_be_bytes());
                out.extend_from_slice(&first.1.to_be_bytes());
                out.extend_from_slice(&(d.len() as u32).to_be_bytes());
                for l in d {
                    out.extend_from_slice(&l.len.to_be_bytes());
                }
            }
            (None, Some(t)) => {
                out.push(COMPACT_RUN);
                out.extend_from_slice(&t.to_be_bytes());
            }
            (None, None) => {}
        }
        for v in [self.seq_hi, self.tmin, self.tmax, self.events] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&(self.bloom.bits.len() as u32).to_be_bytes());
        for w in &self.bloom.bits {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for f in &self.firsts {
            out.extend_from_slice(&(f.len() as u16).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    pub fn decode(seq_lo: u64, v: &[u8]) -> Option<Run> {
        let (time_base, data, v) = match v.split_first() {
            Some((&COMPACT_RUN, rest)) => {
                (Some(codec::u64_value(rest.get(..8)?)), None, &rest[8..])
            }
            Some((&SEGMENT_RUN, rest)) => {
                let time_base = codec::u64_value(rest.get(..8)?);
                let file = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
                let offset = codec::u64_value(rest.get(12..20)?);
                let n = u32::from_be_bytes(rest.get(20..24)?.try_into().ok()?) as usize;
                let end = 24 + n.checked_mul(4)?;
                let lens: Vec<u32> = rest
                    .get(24..end)?
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap_or_default()))
                    .collect();
                (
                    Some(time_base),
                    Some(consecutive(file, offset, &lens)),
                    &rest[end..],
                )
            }
            _ => (None, None, v),
        };
        let u = |i: usize| Some(codec::u64_value(v.get(i * 8..i * 8 + 8)?));
        let words = u32::from_be_bytes(v.get(32..36)?.try_into().ok()?) as usize;
        let bits = v
            .get(36..36 + words.checked_mul(8)?)?
            .chunks_exact(8)
            .map(codec::u64_value)
            .collect();
        let mut rest = &v[36 + words * 8..];
        let mut firsts = Vec::new();
        while !rest.is_empty() {
            let n = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
            firsts.push(rest.get(2..2 + n)?.into());
            rest = &rest[2 + n..];
        }
        // A header with block locations must give one per block.
        if data.as_ref().is_some_and(|d| d.len() != firsts.len()) {
            return None;
        }
        Some(Run {
            seq_lo,
            seq_hi: u(0)?,
            tmin: u(1)?,
            tmax: u(2)?,
            events: u(3)?,
            firsts,
            bloom: Bloom { bits },
            time_base,
            data,
        })
    }

    /// Where the run's blocks are, once written to a segment file by one write.
    pub fn set_data(&mut self, locs: &[Loc]) {
        self.data = Some(locs.to_vec());
    }

    /// Where each of the run's blocks is in the segment files.
    pub fn locs(&self) -> impl Iterator<Item = Loc> + '_ {
        self.data.iter().flatten().copied()
    }

    /// Whether the blocks are in sled, under `r` keys.
    pub fn in_sled(&self) -> bool {
        self.data.is_none()
    }

    /// The `i`th block; None when its segment file was deleted, which happens only
    /// once a purge deleted the run, after the reader took it.
    fn block(&self, disk: Disk<'_>, i: usize) -> Result<Option<Value>, StoreError> {
        let damaged = StoreError::DamagedIndex(self.seq_lo);
        let Some(d) = &self.data else {
            let v = disk.tree.get(run_key(self.seq_lo, i as u32))?;
            return v.map(|v| Some(Value::Sled(v))).ok_or(damaged);
        };
        match disk
            .segs
            .read(*d.get(i).ok_or(StoreError::DamagedIndex(self.seq_lo))?)
        {
            Ok(v) => Ok(Some(Value::Owned(v))),
            Err(ReadError::Gone) => Ok(None),
            Err(ReadError::Damaged) => Err(damaged),
            Err(ReadError::Io(e)) => Err(e),
        }
    }

    /// The ids under `prefix`, ascending; empty when the run has none.
    pub fn ids_of(&self, disk: Disk<'_>, prefix: &[u8]) -> Result<Vec<EventId>, StoreError> {
        if !self.bloom.may_have(prefix) {
            return Ok(Vec::new());
        }
        let at = self.firsts.partition_point(|f| &f[..] <= prefix);
        if at == 0 {
            return Ok(Vec::new());
        }
        let Some(block) = self.block(disk, at - 1)? else {
            return Ok(Vec::new());
        };
        for e in entries(self, &block) {
            let (term, first, list) = e.ok_or(StoreError::DamagedIndex(self.seq_lo))?;
            match term.cmp(prefix) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Greater => break,
                std::cmp::Ordering::Equal => {
                    return codec::decode_postings(first, list)
                        .ok_or(StoreError::DamagedIndex(self.seq_lo))
                }
            }
        }
        Ok(Vec::new())
    }

    /// Every value starting with `prefix`, with its number of (not purged) events.
    pub fn count_prefixed(
        &self,
        disk: Disk<'_>,
        prefix: &[u8],
        purged: &Purged,
        out: &mut HashMap<Vec<u8>, u64>,
    ) -> Result<(), StoreError> {
        let start = self
            .firsts
            .partition_point(|f| &f[..] < prefix)
            .saturating_sub(1);
        for i in start..self.firsts.len() {
            if i > start && !self.firsts[i].starts_with(prefix) && &self.firsts[i][..] > prefix {
                break;
            }
            let Some(block) = self.block(disk, i)? else {
                return Ok(());
            };
            for e in entries(self, &block) {
                let (term, first, list) = e.ok_or(StoreError::DamagedIndex(self.seq_lo))?;
                if !term.starts_with(prefix) {
                    continue;
                }
                let ids = codec::decode_postings(first, list)
                    .ok_or(StoreError::DamagedIndex(self.seq_lo))?;
                let n = ids.iter().filter(|id| !purged.gone(**id)).count() as u64;
                if n > 0 {
                    *out.entry(term.to_vec()).or_default() += n;
                }
            }
        }
        Ok(())
    }
}

/// The ids under any of some index values in `lo..=hi`, in order, from the memtables
/// and the runs, without purged ones or repeats. Runs are read only when they may hold
/// the next id: a walk for the newest 100 reads the newest run or two, not all of them.
pub struct Walk<'a> {
    disk: Disk<'a>,
    prefixes: Vec<Vec<u8>>,
    lo: u128,
    hi: u128,
    desc: bool,
    purged: Purged,
    /// Runs not yet read; the next to read is last.
    waiting: Vec<Arc<Run>>,
    /// Lists read: ids ascending, and how many were taken from the walk's end.
    lists: Vec<(Vec<u128>, usize)>,
    /// The next id of each list, as a min-heap key (negated when descending).
    heads: BinaryHeap<Reverse<(u128, usize)>>,
    last: Option<u128>,
    failed: bool,
}

impl<'a> Walk<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        disk: Disk<'a>,
        runs: &[Arc<Run>],
        mems: &[&Memtable],
        purged: &Purged,
        prefixes: &[Vec<u8>],
        lo: u128,
        hi: u128,
        desc: bool,
    ) -> Walk<'a> {
        let (tlo, thi) = (EventId::from_u128(lo).time, EventId::from_u128(hi).time);
        let mut waiting: Vec<Arc<Run>> = runs
            .iter()
            .filter(|r| r.tmax >= tlo && r.tmin <= thi)
            .cloned()
            .collect();
        // Read next: descending, the run reaching latest; ascending, the earliest.
        if desc {
            waiting.sort_by_key(|r| r.tmax);
        } else {
            waiting.sort_by_key(|r| Reverse(r.tmin));
        }
        let mut w = Walk {
            disk,
            prefixes: prefixes.to_vec(),
            lo,
            hi,
            desc,
            purged: purged.clone(),
            waiting,
            lists: Vec::new(),
            heads: BinaryHeap::new(),
            last: None,
            failed: false,
        };
        for mem in mems {
            for p in prefixes {
                let ids = mem.ids_of(p, lo, hi, purged);
                w.push_list(ids);
            }
        }
        w
    }

    fn key(&self, id: u128) -> u128 {
        if self.desc {
            u128::MAX - id
        } else {
            id
        }
    }

    fn push_list(&mut self, ids: Vec<u128>) {
        if ids.is_empty() {
            return;
        }
        let i = self.lists.len();
        let head = if self.desc {
            ids[ids.len() - 1]
        } else {
            ids[0]
        };
        self.lists.push((ids, 0));
        self.heads.push(Reverse((self.key(head), i)));
    }

    fn read(&mut self, run: &Run) -> Result<(), StoreError> {
        for p in 0..self.prefixes.len() {
            let ids: Vec<u128> = run
                .ids_of(self.disk, &self.prefixes[p])?
                .into_iter()
                .filter(|id| !self.purged.gone(*id))
                .map(EventId::as_u128)
                .filter(|id| (self.lo..=self.hi).contains(id))
                .collect();
            self.push_list(ids);
        }
        Ok(())
    }

    /// Moves on to `target`: the next id given is the first at or after it in the
    /// walk's order. An intersection of walks leaps through the longer ones this way,
    /// reading only the runs it lands in.
    pub fn seek(&mut self, target: EventId) {
        let t = target.as_u128();
        if self.desc {
            self.hi = self.hi.min(t);
        } else {
            self.lo = self.lo.max(t);
        }
        let mut heads = BinaryHeap::with_capacity(self.lists.len());
        for (i, (ids, taken)) in self.lists.iter_mut().enumerate() {
            // Ids are ascending; a descending walk takes them from the end.
            let skip = if self.desc {
                ids.len() - ids.partition_point(|&x| x <= t)
            } else {
                ids.partition_point(|&x| x < t)
            };
            *taken = (*taken).max(skip);
            if *taken < ids.len() {
                let head = if self.desc {
                    ids[ids.len() - 1 - *taken]
                } else {
                    ids[*taken]
                };
                heads.push(Reverse((
                    if self.desc { u128::MAX - head } else { head },
                    i,
                )));
            }
        }
        self.heads = heads;
    }

    /// Whether a run not yet read may hold an id that comes before `next`.
    fn may_precede(&self, run: &Run, next: Option<u128>) -> bool {
        let Some(next) = next else { return true };
        let t = EventId::from_u128(next).time;
        if self.desc {
            run.tmax >= t
        } else {
            run.tmin <= t
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<EventId, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let next = self.heads.peek().map(|Reverse((k, _))| self.key(*k));
            if let Some(run) = self.waiting.last() {
                if self.may_precede(run, next) {
                    let run = self.waiting.pop()?;
                    if let Err(e) = self.read(&run) {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    continue;
                }
            }
            let Reverse((k, i)) = self.heads.pop()?;
            let id = self.key(k);
            let (ids, taken) = &mut self.lists[i];
            *taken += 1;
            if *taken < ids.len() {
                let head = if self.desc {
                    ids[ids.len() - 1 - *taken]
                } else {
                    ids[*taken]
                };
                let key = self.key(head);
                self.heads.push(Reverse((key, i)));
            }
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(Ok(EventId::from_u128(id)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(time: u64, seq: u64) -> EventId {
        EventId { time, seq }
    }

    /// A sled tree and segment files in a temporary directory.
    struct Scratch {
        _dir: tempfile::TempDir,
        _db: sled::Db,
        tree: sled::Tree,
        segs: crate::segments::Segments,
    }

    impl Scratch {
        fn disk(&self) -> Disk<'_> {
            Disk {
                tree: &self.tree,
                segs: &self.segs,
            }
        }
    }

    fn scratch_tree() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .temporary(true)
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        let tree = db.open_tree("t").unwrap();
        let segs = crate::segments::Segments::open(&dir.path().join("data")).unwrap();
        Scratch {
            _dir: dir,
            _db: db,
            tree,
            segs,
        }
    }

    /// A batch is in the memtable while its events are written, unseen until it is
    /// published; a batch whose write failed is taken back out.
    #[test]
    fn a_batch_is_seen_once_published_and_taken_back_if_its_write_failed() {
        let all = |m: &Memtable, p: &[u8]| -> Vec<EventId> {
            m.ids_of(p, 0, u128::MAX, &Purged::default())
                .into_iter()
                .map(EventId::from_u128)
                .collect()
        };
        let mut counts = HashMap::new();
        let mut m = Memtable::new(0);
        m.add(id(5, 0), [&b"iterror\0"[..]]);
        let batch = |m: &mut Memtable, seq: u64| {
            let mut postings = PostingsBuilder::default();
            postings.add(b"itnew\0", 0);
            postings.add(b"iterror\0", 1);
            postings.add(b"itnew\0", 1);
            m.add_batch(&[id(6, seq), id(7, seq + 1)], postings.finish(2));
        };
        batch(&mut m, 1);
        assert_eq!(all(&m, b"iterror\0"), [id(5, 0)]);
        assert!(all(&m, b"itnew\0").is_empty());
        assert_eq!(all(&m, ALL), [id(5, 0)]);
        m.count_prefixed(b"it", &Purged::default(), &mut counts);
        assert_eq!(counts.len(), 1, "{counts:?}");

        m.publish();
        assert_eq!(all(&m, b"iterror\0"), [id(5, 0), id(7, 2)]);
        assert_eq!(all(&m, b"itnew\0"), [id(6, 1), id(7, 2)]);

        batch(&mut m, 3);
        m.truncate(3);
        assert_eq!(m.len(), 3);
        m.publish();
        assert_eq!(all(&m, b"itnew\0"), [id(6, 1), id(7, 2)]);
        assert_eq!(all(&m, ALL), [id(5, 0), id(6, 1), id(7, 2)]);
    }

    /// The memtable, fed batches of many sizes (small ones share a table, large ones
    /// stand alone) with times out of order, answers what a plain list of its events
    /// answers: lookups, counts, and the run written from it.
    #[test]
    fn a_memtable_of_batches_answers_as_the_list_of_its_events() {
        let words = |i: u64| -> Vec<Vec<u8>> {
            let mut w = vec![
                format!("itw{}\0", i % 7).into_bytes(),
                format!("itu{i}\0").into_bytes(),
                format!("ihh{}\0", i % 3).into_bytes(),
                // Longer than 16 bytes and alike in those 16: ordered past them.
                format!("ihfile\x1f/var/log/{}.log\0", i % 4).into_bytes(),
            ];
            if i.is_multiple_of(5) {
                w.push(b"itw1\0".to_vec());
            }
            w
        };
        let mut m = Memtable::new(0);
        let mut kept: Vec<(EventId, Vec<Vec<u8>>)> = Vec::new();
        let mut seq = 0u64;
        for (round, size) in [1u64, 3, 300, 17, 500, 2, 256, 255, 1, 40, 700, 5]
            .into_iter()
            .enumerate()
        {
            let batch: Vec<(EventId, Vec<Vec<u8>>)> = (seq..seq + size)
                .map(|s| (id(1000 + (s * 7919) % 500, s), words(s)))
                .collect();
            let mut postings = PostingsBuilder::default();
            for (at, (_, ws)) in batch.iter().enumerate() {
                for w in ws {
                    postings.add(w, at as u32);
                }
            }
            let ids: Vec<EventId> = batch.iter().map(|(id, _)| *id).collect();
            let before = m.len();
            m.add_batch(&ids, postings.finish(batch.len() as u32));
            if round == 4 || round == 9 {
                // Its write failed: taken back, and the sequence numbers given again.
                m.truncate(before);
                continue;
            }
            m.publish();
            seq += size;
            kept.extend(batch);
        }
        let purged = {
            let mut p = Purged::default();
            p.add(1100, 600);
            p
        };
        let expect = |term: &[u8], lo: u128, hi: u128| -> Vec<u128> {
            let mut v: Vec<u128> = kept
                .iter()
                .filter(|(id, ws)| {
                    (term == ALL || ws.iter().any(|w| w == term)) && !purged.gone(*id)
                })
                .map(|(id, _)| id.as_u128())
                .filter(|id| (lo..=hi).contains(id))
                .collect();
            v.sort_unstable();
            v
        };
        let (lo, hi) = (id(1200, 0).as_u128(), id(1300, u64::MAX).as_u128());
        let mut terms: Vec<Vec<u8>> = (0..7).map(|i| format!("itw{i}\0").into_bytes()).collect();
        terms.extend([
            b"itu3\0".to_vec(),
            b"itu1500\0".to_vec(),
            b"ihh2\0".to_vec(),
            b"ihfile\x1f/var/log/0.log\0".to_vec(),
            b"ihfile\x1f/var/log/3.log\0".to_vec(),
        ]);
        terms.push(ALL.to_vec());
        for t in &terms {
            assert_eq!(m.ids_of(t, 0, u128::MAX, &purged), expect(t, 0, u128::MAX));
            assert_eq!(m.ids_of(t, lo, hi, &purged), expect(t, lo, hi));
        }
        let mut counts = HashMap::new();
        m.count_prefixed(b"ih", &purged, &mut counts);
        for h in 0..3 {
            let t = format!("ihh{h}\0").into_bytes();
            assert_eq!(counts[&t], expect(&t, 0, u128::MAX).len() as u64);
        }
        assert_eq!(counts.len(), 3 + 4);

        let scratch = scratch_tree();
        let tree = &scratch.tree;
        let (run, blocks) = m.to_run(seq, &purged).unwrap();
        for (i, b) in blocks.iter().enumerate() {
            tree.insert(run_key(run.seq_lo, i as u32), &b[..]).unwrap();
        }
        assert_eq!(run.events, expect(ALL, 0, u128::MAX).len() as u64);
        for t in &terms {
            let got: Vec<u128> = run
                .ids_of(scratch.disk(), t)
                .unwrap()
                .into_iter()
                .map(EventId::as_u128)
                .collect();
            assert_eq!(
                got,
                expect(t, 0, u128::MAX),
                "{}",
                String::from_utf8_lossy(t)
            );
        }
    }

    /// Single-event writes (a POST of one event, a take of one) merge their tables as
    /// they come: a query then looks a value up in a few tables, not one per write.
    #[test]
    fn many_small_writes_make_few_tables() {
        let mut m = Memtable::new(0);
        for seq in 0..1000u64 {
            let mut postings = PostingsBuilder::default();
            postings.add(format!("itw{}\0", seq % 3).as_bytes(), 0);
            m.add_batch(&[id(seq, seq)], postings.finish(1));
            m.publish();
            // Tables of 256 or more events, and at most one small table per power
            // of two below 256.
            let small = m
                .parts
                .iter()
                .zip(m.parts.iter().skip(1).map(|p| p.0).chain([m.len() as u32]))
                .filter(|((start, _), end)| end - start < SMALL_PART)
                .count();
            assert!(small <= 8, "{small} small tables after {} writes", seq + 1);
        }
        assert!(m.parts.len() <= 1000 / 256 + 8, "{} tables", m.parts.len());
        let w1: Vec<u128> = (0..1000u64)
            .filter(|s| s % 3 == 1)
            .map(|s| id(s, s).as_u128())
            .collect();
        assert_eq!(m.ids_of(b"itw1\0", 0, u128::MAX, &Purged::default()), w1);
        assert_eq!(m.ids_of(ALL, 0, u128::MAX, &Purged::default()).len(), 1000);
    }

    #[test]
    fn values_compare_equal_only_when_equal() {
        let values: Vec<Vec<u8>> = (0..=20)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
                (0..n.max(1)).map(move |i| {
                    let mut v = base.clone();
                    if let Some(b) = v.get_mut(i) {
                        *b = b'Z';
                    }
                    v
                })
            })
            .collect();
        for a in &values {
            for b in &values {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    /// Runs find values by their byte order (block firsts, prefix counts), which the
    /// sort of a run keeps while comparing most values as one integer.
    #[test]
    fn a_run_sorts_values_in_byte_order() {
        let values: Vec<&[u8]> = vec![
            b"ia\0",
            b"ia\0\0",
            b"ia",
            b"",
            b"0123456789abcde\0",
            b"0123456789abcdef",
            b"0123456789abcdef\0",
            b"0123456789abcdef0\0",
            b"0123456789abcdef\0\0",
            b"0123456789abcdee\xff\xff",
            b"0123456789abcde",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for a in &values {
            for b in &values {
                let (ea, eb) = (Entry::new(a, 0, &[]), Entry::new(b, 0, &[]));
                assert_eq!(ea.value_cmp(&eb), a.cmp(b), "{a:?} {b:?}");
                let (ha, hb) = (ea.key.to_be_bytes(), eb.key.to_be_bytes());
                assert_eq!(ea.term(&ha), *a);
                assert_eq!(eb.term(&hb), *b);
            }
        }
    }

    #[test]
    fn purges_pass_over_what_they_deleted_and_not_later_backfills() {
        let mut p = Purged::default();
        p.add(100, 10);
        assert!(p.gone(id(99, 9)));
        assert!(!p.gone(id(99, 10)), "stored after the purge");
        assert!(!p.gone(id(100, 9)));
        p.add(50, 20);
        assert!(p.gone(id(49, 15)) && p.gone(id(99, 9)) && !p.gone(id(60, 15)));
        p.add(200, 30);
        assert_eq!(p, Purged(vec![(200, 30)]));
        assert_eq!(Purged::decode(&p.encode()), p);
    }

    #[test]
    fn bloom_filters_have_every_value_and_few_others() {
        let mut b = Bloom::for_values(10_000);
        for i in 0..10_000 {
            b.insert(format!("it{i}\0").as_bytes());
        }
        assert!((0..10_000).all(|i| b.may_have(format!("it{i}\0").as_bytes())));
        let false_hits = (10_000..20_000)
            .filter(|i| b.may_have(format!("it{i}\0").as_bytes()))
            .count();
        assert!(
            false_hits < 300,
            "{false_hits} of 10,000 absent values seen"
        );
    }

    #[test]
    fn runs_find_each_value_across_blocks() {
        let mut m = Memtable::new(0);
        let words: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("it{i:05}\0").into_bytes())
            .collect();
        for seq in 0..3000u64 {
            let w = &words[seq as usize];
            m.add(
                id(1000 + (seq * 7) % 500, seq),
                [&b"il common\0"[..], &w[..]],
            );
        }
        let (run, blocks) = m.to_run(3000, &Purged::default()).unwrap();
        assert!(blocks.len() > 2, "{} blocks", blocks.len());
        // 3,000 entries of one id (8-byte values) and two lists of 3,000 ids: the
        // fixed-width layout took 30 bytes per entry of one id, 108,000 in all.
        let bytes: usize = blocks.iter().map(Vec::len).sum();
        assert!(bytes < 70_000, "{bytes} bytes of index blocks");
        assert_eq!((run.events, run.tmin, run.tmax), (3000, 1000, 1499));
        let scratch = scratch_tree();
        let tree = &scratch.tree;
        for (i, b) in blocks.iter().enumerate() {
            tree.insert(run_key(0, i as u32), &b[..]).unwrap();
        }
        let run = Run::decode(0, &run.encode()).unwrap();
        for seq in [0u64, 1, 1499, 2999] {
            let got = run.ids_of(scratch.disk(), &words[seq as usize]).unwrap();
            assert_eq!(got, vec![id(1000 + (seq * 7) % 500, seq)]);
        }
        assert!(run.ids_of(scratch.disk(), b"it99999\0").unwrap().is_empty());
        assert!(run.ids_of(scratch.disk(), b"a").unwrap().is_empty());
        let common = run.ids_of(scratch.disk(), b"il common\0").unwrap();
        assert_eq!(common.len(), 3000);
        assert!(common.windows(2).all(|w| w[0] < w[1]));
        let mut counts = HashMap::new();
        run.count_prefixed(scratch.disk(), b"it0001", &Purged::default(), &mut counts)
            .unwrap();
        assert_eq!(counts.len(), 10);

        // The same run with its blocks in a segment file, and nothing in sled.
        let scratch = scratch_tree();
        let mut frames = crate::segments::Frames::default();
        for b in &blocks {
            frames.push(crate::segments::Kind::Run, |out| out.extend_from_slice(b));
        }
        let mut in_file = run.clone();
        in_file.set_data(&scratch.segs.write(&frames).unwrap());
        let header = in_file.encode();
        assert_eq!(header[0], SEGMENT_RUN);
        let decoded = Run::decode(0, &header).unwrap();
        assert_eq!(decoded, in_file);
        assert_eq!(decoded.locs().count(), blocks.len());
        for seq in [0u64, 1499, 2999] {
            let got = decoded
                .ids_of(scratch.disk(), &words[seq as usize])
                .unwrap();
            assert_eq!(got, vec![id(1000 + (seq * 7) % 500, seq)]);
        }
        assert_eq!(
            decoded.ids_of(scratch.disk(), b"il common\0").unwrap(),
            common
        );
        // A header whose locations do not match its blocks is damaged.
        let mut short = in_file.clone();
        let locs: Vec<Loc> = in_file.locs().collect();
        short.set_data(&locs[1..]);
        assert_eq!(Run::decode(0, &short.encode()), None);
    }

    #[test]
    fn runs_of_the_fixed_width_layout_are_still_read() {
        // An index block as runs wrote them before the compact layout.
        let put_fixed = |out: &mut Vec<u8>, term: &[u8], ids: &[EventId]| {
            out.extend_from_slice(&(term.len() as u16).to_be_bytes());
            out.extend_from_slice(term);
            out.extend_from_slice(&ids[0].to_bytes());
            let mut list = Vec::new();
            codec::encode_postings(ids, &mut list);
            out.extend_from_slice(&(list.len() as u32).to_be_bytes());
            out.extend_from_slice(&list);
        };
        let ids = [id(1000, 5), id(1001, 6), id(1001, 7)];
        let mut block = Vec::new();
        put_fixed(&mut block, ALL, &ids);
        put_fixed(&mut block, b"ih web-1\0", &ids[..2]);
        put_fixed(&mut block, b"it disk\0", &ids[2..]);
        let mut bloom = Bloom::for_values(3);
        for v in [ALL, b"ih web-1\0", b"it disk\0"] {
            bloom.insert(v);
        }
        let run = Run {
            seq_lo: 5,
            seq_hi: 8,
            tmin: 1000,
            tmax: 1001,
            events: 3,
            firsts: vec![ALL.into()],
            bloom,
            time_base: None,
            data: None,
        };
        let header = run.encode();
        assert_eq!(header[0], 0, "an earlier header starts with its last seq");
        let run = Run::decode(5, &header).unwrap();
        assert_eq!(run.time_base, None);
        let scratch = scratch_tree();
        let tree = &scratch.tree;
        tree.insert(run_key(5, 0), block).unwrap();
        assert_eq!(run.ids_of(scratch.disk(), ALL).unwrap(), ids);
        assert_eq!(
            run.ids_of(scratch.disk(), b"it disk\0").unwrap(),
            [id(1001, 7)]
        );
        let mut counts = HashMap::new();
        run.count_prefixed(scratch.disk(), b"ih", &Purged::default(), &mut counts)
            .unwrap();
        assert_eq!(counts, HashMap::from([(b"ih web-1\0".to_vec(), 2)]));
        // A compact block cut short is damaged, not misread.
        let mut m = Memtable::new(5);
        m.add(id(1000, 5), [&b"it disk\0"[..]]);
        let (run, blocks) = m.to_run(6, &Purged::default()).unwrap();
        let run = Run::decode(5, &run.encode()).unwrap();
        assert_eq!(run.time_base, Some(1000));
        tree.insert(run_key(5, 0), &blocks[0][..blocks[0].len() - 1])
            .unwrap();
        assert!(matches!(
            run.ids_of(scratch.disk(), b"it disk\0"),
            Err(StoreError::DamagedIndex(5))
        ));
    }

    #[test]
    fn walks_merge_runs_and_memtable_in_order_both_ways() {
        let scratch = scratch_tree();
        let tree = &scratch.tree;
        let p = b"ih web\0";
        let mut runs = Vec::new();
        let mut want = Vec::new();
        // Three runs and a memtable whose times overlap.
        let mut seq = 0;
        let mut mem = Memtable::new(0);
        for r in 0..4u64 {
            mem = Memtable::new(seq);
            for i in 0..50u64 {
                let e = id(r * 100 + (i * 13) % 150, seq);
                seq += 1;
                mem.add(e, [&p[..]]);
                want.push(e);
            }
            if r < 3 {
                let (run, blocks) = mem.to_run(seq, &Purged::default()).unwrap();
                for (i, b) in blocks.iter().enumerate() {
                    tree.insert(run_key(run.seq_lo, i as u32), &b[..]).unwrap();
                }
                runs.push(Arc::new(run));
            }
        }
        want.sort();
        let walk = |lo: u128, hi: u128, desc: bool| -> Vec<EventId> {
            Walk::new(
                scratch.disk(),
                &runs,
                &[&mem],
                &Purged::default(),
                &[p.to_vec()],
                lo,
                hi,
                desc,
            )
            .map(Result::unwrap)
            .collect()
        };
        assert_eq!(walk(0, u128::MAX, false), want);
        let mut desc = walk(0, u128::MAX, true);
        desc.reverse();
        assert_eq!(desc, want);
        let (lo, hi) = (id(120, 0).as_u128(), id(260, u64::MAX).as_u128());
        let part: Vec<EventId> = want
            .iter()
            .copied()
            .filter(|i| (lo..=hi).contains(&i.as_u128()))
            .collect();
        assert_eq!(walk(lo, hi, false), part);
        // Seeking lands on the first id at or after the target, both ways.
        for desc in [false, true] {
            let mut w = Walk::new(
                scratch.disk(),
                &runs,
                &[&mem],
                &Purged::default(),
                &[p.to_vec()],
                0,
                u128::MAX,
                desc,
            );
            let mut ordered = want.clone();
            if desc {
                ordered.reverse();
            }
            for k in [3usize, 40, 120, 198] {
                let target = ordered[k];
                w.seek(target);
                assert_eq!(w.next().unwrap().unwrap(), target, "desc {desc}");
                // Between two ids: the next one in order.
                let between = if desc {
                    EventId {
                        time: target.time,
                        seq: target.seq.saturating_sub(1),
                    }
                } else {
                    EventId {
                        time: target.time,
                        seq: target.seq + 1,
                    }
                };
                if between != ordered[k + 1] {
                    w.seek(between);
                    assert_eq!(w.next().unwrap().unwrap(), ordered[k + 1], "desc {desc}");
                }
            }
            assert!(w.next().is_none(), "nothing after the last, desc {desc}");
        }
    }
}
