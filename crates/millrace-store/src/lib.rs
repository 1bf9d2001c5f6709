//! millrace's event store: events kept in a sled database with indexes, so that the
//! logs a pipeline collected can be searched at once.
//!
//! - [`Store::append`] keeps a batch of events. Each gets an [`EventId`] of its time
//!   (the `timestamp` header in ms, as Flume's timestamp interceptor sets it, else the
//!   arrival time) and a sequence number, so ids are unique, stable and ordered by time.
//!   At ingest the store derives the host (`host` header), the source (`file`, else
//!   `source` header) and the level (`level` header, else the first match of a regex
//!   over the body), and indexes them, every header `key:value` and the words of the
//!   body. The events go to append-only segment files, which are also the store's
//!   write-ahead log ([`segments`]); sled keeps the summaries of the blocks, the
//!   counters and the index runs' headers, and takes many appends at a time.
//! - [`Store::search`] answers a [`Filter`] in time order either way, a page at a time,
//!   with a [`Cursor`] to the next page: a page never repeats or skips an event. It
//!   walks the index of its most selective condition, never the whole store when a
//!   condition is given, and stops at its deadline.
//! - [`Store::histogram`], [`Store::top`], [`Store::values`] and [`Store::stats`]
//!   summarise; [`Store::purge_before`] and [`Retention`] delete the oldest events.
//! - One process at a time: [`Store::open`] fails at once when another holds the store.
//!
//! ```
//! use millrace_core::Event;
//! use millrace_store::{Filter, Page, Store, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! store.append(&[Event::from_body("ERROR payment 42 declined").with_header("host", "web-1")]).unwrap();
//! let filter = Filter { q: Some("payment declined".into()), ..Filter::default() };
//! let page = store.search(&filter, &Page::default(), None).unwrap();
//! assert_eq!(page.events[0].level.as_deref(), Some("ERROR"));
//! ```

mod blocks;
mod codec;
mod index;
mod lock;
mod query;
mod segments;
pub mod time;

pub use codec::{EventId, StoredEvent, MAX_INDEXED};
pub use query::{Cursor, Deadline, Field, Filter, Order, Page, SearchResult, TopValues};

use blocks::{Block, BlockMeta, BLOCK, BLOCK_EVENTS, BLOCK_META};
use codec::{EventView, Kind, EVENT, INDEX};
use index::{Memtable, Purged, Run};
use millrace_core::Event;
use regex::Regex;
use segments::{Disk, Frames, ReadError, Segments, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store {dir} is in use by another process{}; stop it, or give this one another store directory", if holder.is_empty() { String::new() } else { format!(" (pid {holder})") })]
    Locked { dir: PathBuf, holder: String },
    /// The OS error is in the message and not given as the source, so that printing
    /// the chain of causes (`{:#}`) does not say it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("store database: {0}")]
    Db(#[from] sled::Error),
    #[error(
        "the query ran longer than its limit of {0:?}; narrow it with a time range or more filters"
    )]
    Timeout(Duration),
    #[error("stored event {0} is damaged")]
    Corrupt(EventId),
    #[error("the index of the events from sequence number {0} on is damaged")]
    DamagedIndex(u64),
}

/// How a store derives what it indexes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Finds the level in a body without a `level` header: the first capture group
    /// (or the whole match), upper-cased; `WARNING` counts as `WARN`.
    pub level_regex: Regex,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Events indexed in memory before the index of them is written as a run. More
    /// means fewer runs for a query to visit, and more memory and more events to index
    /// again at open after a crash. The default keeps the memory index small enough
    /// that its lookups mostly hit the CPU cache: over 2 million events, ingest was
    /// 60,304 events/s with runs of 65,536 and 71,236 with runs of 16,384, and no
    /// indexed query was slower (benches/RESULTS.md, "Packed blocks, smaller runs").
    pub run_events: usize,
}

/// The level regex used unless another is given.
pub const DEFAULT_LEVEL_REGEX: &str = r"\b(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\b";

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            // The default pattern is a constant known to compile.
            level_regex: Regex::new(DEFAULT_LEVEL_REGEX).expect("the default regex compiles"),
            cache_bytes: 256 << 20,
            run_events: 16_384,
        }
    }
}

/// What `GET /store` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub events: u64,
    /// Bytes of the stored records and index entries (what `--max-store-bytes` bounds).
    pub stored_bytes: u64,
    /// Bytes the store's files take on disk: sled's, which trail deletions until sled
    /// reuses space, and the segment files, each deleted once all it holds is.
    pub disk_bytes: u64,
    pub oldest: Option<u64>,
    pub newest: Option<u64>,
}

/// The index in memory: the runs written, the memtable, the memtable being written
/// as a run, and what purges deleted.
struct Index {
    runs: Vec<Arc<Run>>,
    mem: Memtable,
    sealed: Option<Arc<Memtable>>,
    purged: Purged,
}

/// Writes full memtables as runs on a thread of its own, so that the append that
/// fills one (and the sink take behind it) does not wait the few hundred milliseconds
/// a run takes. One run is written at a time; an append that fills the next memtable
/// before that waits for it, which bounds the memory held.
struct RunWriter {
    tree: sled::Tree,
    /// The runs' segment files.
    segs: Arc<Segments>,
    index: Arc<RwLock<Index>>,
    /// True from a seal until its run is written.
    busy: Mutex<bool>,
    done: std::sync::Condvar,
    closing: std::sync::atomic::AtomicBool,
}

/// Marks the run writer free when dropped.
struct SealDone<'a>(&'a RunWriter);

impl Drop for SealDone<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.done.notify_all();
    }
}

