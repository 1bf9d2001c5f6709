#!/usr/bin/env python3
"""Throughput of millrace's Kafka sink into a real Kafka broker.

Starts a single-node Kafka 4 broker with scripts/services.sh (run
`scripts/services.sh fetch` once), then for each setting runs the release agent
(exec `cat FILE` of N 200-byte lines -> memory -> Kafka sink) until the sink has
drained all N events according to /metrics; a run with any other count fails. The
broker is stopped at the end, also on failure.

    python3 benches/kafka_bench.py [--events N] [--reps R] [--security]

Reports events/s from the agent's start to the last event acknowledged by the broker,
the agent's CPU seconds per million events and its peak RSS. With --security the
broker also listens for SASL_SSL, and batch 1000, linger 5 runs both ways in
alternation: PLAINTEXT, and SASL_SSL with SCRAM-SHA-256 and a PEM truststore, as a
Flume file sets them.
"""
import argparse, os, platform, shutil, statistics, subprocess, sys, tempfile
from benchlib import make_lines, run_until_drained, exec_memory_conf, start_service_with

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
WIDTH = 200


def security_lines(ca):
    """The Flume file lines for the bench broker's SASL_SSL listener."""
    p = "a1.sinks.k1.kafka.producer"
    return (f"{p}.security.protocol = SASL_SSL\n{p}.sasl.mechanism = SCRAM-SHA-256\n"
            f"{p}.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule "
            "required username=\"alice\" password=\"alice-secret\";\n"
            f"{p}.ssl.truststore.location = {ca}\n{p}.ssl.truststore.type = PEM\n")


def run_once(bootstrap, topic, batch, linger, acks, events, data, deadline, extra=""):
    work = tempfile.mkdtemp(prefix="millrace-kafka-bench-")
    try:
        conf = os.path.join(work, "agent.conf")
        with open(conf, "w") as f:
            f.write(
                exec_memory_conf(data, batch) +
                "a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\n"
                f"a1.sinks.k1.kafka.bootstrap.servers = {bootstrap}\na1.sinks.k1.kafka.topic = {topic}\n"
                f"a1.sinks.k1.flumeBatchSize = {batch}\na1.sinks.k1.kafka.producer.linger.ms = {linger}\n"
                f"a1.sinks.k1.kafka.producer.acks = {acks}\na1.sinks.k1.channel = c1\n" + extra)
        return run_until_drained(conf, events, deadline, f"batch {batch} linger {linger} acks {acks}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--security", action="store_true")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "millrace-agent"], cwd=ROOT, check=True)
    data = os.path.join(tempfile.gettempdir(), f"millrace-kafka-bench-{a.events}x{WIDTH}.txt")
    make_lines(data, a.events)
    values, stop_service = start_service_with("kafka", {"MILLRACE_KAFKA_SASL_SSL": "1"} if a.security else {})
    bootstrap = values["KAFKA_BOOTSTRAP"]
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        print(f"machine: {os.cpu_count()} cores, {cpu}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}")
        flag = " --security" if a.security else ""
        print(f"command: python3 benches/kafka_bench.py --events {a.events} --reps {a.reps}{flag} (Kafka 4.3.1, one broker, 512 MB heap, topics with 1 partition)")
        print()
        if a.security:
            secure = (values["KAFKA_SASL_SSL_BOOTSTRAP"], security_lines(values["KAFKA_CA"]))
            print("| listener | events/s (median, min-max) | MB/s | agent CPU s per M events | agent peak RSS MB |")
            print("|---|---|---|---|---|")
            runs = {"PLAINTEXT": [], "SASL_SSL": []}
            for rep in range(a.reps):
                for name, (target, extra) in (("PLAINTEXT", (bootstrap, "")), ("SASL_SSL", secure)):
                    runs[name].append(run_once(target, f"bench-{name.lower()}-{rep}", 1000, 5, "all",
                                               a.events, data, a.deadline, extra))
            for name, rs in runs.items():
                eps = [r["eps"] for r in rs]
                print(f"| {name} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
                      f"{statistics.median(eps) * WIDTH / 1e6:.1f} | {statistics.median(r['cpu_per_m'] for r in rs):.2f} | "
                      f"{max(r['rss_mb'] for r in rs):.1f} |", flush=True)
            return

        print("| flumeBatchSize | linger.ms | acks | events/s (median, min-max) | MB/s | agent CPU s per M events | agent peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        n = 0
        for batch in (100, 1000):
            for linger in (0, 5):
                for acks in ("1", "all"):
                    runs = []
                    for _ in range(a.reps):
                        n += 1
                        runs.append(run_once(bootstrap, f"bench-{n}", batch, linger, acks, a.events, data, a.deadline))
                    eps = [r["eps"] for r in runs]
                    print(f"| {batch} | {linger} | {acks} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
                          f"{statistics.median(eps) * WIDTH / 1e6:.1f} | {statistics.median(r['cpu_per_m'] for r in runs):.2f} | "
                          f"{max(r['rss_mb'] for r in runs):.1f} |", flush=True)
    finally:
        stop_service()


if __name__ == "__main__":
    sys.exit(main())
