//! `millrace-query-server`: an event store with its HTTP API (search, stats, live
//! tail, OpenAPI at /api-docs/openapi.json, Swagger UI at /docs), fed by
//! `POST /api/v1/events` and, with `-f FILE -n NAME`, by an agent it runs whose
//! `type = store` sinks write into the store.
//!
//! ```text
//! millrace-query-server -f configs/quickstart.conf -n a1
//! curl 'http://127.0.0.1:8080/api/v1/events?q=error'
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use millrace_node::{Agent, ExtSinkFactory, Extensions, RunningAgent};
use millrace_query::{AppState, Ingest, QueryConfig};
use millrace_store::time::parse_duration;
use millrace_store::{Retention, Store, StoreOptions};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "millrace-query-server",
    version,
    about = "Stores log events and answers queries over HTTP; can run the agent that collects them",
    after_help = "Examples:\n  \
        millrace-query-server -f configs/quickstart.conf -n a1\n  \
        curl 'http://127.0.0.1:8080/api/v1/events?q=error&limit=5'\n  \
        open http://127.0.0.1:8080/docs for the API and its Swagger UI\n\n\
        In the configuration, `type = store` sinks write into this server's store, and\n\
        ${millrace.store.dir} and ${millrace.cwd} name the store directory and the\n\
        working directory (absolute)."
)]
struct Cli {
    /// Address to serve the API on. Keep it on 127.0.0.1 unless clients on other
    /// machines need it, and then set --api-key.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Store directory (created owner-only). Only one process can use a store at a
    /// time. Default: ~/.millrace/store.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Agent configuration (Flume properties format) to run in this process; several
    /// files are merged in order. Needs --name.
    #[arg(
        short = 'f',
        long = "conf-file",
        value_name = "FILE",
        requires = "name"
    )]
    conf_file: Vec<PathBuf>,

    /// The agent of the configuration to run (`a1` in `a1.sources = r1`). Needs -f.
    #[arg(
        short = 'n',
        long = "name",
        value_name = "NAME",
        requires = "conf_file"
    )]
    name: Option<String>,

    /// Also receive Flume's Avro RPC here (HOST:PORT), from any agent's avro sink,
    /// Java Flume's or millrace's; each batch is answered OK once it is in the store.
    #[arg(long, value_name = "HOST:PORT")]
    avro_bind: Option<SocketAddr>,

    /// Compression of the --avro-bind endpoint; must match the senders'
    /// `compression-type`.
    #[arg(long, value_name = "none|deflate", default_value = "none", value_parser = ["none", "deflate"])]
    avro_compression: String,

    /// Key every API request must carry (`Authorization: Bearer KEY` or
    /// `X-Api-Key: KEY`); /api/v1/health, /docs and the OpenAPI document stay open.
    /// Without it the API needs no key.
    #[arg(
        long,
        value_name = "KEY",
        env = "MILLRACE_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// Key required to purge (DELETE /api/v1/events); it is also accepted wherever the
    /// API key is. Without it, purging needs the API key.
    #[arg(
        long,
        value_name = "KEY",
        env = "MILLRACE_ADMIN_KEY",
        hide_env_values = true
    )]
    admin_key: Option<String>,

    /// Delete events older than this, in the background: e.g. 12h, 7d, 4w.
    #[arg(long, value_name = "AGE", value_parser = nonzero_duration)]
    retention: Option<Duration>,

    /// Delete the oldest events, in the background, while the store holds more than
    /// this many bytes of events and indexes (the files on disk trail deletions).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    max_store_bytes: Option<u64>,

    /// How often retention runs (at most once a second).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = nonzero_duration)]
    retention_interval: Duration,

    /// Regex that finds an event's level in its body when it has no `level` header:
    /// the first capture group (or the whole match), upper-cased.
    #[arg(long, value_name = "REGEX", default_value = millrace_store::DEFAULT_LEVEL_REGEX)]
    level_regex: String,

    /// Longest a query may run before it is answered with 503 (0 answers every query
    /// with 503, which is a way to see how clients handle it).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    query_timeout: Duration,

    /// Largest POST body, in bytes; larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value = "10485760", value_parser = at_least_one)]
    max_body_bytes: usize,

    /// Most events in one POST; more get 413.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = at_least_one)]
    max_batch: usize,

    /// Most live tail (SSE) clients at once; more get 429. 0 turns the tail off.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_tail_clients: usize,
}

