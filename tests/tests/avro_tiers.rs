//! Two tiers of millrace agents over Avro RPC: an edge agent sends 100,000 events
//! through a sink group of two avro sinks to two collectors (file channels); one
//! collector is killed with SIGKILL while traffic flows and restarted later. Under both load_balance and failover, every
//! event reaches a collector's output.

use millrace_e2e::*;
use millrace_testkit::port_open;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EVENTS: u64 = 100_000;

fn collector_conf(dir: &Path, name: &str, port: u16) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let conf = d.join("collector.conf");
    std::fs::write(
        &conf,
        format!(
            "c.sources = r1\nc.channels = ch\nc.sinks = k1\n\
             c.sources.r1.type = avro\nc.sources.r1.bind = 127.0.0.1\nc.sources.r1.port = {port}\n\
             c.sources.r1.channels = ch\n\
             c.channels.ch.type = file\nc.channels.ch.checkpointDir = {d}/ck\n\
             c.channels.ch.dataDirs = {d}/data\nc.channels.ch.minimumRequiredSpace = 0\n\
             c.channels.ch.transactionCapacity = 1000\n\
             c.sinks.k1.type = file_roll\nc.sinks.k1.sink.directory = {d}/out\n\
             c.sinks.k1.sink.rollInterval = 0\nc.sinks.k1.sink.batchSize = 1000\n\
             c.sinks.k1.channel = ch\n",
            d = d.display()
        ),
    )
    .unwrap();
    conf
}

fn edge_conf(dir: &Path, http: u16, ports: [u16; 2], processor: &str) -> PathBuf {
    let conf = dir.join("edge.conf");
    std::fs::write(
        &conf,
        format!(
            "e.sources = r1\ne.channels = ch\ne.sinks = k1 k2\ne.sinkgroups = g1\n\
             e.sources.r1.type = http\ne.sources.r1.bind = 127.0.0.1\ne.sources.r1.port = {http}\n\
             e.sources.r1.channels = ch\n\
             e.sources.r1.interceptors = i1\ne.sources.r1.interceptors.i1.type = static\n\
             e.sources.r1.interceptors.i1.key = tier\ne.sources.r1.interceptors.i1.value = edge\n\
             e.channels.ch.type = memory\ne.channels.ch.capacity = 20000\n\
             e.channels.ch.transactionCapacity = 1000\n\
             e.sinks.k1.type = avro\ne.sinks.k1.hostname = 127.0.0.1\ne.sinks.k1.port = {}\n\
             e.sinks.k1.batch-size = 500\ne.sinks.k1.request-timeout = 5000\ne.sinks.k1.channel = ch\n\
             e.sinks.k2.type = avro\ne.sinks.k2.hostname = 127.0.0.1\ne.sinks.k2.port = {}\n\
             e.sinks.k2.batch-size = 500\ne.sinks.k2.request-timeout = 5000\ne.sinks.k2.channel = ch\n\
             e.sinkgroups.g1.sinks = k1 k2\n{processor}",
            ports[0], ports[1]
        ),
    )
    .unwrap();
    conf
}

fn outputs(dir: &Path) -> Vec<String> {
    let mut all = read_lines(&dir.join("c1/out"));
    all.extend(read_lines(&dir.join("c2/out")));
    all
}

