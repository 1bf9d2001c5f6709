//! Flume's `AvroSourceProtocol` and the Avro IPC envelope around each call: the
//! handshake, call metadata, message name and parameters; the response's handshake,
//! metadata, error flag and `Status`.

use crate::codec::{put_block_count, put_bool, put_bytes, put_long, put_str, DecodeError, Reader};
use bytes::Bytes;
use millrace_core::{Event, Headers};

/// The protocol as millrace declares it: Flume's `flume.avdl` (same namespace, names
/// and fields, so Java peers resolve every message against their own classes).
pub const PROTOCOL_JSON: &str = concat!(
    r#"{"protocol":"AvroSourceProtocol","namespace":"org.apache.flume.source.avro","types":["#,
    r#"{"type":"enum","name":"Status","symbols":["OK","FAILED","UNKNOWN"]},"#,
    r#"{"type":"record","name":"AvroFlumeEvent","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}],"#,
    r#""messages":{"append":{"request":[{"name":"event","type":"AvroFlumeEvent"}],"response":"Status"},"#,
    r#""appendBatch":{"request":[{"name":"events","type":{"type":"array","items":"AvroFlumeEvent"}}],"response":"Status"}}}"#
);

/// MD5 of [`PROTOCOL_JSON`]: the hash millrace announces for its protocol.
pub const PROTOCOL_MD5: [u8; 16] = [
    0x30, 0xda, 0x54, 0x05, 0x9d, 0xf7, 0x2d, 0x95, 0x84, 0xb8, 0x67, 0xd5, 0x20, 0x2e, 0x20, 0x69,
];

/// The hash Flume 1.11's Java classes send for the same protocol (their JSON text
/// carries the `.avdl` file's licence comment, so it hashes differently).
pub const FLUME_PROTOCOL_MD5: [u8; 16] = [
    0x86, 0xaa, 0xda, 0xe2, 0xc4, 0x54, 0x74, 0xc0, 0xfe, 0x93, 0xff, 0xd0, 0xf2, 0x35, 0x0a, 0x65,
];

/// `Status` of Flume's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    Unknown,
}

impl Status {
    fn index(self) -> i64 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Unknown => 2,
        }
    }
}

/// `HandshakeMatch` of Avro IPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Both,
    Client,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    pub client_hash: [u8; 16],
    pub client_protocol: Option<String>,
    pub server_hash: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub matched: Match,
    pub server_protocol: Option<String>,
    pub server_hash: Option<[u8; 16]>,
}

/// The call a request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// An empty message name: a handshake on its own.
    Ping,
    Append(Event),
    AppendBatch(Vec<Event>),
    /// A message this protocol does not have.
    Other(String),
}

fn md5(r: &mut Reader) -> Result<[u8; 16], DecodeError> {
    Ok(r.take(16)?.try_into().expect("16 bytes"))
}

fn skip_meta(r: &mut Reader) -> Result<(), DecodeError> {
    loop {
        let n = r.block_count(2)?;
        if n == 0 {
            return Ok(());
        }
        for _ in 0..n {
            r.string()?;
            r.bytes()?;
        }
    }
}

fn optional_meta(r: &mut Reader) -> Result<(), DecodeError> {
    match r.long()? {
        0 => Ok(()),
        1 => skip_meta(r),
        i => Err(DecodeError(format!("handshake meta has union branch {i}"))),
    }
}

fn optional_string(r: &mut Reader, what: &str) -> Result<Option<String>, DecodeError> {
    match r.long()? {
        0 => Ok(None),
        1 => Ok(Some(r.string()?.to_string())),
        i => Err(DecodeError(format!("{what} has union branch {i}"))),
    }
}

pub fn decode_handshake_request(r: &mut Reader) -> Result<HandshakeRequest, DecodeError> {
    let client_hash = md5(r)?;
    let client_protocol = optional_string(r, "clientProtocol")?;
    let server_hash = md5(r)?;
    optional_meta(r)?;
    Ok(HandshakeRequest {
        client_hash,
        client_protocol,
        server_hash,
    })
}

