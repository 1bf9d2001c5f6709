//! Real Apache Kafka, HDFS and Apache Flume for millrace's tests and benchmarks.
//!
//! Each service runs from the Maven Central jars that `scripts/services.sh fetch`
//! cached, on free loopback ports, with a fresh data directory, as a child of the test
//! process:
//!
//! ```no_run
//! let kafka = millrace_testkit::Kafka::start();
//! println!("bootstrap servers: {}", kafka.bootstrap());
//! // the broker stops when `kafka` is dropped, also when the test panics
//! ```
//!
//! A missing jar is a test failure that says to run `scripts/services.sh fetch`: a test
//! that claims to talk to a real broker never passes without one.
//!
//! The child is stopped by process group when the handle drops, and the kernel kills it
//! if the test process dies first (`PR_SET_PDEATHSIG`), so `cargo test` leaves no JVM
//! behind. Because that signal follows the thread that started the child, a handle is
//! meant to live in the test that started it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to come up before the test fails with its log.
const START_DEADLINE: Duration = Duration::from_secs(180);

/// The repository's root (this crate lives in `crates/millrace-testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository root")
        .to_path_buf()
}

/// Where `scripts/services.sh fetch` keeps the jars.
pub fn services_dir() -> PathBuf {
    match std::env::var_os("MILLRACE_SERVICES_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/millrace-services"),
    }
}

/// A loopback TCP port nothing listens on (and UDP free too), never the same one twice
/// in one process, so tests running in parallel do not race for it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Waits until `f` holds, polling; panics naming `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

fn require(service: &str) {
    let stamp = services_dir().join(service).join("stamp");
    assert!(
        stamp.is_file(),
        "the {service} jars are not in {}; run `scripts/services.sh fetch` (scripts/test.sh does) and run the tests again",
        services_dir().display()
    );
}

/// One service process: its own data directory and log, stopped on drop.
pub struct Service {
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Service {
    fn spawn(
        what: &'static str,
        args: &[impl AsRef<std::ffi::OsStr>],
        dir: tempfile::TempDir,
    ) -> Service {
        let log = dir.path().join(format!("{what}.log"));
        let out = std::fs::File::create(&log).expect("the service log");
        let err = out.try_clone().expect("the service log");
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/services.sh"))
            .arg("run")
            .args(args)
            .env("MILLRACE_SERVICES_DIR", services_dir())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} through scripts/services.sh: {e}"));
        let stdin = child.stdin.take();
        Service {
            what,
            child,
            stdin,
            log,
            dir,
        }
    }

