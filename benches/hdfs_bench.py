#!/usr/bin/env python3
"""Throughput of millrace's HDFS sink into a real HDFS (MiniDFSCluster, one namenode
and one datanode on this machine).

Starts the cluster with scripts/services.sh (run `scripts/services.sh fetch` once),
then for each file type and codec runs the release agent (exec `cat FILE` of N
200-byte lines -> memory -> hdfs sink, batch 1000, one file per 128 MB) until the sink
has drained all N events according to /metrics; the sink counts a batch only after it
is synced (hsync) to the datanode, and a run with any other count fails. The cluster
is stopped at the end, also on failure.

    python3 benches/hdfs_bench.py [--events N] [--reps R]

Reports events/s and MB/s of event bodies from the agent's start to the last synced
batch, the agent's CPU seconds per million events and its peak RSS.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile
from benchlib import ROOT, SERVICES, machine, make_lines, run_until_drained, exec_memory_conf, start_service

WIDTH = 200
CASES = [
    ("DataStream", "", "TEXT"),
    ("CompressedStream", "gzip", "TEXT"),
    ("SequenceFile", "", "Writable"),
    ("SequenceFile", "", "Text"),
    ("SequenceFile", "gzip", "Text"),
]


def run_once(url, n, file_type, codec, fmt, events, batch, data, deadline):
    work = tempfile.mkdtemp(prefix="millrace-hdfs-bench-")
    try:
        conf = os.path.join(work, "agent.conf")
        extra = f"a1.sinks.k1.hdfs.codeC = {codec}\n" if codec else ""
        if file_type == "SequenceFile":
            extra += f"a1.sinks.k1.hdfs.writeFormat = {fmt}\n"
        with open(conf, "w") as f:
            f.write(
                exec_memory_conf(data, batch) +
                f"a1.sinks.k1.type = hdfs\na1.sinks.k1.channel = c1\n"
                f"a1.sinks.k1.hdfs.path = {url}/bench/{n}\na1.sinks.k1.hdfs.fileType = {file_type}\n"
                f"a1.sinks.k1.hdfs.batchSize = {batch}\na1.sinks.k1.hdfs.rollSize = 134217728\n"
                "a1.sinks.k1.hdfs.rollCount = 0\na1.sinks.k1.hdfs.rollInterval = 0\n" + extra)
        return run_until_drained(conf, events, deadline, f"{file_type} {codec} {fmt}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--deadline", type=float, default=600)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "millrace-agent"], cwd=ROOT, check=True)
    data = os.path.join(tempfile.gettempdir(), f"millrace-hdfs-bench-{a.events}x{WIDTH}.txt")
    make_lines(data, a.events)
    url, stop_service = start_service("hdfs", "HDFS_URL")
    try:
        print(f"machine: {machine()}")
        print(f"command: python3 benches/hdfs_bench.py --events {a.events} --reps {a.reps} --batch {a.batch} "
              "(Hadoop 3.5.0 MiniDFSCluster, 1 namenode + 1 datanode, 1 GB heap, replication 1)")
        print()
        print("| fileType | codeC | writeFormat / serializer | events/s (median, min-max) | MB/s | agent CPU s per M events | agent peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        n = 0
        for file_type, codec, fmt in CASES:
            runs = []
            for _ in range(a.reps):
                n += 1
                runs.append(run_once(url, n, file_type, codec, fmt, a.events, a.batch, data, a.deadline))
            eps = [r["eps"] for r in runs]
            print(f"| {file_type} | {codec or 'none'} | {fmt} | {statistics.median(eps):,.0f} ({min(eps):,.0f}-{max(eps):,.0f}) | "
                  f"{statistics.median(eps) * WIDTH / 1e6:.1f} | {statistics.median(r['cpu_per_m'] for r in runs):.2f} | "
                  f"{max(r['rss_mb'] for r in runs):.1f} |", flush=True)
    finally:
        stop_service()


if __name__ == "__main__":
    sys.exit(main())
