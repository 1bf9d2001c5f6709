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
    /// The byte at file offset `offset` starts a sequence that is not valid in the
    /// input charset, and the policy is FAIL.
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
                Ok(b) => b,
                Err(bad) => {
                    // Leave the position at the start of the bad event, so a retry
                    // resumes there; report where the bad bytes themselves are (the
                    // event's bytes are contiguous from `start`).
                    self.pos = start;
                    return Err(ReadError::Decode {
                        offset: start + bad as u64,
                    });
                }
            };
            out.push(Event {
                headers: headers.clone(),
                body,
            });
        }
        Ok(out)
    }

    /// One line, without its `\n` (and a `\r` before it), cut after `max` characters
    /// as Flume's LineDeserializer does: the rest of a long line becomes the next
    /// event(s). A character is a byte in ISO-8859-1 and a whole sequence in UTF-8,
    /// so a cut never falls inside a character. `pos` moves by the bytes consumed.
    fn read_line(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let utf8 = self.charset == Charset::Utf8;
        let mut line = Vec::new();
        let mut chars = 0;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok((!line.is_empty()).then_some(line));
            }
            let room = max - chars;
            // One byte past the room, to see whether the newline follows a full line.
            let window = &buf[..buf.len().min(room + 1)];
            let nl = window.iter().position(|&b| b == b'\n');
            let seg = &window[..nl.unwrap_or(window.len())];
            let end = if !utf8 || seg.is_ascii() {
                // A byte is a character: the common case, without looking at each byte.
                match nl {
                    Some(i) => LineEnd::Newline(i),
                    None if seg.len() > room => LineEnd::Cut(room),
                    None => {
                        chars += seg.len();
                        LineEnd::More(seg.len())
                    }
                }
            } else {
                utf8_line_end(buf, max, &mut chars)
            };
            match end {
                LineEnd::Newline(i) => {
                    line.extend_from_slice(&buf[..i]);
                    self.reader.consume(i + 1);
                    self.pos += i as u64 + 1;
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(Some(line));
                }
                LineEnd::Cut(i) => {
                    line.extend_from_slice(&buf[..i]);
                    self.reader.consume(i);
                    self.pos += i as u64;
                    return Ok(Some(line));
                }
                LineEnd::More(n) => {
                    line.extend_from_slice(&buf[..n]);
                    self.reader.consume(n);
                    self.pos += n as u64;
                }
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

/// Where the current line stops within a buffer, in bytes.
enum LineEnd {
    /// A newline at this index ends the line.
    Newline(usize),
    /// The line is full: it is cut before this index.
    Cut(usize),
    /// All these bytes belong to the line, which goes on in the next buffer.
    More(usize),
}

/// Scans UTF-8 `buf` for the end of a line that already holds `chars` characters,
/// counting each byte that starts a character (anything but a continuation byte
/// 0b10xx_xxxx), so a multi-byte character stays whole even when it straddles two
/// buffers. Invalid bytes are left for `decode` to judge.
fn utf8_line_end(buf: &[u8], max: usize, chars: &mut usize) -> LineEnd {
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            return LineEnd::Newline(i);
        }
        if b & 0xC0 != 0x80 {
            if *chars == max {
                return LineEnd::Cut(i);
            }
            *chars += 1;
        }
    }
    LineEnd::More(buf.len())
}

