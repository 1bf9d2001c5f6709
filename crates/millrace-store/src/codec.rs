//! How the store lays out its keys, all in one sled tree.
//!
//! | key | value |
//! |-----|-------|
//! | `b` seq(8, BE) | a block of event records ([`crate::blocks`]) |
//! | `B` seq(8, BE) | the block's summary |
//! | `r` seq(8, BE) n(4, BE) | an index block of a run ([`crate::index`]) |
//! | `R` seq(8, BE) | a run's header |
//! | `c` kind value | events with that value (u64 BE), for host, level, source |
//! | `m` name | store-wide numbers |
//!
//! An append writes its event blocks, their summaries and the counters that include
//! its events in one sled batch, so they appear and disappear together. Stores of the
//! earlier layout (`e` time seq per event, `i` kind value `\0` id per index entry) are
//! moved to this one at open.

use bytes::Bytes;
use millrace_core::Headers;
use std::fmt;
use std::str::FromStr;

pub const EVENT: u8 = b'e';
pub const INDEX: u8 = b'i';
pub const COUNT: u8 = b'c';
pub const META: u8 = b'm';

/// What an index entry indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Host,
    Level,
    Source,
    /// `key` `\x1f` `value` of a header.
    Header,
    /// A lower-case word of the body.
    Token,
}

impl Kind {
    pub fn byte(self) -> u8 {
        match self {
            Kind::Host => b'h',
            Kind::Level => b'l',
            Kind::Source => b's',
            Kind::Header => b'k',
            Kind::Token => b't',
        }
    }
}

/// Values longer than this are indexed by their first bytes; queries compare the whole
/// value when they check each event.
pub const MAX_INDEXED: usize = 256;
/// Separates a header's key from its value in header index entries.
pub const HEADER_SEP: char = '\u{1f}';

/// An event's identity: its time (ms) and a sequence number unique in the store. Ids
/// order events by time, then by arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub time: u64,
    pub seq: u64,
}

impl EventId {
    pub const MIN: EventId = EventId { time: 0, seq: 0 };
    pub const MAX: EventId = EventId {
        time: u64::MAX,
        seq: u64::MAX,
    };

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.time.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<EventId> {
        let b: &[u8; 16] = b.try_into().ok()?;
        Some(EventId {
            time: u64::from_be_bytes(b[..8].try_into().ok()?),
            seq: u64::from_be_bytes(b[8..].try_into().ok()?),
        })
    }

    pub fn as_u128(self) -> u128 {
        (self.time as u128) << 64 | self.seq as u128
    }

    pub fn from_u128(v: u128) -> EventId {
        EventId {
            time: (v >> 64) as u64,
            seq: v as u64,
        }
    }
}

/// `TIME-SEQ`, e.g. `1764000011096-42`.
impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.time, self.seq)
    }
}

impl FromStr for EventId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (t, q) = s.split_once('-').ok_or(())?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(t) || !digits(q) {
            return Err(());
        }
        Ok(EventId {
            time: t.parse().map_err(|_| ())?,
            seq: q.parse().map_err(|_| ())?,
        })
    }
}

/// An event as stored, with what was derived from it at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: EventId,
    pub level: Option<String>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub headers: Headers,
    pub body: Bytes,
}

pub fn event_key(id: EventId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = EVENT;
    k[1..].copy_from_slice(&id.to_bytes());
    k
}

/// The indexed form of a value: at most [`MAX_INDEXED`] bytes (on a character
/// boundary), with NUL (the key separator) replaced.
pub fn index_value(v: &str) -> String {
    let mut end = v.len().min(MAX_INDEXED);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].replace('\0', "\u{1}")
}

