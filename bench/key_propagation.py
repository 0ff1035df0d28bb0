"""How long a key change takes to reach another gateway on one database, and what a key look-up costs.

    python -m bench.key_propagation                    # 2 gateways x 2 gevent workers, 20 changes of each kind
    python -m bench.key_propagation --changes 50 --workers 4 --refresh 1
    python -m bench.key_propagation --lookup-only      # only the look-up's cost (no gunicorn)

Propagation: two gateways under gunicorn (the project's gunicorn.conf.py) on one temporary
database (``store_throughput.temporary_database``: a random name on ``--database-url``, else
``ZIRI_BENCH_DATABASE_URL`` or the test server; dropped at the end), each with
``ZIRI_KEYS_REFRESH_SECONDS=--refresh``. Through gateway A's admin API a key is created, then
rotated, then deleted; from A's answer on, gateway B's ``/api/me/usage`` is asked with the key
concerned every ``--poll`` seconds, each time on a new connection (so any of B's workers may
answer). For each change it records when B first answered the new state (``first``) and when B
began answering nothing else for ``4 x workers`` answers in a row (``all``: every worker, most
likely, has seen it). Prints the median and the largest of each, in milliseconds.

Look-up: in this process, with 1,000 keys, the CPU time of ``authenticate()`` per call for the
key file (``KeyStore``: an ``os.stat`` per call, today's), the database's copy
(``PostgresKeySource`` with ``--refresh``: a dict and a clock read, the version query once per
interval) and the database with refresh 0 (a version query on every request; CPU and wall time).
"""

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.error
import urllib.request

from bench.processes import Children
from bench.processes import wait_until_answers
from bench.servers import Servers
from bench.store_throughput import DEFAULT_SERVER
from bench.store_throughput import temporary_database

TOKEN = "bench-admin-token-0123456789abcdef"


