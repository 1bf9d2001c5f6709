//! The `file` channel: a write-ahead log on disk, so that an event whose put committed
//! survives a crash of the process or the machine until a take of it commits.
//!
//! - A put is one PUT record and a take commit one TAKE record (see [`record`]); a
//!   put returns only once its record is written and, with `fsyncPerTransaction`
//!   (the default), synced. One writer thread does all log I/O and syncs once for
//!   every request waiting at that moment (group commit), so concurrent transactions
//!   share an fsync. A take commit is written at once and synced with the next put
//!   or checkpoint: after a power cut, events taken in the last moments may be
//!   delivered again, never lost.
//! - Events are held in memory as well, so takes never read the disk; memory use
//!   grows with the backlog (`capacity` bounds it).
//! - A log file whose events have all been taken is deleted once every older file
//!   is gone; disk use follows the backlog.
//! - Restart replays from the last checkpoint and the log after it. A record torn by
//!   a crash at the end of the last file is cut off with a warning; corruption
//!   anywhere else stops the channel with the file and offset, and so does a missing
//!   log file that held pending events, unless `skipCorruptRecords` is set.
//! - A lock file in every directory keeps a second agent, or a second channel of
//!   this one, out.

mod checkpoint;
mod config;
mod lock;
pub mod record;
mod replay;

pub use config::FileChannelConfig;

use async_trait::async_trait;
use checkpoint::Checkpoint;
use millrace_core::counters::{add, ChannelCounters};
use millrace_core::{Channel, ChannelError, Event, TakeHandle, TakeTxn};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

struct Slot {
    id: u64,
    file: u64,
    event: Event,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Slot>,
    /// Ids handed out by open takes.
    in_flight: HashSet<u64>,
    /// Room promised to puts whose records are being written.
    reserved: usize,
    /// Live (untaken) events per log file, for every log file that exists.
    files: BTreeMap<u64, u64>,
}

enum Req {
    Put {
        events: Vec<Event>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Take {
        slots: Vec<Slot>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

struct Inner {
    name: String,
    cfg: FileChannelConfig,
    state: Mutex<State>,
    items: Notify,
    space: Notify,
    counters: Arc<ChannelCounters>,
    tx: Mutex<Option<mpsc::Sender<Req>>>,
    open: AtomicBool,
    locks: Mutex<Vec<lock::DirLock>>,
    /// Tells this channel from another of the same name in the lock list.
    instance: u64,
    /// Syncs of the log's data, as Flume's log counts them.
    log_syncs: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock completes before it is released; a poisoned
        // lock holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, req: Req) -> Result<(), ChannelError> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.as_ref()
            .and_then(|tx| tx.send(req).ok())
            .ok_or_else(|| ChannelError::Closed(self.name.clone()))
    }

    fn failed(&self, message: impl Into<String>) -> ChannelError {
        ChannelError::Failed {
            channel: self.name.clone(),
            message: message.into(),
        }
    }
}

pub struct FileChannel {
    inner: Arc<Inner>,
}

/// What replay found, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub pending: u64,
    pub files: usize,
    pub from_checkpoint: bool,
    pub torn_records: u64,
    pub skipped_corrupt: u64,
    /// Events lost with log files that were missing, when `skipCorruptRecords`
    /// let the channel start without them.
    pub lost_to_missing_files: u64,
}

impl FileChannel {
    /// A channel that is not open yet: [`Channel::open`] locks the directories and
    /// replays the log.
    pub fn new(name: &str, cfg: FileChannelConfig) -> Self {
        let counters = Arc::new(ChannelCounters::with_capacity(cfg.capacity as u64));
        counters.set_durable();
        FileChannel {
            inner: Arc::new(Inner {
                name: name.to_string(),
                counters,
                cfg,
                state: Mutex::new(State::default()),
                items: Notify::new(),
                space: Notify::new(),
                tx: Mutex::new(None),
                open: AtomicBool::new(false),
                locks: Mutex::new(Vec::new()),
                instance: lock::instance_id(),
                log_syncs: AtomicU64::new(0),
            }),
        }
    }

