//! Interceptors transform or drop events between a source and its channels.

use crate::event::Event;

/// Runs on the source's task for every batch, before channel selection. Must be cheap
/// and must not block: it sits on the hot path of every source.
pub trait Interceptor: Send + Sync {
    /// Returns the events to keep, in order; dropping an event filters it out.
    fn intercept(&self, batch: Vec<Event>) -> Vec<Event>;
}
