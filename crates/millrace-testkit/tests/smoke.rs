//! Each real service comes up from the cached jars and does its basic job, talked to
//! by the same clients millrace uses: rdkafka for Kafka, hdfs-native for HDFS, and a
//! Flume agent's own output for Flume.

use millrace_testkit::{wait_until, FlumeAgent, Hdfs, Kafka};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_creates_a_topic_and_round_trips_a_record() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message};

    let kafka = Kafka::start();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", kafka.bootstrap())
        .set("broker.address.family", "v4");
    let admin: AdminClient<DefaultClientContext> = cfg.create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("smoke", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "create topic: {:?}", created[0]);

    let producer: FutureProducer = cfg.clone().set("acks", "all").create().unwrap();
    producer
        .send(
            FutureRecord::to("smoke").key("k").payload("hello kafka"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let consumer: BaseConsumer = cfg
        .clone()
        .set("group.id", "smoke")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["smoke"]).unwrap();
    let mut got = None;
    wait_until(
        Duration::from_secs(60),
        "the record back from Kafka",
        || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got = m.payload().map(|p| p.to_vec());
            }
            got.is_some()
        },
    );
    assert_eq!(got.unwrap(), b"hello kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdfs_writes_reads_and_deletes_a_file() {
    use hdfs_native::{ClientBuilder, WriteOptions};

    let hdfs = Hdfs::start();
    let client = ClientBuilder::new().with_url(hdfs.url()).build().unwrap();
    let body = bytes::Bytes::from_static(b"line one\nline two\n");
    let mut w = client
        .create(
            "/smoke/file.txt",
            WriteOptions::default().create_parent(true),
        )
        .await
        .unwrap();
    w.write_bytes(body.clone()).await.unwrap();
    w.close().await.unwrap();

    let mut r = client.read("/smoke/file.txt").await.unwrap();
    let read = r.read_bytes(r.file_length()).await.unwrap();
    assert_eq!(read, body);
    // Hadoop's own shell sees the same bytes.
    assert_eq!(hdfs.shell(&["-cat", "/smoke/file.txt"]), body.to_vec());

    assert!(client.delete("/smoke/file.txt", false).await.unwrap());
    assert!(client.get_file_info("/smoke/file.txt").await.is_err());
}

#[test]
fn flume_agent_runs_seq_memory_file_roll() {
    let out = tempfile::tempdir().unwrap();
    let agent = FlumeAgent::start(
        "a1",
        &format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 500\n\
             a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}\n\
             a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.channel = c1\n",
            out.path().display()
        ),
    );
    let lines = || -> Vec<String> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(out.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            all.extend(text.lines().map(str::to_string));
        }
        all
    };
    wait_until(Duration::from_secs(60), "500 lines from Flume", || {
        lines().len() >= 500
    });
    let got = lines();
    let expected: Vec<String> = (0..500).map(|n| n.to_string()).collect();
    assert_eq!(got, expected);
    let metrics = agent.metrics().expect("Flume's /metrics answers");
    assert!(metrics.contains("\"SINK.k1\""), "{metrics}");
}

#[test]
fn a_test_that_panics_leaves_no_service_behind() {
    let started = std::thread::spawn(|| {
        let mut agent = FlumeAgent::start(
            "a1",
            "a1.sources = r1\na1.channels = c1\na1.sources.r1.type = seq\n\
             a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n",
        );
        std::panic::panic_any(agent.service().pid());
    })
    .join()
    .expect_err("the thread panics");
    let pid = *started.downcast::<u32>().expect("the pid");
    // The handle was dropped during unwinding and waited for its process, so the
    // pid is gone (not even a zombie).
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the Flume JVM {pid} survived the panic"
    );
}