impl RunWriter {
    /// Writes the sealed memtable (events up to `seq_hi`) as a run. A failed write is
    /// retried every second while the store is open: queries read the sealed memtable
    /// meanwhile, and after a close its events are indexed again at open.
    fn write_sealed(&self, seq_hi: u64) {
        // Even if writing panics, the next seal must not wait for this one forever.
        let _done = SealDone(self);
        let sealed = read(&self.index).sealed.clone();
        if let Some(mem) = sealed {
            while let Err(e) = self.write(&mem, seq_hi) {
                tracing::error!(error = %e, "writing an index run failed; retrying in 1 s");
                if self.closing.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    fn write(&self, mem: &Memtable, seq_hi: u64) -> Result<(), StoreError> {
        let purged = read(&self.index).purged.clone();
        let mut built = mem.to_run(seq_hi, &purged);
        let mut b = sled::Batch::default();
        let mut writes = 1;
        if let Some((run, blocks)) = &mut built {
            let framed = segments::Loc::FRAMED as usize;
            let mut frames = Frames::with_capacity(blocks.iter().map(|b| b.len() + framed).sum());
            for block in blocks.iter() {
                frames.push(segments::Kind::Run, |out| out.extend_from_slice(block));
            }
            // The header refers to the blocks only once they are on disk.
            let locs = self.segs.write(&frames)?;
            if let Err(e) = self.segs.sync() {
                locs.iter().for_each(|l| self.segs.release(*l));
                return Err(e);
            }
            run.set_data(&locs);
            b.insert(&index::run_header_key(run.seq_lo)[..], run.encode());
            writes += 1;
        }
        b.insert(codec::meta_key(META_COVERED), &seq_hi.to_be_bytes()[..]);
        if let Err(e) = apply(&self.tree, b, writes) {
            if let Some((run, _)) = &built {
                run.locs().for_each(|l| self.segs.release(l));
            }
            return Err(e.into());
        }
        let mut ix = write(&self.index);
        if let Some((run, _)) = built {
            ix.runs.push(Arc::new(run));
        }
        ix.sealed = None;
        Ok(())
    }
}

/// An open store. Share it as `Arc<Store>`; every method takes `&self`.
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// The event blocks, which are also the write-ahead log ([`segments`]).
    segs: Arc<Segments>,
    /// The index runs' blocks.
    run_segs: Arc<Segments>,
    /// Appends, purges and checkpoints change the counters and the block table, one at
    /// a time, which keeps them exact. Queries never take it.
    write: Mutex<Writer>,
    /// Events per host, level and source.
    counts: RwLock<Counters>,
    events: AtomicU64,
    stored_bytes: AtomicU64,
    next_seq: AtomicU64,
    /// Every event block by its first sequence number.
    blocks: RwLock<BTreeMap<u64, BlockMeta>>,
    index: Arc<RwLock<Index>>,
    runs: Arc<RunWriter>,
    checkpoints: Checkpointer,
    /// Makes the checkpoint thread's next write fail.
    #[cfg(test)]
    fail_checkpoint: Arc<std::sync::atomic::AtomicBool>,
    /// To the run writer thread: the `seq_hi` of each memtable sealed.
    seal_tx: Mutex<Option<std::sync::mpsc::Sender<u64>>>,
    run_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    run_events: usize,
    level_re: Regex,
    /// `level_re` is [`DEFAULT_LEVEL_REGEX`], which [`default_level`] answers faster.
    default_levels: bool,
    tail: tokio::sync::broadcast::Sender<Arc<StoredEvent>>,
    dir: PathBuf,
    _lock: lock::DirLock,
}

const META_EVENTS: &str = "events";
const META_BYTES: &str = "bytes";
/// The sequence number from which events are not yet in a run.
const META_COVERED: &str = "covered";
/// [`Purged`]: which ids in the runs were deleted.
const META_PURGED: &str = "purged";
/// Where in the segment files the last checkpoint reaches ([`segments::Loc`]): the
/// blocks written from there on are replayed at open.
const META_WAL: &str = "wal";
/// Events removed per purge step; writers wait at most one step.
const PURGE_STEP: usize = 1000;

/// Appends between two checkpoints at most: the blocks that the write-ahead log
/// replays at open after a crash. 64 appends of 1,000 events are about a third of a
/// second of ingest, and read back in well under a second.
const CHECKPOINT_APPENDS: usize = 64;
/// The longest a checkpoint waits while appends go on.
const CHECKPOINT_AGE: Duration = Duration::from_secs(1);

/// The number of events per host, level and source, as stored under the `c` keys.
/// Read once at open and kept in memory, so that an append changes its counters
/// without reading each back from sled first (those reads took 0.65 s per million
/// events in store_bench). sled takes the changed ones at each checkpoint.
#[derive(Debug, Default)]
struct Counters(HashMap<Vec<u8>, u64>);

/// What the writers, one at a time, keep for the next checkpoint: an append writes its
/// blocks to the segment files only, and sled takes the summaries and counters of many
/// appends in one write ([`Store::checkpoint`]). Before, an append's own sled write
/// took 0.77 ms of its 5 ms, and the sled flush behind it 1.5 to 2.7 ms.
#[derive(Debug, Default)]
struct Writer {
    /// Block summaries not yet in sled.
    metas: Vec<(u64, BlockMeta)>,
    /// Counters changed since the last checkpoint.
    dirty: HashSet<Vec<u8>>,
    appends: usize,
    since: Option<std::time::Instant>,
}

impl Writer {
    /// Puts checkpoints taken out of it and not written (oldest first) back, before
    /// what it gathered since, for the next checkpoint to write.
    fn put_back(&mut self, taken: impl IntoIterator<Item = Checkpoint>) {
        let mut metas = Vec::new();
        for c in taken {
            metas.extend(c.metas);
            self.dirty.extend(c.counts.into_iter().map(|(k, _)| k));
        }
        metas.append(&mut self.metas);
        self.metas = metas;
    }
}

/// What a checkpoint gives sled: the block summaries and changed counters of the
/// appends since the one before, the totals, and how far in the log they reach.
#[derive(Debug)]
struct Checkpoint {
    metas: Vec<(u64, BlockMeta)>,
    /// The counters changed, with their values when it was taken.
    counts: Vec<(Vec<u8>, u64)>,
    events: u64,
    bytes: u64,
    wal: segments::Loc,
}

impl Checkpoint {
    /// Syncs the log up to `wal` (the blocks the summaries describe), then writes.
    fn apply(&self, tree: &sled::Tree, segs: &Segments) -> Result<(), StoreError> {
        segs.sync()?;
        let mut b = sled::Batch::default();
        for (first, meta) in &self.metas {
            blocks::put_meta(&mut b, *first, meta);
        }
        for (k, n) in &self.counts {
            put_count(&mut b, k, *n);
        }
        b.insert(codec::meta_key(META_EVENTS), &self.events.to_be_bytes()[..]);
        b.insert(codec::meta_key(META_BYTES), &self.bytes.to_be_bytes()[..]);
        b.insert(codec::meta_key(META_WAL), &self.wal.encode()[..]);
        apply(tree, b, self.metas.len() + self.counts.len() + 3)?;
        Ok(())
    }
}

/// Applies the appends' checkpoints on a thread of its own, in the order taken, so
/// that the append that takes one does not wait for its sync and sled write (about
/// 12 ms every 64 appends in store_bench). A checkpoint that fails is kept, with
/// every one taken after it, unapplied: the next checkpoint on the writer's side
/// ([`Store::checkpoint`]) takes them back and writes them with its own, so sled
/// never holds a later mark in the log without the summaries before it.
struct Checkpointer {
    tx: Mutex<Option<std::sync::mpsc::Sender<Checkpoint>>>,
    state: Arc<(Mutex<CheckpointState>, std::sync::Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct CheckpointState {
    /// Sent and not yet applied or kept back.
    pending: usize,
    /// Not applied, oldest first: a failed one and those after it.
    failed: Vec<Checkpoint>,
}

impl Checkpointer {
    fn start(
        apply: impl Fn(&Checkpoint) -> Result<(), StoreError> + Send + 'static,
    ) -> std::io::Result<Checkpointer> {
        let (tx, rx) = std::sync::mpsc::channel::<Checkpoint>();
        let state: Arc<(Mutex<CheckpointState>, std::sync::Condvar)> = Arc::default();
        let thread = std::thread::Builder::new()
            .name("store-checkpts".into())
            .spawn({
                let state = state.clone();
                move || {
                    for c in rx {
                        let broken = !lock(&state.0).failed.is_empty();
                        let applied = if broken { Ok(()) } else { apply(&c) };
                        let mut st = lock(&state.0);
                        if let Err(e) = &applied {
                            tracing::error!(error = %e, "a checkpoint of the store failed; the next one takes it again");
                        }
                        if broken || applied.is_err() {
                            st.failed.push(c);
                        }
                        st.pending -= 1;
                        state.1.notify_all();
                    }
                }
            })?;
        Ok(Checkpointer {
            tx: Mutex::new(Some(tx)),
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands `c` to the thread; gives it back if the thread is gone or a checkpoint
    /// before it failed.
    fn send(&self, c: Checkpoint) -> Result<(), Checkpoint> {
        let mut st = lock(&self.state.0);
        if !st.failed.is_empty() {
            return Err(c);
        }
        let tx = lock(&self.tx);
        let Some(tx) = tx.as_ref() else {
            return Err(c);
        };
        st.pending += 1;
        tx.send(c).map_err(|e| {
            st.pending -= 1;
            e.0
        })
    }

    /// Waits until every checkpoint sent is applied or kept back, and takes those
    /// kept back.
    fn drain(&self) -> Vec<Checkpoint> {
        let mut st = lock(&self.state.0);
        while st.pending > 0 {
            st = self.state.1.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        std::mem::take(&mut st.failed)
    }

    /// Stops the thread once it has applied what it was sent.
    fn stop(&self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Counters {
    /// The new values of the counters that `deltas` change, to [`Counters::set`].
    fn staged(&self, deltas: &HashMap<Vec<u8>, i64>) -> Vec<(Vec<u8>, u64)> {
        deltas
            .iter()
            .map(|(k, &d)| {
                let cur = self.0.get(k).copied().unwrap_or(0) as i64;
                (k.clone(), (cur + d).max(0) as u64)
            })
            .collect()
    }

    fn set(&mut self, staged: Vec<(Vec<u8>, u64)>) {
        for (k, n) in staged {
            if n == 0 {
                self.0.remove(&k);
            } else {
                self.0.insert(k, n);
            }
        }
    }
}

/// Adds counter `k` of value `n` to `b`; a counter of 0 is removed.
fn put_count(b: &mut sled::Batch, k: &[u8], n: u64) {
    if n == 0 {
        b.remove(k);
    } else {
        b.insert(k, &n.to_be_bytes()[..]);
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            error: e,
        })
}

/// What one event adds to `stored_bytes`: its key and record, and one key of index
/// prefix and id per index entry (the measure of the layout of one key per entry,
/// kept so that `--max-store-bytes` means the same whatever the layout).
fn event_bytes(record: &[u8], prefixes: &[Vec<u8>]) -> u64 {
    17 + record.len() as u64 + prefixes.iter().map(|p| p.len() as u64 + 16).sum::<u64>()
}

/// Applies one sled batch of `writes` inserts and removes, then frees the tree nodes it
/// replaced (see [`free_replaced`]).
fn apply(tree: &sled::Tree, b: sled::Batch, writes: usize) -> Result<(), sled::Error> {
    tree.apply_batch(b)?;
    free_replaced(writes);
    Ok(())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (creating, owner-only) the store in `dir`.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let lock = lock::DirLock::acquire(dir)?;
        // Our lock says no other process has the store. sled's own lock can still be
        // held for a moment by the flusher thread of a store this process just
        // dropped, so that case is retried briefly instead of failing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(opts.cache_bytes)
                .open()
            {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let tree = db.open_tree("events")?;
        let meta = |name: &str| -> Result<u64, StoreError> {
            Ok(tree
                .get(codec::meta_key(name))?
                .map(|v| codec::u64_value(&v))
                .unwrap_or(0))
        };
        let events = meta(META_EVENTS)?;
        let stored_bytes = meta(META_BYTES)?;
        let covered = meta(META_COVERED)?;
        let purged = Purged::decode(&tree.get(codec::meta_key(META_PURGED))?.unwrap_or_default());
        let mut blocks = BTreeMap::new();
        for r in tree.scan_prefix([BLOCK_META]) {
            let (k, v) = r?;
            match (blocks::seq_of_key(&k), BlockMeta::decode(&v)) {
                (Some(seq), Some(m)) => {
                    blocks.insert(seq, m);
                }
                _ => tracing::warn!("passing over a damaged event block summary"),
            }
        }
        let mut counters = Counters::default();
        for r in tree.scan_prefix([codec::COUNT]) {
            let (k, v) = r?;
            counters.0.insert(k.to_vec(), codec::u64_value(&v));
        }
        let mut runs = Vec::new();
        for r in tree.scan_prefix([index::RUN_HEADER]) {
            let (k, v) = r?;
            let run = blocks::seq_of_key(&k).and_then(|seq| Run::decode(seq, &v));
            match run {
                Some(run) => runs.push(Arc::new(run)),
                None => tracing::warn!("passing over a damaged index run header"),
            }
        }
        let segs = Arc::new(Segments::open(&dir.join("data"))?.making_files_ahead());
        // Runs have files of their own, so that the write-ahead log holds only what
        // it replays, and an append's flush syncs only its own blocks.
        let run_segs = Arc::new(Segments::open(&dir.join("runs"))?);
        // A run's blocks are synced before its header is written, so a run whose blocks
        // are missing means a damaged disk: it and the runs after it are dropped, and
        // their events indexed again from the blocks.
        let mut covered = covered;
        if let Some(cut) = runs
            .iter()
            .filter(|r| !r.locs().all(|l| run_segs.holds(l)))
            .map(|r| r.seq_lo)
            .min()
        {
            tracing::warn!(
                seq = cut,
                "index runs from this sequence number on are missing from the segment files; indexing their events again"
            );
            let mut b = sled::Batch::default();
            for r in runs.iter().filter(|r| r.seq_lo >= cut) {
                b.remove(&index::run_header_key(r.seq_lo)[..]);
            }
            covered = covered.min(cut);
            b.insert(codec::meta_key(META_COVERED), &covered.to_be_bytes()[..]);
            tree.apply_batch(b)?;
            runs.retain(|r| r.seq_lo < cut);
        }
        // A checkpoint syncs the blocks before sled takes their summaries, so a summary
        // pointing past the end of its file means a file cut short or removed, or a
        // disk that lost what it had synced.
        let lost: Vec<u64> = blocks
            .iter()
            .filter(|(_, m)| m.loc.is_some_and(|l| !segs.holds(l)))
            .map(|(first, _)| *first)
            .collect();
        if !lost.is_empty() {
            tracing::warn!(
                blocks = lost.len(),
                "event blocks are missing from their segment files (cut short or removed by hand, or a disk that lost synced data); removing them and counting the store again"
            );
            let mut b = sled::Batch::default();
            for first in &lost {
                b.remove(&blocks::key(BLOCK_META, *first)[..]);
                blocks.remove(first);
            }
            tree.apply_batch(b)?;
        }
        let wal = tree
            .get(codec::meta_key(META_WAL))?
            .and_then(|v| segments::Loc::decode(&v));
        // A store whose first checkpoint never reached the disk is read back from its
        // first file; one from before segment files has none to read.
        let from = wal.unwrap_or(segments::Loc {
            file: 0,
            offset: 0,
            len: 0,
        });
        let replayed = Self::replay(&segs, from, &mut blocks, &mut counters)?;
        if !replayed.metas.is_empty() {
            tracing::info!(
                blocks = replayed.metas.len(),
                events = replayed.events,
                "read back the events written after the last checkpoint"
            );
        }
        let events = events + replayed.events;
        let stored_bytes = stored_bytes + replayed.bytes;
        let writer = Writer {
            metas: replayed.metas,
            dirty: replayed.dirty,
            ..Writer::default()
        };
        for m in blocks.values() {
            m.loc.iter().for_each(|l| segs.refer(*l));
        }
        for r in &runs {
            r.locs().for_each(|l| run_segs.refer(l));
        }
        segs.remove_dead()?;
        run_segs.remove_dead()?;
        let next_seq = blocks
            .values()
            .map(|m| m.last_seq + 1)
            .max()
            .unwrap_or(0)
            .max(covered)
            .max(db.generate_id()?);
        let (tail, _) = tokio::sync::broadcast::channel(1024);
        let index = Arc::new(RwLock::new(Index {
            runs,
            mem: Memtable::new(covered),
            sealed: None,
            purged,
        }));
        let runs = Arc::new(RunWriter {
            tree: tree.clone(),
            segs: run_segs.clone(),
            index: index.clone(),
            busy: Mutex::new(false),
            done: std::sync::Condvar::new(),
            closing: false.into(),
        });
        let (seal_tx, seal_rx) = std::sync::mpsc::channel::<u64>();
        let run_thread = std::thread::Builder::new()
            .name("store-runs".into())
            .spawn({
                let runs = runs.clone();
                move || {
                    for seq_hi in seal_rx {
                        runs.write_sealed(seq_hi);
                    }
                }
            })
            .map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                error: e,
            })?;
        #[cfg(test)]
        let fail_checkpoint = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpoints = Checkpointer::start({
            let (tree, segs) = (tree.clone(), segs.clone());
            #[cfg(test)]
            let fail = fail_checkpoint.clone();
            move |c| {
                #[cfg(test)]
                if fail.swap(false, Ordering::Relaxed) {
                    return Err(StoreError::Io {
                        path: PathBuf::from("checkpoint"),
                        error: std::io::Error::other("a failure made by a test"),
                    });
                }
                c.apply(&tree, &segs)
            }
        })
        .map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            error: e,
        })?;
        let store = Store {
            checkpoints,
            #[cfg(test)]
            fail_checkpoint,
            events: AtomicU64::new(events),
            stored_bytes: AtomicU64::new(stored_bytes),
            next_seq: AtomicU64::new(next_seq),
            blocks: RwLock::new(blocks),
            index,
            runs,
            seal_tx: Mutex::new(Some(seal_tx)),
            run_thread: Mutex::new(Some(run_thread)),
            run_events: opts.run_events.max(1),
            db,
            tree,
            segs,
            run_segs,
            write: Mutex::new(writer),
            counts: RwLock::new(counters),
            default_levels: opts.level_regex.as_str() == DEFAULT_LEVEL_REGEX,
            level_re: opts.level_regex,
            tail,
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        store.upgrade_layout()?;
        if !lost.is_empty() {
            store.recount()?;
        }
        {
            // Also marks where the log starts for a store that had none. Made durable
            // at once: the files before the mark may be deleted as unreferenced at the
            // next open, which must then find what was read back here in sled.
            let mut w = store.write.lock().unwrap_or_else(|e| e.into_inner());
            if !w.metas.is_empty() || !w.dirty.is_empty() || wal.is_none() {
                store.checkpoint(&mut w, true)?;
                store.db.flush()?;
            }
        }
        store.reindex_since(covered)?;
        Ok(store)
    }

    /// Reads back the blocks appends wrote from `from` on (the last checkpoint sled
    /// kept), adding them to `blocks` and their events to `counters`.
    fn replay(
        segs: &Segments,
        from: segments::Loc,
        blocks: &mut BTreeMap<u64, BlockMeta>,
        counters: &mut Counters,
    ) -> Result<Replayed, StoreError> {
        let mut out = Replayed::default();
        let mut deltas: HashMap<Vec<u8>, i64> = HashMap::new();
        for (loc, kind, v) in segs.records_from(from)? {
            if kind != segments::Kind::Block {
                continue;
            }
            let Some(block) = Block::parse(&v).filter(|b| b.len() > 0) else {
                tracing::warn!(
                    file = loc.file,
                    offset = loc.offset,
                    "passing over a damaged event block in the log"
                );
                continue;
            };
            let first = block.id(0).seq;
            if blocks.contains_key(&first) {
                continue;
            }
            let mut meta = BlockMeta {
                last_seq: block.id(block.len() - 1).seq,
                events: block.len() as u32,
                tmin: u64::MAX,
                tmax: 0,
                bytes: 0,
                loc: Some(loc),
            };
            for i in 0..block.len() {
                let id = block.id(i);
                let rec = block.record(i).unwrap_or_default();
                meta.tmin = meta.tmin.min(id.time);
                meta.tmax = meta.tmax.max(id.time);
                match codec::decode(id, rec) {
                    Some(e) => {
                        meta.bytes += event_bytes(rec, &Self::index_prefixes(&e));
                        for (kind, v) in Self::counted(&e.view()) {
                            *deltas.entry(codec::count_key(kind, v)).or_default() += 1;
                        }
                    }
                    None => meta.bytes += rec.len() as u64,
                }
            }
            out.events += u64::from(meta.events);
            out.bytes += meta.bytes;
            blocks.insert(first, meta);
            out.metas.push((first, meta));
        }
        let staged = counters.staged(&deltas);
        out.dirty = staged.iter().map(|(k, _)| k.clone()).collect();
        counters.set(staged);
        Ok(out)
    }

    /// Gives sled the block summaries and counters written since the last checkpoint,
    /// with how far in the segment files they reach; with `mark`, writes that even
    /// when nothing changed. The blocks are synced first, so a summary in sled always
    /// has its record on disk.
    ///
    /// Waits first for the checkpoints the appends handed to their thread, and writes
    /// again with its own any that were kept back, so that what it writes, and what
    /// its caller writes next, comes after them.
    fn checkpoint(&self, w: &mut Writer, mark: bool) -> Result<(), StoreError> {
        w.put_back(self.checkpoints.drain());
        if w.metas.is_empty() && w.dirty.is_empty() && !mark {
            return Ok(());
        }
        let c = self.take_checkpoint(w);
        let written = c.apply(&self.tree, &self.segs);
        if written.is_err() {
            // Kept for the next one.
            w.put_back([c]);
        }
        written
    }

    /// Takes what the next checkpoint writes out of `w`, which starts afresh.
    fn take_checkpoint(&self, w: &mut Writer) -> Checkpoint {
        let counts = read(&self.counts);
        let c = Checkpoint {
            metas: std::mem::take(&mut w.metas),
            counts: w
                .dirty
                .drain()
                .map(|k| {
                    let n = counts.0.get(&k).copied().unwrap_or(0);
                    (k, n)
                })
                .collect(),
            events: self.events.load(Ordering::Relaxed),
            bytes: self.stored_bytes.load(Ordering::Relaxed),
            wal: self.segs.end(),
        };
        w.appends = 0;
        w.since = None;
        c
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn level_of(&self, e: &Event) -> Option<Cow<'static, str>> {
        if let Some(l) = e.header("level").map(str::trim).filter(|l| !l.is_empty()) {
            return Some(normalize_level(l).into());
        }
        // Levels sit near the start of a line; a long body is not scanned whole.
        let head = &e.body[..e.body.len().min(512)];
        if self.default_levels && head.is_ascii() {
            return default_level(head).map(Cow::Borrowed);
        }
        let text = String::from_utf8_lossy(head);
        let caps = self.level_re.captures(&text)?;
        let m = caps.get(1).or_else(|| caps.get(0))?;
        Some(normalize_level(m.as_str()).into())
    }

    /// Adds the index prefixes of an event to `t` (a word of the body seen twice is
    /// added twice).
    fn index_terms(e: &EventView<'_>, t: &mut codec::Terms) {
        for (kind, v) in [
            (Kind::Host, e.host),
            (Kind::Level, e.level),
            (Kind::Source, e.source),
        ] {
            if let Some(v) = v {
                t.push(kind, v);
            }
        }
        for (k, v) in e.headers {
            if indexed_header(k) {
                t.push_header(k, v);
            }
        }
        t.push_tokens(e.body);
    }

    /// Puts the event at position `at` of a batch under each of its index prefixes
    /// ([`Store::index_terms`], gathered in `terms`). Returns what its index entries
    /// add to `stored_bytes` ([`event_bytes`]): a word repeated in its body is one entry.
    fn add_postings(
        e: &EventView<'_>,
        at: u32,
        terms: &mut codec::Terms,
        postings: &mut index::PostingsBuilder,
    ) -> u64 {
        terms.clear();
        Self::index_terms(e, terms);
        let mut bytes = 0;
        for t in 0..terms.len() {
            let term = terms.get(t);
            if postings.add(term, at) {
                bytes += term.len() as u64 + 16;
            }
        }
        bytes
    }

    /// The index prefixes of an event, without repeats: it is in the posting lists of each.
    fn index_prefixes(e: &StoredEvent) -> Vec<Vec<u8>> {
        let mut t = codec::Terms::default();
        Self::index_terms(&e.view(), &mut t);
        let mut keys: Vec<Vec<u8>> = (0..t.len()).map(|i| t.get(i).to_vec()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The counted values of an event (see [`Counters`]).
    fn counted<'e>(e: &EventView<'e>) -> impl Iterator<Item = (Kind, &'e str)> + 'e {
        [
            (Kind::Host, e.host),
            (Kind::Level, e.level),
            (Kind::Source, e.source),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }

    /// Reads what a slice of a batch stores and indexes, and packs its records into
    /// blocks of [`BLOCK_EVENTS`] from its start. Needs no lock: the sequence numbers
    /// are given afterwards, and records do not hold them.
    fn prepare<'e>(&self, events: &'e [Event], arrival: u64) -> Prepared<'e> {
        let mut p = Prepared {
            times: Vec::with_capacity(events.len()),
            levels: Vec::with_capacity(events.len()),
            blocks: Vec::with_capacity(events.len().div_ceil(BLOCK_EVENTS)),
            postings: index::BatchPostings::default(),
            sizes: Vec::with_capacity(events.len()),
            counts: fxhash::FxHashMap::default(),
            level_counts: fxhash::FxHashMap::default(),
        };
        // Sized for logs whose events each bring about eight new values (ids, numbers,
        // times) and hold about 40 in all.
        let mut postings =
            index::PostingsBuilder::with_capacity(events.len() * 8, events.len() * 40);
        let mut terms = codec::Terms::default();
        for (i, e) in events.iter().enumerate() {
            let time = e
                .header("timestamp")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(arrival);
            let level = self.level_of(e);
            // Counted by values borrowed from the event; a level, which may come from
            // the body, by its own string, copied only when first seen in the slice.
            let borrowed = view_of(e, None);
            for k in Self::counted(&borrowed) {
                *p.counts.entry(k).or_default() += 1;
            }
            let view = EventView {
                level: level.as_deref(),
                ..borrowed
            };
            if let Some(l) = &level {
                match p.level_counts.get_mut(l.as_ref()) {
                    Some(n) => *n += 1,
                    None => {
                        p.level_counts.insert(l.clone(), 1);
                    }
                }
            }
            if i % BLOCK_EVENTS == 0 {
                p.blocks.push(blocks::Records::default());
            }
            let block = p.blocks.last_mut().expect("a block was started above");
            let len = block.push((i % BLOCK_EVENTS) as u64, time, |out| {
                codec::encode_into(&view, out)
            });
            // What the event adds to `stored_bytes` ([`event_bytes`]).
            let size =
                17 + len as u64 + Self::add_postings(&view, i as u32, &mut terms, &mut postings);
            p.sizes.push(size);
            p.times.push(time);
            p.levels.push(level);
        }
        for block in &mut p.blocks {
            block.pack();
        }
        p.postings = postings.finish(events.len() as u32);
        p
    }

    /// Keeps a batch; returns the ids given, in order. Not yet flushed to disk: call
    /// [`Store::flush`] before telling a sender the batch is safe.
    ///
    /// A large batch uses two threads of a pool of one thread per core at nice 10,
    /// which lives as long as the process, so no thread and no allocator heap is set
    /// up per batch: each reads and tokenises half of it, then one writes the event
    /// blocks to the log while the other indexes the batch in memory. Queries see the
    /// batch only once its blocks are written, so never an id without its event; a
    /// failed write takes the batch back out of the memory index.
    pub fn append(&self, batch: &[Event]) -> Result<Vec<EventId>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let arrival = time::now_ms();
        let pool = (batch.len() >= PARALLEL_EVENTS).then(append_pool).flatten();
        let mut parts: Vec<Prepared> = if let Some(pool) = pool {
            // The first half ends at a block's end, so only the last block of the
            // batch can be short.
            let (first, second) = batch.split_at(batch.len() / 2 / BLOCK_EVENTS * BLOCK_EVENTS);
            let (a, b) = pool.join(
                || self.prepare(first, arrival),
                || self.prepare(second, arrival),
            );
            vec![a, b]
        } else {
            vec![self.prepare(batch, arrival)]
        };
        let mut w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let seq0 = self.next_seq.load(Ordering::Relaxed);
        let ids: Vec<EventId> = parts
            .iter()
            .flat_map(|p| &p.times)
            .zip(seq0..)
            .map(|(&time, seq)| EventId { time, seq })
            .collect();
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        for part in &parts {
            let levels = part
                .level_counts
                .iter()
                .map(|(l, n)| ((Kind::Level, &l[..]), n));
            for ((kind, v), n) in part.counts.iter().map(|(k, n)| (*k, n)).chain(levels) {
                *counts.entry(codec::count_key(kind, v)).or_default() += n;
            }
        }
        let sizes: Vec<u64> = parts.iter().flat_map(|p| &p.sizes).copied().collect();
        let postings: Vec<(index::BatchPostings, usize)> = parts
            .iter_mut()
            .map(|p| (std::mem::take(&mut p.postings), p.sizes.len()))
            .collect();
        let bytes: u64 = sizes.iter().sum();
        // The blocks go to the log (the segment files); sled takes their summaries at
        // the next checkpoint.
        let write_blocks = || -> Result<Vec<(u64, BlockMeta)>, StoreError> {
            let blocks: Vec<&blocks::Records> = parts.iter().flat_map(|p| &p.blocks).collect();
            let mut frames = Frames::with_capacity(blocks.iter().map(|r| r.bytes() + 16).sum());
            let mut at = 0;
            for block in &blocks {
                block.frame(&mut frames, segments::Kind::Block, seq0 + at as u64);
                at += block.len();
            }
            let locs = self.segs.write(&frames)?;
            let mut metas = Vec::with_capacity(blocks.len());
            let mut at = 0;
            for (block, loc) in blocks.iter().zip(&locs) {
                let bytes = sizes[at..at + block.len()].iter().sum();
                let first = seq0 + at as u64;
                metas.push((first, block.meta(first, bytes, *loc)));
                at += block.len();
            }
            Ok(metas)
        };
        // The memory index is locked only while it takes the batch; queries meanwhile
        // do not see the batch until its blocks are written (publish).
        let add = || {
            let mut ix = write(&self.index);
            let base = ix.mem.len();
            let mut at = 0;
            for (part, n) in postings {
                ix.mem.add_batch(&ids[at..at + n], part);
                at += n;
            }
            base
        };
        // Where the batch starts in the memtable, if it was added before its write
        // failed; on one thread it is added only after a successful write.
        let (added, written) = match pool {
            Some(pool) => {
                let (base, written) = pool.join(add, write_blocks);
                (Some(base), written)
            }
            None => {
                let written = write_blocks();
                (written.is_ok().then(add), written)
            }
        };
        let full = {
            let mut ix = write(&self.index);
            match (&written, added) {
                (Ok(_), _) => ix.mem.publish(),
                (Err(_), Some(base)) => ix.mem.truncate(base),
                (Err(_), None) => {}
            }
            ix.mem.len() >= self.run_events
        };
        let written = written?;
        let staged = read(&self.counts).staged(&counts);
        w.dirty.extend(staged.iter().map(|(k, _)| k.clone()));
        write(&self.counts).set(staged);
        self.next_seq
            .store(seq0 + batch.len() as u64, Ordering::Relaxed);
        self.events.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stored_bytes.fetch_add(bytes, Ordering::Relaxed);
        write(&self.blocks).extend(written.iter().copied());
        w.metas.extend(written);
        w.appends += 1;
        let since = *w.since.get_or_insert_with(std::time::Instant::now);
        if w.appends >= CHECKPOINT_APPENDS || since.elapsed() >= CHECKPOINT_AGE {
            // Written by the checkpoint thread; here if one failed, to write it again.
            // The appends are safe in the log meanwhile; the next append tries again.
            let c = self.take_checkpoint(&mut w);
            if let Err(c) = self.checkpoints.send(c) {
                w.put_back([c]);
                if let Err(e) = self.checkpoint(&mut w, false) {
                    tracing::error!(error = %e, "a checkpoint of the store failed; trying again at the next append");
                }
            }
        }
        if full {
            self.seal();
        }
        drop(w);
        if self.tail.receiver_count() > 0 {
            let levels = parts.iter().flat_map(|p| &p.levels);
            for ((e, &id), level) in batch.iter().zip(&ids).zip(levels) {
                let stored = view_of(e, level.as_deref()).to_stored(id);
                let _ = self.tail.send(Arc::new(stored));
            }
        }
        Ok(ids)
    }

    /// Hands the memtable to the run writer and starts a new one, once the run before
    /// is written. Called holding `write`.
    fn seal(&self) {
        let mut busy = self.runs.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = self.runs.done.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        drop(busy);
        let seq_hi = self.next_seq.load(Ordering::Relaxed);
        {
            let mut ix = write(&self.index);
            let next = ix.mem.next(seq_hi);
            let mem = std::mem::replace(&mut ix.mem, next);
            ix.sealed = Some(Arc::new(mem));
        }
        let sent = match &*self.seal_tx.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(seq_hi).is_ok(),
            None => false,
        };
        if !sent {
            self.runs.write_sealed(seq_hi);
        }
    }

    /// Indexes again the events from sequence number `covered` on, which were in the
    /// memtable when the store was last closed.
    fn reindex_since(&self, covered: u64) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let firsts: Vec<u64> = read(&self.blocks)
            .range(covered..)
            .map(|(k, _)| *k)
            .collect();
        for first in firsts {
            let Some(meta) = read(&self.blocks).get(&first).copied() else {
                continue;
            };
            let Some(v) = self.block_value(first, &meta)? else {
                continue;
            };
            let Some(block) = Block::parse(&v) else {
                tracing::warn!(
                    seq = first,
                    "an event block is damaged; its events are not indexed"
                );
                continue;
            };
            // A block's events are indexed as one batch.
            let mut ids = Vec::with_capacity(block.len());
            let mut postings = index::PostingsBuilder::default();
            let mut terms = codec::Terms::default();
            for i in 0..block.len() {
                let id = block.id(i);
                let Some(e) = block.record(i).and_then(|r| codec::decode(id, r)) else {
                    tracing::warn!(event = %id, "a stored event is damaged; it is not indexed");
                    continue;
                };
                Self::add_postings(&e.view(), ids.len() as u32, &mut terms, &mut postings);
                ids.push(id);
            }
            let mut ix = write(&self.index);
            ix.mem.add_batch(&ids, postings.finish(ids.len() as u32));
            ix.mem.publish();
            let full = ix.mem.len() >= self.run_events;
            drop(ix);
            if full {
                self.seal();
            }
        }
        Ok(())
    }

    /// Moves a store written with one key per event and per index entry (before event
    /// blocks and runs) to blocks, keeping every id; the index is then rebuilt from
    /// the blocks. Counters and sizes are the same in both layouts.
    fn upgrade_layout(&self) -> Result<(), StoreError> {
        let mut old: Vec<EventId> = Vec::new();
        for r in self.tree.scan_prefix([EVENT]) {
            let (k, _) = r?;
            if let Some(id) = EventId::from_bytes(&k[1..]) {
                old.push(id);
            }
        }
        if old.is_empty() && self.tree.scan_prefix([INDEX]).next().is_none() {
            return Ok(());
        }
        tracing::info!(events = old.len(), "moving the store to event blocks");
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        old.sort_unstable_by_key(|id| id.seq);
        // One sync and one sled write per 64 blocks: the blocks are synced before sled
        // refers to them, and a sync per block would cost one per 32 events.
        for group in old.chunks(BLOCK_EVENTS * 64) {
            let mut b = sled::Batch::default();
            let mut metas = Vec::new();
            for chunk in group.chunks(BLOCK_EVENTS) {
                let mut recs = Vec::with_capacity(chunk.len());
                let mut bytes = 0;
                for id in chunk {
                    let k = codec::event_key(*id);
                    let Some(v) = self.tree.get(k)? else { continue };
                    b.remove(&k[..]);
                    match codec::decode(*id, &v) {
                        Some(e) => {
                            bytes += event_bytes(&v, &Self::index_prefixes(&e));
                            recs.push((*id, v));
                        }
                        None => {
                            tracing::warn!(event = %id, "dropping a damaged event while moving the store")
                        }
                    }
                }
                if !recs.is_empty() {
                    let entries: Vec<(EventId, &[u8])> =
                        recs.iter().map(|(id, v)| (*id, &v[..])).collect();
                    metas.push(self.write_block(&mut b, &entries, bytes)?);
                }
            }
            self.segs.sync()?;
            self.apply(b, group.len() + metas.len())?;
            write(&self.blocks).extend(metas);
        }
        loop {
            let mut b = sled::Batch::default();
            let mut n = 0;
            for r in self.tree.scan_prefix([INDEX]).take(10_000) {
                b.remove(r?.0);
                n += 1;
            }
            if n == 0 {
                break;
            }
            self.apply(b, n)?;
        }
        self.tree.remove(codec::meta_key("span"))?;
        Ok(())
    }

    fn apply(&self, b: sled::Batch, writes: usize) -> Result<(), sled::Error> {
        apply(&self.tree, b, writes)
    }

    fn disk(&self) -> Disk<'_> {
        Disk {
            tree: &self.tree,
            segs: &self.run_segs,
        }
    }

    /// Writes a block of `events` (ascending sequence numbers, at least one) to the
    /// segment files and adds its summary to `b`; `bytes` is its share of
    /// `stored_bytes`. Returns its first sequence number and summary. The log never
    /// replays such a block: sync the files before `b` is applied.
    fn write_block(
        &self,
        b: &mut sled::Batch,
        events: &[(EventId, &[u8])],
        bytes: u64,
    ) -> Result<(u64, BlockMeta), StoreError> {
        let first = events[0].0.seq;
        let records = blocks::records(events);
        let mut frames = Frames::default();
        records.frame(&mut frames, segments::Kind::Rewritten, first);
        let loc = self.segs.write(&frames)?[0];
        let meta = records.meta(first, bytes, loc);
        blocks::put_meta(b, first, &meta);
        Ok((first, meta))
    }

    /// The value of the block starting at `first` with summary `meta`; None when it
    /// is gone (a purge deleted it meanwhile). A record that fails its checksum reads
    /// as an empty value, which no block parses as, so callers treat it as a damaged
    /// block.
    fn block_value(&self, first: u64, meta: &BlockMeta) -> Result<Option<Value>, StoreError> {
        let Some(loc) = meta.loc else {
            return Ok(self.tree.get(blocks::key(BLOCK, first))?.map(Value::Sled));
        };
        match self.segs.read(loc) {
            Ok(v) => Ok(Some(Value::Owned(v))),
            Err(ReadError::Gone) => Ok(None),
            Err(ReadError::Damaged) => Ok(Some(Value::Owned(Vec::new()))),
            Err(ReadError::Io(e)) => Err(e),
        }
    }

    /// Counts the store again from its blocks: events, stored bytes, and the events
    /// per host, level and source, which sled takes at the next checkpoint. Used at
    /// open after blocks were lost to a damaged disk.
    fn recount(&self) -> Result<(), StoreError> {
        let mut w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.checkpoint(&mut w, false)?;
        let metas: Vec<(u64, BlockMeta)> =
            read(&self.blocks).iter().map(|(k, m)| (*k, *m)).collect();
        let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
        for (first, meta) in &metas {
            let Some(v) = self.block_value(*first, meta)? else {
                continue;
            };
            let Some(block) = Block::parse(&v) else {
                continue;
            };
            for i in 0..block.len() {
                let id = block.id(i);
                if let Some(e) = block.record(i).and_then(|r| codec::decode(id, r)) {
                    for (kind, v) in Self::counted(&e.view()) {
                        *counts.entry(codec::count_key(kind, v)).or_default() += 1;
                    }
                }
            }
        }
        let events: u64 = metas.iter().map(|(_, m)| u64::from(m.events)).sum();
        let bytes: u64 = metas.iter().map(|(_, m)| m.bytes).sum();
        // Every counter before and after is written (or removed) at the next checkpoint.
        w.dirty.extend(counts.keys().cloned());
        let old = std::mem::replace(&mut write(&self.counts).0, counts);
        w.dirty.extend(old.into_keys());
        self.events.store(events, Ordering::Relaxed);
        self.stored_bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until everything appended so far is on disk: one sync of the segment
    /// file being written (the log), which a crash does not undo.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let segs = self.segs.clone();
        match tokio::task::spawn_blocking(move || segs.sync()).await {
            Ok(synced) => synced,
            // The runtime is shutting down: sync here.
            Err(_) => self.segs.sync(),
        }
    }

    /// [`Store::flush`] on the calling thread, for a caller that may block, such as
    /// the thread that just appended: it saves the hand-off to a blocking thread and
    /// back, which took as long as the sync itself in store_bench.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.segs.sync()
    }

    /// Events appended from now on, as they are kept. A receiver that falls more than
    /// 1024 events behind misses some (and is told so by the channel).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<StoredEvent>> {
        self.tail.subscribe()
    }

    pub fn get(&self, id: EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.get_cached(id, &mut BlockCache::default())
    }

    /// [`Store::get`], reading the event from the block in `cache` when it is there
    /// and keeping the block it reads there otherwise. A scan in time order reads
    /// the events of a block one after the other, so the block is found and
    /// unpacked once, not once per event. Like any read during a purge, an event
    /// the purge deletes meanwhile may still be read from the block kept.
    pub(crate) fn get_cached(
        &self,
        id: EventId,
        cache: &mut BlockCache,
    ) -> Result<Option<StoredEvent>, StoreError> {
        if let Some(found) = cache.0.as_ref().and_then(|b| event_in(b, id)) {
            return found.map(Some);
        }
        // A purge step that shortens a block swaps the old summary for the new one in
        // `blocks` under one lock, and deletes no file a reader may be reading.
        let found = read(&self.blocks)
            .range(..=id.seq)
            .next_back()
            .map(|(first, meta)| (*first, *meta));
        let Some((first, meta)) = found.filter(|(_, m)| id.seq <= m.last_seq) else {
            return Ok(None);
        };
        let Some(v) = self.block_value(first, &meta)? else {
            return Ok(None);
        };
        let block = Block::parse(&v)
            .ok_or(StoreError::Corrupt(id))?
            .into_owned();
        let found = event_in(&block, id);
        cache.0 = Some(block);
        found.transpose()
    }

    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let (oldest, newest) = {
            let blocks = read(&self.blocks);
            (
                blocks.values().map(|m| m.tmin).min(),
                blocks.values().map(|m| m.tmax).max(),
            )
        };
        Ok(StoreStats {
            events: self.events.load(Ordering::Relaxed),
            stored_bytes: self.stored_bytes.load(Ordering::Relaxed),
            disk_bytes: self.db.size_on_disk()?
                + self.segs.disk_bytes()
                + self.run_segs.disk_bytes(),
            oldest,
            newest,
        })
    }

