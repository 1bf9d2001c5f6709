//! `millrace-agent`: the command line, shaped like `flume-ng`.
//!
//! ```text
//! millrace-agent agent -n a1 -f conf/flume.conf [-c conf] [-Dflume.monitoring.type=http -Dflume.monitoring.port=34545]
//! millrace-agent configtest -f conf/flume.conf [-n a1]
//! millrace-agent avro-client -H collector -p 4141 [-F file] [-R headers.properties]
//! ```

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use millrace_core::Diagnostic;
use millrace_node::{Agent, Extensions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "millrace-agent",
    version,
    about = "Runs Apache Flume configurations: sources, channels, sinks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an agent (as `flume-ng agent`).
    Agent(AgentArgs),
    /// Check a configuration file without starting anything; exit 1 on any error.
    Configtest(ConfigtestArgs),
    /// Send the lines of a file (or of standard input) to an avro source, one event
    /// per line (as `flume-ng avro-client`).
    AvroClient(AvroClientArgs),
}

#[derive(Args)]
struct AvroClientArgs {
    /// Host of the avro source.
    #[arg(short = 'H', long = "host")]
    host: String,
    /// Port of the avro source.
    #[arg(short = 'p', long = "port")]
    port: u16,
    /// File whose lines to send; standard input without it.
    #[arg(short = 'F', long = "filename")]
    filename: Option<PathBuf>,
    /// Headers for every event, as `key=value` lines (a properties file).
    #[arg(short = 'R', long = "headerFile")]
    header_file: Option<PathBuf>,
    /// Events per appendBatch call.
    #[arg(long = "batch-size", default_value_t = 100)]
    batch_size: usize,
}

#[derive(Args)]
struct AgentArgs {
    /// The agent to run: the first part of every key (`a1` in `a1.sources = r1`).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The configuration file (Flume properties format); several are merged in order,
    /// a later key overriding an earlier one.
    #[arg(short = 'f', long = "conf-file", required_unless_present = "conf_uri")]
    conf_file: Vec<PathBuf>,
    /// Configuration from a URI: `file:/path` or `http://host:port/path` (read after
    /// the -f files; polled every 300 s unless -i is given).
    #[arg(long = "conf-uri")]
    conf_uri: Vec<String>,
    /// Flume's configuration directory: `-D` options in the `JAVA_OPTS` of its
    /// `flume-env.sh`, then in its `flume.opts` file, are read (the command line wins).
    /// A `log4j2.xml` there is not read; set RUST_LOG or -Dflume.root.logger instead.
    #[arg(short = 'c', long = "conf")]
    conf_dir: Option<PathBuf>,
    /// Java-style system properties, e.g. `-Dflume.monitoring.type=http`
    /// `-Dflume.monitoring.port=34545` `-Dflume.root.logger=DEBUG,console`.
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    defines: Vec<String>,
    /// Do not watch the configuration for changes (SIGHUP still reloads).
    #[arg(long = "no-reload-conf")]
    no_reload_conf: bool,
    /// Seconds between checks of the configuration for changes (default 30 for files,
    /// 300 when a --conf-uri is http).
    #[arg(short = 'i', long = "poll-interval", value_name = "SECONDS")]
    poll_interval: Option<u64>,
}

