//! `millrace-agent`: the command line, shaped like `flume-ng`.
//!
//! ```text
//! millrace-agent agent -n a1 -f conf/flume.conf [-c conf] [-Dflume.monitoring.type=http -Dflume.monitoring.port=34545]
//! millrace-agent configtest -f conf/flume.conf [-n a1]
//! ```

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use millrace_core::Diagnostic;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
}

#[derive(Args)]
struct AgentArgs {
    /// The agent to run: the first part of every key (`a1` in `a1.sources = r1`).
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The configuration file (Flume properties format).
    #[arg(short = 'f', long = "conf-file", required = true)]
    conf_file: Vec<PathBuf>,
    /// Flume's configuration directory; accepted for compatibility (a `log4j2.xml`
    /// there is not read; set RUST_LOG or -Dflume.root.logger instead).
    #[arg(short = 'c', long = "conf")]
    conf_dir: Option<PathBuf>,
    /// Java-style system properties, e.g. `-Dflume.monitoring.type=http`
    /// `-Dflume.monitoring.port=34545` `-Dflume.root.logger=DEBUG,console`.
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    defines: Vec<String>,
    /// Accepted for compatibility; millrace does not reload the file yet.
    #[arg(long = "no-reload-conf")]
    no_reload_conf: bool,
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
        Cmd::Agent(a) => {
            let defines = parse_defines(&a.defines);
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
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

async fn run_agent(a: AgentArgs, defines: BTreeMap<String, String>) -> anyhow::Result<()> {
    let _ = (a.conf_dir, a.no_reload_conf);
    let monitor = monitor_addr(&defines)?;
    let (cfg, mut diags) =
        millrace_config::load(&a.conf_file, &a.name).map_err(anyhow::Error::from)?;
    let Some(cfg) = cfg else {
        print_diags(&diags);
        bail!("the configuration has errors; the agent was not started");
    };
    let (agent, more) = millrace_node::Agent::build(&cfg);
    diags.extend(more);
    millrace_core::diag::sort(&mut diags);
    print_diags(&diags);
    let Some(agent) = agent.filter(|_| !diags.iter().any(Diagnostic::is_error)) else {
        bail!("the configuration has errors; the agent was not started");
    };
    let running = agent
        .start(monitor)
        .await
        .context("cannot start the monitoring server")?;
    wait_for_signal().await;
    tracing::info!("shutdown requested");
    running.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn configtest(a: ConfigtestArgs) -> ExitCode {
    let agents = match &a.name {
        Some(n) => vec![n.clone()],
        None => match millrace_config::agent_names(&a.conf_file) {
            Ok(names) if !names.is_empty() => names,
            Ok(_) => {
                eprintln!(
                    "{}:0: error: no agent is configured in this file; add keys such as `a1.sources = r1`",
                    a.conf_file[0].display()
                );
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
        all.extend(diags);
        if let Some(cfg) = cfg {
            all.extend(millrace_node::Agent::build(&cfg).1);
        }
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
