//! `millrace-agent avro-client` sends a file's lines, with headers from a properties
//! file, to an avro source; an unreachable source is a clear error and exit status 1.

use millrace_e2e::*;
use millrace_testkit::port_open;
use std::process::Command;
use std::time::Duration;

#[test]
fn avro_client_sends_every_line_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let conf = dir.path().join("a.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {port}\n\
             a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.serializer = HEADER_AND_TEXT\n\
             a1.sinks.k1.channel = c1\n",
            out.display()
        ),
    )
    .unwrap();
    let agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the avro source", || {
        port_open(port)
    });

    let input = dir.path().join("lines.txt");
    let lines: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let headers = dir.path().join("headers.properties");
    std::fs::write(
        &headers,
        "# sent by the test\ndc = eu-west\nteam=payments\n",
    )
    .unwrap();
    let run = Command::new(bin("millrace-agent"))
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(&input)
        .arg("-R")
        .arg(&headers)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("sent 250 events"));
    wait_for(Duration::from_secs(30), "250 lines out", || {
        read_lines(&out).len() >= 250
    });
    let got = read_lines(&out);
    let expected: Vec<String> = lines
        .iter()
        .map(|l| format!("{{dc=eu-west, team=payments}} {l}"))
        .collect();
    assert_eq!(got, expected, "{}", agent.log_text());

    let closed = free_port();
    let run = Command::new(bin("millrace-agent"))
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &closed.to_string(),
            "-F",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("cannot connect") && err.contains(&closed.to_string()),
        "{err}"
    );
}
