//! A connection's byte streams, with Flume's optional deflate between the socket (or
//! TLS session) and the framing. Flume puts a zlib stream in each direction for the
//! life of the connection and flushes it after every frame; so does millrace.

use async_compression::tokio::{bufread::ZlibDecoder, write::ZlibEncoder};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// Splits a connection into its reading and writing halves, inflating and deflating
/// when `deflate` holds a compression level (0-9).
pub fn split<S>(stream: S, deflate: Option<u32>) -> (BoxRead, BoxWrite)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    match deflate {
        None => (Box::pin(BufReader::new(r)), Box::pin(w)),
        Some(level) => (
            Box::pin(ZlibDecoder::new(BufReader::new(r))),
            Box::pin(ZlibEncoder::with_quality(
                w,
                async_compression::Level::Precise(level.min(9) as i32),
            )),
        ),
    }
}

/// Writes one frame and flushes it (a sync flush when deflating, so the peer can
/// decode the frame without waiting for more).
pub async fn send(w: &mut BoxWrite, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}
