#!/usr/bin/env python3
"""Ingest through the query server's own chain: `millrace-query-server -f FILE -n a1`
hosting an agent (spooldir -> memory -> store sink) that reads a file of N log lines of
200 bytes into the server's store.

Each run starts a fresh server on a fresh store, and ends when `GET /api/v1/store`
counts all N events; a run that stores any other count fails.

    cargo build --release -p millrace-query-server
    python3 benches/query_server_bench.py [--events N] [--reps R] [--batch B] [--bin PATH]

Reports events/s from the server's start to the last event stored, the server's CPU
seconds per 1,000,000 events (all threads, and by thread name) and its peak RSS.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time, urllib.request
from benchlib import ROOT, cpu_seconds, free_port, machine, proc_stats, stop, wait_port, write_lines

BIN = os.path.join(ROOT, "target", "release", "millrace-query-server")
WIDTH = 200
LEVELS = ["INFO"] * 70 + ["DEBUG"] * 15 + ["WARN"] * 10 + ["ERROR"] * 5
SERVICES = ["payments", "orders", "inventory", "auth", "search", "shipping", "billing", "gateway"]
TEMPLATES = [
    "user {} logged in from {}", "order {} shipped to warehouse {}",
    "timeout calling {} service after {} ms", "cache miss for key {} in region {}",
    "payment {} declined with code {}", "retrying request {} attempt {}",
]
FILLER = "the quick brown fox jumps over lazy dog request handled response sent queue drained worker idle".split()


def make_logs(path, n):
    """n log lines of WIDTH bytes (newline included): time, level, service, a message
    with two numbers, a trace id and filler words; kept when already there."""
    rng = random.Random(7)

    def line(i):
        s = "2026-11-24 %02d:%02d:%02d,%03d %s [%s] " % (
            i // 3_600_000 % 24, i // 60_000 % 60, i // 1000 % 60, i % 1000,
            rng.choice(LEVELS), rng.choice(SERVICES))
        s += rng.choice(TEMPLATES).format(rng.randint(1, 10**6), rng.randint(1, 10**4))
        s += " trace=%016x" % rng.getrandbits(64)
        while len(s) < WIDTH - 1:
            s += " " + rng.choice(FILLER)
        return s

    write_lines(path, n, WIDTH, line)


def stored(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/store", timeout=2) as r:
            return json.load(r)["events"]
    except (OSError, ValueError, KeyError):
        return None


def threads(pid):
    """CPU seconds by thread name (numbered pool threads summed under one name)."""
    by = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            cpu = cpu_seconds(f"/proc/{pid}/task/{t}/stat")
        except OSError:
            continue
        name = name.rstrip("0123456789").rstrip("-")
        by[name] = by.get(name, 0) + cpu
    return by


def run_once(binary, data, events, batch, deadline):
    work = tempfile.mkdtemp(prefix="millrace-qs-bench-")
    server = None
    try:
        spool = os.path.join(work, "spool")
        os.mkdir(spool)
        try:
            os.link(data, os.path.join(spool, "events.log"))
        except OSError:
            shutil.copy(data, os.path.join(spool, "events.log"))
        conf = os.path.join(work, "hosted.conf")
        with open(conf, "w") as f:
            f.write(
                "a1.sources = s\na1.channels = c\na1.sinks = k\n"
                f"a1.sources.s.type = spooldir\na1.sources.s.spoolDir = {spool}\n"
                f"a1.sources.s.batchSize = {batch}\na1.sources.s.channels = c\n"
                "a1.sources.s.interceptors = h t\n"
                "a1.sources.s.interceptors.h.type = host\na1.sources.s.interceptors.t.type = timestamp\n"
                f"a1.channels.c.type = memory\na1.channels.c.capacity = {batch * 100}\n"
                f"a1.channels.c.transactionCapacity = {batch}\n"
                f"a1.sinks.k.type = store\na1.sinks.k.channel = c\na1.sinks.k.batchSize = {batch}\n")
        port = free_port()
        t0 = time.monotonic()
        server = subprocess.Popen(
            [binary, "-f", conf, "-n", "a1", "--store", os.path.join(work, "store"),
             "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(port, 30, server)
        n = None
        while time.monotonic() < t0 + deadline:
            n = stored(port)
            if n is not None and n >= events:
                break
            if server.poll() is not None:
                raise RuntimeError(f"the server exited ({server.returncode}) after {n} events")
            time.sleep(0.05)
        secs = time.monotonic() - t0
        if n != events:
            raise RuntimeError(f"stored {n} events of {events} in {deadline} s")
        rss, cpu = proc_stats(server.pid)
        return {"rate": events / secs, "cpu": cpu / events * 1e6, "rss": rss,
                "threads": {k: v / events * 1e6 for k, v in threads(server.pid).items()}}
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--deadline", type=float, default=600, help="seconds allowed per run")
    ap.add_argument("--bin", default=BIN, help="the millrace-query-server binary")
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "millrace-qs-bench-logs"))
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        sys.exit(f"{a.bin} is missing; run: cargo build --release -p millrace-query-server")
    data = f"{a.data}-{a.events}.log"
    make_logs(data, a.events)
    print(f"machine: {machine()}")
    print(f"command: python3 benches/query_server_bench.py --events {a.events} --reps {a.reps} --batch {a.batch}\n")
    print("| run | events/s | CPU s per 1,000,000 events | by thread | peak RSS |")
    print("|---|---|---|---|---|")
    rates = []
    for i in range(a.reps):
        r = run_once(a.bin, data, a.events, a.batch, a.deadline)
        rates.append(r["rate"])
        by = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["threads"].items(), key=lambda kv: -kv[1]) if v >= 0.05)
        print(f"| {i + 1} | {r['rate']:,.0f} | {r['cpu']:.1f} | {by} | {r['rss'] / 2**20:.0f} MB |", flush=True)
    if a.reps > 1:
        print(f"\nmedian: {statistics.median(rates):,.0f} events/s")


if __name__ == "__main__":
    main()
