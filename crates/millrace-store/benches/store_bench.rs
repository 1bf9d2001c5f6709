//! The query store at scale (issue 9, "Benchmark"): ingest rate, query latency, paging
//! at depth, bytes per event, purge rate and peak RSS.
//!
//!     cargo bench -p millrace-store --bench store_bench
//!
//! Environment: `STORE_BENCH_EVENTS` (default 10,000,000), `STORE_BENCH_BATCH` (events
//! per append, default 1000), `STORE_BENCH_RUNS` (runs per query, default 200),
//! `STORE_BENCH_PAGES` (pages per host chain, default 50), `STORE_BENCH_DEEP` (pages per
//! deep chain over the INFO events, default 1000), `STORE_BENCH_CHAINS` (deep chains,
//! default 10), `STORE_BENCH_INGEST_SECS` (stop ingesting after this long, even short of
//! `STORE_BENCH_EVENTS`; the queries then cover the events kept), `STORE_BENCH_LIVE_BATCHES`
//! (batches appended while time + host queries run, default 100),
//! `STORE_BENCH_WRITERS_EVENTS` (events for the concurrent writers table, default
//! 1,000,000; 0 leaves it out). The stores live in temporary directories under `TMPDIR`
//! and are removed at the end.
//!
//! Events are 200-byte log lines (`<RFC 3339 time> <LEVEL> [<service>] <message>
//! trace=<16 hex> <filler words>`) with the headers a tailing agent with the host and
//! timestamp interceptors sets: `timestamp`, `host` (50 hosts) and `file` (20 log
//! files). Times run over three days with up to 2 s of jitter; levels are INFO 70%,
//! DEBUG 15%, WARN 10%, ERROR 4.5%, FATAL 0.5%; messages come from 30 templates with
//! user ids, order numbers, durations and addresses filled in. Each batch is appended
//! and then synced, on the appending thread, as the store sink does before it commits
//! its take.
//!
//! The last table appends the same events, generated beforehand, to an empty store from
//! one thread and then from two, as two store sinks on one channel or two agents
//! sending at once do: the rate counts wall time, from the first append to the last
//! flush.
//!
//! The ingest table also gives the CPU time the process spent per 1,000,000 events
//! stored, less the time spent generating them: on a machine whose speed varies from
//! run to run it moves less than the rate, and with the number of cores it bounds the
//! rate.
//!
//! Besides the tables on stdout, it prints RSS to stderr before each query, so that a
//! query whose reads grow memory shows.