    /// Everything the service printed so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The service's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id (also its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `ready` holds; panics with the log's tail when the process exits
    /// first or the deadline passes.
    pub fn wait_ready(&mut self, deadline: Duration, mut ready: impl FnMut(&Service) -> bool) {
        let end = Instant::now() + deadline;
        loop {
            if ready(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready; its log:\n{}",
                    self.what,
                    tail(&self.log_text(), 60)
                );
            }
            if Instant::now() >= end {
                panic!(
                    "{} was not ready after {deadline:?}; its log:\n{}",
                    self.what,
                    tail(&self.log_text(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the service: SIGTERM to its process group, SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.stdin.take();
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pgid = self.child.id() as i32;
        // SAFETY: signalling a process group this handle created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Children the JVM left (or a JVM that ignored SIGTERM) go too.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Kills the service at once, as a crash would.
    pub fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The arguments of `services.sh run` for a broker.
fn kafka_args(data: &Path, port: u16, cport: u16, secure_port: Option<u16>) -> Vec<String> {
    let mut args = vec![
        "kafka".to_string(),
        data.to_str().expect("a UTF-8 path").to_string(),
        port.to_string(),
        cport.to_string(),
    ];
    args.extend(secure_port.map(|p| p.to_string()));
    args
}

/// A single-node Apache Kafka 4 broker in KRaft mode (broker and controller in one).
pub struct Kafka {
    service: Service,
    port: u16,
    cport: u16,
    secure_port: Option<u16>,
}

/// The user and password the broker of [`Kafka::start_secure`] knows, for SASL PLAIN
/// and SCRAM-SHA-256.
pub const KAFKA_USER: (&str, &str) = ("alice", "alice-secret");

impl Kafka {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Kafka {
        Kafka::start_with(None)
    }

    /// Starts a broker that also listens for SASL_SSL ([`Kafka::secure_bootstrap`]),
    /// with a certificate of its own ([`Kafka::ca_pem`]) and the user [`KAFKA_USER`].
    pub fn start_secure() -> Kafka {
        Kafka::start_with(Some(free_port()))
    }

    fn start_with(secure_port: Option<u16>) -> Kafka {
        require("kafka");
        let dir = tempfile::Builder::new()
            .prefix("millrace-kafka-")
            .tempdir()
            .expect("a data directory");
        let port = free_port();
        let cport = free_port();
        let data = dir.path().join("broker");
        let args = kafka_args(&data, port, cport, secure_port);
        let mut service = Service::spawn("kafka", &args, dir);
        service.wait_ready(START_DEADLINE, |s| {
            s.log_text().contains("Kafka Server started")
                && port_open(port)
                && secure_port.is_none_or(port_open)
        });
        Kafka {
            service,
            port,
            cport,
            secure_port,
        }
    }

    /// `localhost:PORT` of the SASL_SSL listener (the name the broker's certificate
    /// holds), for a broker of [`Kafka::start_secure`].
    pub fn secure_bootstrap(&self) -> String {
        let port = self.secure_port.expect("a broker of Kafka::start_secure");
        format!("localhost:{port}")
    }

    /// The PEM certificate a client must trust to reach [`Kafka::secure_bootstrap`].
    pub fn ca_pem(&self) -> PathBuf {
        self.service.dir().join("broker/ca.pem")
    }

    /// Stops the broker (SIGTERM, as an operator would) and starts it again on the
    /// same ports and data, waiting until it answers: an outage with nothing lost on
    /// the broker's side.
    pub fn restart_after(&mut self, outage: Duration) {
        self.service.stop(Duration::from_secs(30));
        std::thread::sleep(outage);
        let old = std::mem::replace(
            &mut self.service.dir,
            tempfile::tempdir().expect("a placeholder directory"),
        );
        let data = old.path().join("broker");
        let (port, cport) = (self.port, self.cport);
        let args = kafka_args(&data, port, cport, self.secure_port);
        let mut service = Service::spawn("kafka", &args, old);
        // The log file is new, so this waits for the new process.
        service.wait_ready(START_DEADLINE, |s| {
            s.log_text().contains("Kafka Server started") && port_open(port)
        });
        self.service = service;
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}

/// An HDFS MiniDFSCluster: one namenode and one datanode.
pub struct Hdfs {
    service: Service,
    url: String,
}

impl Hdfs {
    /// Starts a cluster and waits until its datanode has registered.
    pub fn start() -> Hdfs {
        require("hdfs");
        let dir = tempfile::Builder::new()
            .prefix("millrace-hdfs-")
            .tempdir()
            .expect("a data directory");
        let base = dir.path().join("cluster");
        let mut service = Service::spawn(
            "hdfs",
            &["hdfs", base.to_str().expect("a UTF-8 path"), "0"],
            dir,
        );
        let mut url = String::new();
        service.wait_ready(START_DEADLINE, |s| {
            match s
                .log_text()
                .lines()
                .find_map(|l| l.strip_prefix("HDFS_URL="))
            {
                Some(u) => {
                    url = u.trim().to_string();
                    true
                }
                None => false,
            }
        });
        Hdfs { service, url }
    }

    /// Stops the namenode and datanode (SIGTERM, as an operator would) and starts them
    /// again on the same namenode port and data, waiting until the datanode has
    /// registered: an outage with every closed file intact.
    pub fn restart_after(&mut self, outage: Duration) {
        self.service.stop(Duration::from_secs(30));
        std::thread::sleep(outage);
        let old = std::mem::replace(
            &mut self.service.dir,
            tempfile::tempdir().expect("a placeholder directory"),
        );
        let base = old.path().join("cluster");
        let port = self
            .url
            .rsplit(':')
            .next()
            .expect("the url has a port")
            .to_string();
        let mut service = Service::spawn(
            "hdfs",
            &["hdfs", base.to_str().expect("a UTF-8 path"), &port, "keep"],
            old,
        );
        // The log file is new, so this waits for the new process.
        service.wait_ready(START_DEADLINE, |s| {
            s.log_text().lines().any(|l| l.starts_with("HDFS_URL="))
        });
        self.service = service;
    }

    /// `hdfs://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs Hadoop's own `FsShell` against the cluster (`-cat`, `-text`, `-ls`, ...)
    /// and returns its standard output; panics with its error output on failure.
    pub fn shell(&self, args: &[&str]) -> Vec<u8> {
        let dir = services_dir().join("hdfs");
        let out = Command::new("java")
            .args([
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                &format!(
                    "-Dlog4j.configuration=file:{}",
                    dir.join("conf/log4j.properties").display()
                ),
                "-cp",
                &format!(
                    "{}:{}/*",
                    dir.join("conf").display(),
                    dir.join("lib").display()
                ),
                "org.apache.hadoop.fs.FsShell",
                "-fs",
                &self.url,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("java runs FsShell");
        assert!(
            out.status.success(),
            "hadoop fs {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}

/// An Apache Flume 1.11 agent (`org.apache.flume.node.Application`) running a
/// configuration given as text.
pub struct FlumeAgent {
    service: Service,
    monitoring_port: u16,
}

impl FlumeAgent {
    /// Starts agent `name` on `config` (Flume properties text) with HTTP monitoring on
    /// a free port, and waits until its components have started.
    pub fn start(name: &str, config: &str) -> FlumeAgent {
        require("flume");
        let dir = tempfile::Builder::new()
            .prefix("millrace-flume-")
            .tempdir()
            .expect("a data directory");
        let file = dir.path().join("flume.conf");
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("the Flume configuration file");
        let monitoring_port = free_port();
        let mut service = Service::spawn(
            "flume",
            &[
                "flume-agent",
                name,
                file.to_str().expect("a UTF-8 path"),
                "-Dflume.monitoring.type=http",
                &format!("-Dflume.monitoring.port={monitoring_port}"),
            ],
            dir,
        );
        service.wait_ready(START_DEADLINE, |_| port_open(monitoring_port));
        FlumeAgent {
            service,
            monitoring_port,
        }
    }

    /// The agent's `/metrics` JSON, as Flume serves it.
    pub fn metrics(&self) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.monitoring_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).ok()? == 0 || line == "\r\n" {
                break;
            }
        }
        let mut body = String::new();
        r.read_to_string(&mut body).ok()?;
        Some(body)
    }

    pub fn service(&mut self) -> &mut Service {
        &mut self.service
    }
}