/// The event body in UTF-8, or, when the bytes are invalid and the policy is FAIL, the
/// index in `raw` of the first invalid byte.
pub fn decode(raw: Vec<u8>, charset: Charset, policy: DecodeErrorPolicy) -> Result<Bytes, usize> {
    match charset {
        Charset::Latin1 => {
            if raw.is_ascii() {
                Ok(Bytes::from(raw))
            } else {
                Ok(Bytes::from(
                    raw.iter().map(|&b| b as char).collect::<String>(),
                ))
            }
        }
        Charset::Utf8 => match String::from_utf8(raw) {
            Ok(s) => Ok(Bytes::from(s)),
            Err(e) => match policy {
                DecodeErrorPolicy::Fail => Err(e.utf8_error().valid_up_to()),
                DecodeErrorPolicy::Replace => Ok(Bytes::from(
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                )),
                DecodeErrorPolicy::Ignore => Ok(Bytes::from(drop_invalid(e.as_bytes()))),
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
            Err(ReadError::Decode { offset: 7 })
        ));
        assert_eq!(r.pos, 3, "a retry resumes at the start of the bad line");
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

    fn line(max: usize) -> Deserializer {
        Deserializer::Line {
            max_line_length: max,
        }
    }

    fn all(r: &mut FileReader) -> Vec<String> {
        let ev = r.read_batch(1000, &Headers::new()).unwrap();
        ev.iter()
            .map(|e| String::from_utf8(e.body.to_vec()).expect("valid UTF-8"))
            .collect()
    }

    #[test]
    fn long_lines_are_cut_by_characters_not_bytes() {
        // The line that used to fail under FAIL: 1501 characters, 3001 bytes.
        let first = format!("x{}", "é".repeat(1500));
        let content = format!("{first}\nnext line\n");
        let (_f, mut r) = reader(content.as_bytes(), line(2048), DecodeErrorPolicy::Fail);
        assert_eq!(all(&mut r), [first.as_str(), "next line"]);
        assert_eq!(r.pos, content.len() as u64);

        let long = "é".repeat(5000);
        let (_f, mut r) = reader(
            format!("{long}\n").as_bytes(),
            line(2048),
            DecodeErrorPolicy::Fail,
        );
        let ev = all(&mut r);
        let counts: Vec<usize> = ev.iter().map(|e| e.chars().count()).collect();
        assert_eq!(counts, [2048, 2048, 904]);
        assert_eq!(ev.concat(), long);
        assert_eq!(r.pos, long.len() as u64 + 1);
    }

    #[test]
    fn seven_accented_characters_with_a_maximum_of_five() {
        let (_f, mut r) = reader("ééééééé\nz".as_bytes(), line(5), DecodeErrorPolicy::Fail);
        assert_eq!(all(&mut r), ["ééééé", "éé", "z"]);
        // REPLACE has nothing to replace: no cut falls inside a character.
        let (_f, mut r) = reader("ééééééé\n".as_bytes(), line(5), DecodeErrorPolicy::Replace);
        assert_eq!(all(&mut r), ["ééééé", "éé"]);
    }

    #[test]
    fn a_character_split_across_read_buffers_stays_whole() {
        // The read buffer is 256 KiB: character 131073 is 'é' at bytes 262143-262144.
        let text = format!("a{}", "é".repeat(200_000));
        for max in [131_072, 131_073, 1 << 20] {
            let (_f, mut r) = reader(text.as_bytes(), line(max), DecodeErrorPolicy::Fail);
            let ev = all(&mut r);
            assert!(ev.iter().all(|e| e.chars().count() <= max), "max {max}");
            assert_eq!(ev[0].chars().count(), max.min(200_001), "max {max}");
            assert_eq!(ev.concat(), text, "max {max}");
        }
    }

    #[test]
    fn invalid_byte_is_reported_at_its_own_offset() {
        // Bad byte at offset 3 + 3 ("hé" is 3 bytes) = 6.
        let (_f, mut r) = reader(
            b"ok\nh\xc3\xa9\xffllo\n",
            line(100),
            DecodeErrorPolicy::Fail,
        );
        assert!(matches!(
            r.read_batch(5, &Headers::new()),
            Err(ReadError::Decode { offset: 6 })
        ));
        assert_eq!(r.pos, 3);
        // In the second piece of a cut line: 4 'é' (8 bytes), then 'é' and the bad byte.
        let mut content = "ééééé".as_bytes().to_vec();
        content.extend_from_slice(b"\xff\n");
        let (_f, mut r) = reader(&content, line(4), DecodeErrorPolicy::Fail);
        assert!(matches!(
            r.read_batch(5, &Headers::new()),
            Err(ReadError::Decode { offset: 10 })
        ));
        assert_eq!(r.pos, 8, "the bad event starts at the second piece");
    }

    #[test]
    fn latin1_lines_are_cut_by_characters_too() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"\xe9\xe9\xe9\n").unwrap();
        let mut r = FileReader::open(
            f.path(),
            0,
            4,
            line(2),
            Charset::Latin1,
            DecodeErrorPolicy::Fail,
        )
        .unwrap();
        assert_eq!(all(&mut r), ["éé", "é"]);
    }
}