/// A duration of which 0 makes no sense: a retention of 0 would delete every event
/// as it arrives.
fn nonzero_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0 (e.g. 1m, 7d)".to_string()),
        d => Ok(d),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".to_string()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn store_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    let dir = match &cli.store {
        Some(d) => d.clone(),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".millrace").join("store"),
            None => bail!("HOME is not set; give the store directory with --store DIR"),
        },
    };
    Ok(if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()?.join(dir)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = store_dir(&cli)?;
    let level_regex = regex::Regex::new(&cli.level_regex)
        .with_context(|| format!("--level-regex `{}` is not a valid regex", cli.level_regex))?;
    let opts = StoreOptions {
        level_regex,
        ..StoreOptions::default()
    };
    let store = Arc::new(
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || Store::open(&dir, opts)
        })
        .await?
        .with_context(|| format!("cannot open the store in {}", dir.display()))?,
    );
    let retention = (cli.retention.is_some() || cli.max_store_bytes.is_some()).then(|| Retention {
        max_age: cli.retention,
        max_bytes: cli.max_store_bytes,
        interval: cli.retention_interval.max(Duration::from_secs(1)),
    });
    let _retention_task = retention.clone().map(|r| store.spawn_retention(r));

    let ingest = Ingest::new(store.clone());
    let state = AppState::new(
        ingest.clone(),
        QueryConfig {
            api_key: cli.api_key.clone(),
            admin_key: cli.admin_key.clone(),
            max_body_bytes: cli.max_body_bytes,
            max_batch: cli.max_batch,
            query_timeout: cli.query_timeout,
            max_tails: cli.max_tail_clients,
            retention,
            ..QueryConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;

    let agent = match &cli.name {
        Some(name) => Some(start_agent(&cli.conf_file, name, &dir, &ingest, &state).await?),
        None => None,
    };

    let avro_stop = millrace_core::CancellationToken::new();
    let avro = match cli.avro_bind {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for Avro RPC on {addr}"))?;
            tracing::info!(%addr, "receiving Flume's Avro RPC");
            Some(tokio::spawn(millrace_avro::serve(
                l,
                Arc::new(millrace_avro::ServerOptions {
                    deflate: cli.avro_compression == "deflate",
                    ..millrace_avro::ServerOptions::default()
                }),
                Arc::new(AvroIngest(ingest.clone())),
                None,
                None,
                avro_stop.clone(),
            )))
        }
        None => None,
    };

    let app = millrace_query::router(state);
    tracing::info!(
        listen = %cli.listen,
        store = %dir.display(),
        "serving the API; Swagger UI at http://{}/docs",
        cli.listen
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .into_future(),
    );

    shutdown_signal().await?;
    tracing::info!("shutdown requested");
    // The agent stops first so that what its channels hold is drained into the store.
    if let Some(agent) = agent {
        agent.stop().await;
    }
    avro_stop.cancel();
    if let Some(avro) = avro {
        let _ = avro.await;
    }
    let _ = stop_tx.send(());
    // Live tails never end by themselves; they are cut after a short grace period.
    if tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .is_err()
    {
        tracing::info!("closing the connections still open");
    }
    store.flush().await.context("flushing the store")?;
    tracing::info!("stopped");
    Ok(())
}

/// Avro RPC into the store: `OK` once a batch is on disk, `FAILED` otherwise (the
/// sender keeps it and retries).
struct AvroIngest(Ingest);

#[async_trait::async_trait]
impl millrace_avro::Handler for AvroIngest {
    async fn deliver(
        &self,
        events: Vec<millrace_core::Event>,
        _single: bool,
        peer: SocketAddr,
    ) -> millrace_avro::Status {
        match self.0.append(&peer.ip().to_string(), "avro", events).await {
            Ok(_) => millrace_avro::Status::Ok,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot store an Avro batch; answering FAILED");
                millrace_avro::Status::Failed
            }
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// Loads, checks and starts the hosted agent; `type = store` sinks write into `ingest`.
async fn start_agent(
    files: &[PathBuf],
    name: &str,
    store_dir: &std::path::Path,
    ingest: &Ingest,
    state: &AppState,
) -> anyhow::Result<RunningAgent> {
    let mut sys = BTreeMap::new();
    sys.insert(
        "millrace.store.dir".to_string(),
        store_dir.display().to_string(),
    );
    sys.insert(
        "millrace.cwd".to_string(),
        std::env::current_dir()?.display().to_string(),
    );
    let (cfg, diags) = millrace_config::load_with(files, name, &sys)?;
    let sink_ingest = ingest.clone();
    let agent_name = name.to_string();
    let factory: ExtSinkFactory = Arc::new(move |sink: &str, props, counters| {
        millrace_query::sink::StoreSink::build(&agent_name, sink, props, &sink_ingest, counters)
    });
    let ext = Extensions::new().with_sink(millrace_query::sink::TYPE, factory);
    // Built even when the configuration has errors, to print every problem at once.
    let (agent, diags) = Agent::build_checked(cfg.as_ref(), diags, &ext);
    for d in &diags {
        eprintln!("{d}");
    }
    let Some(agent) = agent else {
        bail!("the configuration has errors; nothing was started");
    };
    let running = agent.start(None).await.context("the agent cannot start")?;
    let metrics = running.metrics();
    state.set_hosted_agent(name, Arc::new(move || metrics.json()));
    Ok(running)
}
