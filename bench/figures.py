"""Measure figures 1 to 4 (CPU, latency, capacity, memory): one function per figure.

Each takes the run's ``Servers``, the measured ``Server``s and the plan, and returns its results
keyed as the table reads them: ``(figure, server name)`` or ``(figure, connections, server name)``.
"""

import statistics
import time

from bench.load import BODY
from bench.load import RAMP_SECONDS
from bench.load import SLOW_BODY
from bench.load import SLOW_SECONDS
from bench.load import run_wrk
from bench.processes import group_memory_mib


def warm_up(servers, server):
    run_wrk(servers.children, server, 4, 1, BODY)


def latency(servers, measured, plan):
    """Figure 2: p50 at one connection."""
    results = {}
    for server in measured:
        result = run_wrk(servers.children, server, 1, plan.latency_seconds, BODY)
        results[("latency", server.name)] = {"p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000,
                                             "errors": result["errors"] + result["timeout"]}
    return results


def cpu(servers, measured, plan):
    """Figure 1: CPU ms per request and requests/s at 16 and at 1024 connections, instant upstream.

    CPU is counted over a steady-state window (after the connections are open, before the
    load stops) and divided by the upstream's completions in it: every request through a
    server is one upstream request, and requests still in flight at the end (1024 of them at
    1024 connections) would otherwise be paid for but not counted.
    """
    results = {}
    for connections, key in ((16, "cpu"), (1024, "cpu-1024")):
        # The servers take turns, round after round, and each figure is the median of its rounds:
        # the machine's own speed drifts by tens of percent over minutes, and a ratio of two
        # figures taken minutes apart would measure the drift.
        rounds = {server.name: [] for server in measured}
        for _ in range(plan.cpu_rounds):
            for server in measured:  # warmed up by the latency runs
                rounds[server.name].append(cpu_run(servers, server, connections, plan.cpu_seconds))
        for name, runs in rounds.items():
            results[(key, name)] = {
                "cpu_ms": statistics.median(run["cpu_ms"] for run in runs),
                "rps": statistics.median(run["rps"] for run in runs),
                "errors": sum(run["errors"] for run in runs),
                "rounds": [round(run["cpu_ms"], 2) for run in runs],
            }
    return results


def cpu_run(servers, server, connections, seconds):
    """Return one instant-upstream run's CPU ms per request, requests/s and errors for ``server``."""
    settle = 1.0
    marks = []

    def during(started, wrk):
        for at in (started + settle, started + settle + seconds):
            time.sleep(max(0.0, at - time.monotonic()))
            marks.append((server.cpu(), servers.upstream_stats()["completed"], time.monotonic()))

    result = run_wrk(servers.children, server, connections, int(settle + seconds + 1), BODY, during=during)
    (cpu0, done0, t0), (cpu1, done1, t1) = marks
    return {
        "cpu_ms": (cpu1 - cpu0) * 1000 / max(done1 - done0, 1),
        "rps": (done1 - done0) / (t1 - t0),
        "errors": result["errors"] + result["timeout"],
    }


def capacity(servers, measured, plan):
    """Figures 3 and 4: slow upstream at each connection level; memory sampled throughout.

    The connections start spread over most of an upstream period (a ramp, as real clients
    arrive), so the upstream sees a near-steady stream; throughput is the upstream's
    completions per second over whole upstream periods once the first requests came back.
    """
    window_start = SLOW_SECONDS + 0.5
    window = SLOW_SECONDS * plan.slow_periods
    results = {}
    for connections in plan.levels:
        # At 1024 connections the gateway is held to a share of the forwarder's throughput: the
        # servers take turns over several rounds there, and each keeps its median round.
        rounds = plan.capacity_rounds if connections == max(plan.levels) else 1
        runs = {server.name: [] for server in measured}
        for _ in range(rounds):
            for server in measured:
                runs[server.name].append(capacity_run(servers, server, connections, window_start, window))
        for name, done in runs.items():
            results[("capacity", connections, name)] = median_capacity(done)
    servers.drain_upstream()
    return results


def median_capacity(runs):
    """Return the median run by throughput, with the errors of all runs, their fewest held and most memory."""
    by_rps = sorted(runs, key=lambda run: run["rps"])
    return {
        **by_rps[len(by_rps) // 2],
        "held": min(run["held"] for run in runs),
        "errors": sum(run["errors"] for run in runs),
        "timeouts": sum(run["timeouts"] for run in runs),
        "rss_mib": max(run["rss_mib"] for run in runs),
        "pss_mib": max(run["pss_mib"] for run in runs),
        "rounds": len(runs),
    }


def capacity_run(servers, server, connections, window_start, window):
    """Return one slow-upstream run's figures for ``server`` (figures 3 and 4)."""
    servers.drain_upstream()
    samples = {"memory": [], "completed": []}

    def during(started, wrk):
        marks = [started + window_start, started + window_start + window]
        while wrk.poll() is None:
            now = time.monotonic()
            if server.name != "direct":
                samples["memory"].append(group_memory_mib(server.process.pid))
            if marks and now >= marks[0]:
                samples["completed"].append((now, servers.upstream_stats()["completed"]))
                marks.pop(0)
            time.sleep(0.1 if not marks else min(0.1, max(0.0, marks[0] - time.monotonic())))

    result = run_wrk(servers.children, server, connections, int(window_start + window + 1), SLOW_BODY,
                     ramp_ms=int(RAMP_SECONDS * 1000), during=during)
    stats = servers.upstream_stats()
    if len(samples["completed"]) < 2:
        raise RuntimeError(f"the load on {server.name} stopped early:\n{servers.children.log_tail(server.process)}")
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