#[derive(Args)]
struct ConfigtestArgs {
    /// The configuration file to check.
    #[arg(short = 'f', long = "conf-file", required = true)]
    conf_file: Vec<PathBuf>,
    /// The agent to check; without it, every agent the file defines.
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Configtest(a) => configtest(a),
        Cmd::AvroClient(a) => match avro_client(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Agent(a) => {
            let mut defines = match a.conf_dir.as_deref().map(read_flume_opts) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
                None => BTreeMap::new(),
            };
            defines.extend(parse_defines(&a.defines));
            init_logging(defines.get("flume.root.logger").map(String::as_str));
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
            match rt.block_on(run_agent(a, defines)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `-Dkey=value` options from `DIR/flume-env.sh` (its `JAVA_OPTS`, where Flume's
/// `flume-ng` script takes them from) and then from `DIR/flume.opts`, each when it
/// exists; a later one wins.
fn read_flume_opts(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let read = |name: &str| -> anyhow::Result<Option<String>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        }
    };
    let mut defines = Vec::new();
    if let Some(text) = read("flume-env.sh")? {
        defines.extend(java_opts_defines(&text));
    }
    if let Some(text) = read("flume.opts")? {
        defines.extend(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .flat_map(str::split_whitespace)
                .filter_map(|t| t.strip_prefix("-D").map(str::to_string)),
        );
    }
    Ok(parse_defines(&defines))
}

/// The `-D` options that the `JAVA_OPTS` assignments of a `flume-env.sh` set, in
/// order: `export JAVA_OPTS="-Xmx2g -Dflume.monitoring.type=http"` and the
/// `JAVA_OPTS="$JAVA_OPTS -D..."` lines that add to it. The file is not run: other
/// shell (conditions, other variables) is passed over.
fn java_opts_defines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.strip_prefix("export ")
                .unwrap_or(l)
                .trim_start()
                .strip_prefix("JAVA_OPTS=")
        })
        .flat_map(|v| {
            v.trim_matches(|c| c == '"' || c == '\'')
                .split_whitespace()
                .filter_map(|t| t.strip_prefix("-D"))
                .map(|t| t.trim_end_matches(['"', '\'']).to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn parse_defines(defines: &[String]) -> BTreeMap<String, String> {
    defines
        .iter()
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (d.trim().to_string(), String::new()),
        })
        .collect()
}

fn init_logging(root_logger: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    // `-Dflume.root.logger=DEBUG,console` sets the level as it does for Flume; RUST_LOG
    // wins when both are given.
    let level = root_logger
        .and_then(|v| v.split(',').next())
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()))
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn monitor_addr(defines: &BTreeMap<String, String>) -> anyhow::Result<Option<SocketAddr>> {
    match defines.get("flume.monitoring.type").map(|s| s.to_ascii_lowercase()) {
        None => Ok(None),
        Some(t) if t == "http" || t == "org.apache.flume.instrumentation.http.httpmetricsserver" => {
            let port: u16 = match defines.get("flume.monitoring.port") {
                Some(p) => p.parse().with_context(|| {
                    format!("-Dflume.monitoring.port={p} is not a port number; use 1-65535")
                })?,
                None => 41414,
            };
            let host = defines
                .get("flume.monitoring.bind")
                .cloned()
                .unwrap_or_else(|| "0.0.0.0".into());
            let addr: SocketAddr = format!("{host}:{port}")
                .parse()
                .with_context(|| format!("-Dflume.monitoring.bind={host} is not an IP address"))?;
            Ok(Some(addr))
        }
        Some(t) => bail!(
            "-Dflume.monitoring.type={t} is not supported; use http (Flume's JSON at /metrics, Prometheus at /metrics/prometheus)"
        ),
    }
}

/// Where the configuration comes from, in merge order.
#[derive(Clone)]
enum ConfSource {
    File(PathBuf),
    Http(String),
}

impl ConfSource {
    fn name(&self) -> String {
        match self {
            ConfSource::File(p) => p.display().to_string(),
            ConfSource::Http(u) => u.clone(),
        }
    }

    fn read(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            ConfSource::File(p) => std::fs::read(p)
                .with_context(|| format!("cannot read configuration file {}", p.display())),
            ConfSource::Http(u) => http_get(u),
        }
    }
}

fn conf_sources(a: &AgentArgs) -> anyhow::Result<Vec<ConfSource>> {
    let mut v: Vec<ConfSource> = a.conf_file.iter().cloned().map(ConfSource::File).collect();
    for u in &a.conf_uri {
        if let Some(path) = u
            .strip_prefix("file://")
            .or_else(|| u.strip_prefix("file:"))
        {
            v.push(ConfSource::File(PathBuf::from(path)));
        } else if u.starts_with("http://") {
            v.push(ConfSource::Http(u.clone()));
        } else if u.starts_with("https://") {
            bail!("--conf-uri {u}: https is not supported; serve the file over http on a trusted network, or fetch it to a file and use -f");
        } else {
            bail!("--conf-uri {u}: use file:/path or http://host:port/path");
        }
    }
    Ok(v)
}