    /// Every value of host, level or source with its number of events, most first.
    pub fn values(&self, field: Field) -> Result<Vec<(String, u64)>, StoreError> {
        let kind = match field {
            Field::Host => Kind::Host,
            Field::Level => Kind::Level,
            Field::Source => Kind::Source,
            Field::Header(_) => return Ok(Vec::new()),
        };
        let prefix = codec::count_prefix(kind);
        let mut out: Vec<(String, u64)> = read(&self.counts)
            .0
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, n)| (String::from_utf8_lossy(&k[2..]).into_owned(), *n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Deletes every event older than `before` (epoch ms); returns how many. Works a
    /// step at a time, so appends and queries go on meanwhile.
    pub fn purge_before(&self, before: u64) -> Result<u64, StoreError> {
        {
            let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
            if !read(&self.blocks).values().any(|m| m.tmin < before) {
                return Ok(0);
            }
            // Marked first: from now on walks pass over what this purge deletes.
            let mut ix = write(&self.index);
            ix.purged.add(before, self.next_seq.load(Ordering::Relaxed));
            self.tree
                .insert(codec::meta_key(META_PURGED), ix.purged.encode())?;
        }
        let mut removed = 0;
        loop {
            let n = self.purge_step(before)?;
            if n == 0 {
                break;
            }
            removed += n;
        }
        // Runs of nothing but deleted events go.
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let old: Vec<Arc<Run>> = read(&self.index)
            .runs
            .iter()
            .filter(|r| r.tmax < before)
            .cloned()
            .collect();
        for run in &old {
            let mut b = sled::Batch::default();
            if run.in_sled() {
                for i in 0..run.blocks() {
                    b.remove(&index::run_key(run.seq_lo, i)[..]);
                }
            }
            b.remove(&index::run_header_key(run.seq_lo)[..]);
            self.apply(b, run.blocks() as usize + 1)?;
            run.locs().for_each(|l| self.run_segs.release(l));
        }
        write(&self.index)
            .runs
            .retain(|r| !old.iter().any(|o| o.seq_lo == r.seq_lo));
        drop(_w);
        // A file goes only once the writes that dropped the last references to it are
        // on disk, so a crash never leaves a summary pointing into a deleted file.
        if self.segs.has_dead() || self.run_segs.has_dead() {
            self.db.flush()?;
            self.segs.remove_dead()?;
            self.run_segs.remove_dead()?;
        }
        Ok(removed)
    }

    /// Deletes the events older than `before` from the blocks holding the oldest ones,
    /// [`PURGE_STEP`] events or one block at a time; returns how many it deleted.
    fn purge_step(&self, before: u64) -> Result<u64, StoreError> {
        let mut w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut todo = Vec::new();
        let mut events = 0;
        for (first, m) in read(&self.blocks).iter() {
            if m.tmin < before {
                todo.push((*first, *m));
                events += m.events as usize;
                if events >= PURGE_STEP {
                    break;
                }
            }
        }
        if todo.is_empty() {
            return Ok(0);
        }
        // sled takes the appends before it the purge changes.
        self.checkpoint(&mut w, false)?;
        let mut b = sled::Batch::default();
        let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut n = 0u64;
        let mut freed = 0u64;
        let mut writes = 2;
        let mut new_metas = Vec::new();
        let mut released = Vec::new();
        let mut written = Vec::new();
        for (first, meta) in todo {
            if meta.loc.is_none() {
                b.remove(&blocks::key(BLOCK, first)[..]);
            }
            b.remove(&blocks::key(BLOCK_META, first)[..]);
            writes += 2;
            released.extend(meta.loc);
            let v = self.block_value(first, &meta)?;
            let Some(block) = v.as_deref().and_then(Block::parse) else {
                tracing::warn!(seq = first, "removing a damaged event block");
                n += u64::from(meta.events);
                freed += meta.bytes;
                new_metas.push((first, None));
                continue;
            };
            let mut kept: Vec<(EventId, &[u8])> = Vec::new();
            let mut kept_bytes = meta.bytes;
            for i in 0..block.len() {
                let id = block.id(i);
                let rec = block.record(i).unwrap_or_default();
                if id.time >= before {
                    kept.push((id, rec));
                    continue;
                }
                n += 1;
                match codec::decode(id, rec) {
                    Some(e) => {
                        let size = event_bytes(rec, &Self::index_prefixes(&e));
                        freed += size;
                        kept_bytes = kept_bytes.saturating_sub(size);
                        for (kind, v) in Self::counted(&e.view()) {
                            *counts.entry(codec::count_key(kind, v)).or_default() -= 1;
                        }
                    }
                    None => tracing::warn!(event = %id, "removing a damaged event"),
                }
            }
            new_metas.push((first, None));
            if !kept.is_empty() {
                // A later insert of the same key in the batch overrides its remove.
                let (head, meta) = self.write_block(&mut b, &kept, kept_bytes)?;
                written.extend(meta.loc);
                writes += 1;
                new_metas.push((head, Some(meta)));
            }
        }
        writes += counts.len();
        let staged = read(&self.counts).staged(&counts);
        let events = self.events.load(Ordering::Relaxed).saturating_sub(n);
        let total = self
            .stored_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(freed);
        for (k, n) in &staged {
            put_count(&mut b, k, *n);
        }
        b.insert(codec::meta_key(META_EVENTS), &events.to_be_bytes()[..]);
        b.insert(codec::meta_key(META_BYTES), &total.to_be_bytes()[..]);
        b.insert(codec::meta_key(META_WAL), &self.segs.end().encode()[..]);
        // The shortened blocks are on disk before sled refers to them.
        let applied = self.segs.sync().and_then(|()| Ok(self.apply(b, writes)?));
        if let Err(e) = applied {
            written.iter().for_each(|l| self.segs.release(*l));
            return Err(e);
        }
        released.iter().for_each(|l| self.segs.release(*l));
        write(&self.counts).set(staged);
        self.events.store(events, Ordering::Relaxed);
        self.stored_bytes.store(total, Ordering::Relaxed);
        let mut blocks = write(&self.blocks);
        for (first, meta) in new_metas {
            match meta {
                None => blocks.remove(&first),
                Some(m) => blocks.insert(first, m),
            };
        }
        Ok(n)
    }

    /// Deletes the oldest events while the stored bytes exceed `max_bytes`.
    pub fn purge_to_size(&self, max_bytes: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let excess = self
                .stored_bytes
                .load(Ordering::Relaxed)
                .saturating_sub(max_bytes);
            if excess == 0 {
                return Ok(removed);
            }
            let Some(before) = self.time_freeing(excess)? else {
                return Ok(removed);
            };
            let n = self.purge_before(before)?;
            if n == 0 {
                return Ok(removed);
            }
            removed += n;
        }
    }