    /// Locks the directories, replays the log and starts the writer.
    pub fn open_sync(&self) -> Result<ReplayReport, ChannelError> {
        let inner = &self.inner;
        if inner.open.load(Ordering::SeqCst) {
            return Ok(ReplayReport::default());
        }
        let cfg = &inner.cfg;
        let mut dirs = vec![cfg.checkpoint_dir.clone()];
        dirs.extend(cfg.backup_checkpoint_dir.clone());
        dirs.extend(cfg.data_dirs.iter().cloned());
        let mut locks = Vec::new();
        for d in &dirs {
            locks
                .push(lock::lock_dir(d, inner.instance, &inner.name).map_err(|m| inner.failed(m))?);
        }
        let r = replay::replay(cfg, &inner.name).map_err(|m| {
            inner.counters.unhealthy.store(1, Ordering::Relaxed);
            inner.failed(m)
        })?;
        inner
            .counters
            .replay_torn_records
            .store(r.report.torn_records, Ordering::Relaxed);
        let report = r.report.clone();
        let first_file = r.next_file;
        {
            let mut st = inner.lock();
            st.files = r.files;
            st.queue = r.queue;
            inner.counters.set_size(st.queue.len() as u64);
        }
        let writer = Writer::create(inner.clone(), first_file, r.next_id)
            .map_err(|e| inner.failed(format!("cannot create a log file: {e}")))?;
        let (tx, rx) = mpsc::channel();
        *inner.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        std::thread::Builder::new()
            .name(format!("wal-{}", inner.name))
            .spawn(move || writer.run(rx))
            .map_err(|e| inner.failed(format!("cannot start the log writer: {e}")))?;
        *inner.locks.lock().unwrap_or_else(|e| e.into_inner()) = locks;
        inner.open.store(true, Ordering::SeqCst);
        inner.counters.open.store(1, Ordering::Relaxed);
        tracing::info!(
            channel = %inner.name,
            pending = report.pending,
            files = report.files,
            from_checkpoint = report.from_checkpoint,
            "file channel replayed"
        );
        Ok(report)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Free bytes for unprivileged users on the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
    }
}

#[async_trait]
impl Channel for FileChannel {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn open(&self) -> Result<(), ChannelError> {
        let ch = FileChannel {
            inner: self.inner.clone(),
        };
        tokio::task::spawn_blocking(move || ch.open_sync().map(|_| ()))
            .await
            .map_err(|e| self.inner.failed(e.to_string()))?
    }

