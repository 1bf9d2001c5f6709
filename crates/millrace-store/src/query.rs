//! Queries: filters, the plan that picks an index to walk, paging, summaries.

use crate::codec::{self, EventId, Kind, StoredEvent};
use crate::index::{Memtable, Walk, ALL};
use crate::{Store, StoreError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Which events a query is about. Conditions of different kinds must all hold; the
/// values of one repeatable kind (hosts, sources, levels) are alternatives; every
/// header condition must hold; every word of `q` must be a word of the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Events at or after this time (epoch ms).
    pub from: Option<u64>,
    /// Events before this time (epoch ms).
    pub to: Option<u64>,
    pub hosts: Vec<String>,
    pub sources: Vec<String>,
    /// Compared without regard to case.
    pub levels: Vec<String>,
    /// `(key, value)`: the header must be present with exactly this value.
    pub headers: Vec<(String, String)>,
    /// Words, case-insensitive; punctuation separates words.
    pub q: Option<String>,
}

impl Filter {
    fn q_words(&self) -> Vec<String> {
        self.q
            .as_deref()
            .map(|q| {
                let mut w: Vec<String> = codec::words(q).collect();
                w.sort_unstable();
                w.dedup();
                w
            })
            .unwrap_or_default()
    }

    /// True when only the time range (if any) restricts the events.
    pub fn is_time_only(&self) -> bool {
        self.hosts.is_empty()
            && self.sources.is_empty()
            && self.levels.is_empty()
            && self.headers.is_empty()
            && self.q_words().is_empty()
    }

    /// Whether an event meets every condition.
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.matcher().matches(e)
    }

    fn matcher(&self) -> Matcher<'_> {
        Matcher {
            f: self,
            levels: self
                .levels
                .iter()
                .map(|l| crate::normalize_level(l))
                .collect(),
            words: self.q_words(),
        }
    }
}

struct Matcher<'a> {
    f: &'a Filter,
    levels: Vec<String>,
    words: Vec<String>,
}