fn run(processor: &str, victim: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let confs = [
        collector_conf(dir.path(), "c1", ports[0]),
        collector_conf(dir.path(), "c2", ports[1]),
    ];
    let mut collectors = [
        Some(AgentProcess::start("c", &confs[0], &[])),
        Some(AgentProcess::start("c", &confs[1], &[])),
    ];
    wait_for(Duration::from_secs(30), "both collectors listening", || {
        port_open(ports[0]) && port_open(ports[1])
    });
    let http = free_port();
    let edge = AgentProcess::start("e", &edge_conf(dir.path(), http, ports, processor), &[]);
    wait_for(Duration::from_secs(30), "the edge's http source", || {
        port_open(http)
    });
    // Events go in as 100 posts of 1,000; the collector is killed after 20 posts and
    // restarted after 30, so it is down while traffic flows.
    let post = |k: u64| {
        let batch: Vec<serde_json::Value> = (k * 1000..(k + 1) * 1000)
            .map(|n| serde_json::json!({"headers": {"n": n.to_string()}, "body": n.to_string()}))
            .collect();
        let (status, body) =
            http_post(http, "/", &serde_json::to_vec(&batch).unwrap()).expect("the edge answers");
        assert_eq!(status, 200, "{body}");
    };
    for k in 0..20 {
        post(k);
    }
    let mut killed = collectors[victim].take().unwrap();
    killed.signal(libc::SIGKILL);
    let _ = killed.child.wait();
    for k in 20..30 {
        post(k);
    }
    let before = outputs(dir.path()).len();
    wait_for(
        Duration::from_secs(60),
        "delivery through the surviving collector",
        || outputs(dir.path()).len() >= before.max(25_000),
    );
    collectors[victim] = Some(AgentProcess::start("c", &confs[victim], &[]));
    for k in 30..EVENTS / 1000 {
        post(k);
    }

    wait_for(
        Duration::from_secs(180),
        "every event at a collector",
        || distinct_and_duplicates(&outputs(dir.path())).0.len() as u64 == EVENTS,
    );
    let (distinct, duplicates) = distinct_and_duplicates(&outputs(dir.path()));
    println!(
        "{processor:?}: {} distinct events at the collectors, {duplicates} delivered twice",
        distinct.len()
    );
    assert_eq!(distinct.len() as u64, EVENTS);
    assert_eq!(distinct.first(), Some(&0));
    assert_eq!(distinct.last(), Some(&(EVENTS - 1)));
    drop(edge);
}

#[test]
fn load_balance_across_two_collectors_survives_a_killed_collector() {
    run(
        "e.sinkgroups.g1.processor.type = load_balance\n\
         e.sinkgroups.g1.processor.selector = round_robin\n\
         e.sinkgroups.g1.processor.backoff = true\n",
        1,
    );
}

#[test]
fn failover_to_the_second_collector_and_back() {
    run(
        "e.sinkgroups.g1.processor.type = failover\n\
         e.sinkgroups.g1.processor.priority.k1 = 10\n\
         e.sinkgroups.g1.processor.priority.k2 = 5\n\
         e.sinkgroups.g1.processor.maxpenalty = 2000\n",
        0,
    );
}

/// A TLS collector (avro source -> file_roll into `out`) and an edge (http source ->
/// avro sink with `ssl`), the edge's sink lines given by `edge_tls`; the collector
/// presents a certificate signed by the test CA. Returns the two files and ports.
struct TlsPair {
    collector: PathBuf,
    edge: PathBuf,
    avro: u16,
    http: u16,
    out: PathBuf,
    ca: PathBuf,
}

fn tls_pair(dir: &Path, deflate: bool, edge_tls: impl Fn(&Path) -> String) -> TlsPair {
    let (ca, cert, key) = test_certs(dir);
    let (avro, http) = (free_port(), free_port());
    let out = dir.join("out");
    let compression = if deflate { "deflate" } else { "none" };
    let collector = dir.join("collector.conf");
    std::fs::write(
        &collector,
        format!(
            "c.sources = r1\nc.channels = ch\nc.sinks = k1\n\
             c.sources.r1.type = avro\nc.sources.r1.bind = 127.0.0.1\nc.sources.r1.port = {avro}\n\
             c.sources.r1.ssl = true\nc.sources.r1.sslCertificate = {}\nc.sources.r1.sslKey = {}\n\
             c.sources.r1.compression-type = {compression}\nc.sources.r1.channels = ch\n\
             c.channels.ch.type = memory\n\
             c.sinks.k1.type = file_roll\nc.sinks.k1.sink.directory = {}\n\
             c.sinks.k1.sink.rollInterval = 0\nc.sinks.k1.channel = ch\n",
            cert.display(),
            key.display(),
            out.display()
        ),
    )
    .unwrap();
    let edge = dir.join("edge.conf");
    std::fs::write(
        &edge,
        format!(
            "e.sources = r1\ne.channels = ch\ne.sinks = k1\n\
             e.sources.r1.type = http\ne.sources.r1.bind = 127.0.0.1\ne.sources.r1.port = {http}\n\
             e.sources.r1.channels = ch\ne.channels.ch.type = memory\n\
             e.sinks.k1.type = avro\ne.sinks.k1.hostname = localhost\ne.sinks.k1.port = {avro}\n\
             e.sinks.k1.ssl = true\n{}\
             e.sinks.k1.compression-type = {compression}\ne.sinks.k1.channel = ch\n",
            edge_tls(&ca)
        ),
    )
    .unwrap();
    TlsPair {
        collector,
        edge,
        avro,
        http,
        out,
        ca,
    }
}

