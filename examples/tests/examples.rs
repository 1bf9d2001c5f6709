//! Runs each example program and checks what it delivered, so the examples keep
//! compiling and keep working. `cargo test` builds the examples before it runs these
//! tests; `cargo test -p millrace-examples --test examples` alone does not, so build
//! them first in that case (`cargo build -p millrace-examples --examples`).

use millrace_testkit::{wait_until, Kafka};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, next to the `deps/` directory this test runs
/// from.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test -p millrace-examples` (which builds the examples) or `cargo build -p millrace-examples --examples`",
        path.display()
    );
    path
}

/// A running example, stopped (SIGTERM, then SIGKILL) when dropped, also when the
/// test fails.
struct Running {
    name: String,
    child: Child,
}

impl Running {
    fn start(name: &str, args: &[&str]) -> Running {
        let child = Command::new(example(name))
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        Running {
            name: name.into(),
            child,
        }
    }

    /// Waits for the program to exit by itself; kills it after `deadline`.
    fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the example") {
                return status;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!("example {} did not finish within {deadline:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the program to stop as an operator would (SIGTERM) and waits for it.
    fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.wait(deadline)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn custom_sink_writes_every_event_to_both_sinks() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let status = Running::start("custom_sink", &[dir, "2500"]).wait(Duration::from_secs(90));
    assert!(status.success(), "custom_sink exited with {status}");

    let numbered = std::fs::read_to_string(out.path().join("numbered.txt")).unwrap();
    let lines: Vec<&str> = numbered.lines().collect();
    assert_eq!(lines.len(), 2500);
    assert_eq!(lines[0], "1: 0");
    assert_eq!(lines[2499], "2500: 2499");

    let mut rolled: Vec<u64> = Vec::new();
    for f in std::fs::read_dir(out.path().join("rolled")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        rolled.extend(text.lines().map(|l| l.parse::<u64>().unwrap()));
    }
    rolled.sort_unstable();
    assert_eq!(rolled, (0..2500).collect::<Vec<u64>>());
}

fn kafka_client(kafka: &Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.bootstrap())
        .set("broker.address.family", "v4");
    c
}

fn create_topics(kafka: &Kafka, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = kafka_client(kafka).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    let made = rt
        .block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    for r in made {
        assert!(r.is_ok(), "{r:?}");
    }
}

/// Reads `topic` from the start until `n` records arrived; (key, value) pairs.
fn consume(kafka: &Kafka, topic: &str, n: usize) -> Vec<(String, String)> {
    let consumer: BaseConsumer = kafka_client(kafka)
        .set("group.id", format!("check-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    wait_until(
        Duration::from_secs(120),
        &format!("{n} records in {topic}"),
        || {
            while let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.expect("a record");
                let text =
                    |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                got.push((text(m.key()), text(m.payload())));
            }
            got.len() >= n
        },
    );
    got
}

#[test]
fn taildir_kafka_routes_lines_by_level_and_drops_debug() {
    let kafka = Kafka::start();
    create_topics(&kafka, &["app", "app-errors"]);
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    let mut file = std::fs::File::create(&log).unwrap();
    writeln!(file, "2026-01-01 10:00:00 INFO started").unwrap();
    writeln!(file, "2026-01-01 10:00:01 DEBUG cache warm").unwrap();
    writeln!(file, "2026-01-01 10:00:02 ERROR payment 42 declined").unwrap();
    file.flush().unwrap();

    let position = work.path().join("position.json");
    let mut agent = Running::start(
        "taildir_kafka",
        &[
            logs.to_str().unwrap(),
            position.to_str().unwrap(),
            &kafka.bootstrap(),
            "app",
        ],
    );
    // Lines written while it runs are followed too.
    writeln!(file, "2026-01-01 10:00:03 DEBUG retry 1").unwrap();
    writeln!(file, "2026-01-01 10:00:04 WARN slow response").unwrap();
    writeln!(file, "2026-01-01 10:00:05 ERROR payment 43 declined").unwrap();
    file.flush().unwrap();

    let app = consume(&kafka, "app", 2);
    let errors = consume(&kafka, "app-errors", 2);
    let status = agent.terminate(Duration::from_secs(60));
    assert!(status.success(), "taildir_kafka exited with {status}");

    assert_eq!(
        app,
        [
            ("INFO".into(), "2026-01-01 10:00:00 INFO started".into()),
            (
                "WARN".into(),
                "2026-01-01 10:00:04 WARN slow response".into()
            ),
        ]
    );
    assert_eq!(
        errors,
        [
            (
                "ERROR".into(),
                "2026-01-01 10:00:02 ERROR payment 42 declined".into()
            ),
            (
                "ERROR".into(),
                "2026-01-01 10:00:05 ERROR payment 43 declined".into()
            ),
        ]
    );
    // The position file says every line was read: nothing is waiting to be sent.
    let positions = std::fs::read_to_string(&position).unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        positions.contains(&format!("\"pos\":{size}")),
        "{positions} (file size {size})"
    );
}
