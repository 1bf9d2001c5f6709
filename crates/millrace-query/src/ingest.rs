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
        let ids = tokio::task::spawn_blocking(move || store.append(&batch))
            .await
            .map_err(|e| StoreError::Io {
                path: self.store.dir().to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })??;
        self.store.flush().await?;
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
        Ok(ids)
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
