//! Helpers shared by the Kafka test files.
#![allow(dead_code)]

pub mod kafka;
