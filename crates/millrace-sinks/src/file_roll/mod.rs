//! The `file_roll` sink: writes events into files in a local directory and starts a
//! new file every `sink.rollInterval` seconds (Flume's RollingFileSink).
//!
//! Files are named `PREFIX<start-millis>-<index>[.EXTENSION]` as Flume names them. A
//! batch is acknowledged once it is written to the operating system (no fsync, as in
//! Flume): it survives the agent crashing, not the machine.

mod config;

pub use config::FileRollConfig;

use crate::serializer::Serializer;
use async_trait::async_trait;
use millrace_core::counters::{inc, SinkCounters};
use millrace_core::{Event, Sink, SinkError};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::time::Instant;

pub struct FileRollSink {
    name: String,
    cfg: FileRollConfig,
    serializer: Serializer,
    counters: Arc<SinkCounters>,
    series: u128,
    index: u64,
    current: Option<(PathBuf, File)>,
    /// When the current period ends; `None` with rollInterval 0.
    roll_at: Option<Instant>,
    buf: Vec<u8>,
}

impl FileRollSink {
    pub fn new(name: &str, cfg: FileRollConfig, counters: Arc<SinkCounters>) -> Self {
        let series = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        FileRollSink {
            name: name.to_string(),
            serializer: cfg.serializer.clone(),
            cfg,
            counters,
            series,
            index: 0,
            current: None,
            roll_at: None,
            buf: Vec::new(),
        }
    }

    fn next_path(&mut self) -> PathBuf {
        self.index += 1;
        let mut name = format!("{}{}-{}", self.cfg.prefix, self.series, self.index);
        if !self.cfg.extension.is_empty() {
            name.push('.');
            name.push_str(&self.cfg.extension);
        }
        self.cfg.directory.join(name)
    }

    fn roll_due(&self) -> bool {
        self.roll_at.is_some_and(|t| Instant::now() >= t)
    }

    async fn close_current(&mut self) -> Result<(), SinkError> {
        if let Some((path, file)) = self.current.take() {
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(|e| SinkError::Delivery(e.to_string()))??;
            inc(&self.counters.connection_closed);
            tracing::debug!(sink = %self.name, file = %path.display(), "file closed");
        }
        Ok(())
    }

    fn start_period(&mut self) {
        self.roll_at = self.cfg.roll_interval.map(|d| Instant::now() + d);
    }
}

#[async_trait]
impl Sink for FileRollSink {
    async fn start(&mut self) -> Result<(), SinkError> {
        std::fs::create_dir_all(&self.cfg.directory).map_err(|e| {
            SinkError::Delivery(format!(
                "cannot create directory {}: {e}; check `sink.directory` and its permissions",
                self.cfg.directory.display()
            ))
        })?;
        self.start_period();
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        if self.roll_due() {
            self.close_current().await?;
            self.start_period();
        }
        self.buf.clear();
        let mut buf = std::mem::take(&mut self.buf);
        let (path, file) = match self.current.take() {
            Some(cur) => cur,
            None => {
                let path = self.next_path();
                let file = File::options()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| {
                        inc(&self.counters.connection_failed);
                        SinkError::Delivery(format!("cannot create {}: {e}", path.display()))
                    })?;
                inc(&self.counters.connection_created);
                self.serializer.begin_file(&mut buf);
                (path, file)
            }
        };
        self.serializer.write_batch(batch, &mut buf);
        let (res, buf, file) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let res = file.write_all(&buf);
            (res, buf, file)
        })
        .await
        .map_err(|e| SinkError::Delivery(e.to_string()))?;
        self.buf = buf;
        match res {
            Ok(()) => {
                self.current = Some((path, file));
                Ok(())
            }
            Err(e) => {
                // A partial write may have left part of the batch in the file; the batch
                // is retried into a fresh file so no file holds a torn record twice.
                inc(&self.counters.event_write_fail);
                Err(SinkError::Delivery(format!(
                    "writing {} failed: {e}",
                    path.display()
                )))
            }
        }
    }

    async fn idle(&mut self) -> Result<(), SinkError> {
        if self.roll_due() {
            self.close_current().await?;
            self.start_period();
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), SinkError> {
        self.close_current().await
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }
}

#[cfg(test)]
mod tests;
