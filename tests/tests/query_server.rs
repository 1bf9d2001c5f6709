//! The query server through its binary: the quickstart configuration collecting the
//! sample logs into the store, then search, paging, summaries, live tail, purge, the
//! OpenAPI document, keys, and every error status with its JSON body.

use millrace_e2e::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const SAMPLES: [&str; 3] = ["access.log", "app.log", "payments.log"];

/// A directory laid out like the repository root: the quickstart configuration and a
/// copy of the sample logs (so tests may append to them).
fn quickstart_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    std::fs::copy(
        repo_path("configs/quickstart.conf"),
        dir.path().join("configs/quickstart.conf"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("samples/logs")).unwrap();
    for f in SAMPLES {
        std::fs::copy(
            repo_path(&format!("samples/logs/{f}")),
            dir.path().join("samples/logs").join(f),
        )
        .unwrap();
    }
    dir
}

fn sample_lines(dir: &Path) -> Vec<String> {
    SAMPLES
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(dir.join("samples/logs").join(f))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http_get(port, path).expect("the server answers");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let (status, text) =
        http_call(port, method, path, headers, body.as_bytes()).expect("the server answers");
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path} -> {status}: not JSON ({e}): {text:?}"));
    (status, v)
}

/// Asserts an error response: its status, code and (when given) field.
fn assert_error(
    port: u16,
    (method, path, headers, body): (&str, &str, &[(&str, &str)], &str),
    status: u16,
    code: &str,
    field: Option<&str>,
) -> Value {
    let (got, v) = call(port, method, path, headers, body);
    assert_eq!(got, status, "{method} {path}: {v}");
    assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
        "{method} {path}: a message says what to do: {v}"
    );
    let want = field.map_or(Value::Null, Value::from);
    assert_eq!(v["error"]["field"], want, "{method} {path}: {v}");
    v
}

/// Every event of a search, following `next_cursor`; returns the pages' ids in order.
fn all_pages(port: u16, query: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/events?{query}&cursor={c}"),
            None => format!("/api/v1/events?{query}"),
        };
        let page = get_json(port, &path);
        pages += 1;
        for e in page["events"].as_array().unwrap() {
            ids.push(e["id"].as_str().unwrap().to_string());
        }
        assert!(page["took_ms"].is_u64());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (ids, pages),
        }
    }
}

fn events_stored(port: u16) -> u64 {
    http_get(port, "/api/v1/store")
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
        .and_then(|v| v["events"].as_u64())
        .unwrap_or(0)
}

/// An SSE client: the response head and events are read line by line.
struct Tail {
    reader: BufReader<TcpStream>,
}

impl Tail {
    fn open(port: u16, query: &str) -> (u16, Tail) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "GET /api/v1/tail?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, Tail { reader })
    }

    /// Reads lines until one satisfies `f`, within `deadline`.
    fn until(&mut self, deadline: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + deadline;
        loop {
            assert!(Instant::now() < end, "tail: timed out waiting for {what}");
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("tail: the stream ended before {what}"),
                Ok(_) if f(line.trim_end()) => return line.trim_end().to_string(),
                Ok(_) => {}
                Err(e) => panic!("tail: {e} before {what}"),
            }
        }
    }
}

