//! Programs that build a millrace pipeline in code, without a properties file, from
//! the workspace's crates. Each is a cargo example at the top of `examples/`;
//! `cargo test` builds them and `tests/examples.rs` runs each one and checks what it
//! delivered.
//!
//! - `taildir_kafka`: TAILDIR -> a custom `Interceptor` that drops DEBUG lines and
//!   routes ERROR lines to a topic of their own -> memory channel -> Kafka sink.
//!   `cargo run -p millrace-examples --example taildir_kafka -- LOG_DIR POSITION_FILE BOOTSTRAP TOPIC`
//! - `custom_sink`: seq -> two memory channels -> a custom `Sink` that writes each
//!   event as a line of one file, and a file_roll sink beside it.
//!   `cargo run -p millrace-examples --example custom_sink -- OUT_DIR COUNT`
//!
//! `millrace_node::Pipeline` does the wiring; its documentation says what it checks.
