//! Helpers shared by the test files (Kafka, HDFS, events).
#![allow(dead_code)]

pub mod events;
pub mod hdfs;
pub mod kafka;