#[test]
fn quickstart_logs_are_searchable_paged_summarised_followed_and_purged() {
    let dir = quickstart_dir();
    let store = dir.path().join("store");
    let mut server = QueryServer::start(
        dir.path(),
        &[
            "-f",
            "configs/quickstart.conf",
            "-n",
            "a1",
            "--store",
            store.to_str().unwrap(),
        ],
    );
    let port = server.port;
    let lines = sample_lines(dir.path());
    wait_for(
        Duration::from_secs(60),
        "every sample line in the store",
        || events_stored(port) == lines.len() as u64,
    );

    // Search: `q` finds exactly the lines with the word, in any case.
    let want = lines.iter().filter(|l| words(l).contains("error")).count();
    let (found, _) = all_pages(port, "q=ERROR&limit=1000");
    assert_eq!(found.len(), want);
    let page = get_json(port, "/api/v1/events?q=error&limit=5");
    for e in page["events"].as_array().unwrap() {
        assert!(words(e["body"].as_str().unwrap()).contains("error"), "{e}");
        assert_eq!(e["host"], page["events"][0]["host"]);
        assert!(e["source"].as_str().unwrap().ends_with(".log"), "{e}");
    }
    // Newest first by default.
    let times: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // One event by id.
    let first = &page["events"][0];
    let one = get_json(
        port,
        &format!("/api/v1/events/{}", first["id"].as_str().unwrap()),
    );
    assert_eq!(&one, first);

    // Paging: small pages, both orders, give exactly the events of one big page.
    let levels = get_json(port, "/api/v1/levels");
    let warn = levels["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["value"] == "WARN")
        .unwrap()["count"]
        .as_u64()
        .unwrap();
    let (whole, _) = all_pages(port, "level=warn&limit=1000&order=asc");
    assert_eq!(whole.len() as u64, warn);
    for order in ["asc", "desc"] {
        let (paged, pages) = all_pages(port, &format!("level=WARN&limit=37&order={order}"));
        assert!(pages > 10);
        let unique: BTreeSet<&String> = paged.iter().collect();
        assert_eq!(unique.len(), paged.len(), "no event repeated ({order})");
        let mut expected = whole.clone();
        if order == "desc" {
            expected.reverse();
        }
        assert_eq!(paged, expected, "no event skipped ({order})");
    }

    // Histogram: per-hour counts add up, by level too.
    let h = get_json(port, "/api/v1/stats/histogram?interval=1h");
    let sum: u64 = h["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, lines.len() as u64);
    assert_eq!(h["interval_ms"], 3_600_000);
    let errors = get_json(port, "/api/v1/stats/histogram?interval=1h&level=ERROR");
    let sum: u64 = errors["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    let error_count = levels["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["value"] == "ERROR")
        .unwrap()["count"]
        .as_u64()
        .unwrap();
    assert_eq!(sum, error_count);

    // Top values: three sources of 1500 lines each; levels as /levels lists them.
    let top = get_json(port, "/api/v1/stats/top?field=source");
    let counts: Vec<u64> = top["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1500, 1500, 1500]);
    let top = get_json(port, "/api/v1/stats/top?field=level&limit=10");
    assert_eq!(top["values"], levels["levels"]);
    let top = get_json(port, "/api/v1/stats/top?field=level&q=payment");
    assert!(top["total"].as_u64().unwrap() > 0);
    assert_eq!(
        get_json(port, "/api/v1/hosts")["hosts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Tail: a line appended to a log arrives on the event stream.
    let (status, mut tail) = Tail::open(port, "q=zebra&level=error");
    assert_eq!(status, 200);
    tail.until(Duration::from_secs(10), "the stream to start", |l| {
        l == ": tailing"
    });
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("samples/logs/app.log"))
        .unwrap();
    writeln!(log, "2026-11-25 10:00:00,000 INFO  [orders] zebra seen").unwrap();
    writeln!(
        log,
        "2026-11-25 10:00:01,000 ERROR [orders] zebra crossing failed"
    )
    .unwrap();
    drop(log);
    let data = tail.until(Duration::from_secs(30), "the appended ERROR line", |l| {
        l.starts_with("data:")
    });
    let e: Value = serde_json::from_str(data.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(
        e["body"],
        "2026-11-25 10:00:01,000 ERROR [orders] zebra crossing failed"
    );
    assert_eq!(e["level"], "ERROR");
    drop(tail);

    // Senders and the hosted agent's Flume counters.
    let agents = get_json(port, "/api/v1/agents");
    assert_eq!(agents["senders"][0]["name"], "sink a1.store");
    assert!(agents["senders"][0]["events"].as_u64().unwrap() >= lines.len() as u64);
    assert_eq!(agents["agent"]["name"], "a1");
    assert_eq!(agents["agent"]["metrics"]["SINK.store"]["Type"], "SINK");

    // Purge: everything before 10:00 on the 24th goes, the rest stays.
    wait_for(
        Duration::from_secs(30),
        "both appended lines stored",
        || events_stored(port) == lines.len() as u64 + 2,
    );
    let cut = "2026-11-24T10:00:00Z";
    let (older, _) = all_pages(port, &format!("to={cut}&limit=1000"));
    assert!(!older.is_empty());
    let (status, v) = call(
        port,
        "DELETE",
        &format!("/api/v1/events?before={cut}"),
        &[],
        "",
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"].as_u64().unwrap(), older.len() as u64);
    assert_eq!(
        get_json(port, &format!("/api/v1/events?to={cut}"))["events"],
        Value::Array(vec![])
    );
    assert_eq!(
        events_stored(port),
        lines.len() as u64 + 2 - older.len() as u64
    );
    let store_info = get_json(port, "/api/v1/store");
    assert!(
        store_info["oldest"].as_str().unwrap() >= cut,
        "{store_info}"
    );
    assert_error(
        port,
        ("GET", &format!("/api/v1/events/{}", older[0]), &[], ""),
        404,
        "not_found",
        Some("id"),
    );

    assert!(
        server.terminate(Duration::from_secs(60)).success(),
        "{}",
        server.log_text()
    );
}

#[test]
fn the_openapi_document_lists_every_route_and_swagger_ui_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = QueryServer::start(dir.path(), &["--store", store.to_str().unwrap()]);
    let doc = get_json(server.port, "/api-docs/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("/api/v1/events", &["get", "post", "delete"][..]),
        ("/api/v1/events/{id}", &["get"]),
        ("/api/v1/stats/histogram", &["get"]),
        ("/api/v1/stats/top", &["get"]),
        ("/api/v1/hosts", &["get"]),
        ("/api/v1/levels", &["get"]),
        ("/api/v1/tail", &["get"]),
        ("/api/v1/agents", &["get"]),
        ("/api/v1/store", &["get"]),
        ("/api/v1/health", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        routes.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in routes {
        for m in methods {
            let op = &paths[path][m];
            assert!(
                op["responses"]["200"].is_object(),
                "{m} {path} documents its answer"
            );
            // The router has the route for the documented method: whatever the
            // answer, it is not "no route" (404) or "method not allowed" (405).
            if path != "/api/v1/tail" {
                let concrete = path.replace("{id}", "1-1");
                let (status, body) =
                    http_call(server.port, &m.to_ascii_uppercase(), &concrete, &[], b"").unwrap();
                assert!(
                    status != 405 && !body.contains("no route"),
                    "{m} {path}: {status} {body}"
                );
            }
        }
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    // The ranges documented are the ranges enforced.
    let limit = |path: &str| -> Value {
        let params = paths[path]["get"]["parameters"].as_array().unwrap();
        let p = params.iter().find(|p| p["name"] == "limit").unwrap();
        let s = &p["schema"];
        serde_json::json!([s["minimum"], s["maximum"], s["default"]])
    };
    assert_eq!(limit("/api/v1/events"), serde_json::json!([1, 1000, 100]));
    assert_eq!(limit("/api/v1/stats/top"), serde_json::json!([1, 100, 10]));
    // POST takes an array of events, each with a string body.
    let body =
        &paths["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["type"], "array", "{body}");
    let item = body["items"]["$ref"].as_str().unwrap();
    let item = &schemas[item.rsplit('/').next().unwrap()];
    assert_eq!(item["properties"]["body"]["type"], "string", "{item}");
    assert_eq!(item["required"], serde_json::json!(["body"]), "{item}");
    let (status, html) = http_get(server.port, "/docs/").unwrap();
    assert_eq!(status, 200);
    assert!(html.contains("swagger"), "{html}");
}

#[test]
fn keys_guard_the_api_and_every_error_is_json_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = QueryServer::start(
        dir.path(),
        &[
            "--store",
            store.to_str().unwrap(),
            "--api-key",
            "reader-key",
            "--admin-key",
            "admin-key",
            "--max-body-bytes",
            "2000",
            "--max-batch",
            "3",
            "--max-tail-clients",
            "1",
            "--query-timeout",
            "0ms",
        ],
    );
    let port = server.port;
    let read: &[(&str, &str)] = &[("Authorization", "Bearer reader-key")];
    let admin: &[(&str, &str)] = &[("X-Api-Key", "admin-key")];

    // 401: no key, a wrong key, and the read key where the admin key is needed.
    assert_error(
        port,
        ("GET", "/api/v1/levels", &[], ""),
        401,
        "unauthorized",
        None,
    );
    assert_error(
        port,
        ("GET", "/api/v1/levels", &[("X-Api-Key", "guess")], ""),
        401,
        "unauthorized",
        None,
    );
    assert_error(
        port,
        ("DELETE", "/api/v1/events?before=0", read, ""),
        401,
        "unauthorized",
        None,
    );
    assert_eq!(
        http_get(port, "/api/v1/health").unwrap().0,
        200,
        "health needs no key"
    );

    // The keys work: POST with the read key, read with either, purge with the admin key.
    let (status, v) = call(
        port,
        "POST",
        "/api/v1/events",
        read,
        r#"[{"headers": {"host": "web-1", "timestamp": "1000"}, "body": "ERROR first"}, {"body": "INFO second"}]"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], 2);
    let id = v["ids"][0].as_str().unwrap().to_string();
    let (status, v) = call(port, "GET", &format!("/api/v1/events/{id}"), admin, "");
    assert_eq!(
        (status, &v["body"], &v["level"], &v["time"]),
        (
            200,
            &Value::from("ERROR first"),
            &Value::from("ERROR"),
            &Value::from(1000)
        )
    );
    let (status, v) = call(port, "GET", "/api/v1/agents", read, "");
    assert_eq!(status, 200);
    assert_eq!(v["senders"][0]["name"], "http 127.0.0.1");
    assert_eq!(v["senders"][0]["events"], 2);
    assert_eq!(v["agent"], Value::Null);
    // The bearer scheme's name is case-insensitive.
    let (status, v) = call(
        port,
        "GET",
        "/api/v1/levels",
        &[("Authorization", "bearer reader-key")],
        "",
    );
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(port, "DELETE", "/api/v1/events?before=2000", admin, "");
    assert_eq!((status, &v["deleted"]), (200, &Value::from(1)));
    // 400: malformed or unknown parameters, each naming the parameter.
    assert_error(
        port,
        ("GET", "/api/v1/events?limit=0", read, ""),
        400,
        "invalid_parameter",
        Some("limit"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?limit=1001", read, ""),
        400,
        "invalid_parameter",
        Some("limit"),
    );
    let v = assert_error(
        port,
        ("GET", "/api/v1/events?limit=many", read, ""),
        400,
        "invalid_parameter",
        Some("limit"),
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a whole number"),
        "{v}"
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?color=red", read, ""),
        400,
        "unknown_parameter",
        Some("color"),
    );
    // Endpoints without parameters refuse them too, and say they take none.
    for path in [
        "/api/v1/store?x=1",
        "/api/v1/agents?x=1",
        "/api/v1/hosts?limit=1",
        "/api/v1/health?x=1",
        "/api/v1/events/1-1?x=1",
    ] {
        let v = assert_error(
            port,
            ("GET", path, read, ""),
            400,
            "unknown_parameter",
            Some(path.rsplit_once('?').unwrap().1.split('=').next().unwrap()),
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("takes no parameters"),
            "{path}: {v}"
        );
    }
    assert_error(
        port,
        ("POST", "/api/v1/events?x=1", read, r#"[{"body": "x"}]"#),
        400,
        "unknown_parameter",
        Some("x"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?from=yesterday", read, ""),
        400,
        "invalid_parameter",
        Some("from"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?order=up", read, ""),
        400,
        "invalid_parameter",
        Some("order"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?cursor=abc", read, ""),
        400,
        "invalid_cursor",
        Some("cursor"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events?header=nocolon", read, ""),
        400,
        "invalid_parameter",
        Some("header"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/stats/histogram?interval=5s", read, ""),
        400,
        "invalid_parameter",
        Some("interval"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/stats/top", read, ""),
        400,
        "missing_parameter",
        Some("field"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/stats/top?field=color", read, ""),
        400,
        "invalid_parameter",
        Some("field"),
    );
    assert_error(
        port,
        ("DELETE", "/api/v1/events", admin, ""),
        400,
        "missing_parameter",
        Some("before"),
    );
    assert_error(
        port,
        ("GET", "/api/v1/events/not-an-id", read, ""),
        400,
        "invalid_parameter",
        Some("id"),
    );
    // An id that is not even UTF-8 once decoded is still answered in JSON.
    assert_error(
        port,
        ("GET", "/api/v1/events/%FF", read, ""),
        400,
        "invalid_parameter",
        Some("id"),
    );
    assert_error(
        port,
        ("POST", "/api/v1/events", read, "[{"),
        400,
        "invalid_json",
        None,
    );

    // 404: no such event, no such route.
    assert_error(
        port,
        ("GET", "/api/v1/events/1-999999", read, ""),
        404,
        "not_found",
        Some("id"),
    );
    assert_error(
        port,
        ("GET", "/api/v2/events", read, ""),
        404,
        "not_found",
        None,
    );
    // 405: a route that exists, with a method it does not take.
    assert_error(
        port,
        ("PUT", "/api/v1/hosts", read, ""),
        405,
        "method_not_allowed",
        None,
    );

    // Compressed bodies, as Fluent Bit's and Vector's HTTP outputs send them.
    use std::io::Write as _;
    let two = br#"[{"body": "INFO packed one"}, {"body": "INFO packed two"}]"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(two).unwrap();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(two).unwrap();
    for (encoding, body) in [
        ("gzip", gz.finish().unwrap()),
        ("deflate", zlib.finish().unwrap()),
    ] {
        let headers = [read[0], ("Content-Encoding", encoding)];
        let (status, text) = http_call(port, "POST", "/api/v1/events", &headers, &body).unwrap();
        assert_eq!(status, 200, "{encoding}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["accepted"], 2, "{encoding}: {v}");
    }
    // What a body unpacks to is bounded as a plain body is (2000 bytes here).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!(r#"[{{"body": "{}"}}]"#, "x".repeat(5000)).as_bytes())
        .unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 2000);
    let headers = [read[0], ("Content-Encoding", "gzip")];
    let (status, text) = http_call(port, "POST", "/api/v1/events", &headers, &bomb).unwrap();
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("body_too_large"), "{text}");
    let (status, text) =
        http_call(port, "POST", "/api/v1/events", &headers, b"not gzip at all").unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_encoding"), "{text}");
    assert_error(
        port,
        (
            "POST",
            "/api/v1/events",
            &[read[0], ("Content-Encoding", "br")],
            "[]",
        ),
        415,
        "unsupported_encoding",
        None,
    );

    // 413: a body over --max-body-bytes, a batch over --max-batch.
    let big = format!(r#"[{{"body": "{}"}}]"#, "x".repeat(3000));
    assert_error(
        port,
        ("POST", "/api/v1/events", read, &big),
        413,
        "body_too_large",
        None,
    );
    assert_error(
        port,
        (
            "POST",
            "/api/v1/events",
            read,
            r#"[{"body":"a"},{"body":"b"},{"body":"c"},{"body":"d"}]"#,
        ),
        413,
        "batch_too_large",
        None,
    );

    // 422: well-formed but wrong.
    assert_error(
        port,
        (
            "GET",
            "/api/v1/events?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z",
            read,
            "",
        ),
        422,
        "invalid_range",
        Some("to"),
    );
    assert_error(
        port,
        ("POST", "/api/v1/events", read, r#"[{"body": 5}]"#),
        422,
        "invalid_event",
        Some("[0].body"),
    );
    assert_error(
        port,
        (
            "POST",
            "/api/v1/events",
            read,
            r#"[{"body": "x", "colour": "red"}]"#,
        ),
        422,
        "invalid_event",
        Some("[0].colour"),
    );
    assert_error(
        port,
        ("POST", "/api/v1/events", read, r#"{"body": "x"}"#),
        422,
        "invalid_event",
        None,
    );

    // 429: one tail client is the most this server allows.
    let tail = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = tail.try_clone().unwrap();
    write!(
        w,
        "GET /api/v1/tail HTTP/1.1\r\nHost: x\r\nX-Api-Key: reader-key\r\n\r\n"
    )
    .unwrap();
    let mut first = BufReader::new(tail);
    let mut status = String::new();
    first.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_error(
        port,
        ("GET", "/api/v1/tail", read, ""),
        429,
        "too_many_requests",
        None,
    );
    drop(first);

    // 503: a query past --query-timeout (0 ms here) is cut off.
    assert_error(
        port,
        ("GET", "/api/v1/events?q=first", read, ""),
        503,
        "query_timeout",
        None,
    );

    // A second server on the same store fails at once and says why.
    let started = Instant::now();
    let out = std::process::Command::new(bin("millrace-query-server"))
        .args([
            "--store",
            store.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
}

#[test]
fn help_explains_every_option() {
    let out = std::process::Command::new(bin("millrace-query-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--store",
        "--conf-file",
        "--name",
        "--api-key",
        "--admin-key",
        "--retention",
        "--max-store-bytes",
        "--query-timeout",
        "--max-body-bytes",
        "--max-tail-clients",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("quickstart.conf"), "{help}");
}

#[test]
fn a_far_off_timestamp_and_a_blank_host_do_not_spoil_the_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = QueryServer::start(dir.path(), &["--store", store.to_str().unwrap()]);
    let port = server.port;
    // Seconds sent where Flume's `timestamp` header wants milliseconds: 1970.
    let (status, v) = call(
        port,
        "POST",
        "/api/v1/events",
        &[],
        r#"[{"headers": {"timestamp": "1795523267", "host": "web-1"}, "body": "INFO in seconds"},
            {"headers": {"host": ""}, "body": "INFO blank host"}]"#,
    );
    assert_eq!(status, 200, "{v}");
    // A histogram without from/to spans the events found; when one far-off time
    // stretches it past the bucket limit, the answer says where the events lie.
    let v = assert_error(
        port,
        ("GET", "/api/v1/stats/histogram?interval=1m", &[], ""),
        400,
        "invalid_parameter",
        Some("interval"),
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the matching events run from 1970-01-21T"),
        "{v}"
    );
    // With a time range, the recent event is counted.
    let from = get_json(port, "/api/v1/store")["newest"]
        .as_str()
        .unwrap()
        .to_string();
    let v = get_json(
        port,
        &format!(
            "/api/v1/stats/histogram?interval=1m&from={}",
            from.replace('+', "%2B")
        ),
    );
    let counted: u64 = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 1, "{v}");
    // An empty host header is no host: it could not be asked for.
    let v = get_json(port, "/api/v1/hosts");
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["value"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-1"], "{v}");
}

#[test]
fn limits_of_zero_are_refused_at_start() {
    for (args, says) in [
        (&["--retention", "0d"][..], "must be more than 0"),
        (&["--retention-interval", "0s"][..], "must be more than 0"),
        (&["--max-store-bytes", "0"][..], "--max-store-bytes"),
        (&["--max-batch", "0"][..], "must be at least 1"),
        (&["--max-body-bytes", "0"][..], "must be at least 1"),
    ] {
        let out = std::process::Command::new(bin("millrace-query-server"))
            .args(args)
            .args(["--store", "/nonexistent/never-opened"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_configuration_error_stops_the_server_before_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.conf"),
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1 c9\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = stor\na1.sinks.k1.channel = c1\n\
         a1.channels.c1.capacity = lots\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin("millrace-query-server"))
        .args([
            "-f",
            "bad.conf",
            "-n",
            "a1",
            "--store",
            "store",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Every problem at once: an undefined channel hides none of the others.
    assert!(err.contains("bad.conf:5") && err.contains("`c9`"), "{err}");
    assert!(
        err.contains("bad.conf:7") && err.contains("did you mean `store`?"),
        "{err}"
    );
    assert!(err.contains("bad.conf:9"), "{err}");
}

/// A batch of `n` events for the crash test, each tagged with its batch number.
fn tagged_batch(batch: u64, n: u64) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "headers": {"batch": batch.to_string(), "host": "crash-test"},
                "body": format!("INFO batch {batch} event {i}"),
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

#[test]
fn killed_while_storing_it_keeps_every_acknowledged_batch_once() {
    const PER_BATCH: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let args = ["--store", store.to_str().unwrap()];
    // Batches the server answered 200 to, and the one in flight at each kill.
    let mut acked: Vec<u64> = Vec::new();
    let mut in_flight: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for round in 0..3 {
        let mut server = QueryServer::start(dir.path(), &args);
        let port = server.port;
        let (tx, rx) = std::sync::mpsc::channel();
        let first = next;
        let writer = std::thread::spawn(move || {
            let mut k = first;
            loop {
                match http_post(port, "/api/v1/events", &tagged_batch(k, PER_BATCH)) {
                    Some((200, _)) => tx.send(Ok(k)).unwrap(),
                    other => {
                        // Refused or cut off by the kill: stored whole or not at all.
                        let _ = tx.send(Err((k, other)));
                        return;
                    }
                }
                k += 1;
            }
        });
        // Kill after a few more batches each round, while the writer is mid-batch.
        let want = 5 + 7 * round;
        let end = Instant::now() + Duration::from_secs(60);
        let mut got = 0;
        while got < want {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(k)) => {
                    acked.push(k);
                    got += 1;
                }
                Ok(Err((k, answer))) => panic!("batch {k} refused: {answer:?}"),
                Err(e) => panic!("round {round}: {got} batches stored, then {e}"),
            }
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for r in rx.iter() {
            match r {
                Ok(k) => acked.push(k),
                Err((k, _)) => {
                    in_flight.push(k);
                    next = k + 1;
                }
            }
        }
        writer.join().unwrap();
    }

    let server = QueryServer::start(dir.path(), &args);
    let port = server.port;
    let count = |k: u64| -> u64 {
        let (ids, _) = all_pages(port, &format!("header=batch:{k}&limit=1000"));
        ids.len() as u64
    };
    for &k in &acked {
        assert_eq!(count(k), PER_BATCH, "acknowledged batch {k}");
    }
    let mut total = acked.len() as u64 * PER_BATCH;
    for &k in &in_flight {
        let n = count(k);
        assert!(n == 0 || n == PER_BATCH, "batch {k} in flight: {n} events");
        total += n;
    }
    assert_eq!(events_stored(port), total);
    // The reopened store takes new events.
    let (status, _) = http_post(port, "/api/v1/events", &tagged_batch(next, 1)).unwrap();
    assert_eq!(status, 200);
    assert_eq!(events_stored(port), total + 1);
}