use millrace_core::Event;
use millrace_store::time::format_rfc3339;
use millrace_store::{Cursor, Filter, Order, Page, SearchResult, Store, StoreOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// The allocator of millrace-query-server, which hosts the store.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_764_000_000_000;
const SPAN_MS: u64 = 3 * 86_400_000;
const HOUR_MS: u64 = 3_600_000;
const BODY_BYTES: usize = 200;

const HOST_KINDS: [&str; 5] = ["web", "api", "db", "cache", "worker"];
const SERVICES: [&str; 20] = [
    "orders",
    "payments",
    "auth",
    "cart",
    "catalog",
    "search",
    "shipping",
    "inventory",
    "billing",
    "users",
    "notify",
    "gateway",
    "reports",
    "media",
    "pricing",
    "reviews",
    "session",
    "audit",
    "export",
    "scheduler",
];
/// Level and its share in thousandths.
const LEVELS: [(&str, u64); 5] = [
    ("INFO", 700),
    ("DEBUG", 150),
    ("WARN", 100),
    ("ERROR", 45),
    ("FATAL", 5),
];
/// `{u}` user, `{n}` number, `{k}` small number, `{ms}` duration, `{a}` amount,
/// `{ip}` address.
const TEMPLATES: [&str; 30] = [
    "user {u} placed order {n} total {a} items {k}",
    "payment declined for order {n} card issuer refused code {k}",
    "payment captured for order {n} amount {a}",
    "login succeeded for user {u} from {ip}",
    "login failed for user {u} from {ip} bad password",
    "session expired for user {u} after {k} minutes idle",
    "cache miss key product {n} fetched from database in {ms} ms",
    "request GET /api/v1/products/{n} completed status 200 in {ms} ms",
    "request POST /api/v1/cart/{n} completed status 201 in {ms} ms",
    "request GET /api/v1/search returned status 500 upstream timeout after {ms} ms",
    "connection pool exhausted waiting {ms} ms for a database connection",
    "shipment {n} dispatched carrier dhl tracking {n}",
    "inventory low for sku {n} remaining {k} units reorder scheduled",
    "email notification queued for user {u} template welcome",
    "report export finished rows {n} file size {k} kb",
    "retrying upstream call to pricing service attempt {k} of 5",
    "slow query detected on table orders took {ms} ms",
    "disk usage on volume data at {k} percent",
    "scheduled job cleanup started run {n}",
    "scheduled job cleanup finished run {n} removed {k} rows",
    "invalid token presented by client {ip} rejected",
    "rate limit exceeded for api key {u} requests {k} per minute",
    "garbage collection paused application for {ms} ms heap {k} mb",
    "config reloaded from /etc/app/config.yaml version {k}",
    "websocket closed for user {u} code 1006 abnormal closure",
    "audit record written action delete resource order {n} by user {u}",
    "price updated for sku {n} old {a} new {a}",
    "review {n} submitted by user {u} rating {k} stars",
    "checkout started by user {u} cart {n} items {k}",
    "health check passed latency {ms} ms",
];
const FILLER: [&str; 24] = [
    "thread", "worker", "pool", "region", "eu", "west", "zone", "replica", "shard", "tenant",
    "acme", "build", "release", "stable", "canary", "node", "pod", "cluster", "primary", "batch",
    "queue", "stream", "span", "client",
];

/// SplitMix64: fast, seedable, good enough to spread test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn host(i: u64) -> String {
    format!("{}-{:02}", HOST_KINDS[(i / 10) as usize], i % 10 + 1)
}

fn level(rng: &mut Rng) -> &'static str {
    let mut r = rng.below(1000);
    for (l, share) in LEVELS {
        if r < share {
            return l;
        }
        r -= share;
    }
    "INFO"
}

fn fill(template: &str, rng: &mut Rng, out: &mut String) {
    use std::fmt::Write;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap_or(0);
        let _ = match &rest[open + 1..close] {
            "u" => write!(out, "u{}", rng.below(100_000)),
            "n" => write!(out, "{}", 100_000 + rng.below(900_000)),
            "k" => write!(out, "{}", rng.below(100)),
            "ms" => write!(out, "{}", rng.below(5000)),
            "a" => write!(out, "{}.{:02}", rng.below(1000), rng.below(100)),
            "ip" => write!(
                out,
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            _ => Ok(()),
        };
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
}

/// Event `i` of `n`: its time grows with `i` over [`SPAN_MS`].
fn event(i: u64, n: u64, rng: &mut Rng) -> Event {
    use std::fmt::Write;
    let time = T0 + (i as u128 * SPAN_MS as u128 / n as u128) as u64 + rng.below(2000);
    let svc = rng.below(SERVICES.len() as u64) as usize;
    let mut body = String::with_capacity(BODY_BYTES + 40);
    let _ = write!(
        body,
        "{} {} [{}] ",
        format_rfc3339(time),
        level(rng),
        SERVICES[svc]
    );
    fill(rng.pick(&TEMPLATES), rng, &mut body);
    let _ = write!(body, " trace={:016x}", rng.next());
    while body.len() < BODY_BYTES {
        body.push(' ');
        body.push_str(rng.pick(&FILLER));
    }
    body.truncate(BODY_BYTES);
    Event::from_body(body)
        .with_header("timestamp", time.to_string())
        .with_header("host", host(rng.below(50)))
        .with_header("file", format!("/var/log/{0}/{0}.log", SERVICES[svc]))
}

/// The literal words of each template (what a user would search for).
fn template_words() -> Vec<Vec<String>> {
    TEMPLATES
        .iter()
        .map(|t| {
            let mut w: Vec<String> = t
                .split(|c: char| !c.is_alphanumeric() && c != '{' && c != '}')
                .filter(|w| {
                    w.len() >= 3 && !w.contains('{') && !w.bytes().all(|b| b.is_ascii_digit())
                })
                .map(str::to_lowercase)
                .collect();
            w.sort();
            w.dedup();
            w
        })
        .collect()
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user and system) of the whole process so far.
fn process_cpu() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds of each live thread of the process by its name, digits at the end
/// left out (`store-append-0` and `store-append-1` are `store-append`).
fn threads_cpu() -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = thread_group(&stat[open + 1..close]);
        // After the name: state is field 3 of stat, utime 14 and stime 15.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            *by_name.entry(name).or_default() += (user + system) / ticks;
        }
    }
    by_name
}