/// A plain HTTP/1.0 GET, enough for a configuration server.
fn http_get(url: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("http://").context("not an http URL")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    let timeout = Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout)
        .with_context(|| format!("cannot connect to {url}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: millrace-agent\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .with_context(|| format!("reading {url}"))?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{url} sent no HTTP header"))?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("{url} answered {}", head.lines().next().unwrap_or(""));
    }
    Ok(resp[split + 4..].to_vec())
}

/// A configuration as read, with a hash of its text to notice changes.
struct Loaded {
    cfg: Option<millrace_config::AgentConfig>,
    diags: Vec<Diagnostic>,
    hash: u64,
}

fn load_config(
    sources: &[ConfSource],
    agent: &str,
    defines: &BTreeMap<String, String>,
) -> anyhow::Result<Loaded> {
    use std::hash::{Hash, Hasher};
    let mut texts = Vec::new();
    let mut diags = Vec::new();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for src in sources {
        let bytes = src.read()?;
        bytes.hash(&mut h);
        let name: Arc<str> = Arc::from(src.name());
        let (text, d) = millrace_config::decode(&name, bytes);
        diags.extend(d);
        texts.push((name, text));
    }
    let (cfg, d) = millrace_config::load_texts(&texts, agent, defines);
    diags.extend(d);
    Ok(Loaded {
        cfg,
        diags,
        hash: h.finish(),
    })
}

async fn run_agent(a: AgentArgs, defines: BTreeMap<String, String>) -> anyhow::Result<()> {
    let monitor = monitor_addr(&defines)?;
    let sources = conf_sources(&a)?;
    let Loaded {
        cfg,
        diags,
        mut hash,
    } = load_config(&sources, &a.name, &defines)?;
    // Built even when the configuration has errors, to print every problem at once.
    let (agent, diags) = Agent::build_checked(cfg.as_ref(), diags, &Extensions::default());
    print_diags(&diags);
    let Some(agent) = agent else {
        bail!("the configuration has errors; the agent was not started");
    };
    let mut running = agent
        .start(monitor)
        .await
        .context("the agent cannot start")?;

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let default_poll = if sources.iter().any(|s| matches!(s, ConfSource::Http(_))) {
        300
    } else {
        30
    };
    let poll = Duration::from_secs(a.poll_interval.unwrap_or(default_poll).max(1));
    let watch = !a.no_reload_conf;
    loop {
        let forced = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => true,
            _ = tokio::time::sleep(poll), if watch => false,
        };
        match load_config(&sources, &a.name, &defines) {
            Err(e) => {
                tracing::error!("configuration not reloaded: {e:#}");
                running.count_rejected_reload();
            }
            Ok(l) if l.hash == hash && !forced => {}
            Ok(Loaded {
                cfg,
                diags,
                hash: h,
            }) => {
                hash = h;
                tracing::info!("configuration changed; reloading");
                let has_errors = diags.iter().any(Diagnostic::is_error);
                let result = match cfg {
                    Some(cfg) if !has_errors => match running.reload(&cfg).await {
                        Ok(w) => Ok(diags.into_iter().chain(w).collect::<Vec<_>>()),
                        Err(e) => {
                            let mut all: Vec<_> = diags.into_iter().chain(e).collect();
                            millrace_core::diag::sort(&mut all);
                            Err(all)
                        }
                    },
                    cfg => {
                        running.count_rejected_reload();
                        // Only checked, never applied: it lists every problem, as at start.
                        let ext = Extensions::default();
                        Err(Agent::build_checked(cfg.as_ref(), diags, &ext).1)
                    }
                };
                match result {
                    Ok(warnings) => {
                        for d in warnings {
                            tracing::warn!("{d}");
                        }
                        tracing::info!("configuration reloaded");
                    }
                    Err(diags) => {
                        for d in diags {
                            if d.is_error() {
                                tracing::error!("{d}");
                            } else {
                                tracing::warn!("{d}");
                            }
                        }
                        tracing::error!("the new configuration has errors and was not applied; the agent keeps running as it was");
                    }
                }
            }
        }
    }
    tracing::info!(
        "shutdown requested; a second SIGTERM or Ctrl-C stops at once, without waiting for the sinks to drain"
    );
    tokio::select! {
        _ = running.stop() => Ok(()),
        _ = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        } => {
            // A file channel keeps what it holds for the next start; a memory
            // channel's events are lost, which the second signal asked for.
            tracing::warn!("second stop signal: stopping now; events left in memory channels are lost");
            bail!("stopped by a second signal before the sinks drained")
        }
    }
}