pub fn encode_handshake_request(out: &mut Vec<u8>, h: &HandshakeRequest) {
    out.extend_from_slice(&h.client_hash);
    match &h.client_protocol {
        None => put_long(out, 0),
        Some(p) => {
            put_long(out, 1);
            put_str(out, p);
        }
    }
    out.extend_from_slice(&h.server_hash);
    put_long(out, 0);
}

pub fn encode_handshake_response(out: &mut Vec<u8>, h: &HandshakeResponse) {
    put_long(
        out,
        match h.matched {
            Match::Both => 0,
            Match::Client => 1,
            Match::None => 2,
        },
    );
    match &h.server_protocol {
        None => put_long(out, 0),
        Some(p) => {
            put_long(out, 1);
            put_str(out, p);
        }
    }
    match &h.server_hash {
        None => put_long(out, 0),
        Some(m) => {
            put_long(out, 1);
            out.extend_from_slice(m);
        }
    }
    put_long(out, 0);
}

pub fn decode_handshake_response(r: &mut Reader) -> Result<HandshakeResponse, DecodeError> {
    let matched = match r.long()? {
        0 => Match::Both,
        1 => Match::Client,
        2 => Match::None,
        i => {
            return Err(DecodeError(format!(
                "handshake match {i} is not BOTH, CLIENT or NONE"
            )))
        }
    };
    let server_protocol = optional_string(r, "serverProtocol")?;
    let server_hash = match r.long()? {
        0 => None,
        1 => Some(md5(r)?),
        i => return Err(DecodeError(format!("serverHash has union branch {i}"))),
    };
    optional_meta(r)?;
    Ok(HandshakeResponse {
        matched,
        server_protocol,
        server_hash,
    })
}

/// Encodes one `AvroFlumeEvent` (Avro binary, no container): what Flume's Kafka
/// components write and read with `useFlumeEventFormat` / `parseAsFlumeEvent`.
pub fn encode_event(out: &mut Vec<u8>, e: &Event) {
    put_block_count(out, e.headers.len());
    for (k, v) in &e.headers {
        put_str(out, k);
        put_str(out, v);
    }
    put_long(out, 0);
    put_bytes(out, &e.body);
}

/// Decodes one `AvroFlumeEvent` (see [`encode_event`]).
pub fn decode_event(r: &mut Reader) -> Result<Event, DecodeError> {
    let mut headers = Headers::new();
    loop {
        let n = r.block_count(2)?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let k = r.string()?.to_string();
            let v = r.string()?.to_string();
            headers.insert(k, v);
        }
    }
    let body = Bytes::copy_from_slice(r.bytes()?);
    Ok(Event { headers, body })
}

/// Decodes the part of a request after the handshake: call metadata, message name
/// and parameters. `max_batch` bounds the events one `appendBatch` may carry.
pub fn decode_call(r: &mut Reader, max_batch: usize) -> Result<Call, DecodeError> {
    skip_meta(r)?;
    let name = r.string()?.to_string();
    let call = match name.as_str() {
        "" => Call::Ping,
        "append" => Call::Append(decode_event(r)?),
        "appendBatch" => {
            let mut events = Vec::new();
            loop {
                let n = r.block_count(2)?;
                if n == 0 {
                    break;
                }
                if events.len() + n > max_batch {
                    return Err(DecodeError(format!(
                        "a batch of more than {max_batch} events (raise the source's maximum batch if this sender is legitimate)"
                    )));
                }
                events.reserve(n);
                for _ in 0..n {
                    events.push(decode_event(r)?);
                }
            }
            Call::AppendBatch(events)
        }
        _ => return Ok(Call::Other(name)),
    };
    if !r.is_empty() {
        return Err(DecodeError(format!(
            "{} bytes left over after the `{name}` call",
            r.remaining()
        )));
    }
    Ok(call)
}