    /// A time such that deleting what is older frees about `excess` bytes, from the
    /// blocks with the oldest events; None when the store is empty.
    fn time_freeing(&self, excess: u64) -> Result<Option<u64>, StoreError> {
        let mut oldest: Vec<(u64, BlockMeta)> =
            read(&self.blocks).iter().map(|(k, m)| (*k, *m)).collect();
        oldest.sort_unstable_by_key(|(_, m)| m.tmin);
        let mut sizes: Vec<(u64, u64)> = Vec::new();
        let mut bytes = 0;
        for (first, m) in oldest {
            if bytes >= excess {
                break;
            }
            bytes += m.bytes;
            let Some(v) = self.block_value(first, &m)? else {
                continue;
            };
            let Some(block) = Block::parse(&v) else {
                sizes.push((m.tmin, m.bytes));
                continue;
            };
            for i in 0..block.len() {
                let id = block.id(i);
                let rec = block.record(i).unwrap_or_default();
                let size = match codec::decode(id, rec) {
                    Some(e) => event_bytes(rec, &Self::index_prefixes(&e)),
                    None => rec.len() as u64,
                };
                sizes.push((id.time, size));
            }
        }
        sizes.sort_unstable();
        let mut freed = 0;
        for (time, size) in &sizes {
            freed += size;
            if freed >= excess {
                return Ok(Some(time + 1));
            }
        }
        Ok(sizes.last().map(|(t, _)| t + 1))
    }

