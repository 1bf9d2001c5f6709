#!/usr/bin/env python3
"""Side by side with Apache Flume 1.11: the same Flume properties file under Flume and
under millrace-agent. Run it through `scripts/bench.sh` (see docs/performance.md).

    scripts/bench.sh [--short] [--profile release|debug] [--reps N] [--no-warmup]
                     [--deadline S] [--events SCENARIO=N ...] [--out DIR] [SCENARIO ...]

Scenarios (by number or name): 1 seq-null, 2 spooldir-file_roll, 3 spooldir-filechannel,
4 avro-null, 5 taildir-kafka, 6 exec-hdfs, 7 multiplex-null; all by default.

For each scenario: a warm-up run of each system, then `--reps` pairs run alternately
(Flume, millrace, Flume, millrace, ...). A run starts the agent with HTTP monitoring,
polls /metrics until the sinks have drained the fixed event count (or the deadline
passes), reads CPU time and peak RSS from /proc, stops the agent, then checks the
output (sink counts, lines on disk, bytes in HDFS). A wrong count fails the run.

The report goes between the `<!-- bench.sh:begin -->` and `<!-- bench.sh:end -->`
lines of benches/RESULTS.md (appended the first time; the rest of the file is left
alone), the charts to benches/charts/N-name.png and the measurements behind them to
benches/charts/results.json, so a run of some scenarios keeps the others' results.
With --out DIR (default for --short: a new temporary directory) everything goes under
DIR instead. Exit status 1 when any run failed; a skipped scenario is not a failure.
"""
import argparse, atexit, datetime, glob, json, os, re, shlex, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, SERVICES, agent_bin, count_lines, free_port, machine, make_lines, metrics, proc_stats, stop, wait_port  # noqa: E402
import pngchart  # noqa: E402

CACHE = os.environ.get("MILLRACE_SERVICES_DIR", os.path.expanduser("~/.cache/millrace-services"))
# Flume's own launcher defaults to -Xmx20m, far too small for these channels; its
# flume-env.sh template suggests -Xms100m -Xmx2000m. A 1 GB heap is ample for every
# scenario (the memory channels hold at most 100,000 events of 200 bytes).
JVM_FLAGS = ["-Xmx1g", "-XX:+UseG1GC", "-Djava.net.preferIPv4Stack=true"]
BEGIN, END = "<!-- bench.sh:begin -->", "<!-- bench.sh:end -->"
WIDTH, BATCH = 200, 1000
FLUME, MILLRACE = "flume", "millrace"
SYSTEMS = (FLUME, MILLRACE)
NAMES = {FLUME: "Apache Flume 1.11", MILLRACE: "millrace"}
COLORS = {FLUME: (230, 120, 30), MILLRACE: (40, 100, 200)}
LIVE = set()  # every process started here, stopped on any exit


class Failure(Exception):
    pass


# ---------------------------------------------------------------- scenarios


def memory_channel(ch="c1"):
    return (f"a1.channels.{ch}.type = memory\na1.channels.{ch}.capacity = {BATCH * 100}\n"
            f"a1.channels.{ch}.transactionCapacity = {BATCH}\n")


def file_roll_sink(run):
    return (f"a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = {run.dir}/out\n"
            f"a1.sinks.k1.sink.rollInterval = 0\na1.sinks.k1.sink.batchSize = {BATCH}\na1.sinks.k1.channel = c1\n")


def seq_bytes(n):
    """Body bytes of seq events 0..n-1 (decimal numbers)."""
    total, lo, d = 0, 0, 1
    while lo < n:
        hi = min(n, 10**d)
        total += (hi - lo) * d
        lo, d = hi, d + 1
    return total


class Scenario:
    num = key = title = about = ""
    events = short_events = 0
    services = ()
    skip_hint = None  # (regex on configtest output, reason) for a component millrace lacks yet
    line_data = False  # a file of n 200-byte lines is made for it

    def sinks(self, n):
        """{sink: (its channel, expected drained count)}"""
        return {"k1": ("c1", n)}

    def body_bytes(self, n):
        return n * WIDTH

    def round(self, n):
        return n

    def prepare(self, ctx, n):
        if self.line_data:
            path = os.path.join(ctx.work, f"lines-{n}x{WIDTH}.txt")
            make_lines(path, n, WIDTH)
            return {"lines": path}
        return {}

    def link_input(self, run):
        os.makedirs(os.path.join(run.dir, "in"))
        os.link(run.data["lines"], os.path.join(run.dir, "in", "data.log"))

    def setup(self, run):
        pass

    def feed(self, run):
        return []

    def check(self, run):
        pass

    def config(self, run):
        raise NotImplementedError


class SeqNull(Scenario):
    num, key, title = "1", "seq-null", "seq -> memory -> null"
    about = "The seq source's numbers (bodies of 1-8 bytes) through a memory channel into a null sink."
    events, short_events = 20_000_000, 200_000

    def body_bytes(self, n):
        return seq_bytes(n)

    def config(self, run):
        return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
                f"a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {run.n}\n"
                f"a1.sources.r1.batchSize = {BATCH}\na1.sources.r1.channels = c1\n"
                + memory_channel()
                + f"a1.sinks.k1.type = null\na1.sinks.k1.batchSize = {BATCH}\na1.sinks.k1.channel = c1\n")