impl Matcher<'_> {
    fn matches(&self, e: &StoredEvent) -> bool {
        let f = self.f;
        let any = |want: &[String], have: &Option<String>| {
            want.is_empty() || have.as_ref().is_some_and(|h| want.iter().any(|w| w == h))
        };
        f.from.is_none_or(|t| e.id.time >= t)
            && f.to.is_none_or(|t| e.id.time < t)
            && any(&f.hosts, &e.host)
            && any(&f.sources, &e.source)
            && any(&self.levels, &e.level)
            && f.headers
                .iter()
                .all(|(k, v)| e.headers.get(k).is_some_and(|h| h == v))
            && (self.words.is_empty() || {
                let text = String::from_utf8_lossy(&e.body);
                let have: HashSet<String> = codec::words(&text).collect();
                self.words.iter().all(|w| have.contains(w))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// Where the next page starts: just past the last event of the page before, in the
/// page's order. New events never shift it, so paging repeats and skips nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub EventId);

/// Opaque text: 32 hex digits.
impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Cursor {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.is_ascii() {
            return Err(());
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        EventId::from_bytes(&b).map(Cursor).ok_or(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub order: Order,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            order: Order::Desc,
            limit: 100,
            cursor: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub events: Vec<StoredEvent>,
    /// Present when more events match.
    pub next_cursor: Option<Cursor>,
}

/// What [`Store::top`] counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Host,
    Level,
    Source,
    Header(String),
}

impl Field {
    fn of(&self, e: &StoredEvent) -> Option<String> {
        match self {
            Field::Host => e.host.clone(),
            Field::Level => e.level.clone(),
            Field::Source => e.source.clone(),
            Field::Header(k) => e.headers.get(k).cloned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopValues {
    /// Most frequent first (ties by value).
    pub values: Vec<(String, u64)>,
    /// Matching events that have the field at all.
    pub total: u64,
}

/// How long a query may run.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
    limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + limit,
            limit,
        }
    }

    fn check(d: Option<Deadline>) -> Result<(), StoreError> {
        match d {
            Some(d) if Instant::now() >= d.end => Err(StoreError::Timeout(d.limit)),
            _ => Ok(()),
        }
    }
}

/// Index entries counted per candidate index before one is picked to walk.
const ESTIMATE_CAP: usize = 1000;

/// How many index entries a condition has in the queried range (counted up to the
/// best so far, or [`ESTIMATE_CAP`]) and, when that count was cut short, how many
/// events have its values in the whole store.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    in_range: usize,
    total: Option<u64>,
}

impl Estimate {
    /// Fewer entries in range wins. Two conditions both cut short at the same count
    /// (a common host and a rare level over a long range) are told apart by their
    /// totals, so a query for FATAL on one host walks the FATAL list rather than every
    /// event of the host.
    fn better_than(&self, best: &Estimate) -> bool {
        match self.in_range.cmp(&best.in_range) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => matches!(
                (self.total, best.total),
                (Some(t), Some(b)) if t < b
            ),
        }
    }
}

/// The inclusive id range a query covers, or None when it is empty.
fn id_range(f: &Filter, order: Order, cursor: Option<Cursor>) -> Option<(u128, u128)> {
    let mut lo = EventId {
        time: f.from.unwrap_or(0),
        seq: 0,
    }
    .as_u128();
    let mut hi = match f.to {
        Some(0) => return None,
        Some(t) => EventId {
            time: t - 1,
            seq: u64::MAX,
        }
        .as_u128(),
        None => EventId::MAX.as_u128(),
    };
    if let Some(Cursor(c)) = cursor {
        let c = c.as_u128();
        match order {
            Order::Asc => lo = lo.max(c.checked_add(1)?),
            Order::Desc => hi = hi.min(c.checked_sub(1)?),
        }
    }
    (lo <= hi).then_some((lo, hi))
}

impl Store {
    /// The ids under any of some index values (`prefixes`, see [`codec::index_prefix`])
    /// in `lo..=hi`.
    fn index_ids(&self, prefixes: &[Vec<u8>], lo: u128, hi: u128, desc: bool) -> Walk<'_> {
        let ix = crate::read(&self.index);
        let mems: Vec<&Memtable> = std::iter::once(&ix.mem)
            .chain(ix.sealed.as_deref())
            .collect();
        Walk::new(
            self.disk(),
            &ix.runs,
            &mems,
            &ix.purged,
            prefixes,
            lo,
            hi,
            desc,
        )
    }

    /// Every index value starting with `prefix`, with its number of events.
    fn count_prefixed(&self, prefix: &[u8]) -> Result<HashMap<Vec<u8>, u64>, StoreError> {
        let mut out = HashMap::new();
        let (runs, purged) = {
            let ix = crate::read(&self.index);
            ix.mem.count_prefixed(prefix, &ix.purged, &mut out);
            if let Some(sealed) = &ix.sealed {
                sealed.count_prefixed(prefix, &ix.purged, &mut out);
            }
            (ix.runs.clone(), ix.purged.clone())
        };
        for r in &runs {
            r.count_prefixed(self.disk(), prefix, &purged, &mut out)?;
        }
        Ok(out)
    }

    /// Events with any of a group's values in the whole store, from the per-value
    /// counters; None when a value has no counter (headers and words).
    fn group_total(&self, group: &[Vec<u8>]) -> Result<Option<u64>, StoreError> {
        let mut total = 0;
        for p in group {
            let Some(k) = codec::count_key_of_prefix(p) else {
                return Ok(None);
            };
            total += crate::read(&self.counts).0.get(&k).copied().unwrap_or(0);
        }
        Ok(Some(total))
    }

    /// The index conditions of a filter: each is a set of index prefixes of which an
    /// event must be in at least one.
    fn groups(f: &Filter) -> Vec<Vec<Vec<u8>>> {
        let mut groups = Vec::new();
        let one_of = |kind: Kind, values: &[String]| -> Vec<Vec<u8>> {
            values
                .iter()
                .map(|v| codec::index_prefix(kind, v))
                .collect()
        };
        if !f.hosts.is_empty() {
            groups.push(one_of(Kind::Host, &f.hosts));
        }
        if !f.sources.is_empty() {
            groups.push(one_of(Kind::Source, &f.sources));
        }
        if !f.levels.is_empty() {
            let levels: Vec<String> = f.levels.iter().map(|l| crate::normalize_level(l)).collect();
            groups.push(one_of(Kind::Level, &levels));
        }
        for (k, v) in &f.headers {
            if crate::indexed_header(k) {
                groups.push(vec![codec::index_prefix(
                    Kind::Header,
                    &codec::header_value(k, v),
                )]);
            }
        }
        for w in f.q_words() {
            if codec::indexed_word(&w) {
                groups.push(vec![codec::index_prefix(Kind::Token, &w)]);
            }
        }
        groups
    }

    /// Calls `each` with every matching event in order until it returns false. Walks
    /// the index of the condition with the fewest entries in the range (counting at
    /// most [`ESTIMATE_CAP`] of each), checking the other conditions on each event;
    /// a filter without index conditions walks the time range of the store.
    pub(crate) fn scan(
        &self,
        f: &Filter,
        order: Order,
        cursor: Option<Cursor>,
        deadline: Option<Deadline>,
        mut each: impl FnMut(StoredEvent) -> bool,
    ) -> Result<(), StoreError> {
        Deadline::check(deadline)?;
        let Some((lo, hi)) = id_range(f, order, cursor) else {
            return Ok(());
        };
        let desc = order == Order::Desc;
        let m = f.matcher();
        let groups = Self::groups(f);
        let mut cache = crate::BlockCache::default();
        let mut checked = 0u32;
        let mut tick = || -> Result<(), StoreError> {
            checked = checked.wrapping_add(1);
            if checked.is_multiple_of(32) {
                Deadline::check(deadline)?;
            }
            Ok(())
        };
        if groups.is_empty() {
            // The time order of the whole store.
            for id in self.index_ids(&[ALL.to_vec()], lo, hi, desc) {
                tick()?;
                let Some(e) = self.get_cached(id?, &mut cache)? else {
                    continue;
                };
                if m.matches(&e) && !each(e) {
                    break;
                }
            }
            return Ok(());
        }
        let mut best: Option<(usize, Estimate)> = None;
        for (i, g) in groups.iter().enumerate() {
            let cap = best.map(|(_, b)| b.in_range).unwrap_or(ESTIMATE_CAP);
            let mut n = 0;
            for r in self.index_ids(g, lo, hi, false) {
                r?;
                n += 1;
                if n >= cap {
                    break;
                }
            }
            if n == 0 {
                return Ok(());
            }
            let e = Estimate {
                in_range: n,
                // Only a count cut short at the cap needs the totals to break a tie.
                total: if n == cap { self.group_total(g)? } else { None },
            };
            if best.is_none_or(|(_, b)| e.better_than(&b)) {
                best = Some((i, e));
            }
        }
        let driver = best.map(|(i, _)| i).unwrap_or(0);
        // The other conditions are checked on the ids first: each walk leaps to the
        // driver's id, so an event is read only when every index has it.
        let mut others: Vec<(Walk<'_>, Option<EventId>)> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != driver)
            .map(|(_, g)| (self.index_ids(g, lo, hi, desc), None))
            .collect();
        let before = |a: EventId, b: EventId| if desc { a > b } else { a < b };
        'ids: for id in self.index_ids(&groups[driver], lo, hi, desc) {
            tick()?;
            let id = id?;
            for (walk, at) in others.iter_mut() {
                if at.is_none_or(|a| before(a, id)) {
                    walk.seek(id);
                    *at = walk.next().transpose()?;
                }
                match *at {
                    // This index has nothing at or after the id: no more matches.
                    None => return Ok(()),
                    Some(a) if a != id => continue 'ids,
                    Some(_) => {}
                }
            }
            // An index entry whose event is gone (purged meanwhile) is passed over.
            let Some(e) = self.get_cached(id, &mut cache)? else {
                continue;
            };
            if m.matches(&e) && !each(e) {
                break;
            }
        }
        Ok(())
    }

    /// One page of matching events.
    pub fn search(
        &self,
        f: &Filter,
        page: &Page,
        deadline: Option<Deadline>,
    ) -> Result<SearchResult, StoreError> {
        let limit = page.limit.max(1);
        let mut events = Vec::with_capacity(limit.min(1024) + 1);
        self.scan(f, page.order, page.cursor, deadline, |e| {
            events.push(e);
            events.len() <= limit
        })?;
        let next_cursor = if events.len() > limit {
            events.truncate(limit);
            events.last().map(|e| Cursor(e.id))
        } else {
            None
        };
        Ok(SearchResult {
            events,
            next_cursor,
        })
    }

    /// Matching events counted per `interval_ms`, as (bucket start, count) in time
    /// order, buckets aligned to the epoch; empty buckets are left out.
    pub fn histogram(
        &self,
        f: &Filter,
        interval_ms: u64,
        deadline: Option<Deadline>,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let interval = interval_ms.max(1);
        let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
        let mut add = |t: u64| *buckets.entry(t - t % interval).or_default() += 1;
        if f.is_time_only() {
            // Only ids are needed: no event is read.
            let Some((lo, hi)) = id_range(f, Order::Asc, None) else {
                return Ok(Vec::new());
            };
            let mut n = 0u32;
            for id in self.index_ids(&[ALL.to_vec()], lo, hi, false) {
                n = n.wrapping_add(1);
                if n.is_multiple_of(256) {
                    Deadline::check(deadline)?;
                }
                add(id?.time);
            }
        } else {
            self.scan(f, Order::Asc, None, deadline, |e| {
                add(e.id.time);
                true
            })?;
        }
        Ok(buckets.into_iter().collect())
    }

    /// The most frequent values of `field` among matching events.
    pub fn top(
        &self,
        field: &Field,
        f: &Filter,
        limit: usize,
        deadline: Option<Deadline>,
    ) -> Result<TopValues, StoreError> {
        let unconstrained = f.is_time_only() && f.from.is_none() && f.to.is_none();
        let mut counts: HashMap<String, u64> = HashMap::new();
        match field {
            Field::Host | Field::Level | Field::Source if unconstrained => {
                counts.extend(self.values(field.clone())?);
            }
            Field::Header(key) if unconstrained && crate::indexed_header(key) => {
                // Header index values hold the value: counting needs no event read.
                Deadline::check(deadline)?;
                let prefix = codec::index_prefix(Kind::Header, &codec::header_value(key, ""));
                let prefix = &prefix[..prefix.len() - 1];
                for (term, n) in self.count_prefixed(prefix)? {
                    let v = &term[prefix.len()..term.len().saturating_sub(1)];
                    *counts
                        .entry(String::from_utf8_lossy(v).into_owned())
                        .or_default() += n;
                }
            }
            _ => {
                self.scan(f, Order::Asc, None, deadline, |e| {
                    if let Some(v) = field.of(&e) {
                        *counts.entry(v).or_default() += 1;
                    }
                    true
                })?;
            }
        }
        let total = counts.values().sum();
        let mut values: Vec<(String, u64)> = counts.into_iter().collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        values.truncate(limit);
        Ok(TopValues { values, total })
    }
}

#[cfg(test)]
mod tests {
    use super::Estimate;

    fn est(in_range: usize, total: Option<u64>) -> Estimate {
        Estimate { in_range, total }
    }

    #[test]
    fn fewer_entries_in_range_win_and_totals_break_ties_at_the_cap() {
        assert!(est(10, None).better_than(&est(20, Some(1))));
        assert!(!est(20, Some(1)).better_than(&est(10, None)));
        // Both cut short at the cap: the rarer value overall drives the walk.
        assert!(est(1000, Some(4_000)).better_than(&est(1000, Some(17_000))));
        assert!(!est(1000, Some(17_000)).better_than(&est(1000, Some(4_000))));
        // Without a total (a word or header) the condition found first stays.
        assert!(!est(1000, None).better_than(&est(1000, Some(17_000))));
        assert!(!est(1000, Some(1)).better_than(&est(1000, None)));
    }
}