    /// Applies `r` once, now: deletes what is older than its age, then the oldest
    /// events while the store is over its size. Returns the events deleted.
    pub fn apply_retention(&self, r: &Retention, now_ms: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        if let Some(age) = r.max_age {
            n += self.purge_before(now_ms.saturating_sub(age.as_millis() as u64))?;
        }
        if let Some(max) = r.max_bytes {
            n += self.purge_to_size(max)?;
        }
        Ok(n)
    }

    /// Applies `r` every `r.interval` on a thread of its own until the handle drops.
    pub fn spawn_retention(self: &Arc<Store>, r: Retention) -> RetentionTask {
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        let store = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("store-retention".into())
            .spawn(move || loop {
                let Some(store) = store.upgrade() else { return };
                match store.apply_retention(&r, time::now_ms()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "retention deleted old events"),
                    Err(e) => tracing::error!(error = %e, "retention failed; retrying later"),
                }
                drop(store);
                match rx.recv_timeout(r.interval) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            });
        RetentionTask {
            stop: Some(stop),
            thread: thread.ok(),
        }
    }
}

/// sled 0.34 frees the tree nodes a write replaces through crossbeam-epoch: they queue
/// in bags of 64, and a thread frees at most 8 bags when it flushes its guard or on
/// every 128th time it pins. `apply_batch` pins once for all the writes of a batch
/// (one per index entry, so tens per event), so on its own the queue grows with every
/// batch: memory grows without bound, and whichever thread pins next, often a query,
/// pays for freeing part of the backlog. One pin and flush per 64 writes frees up to
/// eight times what the batch queued. `sled::pin` is sled's own guard, so this reaches
/// the collector sled uses. Measured (store_bench, 100,000 events): peak RSS 7.7 GB
/// without this, 0.8 GB with it; time + host query p50 17 ms without, 1.9 ms with.
fn free_replaced(writes: usize) {
    for _ in 0..writes / 64 + 2 {
        sled::pin().flush();
    }
}

