//! Avro's binary encoding, the parts Flume's protocol uses: zig-zag varint longs and
//! ints, booleans, bytes, strings, fixed, enums, unions, maps and arrays in blocks.
//!
//! Decoding never trusts a length from the wire: every count and size is checked
//! against what is left in the message before anything is allocated, so a frame
//! that claims a billion entries fails at once instead of exhausting memory.

use std::fmt;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(b as u8);
}

/// A map or array written as one block followed by the empty block that ends it.
pub fn put_block_count(out: &mut Vec<u8>, n: usize) {
    if n > 0 {
        put_long(out, n as i64);
    }
}

/// Reads Avro values from one message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return err("message ends inside a number");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return err("a number is longer than 64 bits");
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        err("a number is longer than 64 bits")
    }

    pub fn int(&mut self) -> Result<i32, DecodeError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| DecodeError(format!("{v} does not fit an Avro int")))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => err(format!("{b} is not an Avro boolean")),
            _ => unreachable!(),
        }
    }

    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return err(format!(
                "a value claims {n} bytes but only {} remain in the message",
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        if n < 0 {
            return err(format!("negative length {n}"));
        }
        let n = n as usize;
        if n > self.remaining() {
            return err(format!(
                "a value claims {n} bytes but only {} remain in the message",
                self.remaining()
            ));
        }
        Ok(n)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.length()?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError("a string is not valid UTF-8".into()))
    }

    /// The entry count of the next block of a map or array (0 ends it). A negative
    /// count is followed by the block's size in bytes, which is skipped here.
    /// Each entry takes at least `min_entry` bytes, which bounds a believable count.
    pub fn block_count(&mut self, min_entry: usize) -> Result<usize, DecodeError> {
        let mut n = self.long()?;
        if n < 0 {
            n = n
                .checked_neg()
                .ok_or_else(|| DecodeError("bad block count".into()))?;
            let _size = self.long()?;
        }
        let n = n as u64;
        if n.saturating_mul(min_entry.max(1) as u64) > self.remaining() as u64 {
            return err(format!(
                "a block claims {n} entries but only {} bytes remain in the message",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = Vec::new();
            put_long(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.long().unwrap(), v);
            assert!(r.is_empty());
        }
        // The encodings Avro's specification gives as examples.
        let mut b = Vec::new();
        for v in [0, -1, 1, -2, 2, -64, 64] {
            put_long(&mut b, v);
        }
        assert_eq!(b, [0x00, 0x01, 0x02, 0x03, 0x04, 0x7f, 0x80, 0x01]);
    }

    #[test]
    fn lengths_beyond_the_message_are_refused_before_allocating() {
        let mut b = Vec::new();
        put_long(&mut b, 2_000_000_000);
        b.extend_from_slice(b"abc");
        assert!(Reader::new(&b)
            .bytes()
            .unwrap_err()
            .0
            .contains("2000000000"));
        let mut b = Vec::new();
        put_long(&mut b, 1 << 40);
        assert!(Reader::new(&b).block_count(2).is_err());
        assert!(Reader::new(&[0xff; 11]).long().is_err());
        assert!(Reader::new(&[0x80]).long().is_err());
    }
}
