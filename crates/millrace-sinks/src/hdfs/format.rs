//! The bytes of an HDFS file for each `hdfs.fileType`:
//!
//! - `DataStream`: the serializer's output as is.
//! - `CompressedStream`: the serializer's output compressed with `hdfs.codeC`, one
//!   complete compressed member per flush, as Flume finishes its compression stream at
//!   each flush; `gzip -dc` and `hadoop fs -text` read the concatenation.
//! - `SequenceFile`: Hadoop's SequenceFile (version 6) with a `LongWritable` key (the
//!   `timestamp` header, else the write time) and a `BytesWritable` (writeFormat
//!   Writable) or `Text` (writeFormat Text) value; with a codec, block-compressed as
//!   Flume writes it.
//!
//! An encoder only produces bytes; the caller writes them to HDFS and syncs, so the
//! format is tested without a cluster.

use crate::serializer::Serializer;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use millrace_core::Event;
use std::io::Write;

/// `hdfs.fileType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    SequenceFile,
    DataStream,
    CompressedStream,
}

/// `hdfs.writeFormat`, for SequenceFile values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFormat {
    Writable,
    Text,
}

/// `hdfs.codeC`: the codecs millrace writes, by Hadoop class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `org.apache.hadoop.io.compress.GzipCodec`, extension `.gz`.
    Gzip,
    /// `org.apache.hadoop.io.compress.DefaultCodec` (zlib), extension `.deflate`.
    Default,
}

impl Codec {
    /// Resolves Flume's codec names (`gzip`, `GzipCodec`, the class name; any case).
    pub fn parse(name: &str) -> Result<Codec, String> {
        let n = name.trim().to_ascii_lowercase();
        let short = n.rsplit('.').next().unwrap_or(&n);
        let short = short.strip_suffix("codec").unwrap_or(short);
        match short {
            "gzip" => Ok(Codec::Gzip),
            "default" | "deflate" => Ok(Codec::Default),
            "bzip2" | "lzo" | "lzop" | "snappy" | "lz4" | "zstandard" | "zstd" => Err(format!(
                "codec `{name}` is not supported by millrace; use gzip or DefaultCodec (zlib)"
            )),
            _ => Err(format!(
                "`{name}` is not a codec; use gzip or DefaultCodec (zlib)"
            )),
        }
    }

    /// Hadoop's default file extension for the codec.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Default => ".deflate",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Codec::Gzip => "org.apache.hadoop.io.compress.GzipCodec",
            Codec::Default => "org.apache.hadoop.io.compress.DefaultCodec",
        }
    }

    /// One complete compressed stream of `data`.
    fn compress(self, data: &[u8], out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        match self {
            Codec::Gzip => {
                let mut e = GzEncoder::new(std::mem::take(out), Compression::default());
                let _ = e.write_all(data);
                *out = e.finish().unwrap_or_default();
            }
            Codec::Default => {
                let mut e = ZlibEncoder::new(std::mem::take(out), Compression::default());
                let _ = e.write_all(data);
                *out = e.finish().unwrap_or_default();
            }
        }
    }
}

/// Encodes events into one file's bytes.
pub enum Encoder {
    Stream {
        serializer: Serializer,
    },
    Compressed {
        serializer: Serializer,
        codec: Codec,
        plain: Vec<u8>,
    },
    Sequence(SequenceWriter),
}

impl Encoder {
    pub fn new(
        file_type: FileType,
        serializer: &Serializer,
        codec: Option<Codec>,
        format: WriteFormat,
    ) -> Encoder {
        match (file_type, codec) {
            (FileType::SequenceFile, codec) => {
                Encoder::Sequence(SequenceWriter::new(format, codec, rand::random()))
            }
            (FileType::CompressedStream, Some(codec)) => Encoder::Compressed {
                serializer: serializer.clone(),
                codec,
                plain: Vec::new(),
            },
            _ => Encoder::Stream {
                serializer: serializer.clone(),
            },
        }
    }