/// `i kind value \0`: the index key of a value, of [`index_value`].
pub fn index_prefix(kind: Kind, value: &str) -> Vec<u8> {
    let mut t = Terms::default();
    t.push(kind, value);
    t.buf
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A posting list of `ids` (ascending, without repeats; the first is kept apart): for
/// each id after the first, the varint of its time less the previous time, then the
/// varint of its seq less the previous seq (wrapping, zigzag). Appends to `out`.
pub fn encode_postings(ids: &[EventId], out: &mut Vec<u8>) {
    for w in ids.windows(2) {
        put_varint(out, w[1].time.wrapping_sub(w[0].time));
        let d = w[1].seq.wrapping_sub(w[0].seq) as i64;
        put_varint(out, ((d << 1) ^ (d >> 63)) as u64);
    }
}

/// The ids of a posting list whose first id is `first`; None when damaged.
pub fn decode_postings(first: EventId, mut v: &[u8]) -> Option<Vec<EventId>> {
    let mut ids = Vec::with_capacity(1 + v.len() / 3);
    let mut prev = first;
    ids.push(first);
    while !v.is_empty() {
        let dt = get_varint(&mut v)?;
        let z = get_varint(&mut v)?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        prev = EventId {
            time: prev.time.checked_add(dt)?,
            seq: prev.seq.wrapping_add(d as u64),
        };
        ids.push(prev);
    }
    Some(ids)
}

pub fn header_value(key: &str, value: &str) -> String {
    format!("{key}{HEADER_SEP}{value}")
}

pub fn count_prefix(kind: Kind) -> [u8; 2] {
    [COUNT, kind.byte()]
}

pub fn count_key(kind: Kind, value: &str) -> Vec<u8> {
    let mut k = count_prefix(kind).to_vec();
    k.extend_from_slice(index_value(value).as_bytes());
    k
}

/// The counter key of an index prefix ([`index_prefix`]) for the kinds that keep a
/// count of events per value (host, level, source); None for the others.
pub fn count_key_of_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let (&kind, value) = prefix.get(1..)?.split_first()?;
    let counted = [Kind::Host, Kind::Level, Kind::Source]
        .iter()
        .any(|k| k.byte() == kind);
    let value = value.strip_suffix(&[0])?;
    counted.then(|| [&[COUNT, kind][..], value].concat())
}

pub fn meta_key(name: &str) -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn u64_value(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Lower-case words of a text: runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether a word gets an index entry: single characters would list half the store,
/// and very long runs (hashes, base64) are rarely searched for whole.
pub fn indexed_word(w: &str) -> bool {
    WORD_CHARS.contains(&w.chars().count())
}

/// The lengths, in characters, of the words the token index holds.
const WORD_CHARS: std::ops::RangeInclusive<usize> = 2..=64;

/// For each byte: its lower case if it is an ASCII letter or digit (part of a word),
/// else 0.
static WORD_BYTE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Index prefixes ([`index_prefix`]) in one buffer: appends gather those of a whole
/// batch here, with no allocation per value, since this runs for every stored event.
#[derive(Debug, Default)]
pub struct Terms {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Terms {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        &self.buf[a..b]
    }

    /// Adds the prefix of `value` of `kind`: [`INDEX`], the kind, [`index_value`] of
    /// the value (as it is unless too long or holding a NUL), NUL.
    pub fn push(&mut self, kind: Kind, value: &str) {
        self.push_with(kind, |buf| {
            if value.len() <= MAX_INDEXED && !value.contains('\0') {
                buf.extend_from_slice(value.as_bytes());
            } else {
                buf.extend_from_slice(index_value(value).as_bytes());
            }
        });
    }

    /// Adds a prefix of `kind` whose value `write` appends to the buffer.
    fn push_with(&mut self, kind: Kind, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[INDEX, kind.byte()]);
        write(&mut self.buf);
        self.buf.push(0);
        self.spans.push((start, self.buf.len()));
    }

    /// [`Terms::push`] of the header `key: value` ([`header_value`]), without making
    /// the string first when it is indexed as it is.
    pub fn push_header(&mut self, key: &str, value: &str) {
        if key.len() + HEADER_SEP.len_utf8() + value.len() > MAX_INDEXED
            || key.contains('\0')
            || value.contains('\0')
        {
            return self.push(Kind::Header, &header_value(key, value));
        }
        self.push_with(Kind::Header, |buf| {
            buf.extend_from_slice(key.as_bytes());
            buf.push(HEADER_SEP as u8);
            buf.extend_from_slice(value.as_bytes());
        });
    }

    fn push_ascii_token(&mut self, w: &[u8]) {
        self.push_with(Kind::Token, |buf| {
            buf.extend(w.iter().map(|&b| WORD_BYTE[b as usize]));
        });
    }

    /// [`Terms::push_tokens`] of an ASCII body, in one pass: each byte is looked up once,
    /// which says both whether it is in a word and what its lower case is, and a word's
    /// bytes go to the buffer as they are read. Splitting the body first and
    /// lower-casing each word after took twice the instructions (store_bench's lines,
    /// under callgrind).
    fn push_ascii_tokens(&mut self, body: &[u8]) {
        let Terms { buf, spans } = self;
        // A word of n bytes (n >= 2) takes n + 3: at most 2.5 times the body.
        buf.reserve(body.len() * 5 / 2 + 3);
        let mut bytes = body.iter();
        while let Some(&b) = bytes.next() {
            let first = WORD_BYTE[b as usize];
            if first == 0 {
                continue;
            }
            let start = buf.len();
            buf.extend_from_slice(&[INDEX, Kind::Token.byte(), first]);
            for &b in bytes.by_ref() {
                match WORD_BYTE[b as usize] {
                    0 => break,
                    c => buf.push(c),
                }
            }
            if WORD_CHARS.contains(&(buf.len() - start - 2)) {
                buf.push(0);
                spans.push((start, buf.len()));
            } else {
                buf.truncate(start);
            }
        }
    }

    /// Adds the prefixes of the words of `body` that the token index holds (the words
    /// of [`body_tokens`]; a word seen twice is added twice).
    pub fn push_tokens(&mut self, body: &[u8]) {
        // Most log lines are ASCII; their words split on bytes, with no decoding.
        if body.is_ascii() {
            return self.push_ascii_tokens(body);
        }
        let text = String::from_utf8_lossy(body);
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if w.is_ascii() {
                if WORD_CHARS.contains(&w.len()) {
                    self.push_ascii_token(w.as_bytes());
                }
            } else if !w.is_empty() {
                let w = w.to_lowercase();
                if indexed_word(&w) {
                    self.push(Kind::Token, &w);
                }
            }
        }
    }
}