/// Batches from this size on are read and written on two threads (see
/// [`Store::append`]); for smaller ones a thread costs more than it saves.
const PARALLEL_EVENTS: usize = 256;

/// The threads that share the work of large appends, one per core, for every store
/// of the process. They run at a lower priority (nice 10) than the rest of the
/// process, so on a busy machine queries get the CPU first and ingest takes what is
/// left. None if the threads cannot be started: appends then use the caller's thread.
fn append_pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon_core::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon_core::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("store-append-{i}"))
            .start_handler(|_| {
                // Linux gives each thread its own nice value; 0 means this thread.
                // SAFETY: setpriority has no memory effects.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                }
            })
            .build()
            .map_err(|e| {
                tracing::warn!("cannot start the append threads ({e}); appends use one thread")
            })
            .ok()
    })
    .as_ref()
}

/// The event `id` from `block`; None when the block does not hold it.
fn event_in(block: &Block<'_>, id: EventId) -> Option<Result<StoredEvent, StoreError>> {
    let i = block.find(id.seq).filter(|&i| block.id(i) == id)?;
    let event = block.record(i).and_then(|r| codec::decode(id, r));
    Some(event.ok_or(StoreError::Corrupt(id)))
}

/// The event block a scan read last ([`Store::get_cached`]).
#[derive(Default)]
pub(crate) struct BlockCache(Option<Block<'static>>);

/// What [`Store::replay`] read back.
#[derive(Default)]
struct Replayed {
    metas: Vec<(u64, BlockMeta)>,
    dirty: HashSet<Vec<u8>>,
    events: u64,
    bytes: u64,
}

/// What [`Store::prepare`] reads from a slice of a batch.
struct Prepared<'e> {
    /// Each event's time; its sequence number is given under the write lock.
    times: Vec<u64>,
    levels: Vec<Option<Cow<'static, str>>>,
    /// The records, packed, a block at a time.
    blocks: Vec<blocks::Records>,
    /// The postings of the slice, by prefix, with the positions of its events in the
    /// slice: the memtable then takes one lookup per distinct value of the slice
    /// rather than one per value of each event.
    postings: index::BatchPostings,
    /// What each event adds to `stored_bytes`.
    sizes: Vec<u64>,
    /// Events per host and per source ([`Store::counted`]), and per level.
    counts: fxhash::FxHashMap<(Kind, &'e str), i64>,
    level_counts: fxhash::FxHashMap<Cow<'static, str>, i64>,
}

/// What the store keeps of an event whose level is `level`: its host is the `host`
/// header, its source TAILDIR's and spooldir's `file` header, else `source`.
/// An empty `host`, `file` or `source` header counts as none: it could not be asked
/// for (`host=` is refused), and would show in `/api/v1/hosts` as a blank host.
fn view_of<'a>(e: &'a Event, level: Option<&'a str>) -> EventView<'a> {
    let header = |k| e.header(k).filter(|v| !v.is_empty());
    EventView {
        level,
        host: header("host"),
        source: header("file").or_else(|| header("source")),
        headers: &e.headers,
        body: &e.body,
    }
}

/// Headers not indexed: a `timestamp` is unique per event (the id holds the time).
fn indexed_header(key: &str) -> bool {
    key != "timestamp"
}

/// What [`DEFAULT_LEVEL_REGEX`] finds in an ASCII text, normalized: the first whole
/// word (between non-word characters, `_` being a word character as for `\b`) that
/// is a level. The regex took 1.3 s of thread time per million events in store_bench.
fn default_level(text: &[u8]) -> Option<&'static str> {
    const LEVELS: [&str; 7] = [
        "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL",
    ];
    text.split(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .find_map(|w| LEVELS.into_iter().find(|l| l.as_bytes() == w))
        .map(|l| if l == "WARNING" { "WARN" } else { l })
}

fn normalize_level(l: &str) -> String {
    let u = l.trim().to_ascii_uppercase();
    if u == "WARNING" {
        "WARN".into()
    } else {
        u
    }
}

/// Background deletion of old events.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Events older than this are deleted.
    pub max_age: Option<Duration>,
    /// The oldest events are deleted while [`StoreStats::stored_bytes`] is above this.
    pub max_bytes: Option<u64>,
    /// How often retention runs.
    pub interval: Duration,
}

