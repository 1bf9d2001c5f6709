//! The `exec` source: runs a command and turns each line it prints into an event.
//!
//! As in Flume, exec gives no delivery guarantee across a restart of the agent or the
//! command: lines printed while the agent was down are not read again. While the agent
//! runs, a full channel slows reading down (the command blocks on its pipe) instead of
//! dropping lines.

use async_trait::async_trait;
use bytes::Bytes;
use millrace_core::{Event, Props, Source, SourceContext, SourceError};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// `command` (required): the command to run, e.g. `tail -F /var/log/app.log`.
    pub command: String,
    /// `shell` (default none): a shell to run the command with, e.g. `/bin/sh -c`;
    /// needed for pipes, wildcards and variables. Without it the command is split on
    /// whitespace and run directly.
    pub shell: Option<String>,
    /// `restart` (default false): run the command again when it exits.
    pub restart: bool,
    /// `restartThrottle` (ms, default 10000): wait before a restart.
    pub restart_throttle: Duration,
    /// `logStdErr` (default false): log the command's standard error.
    pub log_stderr: bool,
    /// `batchSize` (default 20): lines per put.
    pub batch_size: usize,
    /// `batchTimeout` (ms, default 3000): a partial batch is put after this long.
    pub batch_timeout: Duration,
}

impl ExecConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let command = p.required(
            "command",
            "set the command to run, e.g. `tail -F /var/log/app.log`",
        );
        let shell = p.get("shell").filter(|s| !s.trim().is_empty());
        let restart = p.bool("restart", false);
        let restart_throttle = p.millis("restartThrottle", 10_000);
        let log_stderr = p.bool("logStdErr", false);
        let batch_size = p.u64_in("batchSize", 20, 1, 1_000_000) as usize;
        let batch_timeout = p.millis("batchTimeout", 3000);
        // Bytes pass through unchanged, which is what Flume's decode-then-encode with
        // the same charset amounts to.
        let _ = p.get("charset");
        if p.has_errors() {
            return None;
        }
        Some(ExecConfig {
            command: command?,
            shell,
            restart,
            restart_throttle,
            log_stderr,
            batch_size,
            batch_timeout,
        })
    }

    fn argv(&self) -> Vec<String> {
        match &self.shell {
            Some(shell) => shell
                .split_whitespace()
                .map(str::to_string)
                .chain(std::iter::once(self.command.clone()))
                .collect(),
            None => self
                .command
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }
}

pub struct ExecSource {
    cfg: ExecConfig,
}

impl ExecSource {
    pub fn new(cfg: ExecConfig) -> Self {
        ExecSource { cfg }
    }