/// The words of an event body that the token index holds, without repeats.
#[cfg(test)]
pub fn body_tokens(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut t: Vec<String> = words(&text).filter(|w| indexed_word(w)).collect();
    t.sort_unstable();
    t.dedup();
    t
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// What a record holds, borrowed: an append encodes and indexes the events it was
/// given without copying their headers.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub level: Option<&'a str>,
    pub host: Option<&'a str>,
    pub source: Option<&'a str>,
    pub headers: &'a Headers,
    pub body: &'a Bytes,
}

impl EventView<'_> {
    /// The event as stored with id `id`.
    pub fn to_stored(self, id: EventId) -> StoredEvent {
        StoredEvent {
            id,
            level: self.level.map(str::to_string),
            host: self.host.map(str::to_string),
            source: self.source.map(str::to_string),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

impl StoredEvent {
    pub fn view(&self) -> EventView<'_> {
        EventView {
            level: self.level.as_deref(),
            host: self.host.as_deref(),
            source: self.source.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// The record of `e` ([`encode_into`]).
#[cfg(test)]
pub fn encode(e: &EventView<'_>) -> Vec<u8> {
    let size = e.body.len()
        + e.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
        + 64;
    let mut out = Vec::with_capacity(size);
    encode_into(e, &mut out);
    out
}

/// Appends the record of `e` to `out`.
pub fn encode_into(e: &EventView<'_>, out: &mut Vec<u8>) {
    let flags =
        e.level.is_some() as u8 | (e.host.is_some() as u8) << 1 | (e.source.is_some() as u8) << 2;
    out.push(flags);
    for s in [e.level, e.host, e.source].into_iter().flatten() {
        put_str(out, s);
    }
    out.extend_from_slice(&(e.headers.len() as u32).to_be_bytes());
    for (k, v) in e.headers {
        put_str(out, k);
        put_str(out, v);
    }
    out.extend_from_slice(&(e.body.len() as u32).to_be_bytes());
    out.extend_from_slice(e.body);
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// None when the record is damaged.
pub fn decode(id: EventId, v: &[u8]) -> Option<StoredEvent> {
    let mut r = Reader { b: v };
    let flags = r.take(1)?[0];
    let mut opt = |bit: u8| -> Option<Option<String>> {
        if flags & bit != 0 {
            r.string().map(Some)
        } else {
            Some(None)
        }
    };
    let level = opt(1)?;
    let host = opt(2)?;
    let source = opt(4)?;
    let n = r.u32()?;
    let mut headers = Headers::new();
    for _ in 0..n {
        let k = r.string()?;
        let v = r.string()?;
        headers.insert(k, v);
    }
    let len = r.u32()?;
    let body = Bytes::copy_from_slice(r.take(len)?);
    Some(StoredEvent {
        id,
        level,
        host,
        source,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_keys_of_index_prefixes() {
        for kind in [Kind::Host, Kind::Level, Kind::Source] {
            assert_eq!(
                count_key_of_prefix(&index_prefix(kind, "web-1")),
                Some(count_key(kind, "web-1"))
            );
        }
        assert_eq!(
            count_key_of_prefix(&index_prefix(Kind::Token, "error")),
            None
        );
        assert_eq!(count_key_of_prefix(&index_prefix(Kind::Header, "a")), None);
        assert_eq!(count_key_of_prefix(b"i"), None);
    }

    #[test]
    fn events_round_trip() {
        let mut headers = Headers::new();
        headers.insert("host".into(), "web-1".into());
        headers.insert("k".into(), "".into());
        let e = StoredEvent {
            id: EventId { time: 5, seq: 9 },
            level: Some("ERROR".into()),
            host: Some("web-1".into()),
            source: None,
            headers,
            body: Bytes::from_static(b"boom \xff"),
        };
        assert_eq!(decode(e.id, &encode(&e.view())), Some(e.clone()));
        assert_eq!(decode(e.id, &encode(&e.view())[..10]), None);
    }

    #[test]
    fn ids_order_by_time_then_seq_and_print_readably() {
        let a = EventId { time: 1, seq: 99 };
        let b = EventId { time: 2, seq: 1 };
        assert!(a.to_bytes() < b.to_bytes());
        assert_eq!(a.to_string(), "1-99");
        assert_eq!("1-99".parse(), Ok(a));
        assert!("1-".parse::<EventId>().is_err());
        assert_eq!(EventId::from_u128(b.as_u128()), b);
    }

    #[test]
    fn posting_lists_round_trip() {
        let ids = [
            EventId { time: 5, seq: 9 },
            EventId { time: 5, seq: 10 },
            EventId { time: 7, seq: 3 },
            EventId {
                time: 700_000,
                seq: u64::MAX,
            },
            EventId {
                time: 700_001,
                seq: 0,
            },
        ];
        for n in 1..=ids.len() {
            let mut v = Vec::new();
            encode_postings(&ids[..n], &mut v);
            assert_eq!(decode_postings(ids[0], &v).unwrap(), ids[..n]);
        }
        assert_eq!(decode_postings(ids[0], &[0x80]), None);
    }

    #[test]
    fn terms_are_the_index_prefixes_of_the_body_tokens() {
        // Words of 64 and 65 characters: the longest indexed, and one too long.
        let ascii_edges = format!("{} {} {}", "a".repeat(64), "B".repeat(65), "c".repeat(63));
        let ascii_edges = ascii_edges.into_bytes();
        for body in [
            &b"ERROR [orders] Payment failed: payment x a1 A1 \xff Stra\xc3\x9fe \xc3\x84rger \xc3\xa4rger"[..],
            b"",
            b"x",
            b"aa aa aa",
            b"GET /api/v1/Orders?id=42&user=U-9 took 12ms; trace=00AB12cd_ef\ttab\n",
            &ascii_edges[..],
        ] {
            let mut t = Terms::default();
            t.push(Kind::Host, "web-1");
            t.push_tokens(body);
            let mut got: Vec<Vec<u8>> = (1..t.len()).map(|i| t.get(i).to_vec()).collect();
            got.sort();
            got.dedup();
            let want: Vec<Vec<u8>> = body_tokens(body)
                .iter()
                .map(|w| index_prefix(Kind::Token, w))
                .collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
            assert_eq!(t.get(0), index_prefix(Kind::Host, "web-1"));
        }
        let mut t = Terms::default();
        let long = "é".repeat(200);
        t.push(Kind::Header, "a\0b");
        t.push(Kind::Source, &long);
        assert_eq!(t.get(0), index_prefix(Kind::Header, "a\0b"));
        assert_eq!(t.get(1), index_prefix(Kind::Source, &long));
    }

    #[test]
    fn terms_keep_the_body_order_and_repeats() {
        let tokens = |body: &[u8]| {
            let mut t = Terms::default();
            t.push_tokens(body);
            (0..t.len()).map(|i| t.get(i).to_vec()).collect::<Vec<_>>()
        };
        let want = |words: &[&str]| {
            words
                .iter()
                .map(|w| index_prefix(Kind::Token, w))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            tokens(b"Aa bb AA x ccc,bb9 bb"),
            want(&["aa", "bb", "aa", "ccc", "bb9", "bb"])
        );
        assert_eq!(
            tokens("Zz \u{e9}t\u{e9} zz Zz".as_bytes()),
            want(&["zz", "\u{e9}t\u{e9}", "zz", "zz"])
        );
    }

    #[test]
    fn header_prefixes_are_those_of_the_joined_header() {
        let long = "v".repeat(MAX_INDEXED);
        for (k, v) in [
            ("host", "web-1"),
            ("", ""),
            ("k", "caf\u{e9}"),
            ("nul", "a\0b"),
            ("long", &long[..]),
            ("k", &long[..MAX_INDEXED - 2]),
        ] {
            let mut fast = Terms::default();
            fast.push_header(k, v);
            assert_eq!(
                fast.get(0),
                index_prefix(Kind::Header, &header_value(k, v)),
                "{k}: {v}"
            );
        }
    }

    #[test]
    fn tokens_are_lower_case_words() {
        assert_eq!(
            body_tokens(b"ERROR [orders] Payment failed: payment x"),
            ["error", "failed", "orders", "payment"]
        );
    }
}