/// The retention thread; stops when dropped.
pub struct RetentionTask {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Lets the run being written finish (or, when it cannot, leaves its events to be
/// indexed again at the next open) before the database closes.
impl Drop for Store {
    fn drop(&mut self) {
        {
            let mut w = self.write.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = self.checkpoint(&mut w, false) {
                tracing::warn!(error = %e, "the last checkpoint of the store failed; its appends are read back from the log at the next open");
            }
        }
        self.checkpoints.stop();
        self.runs.closing.store(true, Ordering::Relaxed);
        self.seal_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let thread = self
            .run_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_level_scan_finds_what_the_default_regex_finds() {
        let re = Regex::new(DEFAULT_LEVEL_REGEX).unwrap();
        let by_regex = |t: &str| {
            re.captures(t)
                .map(|c| normalize_level(c.get(1).unwrap().as_str()))
        };
        let mut texts: Vec<String> = [
            "",
            "ERROR",
            "2026-12-01 12:00:00 WARNING disk",
            "[INFO] started",
            "level=DEBUG msg",
            "X_ERROR then FATAL",
            "ERROR_X then TRACE_ then WARN",
            "error lower case, then INFO",
            "FATALITY INFOS WARNINGS ERRORS",
            "WARNINGERROR 1ERROR ERROR1 :ERROR:",
            "tab\tINFO\n",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        // Random texts over the characters that matter to word boundaries.
        let parts = [
            "INFO", "WARN", "ING", "ERROR", "_", " ", "x", "1", "-", "FATAL",
        ];
        let mut z = 7u64;
        for _ in 0..2000 {
            let mut t = String::new();
            for _ in 0..8 {
                z = z
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.push_str(parts[(z >> 33) as usize % parts.len()]);
            }
            texts.push(t);
        }
        for t in &texts {
            assert_eq!(
                default_level(t.as_bytes()).map(str::to_string),
                by_regex(t),
                "{t:?}"
            );
        }
        // A store with the default regex still reads non-ASCII bodies with it.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ids = store
            .append(&[
                // The scan would split at the bytes of `é` and find ERROR; for the
                // regex `é` is a letter, so the first level word is INFO.
                Event::from_body("déjà vu éERROR then INFO"),
                Event::from_body("plain ERROR_X INFO"),
            ])
            .unwrap();
        let level = |id| store.get(id).unwrap().unwrap().level;
        assert_eq!(level(ids[0]).as_deref(), Some("INFO"));
        assert_eq!(level(ids[1]).as_deref(), Some("INFO"));
    }

    /// The ids of the first 1,000 events, oldest first.
    fn all_ids(store: &Store) -> Vec<EventId> {
        let page = Page {
            limit: 1000,
            ..Page::default()
        };
        let found = store.search(&Filter::default(), &page, None).unwrap();
        found.events.iter().map(|e| e.id).collect()
    }

    /// A crash: what waits for the next checkpoint never reaches sled.
    fn lose_what_waits_for_a_checkpoint(store: &Store) {
        let mut w = store.write.lock().unwrap();
        w.metas.clear();
        w.dirty.clear();
    }

    /// Appends after the last checkpoint are read back from the log at open, as after a
    /// crash that left sled without them: the same events, counters and answers, with
    /// index runs written meanwhile, and a purge's rewritten blocks not read twice.
    #[test]
    fn appends_after_the_last_checkpoint_are_read_back_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let opts = || StoreOptions {
            run_events: 100,
            ..StoreOptions::default()
        };
        let events = |n: u64, t0: u64, host: &str| -> Vec<Event> {
            (0..n)
                .map(|i| {
                    Event::from_body(format!("ERROR replay {host} {i}"))
                        .with_header("host", host)
                        .with_header("timestamp", (t0 + i).to_string())
                })
                .collect()
        };
        let store = Store::open(dir.path(), opts()).unwrap();
        store.append(&events(300, 1000, "h1")).unwrap();
        // Checkpoints, then shortens blocks into new records.
        assert_eq!(store.purge_before(1050).unwrap(), 50);
        store.append(&events(300, 2000, "h2")).unwrap();
        store.append(&events(40, 3000, "h3")).unwrap();
        let answers = |store: &Store| {
            let all = all_ids(store);
            let q = Filter {
                q: Some("replay".into()),
                hosts: vec!["h2".into()],
                ..Filter::default()
            };
            let h2 = store
                .search(
                    &q,
                    &Page {
                        limit: 1000,
                        ..Page::default()
                    },
                    None,
                )
                .unwrap();
            let s = store.stats().unwrap();
            (
                (s.events, s.stored_bytes, s.oldest, s.newest),
                store.values(Field::Host).unwrap(),
                store.values(Field::Level).unwrap(),
                all,
                h2.events.len(),
            )
        };
        let before = answers(&store);
        assert_eq!(before.0 .0, 590);
        assert_eq!(before.4, 300);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(store.flush())
            .unwrap();
        assert!(
            !store.write.lock().unwrap().metas.is_empty(),
            "appends wait for a checkpoint"
        );
        lose_what_waits_for_a_checkpoint(&store);
        drop(store);
        let store = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(answers(&store), before);
        drop(store);
        let store = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(answers(&store), before, "after the checkpoint at open");
    }

    #[test]
    fn a_checkpoint_that_failed_is_written_again_with_the_next_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let event = |i: u64| {
            vec![Event::from_body(format!("INFO checkpoint {i}"))
                .with_header("host", format!("h{}", i % 3))
                .with_header("timestamp", (1000 + i).to_string())]
        };
        store.fail_checkpoint.store(true, Ordering::Relaxed);
        // Appends until the checkpoint thread has tried one, which fails.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        while store.fail_checkpoint.load(Ordering::Relaxed) {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint was tried"
            );
            store.append(&event(n)).unwrap();
            n += 1;
        }
        // The next checkpoint is refused by the thread and written on the writer's
        // side, with the one kept back.
        for _ in 0..2 * CHECKPOINT_APPENDS {
            store.append(&event(n)).unwrap();
            n += 1;
        }
        assert!(lock(&store.checkpoints.state.0).failed.is_empty());
        let answers = |store: &Store| {
            let all = all_ids(store).len() as u64;
            (
                all,
                store.stats().unwrap().events,
                store.values(Field::Host).unwrap(),
            )
        };
        let before = answers(&store);
        assert_eq!(before.0, n);
        assert_eq!(before.1, n);
        // What waits for the next checkpoint is read back from the log; the blocks of
        // the failed checkpoint are before the mark sled holds, so they are there
        // only if sled took them.
        lose_what_waits_for_a_checkpoint(&store);
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(answers(&store), before);
    }

