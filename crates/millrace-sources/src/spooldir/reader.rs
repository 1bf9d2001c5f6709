//! Reading events out of one file from a byte position, with the charset and the
//! decode-error policy applied. Blocking: runs on a blocking thread.

use super::config::{Charset, DecodeErrorPolicy, Deserializer};
use bytes::Bytes;
use millrace_core::{Event, Headers};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Take};
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Bytes at `offset` are not valid in the input charset and the policy is FAIL.
    Decode {
        offset: u64,
    },
}

pub struct FileReader {
    reader: BufReader<Take<File>>,
    /// Byte offset just past the last event returned.
    pub pos: u64,
    deserializer: Deserializer,
    charset: Charset,
    policy: DecodeErrorPolicy,
}

impl FileReader {
    /// Reads from `pos` up to `size`, the file's length when it was picked up: bytes
    /// appended later (by a writer that should not be writing) are never read.
    pub fn open(
        path: &Path,
        pos: u64,
        size: u64,
        deserializer: Deserializer,
        charset: Charset,
        policy: DecodeErrorPolicy,
    ) -> std::io::Result<FileReader> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(pos))?;
        Ok(FileReader {
            reader: BufReader::with_capacity(256 * 1024, f.take(size.saturating_sub(pos))),
            pos,
            deserializer,
            charset,
            policy,
        })
    }

    /// Up to `n` events; fewer (or none) at the end of the file.
    pub fn read_batch(&mut self, n: usize, headers: &Headers) -> Result<Vec<Event>, ReadError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let start = self.pos;
            let raw = match self.deserializer {
                Deserializer::Line { max_line_length } => self.read_line(max_line_length),
                Deserializer::Blob { max_blob_length } => self.read_blob(max_blob_length),
            }
            .map_err(ReadError::Io)?;
            let Some(raw) = raw else { break };
            let body = match decode(raw, self.charset, self.policy) {
                Some(b) => b,
                None => {
                    // Leave the position at the start of the bad event, so a retry or
                    // an operator sees where it is.
                    self.pos = start;
                    return Err(ReadError::Decode { offset: start });
                }
            };
            out.push(Event {
                headers: headers.clone(),
                body,
            });
        }
        Ok(out)
    }

    fn read_line(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let room = max - line.len();
            let window = &buf[..buf.len().min(room + 1)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&buf[..i]);
                self.reader.consume(i + 1);
                self.pos += i as u64 + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            let take = buf.len().min(room);
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            self.pos += take as u64;
            if line.len() == max {
                return Ok(Some(line));
            }
        }
    }

    fn read_blob(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut blob = Vec::new();
        while blob.len() < max {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min(max - blob.len());
            blob.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            self.pos += take as u64;
        }
        Ok((!blob.is_empty()).then_some(blob))
    }
}

/// The event body in UTF-8, or None when the bytes are invalid and the policy is FAIL.
pub fn decode(raw: Vec<u8>, charset: Charset, policy: DecodeErrorPolicy) -> Option<Bytes> {
    match charset {
        Charset::Latin1 => {
            if raw.is_ascii() {
                Some(Bytes::from(raw))
            } else {
                Some(Bytes::from(
                    raw.iter().map(|&b| b as char).collect::<String>(),
                ))
            }
        }
        Charset::Utf8 => match String::from_utf8(raw) {
            Ok(s) => Some(Bytes::from(s)),
            Err(e) => match policy {
                DecodeErrorPolicy::Fail => None,
                DecodeErrorPolicy::Replace => Some(Bytes::from(
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                )),
                DecodeErrorPolicy::Ignore => Some(Bytes::from(drop_invalid(e.as_bytes()))),
            },
        },
    }
}

fn drop_invalid(mut b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = b.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).expect("valid prefix"));
                let skip = e.error_len().unwrap_or(rest.len());
                b = &rest[skip..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reader(
        content: &[u8],
        d: Deserializer,
        policy: DecodeErrorPolicy,
    ) -> (tempfile::NamedTempFile, FileReader) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        let r =
            FileReader::open(f.path(), 0, content.len() as u64, d, Charset::Utf8, policy).unwrap();
        (f, r)
    }

    fn bodies(v: &[Event]) -> Vec<&[u8]> {
        v.iter().map(|e| e.body.as_ref()).collect()
    }

    #[test]
    fn lines_crlf_long_lines_and_last_line_without_newline() {
        let (_f, mut r) = reader(
            b"a\r\nbb\n0123456789\nend",
            Deserializer::Line { max_line_length: 4 },
            DecodeErrorPolicy::Fail,
        );
        let ev = r.read_batch(100, &Headers::new()).unwrap();
        assert_eq!(
            bodies(&ev),
            [&b"a"[..], b"bb", b"0123", b"4567", b"89", b"end"]
        );
        assert_eq!(r.pos, 20);
        assert!(r.read_batch(10, &Headers::new()).unwrap().is_empty());
    }

    #[test]
    fn positions_resume_exactly() {
        let (f, mut r) = reader(
            b"one\ntwo\nthree\n",
            Deserializer::Line {
                max_line_length: 100,
            },
            DecodeErrorPolicy::Fail,
        );
        let ev = r.read_batch(1, &Headers::new()).unwrap();
        assert_eq!(bodies(&ev), [b"one"]);
        let mut r2 = FileReader::open(
            f.path(),
            r.pos,
            14,
            Deserializer::Line {
                max_line_length: 100,
            },
            Charset::Utf8,
            DecodeErrorPolicy::Fail,
        )
        .unwrap();
        assert_eq!(
            bodies(&r2.read_batch(10, &Headers::new()).unwrap()),
            [&b"two"[..], b"three"]
        );
    }

    #[test]
    fn invalid_utf8_follows_the_policy() {
        let content = b"ok\nbad \xff\xfe here\nafter\n";
        let d = Deserializer::Line {
            max_line_length: 100,
        };
        let (_f, mut r) = reader(content, d.clone(), DecodeErrorPolicy::Fail);
        assert_eq!(bodies(&r.read_batch(1, &Headers::new()).unwrap()), [b"ok"]);
        assert!(matches!(
            r.read_batch(5, &Headers::new()),
            Err(ReadError::Decode { offset: 3 })
        ));
        let (_f, mut r) = reader(content, d.clone(), DecodeErrorPolicy::Replace);
        let ev = r.read_batch(5, &Headers::new()).unwrap();
        assert_eq!(ev[1].body.as_ref(), "bad \u{fffd}\u{fffd} here".as_bytes());
        let (_f, mut r) = reader(content, d, DecodeErrorPolicy::Ignore);
        let ev = r.read_batch(5, &Headers::new()).unwrap();
        assert_eq!(bodies(&ev), [&b"ok"[..], b"bad  here", b"after"]);
    }

    #[test]
    fn blobs_split_at_the_maximum() {
        let (_f, mut r) = reader(
            b"0123456789",
            Deserializer::Blob { max_blob_length: 4 },
            DecodeErrorPolicy::Fail,
        );
        assert_eq!(
            bodies(&r.read_batch(10, &Headers::new()).unwrap()),
            [&b"0123"[..], b"4567", b"89"]
        );
    }

    #[test]
    fn latin1_becomes_utf8() {
        assert_eq!(
            decode(
                b"caf\xe9".to_vec(),
                Charset::Latin1,
                DecodeErrorPolicy::Fail
            )
            .unwrap()
            .as_ref(),
            "café".as_bytes()
        );
    }
}
