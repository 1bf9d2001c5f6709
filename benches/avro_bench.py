#!/usr/bin/env python3
"""Throughput of Flume's Avro RPC into a millrace collector over loopback.

A millrace collector (avro source -> memory -> null) receives N events of 200 bytes
from an edge agent (exec `cat FILE` -> memory -> avro sink), either a millrace agent
or a real Apache Flume 1.11 agent (started with scripts/services.sh, which needs
`scripts/services.sh fetch` once). The run ends when the collector's sink has drained
all N events according to its /metrics; a run that delivered any other count fails.

    python3 benches/avro_bench.py [--events N] [--reps R] [--edges millrace,flume] [--compression none,deflate]

Reports events/s from the edge's start to the last event drained at the collector,
the collector's CPU seconds per million events and its peak RSS.
"""
import argparse, json, os, platform, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from benchlib import free_port, make_lines, metrics, proc_stats, wait_port, stop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "millrace-agent")
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
CLK = os.sysconf("SC_CLK_TCK")
WIDTH = 200


def run_once(edge, batch, compression, events, data, deadline):
    work = tempfile.mkdtemp(prefix="millrace-avro-bench-")
    procs = []
    try:
        avro, mon = free_port(), free_port()
        cconf = os.path.join(work, "collector.conf")
        with open(cconf, "w") as f:
            f.write(
                "c.sources = r1\nc.channels = ch\nc.sinks = k1\n"
                f"c.sources.r1.type = avro\nc.sources.r1.bind = 127.0.0.1\nc.sources.r1.port = {avro}\n"
                f"c.sources.r1.compression-type = {compression}\nc.sources.r1.channels = ch\n"
                f"c.channels.ch.type = memory\nc.channels.ch.capacity = {batch * 100}\n"
                f"c.channels.ch.transactionCapacity = {batch}\n"
                f"c.sinks.k1.type = null\nc.sinks.k1.batchSize = {batch}\nc.sinks.k1.channel = ch\n")
        collector = subprocess.Popen(
            [BIN, "agent", "-n", "c", "-f", cconf, "-Dflume.monitoring.type=http",
             f"-Dflume.monitoring.port={mon}", "-Dflume.root.logger=WARN,console"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(collector)
        wait_port(avro, 30)
        econf = os.path.join(work, "edge.conf")
        with open(econf, "w") as f:
            f.write(
                "e.sources = r1\ne.channels = ch\ne.sinks = k1\n"
                f"e.sources.r1.type = exec\ne.sources.r1.command = cat {data}\n"
                f"e.sources.r1.batchSize = {batch}\ne.sources.r1.channels = ch\n"
                f"e.channels.ch.type = memory\ne.channels.ch.capacity = {batch * 100}\n"
                f"e.channels.ch.transactionCapacity = {batch}\n"
                f"e.sinks.k1.type = avro\ne.sinks.k1.hostname = 127.0.0.1\ne.sinks.k1.port = {avro}\n"
                f"e.sinks.k1.batch-size = {batch}\ne.sinks.k1.compression-type = {compression}\n"
                "e.sinks.k1.channel = ch\n")
        t0 = time.monotonic()
        if edge == "millrace":
            cmd = [BIN, "agent", "-n", "e", "-f", econf, "-Dflume.root.logger=WARN,console"]
        else:
            cmd = ["bash", SERVICES, "run", "flume-agent", "e", econf]
        sender = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        procs.append(sender)
        drained = 0
        while time.monotonic() - t0 < deadline:
            m = metrics(mon)
            if m:
                drained = int(m["SINK.k1"]["EventDrainSuccessCount"])
                if drained >= events:
                    break
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        rss, cpu = proc_stats(collector.pid)
        if drained != events:
            raise RuntimeError(f"{edge} batch {batch} {compression}: {drained} of {events} events arrived")
        return {"eps": events / elapsed, "cpu_per_m": cpu / (events / 1e6), "rss_mb": rss / 1e6}
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--edges", default="millrace,flume")
    ap.add_argument("--compression", default="none,deflate")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "millrace-agent"], cwd=ROOT, check=True)
    data = os.path.join(tempfile.gettempdir(), f"millrace-avro-bench-{a.events}x{WIDTH}.txt")
    make_lines(data, a.events)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}")
    print(f"command: python3 benches/avro_bench.py --events {a.events} --reps {a.reps} --edges {a.edges} --compression {a.compression}")
    print()
    print("| edge -> millrace collector | batch | compression | events/s (median, min-max) | MB/s | collector CPU s per M events | collector peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for edge in a.edges.split(","):
        for compression in a.compression.split(","):
            for batch in (100, 1000):
                runs = [run_once(edge, batch, compression, a.events, data, a.deadline) for _ in range(a.reps)]
                eps = [r["eps"] for r in runs]
                print(f"| {edge} | {batch} | {compression} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
                      f"{statistics.median(eps) * WIDTH / 1e6:.1f} | {statistics.median(r['cpu_per_m'] for r in runs):.2f} | "
                      f"{max(r['rss_mb'] for r in runs):.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
