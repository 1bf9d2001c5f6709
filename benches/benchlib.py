"""Helpers shared by the benchmark scripts in benches/ (agent_bench.py, avro_bench.py,
kafka_bench.py, bench.py): free ports, generated input files, Flume's JSON metrics,
/proc readings and stopping process groups."""
import json, os, platform, shutil, signal, socket, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
CLK = os.sysconf("SC_CLK_TCK")


def agent_bin(profile="release"):
    return os.path.join(ROOT, "target", profile, "millrace-agent")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lines(path, n, width, line):
    """n lines of `width` bytes each (newline included), the i-th from line(i), called
    in order; kept when a file of the right size is already there."""
    if os.path.exists(path) and os.path.getsize(path) == n * width:
        return
    tmp = f"{path}.{os.getpid()}.partial"
    with open(tmp, "w") as f:
        chunk = []
        for i in range(n):
            chunk.append(line(i)[: width - 1].ljust(width - 1) + "\n")
            if len(chunk) == 100_000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    os.replace(tmp, path)


def make_lines(path, n, width=200):
    """n lines of `width` bytes each (newline included), numbered from 0, padded with x;
    kept when a file of the right size is already there."""
    pad = "x" * width
    write_lines(path, n, width, lambda i: f"{i} {pad}")


def count_lines(paths):
    """Newlines in the given files."""
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 24)
                if not b:
                    break
                n += b.count(b"\n")
    return n


def metrics(port, timeout=2):
    """Flume's JSON from http://127.0.0.1:port/metrics, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def proc_stats(pid):
    """(peak RSS in bytes from VmHWM, CPU seconds utime+stime) of a live process."""
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    return hwm * 1024, cpu_seconds(f"/proc/{pid}/stat")


def cpu_seconds(stat):
    """utime + stime in seconds from a /proc stat file (of a process or of a thread)."""
    with open(stat) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def wait_port(port, deadline, proc=None):
    """Waits until 127.0.0.1:port accepts; fails after `deadline` s or when `proc` exits."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited ({proc.returncode}) before port {port} opened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {deadline}s")


def stop(p, grace=30):
    """SIGTERM to the process group of `p` (started with start_new_session=True), then
    SIGKILL after `grace` seconds."""
    if p.poll() is not None:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # leftovers of an exited leader
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def machine():
    """One line: cores, CPU model, memory, kernel."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB, {platform.platform()}"


def run_until_drained(conf, events, deadline, what, sink="k1", binary=None):
    """Runs `millrace-agent agent` on `conf` until SINK.<sink> has drained `events`
    according to /metrics (or `deadline` s pass), then stops it. Returns events/s from
    the agent's start, CPU s per million events and peak RSS in MB; any other count
    raises, so a run that lost events is never reported as a result."""
    mon = free_port()
    t0 = time.monotonic()
    p = subprocess.Popen(
        [binary or agent_bin(), "agent", "-n", "a1", "-f", conf, "-Dflume.monitoring.type=http",
         f"-Dflume.monitoring.port={mon}", "-Dflume.root.logger=WARN,console"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    drained = 0
    try:
        while time.monotonic() - t0 < deadline:
            m = metrics(mon)
            if m:
                drained = int(m[f"SINK.{sink}"]["EventDrainSuccessCount"])
                if drained >= events:
                    break
            time.sleep(0.02)
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
        raise RuntimeError(f"{what}: {drained} of {events} events drained")
    return {"eps": events / elapsed, "cpu_per_m": cpu / (events / 1e6), "rss_mb": rss / 1e6}


def exec_memory_conf(data, batch):
    """The first half of a benchmark agent: exec `cat DATA` into a memory channel c1
    holding 100 batches; the caller adds sink k1."""
    return ("a1.sources = r1\na1.channels = c1\na1.sinks = k1\n"
            f"a1.sources.r1.type = exec\na1.sources.r1.command = cat {data}\n"
            f"a1.sources.r1.batchSize = {batch}\na1.sources.r1.channels = c1\n"
            f"a1.channels.c1.type = memory\na1.channels.c1.capacity = {batch * 100}\n"
            f"a1.channels.c1.transactionCapacity = {batch}\n")


def start_service(what, key):
    """Starts a service with scripts/services.sh in its own run directory; returns the
    value it prints as KEY=... and a function that stops it."""
    values, stop_it = start_service_with(what, {})
    return values[key], stop_it


def start_service_with(what, env_extra):
    """As start_service, with more environment for services.sh; returns every
    KEY=value it prints, as a dict, and a function that stops the service."""
    run_dir = tempfile.mkdtemp(prefix=f"millrace-bench-{what}-")
    env = dict(os.environ, MILLRACE_RUN_DIR=run_dir, **env_extra)
    out = subprocess.run(["bash", SERVICES, "start", what], env=env, check=True,
                         capture_output=True, text=True).stdout
    values = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

    def stop_it():
        subprocess.run(["bash", SERVICES, "stop", what], env=env)
        shutil.rmtree(run_dir, ignore_errors=True)

    return values, stop_it