    /// The bytes that open a new file.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Stream { serializer } => serializer.begin_file(out),
            Encoder::Compressed {
                serializer, plain, ..
            } => serializer.begin_file(plain),
            Encoder::Sequence(w) => w.header(out),
        }
    }

    /// Encodes events; compressed formats hold them until [`Encoder::flush`].
    pub fn append(&mut self, events: &[&Event], now_ms: i64, out: &mut Vec<u8>) {
        match self {
            Encoder::Stream { serializer } => write_events(serializer, events, out),
            Encoder::Compressed {
                serializer, plain, ..
            } => write_events(serializer, events, plain),
            Encoder::Sequence(w) => {
                for e in events {
                    let key = e
                        .header("timestamp")
                        .and_then(|t| t.trim().parse::<i64>().ok())
                        .unwrap_or(now_ms);
                    w.append(key, &e.body, out);
                }
            }
        }
    }

    /// Ends what the format buffers, so every event appended so far is in `out`.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::Stream { .. } => {}
            Encoder::Compressed { codec, plain, .. } => {
                if !plain.is_empty() {
                    codec.compress(plain, out);
                    plain.clear();
                }
            }
            Encoder::Sequence(w) => w.flush(out),
        }
    }
}

fn write_events(serializer: &Serializer, events: &[&Event], out: &mut Vec<u8>) {
    // Serializers take a slice of events; an AVRO_EVENT block per call is what Flume
    // writes per batch too.
    let owned: Vec<Event> = match serializer {
        Serializer::AvroEvent { .. } => events.iter().map(|e| (*e).clone()).collect(),
        _ => {
            for e in events {
                serializer.write_batch(std::slice::from_ref(*e), out);
            }
            return;
        }
    };
    serializer.write_batch(&owned, out);
}

/// Hadoop's `WritableUtils.writeVLong`.
pub fn write_vlong(out: &mut Vec<u8>, v: i64) {
    if (-112..=127).contains(&v) {
        out.push(v as u8);
        return;
    }
    let (mut len, i) = if v < 0 { (-120i32, !v) } else { (-112i32, v) };
    let mut tmp = i;
    while tmp != 0 {
        tmp >>= 8;
        len -= 1;
    }
    out.push(len as u8);
    let n = if len < -120 {
        -(len + 120)
    } else {
        -(len + 112)
    };
    for idx in (0..n).rev() {
        out.push((i >> (idx * 8)) as u8);
    }
}

/// `Text.writeString`: a vint length, then UTF-8.
fn write_text(out: &mut Vec<u8>, s: &[u8]) {
    write_vlong(out, s.len() as i64);
    out.extend_from_slice(s);
}

/// Bytes between sync markers in an uncompressed SequenceFile (Hadoop's
/// `SYNC_INTERVAL`, 100 KiB).
const SYNC_INTERVAL: u64 = 5 * 1024 * 20;
const SYNC_ESCAPE: i32 = -1;

/// Hadoop's SequenceFile writer: uncompressed records, or one compressed block per
/// flush when a codec is set (block compression, as Flume configures it).
pub struct SequenceWriter {
    format: WriteFormat,
    codec: Option<Codec>,
    sync: [u8; 16],
    /// Bytes of this file so far, counting everything handed to `out`.
    pos: u64,
    last_sync: u64,
    block: Block,
}

#[derive(Default)]
struct Block {
    records: i64,
    key_lens: Vec<u8>,
    keys: Vec<u8>,
    val_lens: Vec<u8>,
    vals: Vec<u8>,
}

impl SequenceWriter {
    pub fn new(format: WriteFormat, codec: Option<Codec>, sync: [u8; 16]) -> Self {
        SequenceWriter {
            format,
            codec,
            sync,
            pos: 0,
            last_sync: 0,
            block: Block::default(),
        }
    }

