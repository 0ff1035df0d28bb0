"""Instructions per request, gateway beside the bare forwarder: a count that the machine's speed does not move.

    python -m bench.instructions            # needs valgrind (apt-get install -y valgrind)

CPU seconds on a shared machine drift by tens of percent within minutes; the instructions a
request executes do not. Each app (``app:app`` with the durable ledger and a key with every
limit set, as in bench/run.py; and bench/forwarder.py) runs in a process of its own under
gevent's patches, as in a gunicorn worker, and is called through WSGI, with no server in
between, against bench/upstream.py on 127.0.0.1. ``valgrind --tool=callgrind`` counts what
each process executes for SHORT and for LONG requests (after the same warm-up); the difference
divided by LONG - SHORT is the count per request, start-up left out. It prints both counts and
their ratio. What the figure leaves out: the kernel's work (system calls, the fsync) and how
fast each instruction runs (cache misses, context switches), which CPU seconds include.

    python -m bench.instructions --gunicorn # the same, with gunicorn in between (needs wrk too)

``--gunicorn`` counts every process of each server (gunicorn.conf.py: the master and two gevent
workers, all under callgrind) once after a warm-up alone and once after the warm-up and 20 s of
load at 4 connections (wrk), and divides the difference by the difference in requests the
upstream served: gunicorn's own work per request included. About five minutes.
"""

import argparse
import glob
import io
import json
import os
import re
import sys
import tempfile
import time

from bench.load import BODY
from bench.load import run_wrk
from bench.processes import PROJECT_DIR
from bench.processes import Children
from bench.processes import free_port
from bench.servers import Server
from bench.servers import Servers

WARM_UP, SHORT, LONG = 50, 100, 600
APPS = ("gateway", "forwarder")


def child(name, requests):
    """Run ``requests`` calls of app ``name`` after the warm-up (the process valgrind counts)."""
    from gevent import monkey

    monkey.patch_all()  # as gunicorn.conf.py does for the gevent worker
    if name == "gateway":
        from ziri_images import create_app

        app = create_app()
    else:
        from bench.forwarder import app
    body = json.dumps(BODY).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/images/generations", "SCRIPT_NAME": "",
               "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "3100",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
               "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
               "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "HTTP_HOST": "127.0.0.1:3100", "HTTP_X_API_KEY": os.environ["BENCH_API_KEY"],
               "HTTP_USER_AGENT": "bench"}
    statuses = []
    for _ in range(WARM_UP + requests):
        answer = app({**environ, "wsgi.input": io.BytesIO(body)}, lambda status, headers, *_: statuses.append(status))
        b"".join(answer)
        getattr(answer, "close", lambda: None)()
    if any(not status.startswith("200") for status in statuses):
        sys.exit(f"{name}: {sum(not s.startswith('200') for s in statuses)} answers were not 200: {statuses[-1]}")


def count(servers, name, requests):
    """Start ``name`` under callgrind for ``requests`` calls (its own ledger and metrics); return the process."""
    work_dir = servers.work_dir
    metrics = os.path.join(work_dir, f"metrics-{name}-{requests}")
    os.makedirs(metrics)
    env = servers.gunicorn_env(0, **servers.gateway_env(os.path.join(work_dir, f"{name}-{requests}.jsonl")),
                               PROMETHEUS_MULTIPROC_DIR=metrics, BENCH_API_KEY=servers.raw_keys["bench"])
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work_dir}/callgrind.{name}.{requests}",
               sys.executable, "-m", "bench.instructions", "--child", name, str(requests)]
    return servers.children.start(f"{name}-{requests}", command, env=env)


def collected(children, process):
    """Return the instructions valgrind counted for ``process`` (after it exited cleanly)."""
    if process.wait(timeout=900) != 0:
        raise RuntimeError(f"{process.name} failed:\n{children.log_tail(process)}")
    found = re.search(r"Collected : (\d+)", children.log_tail(process, 4000))
    if found is None:
        raise RuntimeError(f"{process.name}: valgrind printed no count:\n{children.log_tail(process)}")
    return int(found.group(1))


