//! Peers that break the protocol lose their own connection and nothing else: a
//! well-behaved client keeps being served while they misbehave.

use millrace_avro::{serve, Client, ClientOptions, Handler, ServerOptions, Status};
use millrace_core::{CancellationToken, Event};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Default)]
struct Collect {
    events: AtomicU64,
    malformed: AtomicU64,
    open: AtomicU64,
}

#[async_trait::async_trait]
impl Handler for Collect {
    async fn deliver(&self, events: Vec<Event>, _single: bool, _peer: SocketAddr) -> Status {
        self.events.fetch_add(events.len() as u64, Ordering::SeqCst);
        Status::Ok
    }
    fn connection(&self, opened: bool) {
        if opened {
            self.open.fetch_add(1, Ordering::SeqCst);
        } else {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    fn malformed(&self, _peer: SocketAddr, _reason: &str) {
        self.malformed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A server on a free port with `opts`: its address, handler, shutdown and task.
async fn start(
    opts: ServerOptions,
) -> (
    String,
    Arc<Collect>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handler = Arc::new(Collect::default());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(opts),
        handler.clone(),
        None,
        None,
        shutdown.clone(),
    ));
    (addr, handler, shutdown, server)
}

/// Reads until the server closes the connection; false if it stays open past `wait`.
async fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let end = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_lose_their_connection_and_good_clients_are_served() {
    let (addr, handler, shutdown, server) = start(ServerOptions {
        stall_timeout: Duration::from_secs(2),
        ..ServerOptions::default()
    })
    .await;

    let mut good = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    let batch: Vec<Event> = (0..100)
        .map(|i| Event::from_body(format!("event {i}")).with_header("k", "v"))
        .collect();
    good.append_batch(&batch).await.unwrap();

    // A silent connection and a half-sent frame are opened first and left hanging.
    let silent = TcpStream::connect(&addr).await.unwrap();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 2, 3])
        .await
        .unwrap();

    // Random bytes.
    let mut random = TcpStream::connect(&addr).await.unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = random.write_all(&noise).await;
    assert!(closed_by_server(&mut random, Duration::from_secs(10)).await);

    // A frame claiming 2 GB.
    let mut huge = TcpStream::connect(&addr).await.unwrap();
    let mut claim = Vec::new();
    claim.extend_from_slice(&1i32.to_be_bytes());
    claim.extend_from_slice(&1i32.to_be_bytes());
    claim.extend_from_slice(&(i32::MAX).to_be_bytes());
    huge.write_all(&claim).await.unwrap();
    assert!(closed_by_server(&mut huge, Duration::from_secs(10)).await);

    // The good client is still served while the others hang or were thrown out.
    for _ in 0..10 {
        good.append_batch(&batch).await.unwrap();
    }
    assert_eq!(handler.events.load(Ordering::SeqCst), 1100);

    // The half-sent frame is cut off once the stall timeout passes; the silent
    // connection is a sender between batches, and stays.
    assert!(closed_by_server(&mut half, Duration::from_secs(10)).await);
    assert_eq!(handler.malformed.load(Ordering::SeqCst), 3);
    assert_eq!(
        handler.open.load(Ordering::SeqCst),
        2,
        "the good and the silent connection"
    );

    drop(silent);
    drop(good);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops on shutdown")
        .unwrap();
    assert_eq!(handler.open.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_at_a_deflate_server_is_reported_as_a_protocol_error() {
    let (addr, handler, shutdown, server) = start(ServerOptions {
        deflate: true,
        ..ServerOptions::default()
    })
    .await;
    // The client's plain frames are not a zlib stream: the server cannot read them,
    // and says so, as it does for any peer that breaks the protocol.
    let sent = tokio::time::timeout(Duration::from_secs(10), async {
        let mut c = Client::connect(&addr, ClientOptions::default()).await?;
        c.append_batch(&[Event::from_body("x")]).await
    })
    .await;
    assert!(!matches!(sent, Ok(Ok(_))), "a plain client was served");
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while handler.malformed.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < end,
            "no protocol error reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handler.events.load(Ordering::SeqCst), 0);
    shutdown.cancel();
    server.await.unwrap();
}