    fn value_class(&self) -> &'static str {
        match self.format {
            WriteFormat::Writable => "org.apache.hadoop.io.BytesWritable",
            WriteFormat::Text => "org.apache.hadoop.io.Text",
        }
    }

    fn emit(&mut self, out: &[u8], start: usize) {
        self.pos += (out.len() - start) as u64;
    }

    pub fn header(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"SEQ\x06");
        write_text(out, b"org.apache.hadoop.io.LongWritable");
        write_text(out, self.value_class().as_bytes());
        out.push(self.codec.is_some() as u8);
        out.push(self.codec.is_some() as u8);
        if let Some(c) = self.codec {
            write_text(out, c.class().as_bytes());
        }
        // No metadata entries.
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&self.sync);
        self.emit(out, start);
    }

    fn value(&self, body: &[u8], into: &mut Vec<u8>) {
        match self.format {
            WriteFormat::Writable => {
                into.extend_from_slice(&(body.len() as i32).to_be_bytes());
                into.extend_from_slice(body);
            }
            WriteFormat::Text => write_text(into, body),
        }
    }

    fn sync_marker(&mut self, out: &mut Vec<u8>) {
        if self.pos != self.last_sync {
            let start = out.len();
            out.extend_from_slice(&SYNC_ESCAPE.to_be_bytes());
            out.extend_from_slice(&self.sync);
            self.emit(out, start);
            self.last_sync = self.pos;
        }
    }

    pub fn append(&mut self, key: i64, body: &[u8], out: &mut Vec<u8>) {
        if self.codec.is_some() {
            let b = &mut self.block;
            b.records += 1;
            write_vlong(&mut b.key_lens, 8);
            b.keys.extend_from_slice(&key.to_be_bytes());
            let before = self.block.vals.len();
            let mut vals = std::mem::take(&mut self.block.vals);
            self.value(body, &mut vals);
            let len = vals.len() - before;
            self.block.vals = vals;
            write_vlong(&mut self.block.val_lens, len as i64);
            return;
        }
        if self.pos >= self.last_sync + SYNC_INTERVAL {
            self.sync_marker(out);
        }
        let start = out.len();
        let mut value = Vec::with_capacity(body.len() + 5);
        self.value(body, &mut value);
        out.extend_from_slice(&((8 + value.len()) as i32).to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&value);
        self.emit(out, start);
    }

    /// Writes the buffered block (block compression) or a sync marker (records), so a
    /// reader can start at this point.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        match self.codec {
            Some(codec) => {
                if self.block.records == 0 {
                    return;
                }
                // Every block starts with a sync marker; readers check it.
                let start = out.len();
                out.extend_from_slice(&SYNC_ESCAPE.to_be_bytes());
                out.extend_from_slice(&self.sync);
                let b = std::mem::take(&mut self.block);
                write_vlong(out, b.records);
                let mut packed = Vec::new();
                for part in [&b.key_lens, &b.keys, &b.val_lens, &b.vals] {
                    packed.clear();
                    codec.compress(part, &mut packed);
                    write_vlong(out, packed.len() as i64);
                    out.extend_from_slice(&packed);
                }
                self.emit(out, start);
                self.last_sync = self.pos;
            }
            None => self.sync_marker(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlong_matches_hadoop() {
        let enc = |v: i64| {
            let mut o = Vec::new();
            write_vlong(&mut o, v);
            o
        };
        assert_eq!(enc(0), vec![0]);
        assert_eq!(enc(127), vec![127]);
        assert_eq!(enc(-112), vec![0x90]);
        assert_eq!(enc(128), vec![0x8f, 0x80]);
        assert_eq!(enc(300), vec![0x8e, 0x01, 0x2c]);
        assert_eq!(enc(-113), vec![0x87, 0x70]);
        assert_eq!(enc(-256 - 1), vec![0x86, 0x01, 0x00]);
    }

    #[test]
    fn uncompressed_sequence_file_layout() {
        let mut w = SequenceWriter::new(WriteFormat::Writable, None, [7; 16]);
        let mut out = Vec::new();
        w.header(&mut out);
        let header_len = out.len();
        assert_eq!(&out[..4], b"SEQ\x06");
        assert_eq!(out[4] as usize, "org.apache.hadoop.io.LongWritable".len());
        assert_eq!(&out[header_len - 16..], &[7; 16]);
        w.append(42, b"abc", &mut out);
        let rec = &out[header_len..];
        assert_eq!(&rec[..4], &(8 + 4 + 3i32).to_be_bytes());
        assert_eq!(&rec[4..8], &8i32.to_be_bytes());
        assert_eq!(&rec[8..16], &42i64.to_be_bytes());
        assert_eq!(&rec[16..20], &3i32.to_be_bytes());
        assert_eq!(&rec[20..], b"abc");
        let before = out.len();
        w.flush(&mut out);
        assert_eq!(&out[before..before + 4], &(-1i32).to_be_bytes());
        // A second flush with nothing new adds nothing.
        let len = out.len();
        w.flush(&mut out);
        assert_eq!(out.len(), len);
    }

    #[test]
    fn sync_markers_every_sync_interval() {
        let mut w = SequenceWriter::new(WriteFormat::Text, None, [1; 16]);
        let mut out = Vec::new();
        w.header(&mut out);
        let body = vec![b'x'; 1000];
        for _ in 0..500 {
            w.append(1, &body, &mut out);
        }
        let marker: Vec<u8> = [(-1i32).to_be_bytes().as_slice(), &[1; 16]].concat();
        let n = out.windows(20).filter(|w| *w == marker.as_slice()).count();
        // About 500 KB of records: a marker each 100 KiB.
        assert_eq!(n, 4, "{n}");
    }

    #[test]
    fn block_compressed_block_decompresses_to_its_records() {
        let mut w = SequenceWriter::new(WriteFormat::Text, Some(Codec::Default), [2; 16]);
        let mut out = Vec::new();
        w.header(&mut out);
        let h = out.len();
        w.append(5, b"hello", &mut out);
        w.append(6, b"world!", &mut out);
        assert_eq!(out.len(), h, "records wait for the block");
        w.flush(&mut out);
        let b = &out[h..];
        assert_eq!(&b[..4], &(-1i32).to_be_bytes());
        assert_eq!(b[20], 2, "two records");
        // The four compressed parts follow, each a vint length and a zlib stream.
        let mut at = 21;
        let mut parts = Vec::new();
        for _ in 0..4 {
            let len = b[at] as usize;
            at += 1;
            let mut d = flate2::read::ZlibDecoder::new(&b[at..at + len]);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut plain).unwrap();
            parts.push(plain);
            at += len;
        }
        assert_eq!(at, b.len());
        assert_eq!(parts[0], vec![8, 8]);
        assert_eq!(parts[1][..8], 5i64.to_be_bytes());
        assert_eq!(parts[2], vec![6, 7]);
        assert_eq!(parts[3], b"\x05hello\x06world!".to_vec());
    }

    #[test]
    fn compressed_stream_is_concatenated_gzip_members() {
        let ser = Serializer::Text {
            append_newline: true,
        };
        let mut enc = Encoder::new(
            FileType::CompressedStream,
            &ser,
            Some(Codec::Gzip),
            WriteFormat::Writable,
        );
        let mut out = Vec::new();
        enc.begin(&mut out);
        let a = Event::from_body("one");
        let b = Event::from_body("two");
        enc.append(&[&a], 0, &mut out);
        enc.flush(&mut out);
        enc.append(&[&b], 0, &mut out);
        enc.flush(&mut out);
        let mut d = flate2::read::MultiGzDecoder::new(&out[..]);
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut d, &mut plain).unwrap();
        assert_eq!(plain, "one\ntwo\n");
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::parse("gzip"), Ok(Codec::Gzip));
        assert_eq!(Codec::parse("GzipCodec"), Ok(Codec::Gzip));
        assert_eq!(
            Codec::parse("org.apache.hadoop.io.compress.DefaultCodec"),
            Ok(Codec::Default)
        );
        assert!(Codec::parse("snappy")
            .unwrap_err()
            .contains("not supported"));
        assert!(Codec::parse("zip").is_err());
    }
}
