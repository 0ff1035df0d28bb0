"""Benchmark the gateway beside the bare forwarder and the upstream itself, in one run.

    python bench/run.py            # the full run, about five minutes; rewrites bench/README.md
    python bench/run.py --quick    # a smoke run, under a minute; prints only

Everything listens on 127.0.0.1 and is started here: the asyncio upstream (bench/upstream.py),
the bare forwarder (bench/forwarder.py) and the gateway, both under gunicorn with the project's
gunicorn.conf.py, and wrk (Debian's ``wrk``) with bench/post.lua as the load. The gateway runs
with a real (non-demo) key with generous limits (every check runs, nothing is refused), the
real pricing.json and the durable ledger. Every process started here is stopped, by its process
group, when the run ends, fails, times out or is interrupted.

The six figures:
1. server CPU ms per request (master + workers, from /proc) and requests/s, instant upstream, 16 and 1024
   connections (a steady-state window, against the upstream's completions);
2. added latency at 1 connection: p50 minus the direct p50;
3. a 2 s upstream at 256 and 1024 connections (started over 1.5 s): requests held at once
   (the upstream's peakInFlight), steady throughput (the upstream's completions per second over
   whole upstream periods after the ramp), errors and timeouts (10 s client timeout);
4. the gateway's peak memory during 3 (RSS summed over master + workers; PSS beside it);
5. per-request cost with a 1,000- and a 1,000,000-line ledger at a fixed modest load (two
   gateways, loaded in turns), and the start-up time (launch until /health answers): the first start
   (a full replay that writes the checkpoint) and the restart from it (the median of five, the
   two ledgers restarting in turns);
6. the file store's durable reserve + settle records/s from 4 processes x 8 threads (bench/store_throughput.py).

With a PostgreSQL server (``--database-url``, default ``ZIRI_BENCH_DATABASE_URL`` or the local
test server; ``--no-postgres`` to leave it out) a second gateway runs on the PostgreSQL store,
in a database created for the run and dropped at its end, beside the file-store gateway in 1-3,
and figure 6 is also measured for the PostgreSQL store with bench/store_throughput.py (store.reserve +
settle, 4 processes x 8 threads). Figure 6 runs with every thread on one key (a contention figure: one
key's decisions take turns on its lock) and with one key per thread.
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from datetime import timezone

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

from ledger_bench import SUMMARY  # noqa: E402
from ledger_bench import write_ledger  # noqa: E402
from store_throughput import measure as measure_store  # noqa: E402
from store_throughput import temporary_database  # noqa: E402

PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
SLOW_SECONDS = 2.0
# Connections to the slow upstream send their first request spread over this long: under the
# upstream period (so arrivals are steady) and under gunicorn's 2 s keep-alive, which also
# closes a new connection that has sent nothing yet.
RAMP_SECONDS = 1.5
CLIENT_TIMEOUT = 10
RESTARTS = 5  # restarts from the checkpoint per ledger size, in turns (figure 5: their median)
STORE_KEYS = (1, 8)  # figure 6: every thread on one key (its lock), then one key per thread
BODY = {"provider": SUMMARY["provider"], "model": SUMMARY["model"], "prompt": "a lighthouse at dawn",
        "size": SUMMARY["size"]}
SLOW_BODY = {**BODY, "prompt": f"{BODY['prompt']} [stub:delay={SLOW_SECONDS:g}]"}
UPSTREAM_KEY = "sk-bench-upstream"
KEY_USERS = ("bench", "alice", "bob", "carol")
# Generous on purpose: every limit check runs, none refuses.
# The largest limits a key may have (ziri_images.keys.LIMIT_MAXIMUMS), far above what any run reaches.
GENEROUS_LIMITS = {"daily_spend_limit": 1_000_000_000, "monthly_spend_limit": 1_000_000_000,
                   "requests_per_minute": 1_000_000, "max_concurrent_requests": 100_000}
TARGETS = ("direct", "forwarder", "gateway")


class Plan:
    """Durations and sizes of one run."""

    def __init__(self, quick):
        self.quick = quick
        self.cpu_seconds = 2 if quick else 3
        self.cpu_rounds = 1 if quick else 3  # figure 1: turns of every server, the median taken
        self.latency_seconds = 1 if quick else 4
        self.slow_periods = 1 if quick else 4  # whole upstream periods of steady state counted
        self.levels = (1024,) if quick else (256, 1024)
        self.capacity_rounds = 1 if quick else 3  # figure 3 at 1024 conns: turns of every server, the median kept
        self.ledger_lines = 100_000 if quick else 1_000_000
        self.scale_seconds = 2
        self.scale_rounds = 1 if quick else 5  # turns per ledger, alternating between the two
        self.durable_seconds = 1 if quick else 4
        self.deadline = 150 if quick else 600  # the whole run, start-ups included (both stores)


class Children:
    """Every process this run starts, each in its own session, stopped by process group."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.running = []

    def start(self, name, command, env=None, cwd=PROJECT_DIR):
        log = open(os.path.join(self.log_dir, f"{name}.log"), "wb")
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        process.name = name
        self.running.append(process)
        return process

    def log_tail(self, process, size=2000):
        with open(os.path.join(self.log_dir, f"{process.name}.log"), "rb") as log:
            return log.read()[-size:].decode("utf-8", "replace")

    def stop(self, process, grace=8):
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if group_pids(process.pid):
            _signal_group(process.pid, signal.SIGKILL)  # workers left behind by a master that died
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if process in self.running:
            self.running.remove(process)

    def stop_all(self):
        for process in reversed(list(self.running)):
            self.stop(process, grace=3)


