//! The templates in configs/ that write to HDFS (and Kafka), each run end to end
//! against one real MiniDFSCluster and one real Kafka broker, in sequence: what each
//! template's header promises arrives where it says.

mod common;

use common::hdfs::*;
use common::kafka::*;
use millrace_e2e::*;
use millrace_testkit::{port_open, Hdfs, Kafka};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Env {
    hdfs: Hdfs,
    kafka: Kafka,
    work: tempfile::TempDir,
}

impl Env {
    /// The template with the namenode, brokers, ports and system directories moved
    /// to this test's, as a user adapting it would.
    fn adapt(&self, template: &str, ports: &[(&str, u16)]) -> PathBuf {
        let root = self.work.path();
        let mut text = std::fs::read_to_string(repo_path(template))
            .unwrap()
            .replace("hdfs://127.0.0.1:8020", self.hdfs.url())
            .replace("127.0.0.1:9092", &self.kafka.bootstrap())
            .replace("/var/spool/millrace", &format!("{}/spool", root.display()))
            .replace("/var/lib/millrace", &format!("{}/lib", root.display()));
        for (from, to) in ports {
            text = text.replace(from, &to.to_string());
        }
        let name = Path::new(template).file_name().unwrap();
        let path = root.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, name: &str, conf: &Path, mon: u16) -> AgentProcess {
        let args = [
            "-Dflume.monitoring.type=http".to_string(),
            format!("-Dflume.monitoring.port={mon}"),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        AgentProcess::start_in(self.work.path(), name, conf, &args)
    }

    fn hdfs_lines(&self, cmd: &str, dir: &str) -> Vec<String> {
        let files = list_files(self.hdfs.url(), dir);
        assert!(!files.is_empty(), "no files under {dir}");
        assert!(
            files.iter().all(|f| !f.ends_with(".tmp")),
            "in-use files left: {files:?}"
        );
        let mut args = vec![cmd];
        args.extend(files.iter().map(String::as_str));
        String::from_utf8(self.hdfs.shell(&args))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn drained(mon: u16, sink: &str) -> u64 {
    metrics(mon)
        .map(|m| counter(&m, &format!("SINK.{sink}"), "EventDrainSuccessCount"))
        .unwrap_or(0)
}

fn wait_drained(agent: &AgentProcess, mon: u16, sink: &str, n: u64) {
    let end = std::time::Instant::now() + Duration::from_secs(120);
    while drained(mon, sink) < n {
        assert!(
            std::time::Instant::now() < end,
            "sink {sink} drained {} of {n}; agent log:\n{}",
            drained(mon, sink),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hdfs_and_kafka_templates_deliver_what_they_promise() {
    let env = Env {
        hdfs: Hdfs::start(),
        kafka: Kafka::start(),
        work: tempfile::tempdir().unwrap(),
    };
    create_topics(&env.kafka, &[("logs", 3), ("collected", 1), ("errors", 1)]);
    let samples = copy_sample_logs(env.work.path()) as u64;

    // spooldir -> file -> hdfs (CompressedStream gzip).
    let mon = free_port();
    let conf = env.adapt("configs/spooldir-file-hdfs.conf", &[]);
    let incoming = env.work.path().join("spool/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let lines: Vec<String> = (0..500).map(|i| format!("archived {i}")).collect();
    let staged = env.work.path().join("batch.log");
    std::fs::write(&staged, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&staged, incoming.join("batch.log")).unwrap();
    let mut agent = env.run("archive", &conf, mon);
    wait_drained(&agent, mon, "hdfs", 500);
    assert!(agent.terminate(Duration::from_secs(60)).success());
    assert!(incoming.join("batch.log.COMPLETED").exists());
    let got = env.hdfs_lines("-text", "/flume/archive");
    assert_eq!(got, lines);
    assert!(list_files(env.hdfs.url(), "/flume/archive")
        .iter()
        .all(|f| f.ends_with(".gz")));

    // taildir -> replicating -> {file -> hdfs, memory -> kafka}.
    let mon = free_port();
    let conf = env.adapt("configs/taildir-hdfs-kafka.conf", &[]);
    let mut agent = env.run("tee", &conf, mon);
    wait_drained(&agent, mon, "hdfs", samples);
    consume(&env.kafka, "logs", samples as usize);
    assert!(agent.terminate(Duration::from_secs(60)).success());
    assert_eq!(env.hdfs_lines("-cat", "/flume/logs").len() as u64, samples);

    // edge (taildir -> avro load_balance) -> collector (avro -> file -> hdfs + kafka).
    let port = free_port();
    let mon = free_port();
    let collector_conf = env.adapt("configs/avro-collector-hdfs-kafka.conf", &[("4141", port)]);
    // Both of the edge's avro sinks point at the one collector.
    let edge_conf = env.adapt("configs/avro-edge.conf", &[("4141", port), ("4142", port)]);
    let mut collector = env.run("collector", &collector_conf, mon);
    wait_for(
        Duration::from_secs(60),
        "the collector's avro source",
        || port_open(port),
    );
    let mut edge = AgentProcess::start_in(env.work.path(), "edge", &edge_conf, &[]);
    wait_drained(&collector, mon, "hdfs", samples);
    let got = consume(&env.kafka, "collected", samples as usize);
    assert!(got.iter().all(|r| !r.payload.is_empty()));
    assert!(edge.terminate(Duration::from_secs(60)).success());
    assert!(collector.terminate(Duration::from_secs(60)).success());
    let seq = env.hdfs_lines("-text", "/flume/collected");
    assert_eq!(seq.len() as u64, samples);
    // Text SequenceFile: `timestamp TAB line`.
    assert!(seq.iter().all(|l| l
        .split_once('\t')
        .is_some_and(|(k, _)| k.parse::<i64>().is_ok())));

    // Multiplexing by level: ERROR to Kafka, the rest to HDFS under their level.
    let mon = free_port();
    let conf = env.adapt("configs/level-routing-kafka-hdfs.conf", &[]);
    let mut total = 0u64;
    let mut errors = 0u64;
    for f in ["app.log", "payments.log"] {
        let text = std::fs::read_to_string(repo_path("samples/logs").join(f)).unwrap();
        for l in text.lines() {
            total += 1;
            errors += (l.split_whitespace().nth(2) == Some("ERROR")) as u64;
        }
    }
    assert!(errors > 0 && errors < total);
    let mut agent = env.run("router", &conf, mon);
    wait_drained(&agent, mon, "archive", total - errors);
    let alerts = consume(&env.kafka, "errors", errors as usize);
    assert!(alerts
        .iter()
        .all(|r| String::from_utf8_lossy(&r.payload).contains(" ERROR ")));
    assert!(agent.terminate(Duration::from_secs(60)).success());
    let rest = env.hdfs_lines("-cat", "/flume/levels");
    assert_eq!(rest.len() as u64, total - errors);
    let dirs: std::collections::BTreeSet<String> = list_files(env.hdfs.url(), "/flume/levels")
        .iter()
        .map(|f| f.split('/').nth(3).unwrap().to_string())
        .collect();
    assert!(
        dirs.contains("INFO") && dirs.contains("WARN") && !dirs.contains("ERROR"),
        "{dirs:?}"
    );

    // Kafka -> file -> hdfs: the records the tee template sent to `logs`.
    let mon = free_port();
    let conf = env.adapt("configs/kafka-file-hdfs.conf", &[]);
    let mut agent = env.run("archiver", &conf, mon);
    wait_drained(&agent, mon, "hdfs", samples);
    assert!(agent.terminate(Duration::from_secs(60)).success());
    let archived = env.hdfs_lines("-text", "/flume/kafka/logs");
    assert_eq!(archived.len() as u64, samples);
}