#[test]
fn tls_and_deflate_between_two_agents() {
    let dir = tempfile::tempdir().unwrap();
    let TlsPair {
        collector,
        edge,
        avro,
        http,
        out,
        ..
    } = tls_pair(dir.path(), true, |ca| {
        format!("e.sinks.k1.truststore = {}\n", ca.display())
    });
    let collector = AgentProcess::start("c", &collector, &[]);
    let edge = AgentProcess::start("e", &edge, &[]);
    wait_for(Duration::from_secs(30), "both agents listening", || {
        port_open(avro) && port_open(http)
    });
    let batch: Vec<serde_json::Value> = (0..100)
        .map(|n| serde_json::json!({"headers": {}, "body": format!("secret {n}")}))
        .collect();
    let (status, body) =
        http_post(http, "/", &serde_json::to_vec(&batch).unwrap()).expect("the edge answers");
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(30), "100 events over TLS", || {
        read_lines(&out).len() >= 100
    });
    let expected: Vec<String> = (0..100).map(|n| format!("secret {n}")).collect();
    assert_eq!(
        read_lines(&out),
        expected,
        "edge:\n{}\ncollector:\n{}",
        edge.log_text(),
        collector.log_text()
    );
}

#[test]
fn tls_without_a_truststore_trusts_the_systems_certificates() {
    let dir = tempfile::tempdir().unwrap();
    // `ssl = true` and no truststore, as a Flume file that relies on the JVM's CAs.
    let TlsPair {
        collector,
        edge,
        avro,
        http,
        out,
        ca,
    } = tls_pair(dir.path(), false, |_| String::new());
    let _collector = AgentProcess::start("c", &collector, &[]);
    let post = |from: u64| {
        let batch: Vec<serde_json::Value> = (from..from + 50)
            .map(|n| serde_json::json!({"headers": {}, "body": format!("secret {n}")}))
            .collect();
        let (status, body) =
            http_post(http, "/", &serde_json::to_vec(&batch).unwrap()).expect("the edge answers");
        assert_eq!(status, 200, "{body}");
    };

    // The system's CAs do not include the test CA: the collector is not trusted.
    let mut untrusting = AgentProcess::start("e", &edge, &[]);
    wait_for(Duration::from_secs(30), "both agents listening", || {
        port_open(avro) && port_open(http)
    });
    post(0);
    wait_for(
        Duration::from_secs(30),
        "the refused certificate in the log",
        || untrusting.log_text().contains("UnknownIssuer"),
    );
    assert!(read_lines(&out).is_empty());
    // Its memory channel holds the 50 events it cannot deliver; they are not needed.
    untrusting.signal(libc::SIGKILL);
    let _ = untrusting.child.wait();

    // With the test CA as the system's bundle (SSL_CERT_FILE, as OpenSSL reads it).
    let edge = AgentProcess::start_with_env(
        Path::new("."),
        "e",
        &edge,
        &[],
        &[("SSL_CERT_FILE", ca.as_path())],
    );
    wait_for(Duration::from_secs(30), "the edge listening", || {
        port_open(http)
    });
    post(100);
    wait_for(Duration::from_secs(30), "50 events over TLS", || {
        read_lines(&out).len() >= 50
    });
    let expected: Vec<String> = (100..150).map(|n| format!("secret {n}")).collect();
    assert_eq!(read_lines(&out), expected, "edge:\n{}", edge.log_text());
}
