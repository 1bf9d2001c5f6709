//! Reconfiguring a running agent in process.

use millrace_node::Agent;
use std::sync::Arc;
use std::time::Duration;

fn cfg(text: &str) -> millrace_config::AgentConfig {
    let (cfg, diags) = millrace_config::from_text(Arc::from("t.conf"), text, "a1");
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    cfg.unwrap()
}

fn conf(capacity: u32, sink_dir: &str) -> String {
    format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 500\na1.sources.r1.batchSize = 50\n\
         a1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\na1.channels.c1.capacity = {capacity}\n\
         a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {sink_dir}\na1.sinks.k1.channel = c1\n"
    )
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lines(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

fn gauge(agent: &millrace_node::RunningAgent, key: &str, name: &str) -> String {
    agent.metrics().json()[key][name]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_channel_hands_its_events_to_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let bad = format!("{}/x", blocked.display());
    let good = dir.path().join("out");
    let (agent, _) = Agent::build(&cfg(&conf(1000, &bad)));
    let mut running = agent.unwrap().start(None).await.unwrap();
    wait_until("500 events held", || {
        gauge(&running, "CHANNEL.c1", "ChannelSize") == "500"
    })
    .await;

    // New capacity (so a new channel) and a working sink at once: the 500 events move
    // to the new channel and reach the new sink; the seq source, unchanged in its own
    // properties but bound to a new channel, restarts and emits its 500 again.
    let warnings = running
        .reload(&cfg(&conf(2000, good.to_str().unwrap())))
        .await
        .expect("valid configuration");
    assert!(warnings.is_empty(), "{warnings:?}");
    wait_until("1000 lines written", || lines(&good) == 1000).await;
    assert_eq!(gauge(&running, "CHANNEL.c1", "ChannelCapacity"), "2000");
    assert_eq!(gauge(&running, "AGENT.a1", "ReloadAppliedCount"), "1");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (agent, _) = Agent::build(&cfg(&conf(1000, out.to_str().unwrap())));
    let mut running = agent.unwrap().start(None).await.unwrap();
    wait_until("500 lines", || lines(&out) == 500).await;
    let broken = conf(1000, out.to_str().unwrap()).replace("file_roll", "no_such_sink");
    let errors = running.reload(&cfg(&broken)).await.unwrap_err();
    assert!(
        errors.iter().any(|d| d.message.contains("`no_such_sink`")),
        "{errors:?}"
    );
    assert_eq!(gauge(&running, "AGENT.a1", "ReloadRejectedCount"), "1");
    assert_eq!(gauge(&running, "SINK.k1", "EventDrainSuccessCount"), "500");
    running.stop().await;
    assert_eq!(lines(&out), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_channel_reopens_its_log_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let text = |capacity: u32, sink_dir: &str| {
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 300\na1.sources.r1.batchSize = 100\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.capacity = {capacity}\na1.channels.c1.transactionCapacity = 100\n\
             a1.channels.c1.checkpointDir = {d}/ck\na1.channels.c1.dataDirs = {d}/data\n\
             a1.channels.c1.minimumRequiredSpace = 0\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {sink_dir}\na1.sinks.k1.channel = c1\n",
            d = dir.path().display()
        )
    };
    let out = dir.path().join("out");
    let (agent, _) = Agent::build(&cfg(&text(1000, &format!("{}/x", blocked.display()))));
    let mut running = agent.unwrap().start(None).await.unwrap();
    wait_until("300 events held", || {
        gauge(&running, "CHANNEL.c1", "ChannelSize") == "300"
    })
    .await;
    running
        .reload(&cfg(&text(5000, out.to_str().unwrap())))
        .await
        .expect("valid configuration");
    // 300 replayed from the log, and 300 more from the restarted seq source.
    wait_until("600 lines written", || lines(&out) == 600).await;
    assert_eq!(gauge(&running, "CHANNEL.c1", "ChannelCapacity"), "5000");
    running.stop().await;
}
