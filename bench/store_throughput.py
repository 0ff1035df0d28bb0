"""Reserve + settle throughput of a store: several processes x threads, one key, no provider.

    python -m bench.store_throughput --store file                 # a durable ledger in a temporary directory
    python -m bench.store_throughput --store postgres             # a temporary database on the local server
    python -m bench.store_throughput --store postgres --database-url postgresql://postgres@127.0.0.1:5432/test

Each process opens the store as the gateway does (``gateway.open_store`` from the settings) and
runs ``store.reserve`` + ``store.settle`` in a loop from every thread for ``--seconds``, all
processes starting at one instant; it prints the records (a reservation and a charge per
request) it wrote. The totals and records/s are printed as one JSON line. With PostgreSQL the
server given (default ``ZIRI_BENCH_DATABASE_URL`` or the test server) gets a database with a
random name, migrated, dropped at the end.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from datetime import timezone

from bench.ledger_bench import PRICE
from bench.ledger_bench import SUMMARY
from bench.processes import PROJECT_DIR
from ziri_images.config import Config
from ziri_images.errors import ApiError
from ziri_images.gateway import open_store
from ziri_images.keys.store import ApiKey
from ziri_images.ledger.money import to_micros

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def run_worker(settings_env, threads, start_epoch, seconds, keys=1):
    """Reserve and settle from ``threads`` threads between the two times; return records written."""
    settings = Config.from_environ({**os.environ, **settings_env}, read_providers=False)
    store = open_store(settings, lambda: datetime.now(timezone.utc))
    store.start()
    # One key: every request contends for that key's lock (the worst case). More: thread i uses key i % keys.
    all_keys = [ApiKey(id=f"key_bench{number}", user=f"bench{number}", status="active") for number in range(keys)]
    counts = [0] * threads
    errors = [0] * threads

    def run(slot):
        key = all_keys[slot % keys]
        store.key_usage(key)  # warm: the process's pool connections are open before the window
        time.sleep(max(0.0, start_epoch - time.time()))
        sequence = 0
        while time.time() < start_epoch + seconds:
            sequence += 1
            request_id = f"req_{os.getpid()}_{slot}_{sequence}_{secrets.token_hex(4)}"
            try:
                reservation = store.reserve(key, to_micros(PRICE), {"requestId": request_id, **SUMMARY})
            except ApiError:  # 503 LEDGER_UNAVAILABLE: counted, never hidden
                errors[slot] += 1
                continue
            store.settle(reservation, {**SUMMARY, "requestId": request_id, "user": key.user, "keyId": key.id,
                                       "status": "succeeded", "httpStatus": 200, "imagesReturned": 1,
                                       "cost": PRICE, "latencyMs": 0})
            counts[slot] += 2

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    store.close()
    return sum(counts), sum(errors)


def temporary_database(server):
    """Create and migrate a database on ``server``; return (url, drop)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from ziri_images.ledger.postgres.migrate import migrate

    name = f"ziri_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    with psycopg.connect(url, autocommit=True) as connection:
        migrate(connection)

    def drop():
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def measure(store, processes, threads, seconds, database_url=None, keys=1):
    """Run ``processes`` workers on one new store; return {"records": N, "records_per_s": ...}."""
    with tempfile.TemporaryDirectory(prefix="ziri-store-bench-") as work:
        env = {"ZIRI_LEDGER_PATH": os.path.join(work, "ledger.jsonl"), "ZIRI_LEDGER_DURABLE": "true",
               "ZIRI_SPOOL_DIR": os.path.join(work, "spool"), "ZIRI_DATABASE_URL": "", "DATABASE_URL": ""}
        drop = None
        if store == "postgres":
            server = database_url or os.environ.get("ZIRI_BENCH_DATABASE_URL") or DEFAULT_SERVER
            env["ZIRI_DATABASE_URL"], drop = temporary_database(server)
            # One connection per thread: the pool must not be what limits the threads.
            env["ZIRI_DATABASE_POOL_SIZE"] = str(threads)
        try:
            start = time.time() + 2.0  # every process imported and connected before the window opens
            command = [sys.executable, "-m", "bench.store_throughput", "worker", "--threads", str(threads),
                       "--start", str(start), "--seconds", str(seconds), "--keys", str(keys),
                       "--env", json.dumps(env)]
            children = [subprocess.Popen(command, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
                        for _ in range(processes)]
            records = errors = 0
            for child in children:
                out, _ = child.communicate(timeout=seconds + 60)
                if child.returncode != 0:
                    raise RuntimeError(f"a {store} worker failed (exit {child.returncode})")
                result = json.loads(out.strip().splitlines()[-1])
                records += result["records"]
                errors += result["errors"]
        finally:
            if drop is not None:
                drop()
    return {"store": store, "processes": processes, "threads": threads, "seconds": seconds, "keys": keys,
            "records": records, "records_per_s": records / seconds, "errors": errors}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="measure", choices=["measure", "worker"])
    parser.add_argument("--store", choices=["file", "postgres"], default="file")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--keys", type=int, default=1, help="keys the threads spread over (default 1: one lock)")
    parser.add_argument("--database-url", help="the server to create the temporary database on")
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "worker":
        records, errors = run_worker(json.loads(args.env), args.threads, args.start, args.seconds, args.keys)
        print(json.dumps({"records": records, "errors": errors}), flush=True)
        return 0
    print(json.dumps(measure(args.store, args.processes, args.threads, args.seconds, args.database_url, args.keys)),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
