"""Measure how many requests one host holds in flight, by GUNICORN_WORKER_CONNECTIONS.

    python -m bench.held                                   # 4096 connections, 8 s upstream, 1000 and 3000
    python -m bench.held --connections 2048 --per-worker 500 1000

Starts bench/upstream.py (every answer after ``--delay`` seconds) and, for each
``--per-worker`` value in turn, the gateway under the project's gunicorn.conf.py (two workers,
gevent, durable file ledger) with that GUNICORN_WORKER_CONNECTIONS, and loads it with wrk:
``--connections`` connections whose first requests are spread over ``--ramp`` seconds. Prints,
per value: the requests the upstream held at once (its peakInFlight), the upstream's completions
per second over whole upstream periods once the first requests came back (the ideal is
connections / delay), wrk's errors and timeouts, the peak RSS of master + workers, and the file
descriptors the worker processes held at most. Everything runs on 127.0.0.1.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from bench.load import BODY
from bench.load import run_wrk
from bench.processes import Children
from bench.processes import group_memory_mib
from bench.processes import group_open_files
from bench.processes import raise_open_files_limit
from bench.processes import wait_until_answers
from bench.servers import Server
from bench.servers import Servers


def describe(kinds):
    """Return wrk's errors by kind, e.g. `` (read 12)``, or nothing when there were none."""
    return f" ({', '.join(f'{name} {count}' for name, count in kinds.items())})" if kinds else ""


def held_run(servers, per_worker, args):
    """Return the figures of one gateway with ``per_worker`` connections per worker under the load."""
    env = {**servers.gateway_env(os.path.join(servers.work_dir, f"ledger-{per_worker}.jsonl")),
           "GUNICORN_WORKER_CONNECTIONS": str(per_worker)}
    process, port = servers.start_gunicorn(f"gateway-{per_worker}", "app:app", env)
    wait_until_answers(servers.children, process, f"http://127.0.0.1:{port}/health", 30)
    server = Server("gateway", f"http://127.0.0.1:{port}/api/images/generations", process,
                    api_key=servers.raw_keys["bench"])
    body = {**BODY, "prompt": f"{BODY['prompt']} [stub:delay={args.delay:g}]"}
    window_start = args.delay + args.ramp
    window = args.delay * args.periods
    samples = {"rss": [], "fds": [], "completed": []}

    def during(started, wrk):
        marks = [started + window_start, started + window_start + window]
        while wrk.poll() is None:
            samples["rss"].append(group_memory_mib(process.pid)[0])
            samples["fds"].append(group_open_files(process.pid))
            if marks and time.monotonic() >= marks[0]:
                samples["completed"].append((time.monotonic(), servers.upstream_stats()["completed"]))
                marks.pop(0)
            time.sleep(0.2)

    servers.upstream_stats(reset=True)
    result = run_wrk(servers.children, server, args.connections, int(window_start + window + 1), body,
                     ramp_ms=int(args.ramp * 1000), during=during, timeout=int(args.delay * 2 + 2))
    stats = servers.upstream_stats()
    if args.keep:
        print(f"  logs: {servers.log_dir}")
    servers.children.stop(process)
    (t0, c0), (t1, c1) = samples["completed"][:2]
    errors = {name: result[name] for name in ("connect", "read", "write", "status") if result[name]}
    return {"held": stats["peakInFlight"], "rps": (c1 - c0) / (t1 - t0), "errors": result["errors"], "kinds": errors,
            "timeouts": result["timeout"], "rss_mib": max(samples["rss"]), "fds": max(samples["fds"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=4096)
    parser.add_argument("--delay", type=float, default=8.0, help="seconds the upstream takes per request")
    # Under gunicorn's 2 s keep-alive, which also closes a new connection that has sent nothing yet.
    parser.add_argument("--ramp", type=float, default=1.5, help="seconds over which the connections start")
    parser.add_argument("--periods", type=int, default=2, help="upstream periods counted for the throughput")
    parser.add_argument("--per-worker", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--keep", action="store_true", help="keep the work directory (every process's log)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed as the load generator: apt-get update && apt-get install -y wrk")
    raise_open_files_limit()
    work_dir = tempfile.mkdtemp(prefix="ziri-held-")
    children = Children(work_dir)
    servers = Servers(work_dir, children)
    try:
        servers.start_upstream()
        ideal = args.connections / args.delay
        print(f"{args.connections} connections, {args.delay:g} s upstream (ideal {ideal:.0f} req/s), "
              f"2 gevent workers; load average {os.getloadavg()[0]:.2f}")
        for per_worker in args.per_worker:
            figures = held_run(servers, per_worker, args)
            print(f"GUNICORN_WORKER_CONNECTIONS={per_worker}: held {figures['held']}, {figures['rps']:.0f} req/s "
                  f"({figures['rps'] / ideal:.0%} of ideal), {figures['errors']} errors{describe(figures['kinds'])}, "
                  f"{figures['timeouts']} timeouts, peak RSS {figures['rss_mib']:.0f} MiB, "
                  f"peak open files {figures['fds']}", flush=True)
    finally:
        children.stop_all()
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
