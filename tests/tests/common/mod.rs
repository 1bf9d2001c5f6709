//! Helpers shared by the Kafka test files.
#![allow(dead_code)]

pub mod events;
pub mod kafka;
