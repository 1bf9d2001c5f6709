//! Flume's Avro RPC between millrace and the real Apache Flume 1.11 (started by
//! millrace-testkit from Maven Central jars), in both directions, with and without
//! deflate. Headers and bodies must arrive exactly: non-ASCII values, empty bodies.

mod common;

use common::events::*;
use millrace_e2e::*;
use millrace_testkit::{port_open, FlumeAgent};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn write_conf(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("millrace.conf");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn java_flume_avro_sink_to_millrace_avro_source() {
    for compression in ["none", "deflate"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let avro_port = free_port();
        let conf = write_conf(
            dir.path(),
            &format!(
                "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                 a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\n\
                 a1.sources.r1.port = {avro_port}\na1.sources.r1.compression-type = {compression}\n\
                 a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
                 a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
                 a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.serializer = HEADER_AND_TEXT\n\
                 a1.sinks.k1.channel = c1\n",
                out.display()
            ),
        );
        let millrace = AgentProcess::start("a1", &conf, &[]);
        wait_for(Duration::from_secs(30), "the avro source to listen", || {
            port_open(avro_port)
        });

        let http_port = free_port();
        let _java = FlumeAgent::start(
            "j1",
            &format!(
                "j1.sources = r1\nj1.channels = c1\nj1.sinks = k1\n\
                 j1.sources.r1.type = http\nj1.sources.r1.bind = 127.0.0.1\n\
                 j1.sources.r1.port = {http_port}\nj1.sources.r1.channels = c1\n\
                 j1.channels.c1.type = memory\nj1.channels.c1.capacity = 10000\nj1.channels.c1.transactionCapacity = 1000\n\
                 j1.sinks.k1.type = avro\nj1.sinks.k1.hostname = 127.0.0.1\n\
                 j1.sinks.k1.port = {avro_port}\nj1.sinks.k1.batch-size = 64\n\
                 j1.sinks.k1.compression-type = {compression}\nj1.sinks.k1.channel = c1\n"
            ),
        );
        wait_for(Duration::from_secs(60), "Flume's http source", || {
            port_open(http_port)
        });
        let sent = events(compression);
        let (status, body) = http_post(http_port, "/", &as_json(&sent)).expect("Flume answers");
        assert_eq!(status, 200, "{body}");
        wait_for(
            Duration::from_secs(60),
            "every event through Java Flume's avro sink",
            || read_lines(&out).len() >= EVENTS,
        );
        assert_eq!(received(&out), sent, "compression-type = {compression}");
        drop(millrace);
    }
}

#[test]
fn millrace_avro_sink_to_java_flume_avro_source() {
    for compression in ["none", "deflate"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("java-out");
        std::fs::create_dir_all(&out).unwrap();
        let avro_port = free_port();
        let _java = FlumeAgent::start(
            "j1",
            &format!(
                "j1.sources = r1\nj1.channels = c1\nj1.sinks = k1\n\
                 j1.sources.r1.type = avro\nj1.sources.r1.bind = 127.0.0.1\n\
                 j1.sources.r1.port = {avro_port}\nj1.sources.r1.compression-type = {compression}\n\
                 j1.sources.r1.channels = c1\nj1.channels.c1.type = memory\n\
                 j1.sinks.k1.type = file_roll\nj1.sinks.k1.sink.directory = {}\n\
                 j1.sinks.k1.sink.rollInterval = 0\nj1.sinks.k1.sink.serializer = header_and_text\n\
                 j1.sinks.k1.channel = c1\n",
                out.display()
            ),
        );
        wait_for(Duration::from_secs(60), "Flume's avro source", || {
            port_open(avro_port)
        });

        let http_port = free_port();
        let conf = write_conf(
            dir.path(),
            &format!(
                "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
                 a1.sources.r1.type = http\na1.sources.r1.bind = 127.0.0.1\n\
                 a1.sources.r1.port = {http_port}\na1.sources.r1.channels = c1\n\
                 a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\na1.channels.c1.transactionCapacity = 1000\n\
                 a1.sinks.k1.type = avro\na1.sinks.k1.hostname = 127.0.0.1\n\
                 a1.sinks.k1.port = {avro_port}\na1.sinks.k1.batch-size = 64\n\
                 a1.sinks.k1.compression-type = {compression}\na1.sinks.k1.channel = c1\n"
            ),
        );
        let millrace = AgentProcess::start("a1", &conf, &[]);
        wait_for(Duration::from_secs(30), "millrace's http source", || {
            port_open(http_port)
        });
        let sent = events(compression);
        let (status, body) = http_post(http_port, "/", &as_json(&sent)).expect("millrace answers");
        assert_eq!(status, 200, "{body}");
        wait_for(
            Duration::from_secs(60),
            "every event in Java Flume's file_roll output",
            || read_lines(&out).len() >= EVENTS,
        );
        assert_eq!(
            received(&out),
            sent,
            "compression-type = {compression}; millrace log:\n{}",
            millrace.log_text()
        );
    }
}

#[test]
fn java_flume_feeds_the_query_server_over_avro() {
    let dir = tempfile::tempdir().unwrap();
    let avro_port = free_port();
    let store = dir.path().join("store");
    let server = QueryServer::start(
        dir.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "--avro-bind",
            &format!("127.0.0.1:{avro_port}"),
            "--avro-compression",
            "deflate",
        ],
    );
    let http_port = free_port();
    let _java = FlumeAgent::start(
        "j1",
        &format!(
            "j1.sources = r1\nj1.channels = c1\nj1.sinks = k1\n\
             j1.sources.r1.type = http\nj1.sources.r1.bind = 127.0.0.1\n\
             j1.sources.r1.port = {http_port}\nj1.sources.r1.channels = c1\n\
             j1.channels.c1.type = memory\nj1.channels.c1.capacity = 10000\n\
             j1.channels.c1.transactionCapacity = 1000\n\
             j1.sinks.k1.type = avro\nj1.sinks.k1.hostname = 127.0.0.1\n\
             j1.sinks.k1.port = {avro_port}\nj1.sinks.k1.batch-size = 64\n\
             j1.sinks.k1.compression-type = deflate\nj1.sinks.k1.channel = c1\n"
        ),
    );
    wait_for(Duration::from_secs(60), "Flume's http source", || {
        port_open(http_port)
    });
    let sent: Expected = (0..200)
        .map(|i| {
            let mut h = BTreeMap::new();
            h.insert("host".to_string(), "java-edge-1".to_string());
            h.insert("n".to_string(), i.to_string());
            let level = if i % 4 == 0 { "ERROR" } else { "INFO" };
            (h, format!("{level} payment {i} declined: café crème"))
        })
        .collect();
    let (status, body) = http_post(http_port, "/", &as_json(&sent)).expect("Flume answers");
    assert_eq!(status, 200, "{body}");

    let search = |q: &str| -> serde_json::Value {
        let (status, body) = http_get(server.port, q).expect("the query server answers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    wait_for(Duration::from_secs(60), "200 events in the store", || {
        search("/api/v1/events?host=java-edge-1&limit=1000")["events"]
            .as_array()
            .is_some_and(|a| a.len() == 200)
    });
    let errors = search("/api/v1/events?host=java-edge-1&level=ERROR&q=declined&limit=1000");
    let errors = errors["events"].as_array().unwrap();
    assert_eq!(errors.len(), 50);
    for e in errors {
        let n: usize = e["headers"]["n"].as_str().unwrap().parse().unwrap();
        assert_eq!(e["body"].as_str().unwrap(), sent[n].1);
        assert_eq!(e["headers"]["host"], "java-edge-1");
    }
}
