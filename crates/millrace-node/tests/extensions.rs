//! A hosting process adds sink types through `Extensions`.

use async_trait::async_trait;
use millrace_core::{Event, Props, Sink, SinkError};
use millrace_node::{Agent, ExtSinkFactory, Extensions};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn cfg(sink_type: &str) -> millrace_config::AgentConfig {
    let text = format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 20\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = {sink_type}\na1.sinks.k1.label = got\na1.sinks.k1.channel = c1\n"
    );
    let (cfg, diags) = millrace_config::from_text(Arc::from("t.conf"), &text, "a1");
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    cfg.unwrap()
}

struct Capture {
    label: String,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Sink for Capture {
    async fn deliver(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let mut seen = self.seen.lock().unwrap();
        for e in batch {
            seen.push(format!(
                "{} {}",
                self.label,
                String::from_utf8_lossy(&e.body)
            ));
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        10
    }
}

fn capture(seen: Arc<Mutex<Vec<String>>>) -> Extensions {
    let factory: ExtSinkFactory = Arc::new(move |_name: &str, props: &Props, _counters| {
        let label = props.required("label", "set a label")?;
        Some(Box::new(Capture {
            label,
            seen: seen.clone(),
        }) as Box<dyn Sink>)
    });
    Extensions::new().with_sink("capture", factory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_sink_type_receives_the_events() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (agent, diags) = Agent::build_with(&cfg("CAPTURE"), &capture(seen.clone()));
    assert!(diags.is_empty(), "{diags:?}");
    let running = agent.expect("the agent builds").start(None).await.unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 20 {
        assert!(tokio::time::Instant::now() < end, "events did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.lock().unwrap()[0], "got 0");
    running.stop().await;
}

#[test]
fn without_the_extension_the_type_is_unknown_and_listed_with_it() {
    let (agent, diags) = Agent::build(&cfg("capture"));
    assert!(agent.is_none());
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("`capture`") && d.message.contains("not supported")),
        "{diags:?}"
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (agent, diags) = Agent::build_with(&cfg("captur"), &capture(seen));
    assert!(agent.is_none());
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("did you mean `capture`?")),
        "{diags:?}"
    );
}