    async fn put(&self, batch: Vec<Event>) -> Result<(), ChannelError> {
        let inner = &self.inner;
        let n = batch.len();
        add(&inner.counters.event_put_attempt, n as u64);
        if n == 0 {
            return Ok(());
        }
        if !inner.open.load(Ordering::SeqCst) {
            return Err(inner.failed("the channel is not open"));
        }
        if n > inner.cfg.transaction_capacity {
            return Err(ChannelError::TransactionTooLarge {
                channel: inner.name.clone(),
                size: n,
                capacity: inner.cfg.transaction_capacity,
            });
        }
        for d in &inner.cfg.data_dirs {
            if let Some(free) = free_space(d) {
                if free < inner.cfg.minimum_required_space {
                    return Err(inner.failed(format!(
                        "only {free} bytes free under {}, below minimumRequiredSpace ({}); free disk space (puts resume by themselves)",
                        d.display(),
                        inner.cfg.minimum_required_space
                    )));
                }
            }
        }
        let deadline = tokio::time::Instant::now() + inner.cfg.keep_alive;
        loop {
            let notified = inner.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = inner.lock();
                let used = st.queue.len() + st.in_flight.len() + st.reserved;
                if used + n <= inner.cfg.capacity {
                    st.reserved += n;
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ChannelError::Full {
                        channel: inner.name.clone(),
                        size: used as u64,
                        capacity: inner.cfg.capacity as u64,
                    });
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
        let (reply, rx) = oneshot::channel();
        if let Err(e) = inner.send(Req::Put {
            events: batch,
            reply,
        }) {
            inner.lock().reserved -= n;
            return Err(e);
        }
        match rx.await {
            Ok(Ok(())) => {
                add(&inner.counters.event_put_success, n as u64);
                Ok(())
            }
            Ok(Err(m)) => {
                millrace_core::counters::inc(&inner.counters.event_put_error);
                Err(inner.failed(m))
            }
            Err(_) => Err(ChannelError::Closed(inner.name.clone())),
        }
    }

    async fn take(&self, max: usize, wait: Duration) -> Result<TakeTxn, ChannelError> {
        let inner = &self.inner;
        if !inner.open.load(Ordering::SeqCst) {
            return Err(inner.failed("the channel is not open"));
        }
        let max = max.min(inner.cfg.transaction_capacity).max(1);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = inner.items.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = inner.lock();
                if !st.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                    let k = max.min(st.queue.len());
                    let mut events = Vec::with_capacity(k);
                    let mut meta = Vec::with_capacity(k);
                    for s in st.queue.drain(..k) {
                        meta.push((s.id, s.file));
                        events.push(s.event);
                    }
                    for (id, _) in &meta {
                        st.in_flight.insert(*id);
                    }
                    inner.counters.set_size(st.queue.len() as u64);
                    drop(st);
                    add(&inner.counters.event_take_attempt, k.max(1) as u64);
                    let handle = Box::new(FileTake {
                        inner: inner.clone(),
                        meta,
                    });
                    return Ok(TakeTxn::new(events, handle));
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    fn transaction_capacity(&self) -> usize {
        self.inner.cfg.transaction_capacity
    }

    fn counters(&self) -> &Arc<ChannelCounters> {
        &self.inner.counters
    }

    async fn close(&self) {
        let inner = &self.inner;
        if !inner.open.swap(false, Ordering::SeqCst) {
            return;
        }
        let (reply, rx) = oneshot::channel();
        if inner.send(Req::Close { reply }).is_ok() {
            let _ = rx.await;
        }
        inner.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        inner
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn is_durable(&self) -> bool {
        true
    }
}

struct FileTake {
    inner: Arc<Inner>,
    meta: Vec<(u64, u64)>,
}

#[async_trait]
impl TakeHandle for FileTake {
    async fn commit(self: Box<Self>, events: Vec<Event>) -> Result<(), ChannelError> {
        if self.meta.is_empty() {
            return Ok(());
        }
        let n = self.meta.len() as u64;
        let slots = self
            .meta
            .iter()
            .zip(events)
            .map(|(&(id, file), event)| Slot { id, file, event })
            .collect();
        let (reply, rx) = oneshot::channel();
        self.inner.send(Req::Take { slots, reply })?;
        match rx.await {
            Ok(Ok(())) => {
                add(&self.inner.counters.event_take_success, n);
                Ok(())
            }
            // The writer put the events back at the head: the take did not happen.
            Ok(Err(m)) => {
                millrace_core::counters::inc(&self.inner.counters.event_take_error);
                Err(self.inner.failed(m))
            }
            Err(_) => Err(ChannelError::Closed(self.inner.name.clone())),
        }
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        if self.meta.is_empty() {
            return;
        }
        let mut st = self.inner.lock();
        for ((id, file), event) in self.meta.into_iter().zip(events).rev() {
            st.in_flight.remove(&id);
            st.queue.push_front(Slot { id, file, event });
        }
        self.inner.counters.set_size(st.queue.len() as u64);
        drop(st);
        self.inner.items.notify_waiters();
    }
}

/// Owns the log: appends records, syncs, rolls and deletes files, writes checkpoints.
struct Writer {
    inner: Arc<Inner>,
    file_no: u64,
    file: File,
    size: u64,
    next_id: u64,
    last_checkpoint: Instant,
    last_sync: Instant,
    unsynced: bool,
}

pub(crate) fn log_path(dirs: &[PathBuf], file_no: u64) -> PathBuf {
    dirs[(file_no % dirs.len() as u64) as usize].join(format!("log-{file_no}"))
}

impl Writer {
    fn create(inner: Arc<Inner>, file_no: u64, next_id: u64) -> std::io::Result<Writer> {
        let file = Writer::new_file(&inner, file_no)?;
        inner.lock().files.insert(file_no, 0);
        Ok(Writer {
            inner,
            file_no,
            file,
            size: record::MAGIC.len() as u64,
            next_id,
            last_checkpoint: Instant::now(),
            last_sync: Instant::now(),
            unsynced: false,
        })
    }

    fn new_file(inner: &Inner, file_no: u64) -> std::io::Result<File> {
        let path = log_path(&inner.cfg.data_dirs, file_no);
        let mut f = File::options().create_new(true).append(true).open(&path)?;
        f.write_all(record::MAGIC)?;
        f.sync_all()?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(f)
    }

    /// Without a sync per transaction, the log is synced on this period, so a machine
    /// crash loses at most that much, as in Flume.
    fn sync_period(&self) -> Option<Duration> {
        let cfg = &self.inner.cfg;
        (!cfg.fsync_per_transaction).then_some(cfg.fsync_interval)
    }

    fn run(mut self, rx: mpsc::Receiver<Req>) {
        let interval = self.inner.cfg.checkpoint_interval;
        loop {
            let mut wait = interval.saturating_sub(self.last_checkpoint.elapsed());
            if let Some(period) = self.sync_period().filter(|_| self.unsynced) {
                wait = wait.min(period.saturating_sub(self.last_sync.elapsed()));
            }
            let first = match rx.recv_timeout(wait) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.periodic();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.shutdown();
                    return;
                }
            };
            let mut reqs = vec![first];
            while reqs.len() < 4096 {
                match rx.try_recv() {
                    Ok(r) => reqs.push(r),
                    Err(_) => break,
                }
            }
            let mut close = None;
            let mut work = Vec::with_capacity(reqs.len());
            for r in reqs {
                match r {
                    Req::Close { reply } => close = Some(reply),
                    other => work.push(other),
                }
            }
            let reqs = work;
            if !reqs.is_empty() {
                self.commit(reqs);
            }
            if let Some(reply) = close {
                self.shutdown();
                let _ = reply.send(());
                return;
            }
            self.periodic();
        }
    }

    /// A checkpoint when one is due, else a sync of the log when one is due.
    fn periodic(&mut self) {
        if self.last_checkpoint.elapsed() >= self.inner.cfg.checkpoint_interval {
            self.checkpoint();
        } else if self.unsynced
            && self
                .sync_period()
                .is_some_and(|p| self.last_sync.elapsed() >= p)
        {
            if let Err(e) = self.sync_log() {
                tracing::error!(channel = %self.inner.name, error = %e, "syncing the log failed; retried at the next interval");
            }
        }
    }

    fn sync_log(&mut self) -> std::io::Result<()> {
        // Set before the attempt: a failing disk is retried once a period, not in a loop.
        self.last_sync = Instant::now();
        self.file.sync_data()?;
        self.inner.log_syncs.fetch_add(1, Ordering::Relaxed);
        self.unsynced = false;
        Ok(())
    }

    /// Writes every request's record, syncs once, then applies them to the state.
    fn commit(&mut self, reqs: Vec<Req>) {
        let mut buf = Vec::new();
        let mut firsts = Vec::with_capacity(reqs.len());
        for r in &reqs {
            match r {
                Req::Put { events, .. } => {
                    firsts.push(self.next_id);
                    record::encode_put(&mut buf, self.next_id, events);
                    self.next_id += events.len() as u64;
                }
                Req::Take { slots, .. } => {
                    firsts.push(0);
                    let mut ids: Vec<u64> = slots.iter().map(|s| s.id).collect();
                    record::encode_take(&mut buf, &record::ranges(&mut ids));
                }
                Req::Close { .. } => firsts.push(0),
            }
        }
        // A take needs no sync of its own: losing its record to a power cut only makes
        // the events come back (delivered again, never lost), and the next put's sync
        // or checkpoint makes it durable anyway.
        let sync = reqs.iter().any(|r| matches!(r, Req::Put { .. }));
        let result = self.append(&buf, sync);
        let file_no = self.file_no;
        let mut st = self.inner.lock();
        let (mut put, mut taken) = (false, false);
        let mut replies = Vec::with_capacity(reqs.len());
        for (r, first) in reqs.into_iter().zip(firsts) {
            match r {
                Req::Put { events, reply } => {
                    st.reserved -= events.len();
                    if result.is_ok() {
                        *st.files.entry(file_no).or_insert(0) += events.len() as u64;
                        for (k, event) in events.into_iter().enumerate() {
                            st.queue.push_back(Slot {
                                id: first + k as u64,
                                file: file_no,
                                event,
                            });
                        }
                        put = true;
                    }
                    replies.push((reply, result.clone()));
                }
                Req::Take { slots, reply } => {
                    if result.is_ok() {
                        for s in &slots {
                            st.in_flight.remove(&s.id);
                            if let Some(live) = st.files.get_mut(&s.file) {
                                *live = live.saturating_sub(1);
                            }
                        }
                        taken = true;
                    } else {
                        for s in slots.into_iter().rev() {
                            st.in_flight.remove(&s.id);
                            st.queue.push_front(s);
                        }
                        put = true;
                    }
                    replies.push((reply, result.clone()));
                }
                Req::Close { .. } => {}
            }
        }
        self.inner.counters.set_size(st.queue.len() as u64);
        let deletable = if taken {
            self.deletable(&mut st)
        } else {
            Vec::new()
        };
        drop(st);
        for f in deletable {
            let path = log_path(&self.inner.cfg.data_dirs, f);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(channel = %self.inner.name, file = %path.display(), "log file fully taken; deleted")
                }
                Err(e) => {
                    tracing::warn!(channel = %self.inner.name, file = %path.display(), error = %e, "cannot delete a fully taken log file")
                }
            }
        }
        for (reply, r) in replies {
            let _ = reply.send(r);
        }
        if put {
            self.inner.items.notify_waiters();
        }
        if taken || result.is_err() {
            self.inner.space.notify_waiters();
        }
    }