/// Encodes an `appendBatch` call (after any handshake).
pub fn encode_append_batch(out: &mut Vec<u8>, events: &[Event]) {
    put_long(out, 0);
    put_str(out, "appendBatch");
    put_block_count(out, events.len());
    for e in events {
        encode_event(out, e);
    }
    put_long(out, 0);
}

/// Encodes a response (after any handshake): empty metadata, then the status or an
/// error message.
pub fn encode_response(out: &mut Vec<u8>, result: Result<Status, &str>) {
    put_long(out, 0);
    match result {
        Ok(s) => {
            put_bool(out, false);
            put_long(out, s.index());
        }
        Err(msg) => {
            put_bool(out, true);
            // A message's errors are a union whose first branch is `string`.
            put_long(out, 0);
            put_str(out, msg);
        }
    }
}

/// Decodes a response (after any handshake).
pub fn decode_response(r: &mut Reader) -> Result<Result<Status, String>, DecodeError> {
    skip_meta(r)?;
    if r.bool()? {
        return match r.long()? {
            0 => Ok(Err(r.string()?.to_string())),
            i => Ok(Err(format!("remote error (union branch {i})"))),
        };
    }
    Ok(Ok(match r.long()? {
        0 => Status::Ok,
        1 => Status::Failed,
        2 => Status::Unknown,
        i => {
            return Err(DecodeError(format!(
                "status {i} is not OK, FAILED or UNKNOWN"
            )))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    #[test]
    fn the_announced_hash_is_the_md5_of_the_protocol_text() {
        assert_eq!(md5::Md5::digest(PROTOCOL_JSON.as_bytes())[..], PROTOCOL_MD5);
    }

    #[test]
    fn batches_round_trip_with_non_ascii_headers_and_empty_bodies() {
        let events = vec![
            Event::from_body("").with_header("größe", "日本語"),
            Event::from_body(vec![0u8, 255, 10]),
            Event::from_body("x".repeat(10_000))
                .with_header("a", "")
                .with_header("b", "c"),
        ];
        let mut b = Vec::new();
        encode_append_batch(&mut b, &events);
        assert_eq!(
            decode_call(&mut Reader::new(&b), 10).unwrap(),
            Call::AppendBatch(events.clone())
        );
        assert!(decode_call(&mut Reader::new(&b), 2)
            .unwrap_err()
            .0
            .contains("more than 2 events"));
    }

    #[test]
    fn handshakes_and_responses_round_trip() {
        let h = HandshakeRequest {
            client_hash: PROTOCOL_MD5,
            client_protocol: Some(PROTOCOL_JSON.into()),
            server_hash: FLUME_PROTOCOL_MD5,
        };
        let mut b = Vec::new();
        encode_handshake_request(&mut b, &h);
        assert_eq!(decode_handshake_request(&mut Reader::new(&b)).unwrap(), h);
        let resp = HandshakeResponse {
            matched: Match::Client,
            server_protocol: Some(PROTOCOL_JSON.into()),
            server_hash: Some(PROTOCOL_MD5),
        };
        let mut b = Vec::new();
        encode_handshake_response(&mut b, &resp);
        encode_response(&mut b, Ok(Status::Failed));
        let mut r = Reader::new(&b);
        assert_eq!(decode_handshake_response(&mut r).unwrap(), resp);
        assert_eq!(decode_response(&mut r).unwrap(), Ok(Status::Failed));
        let mut b = Vec::new();
        encode_response(&mut b, Err("no such message"));
        assert_eq!(
            decode_response(&mut Reader::new(&b)).unwrap(),
            Err("no such message".into())
        );
    }

    #[test]
    fn truncated_and_random_calls_are_errors_not_panics() {
        let events = vec![Event::from_body("hello").with_header("k", "v"); 3];
        let mut b = Vec::new();
        encode_append_batch(&mut b, &events);
        for cut in 0..b.len() {
            let _ = decode_call(&mut Reader::new(&b[..cut]), 100);
        }
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..20_000 {
            let mut m = b.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
            }
            let _ = decode_call(&mut Reader::new(&m), 100);
        }
    }
}
