//! The http sink through the real binary: seq -> memory -> http, POSTing to a small
//! server that refuses the first requests with 503 and one event with 404.

use millrace_e2e::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every request the server answered: (body, status), in order.
type Seen = Arc<Mutex<Vec<(String, u16)>>>;

/// Answers 503 to the first `refuse` requests, 404 to the body `bad`, 200 otherwise,
/// on kept-alive connections.
fn server(refuse: usize, bad: &'static str) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let all = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let seen = all.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut request_line = String::new();
                    if r.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    assert!(request_line.starts_with("POST /ingest "), "{request_line}");
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let body = String::from_utf8(body).unwrap();
                    let status = {
                        let mut s = seen.lock().unwrap();
                        let status = if s.len() < refuse {
                            503
                        } else if body == bad {
                            404
                        } else {
                            200
                        };
                        s.push((body, status));
                        status
                    };
                    let resp = format!("HTTP/1.1 {status} S\r\ncontent-length: 0\r\n\r\n");
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn refused_events_are_sent_again_and_a_4xx_without_rollback_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, seen) = server(3, "7");
    let port = free_port();
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 20\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\n\
             a1.sinks.k1.type = http\na1.sinks.k1.channel = c1\n\
             a1.sinks.k1.endpoint = http://127.0.0.1:{http_port}/ingest\n\
             a1.sinks.k1.rollback.2XX = false\na1.sinks.k1.backoff.2XX = false\n\
             a1.sinks.k1.incrementMetrics.2XX = true\n\
             a1.sinks.k1.rollback.4XX = false\na1.sinks.k1.backoff.4XX = false\n"
        ),
    )
    .unwrap();
    let mut agent = AgentProcess::start_monitored("a1", &conf, port);
    wait_for(Duration::from_secs(60), "19 events accepted", || {
        metrics(port).is_some_and(|m| counter(&m, "SINK.k1", "EventDrainSuccessCount") == 19)
    });
    // Nothing more arrives once the channel is empty.
    std::thread::sleep(Duration::from_millis(500));
    let m = metrics(port).unwrap();
    assert!(agent.terminate(Duration::from_secs(30)).success());

    let seen = seen.lock().unwrap().clone();
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (body, status) in &seen {
        by_status.entry(*status).or_default().push(body.clone());
    }
    let mut ok = by_status[&200].clone();
    ok.sort_by_key(|b| b.parse::<u64>().unwrap());
    let want: Vec<String> = (0..20).filter(|n| *n != 7).map(|n| n.to_string()).collect();
    assert_eq!(ok, want, "every event but the 404 accepted once: {seen:?}");
    assert_eq!(by_status[&404], ["7"], "the 404 is not sent again");
    assert_eq!(by_status[&503].len(), 3);
    assert!(
        by_status[&503].iter().all(|b| ok.contains(b)),
        "refused events were sent again: {seen:?}"
    );
    // Flume's counts: an attempt per POST, a success per 2XX (incrementMetrics.2XX),
    // the 404 neither a success nor a write failure.
    assert_eq!(counter(&m, "SINK.k1", "EventDrainAttemptCount"), 23);
    assert_eq!(counter(&m, "SINK.k1", "EventDrainSuccessCount"), 19);
    assert_eq!(counter(&m, "SINK.k1", "EventWriteFail"), 0);
    assert_eq!(counter(&m, "CHANNEL.c1", "ChannelSize"), 0);
}

#[test]
fn https_to_a_millrace_http_source_trusting_the_systems_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certs(dir.path());
    let port = free_port();
    let out = dir.path().join("out");
    // The receiving agent: an http source over TLS taking raw bodies (BLOB).
    let receiver = dir.path().join("receiver.conf");
    std::fs::write(
        &receiver,
        format!(
            "b.sources = r1\nb.channels = c1\nb.sinks = k1\n\
             b.sources.r1.type = http\nb.sources.r1.bind = 127.0.0.1\nb.sources.r1.port = {port}\n\
             b.sources.r1.ssl = true\nb.sources.r1.sslCertificate = {}\nb.sources.r1.sslKey = {}\n\
             b.sources.r1.handler = org.apache.flume.sink.solr.morphline.BlobHandler\n\
             b.sources.r1.channels = c1\nb.channels.c1.type = memory\n\
             b.sinks.k1.type = file_roll\nb.sinks.k1.sink.directory = {}\n\
             b.sinks.k1.sink.rollInterval = 0\nb.sinks.k1.channel = c1\n",
            cert.display(),
            key.display(),
            out.display()
        ),
    )
    .unwrap();
    let sender = dir.path().join("sender.conf");
    std::fs::write(
        &sender,
        format!(
            "a.sources = r1\na.channels = c1\na.sinks = k1\n\
             a.sources.r1.type = seq\na.sources.r1.totalEvents = 20\na.sources.r1.channels = c1\n\
             a.channels.c1.type = memory\n\
             a.sinks.k1.type = http\na.sinks.k1.endpoint = https://localhost:{port}/\n\
             a.sinks.k1.rollback.2XX = false\na.sinks.k1.channel = c1\n"
        ),
    )
    .unwrap();
    let _receiver = AgentProcess::start("b", &receiver, &[]);
    wait_for(Duration::from_secs(30), "the https source", || {
        millrace_testkit::port_open(port)
    });
    // The test CA as the system's bundle, as an operator's CA would be installed.
    let sender = AgentProcess::start_with_env(
        std::path::Path::new("."),
        "a",
        &sender,
        &[],
        &[("SSL_CERT_FILE", ca.as_path())],
    );
    wait_for(Duration::from_secs(60), "20 events over https", || {
        read_lines(&out).len() >= 20
    });
    let mut got: Vec<u64> = read_lines(&out)
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..20).collect::<Vec<_>>(),
        "sender:\n{}",
        sender.log_text()
    );
}
