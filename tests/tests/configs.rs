//! Every template in configs/ passes configtest and runs end to end.

use millrace_e2e::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn every_template_passes_configtest() {
    let dir = repo_path("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            // Templates with a `store` sink are for millrace-query-server, which hosts
            // the store and sets their `${millrace.*}` values; query_server.rs runs them.
            let text = std::fs::read_to_string(&path).unwrap();
            if text
                .lines()
                .any(|l| l.replace(' ', "").ends_with(".type=store"))
            {
                continue;
            }
            let out = Command::new(bin("millrace-agent"))
                .arg("configtest")
                .arg("-f")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} fails configtest:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} templates found in {}",
        dir.display()
    );
}

#[test]
fn sample_logs_template_routes_errors_and_the_rest() {
    // The template uses paths relative to the repository root, as the README runs it;
    // here it runs in a scratch copy of that layout.
    let work = tempfile::tempdir().unwrap();
    let samples = work.path().join("samples/logs");
    std::fs::create_dir_all(&samples).unwrap();
    let mut expected_errors = 0;
    let mut expected_total = 0;
    for f in ["app.log", "payments.log"] {
        let text = std::fs::read_to_string(repo_path("samples/logs").join(f)).unwrap();
        expected_total += text.lines().count();
        expected_errors += text
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("ERROR"))
            .count();
        std::fs::write(samples.join(f), text).unwrap();
    }
    assert!(expected_errors > 0);
    let mut child = Command::new(bin("millrace-agent"))
        .args(["agent", "-n", "a1", "-f"])
        .arg(repo_path("configs/sample-logs.conf"))
        .current_dir(work.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let errors = work.path().join("out/errors");
    let other = work.path().join("out/other");
    wait_for(Duration::from_secs(30), "every sample line written", || {
        read_lines(&errors).len() + read_lines(&other).len() == expected_total
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let e = read_lines(&errors);
    assert_eq!(e.len(), expected_errors);
    // HEADER_AND_TEXT: the extracted level and the interceptors' headers lead each line.
    assert!(
        e.iter().all(|l| l.starts_with("{host=")
            && l.contains("level=ERROR")
            && l.contains("timestamp=")),
        "{}",
        e[0]
    );
    assert!(read_lines(&other).iter().all(|l| !l.contains(" ERROR ")));
}

/// A template with its absolute paths moved under `root`, as a user adapting it does.
fn relocated(template: &str, root: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_path(template)).unwrap();
    let text = text
        .replace("/var/spool/millrace", &format!("{}/spool", root.display()))
        .replace("/var/lib/millrace", &format!("{}/lib", root.display()))
        .replace("/var/log/app", &format!("{}/log", root.display()))
        .replace("= 3600", "= 0");
    let path = root.join("agent.conf");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn spooldir_archive_template_reads_a_dropped_file() {
    let root = tempfile::tempdir().unwrap();
    let conf = relocated("configs/spooldir-file-archive.conf", root.path());
    let incoming = root.path().join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let lines: Vec<String> = (0..500).map(|i| format!("archived {i}")).collect();
    std::fs::write(root.path().join("batch.log"), lines.join("\n") + "\n").unwrap();
    std::fs::rename(root.path().join("batch.log"), incoming.join("batch.log")).unwrap();
    let mut agent = AgentProcess::start("archive", &conf, &[]);
    let out = root.path().join("lib/archive/out");
    wait_for(Duration::from_secs(30), "the dropped file archived", || {
        read_lines(&out) == lines
    });
    assert!(incoming.join("batch.log.COMPLETED").exists());
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn taildir_template_follows_a_growing_log() {
    let root = tempfile::tempdir().unwrap();
    let conf = relocated("configs/taildir-file.conf", root.path());
    let log_dir = root.path().join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(log_dir.join("app.log"), "first\n").unwrap();
    let mut agent = AgentProcess::start("tail", &conf, &[]);
    let out = root.path().join("lib/tail/out");
    wait_for(Duration::from_secs(30), "the first line", || {
        read_lines(&out).len() == 1
    });
    use std::io::Write;
    let mut f = std::fs::File::options()
        .append(true)
        .open(log_dir.join("app.log"))
        .unwrap();
    f.write_all(b"second\n").unwrap();
    wait_for(Duration::from_secs(30), "the appended line", || {
        read_lines(&out).len() == 2
    });
    let got = read_lines(&out);
    assert!(
        got[1].contains("service=checkout") && got[1].ends_with(" second"),
        "{got:?}"
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn avro_edge_and_collector_templates_carry_the_sample_logs() {
    // Both templates use paths relative to the repository root; they run in a scratch
    // copy of that layout, on free ports instead of 4141 and 4142.
    let work = tempfile::tempdir().unwrap();
    let expected = copy_sample_logs(work.path());
    let (p1, p2) = (free_port(), free_port());
    let ported = |template: &str, file: &str| {
        let text = std::fs::read_to_string(repo_path(template))
            .unwrap()
            .replace("4141", &p1.to_string())
            .replace("4142", &p2.to_string());
        let path = work.path().join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let collector_conf = ported("configs/avro-collector.conf", "collector.conf");
    let edge_conf = ported("configs/avro-edge.conf", "edge.conf");
    let collector = AgentProcess::start_in(work.path(), "collector", &collector_conf, &[]);
    wait_for(
        Duration::from_secs(30),
        "the collector's avro source",
        || millrace_testkit::port_open(p1),
    );
    // Only the first collector runs: the edge backs off from the second.
    let mut edge = AgentProcess::start_in(work.path(), "edge", &edge_conf, &[]);
    let out = work.path().join("out/collector");
    wait_for(
        Duration::from_secs(60),
        "every sample line at the collector",
        || read_lines(&out).len() >= expected,
    );
    let lines = read_lines(&out);
    assert_eq!(lines.len(), expected, "{}", collector.log_text());
    assert!(
        lines
            .iter()
            .all(|l| l.contains("file=") && l.contains("host=") && l.contains("timestamp=")),
        "{}",
        lines[0]
    );
    assert!(edge.terminate(Duration::from_secs(30)).success());
}

#[test]
fn flumes_single_node_example_answers_ok_and_logs_each_line() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = work.path().join("example.conf");
    let text = std::fs::read_to_string(repo_path("configs/example.conf"))
        .unwrap()
        .replace("44444", &port.to_string());
    std::fs::write(&conf, text).unwrap();
    let mut agent = AgentProcess::start("a1", &conf, &[]);
    wait_for(Duration::from_secs(30), "the netcat source", || {
        millrace_testkit::port_open(port)
    });
    use std::io::{BufRead, BufReader, Write};
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = sock.try_clone().unwrap();
    let mut r = BufReader::new(sock);
    for line in ["Hello world", "second line"] {
        w.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut ack = String::new();
        r.read_line(&mut ack).unwrap();
        assert_eq!(ack, "OK\n");
    }
    // The logger sink shows at most 16 body bytes, as Flume's does.
    wait_for(
        Duration::from_secs(30),
        "both events in the agent's log",
        || {
            let log = agent.log_text();
            log.contains("Hello world }") && log.contains("second line }")
        },
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
}