/// A thread's name without the number at its end, which tells apart the threads of
/// one pool.
fn thread_group(name: &str) -> String {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('-')
        .to_string()
}

/// The name of the calling thread as [`threads_cpu`] gives it.
fn threads_cpu_name() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|c| thread_group(c.trim_end()))
        .unwrap_or_default()
}

/// CPU seconds of the calling thread so far.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Bytes the files under `dir` occupy on disk (allocated blocks).
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for entry in rd.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                total += du(&entry.path());
            } else {
                total += md.blocks() * 512;
            }
        }
    }
    total
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Latencies {
    name: String,
    samples: Vec<Duration>,
    /// Runs that returned fewer results than asked for.
    short: usize,
}

impl Latencies {
    fn new(name: &str) -> Latencies {
        eprintln!("  RSS {} MB before {name}", proc_status_kb("VmRSS:") / 1024);
        Latencies {
            name: name.to_string(),
            samples: Vec::new(),
            short: 0,
        }
    }

    fn time(&mut self, want: usize, run: impl FnOnce() -> SearchResult) -> SearchResult {
        let start = Instant::now();
        let r = run();
        self.samples.push(start.elapsed());
        if r.events.len() < want {
            self.short += 1;
        }
        r
    }

    fn pct(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        let idx = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[idx.clamp(1, s.len()) - 1]
    }

    fn row(&self) -> String {
        if self.samples.is_empty() {
            return format!("| {} | 0 | | | | | |", self.name);
        }
        let mean = self.samples.iter().sum::<Duration>() / self.samples.len() as u32;
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            self.name,
            self.samples.len(),
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(*self.samples.iter().max().unwrap_or(&Duration::ZERO)),
            ms(mean),
            self.short
        )
    }
}