    fn spawn(&self) -> Result<Child, SourceError> {
        let argv = self.cfg.argv();
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| SourceError::Failed("empty command".into()))?;
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if self.cfg.log_stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        // Its own process group, so that stopping the source also stops whatever a
        // shell started (`sh -c 'tail -F ...'`).
        cmd.process_group(0);
        cmd.spawn().map_err(|e| {
            SourceError::Failed(format!(
                "cannot run `{}`: {e}; check the command and PATH",
                self.cfg.command
            ))
        })
    }

    /// Reads one run of the command to its end. Returns false when the agent stops.
    async fn run_once(&self, ctx: &SourceContext) -> Result<bool, SourceError> {
        let mut child = self.spawn()?;
        let pid = child.id();
        tracing::info!(source = %ctx.name, command = %self.cfg.command, pid, "command started");
        if let Some(stderr) = child.stderr.take() {
            let name = ctx.name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::info!(source = %name, "stderr: {l}");
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped above");
        let mut reader = BufReader::with_capacity(256 * 1024, stdout);
        let mut line: Vec<u8> = Vec::with_capacity(256);
        let mut batch: Vec<Event> = Vec::with_capacity(self.cfg.batch_size);
        let mut flush_at: Option<Instant> = None;
        let stopped = loop {
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => break true,
                _ = sleep_until(flush_at), if flush_at.is_some() => {
                    flush_at = None;
                    if ctx.put(std::mem::take(&mut batch)).await.is_err() {
                        break true;
                    }
                }
                r = reader.read_until(b'\n', &mut line) => {
                    match r {
                        Ok(0) => {
                            if !line.is_empty() {
                                batch.push(Event::from_body(Bytes::from(std::mem::take(&mut line))));
                            }
                            break false;
                        }
                        Ok(_) => {
                            strip_eol(&mut line);
                            // Copying into an exact-size buffer and reusing `line` keeps
                            // each queued event at its own size, not the read buffer's.
                            batch.push(Event::from_body(Bytes::copy_from_slice(&line)));
                            line.clear();
                            if batch.len() == 1 {
                                flush_at = Some(Instant::now() + self.cfg.batch_timeout);
                            }
                            if batch.len() >= self.cfg.batch_size {
                                flush_at = None;
                                if ctx.put(std::mem::take(&mut batch)).await.is_err() {
                                    break true;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(source = %ctx.name, error = %e, "reading the command's output failed");
                            millrace_core::counters::inc(&ctx.counters.event_read_fail);
                            break false;
                        }
                    }
                }
            }
        };
        if !batch.is_empty() {
            // On shutdown the put is tried once more; lines read but refused are lost,
            // which exec has always allowed.
            let _ = ctx.put(batch).await;
        }
        if stopped {
            stop_child(&mut child).await;
            return Ok(false);
        }
        let status = child.wait().await?;
        tracing::info!(source = %ctx.name, command = %self.cfg.command, %status, "command exited");
        Ok(true)
    }
}

fn strip_eol(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn stop_child(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's process group; no memory is touched.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            let _ = child.wait().await;
        }
    }
}

#[async_trait]
impl Source for ExecSource {
    async fn run(&mut self, ctx: &SourceContext) -> Result<(), SourceError> {
        loop {
            if !self.run_once(ctx).await? {
                return Ok(());
            }
            if !self.cfg.restart {
                ctx.shutdown.cancelled().await;
                return Ok(());
            }
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.cfg.restart_throttle) => {}
            }
        }
    }

    fn batch_size(&self) -> Option<usize> {
        Some(self.cfg.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
    use millrace_core::{CancellationToken, Channel, ChannelProcessor};
    use std::sync::Arc;

    fn ctx(ch: Arc<dyn Channel>) -> SourceContext {
        SourceContext {
            name: "r1".into(),
            processor: Arc::new(ChannelProcessor::single(ch)),
            counters: Default::default(),
            shutdown: CancellationToken::new(),
        }
    }

    #[test]
    fn shell_wraps_the_command() {
        let p = Props::from_pairs(&[("command", "echo a | tr a b"), ("shell", "/bin/sh -c")]);
        let c = ExecConfig::from_props(&p).unwrap();
        assert_eq!(c.argv(), ["/bin/sh", "-c", "echo a | tr a b"]);
    }

    #[test]
    fn missing_command_is_reported() {
        let p = Props::from_pairs(&[]);
        assert!(ExecConfig::from_props(&p).is_none());
        assert!(p.finish()[0].message.contains("command"));
    }

    #[tokio::test]
    async fn reads_every_line_in_order_with_partial_batches() {
        let ch = Arc::new(MemoryChannel::new(
            "c1",
            MemoryChannelConfig {
                capacity: 10_000,
                transaction_capacity: 1000,
                ..Default::default()
            },
        ));
        let p = Props::from_pairs(&[
            ("command", "printf 'a\\r\\nb\\nc'"),
            ("shell", "/bin/sh -c"),
            ("batchSize", "2"),
        ]);
        let src = ExecSource::new(ExecConfig::from_props(&p).unwrap());
        let c = ctx(ch.clone());
        assert!(src.run_once(&c).await.unwrap());
        let t = ch.take(10, Duration::ZERO).await.unwrap();
        let bodies: Vec<_> = t.events().iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, ["a", "b", "c"]);
        assert_eq!(c.counters.event_accepted(), 3);
    }
}
