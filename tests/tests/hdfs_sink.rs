//! The HDFS sink through the agent binary, against the real MiniDFSCluster that
//! millrace-testkit starts. Contents are read back with Hadoop's own FsShell
//! (`-cat`, `-text`), so the files are what Hadoop tools expect, not what millrace
//! thinks it wrote.

mod common;

use common::hdfs::*;
use millrace_e2e::*;
use millrace_testkit::{port_open, Hdfs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU16;
use std::sync::Arc;
use std::time::Duration;

fn write_conf(dir: &Path, text: &str) -> PathBuf {
    let conf = dir.join("agent.conf");
    std::fs::write(&conf, text).unwrap();
    conf
}

fn monitoring(port: u16) -> [String; 2] {
    [
        "-Dflume.monitoring.type=http".to_string(),
        format!("-Dflume.monitoring.port={port}"),
    ]
}

fn start_agent(conf: &Path, mon: u16) -> AgentProcess {
    let args = monitoring(mon);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    AgentProcess::start("a1", conf, &args)
}

fn drained(mon: u16, sink: &str) -> u64 {
    metrics(mon)
        .map(|m| counter(&m, &format!("SINK.{sink}"), "EventDrainSuccessCount"))
        .unwrap_or(0)
}

fn text(bytes: Vec<u8>) -> Vec<String> {
    String::from_utf8(bytes)
        .expect("UTF-8 output")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Hadoop's `BytesWritable.toString()`: lower-case hex bytes separated by spaces.
fn bytes_writable(s: &str) -> String {
    s.bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_file_type_reads_back_with_hadoops_own_tools() {
    const N: u64 = 100_000;
    let hdfs = Hdfs::start();
    let url = hdfs.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mon = free_port();
    let sink = |k: &str, c: &str, sub: &str, extra: &str| {
        format!(
            "a1.sinks.{k}.type = hdfs\na1.sinks.{k}.channel = {c}\n\
             a1.sinks.{k}.hdfs.path = {url}/out/{sub}\n\
             a1.sinks.{k}.hdfs.rollCount = 30000\na1.sinks.{k}.hdfs.rollSize = 0\n\
             a1.sinks.{k}.hdfs.rollInterval = 0\na1.sinks.{k}.hdfs.batchSize = 1000\n{extra}"
        )
    };
    let mut conf = String::from(
        "a1.sources = r1\na1.channels = c1 c2 c3 c4 c5\na1.sinks = k1 k2 k3 k4 k5\n\
         a1.sources.r1.type = seq\na1.sources.r1.batchSize = 1000\n",
    );
    conf.push_str(&format!("a1.sources.r1.totalEvents = {N}\n"));
    conf.push_str("a1.sources.r1.channels = c1 c2 c3 c4 c5\n");
    for c in ["c1", "c2", "c3", "c4", "c5"] {
        conf.push_str(&format!(
            "a1.channels.{c}.type = memory\na1.channels.{c}.capacity = 200000\n\
             a1.channels.{c}.transactionCapacity = 1000\n"
        ));
    }
    conf.push_str(&sink(
        "k1",
        "c1",
        "stream",
        "a1.sinks.k1.hdfs.fileType = DataStream\n",
    ));
    conf.push_str(&sink("k2", "c2", "seq-writable", ""));
    conf.push_str(&sink(
        "k3",
        "c3",
        "seq-text-gzip",
        "a1.sinks.k3.hdfs.writeFormat = Text\na1.sinks.k3.hdfs.codeC = gzip\n",
    ));
    conf.push_str(&sink(
        "k4",
        "c4",
        "gz",
        "a1.sinks.k4.hdfs.fileType = CompressedStream\na1.sinks.k4.hdfs.codeC = gzip\n",
    ));
    conf.push_str(&sink(
        "k5",
        "c5",
        "avro",
        "a1.sinks.k5.hdfs.fileType = DataStream\na1.sinks.k5.serializer = AVRO_EVENT\n\
         a1.sinks.k5.hdfs.fileSuffix = .avro\n",
    ));
    let conf = write_conf(dir.path(), &conf);
    let mut agent = start_agent(&conf, mon);
    wait_for(
        Duration::from_secs(120),
        "every sink to drain 100,000 events",
        || {
            ["k1", "k2", "k3", "k4", "k5"]
                .iter()
                .all(|k| drained(mon, k) >= N)
        },
    );
    assert!(agent.terminate(Duration::from_secs(60)).success());
    assert!(
        in_use(&url, "/out").is_empty(),
        "in-use files left after stop: {:?}",
        in_use(&url, "/out")
    );

    let expected: Vec<String> = (0..N).map(|n| n.to_string()).collect();
    let files = |sub: &str| by_counter(list_files(&url, &format!("/out/{sub}")));
    // One FsShell run per kind: it prints the files in the order given.
    let read = |cmd: &str, files: &[String]| -> Vec<String> {
        let mut args = vec![cmd];
        args.extend(files.iter().map(String::as_str));
        text(hdfs.shell(&args))
    };

    // DataStream: the lines themselves, four files of 30,000 and one of 10,000.
    let stream = files("stream");
    assert_eq!(stream.len(), 4, "{stream:?}");
    for f in &stream {
        let name = base(f);
        assert!(
            name.starts_with("FlumeData.") && name[10..].parse::<u64>().is_ok(),
            "{name}"
        );
    }
    assert_eq!(read("-cat", &stream), expected);

    // SequenceFile, Writable: LongWritable key, BytesWritable value.
    let seq = files("seq-writable");
    assert_eq!(seq.len(), 4, "{seq:?}");
    let got = read("-text", &seq);
    assert_eq!(got.len() as u64, N);
    for (line, want) in got.iter().zip(&expected) {
        let (key, value) = line.split_once('\t').expect("key TAB value");
        assert!(key.parse::<i64>().is_ok(), "key {key}");
        assert_eq!(value, bytes_writable(want));
    }

    // SequenceFile, Text, block-compressed with gzip.
    let seq = files("seq-text-gzip");
    assert!(seq.iter().all(|f| f.ends_with(".gz")), "{seq:?}");
    let got: Vec<String> = read("-text", &seq)
        .into_iter()
        .map(|l| l.split_once('\t').expect("key TAB value").1.to_string())
        .collect();
    assert_eq!(got, expected);

    // CompressedStream gzip: Hadoop picks the codec from the .gz extension.
    let gz = files("gz");
    assert!(gz.iter().all(|f| f.ends_with(".gz")), "{gz:?}");
    assert_eq!(read("-text", &gz), expected);

    // AVRO_EVENT: Hadoop's -text prints each Avro record as JSON.
    let avro = files("avro");
    assert!(avro.iter().all(|f| f.ends_with(".avro")), "{avro:?}");
    let got = read("-text", &avro);
    assert_eq!(got.len() as u64, N);
    assert_eq!(got[0], r#"{"headers":{},"body":"0"}"#);
    assert_eq!(got[99_999], r#"{"headers":{},"body":"99999"}"#);
}

/// An HTTP source routing by a `to` header to one channel and hdfs sink per case.
fn routed_agent(dir: &Path, url: &str, http: u16, sinks: &[(&str, &str)]) -> PathBuf {
    let names: Vec<&str> = sinks.iter().map(|(k, _)| *k).collect();
    let chans: Vec<String> = names.iter().map(|k| format!("c{k}")).collect();
    let mut conf = format!(
        "a1.sources = r1\na1.channels = {}\na1.sinks = {}\n\
         a1.sources.r1.type = http\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {http}\n\
         a1.sources.r1.channels = {}\n\
         a1.sources.r1.selector.type = multiplexing\na1.sources.r1.selector.header = to\n",
        chans.join(" "),
        names.join(" "),
        chans.join(" ")
    );
    for (k, extra) in sinks {
        conf.push_str(&format!(
            "a1.sources.r1.selector.mapping.{k} = c{k}\n\
             a1.channels.c{k}.type = memory\na1.channels.c{k}.capacity = 10000\n\
             a1.channels.c{k}.transactionCapacity = 1000\n\
             a1.sinks.{k}.type = hdfs\na1.sinks.{k}.channel = c{k}\n\
             a1.sinks.{k}.hdfs.fileType = DataStream\na1.sinks.{k}.hdfs.batchSize = 1000\n\
             a1.sinks.{k}.hdfs.rollSize = 0\na1.sinks.{k}.hdfs.rollCount = 0\n\
             a1.sinks.{k}.hdfs.rollInterval = 0\n"
        ));
        for line in extra.lines() {
            conf.push_str(&format!("a1.sinks.{k}.{}\n", line.replace("URL", url)));
        }
    }
    write_conf(dir, &conf)
}

fn post_events(http: u16, events: Vec<serde_json::Value>) {
    let (status, body) =
        http_post(http, "/", &serde_json::to_vec(&events).unwrap()).expect("the agent answers");
    assert_eq!(status, 200, "{body}");
}

fn numbered(to: &str, range: std::ops::Range<u64>, body_len: usize) -> Vec<serde_json::Value> {
    range
        .map(|n| {
            serde_json::json!({
                "headers": {"to": to},
                "body": format!("{n:0>width$}", width = body_len),
            })
        })
        .collect()
}

/// Epoch ms of a UTC civil time.
fn utc_ms(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h as i64) * 60 + mi as i64) * 60_000 + s as i64 * 1000
}

#[test]
fn rolling_and_escapes_put_events_in_the_expected_files() {
    let hdfs = Hdfs::start();
    let url = hdfs.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let mon = free_port();
    let conf = routed_agent(
        dir.path(),
        &url,
        http,
        &[
            ("count", "hdfs.path = URL/roll/count\nhdfs.rollCount = 100"),
            ("size", "hdfs.path = URL/roll/size\nhdfs.rollSize = 1000"),
            (
                "interval",
                "hdfs.path = URL/roll/interval\nhdfs.rollInterval = 2",
            ),
            ("idle", "hdfs.path = URL/roll/idle\nhdfs.idleTimeout = 1"),
            (
                "esc",
                "hdfs.path = URL/esc/%{app}/%Y-%m-%d/%H%M\nhdfs.filePrefix = ev-%{app}\n\
                 hdfs.round = true\nhdfs.roundValue = 10\nhdfs.roundUnit = minute\n\
                 hdfs.timeZone = UTC",
            ),
        ],
    );
    let mut agent = start_agent(&conf, mon);
    wait_for(Duration::from_secs(60), "the http source", || {
        port_open(http)
    });

    // rollCount 100: 1,000 events make ten files of 100 lines.
    post_events(http, numbered("count", 0..1000, 1));
    // rollSize 1000 with 100-byte bodies: a new file every 10 events.
    post_events(http, numbered("size", 0..200, 100));
    // rollInterval 2 s: a file is closed while the agent runs, the next batch opens
    // another.
    post_events(http, numbered("interval", 0..10, 1));
    wait_for(
        Duration::from_secs(30),
        "the interval file to close",
        || {
            let f = list_files(&url, "/roll/interval");
            f.len() == 1 && !f[0].ends_with(".tmp")
        },
    );
    post_events(http, numbered("interval", 10..20, 1));
    // idleTimeout 1 s: closed once nothing is written for a second.
    post_events(http, numbered("idle", 0..10, 1));
    wait_for(Duration::from_secs(30), "the idle file to close", || {
        let f = list_files(&url, "/roll/idle");
        f.len() == 1 && !f[0].ends_with(".tmp")
    });
    // Escapes: 11:54:34 rounds down to 1150, 12:05:00 to 1200.
    let t1 = utc_ms(2012, 6, 12, 11, 54, 34);
    let t2 = utc_ms(2012, 6, 12, 12, 5, 0);
    // The last has no `app`: its empty segment is dropped, as Hadoop's Path does.
    let esc: Vec<serde_json::Value> = [("web", t1), ("web", t2), ("db", t1), ("web", t1), ("", t1)]
        .iter()
        .enumerate()
        .map(|(i, (app, t))| {
            let mut headers = serde_json::json!({"to": "esc", "timestamp": t.to_string()});
            if !app.is_empty() {
                headers["app"] = serde_json::json!(app);
            }
            serde_json::json!({"headers": headers, "body": format!("e{i}")})
        })
        .collect();
    post_events(http, esc);
    wait_for(Duration::from_secs(60), "every event drained", || {
        drained(mon, "count") == 1000
            && drained(mon, "size") == 200
            && drained(mon, "interval") == 20
            && drained(mon, "idle") == 10
            && drained(mon, "esc") == 5
    });
    assert!(agent.terminate(Duration::from_secs(60)).success());
    assert!(in_use(&url, "/").is_empty(), "{:?}", in_use(&url, "/"));

    let count = by_counter(list_files(&url, "/roll/count"));
    assert_eq!(count.len(), 10, "{count:?}");
    for f in &count {
        assert_eq!(text(hdfs.shell(&["-cat", f])).len(), 100, "{f}");
    }
    let size = list_files(&url, "/roll/size");
    assert_eq!(size.len(), 20, "{size:?}");
    assert_eq!(list_files(&url, "/roll/interval").len(), 2);
    assert_eq!(list_files(&url, "/roll/idle").len(), 1);

    let esc = list_files(&url, "/esc");
    let dirs: Vec<(String, String)> = esc
        .iter()
        .map(|f| {
            let (d, name) = f.rsplit_once('/').unwrap();
            let prefix = name.rsplit_once('.').unwrap().0.to_string();
            (d.to_string(), prefix)
        })
        .collect();
    assert_eq!(
        dirs,
        vec![
            ("/esc/2012-06-12/1150".to_string(), "ev-".to_string()),
            ("/esc/db/2012-06-12/1150".to_string(), "ev-db".to_string()),
            ("/esc/web/2012-06-12/1150".to_string(), "ev-web".to_string()),
            ("/esc/web/2012-06-12/1200".to_string(), "ev-web".to_string()),
        ]
    );
    assert_eq!(text(hdfs.shell(&["-cat", &esc[0]])), vec!["e4"]);
    assert_eq!(text(hdfs.shell(&["-cat", &esc[2]])), vec!["e0", "e3"]);
    assert_eq!(text(hdfs.shell(&["-cat", &esc[3]])), vec!["e1"]);
}

#[test]
fn hdfs_restart_and_agent_crash_lose_nothing_and_leave_no_tmp() {
    let mut hdfs = Hdfs::start();
    let url = hdfs.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let nc = free_port();
    let mon = free_port();
    let conf = write_conf(
        dir.path(),
        &format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {nc}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {cp}\n\
             a1.channels.c1.dataDirs = {data}\n\
             a1.sinks.k1.type = hdfs\na1.sinks.k1.channel = c1\n\
             a1.sinks.k1.hdfs.path = {url}/crash\na1.sinks.k1.hdfs.fileType = DataStream\n\
             a1.sinks.k1.hdfs.rollCount = 2000\na1.sinks.k1.hdfs.rollSize = 0\n\
             a1.sinks.k1.hdfs.rollInterval = 0\na1.sinks.k1.hdfs.batchSize = 100\n\
             a1.sinks.k1.hdfs.callTimeout = 5000\na1.sinks.k1.hdfs.retryInterval = 1\n",
            cp = dir.path().join("cp").display(),
            data = dir.path().join("data").display(),
        ),
    );
    let mut agent = start_agent(&conf, mon);
    wait_for(Duration::from_secs(60), "the netcat source", || {
        port_open(nc)
    });
    let sender = Sender::start(Arc::new(AtomicU16::new(nc)));
    let wait_acked = |n: u64, sender: &Sender| {
        wait_for(Duration::from_secs(120), "acknowledged lines", || {
            sender.acked() >= n
        })
    };

    // The namenode and datanode go away and come back mid-stream.
    wait_acked(2_500, &sender);
    hdfs.restart_after(Duration::from_secs(1));
    let after_restart = sender.acked();
    wait_acked(after_restart + 2_500, &sender);
    wait_for(Duration::from_secs(120), "the sink to write again", || {
        drained(mon, "k1") >= after_restart
    });

    // The agent is killed with a file open; the next start recovers that file.
    agent.signal(libc::SIGKILL);
    let _ = agent.child.wait();
    let first_run = agent.log_text();
    assert!(
        !in_use(&url, "/crash").is_empty(),
        "the kill left no open file to recover"
    );
    let mut agent = start_agent(&conf, mon);
    let killed_at = sender.acked();
    wait_acked(killed_at + 2_500, &sender);
    let sent = sender.finish();

    wait_for(Duration::from_secs(120), "the channel to drain", || {
        metrics(mon).is_some_and(|m| counter(&m, "CHANNEL.c1", "ChannelSize") == 0)
    });
    // Files given up during the outage or left by the kill are closed and renamed by
    // the running sink. A recovery asked for before the restarted datanode reported
    // its blocks stalls for the namenode's block recovery timeout (90 s), hence the
    // deadline; the files the sink is writing stay open until it stops.
    let still_open = || {
        let open = in_use(&url, "/crash");
        let held: Vec<String> = agent
            .log_text()
            .lines()
            .filter(|l| {
                l.contains("recovering a file left open") || l.contains("will be recovered")
            })
            .filter_map(|l| l.split("file=").nth(1)?.split_whitespace().next())
            .map(str::to_string)
            .collect();
        open.into_iter()
            .filter(|f| held.iter().any(|h| h.ends_with(f.as_str())))
            .count()
    };
    wait_for(
        Duration::from_secs(180),
        "files given up to be recovered",
        || still_open() == 0,
    );
    assert!(agent.terminate(Duration::from_secs(60)).success());
    assert!(
        in_use(&url, "/crash").is_empty(),
        "in-use files left after stop: {:?}\nfirst run:\n{first_run}\nsecond run:\n{}",
        in_use(&url, "/crash"),
        agent.log_text()
    );
    let lines = text(hdfs.shell(&["-cat", "/crash/*"]));
    let (got, duplicates) = distinct_and_duplicates(&lines);
    let missing: Vec<u64> = sent.difference(&got).copied().collect();
    println!(
        "sent {}, stored {} lines, {duplicates} duplicates",
        sent.len(),
        lines.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged lines missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
