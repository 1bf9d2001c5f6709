//! `millrace-agent configtest` through the real binary.

use millrace_e2e::*;
use std::process::Command;

fn configtest(conf: &std::path::Path, agent: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(bin("millrace-agent"));
    cmd.arg("configtest").arg("-f").arg(conf);
    if let Some(a) = agent {
        cmd.args(["-n", a]);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `text` written to `NAME` in a fresh directory, kept as long as the TempDir is.
fn conf_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join(name);
    std::fs::write(&conf, text).unwrap();
    (dir, conf)
}

/// `millrace-agent agent -n a1 -f CONF` on a configuration it must refuse: its exit
/// status and what it printed on stderr.
fn agent_refusing(conf: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(bin("millrace-agent"))
        .args(["agent", "-n", "a1", "-f"])
        .arg(conf)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Checks that configtest reports exactly the `expect` lines about `conf`, in that
/// order (each line given by its start), and that the agent refuses to start with
/// all of them too, not just the first kind.
fn refused_with(conf: &std::path::Path, expect: &[String]) {
    let f = conf.display().to_string();
    let (code, text) = configtest(conf, Some("a1"));
    assert_eq!(code, 1, "{text}");
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(&f)).collect();
    assert_eq!(found.len(), expect.len(), "{text}");
    for (line, e) in found.iter().zip(expect) {
        assert!(line.starts_with(e.as_str()), "{e}\n{text}");
    }
    let (code, err) = agent_refusing(conf);
    assert_eq!(code, Some(1));
    assert!(expect.iter().all(|e| err.contains(e.as_str())), "{err}");
}

#[test]
fn flume_single_node_example_passes() {
    let (code, text) = configtest(&repo_path("configs/example.conf"), Some("a1"));
    assert_eq!(code, 0, "{text}");
}

#[test]
fn five_mistakes_are_all_reported_with_their_lines() {
    let (_dir, conf) = conf_file(
        "broken.conf",
        "# five mistakes\n\
         a1.sources = r1\n\
         a1.channels = c1\n\
         a1.sinks = k1 k2\n\
         a1.sources.r1.type = netcat\n\
         a1.sources.r1.bind = 127.0.0.1\n\
         a1.sources.r1.port = 44444\n\
         a1.sources.r1.channels = c9\n\
         a1.channels.c1.type = memory\n\
         a1.channels.c1.capacity = lots\n\
         a1.sinks.k1.type = loggr\n\
         a1.sinks.k1.channel = c1\n\
         a1.sinks.k2.type = null\n\
         a1.channels.c1.transactionCapacity = 100\n\
         a1.channels.c1.keepalive = 3\n",
    );
    let (code, text) = configtest(&conf, Some("a1"));
    assert_eq!(code, 1, "{text}");
    let f = conf.display().to_string();
    let expect = [
        (8, "c9"),          // undefined channel
        (10, "capacity"),   // not a number
        (11, "`loggr`"),    // unknown sink type, named
        (13, "k2"),         // sink without a channel
        (15, "keep-alive"), // unknown property, did-you-mean
    ];
    for (line, needle) in expect {
        let prefix = format!("{f}:{line}: ");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(needle)),
            "no diagnostic at line {line} mentioning {needle}:\n{text}"
        );
    }
}

#[test]
fn agent_refuses_to_start_on_errors_with_the_same_messages() {
    let (_dir, conf) = conf_file(
        "broken.conf",
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = nosuchsource\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
    );
    let (code, err) = agent_refusing(&conf);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("{}:4: error:", conf.display())) && err.contains("`nosuchsource`"),
        "{err}"
    );
}

#[test]
fn an_undefined_channel_hides_no_other_problem() {
    let (_dir, conf) = conf_file(
        "broken.conf",
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\na1.channels.c1.capacity = notanumber\n\
         a1.sinks.k1.type = logger\na1.sinks.k1.channel = c2\n",
    );
    let f = conf.display().to_string();
    refused_with(
        &conf,
        &[
            format!("{f}:7: error: `a1.channels.c1.capacity` = `notanumber`"),
            format!("{f}:9: error: `a1.sinks.k1.channel` names channel `c2`"),
        ],
    );
}

