//! Flume's event serializers: how an event becomes bytes in a file.
//!
//! - `TEXT`: the body, then a newline (`appendNewline`, default true).
//! - `HEADER_AND_TEXT`: `{k1=v1, k2=v2} body`, then a newline.
//! - `AVRO_EVENT`: an Avro object container file of Flume's
//!   `Event {headers: map<string>, body: bytes}` records, readable by `avro-tools` and
//!   by Flume's own reader; one block per delivered batch.

use millrace_core::{Event, Props};

/// The writer schema Flume's `FlumeEventAvroEventSerializer` uses.
pub const FLUME_EVENT_SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serializer {
    Text { append_newline: bool },
    HeaderAndText { append_newline: bool },
    AvroEvent { sync: [u8; 16] },
}

impl Serializer {
    /// Reads the serializer named by `key` (e.g. `sink.serializer`) and its options
    /// under `key.` (e.g. `sink.serializer.appendNewline`).
    pub fn from_props(p: &Props, key: &str) -> Option<Self> {
        let name = p.string(key, "TEXT");
        let opts = p.sub(&format!("{key}."));
        let kind = match name.to_ascii_uppercase().as_str() {
            "TEXT" | "ORG.APACHE.FLUME.SERIALIZATION.BODYTEXTEVENTSERIALIZER$BUILDER" => "TEXT",
            "HEADER_AND_TEXT"
            | "ORG.APACHE.FLUME.SERIALIZATION.HEADERANDBODYTEXTEVENTSERIALIZER$BUILDER" => {
                "HEADER_AND_TEXT"
            }
            "AVRO_EVENT"
            | "ORG.APACHE.FLUME.SERIALIZATION.FLUMEEVENTAVROEVENTSERIALIZER$BUILDER" => {
                "AVRO_EVENT"
            }
            _ => {
                p.error_at(
                    key,
                    format!(
                        "serializer `{name}` for `{}` is not supported; use TEXT, HEADER_AND_TEXT or AVRO_EVENT",
                        p.full_key(key)
                    ),
                );
                return None;
            }
        };
        Some(match kind {
            "TEXT" => Serializer::Text {
                append_newline: opts.bool("appendNewline", true),
            },
            "HEADER_AND_TEXT" => Serializer::HeaderAndText {
                append_newline: opts.bool("appendNewline", true),
            },
            _ => {
                // Flume's options for the Avro writer; blocks here are one per batch
                // and uncompressed.
                let _ = opts.get("syncIntervalBytes");
                if let Some(codec) = opts.get("compressionCodec") {
                    if !codec.eq_ignore_ascii_case("null") {
                        opts.error_at(
                            "compressionCodec",
                            format!("Avro codec `{codec}` is not supported; remove `{}` (files are written uncompressed)", opts.full_key("compressionCodec")),
                        );
                    }
                }
                Serializer::AvroEvent {
                    sync: rand::random(),
                }
            }
        })
    }

    /// Bytes that start a new file (the Avro container header; nothing for text).
    pub fn begin_file(&mut self, out: &mut Vec<u8>) {
        if let Serializer::AvroEvent { sync } = self {
            *sync = rand::random();
            out.extend_from_slice(b"Obj\x01");
            write_long(out, 2);
            write_bytes(out, b"avro.schema");
            write_bytes(out, FLUME_EVENT_SCHEMA.as_bytes());
            write_bytes(out, b"avro.codec");
            write_bytes(out, b"null");
            write_long(out, 0);
            out.extend_from_slice(sync);
        }
    }

    /// Appends a batch of events.
    pub fn write_batch(&self, events: &[Event], out: &mut Vec<u8>) {
        match self {
            Serializer::Text { append_newline } => {
                for e in events {
                    out.extend_from_slice(&e.body);
                    if *append_newline {
                        out.push(b'\n');
                    }
                }
            }
            Serializer::HeaderAndText { append_newline } => {
                for e in events {
                    out.push(b'{');
                    for (i, (k, v)) in e.headers.iter().enumerate() {
                        if i > 0 {
                            out.extend_from_slice(b", ");
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.as_bytes());
                    }
                    out.extend_from_slice(b"} ");
                    out.extend_from_slice(&e.body);
                    if *append_newline {
                        out.push(b'\n');
                    }
                }
            }
            Serializer::AvroEvent { sync } => {
                if events.is_empty() {
                    return;
                }
                let mut block = Vec::with_capacity(events.iter().map(|e| e.body.len() + 16).sum());
                for e in events {
                    encode_flume_event(e, &mut block);
                }
                write_long(out, events.len() as i64);
                write_long(out, block.len() as i64);
                out.extend_from_slice(&block);
                out.extend_from_slice(sync);
            }
        }
    }
}

/// Avro binary encoding of one `Event {headers, body}` record.
pub fn encode_flume_event(e: &Event, out: &mut Vec<u8>) {
    if !e.headers.is_empty() {
        write_long(out, e.headers.len() as i64);
        for (k, v) in &e.headers {
            write_bytes(out, k.as_bytes());
            write_bytes(out, v.as_bytes());
        }
    }
    write_long(out, 0);
    write_bytes(out, &e.body);
}

// Avro's binary encoding is shared with the Avro RPC crate.
use millrace_avro::codec::{put_bytes as write_bytes, put_long as write_long};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_appends_newlines() {
        let s = Serializer::Text {
            append_newline: true,
        };
        let mut out = Vec::new();
        s.write_batch(&[Event::from_body("a"), Event::from_body("b")], &mut out);
        assert_eq!(out, b"a\nb\n");
    }

    #[test]
    fn header_and_text_looks_like_a_java_map() {
        let s = Serializer::HeaderAndText {
            append_newline: true,
        };
        let mut out = Vec::new();
        let e = Event::from_body("body")
            .with_header("b", "2")
            .with_header("a", "1");
        s.write_batch(&[e], &mut out);
        assert_eq!(out, b"{a=1, b=2} body\n");
    }

    #[test]
    fn avro_container_has_magic_schema_and_sync_markers() {
        let mut s = Serializer::AvroEvent { sync: [0; 16] };
        let mut out = Vec::new();
        s.begin_file(&mut out);
        let Serializer::AvroEvent { sync } = s.clone() else {
            unreachable!()
        };
        s.write_batch(&[Event::from_body("hi").with_header("k", "v")], &mut out);
        assert!(out.starts_with(b"Obj\x01"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(FLUME_EVENT_SCHEMA));
        assert!(out.ends_with(&sync));
        // Block: count 1, size 9, record {1 entry "k"->"v", end, body "hi"}.
        let block = [
            0x02, 0x12, 0x02, 0x02, b'k', 0x02, b'v', 0x00, 0x04, b'h', b'i',
        ];
        assert!(out.windows(block.len()).any(|w| w == block));
    }

    #[test]
    fn unknown_serializer_is_reported() {
        let p = Props::from_pairs(&[("sink.serializer", "JSON")]);
        assert!(Serializer::from_props(&p, "sink.serializer").is_none());
        assert!(p.finish()[0].message.contains("not supported"));
    }
}
