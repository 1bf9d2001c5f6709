#!/usr/bin/env python3
"""Throughput and memory of millrace-agent pipelines.

Runs each scenario with the release binary, waits (with a deadline) until the sink has
drained the expected number of events according to /metrics, and reports events/s,
MB/s, CPU seconds per million events and peak RSS. Fails a scenario whose count is
wrong, so a fast run that lost events never reads as a win.

    python3 benches/agent_bench.py [--events N] [--reps R] [SCENARIO ...]

Scenarios: seq-null, exec-null, exec-file_roll (N events of 100 bytes), and
spooldir-null, taildir-null (1 GB of 200-byte lines), at batch sizes 100 and 1000.
"""
import argparse, json, os, platform, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from benchlib import free_port, make_lines, metrics, proc_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "millrace-agent")
CLK = os.sysconf("SC_CLK_TCK")


def config(scenario, batch, events, data, outdir):
    work = os.path.dirname(outdir)
    kind = scenario.split("-")[0]
    if kind in ("spooldir", "taildir"):
        # A hard link gives each run the data file without copying a gigabyte.
        os.makedirs(os.path.join(work, "in"))
        os.link(data, os.path.join(work, "in", "data.log"))
    src = {
        "seq": f"a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {events}\n",
        "exec": f"a1.sources.r1.type = exec\na1.sources.r1.command = cat {data}\n",
        "spooldir": f"a1.sources.r1.type = spooldir\na1.sources.r1.spoolDir = {work}/in\n",
        "taildir": f"a1.sources.r1.type = TAILDIR\na1.sources.r1.filegroups = f1\n"
        f"a1.sources.r1.filegroups.f1 = {work}/in/data\\\\.log\n"
        f"a1.sources.r1.positionFile = {work}/pos.json\n",
    }[kind]
    sink = {
        "null": f"a1.sinks.k1.type = null\na1.sinks.k1.batchSize = {batch}\n",
        "file_roll": f"a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {outdir}\n"
        f"a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = {batch}\n",
    }[scenario.split("-", 1)[1]]
    return (
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
        + src
        + f"a1.sources.r1.batchSize = {batch}\na1.sources.r1.channels = c1\n"
        + f"a1.channels.c1.type = memory\na1.channels.c1.capacity = {batch * 100}\n"
        + f"a1.channels.c1.transactionCapacity = {batch}\n"
        + sink
        + "a1.sinks.k1.channel = c1\n"
    )


def run_once(scenario, batch, events, width, data, deadline):
    work = tempfile.mkdtemp(prefix="millrace-bench-")
    try:
        outdir = os.path.join(work, "out")
        conf = os.path.join(work, "agent.conf")
        with open(conf, "w") as f:
            f.write(config(scenario, batch, events, data, outdir))
        port = free_port()
        t0 = time.monotonic()
        p = subprocess.Popen(
            [BIN, "agent", "-n", "a1", "-f", conf, "-Dflume.monitoring.type=http",
             f"-Dflume.monitoring.port={port}", "-Dflume.root.logger=WARN,console"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        drained = 0
        try:
            while time.monotonic() - t0 < deadline:
                m = metrics(port)
                if m:
                    drained = int(m["SINK.k1"]["EventDrainSuccessCount"])
                    if drained > 0 and first is None:
                        first = time.monotonic() - t0
                    if drained >= events:
                        break
                time.sleep(0.01)
            elapsed = time.monotonic() - t0
            rss, cpu = proc_stats(p.pid)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if drained != events:
            raise RuntimeError(f"{scenario} batch {batch}: drained {drained} of {events} events")
        if scenario.endswith("file_roll"):
            lines = sum(sum(1 for _ in open(os.path.join(outdir, f), "rb")) for f in os.listdir(outdir))
            if lines != events:
                raise RuntimeError(f"{scenario}: {lines} lines written, expected {events}")
        return {"eps": events / elapsed, "mbs": events * width / elapsed / 1e6,
                "cpu_per_m": cpu / (events / 1e6), "rss_mb": rss / 1e6, "first_s": first or 0.0}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=300)
    ap.add_argument("scenarios", nargs="*", default=["seq-null", "exec-null", "exec-file_roll", "spooldir-null", "taildir-null"])
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "millrace-agent"], cwd=ROOT, check=True)
    width = 100
    data = os.path.join(tempfile.gettempdir(), f"millrace-bench-{a.events}x{width}.txt")
    make_lines(data, a.events, width)
    # The file sources read 1 GB of 200-byte lines.
    file_events, file_width = 5_000_000, 200
    file_data = os.path.join(tempfile.gettempdir(), f"millrace-bench-{file_events}x{file_width}.txt")
    if any(s.split("-")[0] in ("spooldir", "taildir") for s in a.scenarios):
        make_lines(file_data, file_events, file_width)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, {platform.platform()}")
    print(f"command: python3 benches/agent_bench.py --events {a.events} --reps {a.reps} {' '.join(a.scenarios)}")
    print()
    print("| scenario | batch | events/s (median, min-max) | MB/s | CPU s per M events | peak RSS MB | first event s |")
    print("|---|---|---|---|---|---|---|")
    for sc in a.scenarios:
        for batch in (100, 1000):
            kind = sc.split("-")[0]
            if kind in ("spooldir", "taildir"):
                ev, w, d = file_events, file_width, file_data
            else:
                ev, w, d = a.events, (width if kind == "exec" else len(str(a.events)) // 2 + 1), data
            runs = [run_once(sc, batch, ev, w, d, a.deadline) for _ in range(a.reps)]
            eps = [r["eps"] for r in runs]
            med = lambda k: statistics.median(r[k] for r in runs)
            print(f"| {sc} | {batch} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
                  f"{med('mbs'):.1f} | {med('cpu_per_m'):.2f} | {max(r['rss_mb'] for r in runs):.1f} | {med('first_s'):.2f} |",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