#[test]
fn missing_channels_hide_no_other_problem() {
    // A source with no channels, a sink with two, a sink with none: each one's own
    // mistake is reported too, and no selector line is blamed for the missing list.
    let (_dir, conf) = conf_file(
        "nochannels.conf",
        "a1.sources = r1\na1.channels = c1 c2\na1.sinks = k1 k2\n\
         a1.sources.r1.type = netcat\na1.sources.r1.bind = 127.0.0.1\n\
         a1.sources.r1.port = notaport\n\
         a1.sources.r1.selector.type = multiplexing\na1.sources.r1.selector.default = c1\n\
         a1.channels.c1.type = memory\na1.channels.c2.type = memory\n\
         a1.sinks.k1.type = logger\na1.sinks.k1.channel = c1 c2\na1.sinks.k1.batchSize = -5\n\
         a1.sinks.k2.type = file_roll\na1.sinks.k2.sink.rollInterval = often\n",
    );
    let f = conf.display().to_string();
    refused_with(
        &conf,
        &[
            format!("{f}:4: error: source `r1` has no channels"),
            format!("{f}:6: error: `a1.sources.r1.port` = `notaport`"),
            format!("{f}:12: error: sink `k1` names 2 channels"),
            format!("{f}:13: error: `a1.sinks.k1.batchSize` = -5 is out of range"),
            format!("{f}:14: error: sink `k2` has no channel"),
            format!("{f}:14: error: missing required property `a1.sinks.k2.sink.directory`"),
            format!("{f}:15: error: `a1.sinks.k2.sink.rollInterval` = `often`"),
        ],
    );
}

#[test]
fn an_interceptor_with_no_type_hides_no_other_problem() {
    let (_dir, conf) = conf_file(
        "interceptors.conf",
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.totalEvents = many\n\
         a1.sources.r1.channels = c1\na1.sources.r1.interceptors = i1 i2 i3\n\
         a1.sources.r1.interceptors.i1.preserveExisting = true\n\
         a1.sources.r1.interceptors.i2.type = host\n\
         a1.sources.r1.interceptors.i2.useIP = maybe\n\
         a1.sources.r1.interceptors.i3.type = timestamp\n\
         a1.sources.r1.interceptors.i3.header = ts\n\
         a1.channels.c1.type = memory\na1.sinks.k1.type = logger\na1.sinks.k1.channel = c1\n",
    );
    let f = conf.display().to_string();
    refused_with(
        &conf,
        &[
            format!("{f}:5: error: `a1.sources.r1.totalEvents` = `many`"),
            format!("{f}:7: error: interceptor `i1` of source `r1` has no `type`"),
            format!("{f}:10: error: `a1.sources.r1.interceptors.i2.useIP` = `maybe`"),
            // An interceptor's unknown key is named, with Flume's name for it.
            format!("{f}:12: warning: unknown property `a1.sources.r1.interceptors.i3.header` is ignored; did you mean `a1.sources.r1.interceptors.i3.headerName`?"),
        ],
    );
}

#[test]
fn an_unknown_agent_is_reported_without_a_line_number() {
    let (code, text) = configtest(&repo_path("configs/example.conf"), Some("zz"));
    assert_eq!(code, 1, "{text}");
    let f = repo_path("configs/example.conf").display().to_string();
    assert!(
        text.contains(&format!("{f}: error: no configuration for agent `zz`")),
        "{text}"
    );
    assert!(!text.contains(":0:"), "{text}");
}

#[test]
fn a_missing_variable_is_named_with_its_line() {
    let (_dir, conf) = conf_file(
        "vars.conf",
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = exec\na1.sources.r1.command = tail -F ${env:MILLRACE_UNSET_FOR_TEST}\n\
         a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
    );
    let (code, text) = configtest(&conf, Some("a1"));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("{}:5: error:", conf.display()))
            && text.contains("MILLRACE_UNSET_FOR_TEST"),
        "{text}"
    );
}

#[test]
fn several_files_merge_in_order_with_a_warning_for_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.conf");
    let site = dir.path().join("site.conf");
    std::fs::write(
        &base,
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\na1.channels.c1.capacity = 100\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n",
    )
    .unwrap();
    std::fs::write(&site, "a1.channels.c1.capacity = 5000\n").unwrap();
    let out = Command::new(bin("millrace-agent"))
        .args(["configtest", "-n", "a1", "-f"])
        .arg(&base)
        .arg("-f")
        .arg(&site)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}:1: warning:", site.display()))
            && err.contains(&format!("{}:7", base.display())),
        "{err}"
    );
}

#[test]
fn mistyped_lines_are_warnings_with_their_lines_and_the_check_passes() {
    let (_dir, conf) = conf_file(
        "t.conf",
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n\
         foo\n\
         this line has no equals\n\
         a1.sinks.k1.batchSize\n",
    );
    let (code, text) = configtest(&conf, Some("a1"));
    assert_eq!(code, 0, "{text}");
    let f = conf.display().to_string();
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(&f)).collect();
    let expect = [
        (9, "key `foo` with no value, which names no agent"),
        (10, "key `this` with value `line has no equals`"),
        (11, "`a1.sinks.k1.batchSize` has no value; Flume ignores"),
    ];
    assert_eq!(found.len(), expect.len(), "{text}");
    for ((line, needle), got) in expect.into_iter().zip(found) {
        assert!(
            got.starts_with(&format!("{f}:{line}: warning: ")) && got.contains(needle),
            "line {line} should warn about {needle}:\n{text}"
        );
    }
    assert!(text.contains("configuration OK"), "{text}");
}