    /// A store of the layout before event blocks and runs (an `e` key per event, an
    /// `i` key per index entry) is moved at open: same ids, same answers.
    #[test]
    fn a_store_of_the_key_per_event_layout_is_moved_to_blocks_keeping_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let events: Vec<Event> = (0..5u64)
            .map(|i| {
                Event::from_body(format!("ERROR old layout {i}"))
                    .with_header("host", "h1")
                    .with_header("timestamp", (1000 + i).to_string())
            })
            .collect();
        let ids = store.append(&events).unwrap();
        let before = store.stats().unwrap();
        for id in &ids {
            let e = store.get(*id).unwrap().unwrap();
            store
                .tree
                .insert(codec::event_key(*id), codec::encode(&e.view()))
                .unwrap();
            for mut k in Store::index_prefixes(&e) {
                k.extend_from_slice(&id.to_bytes());
                store.tree.insert(k, &[][..]).unwrap();
            }
        }
        for tag in [BLOCK, BLOCK_META, index::RUN, index::RUN_HEADER] {
            for r in store.tree.scan_prefix([tag]) {
                store.tree.remove(r.unwrap().0).unwrap();
            }
        }
        store.tree.remove(codec::meta_key(META_COVERED)).unwrap();
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.tree.scan_prefix([EVENT]).count(), 0);
        assert_eq!(store.tree.scan_prefix([INDEX]).count(), 0);
        let after = store.stats().unwrap();
        assert_eq!(
            (after.events, after.stored_bytes, after.oldest, after.newest),
            (
                before.events,
                before.stored_bytes,
                before.oldest,
                before.newest
            )
        );
        for f in [
            Filter {
                q: Some("old layout".into()),
                ..Filter::default()
            },
            Filter {
                hosts: vec!["h1".into()],
                levels: vec!["error".into()],
                ..Filter::default()
            },
        ] {
            for order in [Order::Asc, Order::Desc] {
                let page = Page {
                    order,
                    limit: 100,
                    cursor: None,
                };
                let mut got: Vec<EventId> = store
                    .search(&f, &page, None)
                    .unwrap()
                    .events
                    .iter()
                    .map(|e| e.id)
                    .collect();
                if order == Order::Desc {
                    got.reverse();
                }
                assert_eq!(got, ids, "{f:?} {order:?}");
            }
        }
        assert_eq!(store.purge_before(1003).unwrap(), 3);
        let next = store.append(&[Event::from_body("new layout")]).unwrap()[0];
        assert!(next.seq > ids[4].seq, "sequence numbers are not reused");
    }
}
