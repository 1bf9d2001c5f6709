//! syslogtcp and multiport_syslogtcp with `ssl = true`: messages sent over TLS arrive
//! with Flume's headers, and a client that cannot (or does not) shake hands loses its
//! own connection only. Certificates are made at test time with the openssl command
//! line, as the workspace's other TLS tests make them.

use millrace_channels::memory::{MemoryChannel, MemoryChannelConfig};
use millrace_core::{CancellationToken, Channel, ChannelProcessor, Event, Props, SourceContext};
use millrace_sources::syslog::{Kind, SyslogConfig, SyslogTcpSource};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls;

const DEADLINE: Duration = Duration::from_secs(10);

/// A test CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM
/// files in `dir`: (CA certificate, server certificate, server key).
fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
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
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut ca = vec!["req", "-x509", "-nodes", "-days", "1"];
    ca.extend(ec);
    ca.extend(["-subj", "/CN=millrace test CA", "-keyout", "ca.key"]);
    ca.extend(["-out", "ca.pem"]);
    openssl(&ca);
    let mut req = vec!["req", "-nodes", "-subj", "/CN=localhost"];
    req.extend(ec);
    req.extend(["-keyout", "key.pem", "-out", "server.csr"]);
    openssl(&req);
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
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// A TLS client that trusts only the test CA.
fn client(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let mut pem = std::io::BufReader::new(std::fs::File::open(ca).unwrap());
    for c in rustls_pemfile::certs(&mut pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The source's TLS configuration with `extra` properties, checked for problems.
fn config(dir: &Path, kind: Kind, extra: &[(&str, &str)]) -> SyslogConfig {
    let (_, cert, key) = certs(dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut pairs = vec![
        ("host", "127.0.0.1"),
        ("ssl", "true"),
        ("sslCertificate", cert),
        ("sslKey", key),
        ("keystore-password", "ignored"),
        ("exclude-protocols", "SSLv3"),
    ];
    pairs.extend_from_slice(extra);
    let p = Props::from_pairs(&pairs);
    let c = SyslogConfig::from_props(&p, kind);
    let problems = p.finish();
    assert!(problems.is_empty(), "{problems:?}");
    c.expect("a valid configuration")
}

struct Running {
    channel: Arc<MemoryChannel>,
    ctx: SourceContext,
    task: JoinHandle<()>,
}

fn start(cfg: SyslogConfig) -> Running {
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 1000,
            transaction_capacity: 100,
            ..Default::default()
        },
    ));
    let ctx = SourceContext {
        name: "r1".into(),
        processor: Arc::new(ChannelProcessor::single(channel.clone())),
        counters: Default::default(),
        shutdown: CancellationToken::new(),
    };
    let mut source = SyslogTcpSource::new(cfg);
    let c = ctx.clone();
    let task = tokio::spawn(async move {
        use millrace_core::Source;
        source.run(&c).await.expect("the source runs");
    });
    Running { channel, ctx, task }
}

impl Running {
    /// `n` events, in arrival order; fails after the deadline.
    async fn events(&self, n: usize) -> Vec<Event> {
        let end = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                Instant::now() < end,
                "{} of {n} events arrived: {got:?}",
                got.len()
            );
            let t = self
                .channel
                .take(n - got.len(), Duration::from_millis(50))
                .await
                .unwrap();
            got.extend(t.events().iter().cloned());
            t.commit().await.unwrap();
        }
        got
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&SourceContext) -> bool) {
        let end = Instant::now() + DEADLINE;
        while !done(&self.ctx) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        assert!(!self.task.is_finished(), "the source stopped on its own");
        self.ctx.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the source stops on shutdown")
            .unwrap();
    }
}

/// A TCP connection to `port`, retried until the source listens.
async fn connect(port: u16) -> TcpStream {
    let end = Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => return s,
            Err(e) => assert!(Instant::now() < end, "cannot connect to {port}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connect_tls(
    port: u16,
    tls: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tls.connect(name, connect(port).await)
        .await
        .expect("the TLS handshake succeeds")
}

async fn send(s: &mut tokio_rustls::client::TlsStream<TcpStream>, bytes: &[u8]) {
    s.write_all(bytes).await.unwrap();
    s.flush().await.unwrap();
}

/// Reads until the server closes the connection; fails if it stays open.
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            // An alert may come first; the close follows.
            Ok(Ok(n)) if n > 0 => continue,
            Ok(_) => return,
        }
    }
}