class SpoolFileRoll(Scenario):
    num, key, title = "2", "spooldir-file_roll", "spooldir -> memory -> file_roll"
    about = ("One file of 200-byte lines (5,000,000 lines = 1 GB in the full run), hard-linked into the "
             "spool directory, through a memory channel into a file_roll sink; the lines written are counted.")
    events, short_events = 5_000_000, 50_000
    line_data = True
    channel = None

    def setup(self, run):
        self.link_input(run)
        os.makedirs(os.path.join(run.dir, "out"))  # Flume's file_roll does not create it

    def config(self, run):
        return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
                f"a1.sources.r1.type = spooldir\na1.sources.r1.spoolDir = {run.dir}/in\n"
                f"a1.sources.r1.batchSize = {BATCH}\na1.sources.r1.channels = c1\n"
                + (self.channel(run) if self.channel else memory_channel())
                + file_roll_sink(run))

    def check(self, run):
        out = os.path.join(run.dir, "out")
        files = [os.path.join(out, f) for f in os.listdir(out)] if os.path.isdir(out) else []
        lines = count_lines(files)
        if lines != run.n:
            raise Failure(f"file_roll wrote {lines} lines, expected {run.n}")


class SpoolFileChannel(SpoolFileRoll):
    num, key, title = "3", "spooldir-filechannel", "spooldir -> file channel -> file_roll (fsync)"
    about = ("As scenario 2 through a file channel that syncs every transaction "
             "(fsyncPerTransaction = true, Flume's default); the lines written are counted.")
    events, short_events = 5_000_000, 50_000

    @staticmethod
    def channel(run):
        return ("a1.channels.c1.type = file\n"
                f"a1.channels.c1.checkpointDir = {run.dir}/fc/checkpoint\na1.channels.c1.dataDirs = {run.dir}/fc/data\n"
                "a1.channels.c1.capacity = 1000000\na1.channels.c1.transactionCapacity = 10000\n"
                "a1.channels.c1.fsyncPerTransaction = true\n")


class AvroNull(Scenario):
    num, key, title = "4", "avro-null", "avro -> memory -> null"
    about = ("An avro source on loopback fed by a load generator speaking Flume's Avro RPC: two "
             "`millrace-agent avro-client --batch-size 1000` processes, each sending half of a file of "
             "200-byte lines (the same generator for both systems; its CPU and memory are not counted). "
             "It starts once the source's port accepts; events/s run from the first event drained.")
    events, short_events = 2_000_000, 20_000
    feeders = 2

    def round(self, n):
        return n - n % self.feeders

    def prepare(self, ctx, n):
        parts = []
        for i in range(self.feeders):
            path = os.path.join(ctx.work, f"lines-{n // self.feeders}x{WIDTH}.txt")
            make_lines(path, n // self.feeders, WIDTH)
            parts.append(path)
        return {"parts": parts}

    def setup(self, run):
        run.port = free_port()

    def config(self, run):
        return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
                f"a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {run.port}\n"
                "a1.sources.r1.channels = c1\n"
                + memory_channel()
                + f"a1.sinks.k1.type = null\na1.sinks.k1.batchSize = {BATCH}\na1.sinks.k1.channel = c1\n")

    def feed(self, run):
        wait_port(run.port, run.deadline, run.proc)
        procs = []
        for i, part in enumerate(run.data["parts"]):
            with open(os.path.join(run.dir, f"feeder-{i}.log"), "wb") as log:
                p = subprocess.Popen(feeder_cmd(run.ctx, part, run.port), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
            LIVE.add(p)
            procs.append(p)
        return procs


class TaildirKafka(Scenario):
    num, key, title = "5", "taildir-kafka", "taildir -> memory -> kafka"
    about = ("TAILDIR follows a file of 200-byte lines (hard-linked in place before the start) into a memory "
             "channel and a Kafka sink (acks = 1, linger.ms = 0, a new one-partition topic per run) on a real "
             "Kafka 4 broker started by `scripts/services.sh start kafka` on the same machine.")
    events, short_events = 1_000_000, 20_000
    services = ("kafka",)
    line_data = True

    def setup(self, run):
        self.link_input(run)

    def config(self, run):
        return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
                "a1.sources.r1.type = TAILDIR\na1.sources.r1.filegroups = f1\n"
                f"a1.sources.r1.filegroups.f1 = {run.dir}/in/data\\\\.log\n"
                f"a1.sources.r1.positionFile = {run.dir}/taildir_position.json\n"
                f"a1.sources.r1.batchSize = {BATCH}\na1.sources.r1.channels = c1\n"
                + memory_channel()
                + "a1.sinks.k1.type = org.apache.flume.sink.kafka.KafkaSink\n"
                f"a1.sinks.k1.kafka.bootstrap.servers = {run.svc.get('kafka', '${KAFKA_BOOTSTRAP}')}\n"
                f"a1.sinks.k1.kafka.topic = bench-{run.id}\na1.sinks.k1.flumeBatchSize = {BATCH}\n"
                "a1.sinks.k1.kafka.producer.acks = 1\na1.sinks.k1.kafka.producer.linger.ms = 0\n"
                "a1.sinks.k1.channel = c1\n")