    /// Oldest files with no live events, up to the first that has some. The file
    /// being written is never deleted. Deleting oldest-first keeps replay right: a
    /// TAKE record always sits in the same file as its PUT or a newer one.
    fn deletable(&self, st: &mut State) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((&f, &live)) = st.files.iter().next() {
            if live > 0 || f == self.file_no {
                break;
            }
            st.files.remove(&f);
            out.push(f);
        }
        out
    }

    fn append(&mut self, buf: &[u8], sync: bool) -> Result<(), String> {
        if self.size > record::MAGIC.len() as u64
            && self.size + buf.len() as u64 > self.inner.cfg.max_file_size
        {
            self.roll()
                .map_err(|e| format!("cannot start a new log file: {e}"))?;
        }
        let path = log_path(&self.inner.cfg.data_dirs, self.file_no);
        let path = || path.display().to_string();
        self.file
            .write_all(buf)
            .map_err(|e| format!("writing {} failed: {e}", path()))?;
        self.size += buf.len() as u64;
        self.unsynced = true;
        if sync && self.inner.cfg.fsync_per_transaction {
            self.sync_log()
                .map_err(|e| format!("syncing {} failed: {e}", path()))?;
        }
        Ok(())
    }

    fn roll(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        let next = self.file_no + 1;
        self.file = Writer::new_file(&self.inner, next)?;
        self.file_no = next;
        self.size = record::MAGIC.len() as u64;
        self.unsynced = false;
        let mut st = self.inner.lock();
        st.files.insert(next, 0);
        let deletable = self.deletable(&mut st);
        drop(st);
        for f in deletable {
            let _ = std::fs::remove_file(log_path(&self.inner.cfg.data_dirs, f));
        }
        Ok(())
    }

    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.unsynced {
            if let Err(e) = self.sync_log() {
                tracing::error!(channel = %self.inner.name, error = %e, "syncing the log for a checkpoint failed; checkpoint skipped");
                return;
            }
        }
        let mut ids: Vec<u64> = {
            let st = self.inner.lock();
            st.queue
                .iter()
                .map(|s| s.id)
                .chain(st.in_flight.iter().copied())
                .collect()
        };
        let ckpt = Checkpoint {
            log_file: self.file_no,
            offset: self.size,
            next_id: self.next_id,
            pending: record::ranges(&mut ids),
        };
        let cfg = &self.inner.cfg;
        for (i, dir) in std::iter::once(&cfg.checkpoint_dir)
            .chain(cfg.backup_checkpoint_dir.iter())
            .enumerate()
        {
            if let Err(e) = ckpt.write(dir) {
                let c = &self.inner.counters;
                millrace_core::counters::inc(if i == 0 {
                    &c.checkpoint_write_error
                } else {
                    &c.checkpoint_backup_write_error
                });
                tracing::error!(channel = %self.inner.name, dir = %dir.display(), error = %e, "writing a checkpoint failed; replay will read more of the log");
            }
        }
    }

    fn shutdown(&mut self) {
        if self.inner.cfg.checkpoint_on_close {
            self.checkpoint();
        } else if let Err(e) = self.file.sync_all() {
            tracing::error!(channel = %self.inner.name, error = %e, "final sync of the log failed");
        }
    }
}

#[cfg(test)]
mod tests;
