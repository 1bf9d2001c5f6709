//! Helpers for end-to-end tests that run the real binaries: finding (and building)
//! them, running an agent as a child process that is killed when the test ends, and
//! waiting for conditions with a deadline.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Once;
use std::time::{Duration, Instant};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Path to a workspace binary, built first (once per test process) so tests never run
/// a stale one.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let root = workspace_root();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "millrace-agent",
                "-p",
                "millrace-query-server",
            ])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let p = target.join("debug").join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A path inside the repository (configs, samples).
pub fn repo_path(rel: &str) -> PathBuf {
    workspace_root().join(rel)
}

/// Polls `f` until it returns true; panics with `what` after `deadline`.
pub fn wait_for(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

pub use millrace_testkit::free_port;

/// A running `millrace-agent agent`; killed on drop so no test leaves one behind.
pub struct AgentProcess {
    pub child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts `millrace-agent agent -n NAME -f CONF EXTRA...`, logging to a file.
    pub fn start(name: &str, conf: &Path, extra: &[&str]) -> AgentProcess {
        Self::start_in(Path::new("."), name, conf, extra)
    }

    /// As [`AgentProcess::start`], with Flume's HTTP monitoring on `port`
    /// (`/metrics`, read with [`metrics`]).
    pub fn start_monitored(name: &str, conf: &Path, port: u16) -> AgentProcess {
        Self::start(
            name,
            conf,
            &[
                "-Dflume.monitoring.type=http",
                &format!("-Dflume.monitoring.port={port}"),
            ],
        )
    }

    /// As [`AgentProcess::start`], in working directory `cwd` (for templates whose
    /// paths are relative).
    pub fn start_in(cwd: &Path, name: &str, conf: &Path, extra: &[&str]) -> AgentProcess {
        Self::start_with_env(cwd, name, conf, extra, &[])
    }

    /// As [`AgentProcess::start_in`], with environment variables set for the agent.
    pub fn start_with_env(
        cwd: &Path,
        name: &str,
        conf: &Path,
        extra: &[&str],
        env: &[(&str, &Path)],
    ) -> AgentProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("agent.log");
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin("millrace-agent"))
            .arg("agent")
            .args(["-n", name, "-f"])
            .arg(conf)
            .args(extra)
            .current_dir(cwd)
            // As a shell would, so that `${env:PWD}` in a template names `cwd`.
            .env("PWD", std::path::absolute(cwd).expect("an absolute cwd"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("millrace-agent starts");
        AgentProcess {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Sends SIGTERM and waits (up to `deadline`) for a clean exit.
    pub fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > end {
                panic!(
                    "agent did not stop within {deadline:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET a URL path on 127.0.0.1:port; returns (status, body). None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path)
}

pub fn http_request(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Flume's `/metrics` JSON; None until the server answers with the agent's
/// components. The monitoring port is bound before the components start (so that a
/// taken port fails the start at once), and answers `{}` for that moment.
pub fn metrics(port: u16) -> Option<serde_json::Value> {
    let (status, body) = http_get(port, "/metrics")?;
    (status == 200)
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
}

/// A counter from Flume's `/metrics` JSON (values are strings there).
pub fn counter(m: &serde_json::Value, component: &str, name: &str) -> u64 {
    m[component][name]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{component}.{name} missing in {m}"))
}

/// Every line of every file in `dir`, files in name order.
pub fn read_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => return Vec::new(),
    };
    // file_roll names files PREFIX<millis>-<n>: order by that n numerically.
    files.sort_by_key(|f| {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.split('.').next().unwrap_or("").to_string();
        let n: u64 = stem
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (
            stem.rsplit_once('-')
                .map(|(a, _)| a.to_string())
                .unwrap_or_default(),
            n,
        )
    });
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Sends numbered lines to a netcat source and counts those acknowledged with OK;
/// reconnects (to whatever port `port` holds) when the connection drops, resending
/// the unacknowledged line.
pub struct Sender {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: std::thread::JoinHandle<BTreeSet<u64>>,
}

impl Sender {
    pub fn start(port: Arc<AtomicU16>) -> Sender {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = std::thread::spawn(move || {
            let mut done = BTreeSet::new();
            let mut n = 1u64;
            while !s.load(Ordering::SeqCst) {
                let Ok(sock) = TcpStream::connect(("127.0.0.1", port.load(Ordering::SeqCst)))
                else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                sock.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                // One write per line, sent at once: with Nagle's algorithm the
                // second half of a split line would wait for a delayed ACK.
                sock.set_nodelay(true).unwrap();
                let mut w = sock.try_clone().unwrap();
                let mut r = BufReader::new(sock);
                while !s.load(Ordering::SeqCst) {
                    let mut ack = String::new();
                    if w.write_all(format!("{n}\n").as_bytes()).is_err()
                        || r.read_line(&mut ack).is_err()
                        || ack != "OK\n"
                    {
                        break;
                    }
                    done.insert(n);
                    a.store(done.len() as u64, Ordering::SeqCst);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            done
        });
        Sender { acked, stop, task }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn finish(self) -> BTreeSet<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.join().unwrap()
    }
}

/// The numbers at the end of output lines.
pub fn numbers(lines: &[String]) -> BTreeSet<u64> {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse().ok()))
        .collect()
}

/// A small deterministic generator for random kill moments. Seeded from the clock;
/// the seed is printed so a failing schedule can be replayed with [`Rng::new`].
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        println!("kill schedule seed: {}", seed | 1);
        Rng::new(seed)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// POST `body` to a path on 127.0.0.1:port; returns (status, response body).
pub fn http_post(port: u16, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    // A server may answer (413) before reading a large body; a failed write is fine.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Kills the agent with SIGKILL `kills` times and restarts it from `conf` each time.
/// Each kill comes once `progress()` has grown by `min_step` plus a random part of
/// `random_step` (never beyond `cap`), then after a random pause of up to 30 ms.
/// Returns the agent started last.
#[allow(clippy::too_many_arguments)]
pub fn kill_repeatedly(
    mut agent: AgentProcess,
    name: &str,
    conf: &Path,
    kills: u64,
    rng: &mut Rng,
    (min_step, random_step, cap): (u64, u64, u64),
    what: &str,
    progress: impl Fn() -> u64,
) -> AgentProcess {
    for kill in 1..=kills {
        let target = (progress() + min_step + rng.below(random_step)).min(cap);
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress() < target {
            assert!(
                Instant::now() < deadline,
                "{what} stuck at {} before kill {kill}; agent log:\n{}",
                progress(),
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        agent.signal(libc::SIGKILL);
        let _ = agent.child.wait();
        println!("kill {kill}: {what} at {}", progress());
        agent = AgentProcess::start(name, conf, &[]);
    }
    agent
}

/// The numbers at the end of output lines: how many distinct ones, and how many lines
/// repeat one already seen.
pub fn distinct_and_duplicates(lines: &[String]) -> (BTreeSet<u64>, u64) {
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for n in lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    {
        if !seen.insert(n) {
            duplicates += 1;
        }
    }
    (seen, duplicates)
}

/// A running `millrace-query-server`; killed on drop so no test leaves one behind.
pub struct QueryServer {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl QueryServer {
    /// Starts `millrace-query-server --listen 127.0.0.1:PORT ARGS...` in `cwd`, logging
    /// to a file, and waits (up to 60 s) until its health endpoint answers.
    pub fn start(cwd: &Path, args: &[&str]) -> QueryServer {
        let logdir = tempfile::tempdir().expect("temp dir");
        let log = logdir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let port = free_port();
        let child = Command::new(bin("millrace-query-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("millrace-query-server starts");
        let mut server = QueryServer {
            child,
            port,
            log,
            _logdir: logdir,
        };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = http_get(port, "/api/v1/health") {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the query server exited ({status}); log:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < end,
                "the query server did not answer; log:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (up to `deadline`) for the exit.
    pub fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < end,
                "the query server did not stop within {deadline:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP/1.1 request with extra headers and a body; returns (status, response body).
/// None when nothing answers.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    // A server may answer (413) before reading a large body; a failed write is fine.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A test certificate authority and a server certificate it signed for `localhost`
/// and 127.0.0.1, as PEM files in `dir`: returns (CA certificate, server certificate,
/// server key). Made with the openssl command line.
pub fn test_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=millrace test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// Copies the repository's `samples/logs/*.log` into `root/samples/logs` (a scratch
/// copy of the layout the templates expect) and returns how many lines they hold.
pub fn copy_sample_logs(root: &Path) -> usize {
    let samples = root.join("samples/logs");
    std::fs::create_dir_all(&samples).expect("samples directory");
    let mut lines = 0;
    for e in std::fs::read_dir(repo_path("samples/logs")).expect("samples/logs") {
        let path = e.expect("a directory entry").path();
        if path.extension().is_some_and(|x| x == "log") {
            let text = std::fs::read_to_string(&path).expect("a sample log");
            lines += text.lines().count();
            std::fs::write(samples.join(path.file_name().expect("a name")), text)
                .expect("a copied sample log");
        }
    }
    lines
}
