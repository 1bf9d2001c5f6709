//! The `hdfs` sink (Flume's HDFSEventSink): writes events into HDFS files through
//! hdfs-native, a pure-Rust HDFS client, so no JVM or Hadoop install is needed.
//!
//! Each event goes to the directory `hdfs.path` and the file prefix `hdfs.filePrefix`
//! give it after escapes. A file is written as `[inUsePrefix]PREFIX.N[SUFFIX].tmp` and
//! renamed to `PREFIX.N[SUFFIX]` when it rolls (rollInterval, rollSize, rollCount,
//! idleTimeout, maxOpenFiles) or the sink stops; N counts up from the sink's start
//! time in ms, as in Flume.
//!
//! A batch is acknowledged only after every file it touched is synced (`hsync`) to
//! the datanodes, so a committed take survives the agent and the datanodes. When an
//! HDFS call fails or passes `hdfs.callTimeout`, the batch is rolled back and every
//! file it touched is given up: the sink recovers the file's lease (the namenode
//! closes it) and renames it to its final name, retrying every `hdfs.retryInterval`.
//! The retried batch goes to fresh files, so a recovered file never gains events
//! after a gap. The names of files open or awaiting recovery are kept in a small
//! journal on local disk, written before each create is sent, so a sink killed
//! mid-file recovers those files when it starts again instead of leaving `.tmp` files
//! behind. A create that failed without a definite answer may have made its file, so
//! its name is handed to recovery as well.

mod config;
mod escape;
mod format;
mod journal;

pub use config::HdfsSinkConfig;
pub use escape::{RoundUnit, Template, TimeSettings};
pub use format::{Codec, FileType, WriteFormat};

use async_trait::async_trait;
use bytes::Bytes;
use escape::Renderer;

