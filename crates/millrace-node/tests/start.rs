//! Starting an agent whose channel cannot open.

use millrace_node::Agent;
use std::sync::Arc;
use std::time::Duration;

fn agent(dir: &std::path::Path) -> Agent {
    let text = format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = file\n\
         a1.channels.c1.checkpointDir = {d}/checkpoint\na1.channels.c1.dataDirs = {d}/data\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
        d = dir.display()
    );
    let (cfg, diags) = millrace_config::from_text(Arc::from("t.conf"), &text, "a1");
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let (agent, diags) = Agent::build(&cfg.unwrap());
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    agent.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_channel_held_by_another_agent_fails_the_start_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = agent(dir.path())
        .start(None)
        .await
        .expect("the first agent starts");
    // Well inside the 30 s that sinks get to drain at a stop: the second start must
    // not start sinks on a channel that never opened and then wait for them.
    let second = tokio::time::timeout(Duration::from_secs(20), agent(dir.path()).start(None))
        .await
        .expect("the start fails without waiting for a drain");
    let err = second.err().expect("the second agent does not start");
    assert!(err.to_string().contains("in use by another agent"), "{err}");
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_monitoring_port_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = agent(dir.path())
        .start(Some(addr))
        .await
        .err()
        .expect("the agent does not start");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot serve monitoring on {addr}"))
            && msg.contains("flume.monitoring.port"),
        "{msg}"
    );
    // The file channel was never opened: another agent can take it at once.
    let other = agent(dir.path())
        .start(None)
        .await
        .expect("the channel is free");
    other.stop().await;
}
