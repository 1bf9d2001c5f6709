//! The http source through the real binary: Flume's JSON format, the BLOB handler,
//! and the status codes a client acts on.

use millrace_e2e::*;
use std::time::Duration;

fn start(dir: &std::path::Path, source: &str, sink_dir: &str, capacity: u32) -> AgentProcess {
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = h\na1.channels = c1\na1.sinks = k1\n{source}\na1.sources.h.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = {capacity}\n\
             a1.channels.c1.transactionCapacity = {capacity}\na1.channels.c1.keep-alive = 0\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {sink_dir}\n\
             a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sinks.k1.sink.rollInterval = 0\n\
             a1.sinks.k1.sink.batchSize = 1\na1.sinks.k1.channel = c1\n"
        ),
    )
    .unwrap();
    AgentProcess::start("a1", &conf, &[])
}

fn wait_http(port: u16) {
    wait_for(Duration::from_secs(30), "the http port", || {
        http_get(port, "/").is_some()
    });
}

#[test]
fn json_events_arrive_and_bad_requests_get_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("out");
    let mut agent = start(
        dir.path(),
        &format!("a1.sources.h.type = http\na1.sources.h.bind = 127.0.0.1\na1.sources.h.port = {port}\na1.sources.h.maxBodySize = 4096"),
        out.to_str().unwrap(),
        100,
    );
    wait_http(port);
    let (status, _) = http_post(port, "/", br#"[{"headers": {"host": "web-1", "caf\u00e9": "\u00fc"}, "body": "first"}, {"body": "second"}]"#).unwrap();
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(30), "two events", || {
        read_lines(&out).len() == 2
    });
    assert_eq!(
        read_lines(&out),
        ["{café=ü, host=web-1} first", "{} second"]
    );
    let (status, reason) = http_post(port, "/", b"[{\"body\": 5}]").unwrap();
    assert_eq!(status, 400);
    assert!(reason.contains("`body` must be a string"), "{reason}");
    let (status, reason) = http_post(port, "/", &vec![b' '; 10_000]).unwrap();
    assert_eq!(status, 413);
    assert!(
        reason.contains("over 4096 bytes") && reason.contains("`maxBodySize`"),
        "{reason}"
    );
    assert_eq!(http_get(port, "/").unwrap().0, 405);
    // The source stays up after bad requests.
    assert_eq!(
        http_post(port, "/", br#"[{"body": "third"}]"#).unwrap().0,
        200
    );
    wait_for(Duration::from_secs(30), "the third event", || {
        read_lines(&out).len() == 3
    });
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn blob_bodies_are_one_event_with_query_headers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("out");
    let mut agent = start(
        dir.path(),
        &format!(
            "a1.sources.h.type = http\na1.sources.h.handler = org.apache.flume.sink.solr.morphline.BlobHandler\n\
             a1.sources.h.bind = 127.0.0.1\na1.sources.h.port = {port}"
        ),
        out.to_str().unwrap(),
        100,
    );
    wait_http(port);
    let (status, reason) = http_post(port, "/?source=app", b"{raw} body, not JSON").unwrap();
    assert_eq!(status, 200, "{reason}");
    wait_for(Duration::from_secs(30), "the blob", || {
        read_lines(&out).len() == 1
    });
    assert_eq!(read_lines(&out), ["{source=app} {raw} body, not JSON"]);
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn a_full_channel_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let port = free_port();
    // The sink cannot write, so the 2-event channel fills up.
    let _agent = start(
        dir.path(),
        &format!(
            "a1.sources.h.type = http\na1.sources.h.bind = 127.0.0.1\na1.sources.h.port = {port}"
        ),
        &format!("{}/out", blocker.display()),
        2,
    );
    wait_http(port);
    assert_eq!(
        http_post(port, "/", br#"[{"body": "1"}, {"body": "2"}]"#)
            .unwrap()
            .0,
        200
    );
    let (status, reason) = http_post(port, "/", br#"[{"body": "3"}]"#).unwrap();
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("full"), "{reason}");
}

#[test]
fn https_with_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certs(dir.path());
    let port = free_port();
    let out = dir.path().join("out");
    let mut agent = start(
        dir.path(),
        &format!(
            "a1.sources.h.type = http\na1.sources.h.bind = 127.0.0.1\na1.sources.h.port = {port}\n\
             a1.sources.h.enableSSL = true\na1.sources.h.sslCertificate = {}\na1.sources.h.sslKey = {}",
            cert.display(),
            key.display()
        ),
        out.to_str().unwrap(),
        100,
    );
    let curl = |extra: &[&str]| {
        let o = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(&ca)
            .args(extra)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let url = format!("https://127.0.0.1:{port}/");
    wait_for(Duration::from_secs(30), "the https port", || {
        curl(&[&url]) == "405"
    });
    // A client speaking plain HTTP to the TLS port fails its handshake; the source
    // keeps serving.
    assert_ne!(http_post(port, "/", b"[]").map(|r| r.0), Some(200));
    let status = curl(&[
        "-X",
        "POST",
        "--data-binary",
        r#"[{"headers": {"tls": "yes"}, "body": "secret"}]"#,
        &url,
    ]);
    assert_eq!(status, "200");
    wait_for(Duration::from_secs(30), "the event over https", || {
        read_lines(&out).len() == 1
    });
    assert_eq!(read_lines(&out), ["{tls=yes} secret"]);
    assert!(agent.terminate(Duration::from_secs(30)).success());
}
