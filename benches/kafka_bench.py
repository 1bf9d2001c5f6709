#!/usr/bin/env python3
"""Throughput of millrace's Kafka sink into a real Kafka broker.

Starts a single-node Kafka 4 broker with scripts/services.sh (run
`scripts/services.sh fetch` once), then for each setting runs the release agent
(exec `cat FILE` of N 200-byte lines -> memory -> Kafka sink) until the sink has
drained all N events according to /metrics; a run with any other count fails. The
broker is stopped at the end, also on failure.

    python3 benches/kafka_bench.py [--events N] [--reps R]

Reports events/s from the agent's start to the last event acknowledged by the broker,
the agent's CPU seconds per million events and its peak RSS.
"""
import argparse, os, platform, shutil, statistics, subprocess, sys, tempfile
from benchlib import make_lines, run_until_drained, exec_memory_conf, start_service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
WIDTH = 200


def run_once(bootstrap, topic, batch, linger, acks, events, data, deadline):
    work = tempfile.mkdtemp(prefix="millrace-kafka-bench-")
    try:
        conf = os.path.join(work, "agent.conf")
        with open(conf, "w") as f:
            f.write(
                exec_memory_conf(data, batch) +
                "a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\n"
                f"a1.sinks.k1.kafka.bootstrap.servers = {bootstrap}\na1.sinks.k1.kafka.topic = {topic}\n"
                f"a1.sinks.k1.flumeBatchSize = {batch}\na1.sinks.k1.kafka.producer.linger.ms = {linger}\n"
                f"a1.sinks.k1.kafka.producer.acks = {acks}\na1.sinks.k1.channel = c1\n")
        return run_until_drained(conf, events, deadline, f"batch {batch} linger {linger} acks {acks}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=600)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "millrace-agent"], cwd=ROOT, check=True)
    data = os.path.join(tempfile.gettempdir(), f"millrace-kafka-bench-{a.events}x{WIDTH}.txt")
    make_lines(data, a.events)
    bootstrap, stop_service = start_service("kafka", "KAFKA_BOOTSTRAP")
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        print(f"machine: {os.cpu_count()} cores, {cpu}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}")
        print(f"command: python3 benches/kafka_bench.py --events {a.events} --reps {a.reps} (Kafka 4.3.1, one broker, 512 MB heap, topics with 1 partition)")
        print()
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