def server_instructions(servers, name, app, env, seconds):
    """Return (instructions of every gunicorn process, requests served) for one server's life under callgrind."""
    children, port = servers.children, free_port()
    out_dir = os.path.join(servers.work_dir, f"{name}-{seconds}")
    os.makedirs(out_dir)
    command = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out_dir}/callgrind.%p",
               sys.executable, "-m", "gunicorn", "--config", os.path.join(PROJECT_DIR, "gunicorn.conf.py"), app]
    process = children.start(f"{name}-{seconds}", command, env=servers.gunicorn_env(port, **env))
    server = Server(name, f"http://127.0.0.1:{port}/api/images/generations", process,
                    api_key=servers.raw_keys["bench"] if name == "gateway" else None)
    before = servers.upstream_stats()["completed"]
    started = time.monotonic()
    while servers.upstream_stats()["completed"] == before:  # up (slowly, under callgrind) and answering
        if process.poll() is not None or time.monotonic() - started > 300:
            raise RuntimeError(f"{name} did not start under callgrind:\n{children.log_tail(process)}")
        try:
            run_wrk(children, server, 1, 2, BODY)
        except RuntimeError:  # not listening yet
            time.sleep(1)
    run_wrk(children, server, 4, 5, BODY)  # the warm-up
    if seconds:
        run_wrk(children, server, 4, seconds, BODY)
    served = servers.upstream_stats()["completed"] - before
    children.stop(process, grace=30)  # callgrind writes each process's count as it exits
    total = 0
    for path in glob.glob(os.path.join(out_dir, "callgrind.*")):
        with open(path, errors="replace") as file:
            head = file.read(4000)
        found = re.search(r"^summary: (\d+)", head, re.M)
        if found is None:
            raise RuntimeError(f"{path}: no count (the process was killed before it could write it)")
        total += int(found.group(1))
    return total, served


def through_gunicorn():
    """Return instructions per request for each app under gunicorn (the slope between a short and a long life)."""
    work_dir = tempfile.mkdtemp(prefix="ziri-instructions-")
    servers = Servers(work_dir, Children(work_dir))
    try:
        servers.start_upstream()
        apps = {"gateway": ("app:app", servers.gateway_env(os.path.join(work_dir, "ledger.jsonl"))),
                "forwarder": ("bench.forwarder:app", {})}
        per_request = {}
        for name, (app, env) in apps.items():
            (short, short_served), (long, long_served) = (server_instructions(servers, name, app, env, seconds)
                                                          for seconds in (0, 20))
            per_request[name] = (long - short) / (long_served - short_served)
    finally:
        servers.children.stop_all()
    return per_request


def through_wsgi():
    """Return instructions per request for each app called through WSGI in a process of its own."""
    work_dir = tempfile.mkdtemp(prefix="ziri-instructions-")
    servers = Servers(work_dir, Children(work_dir))
    try:
        servers.start_upstream()
        per_request, children = {}, servers.children
        for name in APPS:
            # Two at a time (one per core): the counts do not depend on it, the wall time does.
            short, long = (count(servers, name, requests) for requests in (SHORT, LONG))
            per_request[name] = (collected(children, long) - collected(children, short)) / (LONG - SHORT)
    finally:
        servers.children.stop_all()
    return per_request


def report(per_request, how):
    gateway, forwarder = per_request["gateway"], per_request["forwarder"]
    print(f"instructions per request ({how}):")
    print(f"  bare forwarder {forwarder / 1e6:.2f} M")
    print(f"  gateway        {gateway / 1e6:.2f} M ({gateway / forwarder:.2f}x the forwarder)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("APP", "REQUESTS"), help=argparse.SUPPRESS)
    parser.add_argument("--gunicorn", action="store_true", help="count through gunicorn (needs wrk)")
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    if args.gunicorn:
        return report(through_gunicorn(), "through gunicorn (2 gevent workers, 4 connections), callgrind")
    return report(through_wsgi(), f"{LONG} - {SHORT} requests, under gevent, through WSGI, callgrind")


if __name__ == "__main__":
    sys.exit(main())