class ExecHdfs(Scenario):
    num, key, title = "6", "exec-hdfs", "exec -> memory -> hdfs (DataStream)"
    about = ("exec runs `cat` on a file of 200-byte lines into a memory channel and an HDFS sink writing "
             "DataStream text files (no rolling) on a real MiniDFSCluster (one datanode) started by "
             "`scripts/services.sh start hdfs`; after the agent stops, the bytes in HDFS are checked. "
             "`hdfs.minBlockReplicas = 1` matches the single datanode (otherwise Flume's sink sees every block "
             "as under-replicated and rotates files until it gives up), and the channel's `keep-alive = 30` "
             "lets a put wait out a slow HDFS call: Flume's exec source stops its command for good when a put "
             "finds the channel full for `keep-alive` seconds (3 by default).")
    events, short_events = 1_000_000, 20_000
    services = ("hdfs",)
    line_data = True
    skip_hint = (r"(?i)hdfs", "skipped: millrace has no hdfs sink yet")

    def config(self, run):
        return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
                f"a1.sources.r1.type = exec\na1.sources.r1.command = cat {run.data.get('lines', '${DATA}')}\n"
                f"a1.sources.r1.batchSize = {BATCH}\na1.sources.r1.channels = c1\n"
                + memory_channel() + "a1.channels.c1.keep-alive = 30\n"
                + "a1.sinks.k1.type = hdfs\n"
                f"a1.sinks.k1.hdfs.path = {run.svc.get('hdfs', '${HDFS_URL}')}/bench/{run.id}\n"
                "a1.sinks.k1.hdfs.filePrefix = events\na1.sinks.k1.hdfs.fileType = DataStream\n"
                "a1.sinks.k1.hdfs.writeFormat = Text\n"
                f"a1.sinks.k1.hdfs.batchSize = {BATCH}\na1.sinks.k1.hdfs.rollInterval = 0\n"
                "a1.sinks.k1.hdfs.rollSize = 0\na1.sinks.k1.hdfs.rollCount = 0\n"
                "a1.sinks.k1.hdfs.minBlockReplicas = 1\na1.sinks.k1.channel = c1\n")

    def check(self, run):
        hd = os.path.join(CACHE, "hdfs")
        out = subprocess.run(
            ["java", "-Xmx256m", f"-Dlog4j.configuration=file:{hd}/conf/log4j.properties",
             "-cp", f"{hd}/conf:{hd}/lib/*", "org.apache.hadoop.fs.FsShell", "-fs", run.svc["hdfs"],
             "-du", "-s", f"/bench/{run.id}"], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise Failure(f"hdfs -du /bench/{run.id} failed: {out.stderr.strip()[-300:]}")
        size = int(out.stdout.split()[0])
        if size != run.n * WIDTH:
            raise Failure(f"HDFS holds {size} bytes under /bench/{run.id}, expected {run.n * WIDTH} ({run.n} lines)")


class MultiplexNull(Scenario):
    num, key, title = "7", "multiplex-null", "seq -> timestamp, host, regex_extractor -> multiplexing -> 2 x null"
    about = ("The seq source's numbers pass the timestamp, host and regex_extractor interceptors (the last "
             "digit into header `digit`); a multiplexing selector sends digits 0-4 to channel c1 and 5-9 "
             "to c2, each drained by a null sink. Each sink must drain exactly half of the events.")
    events, short_events = 10_000_000, 200_000

    def round(self, n):
        return n - n % 10

    def body_bytes(self, n):
        return seq_bytes(n)

    def sinks(self, n):
        return {"k1": ("c1", n // 2), "k2": ("c2", n // 2)}

    def config(self, run):
        mapping = "".join(f"a1.sources.r1.selector.mapping.{d} = {'c1' if d < 5 else 'c2'}\n" for d in range(10))
        return ("a1.sources = r1\na1.channels = c1 c2\na1.sinks = k1 k2\n"
                f"a1.sources.r1.type = seq\na1.sources.r1.totalEvents = {run.n}\n"
                f"a1.sources.r1.batchSize = {BATCH}\na1.sources.r1.channels = c1 c2\n"
                "a1.sources.r1.interceptors = i1 i2 i3\n"
                "a1.sources.r1.interceptors.i1.type = timestamp\n"
                "a1.sources.r1.interceptors.i2.type = host\n"
                "a1.sources.r1.interceptors.i3.type = regex_extractor\n"
                "a1.sources.r1.interceptors.i3.regex = (\\\\d)$\n"
                "a1.sources.r1.interceptors.i3.serializers = s1\n"
                "a1.sources.r1.interceptors.i3.serializers.s1.name = digit\n"
                "a1.sources.r1.selector.type = multiplexing\na1.sources.r1.selector.header = digit\n"
                + mapping + "a1.sources.r1.selector.default = c1\n"
                + memory_channel("c1") + memory_channel("c2")
                + f"a1.sinks.k1.type = null\na1.sinks.k1.batchSize = {BATCH}\na1.sinks.k1.channel = c1\n"
                + f"a1.sinks.k2.type = null\na1.sinks.k2.batchSize = {BATCH}\na1.sinks.k2.channel = c2\n")


SCENARIOS = [SeqNull(), SpoolFileRoll(), SpoolFileChannel(), AvroNull(), TaildirKafka(), ExecHdfs(), MultiplexNull()]


# ---------------------------------------------------------------- running


class Run:
    def __init__(self, ctx, sc, system, n, label, data, svc, dir):
        self.ctx, self.sc, self.system, self.n, self.label = ctx, sc, system, n, label
        self.data, self.svc, self.dir = data, svc, dir
        self.id = f"{sc.num}-{system}-{label.replace(' ', '')}"
        self.port = None
        self.proc = None
        self.deadline = ctx.deadline


def flume_classpath(sc):
    cp = [f"{CACHE}/flume/conf", f"{CACHE}/flume/lib/*"]
    if "hdfs" in sc.services:
        # Flume's HDFS sink needs a Hadoop client beside it, as in a Flume installation
        # with HADOOP_HOME set: the shaded client jars of the MiniDFSCluster's Hadoop.
        cp += sorted(glob.glob(f"{CACHE}/hdfs/lib/hadoop-client-api-*.jar"))
        cp += sorted(glob.glob(f"{CACHE}/hdfs/lib/hadoop-client-runtime-*.jar"))
    return ":".join(cp)


def agent_cmd(ctx, system, sc, conf, mon):
    mon_flags = ["-Dflume.monitoring.type=http", f"-Dflume.monitoring.port={mon}"]
    if system == FLUME:
        return (["java"] + JVM_FLAGS + mon_flags + ["-cp", flume_classpath(sc), "org.apache.flume.node.Application",
                                                    "-n", "a1", "-f", conf, "--no-reload-conf"])
    return [ctx.bin, "agent", "-n", "a1", "-f", conf, "--no-reload-conf"] + mon_flags


def feeder_cmd(ctx, path, port):
    return [ctx.bin, "avro-client", "-H", "127.0.0.1", "-p", str(port), "-F", path, "--batch-size", str(BATCH)]


def drained(m, sinks):
    """Per sink: SINK.k.EventDrainSuccessCount, or, where the sink keeps no counters
    (Flume's null sink), the committed takes of its channel."""
    out = {}
    for k, (ch, _) in sinks.items():
        s = m.get(f"SINK.{k}")
        if s and "EventDrainSuccessCount" in s:
            out[k] = int(s["EventDrainSuccessCount"])
        else:
            out[k] = int(m.get(f"CHANNEL.{ch}", {}).get("EventTakeSuccessCount", 0))
    return out


def log_tail(path, n=12):
    try:
        with open(path, "rb") as f:
            lines = f.read()[-20000:].decode("utf-8", "replace").splitlines()
        return "\n".join("    " + l[:300] for l in lines[-n:])
    except OSError:
        return ""


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def run_once(ctx, sc, system, n, label, data, svc):
    d = os.path.join(ctx.tmp, f"{sc.num}-{system}-{label.replace(' ', '')}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    run = Run(ctx, sc, system, n, label, data, svc, d)
    sinks = sc.sinks(n)
    procs, feeders = [], []
    logpath = os.path.join(d, "agent.log")
    rec = {"system": system, "label": label, "events": n, "load": loadavg()}
    t_start = time.monotonic()
    try:
        sc.setup(run)
        conf = os.path.join(d, "agent.conf")
        with open(conf, "w") as f:
            f.write(sc.config(run))
        mon = free_port()
        with open(logpath, "wb") as log:
            t0 = time.monotonic()
            p = subprocess.Popen(agent_cmd(ctx, system, sc, conf, mon), stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=d, start_new_session=True)
        LIVE.add(p)
        procs.append(p)
        run.proc = p
        feeders = sc.feed(run)
        procs.extend(feeders)
        first = None
        total = 0
        while True:
            if time.monotonic() - t0 > ctx.deadline:
                raise Failure(f"deadline of {ctx.deadline:.0f}s passed with {total} of {n} events drained")
            if p.poll() is not None:
                raise Failure(f"the agent exited with status {p.returncode} after {total} of {n} events; "
                              f"its log ends with:\n{log_tail(logpath)}")
            for i, fp in enumerate(feeders):
                if fp.poll() not in (None, 0):
                    raise Failure(f"load generator {i} exited with status {fp.returncode}:\n"
                                  f"{log_tail(os.path.join(d, f'feeder-{i}.log'))}")
            before = time.monotonic()
            m = metrics(mon)
            now = (before + time.monotonic()) / 2
            if m:
                total = sum(drained(m, sinks).values())
                if total > 0 and first is None:
                    first = (now, total)
                if total >= n:
                    t_end = now
                    rss, cpu = proc_stats(p.pid)
                    break
            time.sleep(0.02)
        # Nothing more may arrive (duplicates), and each sink must have its share.
        time.sleep(0.5)
        m = metrics(mon) or {}
        got = drained(m, sinks)
        want = {k: e for k, (_, e) in sinks.items()}
        if got != want:
            raise Failure(f"drained {got}, expected {want}")
        for i, fp in enumerate(feeders):
            try:
                rc = fp.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise Failure(f"load generator {i} did not exit after all events arrived")
            if rc != 0:
                raise Failure(f"load generator {i} exited with status {rc}")
        for fp in reversed(procs):
            stop(fp, grace=60)
        sc.check(run)
        t_first, d_first = first
        steady = t_end - t_first >= 0.2 and d_first <= n / 2
        eps = (n - d_first) / (t_end - t_first) if steady else n / (t_end - t0)
        rec.update(ok=True, eps=eps, mbs=eps * sc.body_bytes(n) / n / 1e6, cpu_s=cpu, cpu_per_m=cpu / (n / 1e6),
                   rss_mb=rss / 1e6, startup_s=t_first - t0, wall_s=t_end - t0, steady=steady)
    except Exception as e:  # a run that cannot finish is a failed run, never a crash of the harness
        rec.update(ok=False, error=str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}")
    finally:
        for fp in reversed(procs):
            stop(fp, grace=60)
            LIVE.discard(fp)
        rec["elapsed_s"] = time.monotonic() - t_start
        if not rec.get("ok"):
            ctx.kept = os.path.join(ctx.tmp, "failed")
            os.makedirs(ctx.kept, exist_ok=True)
            for f in glob.glob(os.path.join(d, "*.log")) + glob.glob(os.path.join(d, "*.conf")):
                shutil.copy(f, os.path.join(ctx.kept, f"{run.id}-{os.path.basename(f)}"))
        shutil.rmtree(d, ignore_errors=True)
    if rec["ok"]:
        print(f"  {NAMES[system]:<18} {label:<8} {n:>11,} events  {rec['eps']:>12,.0f} ev/s  "
              f"{rec['cpu_per_m']:6.2f} CPU s/M  {rec['rss_mb']:8.1f} MB  start {rec['startup_s']:5.2f}s  "
              f"wall {rec['wall_s']:6.1f}s", flush=True)
    else:
        print(f"  {NAMES[system]:<18} {label:<8} FAILED: {rec['error']}", flush=True)
    return rec


def start_services(ctx, names):
    svc = {}
    env = dict(os.environ, MILLRACE_RUN_DIR=os.path.join(ctx.tmp, "services"))
    for name in names:
        ctx.started.append(name)
        out = subprocess.run(["bash", SERVICES, "start", name], env=env, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise Failure(f"scripts/services.sh start {name} failed: {out.stderr.strip()[-800:]}")
        key = {"kafka": "KAFKA_BOOTSTRAP=", "hdfs": "HDFS_URL="}[name]
        svc[name] = next(l.split("=", 1)[1] for l in out.stdout.splitlines() if l.startswith(key))
        print(f"  started {name}: {svc[name]}", flush=True)
    return svc


def stop_services(ctx):
    env = dict(os.environ, MILLRACE_RUN_DIR=os.path.join(ctx.tmp, "services"))
    while ctx.started:
        name = ctx.started.pop()
        subprocess.run(["bash", SERVICES, "stop", name], env=env, capture_output=True, timeout=120)


def configtest(ctx, sc):
    """None when millrace accepts the scenario's configuration, else its output."""
    d = tempfile.mkdtemp(prefix="configtest-", dir=ctx.tmp)
    try:
        run = Run(ctx, sc, MILLRACE, 1000, "configtest", {"lines": "/dev/null", "parts": []},
                  {"kafka": "127.0.0.1:9", "hdfs": "hdfs://127.0.0.1:9"}, d)
        run.port = 9
        conf = os.path.join(d, "agent.conf")
        with open(conf, "w") as f:
            f.write(sc.config(run))
        out = subprocess.run([ctx.bin, "configtest", "-f", conf, "-n", "a1"], capture_output=True, text=True, timeout=60)
        return None if out.returncode == 0 else (out.stdout + out.stderr).strip()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def display_config(sc, n):
    class Ctx:
        deadline = 0
        work = "$WORK"
    run = Run(Ctx(), sc, "SYSTEM", n, "REP", {"lines": "$DATA"}, {}, "$RUN")
    run.port = "$PORT"
    run.id = "$RUN_ID"
    return sc.config(run)


def run_scenario(ctx, sc):
    n = sc.round(ctx.events.get(sc.num) or (sc.short_events if ctx.short else sc.events))
    res = {"num": sc.num, "key": sc.key, "title": sc.title, "about": sc.about, "events": n, "reps": ctx.reps,
           "warmup": None, "runs": [], "status": "ok", "reason": "", "config": display_config(sc, n),
           "measured": ctx.stamp, "invocation": ctx.stamp, "command": ctx.command, "profile": ctx.profile}
    print(f"\n== {sc.num}. {sc.title}: {n:,} events, {ctx.reps} x (Flume, millrace)", flush=True)
    problem = configtest(ctx, sc)
    if problem:
        if sc.skip_hint and re.search(sc.skip_hint[0], problem):
            line = re.sub(r"^\S+:\d+: ", "", problem.splitlines()[0])
            res.update(status="skipped", reason=f"{sc.skip_hint[1]} (`millrace-agent configtest`: {line[:160]})")
            print(f"  {res['reason']}", flush=True)
            return res
        res.update(status="failed", reason=f"millrace-agent configtest rejects the configuration: {problem[:500]}")
        print(f"  FAILED: {res['reason']}", flush=True)
        return res
    try:
        data = sc.prepare(ctx, n)
        svc = start_services(ctx, sc.services)
        broken = {}
        if ctx.warmup:
            wn = sc.round(max(sc.short_events, n // 10))
            wdata = sc.prepare(ctx, wn)
            res["warmup"] = wn
            for system in SYSTEMS:
                r = run_once(ctx, sc, system, wn, "warm-up", wdata, svc)
                res["runs"].append(r)
                if not r["ok"]:
                    broken[system] = r["error"]
        for rep in range(1, ctx.reps + 1):
            for system in SYSTEMS:
                if system in broken:
                    res["runs"].append({"system": system, "label": f"rep {rep}", "events": n, "ok": False,
                                        "error": "not run: the warm-up failed"})
                    continue
                res["runs"].append(run_once(ctx, sc, system, n, f"rep {rep}", data, svc))
    except Failure as e:
        res.update(status="failed", reason=str(e))
        print(f"  FAILED: {e}", flush=True)
    finally:
        stop_services(ctx)
    if any(not r["ok"] for r in res["runs"]):
        res["status"] = "failed"
        res["reason"] = res["reason"] or "; ".join(
            f"{NAMES[r['system']]} {r['label']}: {r['error'].splitlines()[0]}" for r in res["runs"] if not r["ok"])
    return res


# ---------------------------------------------------------------- report

METRICS = [("eps", "events/s", "{:,.0f}"), ("mbs", "MB/s", "{:,.1f}"), ("cpu_per_m", "CPU s per M events", "{:,.2f}"),
           ("rss_mb", "peak RSS MB", "{:,.1f}"), ("startup_s", "start-up s", "{:,.2f}"), ("wall_s", "wall s", "{:,.1f}")]


def timed(res, system):
    return [r for r in res["runs"] if r["system"] == system and r["label"] != "warm-up" and r["ok"]]


def spread(vals, fmt):
    if not vals:
        return "-"
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f"{med} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def pair_ratios(res, key):
    """millrace / Flume for each repetition where both runs succeeded."""
    by = {}
    for r in res["runs"]:
        if r["label"] != "warm-up" and r["ok"]:
            by.setdefault(r["label"], {})[r["system"]] = r[key]
    return [v[MILLRACE] / v[FLUME] for v in by.values() if FLUME in v and MILLRACE in v and v[FLUME] > 0]


def ratio_text(vals):
    if not vals:
        return "-"
    f = lambda x: f"{x:.3g}x" if x < 10 else f"{x:.1f}x"
    med = f(statistics.median(vals))
    return med if len(vals) == 1 else f"{med} ({f(min(vals))}-{f(max(vals))})"


def targets(res):
    eps, rss = pair_ratios(res, "eps"), pair_ratios(res, "rss_mb")
    if res["status"] != "ok" or not eps:
        return "-"
    e, r = statistics.median(eps), statistics.median(rss)
    if res["num"] in "1234":
        ok = e >= 10 and r <= 0.1
        return ("met" if ok else "not met") + f" (>= 10x events/s: {e:.1f}x; <= 0.1x RSS: {r:.3f}x)"
    # A median just above 1x with pairs on both sides of it is a tie, not a win.
    verdict = "met" if min(eps) > 1 else "not met" if e <= 1 else "not shown (pairs on both sides of 1x)"
    return verdict + f" (faster than Flume: {e:.2f}x, {min(eps):.2f}x-{max(eps):.2f}x)"


def chart(res, path):
    panels = []
    notes = {"eps": "eps", "cpu_per_m": "cpu_per_m", "rss_mb": "rss_mb", "startup_s": "startup_s"}
    titles = {"eps": "EVENTS/S", "cpu_per_m": "CPU S PER M EV", "rss_mb": "PEAK RSS MB", "startup_s": "START-UP S"}
    for key in notes:
        bars = []
        for system in SYSTEMS:
            vals = [r[key] for r in timed(res, system)]
            bars.append((statistics.median(vals), min(vals), max(vals)) if vals else "FAILED")
        rat = pair_ratios(res, key)
        panels.append({"title": titles[key], "bars": bars,
                       "note": f"RATIO {statistics.median(rat):.3g}X" if rat else ""})
    sub = f"{res['events']:,} EVENTS, MEDIAN OF {res['reps']} RUNS, WHISKERS MIN-MAX"
    pngchart.bar_chart(path, f"{res['num']}. {res['title']}", sub,
                       [(NAMES[s], s.upper(), COLORS[s]) for s in SYSTEMS], panels)


def render(results, invocations):
    used = sorted({r["invocation"] for r in results})
    info = invocations[used[-1]]
    L = [BEGIN, "", "## Side by side with Apache Flume 1.11 (issue: benchmark harness)", "",
         "Generated by `scripts/bench.sh`; do not edit this section by hand: the command rewrites everything "
         "between the `bench.sh:begin` and `bench.sh:end` markers (the measurements behind it are in "
         f"`{info['json_rel']}`). How to run it and how to read it: "
         "[docs/performance.md](../docs/performance.md).", "",
         f"Machine: {info['machine']}. Versions: Apache Flume {info['flume']} (jars from Maven Central) on "
         f"{info['java']}; Kafka {info['kafka']}; Hadoop {info['hadoop']} (MiniDFSCluster); {info['rustc']}.", "",
         "Measured by:", ""]
    for k in used:
        i = invocations[k]
        nums = ", ".join(r["num"] for r in results if r["invocation"] == k)
        L.append(f"- `{i['command']}` (scenario{'s' if ',' in nums else ''} {nums}), {i['stamp']}, {i['minutes']:.0f} minutes, millrace "
                 f"{i['millrace']} ({i['profile']} build). Load average (1 min) {i['load_start']:.2f} at the start, "
                 f"{i['load_end']:.2f} at the end. {i['sharing']}")
    L += ["", "`-dirty` means the binary was built from a working tree with changes not yet committed.", "",
         "Commands (`$CONF` is the scenario's properties file, the same for both; `$PORT` a free port):", "",
         "```",
         "java " + " ".join(JVM_FLAGS) + " -Dflume.monitoring.type=http -Dflume.monitoring.port=$PORT \\",
         "  -cp '~/.cache/millrace-services/flume/conf:~/.cache/millrace-services/flume/lib/*' \\",
         "  org.apache.flume.node.Application -n a1 -f $CONF --no-reload-conf",
         f"target/{info['profile']}/millrace-agent agent -n a1 -f $CONF --no-reload-conf \\",
         "  -Dflume.monitoring.type=http -Dflume.monitoring.port=$PORT",
         f"# scenario 4's load generator, twice at once, each with half of the lines:",
         f"target/{info['profile']}/millrace-agent avro-client -H 127.0.0.1 -p $AVRO_PORT -F $HALF --batch-size {BATCH}",
         "```", "",
         "Scenario 6 adds the Hadoop client (`hadoop-client-api` and `hadoop-client-runtime` of the "
         "MiniDFSCluster's Hadoop) to Flume's classpath. Each scenario: a warm-up run of each system with a "
         "tenth of the events, then pairs of runs alternating Flume and millrace. events/s and MB/s run from "
         "the first event drained to the last (start-up is its own column: process start to the first "
         "drained event seen at /metrics); CPU s per M events is the agent process's whole user + system "
         "time up to the last event, start-up included; peak RSS is VmHWM. Values are the median of the "
         "repetitions with (min-max); the ratio row is millrace / Flume per pair of runs. Every run checks "
         "its counts (the sinks' drained counts, also the lines on disk for file_roll and the bytes in HDFS); "
         "a run with any other count is a failure, never a result.", "",
         "Targets (reported, not asserted): at least 10x Flume's events/s and at most 1/10 of its peak RSS "
         "on scenarios 1-4; faster than Flume on every scenario.", "",
         "| # | scenario | events | Flume events/s | millrace events/s | events/s ratio | Flume peak RSS MB | "
         "millrace peak RSS MB | RSS ratio | targets |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    have = {r["num"]: r for r in results}
    for sc in SCENARIOS:
        res = have.get(sc.num)
        if res is None:
            L.append(f"| {sc.num} | {sc.title} | | | | | | | | not run yet: `scripts/bench.sh {sc.num}` |")
            continue
        if res["status"] == "skipped":
            L.append(f"| {res['num']} | {res['title']} | {res['events']:,} | | | | | | | {res['reason'].split(' (')[0]} |")
            continue
        f, m = timed(res, FLUME), timed(res, MILLRACE)
        med = lambda rs, k, fmt: fmt.format(statistics.median(r[k] for r in rs)) if rs else "FAILED"
        tgt = targets(res) if res["status"] == "ok" else "FAILED: see below"
        L.append(f"| {res['num']} | {res['title']} | {res['events']:,} | {med(f, 'eps', '{:,.0f}')} | "
                 f"{med(m, 'eps', '{:,.0f}')} | {ratio_text(pair_ratios(res, 'eps'))} | {med(f, 'rss_mb', '{:,.1f}')} | "
                 f"{med(m, 'rss_mb', '{:,.1f}')} | {ratio_text(pair_ratios(res, 'rss_mb'))} | {tgt} |")
    L.append("")
    for res in results:
        L += [f"### {res['num']}. {res['title']}", "", res["about"], ""]
        if res["status"] == "skipped":
            L += [f"Skipped: {res['reason'][len('skipped: '):]}", ""]
        else:
            L.append(f"{res['events']:,} events, {res['reps']} repetition(s) after "
                     + (f"a warm-up of {res['warmup']:,} events" if res["warmup"] else "no warm-up")
                     + f"; measured {res['measured']} by `{res['command']}` ({res['profile']} build).")
            L.append("")
            if res["status"] == "failed":
                L += [f"**FAILED**: {res['reason']}", ""]
            if any(timed(res, s) for s in SYSTEMS):
                L += [f"![{res['num']}. {res['title']}](charts/{res['num']}-{res['key']}.png)", ""]
                L += ["| system | " + " | ".join(t for _, t, _ in METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
                for s in SYSTEMS:
                    rs = timed(res, s)
                    L.append(f"| {NAMES[s]} | " + " | ".join(spread([r[k] for r in rs], fmt) for k, _, fmt in METRICS) + " |")
                L.append("| millrace / Flume, per pair | "
                         + " | ".join(ratio_text(pair_ratios(res, k)) for k, _, _ in METRICS) + " |")
                L.append("")
            L += ["<details><summary>Every run, and the properties file</summary>", "",
                  "| run | system | events | events/s | CPU s | peak RSS MB | start-up s | wall s | load | result |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
            for r in res["runs"]:
                if r["ok"]:
                    L.append(f"| {r['label']} | {NAMES[r['system']]} | {r['events']:,} | {r['eps']:,.0f}"
                             f"{'' if r['steady'] else ' (from process start)'} | {r['cpu_s']:.2f} | {r['rss_mb']:.1f} | "
                             f"{r['startup_s']:.2f} | {r['wall_s']:.1f} | {r.get('load', 0):.2f} | ok |")
                else:
                    err = r["error"].splitlines()[0].replace("|", "\\|")
                    L.append(f"| {r['label']} | {NAMES[r['system']]} | {r['events']:,} | | | | | | "
                             f"{r.get('load', 0):.2f} | FAILED: {err} |")
            L += ["", "```properties", res["config"].rstrip(), "```", "", "</details>", ""]
    L.append(END)
    return "\n".join(L)


def write_region(path, region):
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if BEGIN in text and END in text:
        i, j = text.index(BEGIN), text.index(END) + len(END)
        text = text[:i] + region + text[j:]
    else:
        text = text.rstrip("\n") + "\n\n" + region + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def jar_version(svc, prefix):
    for j in sorted(glob.glob(f"{CACHE}/{svc}/lib/{prefix}*.jar")):
        m = re.match(re.escape(prefix) + r"(\d[\w.]*)\.jar$", os.path.basename(j))
        if m:
            return m.group(1)
    return "?"


def compilers():
    """Processes of other builds running on the machine (cargo, rustc, cc, ld)."""
    names = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                continue
            if comm in ("cargo", "rustc", "cc1", "cc1plus", "ld", "clippy-driver", "javac", "mvn") or comm.startswith("rustc"):
                names.append(comm)
    return names


def load_results(json_path):
    """(invocations by stamp, scenario results) from results.json; empty when absent."""
    try:
        data = json.load(open(json_path))
    except (OSError, ValueError):
        return {}, []
    invocations = data.get("invocations", {})
    if "info" in data:  # the first layout: one invocation for every result
        invocations.setdefault(data["info"]["stamp"], data["info"])
        for r in data.get("scenarios", []):
            r.setdefault("invocation", r["measured"])
    return invocations, data.get("scenarios", [])


def publish(allres, invocations, charts, json_path, results_md):
    """Charts for every scenario with measurements, results.json, and the report region."""
    used = {r["invocation"] for r in allres}
    invocations = {k: v for k, v in invocations.items() if k in used}
    for r in allres:
        png = os.path.join(charts, f"{r['num']}-{r['key']}.png")
        if any(timed(r, s) for s in SYSTEMS):
            chart(r, png)
        elif os.path.exists(png):
            os.remove(png)
    with open(json_path, "w") as f:
        json.dump({"invocations": invocations, "scenarios": allres}, f, indent=1)
    write_region(results_md, render(allres, invocations))
    print(f"\nreport: {results_md}\ncharts: {charts}", flush=True)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Scenarios: " + ", ".join(f"{s.num} {s.key}" for s in SCENARIOS))
    ap.add_argument("scenarios", nargs="*", help="numbers or names; all by default")
    ap.add_argument("--short", action="store_true", help="small event counts, one repetition, no warm-up, "
                    "results under a temporary directory unless --out is given (what CI runs)")
    ap.add_argument("--profile", choices=("release", "debug"), default="release", help="which millrace-agent build")
    ap.add_argument("--reps", type=int, help="repetitions (pairs of runs); 3 by default, 1 with --short")
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up runs")
    ap.add_argument("--deadline", type=float, help="seconds per run (600; 120 with --short)")
    ap.add_argument("--events", action="append", default=[], metavar="SCENARIO=N", help="event count of a scenario")
    ap.add_argument("--out", help="write RESULTS.md and charts/ under this directory instead of benches/")
    ap.add_argument("--work", help="directory for generated input and run directories "
                    "(default: $TMPDIR/millrace-side-by-side; inputs are kept there for the next run)")
    ap.add_argument("--no-build", action="store_true", help="use the existing millrace-agent binary")
    ap.add_argument("--report", action="store_true", help="run nothing: rewrite the report and the charts "
                    "from the measurements in charts/results.json")
    a = ap.parse_args()

    by = {s.num: s for s in SCENARIOS} | {s.key: s for s in SCENARIOS}
    wanted = a.scenarios or [s.num for s in SCENARIOS]
    bad = [w for w in wanted if w not in by]
    if bad:
        ap.error(f"unknown scenario(s) {', '.join(bad)}; choose from " + ", ".join(f"{s.num} ({s.key})" for s in SCENARIOS))
    chosen = sorted({by[w] for w in wanted}, key=lambda s: s.num)

    class Ctx:
        pass
    ctx = Ctx()
    ctx.short, ctx.profile = a.short, a.profile
    ctx.reps = a.reps or (1 if a.short else 3)
    ctx.warmup = not (a.no_warmup or a.short)
    ctx.deadline = a.deadline or (120 if a.short else 600)
    ctx.events = {}
    for e in a.events:
        k, _, v = e.partition("=")
        if k not in by or not v.isdigit():
            ap.error(f"--events wants SCENARIO=N, got {e}")
        ctx.events[by[k].num] = int(v)
    ctx.bin = agent_bin(a.profile)
    ctx.started = []
    ctx.command = "scripts/bench.sh" + "".join(" " + shlex.quote(x) for x in sys.argv[1:])
    ctx.stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = a.out or (tempfile.mkdtemp(prefix="millrace-bench-short-") if a.short else os.path.join(ROOT, "benches"))
    results_md = os.path.join(out, "RESULTS.md")
    charts = os.path.join(out, "charts")
    json_path = os.path.join(charts, "results.json")
    if a.report:
        invocations, allres = load_results(json_path)
        if not allres:
            sys.exit(f"bench: no measurements in {json_path}")
        publish(allres, invocations, charts, json_path, results_md)
        return 0
    ctx.work = os.path.abspath(a.work or os.path.join(tempfile.gettempdir(), "millrace-side-by-side"))
    os.makedirs(ctx.work, exist_ok=True)
    # Inputs are shared between invocations; runs, services and logs are this one's own.
    ctx.tmp = tempfile.mkdtemp(prefix="run-", dir=ctx.work)
    ctx.kept = None
    atexit.register(lambda: ctx.kept or shutil.rmtree(ctx.tmp, ignore_errors=True))
    os.makedirs(charts, exist_ok=True)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(lambda: [stop(p, grace=5) for p in list(LIVE)])

    t_begin = time.monotonic()
    load_start, builds = loadavg(), compilers()
    if not a.no_build:
        cmd = (["cargo", "build", "--release", "-q", "-p", "millrace-agent"] if a.profile == "release"
               # the same command as the end-to-end tests, so that it is a no-op after `cargo test`
               else ["cargo", "build", "-q", "-p", "millrace-agent", "-p", "millrace-query-server"])
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    if not os.access(ctx.bin, os.X_OK):
        sys.exit(f"bench: {ctx.bin} is missing; build it (cargo build -p millrace-agent) or drop --no-build")
    # A copy, so that a build started elsewhere during the runs (the target directory
    # may be shared) cannot swap the binary between runs.
    shutil.copy2(ctx.bin, os.path.join(ctx.tmp, "millrace-agent"))
    ctx.bin = os.path.join(ctx.tmp, "millrace-agent")
    need = ["flume"] + sorted({s for sc in chosen for s in sc.services})
    subprocess.run(["bash", SERVICES, "fetch"] + need, check=True, stdout=subprocess.DEVNULL)

    info = {"command": ctx.command, "stamp": ctx.stamp, "machine": machine(), "profile": a.profile,
            "load_start": load_start,
            "millrace": first_line([ctx.bin, "--version"]).replace("millrace-agent ", "") + " at "
            + first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
            "rustc": first_line(["rustc", "--version"]), "java": first_line(["java", "-version"]),
            "flume": jar_version("flume", "flume-ng-core-"), "kafka": jar_version("kafka", "kafka_2.13-"),
            "hadoop": jar_version("hdfs", "hadoop-client-api-"), "json_rel": os.path.relpath(json_path, out)}
    print(f"machine: {info['machine']}; load {load_start:.2f}; other builds running: {len(builds)}", flush=True)

    results = []
    try:
        for sc in chosen:
            results.append(run_scenario(ctx, sc))
    except KeyboardInterrupt as e:
        print(f"\nbench: interrupted ({e or 'Ctrl-C'}); every process it started is stopped; no report written",
              file=sys.stderr)
        return 130
    finally:
        stop_services(ctx)
        shutil.rmtree(os.path.join(ctx.tmp, "services"), ignore_errors=True)
        if ctx.kept:
            print(f"logs of the failed runs: {ctx.kept}", flush=True)

    # Results of scenarios not run this time are kept from the previous report.
    invocations, old = load_results(json_path)
    merged = {r["num"]: r for r in old} | {r["num"]: r for r in results}
    allres = [merged[k] for k in sorted(merged)]
    builds_end = compilers()
    info["load_end"] = loadavg()
    info["minutes"] = (time.monotonic() - t_begin) / 60
    if builds or builds_end:
        info["sharing"] = (f"The machine was shared: {len(builds)} compiler/build processes of other work were "
                           f"running at the start ({', '.join(sorted(set(builds))) or 'none'}), {len(builds_end)} at "
                           "the end; see the load column of each run.")
    else:
        info["sharing"] = "No other builds were running at the start or the end."
    invocations[ctx.stamp] = info
    publish(allres, invocations, charts, json_path, results_md)
    failed = [r for r in results if r["status"] == "failed"]
    for r in results:
        print(f"{r['num']}. {r['title']}: " + (r["reason"] if r["status"] == "skipped" else r["status"])
              + (f": {r['reason']}" if r["status"] == "failed" else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
