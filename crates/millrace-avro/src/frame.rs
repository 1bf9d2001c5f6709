//! Avro's Netty framing, as Flume's Java peers use it: `serial: i32`, `count: i32`,
//! then `count` buffers of `len: i32` and `len` bytes, all big-endian. A message is
//! the concatenation of its frame's buffers, however the sender split it.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    Io(std::io::Error),
    /// The peer sent something no well-behaved client sends.
    Malformed(String),
    /// A frame was started but not finished in time.
    Stalled(Duration),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::Malformed(m) => f.write_str(m),
            FrameError::Stalled(d) => write!(f, "a frame was begun but not finished within {d:?}"),
        }
    }
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        FrameError::Io(e)
    }
}

pub struct Frame {
    pub serial: i32,
    pub message: Vec<u8>,
}

/// The buffer size Java's codec cuts messages at; kept for the same reason (a peer's
/// decoder may size its reads by it).
const BUFFER: usize = 8192;

/// One frame carrying `message`.
pub fn encode(serial: i32, message: &[u8]) -> Vec<u8> {
    let chunks = message.len().div_ceil(BUFFER).max(1);
    let mut out = Vec::with_capacity(message.len() + 8 + 4 * chunks);
    out.extend_from_slice(&serial.to_be_bytes());
    out.extend_from_slice(&(chunks as i32).to_be_bytes());
    if message.is_empty() {
        out.extend_from_slice(&0i32.to_be_bytes());
    }
    for c in message.chunks(BUFFER) {
        out.extend_from_slice(&(c.len() as i32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// Reads the next frame. `Ok(None)` when the peer closed the connection between
/// frames. Once a frame has begun, the rest must arrive within `stall`; the whole
/// frame may not exceed `max_bytes`.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    max_bytes: usize,
    stall: Duration,
) -> Result<Option<Frame>, FrameError> {
    let mut first = [0u8; 1];
    if r.read(&mut first).await? == 0 {
        return Ok(None);
    }
    match tokio::time::timeout(stall, rest(r, first[0], max_bytes)).await {
        Ok(f) => f.map(Some),
        Err(_) => Err(FrameError::Stalled(stall)),
    }
}

async fn rest<R: AsyncRead + Unpin>(
    r: &mut R,
    first: u8,
    max_bytes: usize,
) -> Result<Frame, FrameError> {
    let mut head = [0u8; 8];
    head[0] = first;
    r.read_exact(&mut head[1..]).await?;
    let serial = i32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
    let count = i32::from_be_bytes(head[4..].try_into().expect("4 bytes"));
    // Each buffer costs at least its 4-byte length.
    if count < 0 || count as usize > max_bytes / 4 + 1 {
        return Err(FrameError::Malformed(format!(
            "a frame claims {count} buffers; this is not Avro's Netty framing"
        )));
    }
    let mut message = Vec::new();
    for _ in 0..count {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await?;
        let len = i32::from_be_bytes(len);
        if len < 0 || message.len() + len as usize > max_bytes {
            return Err(FrameError::Malformed(format!(
                "a frame would exceed {max_bytes} bytes (a buffer of {len} bytes after {}); raise the maximum frame size if this sender is legitimate",
                message.len()
            )));
        }
        let start = message.len();
        message.resize(start + len as usize, 0);
        r.read_exact(&mut message[start..]).await?;
    }
    Ok(Frame { serial, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_across_any_split() {
        let msg: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let wire = encode(7, &msg);
        let f = read(&mut &wire[..], 1 << 20, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((f.serial, f.message), (7, msg));
        // Three buffers of arbitrary sizes, as another sender might cut them.
        let mut wire = Vec::new();
        wire.extend_from_slice(&1i32.to_be_bytes());
        wire.extend_from_slice(&3i32.to_be_bytes());
        for part in [&b"ab"[..], b"", b"cde"] {
            wire.extend_from_slice(&(part.len() as i32).to_be_bytes());
            wire.extend_from_slice(part);
        }
        let f = read(&mut &wire[..], 100, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.message, b"abcde");
        assert!(read(&mut &b""[..], 100, Duration::from_secs(1))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_frame_claiming_two_gigabytes_is_refused_without_allocating() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&1i32.to_be_bytes());
        wire.extend_from_slice(&1i32.to_be_bytes());
        wire.extend_from_slice(&i32::MAX.to_be_bytes());
        let e = read(&mut &wire[..], 64 << 20, Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, FrameError::Malformed(_)), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_half_sent_frame_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0, 0, 0, 1, 0])
            .await
            .unwrap();
        let e = read(&mut server, 100, Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, FrameError::Stalled(_)), "{e}");
        drop(client);
    }
}