fn header<'a>(e: &'a Event, key: &str) -> &'a str {
    e.header(key)
        .unwrap_or_else(|| panic!("no {key} header in {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslogtcp_over_tls_delivers_rfc3164_and_5424_with_headers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let cfg = config(
        dir.path(),
        Kind::Tcp,
        &[("port", &port), ("clientIPHeader", "client")],
    );
    let tls = client(&dir.path().join("ca.pem"));
    let src = start(cfg);
    let mut s = connect_tls(port.parse().unwrap(), &tls).await;
    send(
        &mut s,
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n",
    )
    .await;
    let rfc5424 = b"<165>1 2026-11-25T03:48:00.123Z web-1 app 42 ID47 - payment failed";
    let mut framed = format!("{} ", rfc5424.len()).into_bytes();
    framed.extend_from_slice(rfc5424);
    send(&mut s, &framed).await;
    let ev = src.events(2).await;
    assert_eq!(&ev[0].body[..], b"su: 'su root' failed");
    assert_eq!(header(&ev[0], "Facility"), "4");
    assert_eq!(header(&ev[0], "Severity"), "2");
    assert_eq!(header(&ev[0], "host"), "mymachine");
    assert_eq!(header(&ev[0], "client"), "127.0.0.1");
    assert_eq!(&ev[1].body[..], b"app 42 ID47 - payment failed");
    assert_eq!(header(&ev[1], "Facility"), "20");
    assert_eq!(header(&ev[1], "Severity"), "5");
    assert_eq!(header(&ev[1], "host"), "web-1");
    assert_eq!(header(&ev[1], "timestamp"), "1795578480123");
    assert_eq!(header(&ev[1], "version"), "1");
    assert_eq!(header(&ev[1], "client"), "127.0.0.1");
    assert_eq!(src.ctx.counters.open_connection.load(Ordering::Relaxed), 1);
    assert_eq!(
        src.ctx
            .counters
            .generic_processing_fail
            .load(Ordering::Relaxed),
        0
    );
    s.shutdown().await.unwrap();
    src.wait_for("the connection to close", |c| {
        c.counters.open_connection.load(Ordering::Relaxed) == 0
    })
    .await;
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiport_syslogtcp_over_tls_on_every_port() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let ports = format!("{p1} {p2}");
    let cfg = config(
        dir.path(),
        Kind::MultiportTcp,
        &[("ports", &ports), ("portHeader", "port")],
    );
    let tls = client(&dir.path().join("ca.pem"));
    let src = start(cfg);
    let mut a = connect_tls(p1, &tls).await;
    send(&mut a, b"<13>Nov  5 01:02:03 db-2 backup done\n").await;
    let first = src.events(1).await;
    let mut b = connect_tls(p2, &tls).await;
    send(
        &mut b,
        b"<165>1 2026-11-25T03:48:00.123Z web-1 app 42 ID47 - payment failed\n",
    )
    .await;
    let second = src.events(1).await;
    assert_eq!(&first[0].body[..], b"backup done");
    assert_eq!(header(&first[0], "host"), "db-2");
    assert_eq!(header(&first[0], "Priority"), "13");
    assert_eq!(header(&first[0], "port"), p1.to_string());
    assert_eq!(&second[0].body[..], b"app 42 ID47 - payment failed");
    assert_eq!(header(&second[0], "Priority"), "165");
    assert_eq!(header(&second[0], "Version"), "1");
    assert_eq!(header(&second[0], "port"), p2.to_string());
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_the_tls_port_is_dropped_and_tls_clients_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), Kind::Tcp, &[("port", &port.to_string())]);
    let tls = client(&dir.path().join("ca.pem"));
    let src = start(cfg);
    // A TLS client connected before the plaintext one keeps its connection.
    let mut before = connect_tls(port, &tls).await;
    let mut plain = connect(port).await;
    plain
        .write_all(b"<13>Nov  5 01:02:03 db-2 sent in the clear\n")
        .await
        .unwrap();
    closed_by_server(&mut plain).await;
    src.wait_for("the failed handshake to be counted", |c| {
        c.counters.generic_processing_fail.load(Ordering::Relaxed) == 1
    })
    .await;
    send(&mut before, b"<13>Nov  5 01:02:03 db-2 before\n").await;
    let mut after = connect_tls(port, &tls).await;
    send(&mut after, b"<13>Nov  5 01:02:03 db-2 after\n").await;
    let mut bodies: Vec<_> = src
        .events(2)
        .await
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["after", "before"]);
    // Nothing from the plaintext client reached the channel.
    let t = src
        .channel
        .take(10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(t.events().is_empty(), "{:?}", t.events());
    t.commit().await.unwrap();
    src.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_when_the_handshake_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cfg = config(dir.path(), Kind::Tcp, &[("port", &port.to_string())]);
    cfg.handshake_timeout = Duration::from_millis(200);
    let tls = client(&dir.path().join("ca.pem"));
    let src = start(cfg);
    let mut silent = connect(port).await;
    closed_by_server(&mut silent).await;
    src.wait_for("the timed-out handshake to be counted", |c| {
        c.counters.generic_processing_fail.load(Ordering::Relaxed) == 1
    })
    .await;
    let mut s = connect_tls(port, &tls).await;
    send(&mut s, b"<13>Nov  5 01:02:03 db-2 still served\n").await;
    assert_eq!(&src.events(1).await[0].body[..], b"still served");
    src.stop().await;
}
