//! syslog (TCP, multiport TCP, UDP) and netcatudp through the real binary, with
//! socket clients; headers and bodies checked, malformed input kept and counted.

use millrace_e2e::*;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

fn start(dir: &std::path::Path, sources: &str, mon: u16) -> AgentProcess {
    let conf = dir.join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "{sources}\na1.channels = c1\na1.sinks = k1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {}/out\n\
             a1.sinks.k1.sink.serializer = HEADER_AND_TEXT\na1.sinks.k1.sink.rollInterval = 0\n\
             a1.sinks.k1.channel = c1\n",
            dir.display()
        ),
    )
    .unwrap();
    AgentProcess::start_monitored("a1", &conf, mon)
}

fn connect(port: u16) -> TcpStream {
    let mut s = None;
    wait_for(Duration::from_secs(30), "the TCP port", || {
        s = TcpStream::connect(("127.0.0.1", port)).ok();
        s.is_some()
    });
    s.unwrap()
}

#[test]
fn syslog_tcp_parses_both_formats_and_keeps_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, mon) = (free_port(), free_port(), free_port());
    let mut agent = start(
        dir.path(),
        &format!(
            "a1.sources = s1 s2\n\
             a1.sources.s1.type = syslogtcp\na1.sources.s1.host = 127.0.0.1\na1.sources.s1.port = {p1}\n\
             a1.sources.s1.clientIPHeader = client\na1.sources.s1.channels = c1\n\
             a1.sources.s2.type = multiport_syslogtcp\na1.sources.s2.host = 127.0.0.1\n\
             a1.sources.s2.ports = {p2}\na1.sources.s2.portHeader = port\na1.sources.s2.channels = c1\n"
        ),
        mon,
    );
    let mut s = connect(p1);
    s.write_all(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed\n")
        .unwrap();
    let rfc5424 = b"<165>1 2026-11-25T03:48:00.123Z web-1 app 42 ID47 - payment failed";
    s.write_all(format!("{} ", rfc5424.len()).as_bytes())
        .unwrap();
    s.write_all(rfc5424).unwrap();
    s.write_all(b"this is not syslog\n").unwrap();
    drop(s);
    let mut m = connect(p2);
    m.write_all(b"<13>Nov  5 01:02:03 db-2 backup done\n")
        .unwrap();
    drop(m);
    let out = dir.path().join("out");
    wait_for(Duration::from_secs(30), "four messages", || {
        read_lines(&out).len() == 4
    });
    let lines = read_lines(&out);
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {lines:?}"))
            .clone()
    };
    let l = find("'su root' failed");
    assert!(
        l.starts_with(
            "{Facility=4, Severity=2, client=127.0.0.1, host=mymachine, priority=34, timestamp="
        ),
        "{l}"
    );
    assert!(l.ends_with("} su: 'su root' failed"), "{l}");
    let l = find("payment failed");
    assert_eq!(l, "{Facility=20, Severity=5, client=127.0.0.1, host=web-1, priority=165, timestamp=1795578480123, version=1} app 42 ID47 - payment failed");
    let l = find("not syslog");
    assert_eq!(
        l,
        "{Facility=0, Severity=0, client=127.0.0.1, flume.syslog.status=Invalid} this is not syslog"
    );
    let l = find("backup done");
    assert!(
        l.contains("host=db-2") && l.contains(&format!("port={p2}")) && l.contains("Priority=13"),
        "{l}"
    );
    let mm = metrics(mon).unwrap();
    assert_eq!(
        counter(&mm, "SOURCE.s1", "EventReadFail"),
        1,
        "the garbage line is counted"
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
}

#[test]
fn syslog_udp_and_netcat_udp_take_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2, mon) = (free_port(), free_port(), free_port());
    let mut agent = start(
        dir.path(),
        &format!(
            "a1.sources = u1 u2\n\
             a1.sources.u1.type = syslogudp\na1.sources.u1.host = 127.0.0.1\na1.sources.u1.port = {p1}\n\
             a1.sources.u1.eventSize = 2500\n\
             a1.sources.u1.channels = c1\n\
             a1.sources.u2.type = netcatudp\na1.sources.u2.bind = 127.0.0.1\na1.sources.u2.port = {p2}\n\
             a1.sources.u2.remoteAddressHeader = from\na1.sources.u2.channels = c1\n"
        ),
        mon,
    );
    wait_for(Duration::from_secs(30), "the agent", || {
        metrics(mon).is_some()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = client.local_addr().unwrap();
    client
        .send_to(
            b"<14>1 2026-11-25T03:48:00Z api-3 svc - - - hello over udp\n",
            ("127.0.0.1", p1),
        )
        .unwrap();
    // Longer than the eventSize set (2500): cut there, marked and counted.
    let long = format!("<14>{}", "x".repeat(2996));
    client.send_to(long.as_bytes(), ("127.0.0.1", p1)).unwrap();
    for i in 0..50 {
        client
            .send_to(format!("datagram {i}\n").as_bytes(), ("127.0.0.1", p2))
            .unwrap();
    }
    let out = dir.path().join("out");
    // UDP may drop under load; on loopback with 52 small datagrams it does not.
    wait_for(Duration::from_secs(30), "52 datagrams", || {
        read_lines(&out).len() == 52
    });
    let lines = read_lines(&out);
    assert!(lines.contains(&"{Facility=1, Severity=6, host=api-3, priority=14, timestamp=1795578480000, version=1} svc - - - hello over udp".to_string()), "{lines:?}");
    let cut = format!(
        "{{Facility=1, Severity=6, flume.syslog.status=Incomplete}} {}",
        "x".repeat(2496)
    );
    assert!(lines.contains(&cut), "{lines:?}");
    assert_eq!(
        counter(&metrics(mon).unwrap(), "SOURCE.u1", "EventReadFail"),
        1
    );
    assert!(
        lines.contains(&format!("{{from={me}}} datagram 7")),
        "{lines:?}"
    );
    assert!(agent.terminate(Duration::from_secs(30)).success());
}