def _signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url, method="GET", timeout=5):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_answers(children, process, url, seconds):
    """Poll ``url`` until it answers 200; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode}:\n{children.log_tail(process)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not answer {url} within {seconds}s:\n{children.log_tail(process)}")


def group_pids(pgid):
    """Return the pids of the live processes in process group ``pgid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid):
    """Return user + system CPU seconds of the live processes of a process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def group_memory_mib(pgid):
    """Return (RSS, PSS) in MiB summed over the live processes of a process group."""
    rss = pss = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                rss += int(statm.read().split()[1]) * PAGE_KIB
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except OSError:
            continue
    return rss / 1024, pss / 1024


class Server:
    """One measured target: where to send the load and which process group serves it."""

    def __init__(self, name, url, process, api_key=None):
        self.name = name
        self.url = url
        self.process = process
        self.api_key = api_key

    def cpu(self):
        return group_cpu_seconds(self.process.pid)


def run_wrk(children, server, connections, seconds, body, pause_ms=0, ramp_ms=0, during=None):
    """Run wrk against ``server``; call ``during(started, wrk)`` while it runs; return its summary dict."""
    threads = min(2, connections)
    env = {**os.environ, "BENCH_BODY": json.dumps(body), "BENCH_API_KEY": server.api_key or "",
           "BENCH_PAUSE_MS": str(pause_ms), "BENCH_RAMP_MS": str(ramp_ms),
           "BENCH_CONNECTIONS": str(connections), "BENCH_THREADS": str(threads)}
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", f"{CLIENT_TIMEOUT}s", "-s", os.path.join(BENCH_DIR, "post.lua"), server.url]
    process = children.start(f"wrk-{server.name}-{connections}", command, env=env)
    started = time.monotonic()
    try:
        if during is not None:
            during(started, process)
        process.wait(timeout=seconds + CLIENT_TIMEOUT + 10)
    finally:
        children.stop(process, grace=1)
    for line in children.log_tail(process, 4000).splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.split(" ", 1)[1])
            result["seconds"] = result["duration_us"] / 1e6
            result["errors"] = sum(result[name] for name in ("connect", "read", "write", "status"))
            return result
    raise RuntimeError(f"wrk printed no result:\n{children.log_tail(process)}")


class Bench:
    def __init__(self, plan, work_dir, children):
        self.plan = plan
        self.work_dir = work_dir
        self.log_dir = children.log_dir
        self.children = children
        self.results = {}
        self.raw_keys = {user: f"ziri-{user}-{hashlib.sha256(user.encode()).hexdigest()[:32]}" for user in KEY_USERS}
        self.keys_path = os.path.join(work_dir, "keys.json")
        self.write_keys()

    # -- set-up -------------------------------------------------------------------------------

    def write_keys(self):
        keys = [{"id": f"key_{user}", "user": user, "status": "active", "demo": False,
                 "hash": "sha256:" + hashlib.sha256(raw.encode()).hexdigest(), "limits": GENEROUS_LIMITS}
                for user, raw in self.raw_keys.items()]
        with open(self.keys_path, "w") as file:
            json.dump({"keys": keys}, file)

    def start_upstream(self):
        port = free_port()
        process = self.children.start("upstream", [PYTHON, os.path.join(BENCH_DIR, "upstream.py"), "--port", str(port)])
        self.upstream_url = f"http://127.0.0.1:{port}"
        wait_until_answers(self.children, process, f"{self.upstream_url}/stats", 10)
        return Server("direct", f"{self.upstream_url}/v1/images/generations", process)

    def gunicorn_env(self, port, **extra):
        env = {name: value for name, value in os.environ.items() if not name.startswith(("ZIRI_", "OPENAI_"))}
        env.update(HOST="127.0.0.1", PORT=str(port), OPENAI_BASE_URL=f"{self.upstream_url}/v1",
                   OPENAI_API_KEY=UPSTREAM_KEY, **extra)
        return env

    def start_gunicorn(self, name, app, env_extra=None):
        """Start ``app`` under gunicorn with the project's gunicorn.conf.py; return (process, port)."""
        port = free_port()
        command = [PYTHON, "-m", "gunicorn", "--config", os.path.join(PROJECT_DIR, "gunicorn.conf.py"), app]
        return self.children.start(name, command, env=self.gunicorn_env(port, **(env_extra or {}))), port

    def start_forwarder(self):
        process, port = self.start_gunicorn("forwarder", "bench.forwarder:app")
        url = f"http://127.0.0.1:{port}/api/images/generations"
        # The forwarder has no /health: a POST through it to the upstream is its readiness check.
        deadline = time.monotonic() + 20
        while True:
            try:
                request = urllib.request.Request(url, data=json.dumps(BODY).encode(),
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"forwarder did not start:\n{self.children.log_tail(process)}")
                time.sleep(0.05)
        return Server("forwarder", url, process)

    def gateway_env(self, ledger_path, database_url="", durable=True):
        return {"ZIRI_KEYS_FILE": self.keys_path, "ZIRI_PRICING_FILE": os.path.join(PROJECT_DIR, "pricing.json"),
                "ZIRI_LEDGER_PATH": ledger_path, "ZIRI_LEDGER_DURABLE": "true" if durable else "false",
                "ZIRI_DATABASE_URL": database_url,
                "DATABASE_URL": "", "ZIRI_SPOOL_DIR": os.path.join(self.work_dir, "spool")}

    def start_gateway(self, name, ledger_path, seconds=20, database_url="", server_name="gateway", durable=True):
        process, port = self.start_gunicorn(name, "app:app", self.gateway_env(ledger_path, database_url, durable))
        waited = wait_until_answers(self.children, process, f"http://127.0.0.1:{port}/health", seconds)
        server = Server(server_name, f"http://127.0.0.1:{port}/api/images/generations", process,
                        api_key=self.raw_keys["bench"])
        return server, waited

    def worker_setup(self, process):
        """Wait until gunicorn's worker count holds still; return (worker class, workers)."""
        counts = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (len(counts) >= 3 and len(set(counts[-3:])) == 1):
            counts.append(len(group_pids(process.pid)) - 1)
            time.sleep(0.2)
        with open(os.path.join(self.log_dir, f"{process.name}.log"), "rb") as log:
            head = log.read(20000).decode("utf-8", "replace")
        worker_class = next((line.rsplit(" ", 1)[1] for line in head.splitlines() if "Using worker:" in line), "?")
        return worker_class, counts[-1]

    # -- measurements ---------------------------------------------------------------------------

    def warm_up(self, server):
        run_wrk(self.children, server, 4, 1, BODY)

    def measure_cpu(self, servers):
        """Figure 1: CPU ms per request and requests/s at 16 and at 1024 connections, instant upstream.

        CPU is counted over a steady-state window (after the connections are open, before the
        load stops) and divided by the upstream's completions in it: every request through a
        server is one upstream request, and requests still in flight at the end (1024 of them at
        1024 connections) would otherwise be paid for but not counted.
        """
        for connections, key in ((16, "cpu"), (1024, "cpu-1024")):
            # The servers take turns, round after round, and each figure is the median of its rounds:
            # the machine's own speed drifts by tens of percent over minutes, and a ratio of two
            # figures taken minutes apart would measure the drift.
            rounds = {server.name: [] for server in servers}
            for _ in range(self.plan.cpu_rounds):
                for server in servers:  # warmed up by the latency runs
                    rounds[server.name].append(self.cpu_run(server, connections))
            for name, runs in rounds.items():
                self.results[(key, name)] = {
                    "cpu_ms": statistics.median(run["cpu_ms"] for run in runs),
                    "rps": statistics.median(run["rps"] for run in runs),
                    "errors": sum(run["errors"] for run in runs),
                    "rounds": [round(run["cpu_ms"], 2) for run in runs],
                }

    def cpu_run(self, server, connections):
        """Return one instant-upstream run's CPU ms per request, requests/s and errors for ``server``."""
        settle, seconds = 1.0, self.plan.cpu_seconds
        marks = []

        def during(started, wrk):
            for at in (started + settle, started + settle + seconds):
                time.sleep(max(0.0, at - time.monotonic()))
                marks.append((server.cpu(), self.upstream_stats()["completed"], time.monotonic()))

        result = run_wrk(self.children, server, connections, int(settle + seconds + 1), BODY, during=during)
        (cpu0, done0, t0), (cpu1, done1, t1) = marks
        return {
            "cpu_ms": (cpu1 - cpu0) * 1000 / max(done1 - done0, 1),
            "rps": (done1 - done0) / (t1 - t0),
            "errors": result["errors"] + result["timeout"],
        }

    def measure_latency(self, servers):
        """Figure 2: p50 at one connection."""
        for server in servers:
            result = run_wrk(self.children, server, 1, self.plan.latency_seconds, BODY)
            self.results[("latency", server.name)] = {"p50_ms": result["p50_us"] / 1000,
                                                      "p99_ms": result["p99_us"] / 1000,
                                                      "errors": result["errors"] + result["timeout"]}

    def upstream_stats(self, reset=False):
        return http_json(f"{self.upstream_url}/stats" + ("/reset" if reset else ""), "POST" if reset else "GET")

    def drain_upstream(self):
        deadline = time.monotonic() + SLOW_SECONDS + CLIENT_TIMEOUT
        while self.upstream_stats()["inFlight"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.upstream_stats(reset=True)

    def measure_capacity(self, servers):
        """Figures 3 and 4: slow upstream at each connection level; memory sampled throughout.

        The connections start spread over most of an upstream period (a ramp, as real clients
        arrive), so the upstream sees a near-steady stream; throughput is the upstream's
        completions per second over whole upstream periods once the first requests came back.
        """
        window_start = SLOW_SECONDS + 0.5
        window = SLOW_SECONDS * self.plan.slow_periods
        seconds = int(window_start + window + 1)
        for connections in self.plan.levels:
            # At 1024 connections the gateway is held to a share of the forwarder's throughput: the
            # servers take turns over several rounds there, and each keeps its median round.
            rounds = self.plan.capacity_rounds if connections == max(self.plan.levels) else 1
            runs = {server.name: [] for server in servers}
            for _ in range(rounds):
                for server in servers:
                    runs[server.name].append(self.capacity_run(server, connections, window_start, window, seconds))
            for name, measured in runs.items():
                by_rps = sorted(measured, key=lambda run: run["rps"])
                self.results[("capacity", connections, name)] = {
                    **by_rps[len(by_rps) // 2],
                    "held": min(run["held"] for run in measured),
                    "errors": sum(run["errors"] for run in measured),
                    "timeouts": sum(run["timeouts"] for run in measured),
                    "rss_mib": max(run["rss_mib"] for run in measured),
                    "pss_mib": max(run["pss_mib"] for run in measured),
                    "rounds": len(measured),
                }
        self.drain_upstream()

    def capacity_run(self, server, connections, window_start, window, seconds):
        """Return one slow-upstream run's figures for ``server`` (figures 3 and 4)."""
        self.drain_upstream()
        samples = {"memory": [], "completed": []}

        def during(started, wrk):
            marks = [started + window_start, started + window_start + window]
            while wrk.poll() is None:
                now = time.monotonic()
                if server.name != "direct":
                    samples["memory"].append(group_memory_mib(server.process.pid))
                if marks and now >= marks[0]:
                    samples["completed"].append((now, self.upstream_stats()["completed"]))
                    marks.pop(0)
                time.sleep(0.1 if not marks else min(0.1, max(0.0, marks[0] - time.monotonic())))

        result = run_wrk(self.children, server, connections, seconds, SLOW_BODY,
                         ramp_ms=int(RAMP_SECONDS * 1000), during=during)
        stats = self.upstream_stats()
        if len(samples["completed"]) < 2:
            log = self.children.log_tail(server.process)
            raise RuntimeError(f"the load on {server.name} stopped early:\n{log}")
        (t0, c0), (t1, c1) = samples["completed"][:2]
        memory = samples["memory"] or [(0.0, 0.0)]
        return {
            "held": stats["peakInFlight"],
            "p50_s": result["p50_us"] / 1e6,
            "rps": (c1 - c0) / (t1 - t0),
            "errors": result["errors"],
            "timeouts": result["timeout"],
            "rss_mib": max(rss for rss, _ in memory),
            "pss_mib": max(pss for _, pss in memory),
        }

    def fixed_load(self, server):
        """Return (CPU seconds, wrk summary) for a fixed modest load: 4 connections, 20 ms apart."""
        before = server.cpu()
        result = run_wrk(self.children, server, 4, self.plan.scale_seconds, BODY, pause_ms=20)
        return server.cpu() - before, result

    def measure_ledger_scale(self):
        """Figure 5: gateways on a small and a large pre-filled ledger, loaded in turns.

        Both run at once (the idle one costs next to nothing) and take the load alternately, so
        a change in the machine's background load falls on both alike.
        """
        keys = [(f"key_{user}", user) for user in KEY_USERS]
        servers, paths, restarts = {}, {}, {}
        for label, lines in (("small", 1000), ("large", self.plan.ledger_lines)):
            path = paths[label] = os.path.join(self.work_dir, f"ledger-{label}.jsonl")
            write_ledger(path, lines, keys, datetime.now(timezone.utc))
            # The first start replays the whole ledger and leaves a checkpoint; a restart loads it.
            first, replay = self.start_gateway(f"gateway-{label}-first", path, seconds=120)
            self.children.stop(first.process)
            restarts[label] = []
            self.results[("scale", label)] = {"lines": lines, "replay_s": replay, "cpu": 0.0,
                                              "requests": 0, "seconds": 0.0, "p50s": [], "errors": 0}
        # A restart is mostly the interpreter's and gunicorn's own start-up, which the machine's load
        # moves by a few tenths of a second: the two ledgers restart in turns (right after the large
        # one's first start, the disk is still writing its pages back), and the figure is the median.
        for turn in range(RESTARTS):
            for label, path in paths.items():
                server, startup = self.start_gateway(f"gateway-{label}-{turn}", path, seconds=120)
                restarts[label].append(startup)
                if turn < RESTARTS - 1:
                    self.children.stop(server.process)
                else:
                    servers[label] = server
        for label, times in restarts.items():
            self.results[("scale", label)]["startup_s"] = sorted(times)[RESTARTS // 2]
        for server in servers.values():
            self.warm_up(server)
        for _ in range(self.plan.scale_rounds):
            for label, server in servers.items():
                cpu, result = self.fixed_load(server)
                totals = self.results[("scale", label)]
                totals["cpu"] += cpu
                totals["requests"] += result["requests"]
                totals["seconds"] += result["seconds"]
                totals["p50s"].append(result["p50_us"] / 1000)
                totals["errors"] += result["errors"] + result["timeout"]
        for label, server in servers.items():
            self.children.stop(server.process)
            totals = self.results[("scale", label)]
            totals["cpu_ms"] = totals["cpu"] * 1000 / max(totals["requests"], 1)
            totals["p50_ms"] = sorted(totals["p50s"])[len(totals["p50s"]) // 2]
            totals["rps"] = totals["requests"] / totals["seconds"]
            os.remove(os.path.join(self.work_dir, f"ledger-{label}.jsonl"))

    def measure_durable_throughput(self, processes=4, threads=8):
        """Figure 6: the file store's durable reserve + settle records/s (bench/store_throughput.py)."""
        for keys in STORE_KEYS:
            self.results[("store", "file", keys)] = measure_store("file", processes, threads,
                                                                  self.plan.durable_seconds, keys=keys)

    def measure_store_throughput(self, database_url, processes=4, threads=8):
        """Figure 6 for the PostgreSQL store: the same measurement on a temporary database."""
        for keys in STORE_KEYS:
            self.results[("store", "postgres", keys)] = measure_store("postgres", processes, threads,
                                                                      self.plan.durable_seconds, database_url, keys)


# -- the table ----------------------------------------------------------------------------------


def verdict(ok):
    return "pass" if ok else "MISS"


def flagged(text, errors):
    """Return ``text``, marked when the run behind it had failed requests (its figure is suspect)."""
    return f"{text} ({errors} failed requests!)" if errors else text


def build_table(results, plan):
    """Return the markdown table of all six figures with their targets."""
    rows = ["| # | figure | direct | bare forwarder | gateway | target | result |",
            "|---|---|---|---|---|---|---|"]

    def row(number, figure, direct, forwarder, gateway, target="—", result=""):
        rows.append(f"| {number} | {figure} | {direct} | {forwarder} | {gateway} | {target} | {result} |")

    cpu = {name: results[("cpu", name)] for name in TARGETS}
    ratio = cpu["gateway"]["cpu_ms"] / cpu["forwarder"]["cpu_ms"]
    turns = f", median of {plan.cpu_rounds} rounds" if plan.cpu_rounds > 1 else ""
    rounds = {name: ", ".join(map(str, cpu[name]["rounds"])) for name in TARGETS}
    row(1, f"server CPU ms/request, instant upstream, 16 conns{turns}",
        *(flagged(f"{cpu[name]['cpu_ms']:.2f}", cpu[name]["errors"]) for name in TARGETS[:2]),
        flagged(f"{cpu['gateway']['cpu_ms']:.2f} ({ratio:.2f}× forwarder; rounds {rounds['gateway']} vs "
                f"{rounds['forwarder']})", cpu["gateway"]["errors"]),
        "≤ 1.3× forwarder", verdict(ratio <= 1.3 and not cpu["gateway"]["errors"]))
    row(1, "requests/s, instant upstream, 16 conns", *(f"{cpu[name]['rps']:,.0f}" for name in TARGETS))
    if ("cpu", "nondurable") in results:
        light = results[("cpu", "nondurable")]
        row(1, "for reference: the gateway with a non-durable ledger (no fsync), CPU ms/request, 16 conns", "—",
            "—", flagged(f"{light['cpu_ms']:.2f} ({light['cpu_ms'] / cpu['forwarder']['cpu_ms']:.2f}× forwarder, "
                         f"{light['cpu_ms'] / cpu['gateway']['cpu_ms']:.2f}× durable; rounds "
                         f"{', '.join(map(str, light['rounds']))})", light["errors"]))
    many = {name: results[("cpu-1024", name)] for name in TARGETS}
    growth = {name: many[name]["cpu_ms"] / cpu[name]["cpu_ms"] for name in TARGETS[1:]}
    row(1, "server CPU ms/request, instant upstream, 1024 conns (× the 16-conn figure)",
        flagged(f"{many['direct']['cpu_ms']:.2f}", many["direct"]["errors"]),
        *(flagged(f"{many[name]['cpu_ms']:.2f} (×{growth[name]:.2f})", many[name]["errors"]) for name in TARGETS[1:]),
        "gateway ≤ ×1.1", verdict(growth["gateway"] <= 1.1 and not many["gateway"]["errors"]))
    latency = {name: results[("latency", name)] for name in TARGETS}
    floor = latency["direct"]["p50_ms"]
    row(2, "latency p50 at 1 conn (added over direct)", flagged(f"{floor:.2f} ms", latency["direct"]["errors"]),
        *(flagged(f"{latency[name]['p50_ms']:.2f} ms (+{latency[name]['p50_ms'] - floor:.2f})", latency[name]["errors"])
          for name in TARGETS[1:]))
    for connections in plan.levels:
        capacity = {name: results[("capacity", connections, name)] for name in TARGETS}
        gateway = capacity["gateway"]
        of_direct = gateway["rps"] / capacity["direct"]["rps"]
        of_forwarder = gateway["rps"] / capacity["forwarder"]["rps"]
        cells = [f"{c['held']} held, {c['rps']:.0f} req/s, p50 {c['p50_s']:.2f} s, {c['errors']} err, "
                 f"{c['timeouts']} t/o"
                 for c in capacity.values()]
        cells[2] += f" ({of_direct:.0%} of direct, {of_forwarder:.0%} of fwd)"
        clean = gateway["errors"] == 0 and gateway["timeouts"] == 0
        if connections == 256:
            ok = gateway["held"] >= connections and clean and of_direct >= 0.95
            target = "all held, 0 errors, ≥ 95% of direct"
        else:
            ok = gateway["held"] >= connections and clean and of_forwarder >= 0.95
            target = "all held, 0 errors/timeouts, ≥ 95% of fwd"
        turns = f", median of {gateway['rounds']} rounds" if gateway["rounds"] > 1 else ""
        row(3, f"{connections} conns, {SLOW_SECONDS:g} s upstream{turns}", *cells, target, verdict(ok))
    peak = max(plan.levels)
    memory = {name: results[("capacity", connections, name)] for name in TARGETS[1:] for connections in [peak]}
    gateway_rss = max(results[("capacity", c, "gateway")]["rss_mib"] for c in plan.levels)
    gateway_pss = max(results[("capacity", c, "gateway")]["pss_mib"] for c in plan.levels)
    row(4, f"peak memory, master + workers, up to {peak} conns (RSS; PSS)", "—",
        f"{memory['forwarder']['rss_mib']:.0f} MiB; {memory['forwarder']['pss_mib']:.0f} MiB",
        f"{gateway_rss:.0f} MiB; {gateway_pss:.0f} MiB ({gateway_rss / memory['forwarder']['rss_mib']:.2f}× fwd RSS)",
        "RSS ≤ 1.1× forwarder", verdict(gateway_rss <= 1.1 * memory["forwarder"]["rss_mib"]))
    small, large = results[("scale", "small")], results[("scale", "large")]
    cpu_ratio = large["cpu_ms"] / small["cpu_ms"]
    p50_ratio = large["p50_ms"] / small["p50_ms"]
    scale_errors = small["errors"] + large["errors"]
    row(5, f"ledger of {small['lines']:,} → {large['lines']:,} lines, 4 conns at ~{small['rps']:.0f} req/s",
        "—", "—", flagged(f"CPU {small['cpu_ms']:.2f} → {large['cpu_ms']:.2f} ms/req (×{cpu_ratio:.2f}); "
                          f"p50 {small['p50_ms']:.2f} → {large['p50_ms']:.2f} ms (×{p50_ratio:.2f})", scale_errors),
        "both ratios ≤ 1.1", verdict(cpu_ratio <= 1.1 and p50_ratio <= 1.1 and not scale_errors))
    row(5, f"restart (launch → /health, from the checkpoint, median of {RESTARTS}) with {large['lines']:,} lines",
        "—", "—",
        f"{large['startup_s']:.2f} s ({small['startup_s']:.2f} s with {small['lines']:,}); first start, full "
        f"replay: {large['replay_s']:.1f} s ({small['replay_s']:.2f} s)",
        "≤ 1 s, ≤ 1.2× the small one",
        verdict(large["startup_s"] <= 1 and large["startup_s"] <= 1.2 * small["startup_s"]))
    needed = 2 * 1024 / SLOW_SECONDS  # a reservation and a charge per request
    store_rows(row, results, 6, "file", needed)
    if ("cpu", "postgres") in results:
        postgres_rows(row, results, plan, needed)
    return "\n".join(rows)


def store_rows(row, results, number, store, needed):
    """Add figure 6 for one store: every thread on one key (a contention figure), then one key per thread."""
    for keys in STORE_KEYS:
        figure = results.get(("store", store, keys))
        if figure is None:
            continue
        spread = "one key" if keys == 1 else f"{keys} keys"
        row(number, f"{store} store: durable reserve+settle records/s, {figure['processes']} processes × "
                    f"{figure['threads']} threads, {spread}", "—", "—",
            flagged(f"{figure['records_per_s']:,.0f}/s", figure["errors"]),
            f"≥ {needed:,.0f}/s (what 1024 conns at {SLOW_SECONDS:g} s write)",
            verdict(figure["records_per_s"] >= needed and not figure["errors"]))


def postgres_rows(row, results, plan, needed):
    """Add the PostgreSQL store's rows: the same gateway on the shared store, beside the file store."""
    cpu, file_cpu = results[("cpu", "postgres")], results[("cpu", "gateway")]
    ratio = cpu["cpu_ms"] / file_cpu["cpu_ms"]
    row("1p", "PostgreSQL store: server CPU ms/request, instant upstream, 16 conns", "—", "—",
        flagged(f"{cpu['cpu_ms']:.2f} ({ratio:.2f}× file store), {cpu['rps']:,.0f} req/s", cpu["errors"]),
        "≤ 1.2× file store", verdict(ratio <= 1.2 and not cpu["errors"]))
    many = results[("cpu-1024", "postgres")]
    growth = many["cpu_ms"] / cpu["cpu_ms"]
    row("1p", "PostgreSQL store: server CPU ms/request, instant upstream, 1024 conns (× the 16-conn figure)",
        "—", "—", flagged(f"{many['cpu_ms']:.2f} (×{growth:.2f})", many["errors"]),
        "≤ ×1.1", verdict(growth <= 1.1 and not many["errors"]))
    floor = results[("latency", "direct")]["p50_ms"]
    latency = results[("latency", "postgres")]
    row("2p", "PostgreSQL store: latency p50 at 1 conn (added over direct)", "—", "—",
        flagged(f"{latency['p50_ms']:.2f} ms (+{latency['p50_ms'] - floor:.2f}; file store "
                f"+{results[('latency', 'gateway')]['p50_ms'] - floor:.2f})", latency["errors"]))
    for connections in plan.levels:
        capacity = results[("capacity", connections, "postgres")]
        clean = capacity["errors"] == 0 and capacity["timeouts"] == 0
        row("3p", f"PostgreSQL store: {connections} conns, {SLOW_SECONDS:g} s upstream", "—", "—",
            f"{capacity['held']} held, {capacity['rps']:.0f} req/s, p50 {capacity['p50_s']:.2f} s, "
            f"{capacity['errors']} err, {capacity['timeouts']} t/o, RSS {capacity['rss_mib']:.0f} MiB",
            "all held, 0 errors/timeouts", verdict(capacity["held"] >= connections and clean))
    store_rows(row, results, "6p", "postgres", needed)


def machine_line():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")


def write_readme(report):
    path = os.path.join(BENCH_DIR, "README.md")
    with open(path) as file:
        text = file.read()
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    with open(path, "w") as file:
        file.write(f"{head}{begin}\n{report}\n{end}{tail}")


def raise_open_files_limit():
    # 1024 client connections plus 1024 upstream ones per process: children inherit this.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def stop_on(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def out_of_time(signum, frame):
    raise TimeoutError("the benchmark ran past its time limit")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (under a minute)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, ledgers)")
    parser.add_argument("--database-url", help="PostgreSQL server for the PostgreSQL store's rows "
                                               "(default $ZIRI_BENCH_DATABASE_URL or the local test server)")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL store's rows")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed as the load generator: apt-get update && apt-get install -y wrk")
    plan = Plan(args.quick)
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    raise_open_files_limit()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start us with it ignored
        signal.signal(signum, stop_on)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(plan.deadline)
    work_dir = tempfile.mkdtemp(prefix="ziri-bench-")
    children = Children(work_dir)
    bench = Bench(plan, work_dir, children)
    database_url = None if args.no_postgres else (args.database_url or os.environ.get("ZIRI_BENCH_DATABASE_URL")
                                                  or "postgresql://postgres@127.0.0.1:5432/test")
    drop_database = None
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        print(f"bench: {command} (work dir {work_dir})", flush=True)
        direct = bench.start_upstream()
        forwarder = bench.start_forwarder()
        gateway, _ = bench.start_gateway("gateway", os.path.join(work_dir, "ledger.jsonl"))
        worker_class, workers = bench.worker_setup(gateway.process)
        bench.worker_setup(forwarder.process)
        servers = [direct, forwarder, gateway]
        if database_url:
            try:
                url, drop_database = temporary_database(database_url)
            except Exception as error:  # psycopg's OperationalError: no server there
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                print(f"bench: no PostgreSQL rows: {first_line} (--no-postgres leaves them out)", file=sys.stderr)
                database_url = None
        if database_url:
            postgres, _ = bench.start_gateway("gateway-postgres", os.path.join(work_dir, "unused.jsonl"),
                                              database_url=url, server_name="postgres")
            bench.worker_setup(postgres.process)
            servers.append(postgres)
        if not plan.quick:
            # For reference in figure 1 only: the same gateway without the fsync, taking its turns too.
            nondurable, _ = bench.start_gateway("gateway-nondurable", os.path.join(work_dir, "nondurable.jsonl"),
                                                server_name="nondurable", durable=False)
            bench.worker_setup(nondurable.process)
            bench.warm_up(nondurable)
        cpu_servers = servers + ([nondurable] if not plan.quick else [])
        for step, measure in (("2 latency (warms every server up)", lambda: bench.measure_latency(servers)),
                              ("1 CPU per request", lambda: bench.measure_cpu(cpu_servers)),
                              ("3-4 capacity and memory", lambda: bench.measure_capacity(servers))):
            print(f"bench: {step} ...", flush=True)
            measure()
        for server in cpu_servers[1:]:
            children.stop(server.process)
        print("bench: 5 ledger scale ...", flush=True)
        bench.measure_ledger_scale()
        print("bench: 6 durable file store throughput ...", flush=True)
        bench.measure_durable_throughput()
        if database_url:
            print("bench: 6p PostgreSQL store reserve+settle throughput ...", flush=True)
            bench.measure_store_throughput(database_url)
        signal.alarm(0)
        elapsed = time.monotonic() - started
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        report = "\n".join([
            f"- command: `{command}` ({elapsed:.0f} s, {stamp})",
            f"- machine: {machine_line()}; load average {load_before:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end",
            f"- servers: gunicorn.conf.py with the {worker_class} worker, {workers} workers (forwarder and "
            f"gateway alike); upstream: bench/upstream.py; load: wrk with bench/post.lua",
            "",
            build_table(bench.results, plan),
        ])
        print("\n" + report, flush=True)
        if not args.quick:
            write_readme(report)
            print("\nbench: bench/README.md updated", flush=True)
        return 0
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as error:
        print(f"bench: failed: {error}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        children.stop_all()
        if drop_database is not None:
            drop_database()
        if args.keep:
            print(f"bench: logs and ledgers kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
