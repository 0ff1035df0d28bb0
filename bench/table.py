"""Build the benchmark's table from a run's results, and write it into bench/README.md."""

import os
import platform

from bench.ledger_figures import RESTARTS
from bench.ledger_figures import STORE_KEYS
from bench.load import SLOW_SECONDS
from bench.processes import BENCH_DIR
from bench.targets import TARGET_OF

SERVERS = ("direct", "forwarder", "gateway")  # the table's columns, in order
README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def verdict(ok):
    return "pass" if ok else "MISS"


def flagged(text, errors):
    """Return ``text``, marked when the run behind it had failed requests (its figure is suspect)."""
    return f"{text} ({errors} failed requests!)" if errors else text


class Table:
    """The markdown rows, each judged by the target of its figure (bench/targets.py) when it has one."""

    def __init__(self):
        self.rows = ["| # | figure | direct | bare forwarder | gateway | target | result |",
                     "|---|---|---|---|---|---|---|"]

    def row(self, number, label, direct, forwarder, gateway, figure=None, facts=None):
        target, result = "—", ""
        if figure is not None:
            target = TARGET_OF[figure].target
            result = verdict(TARGET_OF[figure].check(facts))
        self.rows.append(f"| {number} | {label} | {direct} | {forwarder} | {gateway} | {target} | {result} |")

    def text(self):
        return "\n".join(self.rows)


def build_table(results, plan):
    """Return the markdown table of all six figures with their targets."""
    table = Table()
    cpu_rows(table, results, plan)
    capacity_rows(table, results, plan)
    ledger_rows(table, results)
    store_rows(table, results, 6, "file")
    if ("cpu", "postgres") in results:
        postgres_rows(table, results, plan)
    return table.text()


def cpu_rows(table, results, plan):
    """Add figures 1 and 2: CPU per request and requests/s at 16 and 1024 connections, latency at 1."""
    cpu = {name: results[("cpu", name)] for name in SERVERS}
    ratio = cpu["gateway"]["cpu_ms"] / cpu["forwarder"]["cpu_ms"]
    turns = f", median of {plan.cpu_rounds} rounds" if plan.cpu_rounds > 1 else ""
    rounds = {name: ", ".join(map(str, cpu[name]["rounds"])) for name in SERVERS}
    table.row(1, f"server CPU ms/request, instant upstream, 16 conns{turns}",
              *(flagged(f"{cpu[name]['cpu_ms']:.2f}", cpu[name]["errors"]) for name in SERVERS[:2]),
              flagged(f"{cpu['gateway']['cpu_ms']:.2f} ({ratio:.2f}× forwarder; rounds {rounds['gateway']} vs "
                      f"{rounds['forwarder']})", cpu["gateway"]["errors"]),
              "cpu", {"ratio": ratio, "errors": cpu["gateway"]["errors"]})
    table.row(1, "requests/s, instant upstream, 16 conns", *(f"{cpu[name]['rps']:,.0f}" for name in SERVERS))
    if ("cpu", "nondurable") in results:
        light = results[("cpu", "nondurable")]
        table.row(1, "for reference: the gateway with a non-durable ledger (no fsync), CPU ms/request, 16 conns", "—",
                  "—", flagged(f"{light['cpu_ms']:.2f} ({light['cpu_ms'] / cpu['forwarder']['cpu_ms']:.2f}× forwarder, "
                               f"{light['cpu_ms'] / cpu['gateway']['cpu_ms']:.2f}× durable; rounds "
                               f"{', '.join(map(str, light['rounds']))})", light["errors"]))
    many = {name: results[("cpu-1024", name)] for name in SERVERS}
    growth = {name: many[name]["cpu_ms"] / cpu[name]["cpu_ms"] for name in SERVERS[1:]}
    table.row(1, "server CPU ms/request, instant upstream, 1024 conns (× the 16-conn figure)",
              flagged(f"{many['direct']['cpu_ms']:.2f}", many["direct"]["errors"]),
              *(flagged(f"{many[name]['cpu_ms']:.2f} (×{growth[name]:.2f})", many[name]["errors"])
                for name in SERVERS[1:]),
              "cpu-1024", {"growth": growth["gateway"], "errors": many["gateway"]["errors"]})
    latency = {name: results[("latency", name)] for name in SERVERS}
    floor = latency["direct"]["p50_ms"]
    table.row(2, "latency p50 at 1 conn (added over direct)", flagged(f"{floor:.2f} ms", latency["direct"]["errors"]),
              *(flagged(f"{latency[name]['p50_ms']:.2f} ms (+{latency[name]['p50_ms'] - floor:.2f})",
                        latency[name]["errors"]) for name in SERVERS[1:]))


