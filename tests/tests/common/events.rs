//! Events that must cross a boundary unchanged (non-ASCII header values, empty
//! bodies), sent as Flume's HTTP JSON and read back from HEADER_AND_TEXT files.

use millrace_e2e::read_lines;
use std::collections::BTreeMap;
use std::path::Path;

pub const EVENTS: usize = 300;

pub type Expected = Vec<(BTreeMap<String, String>, String)>;

/// Events with non-ASCII header values and bodies, and an empty body every tenth.
pub fn events(tag: &str) -> Expected {
    (0..EVENTS)
        .map(|i| {
            let mut h = BTreeMap::new();
            h.insert("n".to_string(), format!("{i:04}"));
            h.insert("run".to_string(), tag.to_string());
            h.insert("größe".to_string(), "日本語 ✓ façade".to_string());
            let body = if i % 10 == 0 {
                String::new()
            } else {
                format!("event {i} – ünïcödé ☃")
            };
            (h, body)
        })
        .collect()
}

pub fn as_json(events: &Expected) -> Vec<u8> {
    let v: Vec<serde_json::Value> = events
        .iter()
        .map(|(h, b)| serde_json::json!({"headers": h, "body": b}))
        .collect();
    serde_json::to_vec(&v).unwrap()
}

/// Parses a HEADER_AND_TEXT line, `{k1=v1, k2=v2} body`, as both Flume and millrace
/// write it (Flume in hash order, millrace sorted; compared as maps).
pub fn parse(line: &str) -> (BTreeMap<String, String>, String) {
    let (head, body) = line
        .strip_prefix('{')
        .and_then(|l| l.split_once("} "))
        .unwrap_or_else(|| panic!("not a HEADER_AND_TEXT line: {line:?}"));
    let headers = head
        .split(", ")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (headers, body.to_string())
}

pub fn received(out: &Path) -> Expected {
    let mut got: Expected = read_lines(out).iter().map(|l| parse(l)).collect();
    got.sort_by(|a, b| a.0["n"].cmp(&b.0["n"]));
    got
}