def call(url, method="GET", body=None, headers=None):
    """Return (status, decoded JSON body) of one request on a connection of its own."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def admin(url, method, path, body=None):
    status, answer = call(f"{url}/admin/api{path}", method, body, {"Authorization": f"Bearer {TOKEN}"})
    if status not in (200, 201):
        raise RuntimeError(f"{method} {path}: {status} {answer}")
    return answer


def seen(url, raw_key, expected, in_a_row, poll, limit=10.0):
    """Return (first, all): seconds until ``url`` answered ``expected`` once, and ``in_a_row`` times running."""
    started = time.monotonic()
    first = streak_start = None
    streak = 0
    while streak < in_a_row:
        asked = time.monotonic()
        status, _ = call(f"{url}/api/me/usage", headers={"X-API-Key": raw_key})
        if status == expected:
            first = asked - started if first is None else first
            streak_start = asked - started if streak == 0 else streak_start
            streak += 1
        else:
            streak = 0
        if asked - started > limit:
            raise RuntimeError(f"{url} still not {expected} after {limit}s")
        time.sleep(poll)
    return first, streak_start


def propagation(args, database_url, work_dir):
    """Return {change: [(first, all)]} measured across two gateways on ``database_url``."""
    children = Children(work_dir)
    servers = Servers(work_dir, children)
    servers.upstream_url = "http://127.0.0.1:9"  # no provider is called: /api/me/usage only
    extra = {"ZIRI_ADMIN_TOKEN": TOKEN, "ZIRI_KEYS_REFRESH_SECONDS": str(args.refresh),
             "WEB_CONCURRENCY": str(args.workers), "ZIRI_LOG_LEVEL": "WARNING"}
    urls = []
    try:
        for name in ("gateway-a", "gateway-b"):
            env = {**servers.gateway_env(os.path.join(work_dir, f"{name}.jsonl"), database_url), **extra}
            process, port = servers.start_gunicorn(name, "app:app", env)
            urls.append(f"http://127.0.0.1:{port}")
            wait_until_answers(children, process, f"{urls[-1]}/health", 30)
        one, other = urls
        in_a_row = 4 * args.workers
        delays = {"create": [], "rotate": [], "delete": []}
        for number in range(args.changes):
            created = admin(one, "POST", "/keys", {"user": f"bench{number}"})
            delays["create"].append(seen(other, created["key"], 200, in_a_row, args.poll))
            key_id = created["record"]["id"]
            rotated = admin(one, "POST", f"/keys/{key_id}/rotate")
            delays["rotate"].append(seen(other, created["key"], 403, in_a_row, args.poll))
            seen(other, rotated["key"], 200, in_a_row, args.poll)  # B has the new secret before it is deleted
            admin(one, "DELETE", f"/keys/{key_id}")
            delays["delete"].append(seen(other, rotated["key"], 403, in_a_row, args.poll))
        return delays
    finally:
        children.stop_all()


def lookup_costs(database_url, refresh, calls=100_000):
    """Return {source: (CPU µs per call, wall µs per call)} of authenticate() with 1,000 keys."""
    from datetime import datetime
    from datetime import timezone

    from ziri_images.keys.postgres import PostgresKeySource
    from ziri_images.keys.postgres_registry import PostgresKeyRegistry
    from ziri_images.keys.store import KeyStore
    from ziri_images.keys.store import hash_key
    from ziri_images.ledger.postgres.connection import command_transaction
    from ziri_images.ledger.postgres.pool import DatabasePool

    raw_keys = [f"ziri-user{number}-{number:032x}" for number in range(1000)]
    document = {"keys": [{"id": f"key_{number}", "user": f"user{number}", "hash": hash_key(raw_key),
                          "limits": {"daily_spend_limit": 5}} for number, raw_key in enumerate(raw_keys)]}
    PostgresKeyRegistry(lambda: command_transaction(database_url, 5)).import_document("bench", document, "bench")
    now = datetime.now(timezone.utc)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(document, file)
        file.flush()
        sources = {"key file (KeyStore)": (KeyStore(file.name), calls)}
        for interval, count in ((refresh, calls), (0, calls // 50)):
            source = PostgresKeySource(DatabasePool(database_url, 2, 5, 5), database_url, 5, interval)
            source.start()
            sources[f"database, refresh {interval:g} s"] = (source, count)
        costs = {}
        for name, (source, count) in sources.items():
            source.authenticate(raw_keys[0], now)  # warm: the pool opened, the file's signature read
            cpu, wall = time.process_time(), time.perf_counter()
            for number in range(count):
                source.authenticate(raw_keys[number % 1000], now)
            costs[name] = ((time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6)
            if hasattr(source, "database"):
                source.database.close()
    return costs


def milliseconds(values):
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="changes of each kind (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per gateway (default 2)")
    parser.add_argument("--refresh", type=float, default=1.0, help="ZIRI_KEYS_REFRESH_SECONDS (default 1)")
    parser.add_argument("--poll", type=float, default=0.005, help="seconds between two asks (default 0.005)")
    parser.add_argument("--database-url", help="the server to create the temporary database on")
    parser.add_argument("--lookup-only", action="store_true", help="measure only the look-up's cost")
    args = parser.parse_args(argv)
    server = args.database_url or os.environ.get("ZIRI_BENCH_DATABASE_URL") or DEFAULT_SERVER
    database_url, drop = temporary_database(server)
    try:
        with tempfile.TemporaryDirectory(prefix="ziri-keys-bench-") as work_dir:
            if not args.lookup_only:
                delays = propagation(args, database_url, work_dir)
                print(f"propagation across two gateways ({args.workers} workers each, refresh {args.refresh:g} s, "
                      f"{args.changes} changes of each kind):")
                for change, pairs in delays.items():
                    print(f"  {change:7} first answer: {milliseconds([first for first, _ in pairs])}; "
                          f"every answer: {milliseconds([every for _, every in pairs])}")
        print("key look-up, authenticate() with 1,000 keys (µs per call, CPU / wall):")
        for name, (cpu, wall) in lookup_costs(database_url, args.refresh).items():
            print(f"  {name:28} {cpu:7.2f} / {wall:7.2f}")
    finally:
        drop()


if __name__ == "__main__":
    main()