fn main() {
    let n = env_u64("STORE_BENCH_EVENTS", 10_000_000).max(1);
    let batch = env_u64("STORE_BENCH_BATCH", 1000).max(1);
    let runs = env_u64("STORE_BENCH_RUNS", 200).max(1) as usize;
    let pages = env_u64("STORE_BENCH_PAGES", 50).max(2) as usize;
    let deep = env_u64("STORE_BENCH_DEEP", 1000).max(2) as usize;
    let chains = env_u64("STORE_BENCH_CHAINS", 10).max(1) as usize;
    let ingest_cap = Duration::from_secs(env_u64("STORE_BENCH_INGEST_SECS", u64::MAX / 4));
    const LIMIT: usize = 100;

    let tmp = tempfile::Builder::new()
        .prefix("store-bench")
        .tempdir()
        .expect("a temporary directory");
    let dir = tmp.path().join("store");
    let mut store = Store::open(&dir, StoreOptions::default()).expect("open the store");

    println!(
        "store_bench: {n} events of {BODY_BYTES} bytes, batch {batch}, {runs} runs per query, \
         paging {pages} pages of {LIMIT}; store in {}",
        dir.display()
    );

    // Ingest.
    let mut rng = Rng(0x5eed);
    let mut append_time = Duration::ZERO;
    let mut flush_time = Duration::ZERO;
    let wall = Instant::now();
    let cpu_start = process_cpu();
    let threads_start = threads_cpu();
    let mut generating_cpu = 0.0;
    let mut i = 0u64;
    let mut next_report = n / 10;
    while i < n {
        let end = (i + batch).min(n);
        let g = thread_cpu();
        let events: Vec<Event> = (i..end).map(|j| event(j, n, &mut rng)).collect();
        generating_cpu += thread_cpu() - g;
        let t = Instant::now();
        store.append(&events).expect("append");
        let t2 = Instant::now();
        store.sync().expect("sync");
        append_time += t2 - t;
        flush_time += t2.elapsed();
        i = end;
        if i >= next_report || wall.elapsed() >= ingest_cap {
            eprintln!(
                "  ingested {i} events in {:.0} s ({:.0} events/s so far), RSS {} MB",
                wall.elapsed().as_secs_f64(),
                i as f64 / (append_time + flush_time).as_secs_f64(),
                proc_status_kb("VmRSS:") / 1024
            );
            next_report += n / 10;
        }
        if wall.elapsed() >= ingest_cap && i < n {
            eprintln!("  ingest stopped after {ingest_cap:?} at {i} of {n} events");
            break;
        }
    }
    let wall = wall.elapsed();
    let ingest_cpu = process_cpu() - cpu_start - generating_cpu;
    // Where that CPU went: each thread's share, the bench's own thread less the event
    // generation, and what threads that ended meanwhile took.
    let main_name = threads_cpu_name();
    let mut by_thread: Vec<(String, f64)> = threads_cpu()
        .into_iter()
        .map(|(name, cpu)| {
            let mut used = cpu - threads_start.get(&name).copied().unwrap_or(0.0);
            if name == main_name {
                used -= generating_cpu;
            }
            (name, used)
        })
        .filter(|(_, used)| *used >= 0.005)
        .collect();
    let ended = ingest_cpu - by_thread.iter().map(|(_, c)| c).sum::<f64>();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_thread.push(("threads that ended".to_string(), ended.max(0.0)));
    // Events kept, and the part of the time span they cover.
    let total_n = n;
    let (n, span) = (i, (SPAN_MS as u128 * i as u128 / n as u128) as u64);
    let ingest = append_time + flush_time;
    let stats = store.stats().expect("stats");
    assert_eq!(stats.events, n, "every event is counted");
    let load_after_ingest = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let disk_du = du(&dir);
    let hwm_ingest = proc_status_kb("VmHWM:");
    // A restart: the events not yet in an index run are indexed again at open.
    drop(store);
    let reopen = Instant::now();
    store = Store::open(&dir, StoreOptions::default()).expect("reopen the store");
    let reopen = reopen.elapsed();
    assert_eq!(
        store.stats().expect("stats").events,
        n,
        "every event is kept"
    );

    // Queries.
    let mut rng = Rng(0x9e7);
    let words = template_words();
    let page = |cursor: Option<Cursor>| Page {
        order: Order::Desc,
        limit: LIMIT,
        cursor,
    };
    let random_to = |rng: &mut Rng| T0 + span / 10 + rng.below(span - span / 10);
    let random_level = |rng: &mut Rng| LEVELS[rng.below(LEVELS.len() as u64) as usize].0;
    let random_q = |rng: &mut Rng| {
        let w = &words[rng.below(words.len() as u64) as usize];
        let a = rng.below(w.len() as u64) as usize;
        let b = (a + 1 + rng.below(w.len() as u64 - 1) as usize) % w.len();
        format!("{} {}", w[a], w[b])
    };

    // A window holding about 500 events of one host on average (at least an hour).
    let window = (span * 500 * 50 / n)
        .div_ceil(HOUR_MS)
        .clamp(1, 24)
        .min(span / HOUR_MS / 2)
        .max(1)
        * HOUR_MS;
    let mut time_host = Latencies::new(&format!(
        "(a) time ({} h at random) + host",
        window / HOUR_MS
    ));
    for _ in 0..runs {
        let from = T0 + rng.below(span.saturating_sub(window).max(1));
        let f = Filter {
            from: Some(from),
            to: Some(from + window),
            hosts: vec![host(rng.below(50))],
            ..Filter::default()
        };
        time_host.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    let mut level_newest = Latencies::new("(b) level, newest first");
    for _ in 0..runs {
        let f = Filter {
            levels: vec![random_level(&mut rng).to_string()],
            ..Filter::default()
        };
        level_newest.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    let mut level_at = Latencies::new("(b') level, before a random time");
    for _ in 0..runs {
        let f = Filter {
            to: Some(random_to(&mut rng)),
            levels: vec![random_level(&mut rng).to_string()],
            ..Filter::default()
        };
        level_at.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    let mut q_newest = Latencies::new("(c) q (two words), newest first");
    for _ in 0..runs {
        let f = Filter {
            q: Some(random_q(&mut rng)),
            ..Filter::default()
        };
        q_newest.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    let mut q_at = Latencies::new("(c') q (two words), before a random time");
    for _ in 0..runs {
        let f = Filter {
            to: Some(random_to(&mut rng)),
            q: Some(random_q(&mut rng)),
            ..Filter::default()
        };
        q_at.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    let mut first_pages = Latencies::new("(d) host, page 1");
    let mut deep_pages = Latencies::new(&format!("(d) host, pages 2-{pages} (each)"));
    let mut last_page = Latencies::new(&format!("(d) host, page {pages}"));
    let mut chain = Duration::ZERO;
    for _ in 0..runs {
        let f = Filter {
            hosts: vec![host(rng.below(50))],
            ..Filter::default()
        };
        let start = Instant::now();
        let mut cursor = None;
        let mut last_id = None;
        for p in 1..=pages {
            let run = || store.search(&f, &page(cursor), None).expect("query");
            let r = match p {
                1 => first_pages.time(LIMIT, run),
                p if p == pages => {
                    let r = last_page.time(LIMIT, run);
                    let d = *last_page.samples.last().unwrap_or(&Duration::ZERO);
                    deep_pages.samples.push(d);
                    r
                }
                _ => deep_pages.time(LIMIT, run),
            };
            if let (Some(prev), Some(first)) = (last_id, r.events.first()) {
                assert!(first.id < prev, "pages follow on without repeats");
            }
            last_id = r.events.last().map(|e| e.id);
            cursor = r.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        chain += start.elapsed();
    }

    // Small fractions: one host's FATAL events (0.01% of all), and a user id in `q`
    // (a handful of events each).
    let mut rare_level = Latencies::new("(e) level FATAL + host (0.01%)");
    for _ in 0..runs {
        let f = Filter {
            levels: vec!["FATAL".to_string()],
            hosts: vec![host(rng.below(50))],
            ..Filter::default()
        };
        rare_level.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }
    let mut rare_q = Latencies::new("(f) q one user id (a few events)");
    for _ in 0..runs {
        let f = Filter {
            q: Some(format!("u{}", rng.below(100_000))),
            ..Filter::default()
        };
        rare_q.time(LIMIT, || {
            store.search(&f, &page(None), None).expect("query")
        });
    }

    // Deep paging: the INFO events (70% of all), newest first, `deep` pages by cursor.
    let mut deep_first = Latencies::new("(d') INFO, page 1");
    let mut deep_each = Latencies::new(&format!("(d') INFO, pages 2-{deep} (each)"));
    let mut deep_tail = Latencies::new(&format!(
        "(d') INFO, pages {}-{deep} (each)",
        deep - deep / 10 + 1
    ));
    let mut deep_last = Latencies::new(&format!("(d') INFO, page {deep}"));
    let mut deep_chain = Duration::ZERO;
    for _ in 0..chains {
        let f = Filter {
            levels: vec!["INFO".to_string()],
            ..Filter::default()
        };
        let start = Instant::now();
        let mut cursor = None;
        let mut last_id = None;
        for p in 1..=deep {
            let run = || store.search(&f, &page(cursor), None).expect("query");
            let r = if p == 1 {
                deep_first.time(LIMIT, run)
            } else {
                deep_each.time(LIMIT, run)
            };
            if p > 1 {
                let d = *deep_each.samples.last().unwrap_or(&Duration::ZERO);
                if p > deep - deep / 10 {
                    deep_tail.samples.push(d);
                }
                if p == deep {
                    deep_last.samples.push(d);
                }
            }
            if let (Some(prev), Some(first)) = (last_id, r.events.first()) {
                assert!(first.id < prev, "pages follow on without repeats");
            }
            last_id = r.events.last().map(|e| e.id);
            cursor = r.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        deep_chain += start.elapsed();
    }

    // Purge: the oldest 1% of the time span, with time + host queries running meanwhile.
    let purge_before = T0 + span / 100;
    let mut during_purge = Latencies::new("(a) during a purge");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (purged, purge_time) = std::thread::scope(|s| {
        let purge = s.spawn(|| {
            let start = Instant::now();
            let r = store.purge_before(purge_before).expect("purge");
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            (r, start.elapsed())
        });
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let from = purge_before + rng.below((span - span / 100).saturating_sub(window).max(1));
            let f = Filter {
                from: Some(from),
                to: Some(from + window),
                hosts: vec![host(rng.below(50))],
                ..Filter::default()
            };
            during_purge.time(LIMIT, || {
                store.search(&f, &page(None), None).expect("query")
            });
        }
        purge.join().expect("the purge thread")
    });

    // Queries while the sink appends: `ingest_batches` more batches (times just past
    // the span) with time + host queries running meanwhile.
    // 100 batches give the queries meanwhile about a thousand runs, enough for a p99.
    let ingest_batches = env_u64("STORE_BENCH_LIVE_BATCHES", 100);
    let mut during_ingest = Latencies::new("(a) during ingest");
    let done = std::sync::atomic::AtomicBool::new(false);
    let live_time = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = Rng(0x11fe);
            let start = Instant::now();
            for b in 0..ingest_batches {
                let events: Vec<Event> = (0..batch)
                    .map(|j| event(n + b * batch + j, total_n, &mut rng))
                    .collect();
                store.append(&events).expect("append");
                store.sync().expect("sync");
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            start.elapsed()
        });
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let from =
                T0 + span / 100 + rng.below((span - span / 100).saturating_sub(window).max(1));
            let f = Filter {
                from: Some(from),
                to: Some(from + window),
                hosts: vec![host(rng.below(50))],
                ..Filter::default()
            };
            during_ingest.time(LIMIT, || {
                store.search(&f, &page(None), None).expect("query")
            });
        }
        writer.join().expect("the writer thread")
    });

    let hwm = proc_status_kb("VmHWM:");
    let rss = proc_status_kb("VmRSS:");

    let rate = |events: u64, d: Duration| events as f64 / d.as_secs_f64();
    println!();
    println!("| ingest | value |");
    println!("|---|---|");
    println!("| events | {n} |");
    println!(
        "| events/s (append + flush time) | {:.0} |",
        rate(n, ingest)
    );
    println!(
        "| events/s (wall, with event generation) | {:.0} |",
        rate(n, wall)
    );
    println!(
        "| append s / flush s / wall s | {:.1} / {:.1} / {:.1} |",
        append_time.as_secs_f64(),
        flush_time.as_secs_f64(),
        wall.as_secs_f64()
    );
    println!(
        "| CPU s per 1,000,000 events (all threads, less event generation) | {:.1} |",
        ingest_cpu * 1e6 / n as f64
    );
    let per_thread: Vec<String> = by_thread
        .iter()
        .map(|(name, cpu)| {
            let name = if *name == main_name { "bench" } else { name };
            format!("{name} {:.1}", cpu * 1e6 / n as f64)
        })
        .collect();
    println!(
        "| the same by thread (bench: the appending thread, less event generation) | {} |",
        per_thread.join(", ")
    );
    println!(
        "| stored bytes per event (records + indexes) | {:.0} |",
        stats.stored_bytes as f64 / n as f64
    );
    println!(
        "| disk_bytes per event (sled and segment files) | {:.0} |",
        stats.disk_bytes as f64 / n as f64
    );
    println!(
        "| allocated on disk per event (du) | {:.0} ({:.2} GB in all) |",
        disk_du as f64 / n as f64,
        disk_du as f64 / 1e9
    );
    println!(
        "| peak RSS after ingest (VmHWM) | {:.0} MB |",
        hwm_ingest as f64 / 1024.0
    );
    println!(
        "| reopen (sled's recovery, block summaries, the log since the last checkpoint read back, events not yet in a run indexed again) | {:.2} s |",
        reopen.as_secs_f64()
    );
    println!();
    println!(
        "| query ({LIMIT} results asked) | runs | p50 ms | p99 ms | max ms | mean ms | short |"
    );
    println!("|---|---|---|---|---|---|---|");
    for l in [
        &time_host,
        &level_newest,
        &level_at,
        &q_newest,
        &q_at,
        &first_pages,
        &deep_pages,
        &last_page,
        &rare_level,
        &rare_q,
        &deep_first,
        &deep_each,
        &deep_tail,
        &deep_last,
        &during_purge,
        &during_ingest,
    ] {
        println!("{}", l.row());
    }
    println!();
    println!("| other | value |");
    println!("|---|---|");
    println!(
        "| {pages}-page chain (mean) | {:.1} ms |",
        ms(chain / runs as u32)
    );
    println!(
        "| {deep}-page INFO chain (mean) | {:.1} ms |",
        ms(deep_chain / chains as u32)
    );
    println!(
        "| load average after ingest / at end | {} / {} |",
        load_after_ingest
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| purge of the oldest 1% of the span | {purged} events in {:.1} s ({:.0} events/s) |",
        purge_time.as_secs_f64(),
        rate(purged, purge_time)
    );
    println!(
        "| appends during (a) during ingest | {} events in {:.1} s ({:.0} events/s) |",
        ingest_batches * batch,
        live_time.as_secs_f64(),
        rate(ingest_batches * batch, live_time)
    );
    println!(
        "| peak RSS (VmHWM) / RSS at end | {:.0} MB / {:.0} MB |",
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    drop(store);
    drop(tmp);
    let writers_events = env_u64("STORE_BENCH_WRITERS_EVENTS", 1_000_000);
    if writers_events > 0 {
        writers_table(writers_events, batch);
    }
}

/// Appends `n` events, generated beforehand, to an empty store from one thread and
/// then from two; prints the rate of each.
fn writers_table(n: u64, batch: u64) {
    let mut rng = Rng(0x3e17);
    let batches: Vec<Vec<Event>> = (0..n.div_ceil(batch))
        .map(|b| {
            (b * batch..((b + 1) * batch).min(n))
                .map(|i| event(i, n, &mut rng))
                .collect()
        })
        .collect();
    println!();
    println!("| writers ({n} events generated beforehand, empty store) | events/s (wall) |");
    println!("|---|---|");
    for writers in [1, 2] {
        let tmp = tempfile::Builder::new()
            .prefix("store-bench-writers")
            .tempdir()
            .expect("a temporary directory");
        let store = Store::open(&tmp.path().join("store"), StoreOptions::default())
            .expect("open the store");
        let next = std::sync::atomic::AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..writers {
                s.spawn(|| loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(events) = batches.get(b) else { break };
                    store.append(events).expect("append");
                    store.sync().expect("sync");
                });
            }
        });
        let took = start.elapsed();
        assert_eq!(
            store.stats().expect("stats").events,
            n,
            "every event is kept"
        );
        println!("| {writers} | {:.0} |", n as f64 / took.as_secs_f64());
    }
}
