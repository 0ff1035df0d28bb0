"""Measure figures 5 and 6: a gateway on a small and a large ledger, and the stores' own throughput."""

import os
from datetime import datetime
from datetime import timezone

from bench.figures import warm_up
from bench.ledger_bench import write_ledger
from bench.load import BODY
from bench.load import run_wrk
from bench.servers import KEY_USERS
from bench.store_throughput import measure as measure_store

RESTARTS = 5  # restarts from the checkpoint per ledger size, in turns (figure 5: their median)
STORE_KEYS = (1, 8)  # figure 6: every thread on one key (its lock), then one key per thread


def ledger_scale(servers, plan):
    """Figure 5: gateways on a small and a large pre-filled ledger, loaded in turns.

    Both run at once (the idle one costs next to nothing) and take the load alternately, so
    a change in the machine's background load falls on both alike.
    """
    paths, results = first_starts(servers, plan)
    gateways, restarts = restarts_in_turns(servers, paths)
    for label, times in restarts.items():
        results[("scale", label)]["startup_s"] = sorted(times)[RESTARTS // 2]
    for server in gateways.values():
        warm_up(servers, server)
    for _ in range(plan.scale_rounds):
        for label, server in gateways.items():
            cpu, result = fixed_load(servers, server, plan.scale_seconds)
            totals = results[("scale", label)]
            totals["cpu"] += cpu
            totals["requests"] += result["requests"]
            totals["seconds"] += result["seconds"]
            totals["p50s"].append(result["p50_us"] / 1000)
            totals["errors"] += result["errors"] + result["timeout"]
    for label, server in gateways.items():
        servers.children.stop(server.process)
        totals = results[("scale", label)]
        totals["cpu_ms"] = totals["cpu"] * 1000 / max(totals["requests"], 1)
        totals["p50_ms"] = sorted(totals["p50s"])[len(totals["p50s"]) // 2]
        totals["rps"] = totals["requests"] / totals["seconds"]
        os.remove(paths[label])
    return results


def first_starts(servers, plan):
    """Write both ledgers and start a gateway on each once; return (their paths, their results so far)."""
    keys = [(f"key_{user}", user) for user in KEY_USERS]
    paths, results = {}, {}
    for label, lines in (("small", 1000), ("large", plan.ledger_lines)):
        path = paths[label] = os.path.join(servers.work_dir, f"ledger-{label}.jsonl")
        write_ledger(path, lines, keys, datetime.now(timezone.utc))
        # The first start replays the whole ledger and leaves a checkpoint; a restart loads it.
        first, replay = servers.start_gateway(f"gateway-{label}-first", path, seconds=120)
        servers.children.stop(first.process)
        results[("scale", label)] = {"lines": lines, "replay_s": replay, "cpu": 0.0,
                                     "requests": 0, "seconds": 0.0, "p50s": [], "errors": 0}
    return paths, results


def restarts_in_turns(servers, paths):
    """Restart a gateway on each ledger ``RESTARTS`` times in turns; return (the last ones, every start-up time)."""
    # A restart is mostly the interpreter's and gunicorn's own start-up, which the machine's load
    # moves by a few tenths of a second: the two ledgers restart in turns (right after the large
    # one's first start, the disk is still writing its pages back), and the figure is the median.
    gateways, restarts = {}, {label: [] for label in paths}
    for turn in range(RESTARTS):
        for label, path in paths.items():
            server, startup = servers.start_gateway(f"gateway-{label}-{turn}", path, seconds=120)
            restarts[label].append(startup)
            if turn < RESTARTS - 1:
                servers.children.stop(server.process)
            else:
                gateways[label] = server
    return gateways, restarts


def fixed_load(servers, server, seconds):
    """Return (CPU seconds, wrk summary) for a fixed modest load: 4 connections, 20 ms apart."""
    before = server.cpu()
    result = run_wrk(servers.children, server, 4, seconds, BODY, pause_ms=20)
    return server.cpu() - before, result


def store_throughput(store, plan, database_url=None, processes=4, threads=8):
    """Figure 6: a store's durable reserve + settle records/s (bench/store_throughput.py), for each key spread.

    For the PostgreSQL store it runs on a temporary database of the server at ``database_url``.
    """
    return {("store", store, keys): measure_store(store, processes, threads, plan.durable_seconds, database_url, keys)
            for keys in STORE_KEYS}
