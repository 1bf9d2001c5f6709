//! The write-ahead log's record format.
//!
//! A log file starts with the 8-byte magic `MRWAL001`, then records:
//!
//! ```text
//! [u32 LE payload length][u32 LE CRC-32 of the payload][payload]
//! payload = 1u8 PUT  [u64 first id][u32 count] count x event
//!         | 2u8 TAKE [u32 ranges] ranges x ([u64 first id][u32 length])
//! event   = [u32 headers] headers x ([u32 len][key] [u32 len][value]) [u32 len][body]
//! ```
//!
//! A PUT record is a whole put transaction and a TAKE record a whole take commit, so a
//! record that is on disk is a committed transaction, and a torn one is a transaction
//! that never committed.

use bytes::Bytes;
use millrace_core::{Event, Headers};

pub const MAGIC: &[u8; 8] = b"MRWAL001";
const HEADER: usize = 8;
/// No record is larger; a length above it is corruption, not a huge record.
pub const MAX_RECORD: usize = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Put { first_id: u64, events: Vec<Event> },
    Take { ranges: Vec<(u64, u32)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside the record: a write that never finished.
    Incomplete,
    /// The record is complete but wrong (CRC mismatch, bad kind, bad lengths).
    Corrupt(String),
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// Appends one framed PUT record.
pub fn encode_put(out: &mut Vec<u8>, first_id: u64, events: &[Event]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(1);
    out.extend_from_slice(&first_id.to_le_bytes());
    put_u32(out, events.len() as u32);
    for e in events {
        put_u32(out, e.headers.len() as u32);
        for (k, v) in &e.headers {
            put_bytes(out, k.as_bytes());
            put_bytes(out, v.as_bytes());
        }
        put_bytes(out, &e.body);
    }
    seal(out, start);
}

/// Appends one framed TAKE record.
pub fn encode_take(out: &mut Vec<u8>, ranges: &[(u64, u32)]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(2);
    put_u32(out, ranges.len() as u32);
    for (first, len) in ranges {
        out.extend_from_slice(&first.to_le_bytes());
        put_u32(out, *len);
    }
    seal(out, start);
}

fn seal(out: &mut [u8], start: usize) {
    let payload = &out[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Sorted ids as `(first, length)` runs; takes are mostly contiguous, so a TAKE record
/// for a batch is a few bytes.
pub fn ranges(ids: &mut [u64]) -> Vec<(u64, u32)> {
    ids.sort_unstable();
    let mut out: Vec<(u64, u32)> = Vec::new();
    for &id in ids.iter() {
        match out.last_mut() {
            Some((first, len)) if *first + *len as u64 == id => *len += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                DecodeError::Corrupt("a length runs past the end of its record".into())
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| DecodeError::Corrupt("a header is not UTF-8".into()))
    }
}

/// Decodes the record at the start of `buf`; returns it and its framed length.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), DecodeError> {
    if buf.len() < HEADER {
        return Err(DecodeError::Incomplete);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Err(DecodeError::Corrupt(format!(
            "record length {len} is impossible"
        )));
    }
    if buf.len() < HEADER + len {
        return Err(DecodeError::Incomplete);
    }
    let payload = &buf[HEADER..HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Err(DecodeError::Corrupt("checksum mismatch".into()));
    }
    let mut r = Reader {
        buf: payload,
        pos: 0,
    };
    let kind = r.take(1)?[0];
    let rec = match kind {
        1 => {
            let first_id = r.u64()?;
            let count = r.u32()? as usize;
            let mut events = Vec::with_capacity(count.min(len / 8 + 1));
            for _ in 0..count {
                let nh = r.u32()? as usize;
                let mut headers = Headers::new();
                for _ in 0..nh {
                    let k = r.string()?;
                    let v = r.string()?;
                    headers.insert(k, v);
                }
                let blen = r.u32()? as usize;
                let body = Bytes::copy_from_slice(r.take(blen)?);
                events.push(Event { headers, body });
            }
            Record::Put { first_id, events }
        }
        2 => {
            let n = r.u32()? as usize;
            let mut ranges = Vec::with_capacity(n.min(len / 12 + 1));
            for _ in 0..n {
                ranges.push((r.u64()?, r.u32()?));
            }
            Record::Take { ranges }
        }
        k => return Err(DecodeError::Corrupt(format!("unknown record kind {k}"))),
    };
    if r.pos != payload.len() {
        return Err(DecodeError::Corrupt("trailing bytes in record".into()));
    }
    Ok((rec, HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        vec![
            Event::from_body("one")
                .with_header("host", "web-1")
                .with_header("é", "ü"),
            Event::from_body(""),
            Event::from_body(vec![0u8, 255, 10]),
        ]
    }

    #[test]
    fn put_and_take_round_trip() {
        let mut buf = Vec::new();
        encode_put(&mut buf, 42, &sample());
        encode_take(&mut buf, &[(42, 2), (50, 1)]);
        let (r1, n1) = decode(&buf).unwrap();
        assert_eq!(
            r1,
            Record::Put {
                first_id: 42,
                events: sample()
            }
        );
        let (r2, n2) = decode(&buf[n1..]).unwrap();
        assert_eq!(
            r2,
            Record::Take {
                ranges: vec![(42, 2), (50, 1)]
            }
        );
        assert_eq!(n1 + n2, buf.len());
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode_put(&mut buf, 1, &sample());
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut]).unwrap_err(),
                DecodeError::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_put(&mut buf, 1, &sample());
        for i in 4..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(
                    matches!(decode(&b), Err(DecodeError::Corrupt(_))),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn ranges_compress_runs() {
        let mut ids = vec![7, 3, 4, 5, 9, 8];
        assert_eq!(ranges(&mut ids), vec![(3, 3), (7, 3)]);
    }
}