fn avro_client(a: AvroClientArgs) -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut headers = millrace_core::Headers::new();
    if let Some(path) = &a.header_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the header file {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                bail!("{}:{}: expected key=value", path.display(), i + 1);
            };
            headers.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let input: Box<dyn BufRead> = match &a.filename {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let addr = format!("{}:{}", a.host, a.port);
    let batch_size = a.batch_size.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut client =
            millrace_avro::Client::connect(&addr, millrace_avro::ClientOptions::default()).await?;
        let mut sent = 0usize;
        let mut batch = Vec::with_capacity(batch_size);
        for line in input.split(b'\n') {
            let mut line = line.context("reading the input")?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            batch.push(millrace_core::Event::new(headers.clone(), line));
            if batch.len() == batch_size {
                client
                    .append_batch(&batch)
                    .await
                    .with_context(|| format!("sending to {addr} after {sent} events"))?;
                sent += batch.len();
                batch.clear();
            }
        }
        if !batch.is_empty() {
            client
                .append_batch(&batch)
                .await
                .with_context(|| format!("sending to {addr} after {sent} events"))?;
            sent += batch.len();
        }
        eprintln!("sent {sent} events to {addr}");
        anyhow::Ok(())
    })
}

fn configtest(a: ConfigtestArgs) -> ExitCode {
    let agents = match &a.name {
        Some(n) => vec![n.clone()],
        None => match millrace_config::agent_names(&a.conf_file) {
            Ok(names) if !names.is_empty() => names,
            Ok(_) => {
                let file: Arc<str> = Arc::from(a.conf_file[0].display().to_string());
                print_diags(&[Diagnostic::error(
                    &file,
                    0,
                    "no agent is configured in this file; add keys such as `a1.sources = r1`",
                )]);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut all = Vec::new();
    for name in &agents {
        let (cfg, diags) = match millrace_config::load(&a.conf_file, name) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        all.extend(Agent::build_checked(cfg.as_ref(), diags, &Extensions::default()).1);
    }
    millrace_core::diag::sort(&mut all);
    all.dedup();
    print_diags(&all);
    let errors = all.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("{errors} error(s); fix them and run configtest again");
        ExitCode::FAILURE
    } else {
        println!("configuration OK: agent(s) {}", agents.join(", "));
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flume_env_sh_java_opts_give_their_defines_in_order() {
        let text = "# export JAVA_OPTS=\"-Dcommented=out\"\n\
                    export JAVA_OPTS=\"-Xms100m -Xmx2000m -Dflume.monitoring.type=http\"\n\
                    FLUME_CLASSPATH=/opt/lib\n\
                    JAVA_OPTS=\"$JAVA_OPTS -Dflume.monitoring.port=34545 -Dflume.monitoring.type=HTTP \"\n\
                    export JAVA_OPTS='-Dquoted=single'\n";
        assert_eq!(
            java_opts_defines(text),
            [
                "flume.monitoring.type=http",
                "flume.monitoring.port=34545",
                "flume.monitoring.type=HTTP",
                "quoted=single"
            ]
        );
    }

    #[test]
    fn flume_opts_win_over_flume_env_sh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("flume-env.sh"),
            "export JAVA_OPTS=\"-Dflume.monitoring.type=http -Dflume.monitoring.port=1\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("flume.opts"), "-Dflume.monitoring.port=2\n").unwrap();
        let d = read_flume_opts(dir.path()).unwrap();
        assert_eq!(d["flume.monitoring.type"], "http");
        assert_eq!(d["flume.monitoring.port"], "2");
        assert!(read_flume_opts(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