def capacity_rows(table, results, plan):
    """Add figures 3 and 4: a slow upstream at each connection level, and the peak memory under it."""
    for connections in plan.levels:
        capacity = {name: results[("capacity", connections, name)] for name in SERVERS}
        gateway = capacity["gateway"]
        of_direct = gateway["rps"] / capacity["direct"]["rps"]
        of_forwarder = gateway["rps"] / capacity["forwarder"]["rps"]
        cells = [f"{c['held']} held, {c['rps']:.0f} req/s, p50 {c['p50_s']:.2f} s, {c['errors']} err, "
                 f"{c['timeouts']} t/o"
                 for c in capacity.values()]
        cells[2] += f" ({of_direct:.0%} of direct, {of_forwarder:.0%} of fwd)"
        turns = f", median of {gateway['rounds']} rounds" if gateway["rounds"] > 1 else ""
        facts = {"held": gateway["held"], "connections": connections, "of_direct": of_direct,
                 "of_forwarder": of_forwarder, "clean": gateway["errors"] == 0 and gateway["timeouts"] == 0}
        table.row(3, f"{connections} conns, {SLOW_SECONDS:g} s upstream{turns}", *cells,
                  "capacity-256" if connections == 256 else "capacity-1024", facts)
    peak = max(plan.levels)
    forwarder = results[("capacity", peak, "forwarder")]
    gateway_rss = max(results[("capacity", c, "gateway")]["rss_mib"] for c in plan.levels)
    gateway_pss = max(results[("capacity", c, "gateway")]["pss_mib"] for c in plan.levels)
    table.row(4, f"peak memory, master + workers, up to {peak} conns (RSS; PSS)", "—",
              f"{forwarder['rss_mib']:.0f} MiB; {forwarder['pss_mib']:.0f} MiB",
              f"{gateway_rss:.0f} MiB; {gateway_pss:.0f} MiB ({gateway_rss / forwarder['rss_mib']:.2f}× fwd RSS)",
              "memory", {"gateway_rss": gateway_rss, "forwarder_rss": forwarder["rss_mib"]})


def ledger_rows(table, results):
    """Add figure 5: the cost per request and the restart with a small and a large ledger."""
    small, large = results[("scale", "small")], results[("scale", "large")]
    cpu_ratio = large["cpu_ms"] / small["cpu_ms"]
    p50_ratio = large["p50_ms"] / small["p50_ms"]
    errors = small["errors"] + large["errors"]
    table.row(5, f"ledger of {small['lines']:,} → {large['lines']:,} lines, 4 conns at ~{small['rps']:.0f} req/s",
              "—", "—", flagged(f"CPU {small['cpu_ms']:.2f} → {large['cpu_ms']:.2f} ms/req (×{cpu_ratio:.2f}); "
                                f"p50 {small['p50_ms']:.2f} → {large['p50_ms']:.2f} ms (×{p50_ratio:.2f})", errors),
              "ledger-cost", {"cpu_ratio": cpu_ratio, "p50_ratio": p50_ratio, "errors": errors})
    table.row(5, f"restart (launch → /health, from the checkpoint, median of {RESTARTS}) with "
                 f"{large['lines']:,} lines", "—", "—",
              f"{large['startup_s']:.2f} s ({small['startup_s']:.2f} s with {small['lines']:,}); first start, full "
              f"replay: {large['replay_s']:.1f} s ({small['replay_s']:.2f} s)",
              "restart", {"large_s": large["startup_s"], "small_s": small["startup_s"]})