/// A rendered directory as Hadoop's `Path` reads it: runs of `/` are one, and a
/// trailing `/` goes. A header missing from `hdfs.path` (`/logs/%{app}/x`) leaves an
/// empty segment, which the namenode would refuse as a file name.
fn hadoop_path(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    for c in rendered.chars() {
        if c != '/' || !out.ends_with('/') {
            out.push(c);
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}
use format::Encoder;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};
use journal::Journal;
use millrace_core::counters::{inc, SinkCounters};
use millrace_core::{Event, Sink, SinkError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Unwritten bytes of a file are sent once they reach this, so a large batch does not
/// sit whole in memory.
const WRITE_CHUNK: usize = 4 << 20;

pub struct HdfsSink {
    name: String,
    cfg: HdfsSinkConfig,
    counters: Arc<SinkCounters>,
    client: Option<Arc<Client>>,
    path: Renderer,
    prefix: Renderer,
    files: HashMap<String, OpenFile>,
    /// Increases on every use of a file, for least-recently-used closing.
    tick: u64,
    /// The number in the next file's name; starts at the sink's start time in ms.
    counter: u64,
    journal: Journal,
    /// Files given up after a failure: their lease is recovered and they are renamed.
    pending: Vec<Pending>,
}

struct OpenFile {
    in_use: String,
    target: String,
    writer: hdfs_native::file::FileWriter,
    enc: Encoder,
    buf: Vec<u8>,
    opened: Instant,
    last_write: Instant,
    events: u64,
    body_bytes: u64,
    used: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    in_use: String,
    target: String,
    tries: u32,
    next_try: Instant,
    /// How many times in a row the namenode answered that it is still recovering the
    /// file's last block.
    recovering: u32,
}

impl Pending {
    /// A file to recover and rename, due at once.
    fn new(in_use: String, target: String) -> Self {
        Pending {
            in_use,
            target,
            tries: 0,
            next_try: Instant::now(),
            recovering: 0,
        }
    }
}

/// How long to let the namenode recover a file's last block before asking again:
/// about a datanode heartbeat (3 s) plus the recovery, then every 10 s. Asking again
/// is cheap and does not restart a recovery under way. It matters when the first
/// request came before any datanode had reported the block (just after a namenode
/// restart): that recovery stalls, and only a request made after the namenode's block
/// recovery timeout (30 heartbeats, 90 s by default) starts one that can finish.
fn recovery_wait(asked: u32) -> Duration {
    match asked {
        0 | 1 => Duration::from_secs(4),
        2 => Duration::from_secs(8),
        _ => Duration::from_secs(10),
    }
}

impl HdfsSink {
    pub fn new(name: &str, cfg: HdfsSinkConfig, counters: Arc<SinkCounters>) -> Self {
        let journal = Journal::for_sink(name, cfg.url.as_deref(), &cfg.path_text);
        HdfsSink {
            name: name.to_string(),
            path: Renderer::new(cfg.path.clone()),
            prefix: Renderer::new(cfg.file_prefix.clone()),
            counters,
            client: None,
            files: HashMap::new(),
            tick: 0,
            counter: now_ms() as u64,
            journal,
            pending: Vec::new(),
            cfg,
        }
    }

    fn client(&mut self) -> Result<Arc<Client>, SinkError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let mut b = ClientBuilder::new();
        if let Some(url) = &self.cfg.url {
            b = b.with_url(url);
        }
        let client = Arc::new(b.build().map_err(|e| {
            SinkError::Delivery(format!(
                "cannot set up the HDFS client for `{}`: {e}",
                self.cfg
                    .url
                    .as_deref()
                    .unwrap_or("the default file system (HADOOP_CONF_DIR)")
            ))
        })?);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Runs one HDFS call under `hdfs.callTimeout`.
    async fn call<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, HdfsError>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.cfg.call_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn timed_out(&self, what: &str) -> String {
        format!(
            "{what}: no answer within hdfs.callTimeout ({} ms)",
            self.cfg.call_timeout.as_millis()
        )
    }

    fn save_journal(&self) {
        self.save_journal_with(None);
    }

    /// Saves the journal, counting `extra`, an in-use and target name held outside
    /// the map: a file being created, or one out of the map while it is written.
    fn save_journal_with(&self, extra: Option<(&str, &str)>) {
        let mut entries: Vec<(String, String)> = self
            .files
            .values()
            .map(|f| (f.in_use.clone(), f.target.clone()))
            .collect();
        entries.extend(extra.map(|(a, b)| (a.to_string(), b.to_string())));
        entries.extend(
            self.pending
                .iter()
                .map(|p| (p.in_use.clone(), p.target.clone())),
        );
        if let Err(e) = self.journal.save(&entries) {
            tracing::warn!(sink = %self.name, journal = %self.journal.path().display(), "cannot record open files: {e}; a crash now may leave .tmp files behind");
        }
    }

    async fn open(&mut self, dir: &str, prefix: &str) -> Result<OpenFile, String> {
        let client = self.client().map_err(|e| e.to_string())?;
        self.counter += 1;
        let mut name = format!("{prefix}.{}", self.counter);
        if !self.cfg.file_suffix.is_empty() {
            name.push_str(&self.cfg.file_suffix);
        } else if let Some(c) = self.cfg.codec {
            name.push_str(c.extension());
        }
        let in_use = format!(
            "{dir}/{}{name}{}",
            self.cfg.in_use_prefix, self.cfg.in_use_suffix
        );
        let target = format!("{dir}/{name}");
        let mut opts = WriteOptions::default().create_parent(true);
        if let Some(r) = self.cfg.replication {
            opts = opts.replication(r);
        }
        // The name is journaled before the namenode is asked, so a kill at any point
        // after the request leaves the file recorded for the next start.
        self.save_journal_with(Some((&in_use, &target)));
        let created =
            tokio::time::timeout(self.cfg.call_timeout, client.create(&in_use, opts)).await;
        let writer = match created {
            Ok(Ok(w)) => w,
            failed => {
                inc(&self.counters.connection_failed);
                let err = match &failed {
                    Ok(Err(e)) => format!("creating {in_use}: {e}"),
                    _ => self.timed_out(&format!("creating {in_use}")),
                };
                // A create that timed out or failed mid-call may have reached the
                // namenode, leaving an in-use file under our lease that nothing else
                // would ever close. Recovery checks and closes it, or drops the name
                // if it does not exist.
                if !matches!(&failed, Ok(Err(e)) if create_never_happened(e)) {
                    tracing::warn!(sink = %self.name, file = %in_use, "{err}; the file, if the namenode made it, will be recovered and renamed");
                    self.pending.push(Pending::new(in_use, target));
                }
                self.save_journal();
                return Err(err);
            }
        };
        inc(&self.counters.connection_created);
        tracing::info!(sink = %self.name, file = %in_use, "creating");
        let mut enc = Encoder::new(
            self.cfg.file_type,
            &self.cfg.serializer,
            self.cfg.codec,
            self.cfg.write_format,
        );
        let mut buf = Vec::new();
        enc.begin(&mut buf);
        let now = Instant::now();
        Ok(OpenFile {
            in_use,
            target,
            writer,
            enc,
            buf,
            opened: now,
            last_write: now,
            events: 0,
            body_bytes: 0,
            used: 0,
        })
    }

    /// Sends a file's unwritten bytes.
    async fn write_out(&self, f: &mut OpenFile) -> Result<(), String> {
        if f.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::take(&mut f.buf));
        self.call(&format!("writing {}", f.in_use), f.writer.write_bytes(data))
            .await?;
        Ok(())
    }

    /// Ends the format's buffering, writes and syncs: everything appended is durable.
    async fn sync(&self, f: &mut OpenFile) -> Result<(), String> {
        let mut buf = std::mem::take(&mut f.buf);
        f.enc.flush(&mut buf);
        f.buf = buf;
        self.write_out(f).await?;
        self.call(&format!("syncing {}", f.in_use), f.writer.hsync())
            .await?;
        f.last_write = Instant::now();
        Ok(())
    }

    /// Syncs, closes and renames a file. On failure the file is handed to recovery
    /// and the error returned.
    async fn close_file(&mut self, mut f: OpenFile) -> Result<(), String> {
        let res = async {
            let mut buf = std::mem::take(&mut f.buf);
            f.enc.flush(&mut buf);
            f.buf = buf;
            self.write_out(&mut f).await?;
            self.call(&format!("closing {}", f.in_use), f.writer.close())
                .await
        }
        .await;
        match res {
            Ok(()) => {
                inc(&self.counters.connection_closed);
                let client = self.client().map_err(|e| e.to_string())?;
                if let Err(e) = self.rename(&client, &f.in_use, &f.target).await {
                    self.give_up(f.in_use, f.target);
                    return Err(e);
                }
                tracing::info!(sink = %self.name, file = %f.target, events = f.events, "closed");
                self.save_journal();
                Ok(())
            }
            Err(e) => {
                self.give_up(f.in_use, f.target);
                Err(e)
            }
        }
    }

    async fn rename(&self, client: &Client, from: &str, to: &str) -> Result<(), String> {
        if from == to {
            return Ok(());
        }
        self.call(
            &format!("renaming {from} to {to}"),
            client.rename(from, to, false),
        )
        .await
    }

    /// Hands a file to lease recovery and renaming, retried every retryInterval.
    fn give_up(&mut self, in_use: String, target: String) {
        tracing::warn!(sink = %self.name, file = %in_use, "file given up after an HDFS error; it will be recovered and renamed");
        self.pending.push(Pending::new(in_use, target));
        self.save_journal();
    }

    /// Gives up every file in `keys`, after an error in a batch that touched them.
    fn abandon(&mut self, keys: &[String]) {
        for k in keys {
            if let Some(f) = self.files.remove(k) {
                self.give_up(f.in_use, f.target);
            }
        }
    }

    /// One attempt at each pending recovery that is due, or at every one with `all`
    /// (a stopping sink's last chances). A file is due at once when it is given up.
    /// The round ends at the first failure: while the namenode is unreachable every
    /// call waits out hdfs.callTimeout, and a long outage can leave many names
    /// pending, so the sink waits for one of them per round, not all. The failed name
    /// goes to the back, so a file that keeps failing does not hold up the others.
    async fn retry_pending(&mut self, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        let Ok(client) = self.client() else {
            return;
        };
        let now = Instant::now();
        let mut keep = Vec::new();
        let mut stopped = false;
        let mut to_back = None;
        for mut p in std::mem::take(&mut self.pending) {
            if stopped || (p.next_try > now && !all) {
                keep.push(p);
                continue;
            }
            p.tries += 1;
            match self.recover(&client, &p).await {
                Ok(Recovery::Renamed) => {
                    tracing::info!(sink = %self.name, file = %p.target, "recovered and renamed");
                }
                Ok(Recovery::Absent) => {
                    tracing::debug!(sink = %self.name, file = %p.in_use, "nothing to recover: the file does not exist");
                }
                Ok(Recovery::InProgress) => {
                    p.recovering += 1;
                    p.next_try = now + recovery_wait(p.recovering);
                    if p.recovering == 1 {
                        tracing::info!(sink = %self.name, file = %p.in_use, "the namenode is recovering the file's last block; it keeps its in-use name until that is done");
                    } else {
                        tracing::debug!(sink = %self.name, file = %p.in_use, checks = p.recovering, "block recovery still in progress");
                    }
                    keep.push(p);
                }
                Err(e) => {
                    stopped = true;
                    let limit = self.cfg.close_tries;
                    if (limit > 0 && p.tries >= limit) || self.cfg.retry_interval.is_zero() {
                        tracing::error!(sink = %self.name, file = %p.in_use, "giving up on closing and renaming after {} tries: {e}; rename it by hand once its lease is released", p.tries);
                    } else {
                        tracing::warn!(sink = %self.name, file = %p.in_use, "recovery failed, retrying in {:?}: {e}", self.cfg.retry_interval);
                        p.recovering = 0;
                        p.next_try = now + self.cfg.retry_interval;
                        to_back = Some(p);
                    }
                }
            }
        }
        keep.extend(to_back);
        self.pending = keep;
        self.save_journal();
    }

    /// Whether the file is closed under its final name, never existed, or is still
    /// having its last block recovered by the namenode. A file is not renamed before
    /// it is closed: readers of an open file fail with "Cannot obtain block length",
    /// and jobs reading the final names should never meet one.
    async fn recover(&self, client: &Client, p: &Pending) -> Result<Recovery, String> {
        let exists = self
            .call(&format!("looking up {}", p.in_use), async {
                match client.get_file_info(&p.in_use).await {
                    Ok(_) => Ok(true),
                    Err(HdfsError::FileNotFound(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if !exists {
            return Ok(Recovery::Absent);
        }
        let closed = self
            .call(
                &format!("recovering the lease of {}", p.in_use),
                client.recover_lease(&p.in_use),
            )
            .await?;
        if !closed {
            return Ok(Recovery::InProgress);
        }
        self.rename(client, &p.in_use, &p.target).await?;
        Ok(Recovery::Renamed)
    }

    /// Closes files whose rollInterval or idleTimeout has passed. Failures go to
    /// recovery; they do not fail the batch at hand.
    async fn close_expired(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .files
            .iter()
            .filter(|(_, f)| {
                self.cfg
                    .roll_interval
                    .is_some_and(|d| now.duration_since(f.opened) >= d)
                    || self
                        .cfg
                        .idle_timeout
                        .is_some_and(|d| now.duration_since(f.last_write) >= d)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(f) = self.files.remove(&k) {
                if let Err(e) = self.close_file(f).await {
                    tracing::warn!(sink = %self.name, "closing a file on its interval failed: {e}");
                }
            }
        }
    }

    fn should_rotate(&self, f: &OpenFile) -> bool {
        (self.cfg.roll_count > 0 && f.events >= self.cfg.roll_count)
            || (self.cfg.roll_size > 0 && f.body_bytes >= self.cfg.roll_size)
    }

    async fn write_batch(
        &mut self,
        batch: &[Event],
        touched: &mut Vec<String>,
    ) -> Result<(), String> {
        let now = now_ms();
        // Every event's file is worked out before anything is written, so an event
        // that cannot be placed fails the batch with nothing half-written.
        let mut groups: Vec<(String, String, String, Vec<&Event>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for e in batch {
            let dir = hadoop_path(self.path.render(e, &self.cfg.time, now).map_err(|e| e.0)?);
            let prefix = self
                .prefix
                .render(e, &self.cfg.time, now)
                .map_err(|e| e.0)?
                .to_string();
            let key = format!("{dir}/{prefix}");
            let i = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, dir, prefix, Vec::new()));
                groups.len() - 1
            });
            groups[i].3.push(e);
        }
        for (key, dir, prefix, events) in groups {
            touched.push(key.clone());
            // The file is out of the map while this group is written; the journal
            // is saved with it whenever a file is opened.
            let mut f = match self.files.remove(&key) {
                Some(f) => f,
                None => {
                    if self.files.len() >= self.cfg.max_open_files {
                        self.close_least_used().await;
                    }
                    self.open(&dir, &prefix).await?
                }
            };
            let mut run: Vec<&Event> = Vec::with_capacity(events.len());
            for e in events {
                if self.should_rotate(&f) {
                    f.enc.append(&run, now, &mut f.buf);
                    run.clear();
                    self.close_file(f).await?;
                    f = self.open(&dir, &prefix).await?;
                }
                run.push(e);
                f.events += 1;
                f.body_bytes += e.body.len() as u64;
                if run.len() >= 4096 {
                    f.enc.append(&run, now, &mut f.buf);
                    run.clear();
                    if f.buf.len() >= WRITE_CHUNK {
                        if let Err(e) = self.write_out(&mut f).await {
                            self.files.insert(key, f);
                            return Err(e);
                        }
                    }
                }
            }
            f.enc.append(&run, now, &mut f.buf);
            self.tick += 1;
            f.used = self.tick;
            let res = if f.buf.len() >= WRITE_CHUNK {
                self.write_out(&mut f).await
            } else {
                Ok(())
            };
            self.files.insert(key, f);
            res?;
        }
        touched.sort();
        touched.dedup();
        for k in touched.iter() {
            if let Some(mut f) = self.files.remove(k) {
                let res = self.sync(&mut f).await;
                self.files.insert(k.clone(), f);
                res?;
            }
        }
        Ok(())
    }

    async fn close_least_used(&mut self) {
        let Some(k) = self
            .files
            .iter()
            .min_by_key(|(_, f)| f.used)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        if let Some(f) = self.files.remove(&k) {
            if let Err(e) = self.close_file(f).await {
                tracing::warn!(sink = %self.name, "closing the least recently used file (hdfs.maxOpenFiles) failed: {e}");
            }
        }
    }
}

#[async_trait]
impl Sink for HdfsSink {
    async fn start(&mut self) -> Result<(), SinkError> {
        self.client()?;
        for (in_use, target) in self.journal.load() {
            tracing::info!(sink = %self.name, file = %in_use, "recovering a file left open by an earlier run");
            self.pending.push(Pending::new(in_use, target));
        }
        self.retry_pending(false).await;
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        self.retry_pending(false).await;
        self.close_expired().await;
        let mut touched = Vec::new();
        match self.write_batch(batch, &mut touched).await {
            Ok(()) => Ok(()),
            Err(e) => {
                inc(&self.counters.event_write_fail);
                self.abandon(&touched);
                Err(SinkError::Delivery(format!("HDFS: {e}")))
            }
        }
    }

    async fn idle(&mut self) -> Result<(), SinkError> {
        self.retry_pending(false).await;
        self.close_expired().await;
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        let keys: Vec<String> = self.files.keys().cloned().collect();
        let mut failed = None;
        for k in keys {
            if let Some(f) = self.files.remove(&k) {
                if let Err(e) = self.close_file(f).await {
                    failed = Some(e);
                }
            }
        }
        // Files given up earlier get a last chance now, bounded so a dead cluster
        // cannot hold the agent's shutdown; what is left stays in the journal for
        // the next start.
        let end = Instant::now() + Duration::from_secs(30);
        while !self.pending.is_empty() && Instant::now() < end {
            self.retry_pending(true).await;
            if !self.pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        if !self.pending.is_empty() {
            tracing::warn!(sink = %self.name, files = self.pending.len(), "files still open at stop are recorded in {} and recovered at the next start", self.journal.path().display());
        }
        match failed {
            Some(e) if !self.pending.is_empty() => Err(SinkError::Delivery(e)),
            _ => Ok(()),
        }
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}

enum Recovery {
    Renamed,
    Absent,
    InProgress,
}

/// Errors that prove a create never made a file: the namenode refused the
/// connection, or answered with a definite refusal. Anything else (a timeout, a
/// dropped connection, a failed RPC) leaves the file possibly created.
fn create_never_happened(e: &HdfsError) -> bool {
    match e {
        HdfsError::IOError(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        HdfsError::AlreadyExists(_)
        | HdfsError::InvalidPath(_)
        | HdfsError::InvalidArgument(_)
        | HdfsError::IsADirectoryError(_) => true,
        _ => false,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_core::Props;

    #[test]
    fn an_empty_segment_is_read_as_hadoop_reads_it() {
        assert_eq!(hadoop_path("/logs//x"), "/logs/x");
        assert_eq!(hadoop_path("//logs///x//"), "/logs/x");
        assert_eq!(hadoop_path("/logs/"), "/logs");
        assert_eq!(hadoop_path("/"), "/");
        assert_eq!(hadoop_path("/logs/web-1"), "/logs/web-1");
    }

    /// A namenode that accepts connections and never answers: every call times out,
    /// as one does when the namenode restarts mid-request.
    #[tokio::test]
    async fn a_create_without_an_answer_is_journaled_and_handed_to_recovery() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let path = format!("hdfs://127.0.0.1:{port}/logs");
        let p = Props::from_pairs(&[
            ("hdfs.path", path.as_str()),
            ("hdfs.fileType", "DataStream"),
            ("hdfs.callTimeout", "300"),
        ]);
        let cfg = HdfsSinkConfig::from_props(&p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut sink = HdfsSink::new("k1", cfg, Arc::new(SinkCounters::default()));
        sink.journal = Journal::at(dir.path().join("k1.open"));

        let err = sink
            .deliver(&[Event::from_body("e0")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("hdfs.callTimeout"), "{err}");
        let journaled = sink.journal.load();
        assert_eq!(journaled.len(), 1, "{journaled:?}");
        let (in_use, target) = &journaled[0];
        assert!(in_use.starts_with("/logs/FlumeData.") && in_use.ends_with(".tmp"));
        assert_eq!(format!("{target}.tmp"), *in_use);
        assert_eq!(sink.pending.len(), 1);
        assert_eq!(sink.pending[0].in_use, *in_use);
        assert_eq!(
            sink.counters
                .connection_failed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// Three names wait for recovery while the namenode does not answer: a round
    /// makes one attempt, not three calls of hdfs.callTimeout each.
    #[tokio::test]
    async fn a_round_of_recovery_stops_at_the_first_unanswered_call() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let path = format!("hdfs://127.0.0.1:{port}/logs");
        let p = Props::from_pairs(&[("hdfs.path", path.as_str()), ("hdfs.callTimeout", "200")]);
        let cfg = HdfsSinkConfig::from_props(&p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut sink = HdfsSink::new("k1", cfg, Arc::new(SinkCounters::default()));
        sink.journal = Journal::at(dir.path().join("k1.open"));
        for n in 1..=3 {
            let target = format!("/logs/FlumeData.{n}");
            sink.pending
                .push(Pending::new(format!("{target}.tmp"), target));
        }

        let tries = |sink: &HdfsSink| -> Vec<(String, u32)> {
            sink.pending
                .iter()
                .map(|p| (p.target.clone(), p.tries))
                .collect()
        };
        let f = |n: u32, tries: u32| (format!("/logs/FlumeData.{n}"), tries);

        sink.retry_pending(false).await;
        assert_eq!(tries(&sink), vec![f(2, 0), f(3, 0), f(1, 1)]);
        assert_eq!(sink.journal.load().len(), 3, "every name stays journaled");
        // At stop every name is due; still one call per round, the next name first.
        sink.retry_pending(true).await;
        assert_eq!(tries(&sink), vec![f(3, 0), f(1, 1), f(2, 1)]);
    }
}
