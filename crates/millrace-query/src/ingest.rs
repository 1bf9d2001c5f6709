//! The one way events enter the store from outside: POST, the hosted agent's store
//! sink and any other receiver (such as a Flume Avro endpoint) go through [`Ingest`],
//! which stores a batch, waits until it is on disk, and notes who sent it.

use crate::model::SenderView;
use millrace_core::Event;
use millrace_store::time::{format_rfc3339, now_ms};
use millrace_store::{EventId, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Ingest {
    store: Arc<Store>,
    senders: Arc<Mutex<BTreeMap<String, Sender>>>,
}

struct Sender {
    kind: &'static str,
    events: u64,
    batches: u64,
    first_seen: u64,
    last_seen: u64,
}

/// Appends `batch` and syncs it, on the calling thread: the sync on the thread that
/// appended saves a second hand-off to wait for.
fn stored(store: &Store, batch: &[Event]) -> Result<Vec<EventId>, StoreError> {
    let ids = store.append(batch)?;
    store.sync()?;
    Ok(ids)
}

impl Ingest {
    pub fn new(store: Arc<Store>) -> Ingest {
        Ingest {
            store,
            senders: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores `batch` and returns once it is on disk. `sender` names who sent it
    /// (shown by `GET /api/v1/agents`), `kind` how (`http`, `sink`, `avro`).
    pub async fn append(
        &self,
        sender: &str,
        kind: &'static str,
        batch: Vec<Event>,
    ) -> Result<Vec<EventId>, StoreError> {
        let store = self.store.clone();
        let n = batch.len() as u64;
        let ids = tokio::task::spawn_blocking(move || stored(&store, &batch))
            .await
            .map_err(|e| self.panicked(e.to_string()))??;
        self.seen(sender, kind, n);
        Ok(ids)
    }

    /// [`Ingest::append`] of a batch the caller keeps, such as a sink's take, which
    /// stays in the channel until the store has it. On a multi-threaded runtime the
    /// store reads the batch in place on this worker thread (the runtime moves its
    /// other tasks meanwhile), instead of a copy of every event's headers moved to a
    /// blocking thread: the copy and its drop took 0.8 of the 3.1 CPU s per 1,000,000
    /// events of the hosted agent's runtime threads (benches/RESULTS.md, "The query
    /// server's own chain").
    pub async fn append_borrowed(
        &self,
        sender: &str,
        kind: &'static str,
        batch: &[Event],
    ) -> Result<Vec<EventId>, StoreError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
            return self.append(sender, kind, batch.to_vec()).await;
        }
        let append = std::panic::AssertUnwindSafe(|| stored(&self.store, batch));
        let ids = tokio::task::block_in_place(|| std::panic::catch_unwind(append))
            .map_err(|p| self.panicked(panic_message(&p)))??;
        self.seen(sender, kind, batch.len() as u64);
        Ok(ids)
    }

    /// The error for an append that panicked: the batch is refused, the server goes on.
    fn panicked(&self, why: String) -> StoreError {
        StoreError::Io {
            path: self.store.dir().to_path_buf(),
            error: std::io::Error::other(why),
        }
    }

    /// Notes a batch of `n` events from `sender` (see [`Ingest::senders`]).
    fn seen(&self, sender: &str, kind: &'static str, n: u64) {
        let now = now_ms();
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let s = senders.entry(sender.to_string()).or_insert(Sender {
            kind,
            events: 0,
            batches: 0,
            first_seen: now,
            last_seen: now,
        });
        s.events += n;
        s.batches += 1;
        s.last_seen = now;
    }

    pub fn senders(&self) -> Vec<SenderView> {
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders
            .iter()
            .map(|(name, s)| SenderView {
                name: name.clone(),
                kind: s.kind.to_string(),
                events: s.events,
                batches: s.batches,
                first_seen: format_rfc3339(s.first_seen),
                last_seen: format_rfc3339(s.last_seen),
            })
            .collect()
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("the store's append panicked: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use millrace_store::{Filter, Page, StoreOptions};

    fn batch() -> Vec<Event> {
        (0..300)
            .map(|i| Event::from_body(format!("request {i} served")).with_header("host", "web-1"))
            .collect()
    }

    /// A sink's take is stored whole, searchable, and counted for its sender, on both
    /// kinds of runtime (one reads it in place, the other stores a copy).
    async fn borrowed_batch_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let ingest = Ingest::new(Arc::new(store));
        let take = batch();
        let ids = ingest
            .append_borrowed("sink a1.k1", "sink", &take)
            .await
            .unwrap();
        assert_eq!(ids.len(), take.len());
        let filter = Filter {
            q: Some("request 299".into()),
            ..Filter::default()
        };
        let page = ingest
            .store()
            .search(&filter, &Page::default(), None)
            .unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].body, "request 299 served");
        let senders = ingest.senders();
        assert_eq!(senders.len(), 1);
        assert_eq!(senders[0].name, "sink a1.k1");
        assert_eq!((senders[0].events, senders[0].batches), (300, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn borrowed_batch_on_a_multi_threaded_runtime() {
        borrowed_batch_is_stored().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn borrowed_batch_on_a_single_threaded_runtime() {
        borrowed_batch_is_stored().await;
    }
}