def store_rows(table, results, number, store):
    """Add figure 6 for one store: every thread on one key (a contention figure), then one key per thread."""
    for keys in STORE_KEYS:
        figure = results.get(("store", store, keys))
        if figure is None:
            continue
        spread = "one key" if keys == 1 else f"{keys} keys"
        table.row(number, f"{store} store: durable reserve+settle records/s, {figure['processes']} processes × "
                          f"{figure['threads']} threads, {spread}", "—", "—",
                  flagged(f"{figure['records_per_s']:,.0f}/s", figure["errors"]),
                  "store", {"records_per_s": figure["records_per_s"], "errors": figure["errors"]})


def postgres_rows(table, results, plan):
    """Add the PostgreSQL store's rows: the same gateway on the shared store, beside the file store."""
    cpu, file_cpu = results[("cpu", "postgres")], results[("cpu", "gateway")]
    ratio = cpu["cpu_ms"] / file_cpu["cpu_ms"]
    table.row("1p", "PostgreSQL store: server CPU ms/request, instant upstream, 16 conns", "—", "—",
              flagged(f"{cpu['cpu_ms']:.2f} ({ratio:.2f}× file store), {cpu['rps']:,.0f} req/s", cpu["errors"]),
              "postgres-cpu", {"ratio": ratio, "errors": cpu["errors"]})
    many = results[("cpu-1024", "postgres")]
    growth = many["cpu_ms"] / cpu["cpu_ms"]
    table.row("1p", "PostgreSQL store: server CPU ms/request, instant upstream, 1024 conns (× the 16-conn figure)",
              "—", "—", flagged(f"{many['cpu_ms']:.2f} (×{growth:.2f})", many["errors"]),
              "postgres-cpu-1024", {"growth": growth, "errors": many["errors"]})
    floor = results[("latency", "direct")]["p50_ms"]
    latency = results[("latency", "postgres")]
    table.row("2p", "PostgreSQL store: latency p50 at 1 conn (added over direct)", "—", "—",
              flagged(f"{latency['p50_ms']:.2f} ms (+{latency['p50_ms'] - floor:.2f}; file store "
                      f"+{results[('latency', 'gateway')]['p50_ms'] - floor:.2f})", latency["errors"]))
    for connections in plan.levels:
        capacity = results[("capacity", connections, "postgres")]
        table.row("3p", f"PostgreSQL store: {connections} conns, {SLOW_SECONDS:g} s upstream", "—", "—",
                  f"{capacity['held']} held, {capacity['rps']:.0f} req/s, p50 {capacity['p50_s']:.2f} s, "
                  f"{capacity['errors']} err, {capacity['timeouts']} t/o, RSS {capacity['rss_mib']:.0f} MiB",
                  "postgres-capacity", {"held": capacity["held"], "connections": connections,
                                        "clean": capacity["errors"] == 0 and capacity["timeouts"] == 0})
    store_rows(table, results, "6p", "postgres")


def report(command, seconds, ended_at, load_before, setup, table):
    """Return the run's header lines (command, machine, servers) above its table."""
    worker_class, workers = setup
    stamp = ended_at.strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"- command: `{command}` ({seconds:.0f} s, {stamp})",
        f"- machine: {machine_line()}; load average {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end",
        f"- servers: gunicorn.conf.py with the {worker_class} worker, {workers} workers (forwarder and "
        f"gateway alike); upstream: bench/upstream.py; load: wrk with bench/post.lua",
        "",
        table,
    ])


def machine_line():
    """Return the CPU model, cores, kernel and Python this run had."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}")


def write_readme(report):
    """Replace what bench/README.md holds between its results markers with ``report``."""
    path = os.path.join(BENCH_DIR, "README.md")
    with open(path) as file:
        text = file.read()
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    with open(path, "w") as file:
        file.write(f"{head}{README_BEGIN}\n{report}\n{README_END}{tail}")
