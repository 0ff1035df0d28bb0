"""Benchmark the gateway beside the bare forwarder and the upstream itself, in one run.

    python -m bench.run            # the full run, about five minutes; rewrites bench/README.md
    python -m bench.run --quick    # a smoke run, under a minute; prints only

Everything listens on 127.0.0.1 and is started here: the asyncio upstream (bench/upstream.py),
the bare forwarder (bench/forwarder.py) and the gateway, both under gunicorn with the project's
gunicorn.conf.py, and wrk (Debian's ``wrk``) with bench/post.lua as the load. The gateway runs
with a real (non-demo) key with generous limits (every check runs, nothing is refused), the
real pricing.json and the durable ledger. Every process started here is stopped, by its process
group, when the run ends, fails, times out or is interrupted.

The six figures (bench/figures.py, bench/ledger_figures.py; their targets in bench/targets.py):
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
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from datetime import timezone

from bench import figures
from bench import ledger_figures
from bench.processes import Children
from bench.processes import raise_open_files_limit
from bench.servers import Servers
from bench.store_throughput import DEFAULT_SERVER
from bench.store_throughput import temporary_database
from bench.table import build_table
from bench.table import report
from bench.table import write_readme


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


def start_postgres_gateway(servers, database_url, on_exit):
    """Start a gateway on a temporary database of ``database_url``; return its Server, or None without a server."""
    try:
        url, drop = temporary_database(database_url)
    except Exception as error:  # psycopg's OperationalError: no server there
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"bench: no PostgreSQL rows: {first_line} (--no-postgres leaves them out)", file=sys.stderr)
        return None
    on_exit.append(drop)
    postgres, _ = servers.start_gateway("gateway-postgres", os.path.join(servers.work_dir, "unused.jsonl"),
                                        database_url=url, server_name="postgres")
    servers.worker_setup(postgres.process)
    return postgres


def start_servers(plan, servers, database_url, on_exit):
    """Start every measured server; return (them, those of figure 1, the gateway's (worker class, workers))."""
    direct = servers.start_upstream()
    forwarder = servers.start_forwarder()
    gateway, _ = servers.start_gateway("gateway", os.path.join(servers.work_dir, "ledger.jsonl"))
    setup = servers.worker_setup(gateway.process)
    servers.worker_setup(forwarder.process)
    measured = [direct, forwarder, gateway]
    postgres = start_postgres_gateway(servers, database_url, on_exit) if database_url else None
    if postgres is not None:
        measured.append(postgres)
    if plan.quick:
        return measured, measured, setup
    # For reference in figure 1 only: the same gateway without the fsync, taking its turns too.
    nondurable, _ = servers.start_gateway("gateway-nondurable", os.path.join(servers.work_dir, "nondurable.jsonl"),
                                          server_name="nondurable", durable=False)
    servers.worker_setup(nondurable.process)
    figures.warm_up(servers, nondurable)
    return measured, [*measured, nondurable], setup


def measure(plan, servers, database_url, on_exit):
    """Measure every figure in the run's order; return (the results, the gateway's (worker class, workers))."""
    measured, cpu_measured, setup = start_servers(plan, servers, database_url, on_exit)
    results = {}
    for step, figure in (("2 latency (warms every server up)", lambda: figures.latency(servers, measured, plan)),
                         ("1 CPU per request", lambda: figures.cpu(servers, cpu_measured, plan)),
                         ("3-4 capacity and memory", lambda: figures.capacity(servers, measured, plan))):
        print(f"bench: {step} ...", flush=True)
        results.update(figure())
    for server in cpu_measured[1:]:
        servers.children.stop(server.process)
    print("bench: 5 ledger scale ...", flush=True)
    results.update(ledger_figures.ledger_scale(servers, plan))
    print("bench: 6 durable file store throughput ...", flush=True)
    results.update(ledger_figures.store_throughput("file", plan))
    if any(server.name == "postgres" for server in measured):
        print("bench: 6p PostgreSQL store reserve+settle throughput ...", flush=True)
        results.update(ledger_figures.store_throughput("postgres", plan, database_url))
    return results, setup


def stop_on(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def out_of_time(signum, frame):
    raise TimeoutError("the benchmark ran past its time limit")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (under a minute)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, ledgers)")
    parser.add_argument("--database-url", help="PostgreSQL server for the PostgreSQL store's rows "
                                               "(default $ZIRI_BENCH_DATABASE_URL or the local test server)")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL store's rows")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed as the load generator: apt-get update && apt-get install -y wrk")
    plan = Plan(args.quick)
    command = "python -m bench.run" + (" --quick" if args.quick else "")
    raise_open_files_limit()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start us with it ignored
        signal.signal(signum, stop_on)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(plan.deadline)
    work_dir = tempfile.mkdtemp(prefix="ziri-bench-")
    children = Children(work_dir)
    database_url = None if args.no_postgres else (args.database_url or os.environ.get("ZIRI_BENCH_DATABASE_URL")
                                                  or DEFAULT_SERVER)
    on_exit = []  # what must be undone whatever happens (the temporary database)
    started, load_before = time.monotonic(), os.getloadavg()[0]
    try:
        print(f"bench: {command} (work dir {work_dir})", flush=True)
        results, setup = measure(plan, Servers(work_dir, children), database_url, on_exit)
        signal.alarm(0)
        text = report(command, time.monotonic() - started, datetime.now(timezone.utc), load_before, setup,
                      build_table(results, plan))
        print("\n" + text, flush=True)
        if not args.quick:
            write_readme(text)
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
        for undo in on_exit:
            undo()
        if args.keep:
            print(f"bench: logs and ledgers kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
