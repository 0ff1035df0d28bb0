"""What the team check costs per request: a key of a team beside a key alone, on both stores.

    python -m bench.team_cost                  # needs valgrind; PostgreSQL at $ZIRI_BENCH_DATABASE_URL
    python -m bench.team_cost --skip-database  # the file store only

Two figures, each for a key with every limit set (generous: every check runs, none refuses),
alone and as a member of a team that has every limit set too:

- **instructions per request** through WSGI under gevent's patches, counted by valgrind's
  callgrind as bench/instructions.py counts them (a gateway process of its own per variant,
  against bench/upstream.py, the slope between 100 and 600 requests after a warm-up). On the
  file store this is every decision (they are made in the process); on PostgreSQL it is the
  gateway's side only: the decision is made in the database server.
- **database server CPU per request** (PostgreSQL): the store's ``reserve`` + ``settle`` in a
  loop on one pooled connection, the backend's CPU time read from /proc before and after (the
  server runs on this machine), rounds alternating between the two keys; the median of the rounds.

The database is a scratch one of its own, created and migrated here (the keys imported into it: with a
database, its tables are the gateway's key store) and dropped at the end.
"""

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from datetime import timezone

import psycopg
from psycopg.conninfo import make_conninfo

from bench.instructions import LONG
from bench.instructions import SHORT
from bench.instructions import collected
from bench.ledger_bench import PRICE
from bench.ledger_bench import SUMMARY
from bench.processes import Children
from bench.servers import GENEROUS_LIMITS
from bench.servers import Servers
from bench.servers import key_entry
from bench.servers import raw_key

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
TEAM = {"bench-team": {"name": "Bench", "limits": GENEROUS_LIMITS}}
VARIANTS = (("key alone", "bench"), ("key of a team", "alice"))  # (label, user): alice's key is the team's


def write_keys(path):
    """Write keys.json: ``bench`` alone, ``alice`` in a team; both with every limit set."""
    keys = [key_entry("bench", GENEROUS_LIMITS), {**key_entry("alice", GENEROUS_LIMITS), "team": "bench-team"}]
    with open(path, "w") as file:
        json.dump({"teams": TEAM, "keys": keys}, file)


def scratch_database(server, keys_path):
    """Create and migrate a database of its own on ``server``, holding the keys of ``keys_path``; return its URL."""
    from ziri_images.keys.postgres_registry import PostgresKeyRegistry
    from ziri_images.ledger.postgres.connection import command_transaction
    from ziri_images.ledger.postgres.migrate import migrate

    name = f"ziri_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    with psycopg.connect(url, autocommit=True) as connection:
        migrate(connection)
    with open(keys_path) as file:  # with a database, its tables are the gateway's key store
        document = json.load(file)
    PostgresKeyRegistry(lambda: command_transaction(url, 5)).import_document("bench", document, keys_path)
    return name, url


def drop_database(server, name):
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def instructions(servers, keys_path, database_url):
    """Return {label: instructions per request} through WSGI for each variant, under callgrind."""
    children, per_request = servers.children, {}
    for label, user in VARIANTS:
        processes = []
        for requests in (SHORT, LONG):
            name = f"{user}-{'db' if database_url else 'file'}-{requests}"
            metrics = os.path.join(servers.work_dir, f"metrics-{name}")
            os.makedirs(metrics)
            settings = {**servers.gateway_env(os.path.join(servers.work_dir, f"{name}.jsonl"), database_url),
                        "ZIRI_KEYS_FILE": keys_path}
            env = servers.gunicorn_env(0, **settings, PROMETHEUS_MULTIPROC_DIR=metrics, BENCH_API_KEY=raw_key(user))
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={servers.work_dir}/callgrind.{name}",
                       sys.executable, "-m", "bench.instructions", "--child", "gateway", str(requests)]
            processes.append(children.start(name, command, env=env))
        short, long = (collected(children, process) for process in processes)
        per_request[label] = (long - short) / (LONG - SHORT)
    return per_request


def backend_cpu(pid):
    """Return the CPU seconds (user + system) the process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def database_cpu(database_url, keys_path, rounds, requests):
    """Return {label: (median server CPU µs, median wall µs) per reserve + settle} on one connection."""
    from ziri_images.billing import Limiter
    from ziri_images.keys.store import load_key_file
    from ziri_images.ledger.postgres.store import PostgresStore

    keys = {key.user: key for key in load_key_file(keys_path).values()}
    run = secrets.token_hex(4)  # request ids of their own: the database may hold an earlier run's
    store = PostgresStore(database_url, lambda: datetime.now(timezone.utc), 245.0, pool_size=1,
                          spool_dir=tempfile.mkdtemp(prefix="ziri-bench-spool-"))
    limiter = Limiter(store)
    try:
        with store.database.connection() as connection:
            pid = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        samples = {label: [] for label, _user in VARIANTS}
        for number in range(rounds + 1):  # the first round warms the connection and its prepared statements
            for label, user in VARIANTS:
                key = keys[user]
                cpu, started = backend_cpu(pid), time.perf_counter()
                for index in range(requests):
                    request_id = f"req_team_cost_{run}_{number}_{user}_{index}"
                    reservation = limiter.reserve(key, PRICE, {"requestId": request_id, **SUMMARY})
                    limiter.settle(reservation, {"requestId": request_id, "keyId": key.id, "user": key.user,
                                                 **SUMMARY, "status": "succeeded", "cost": PRICE}, key)
                if number:
                    samples[label].append(((backend_cpu(pid) - cpu) / requests * 1e6,
                                           (time.perf_counter() - started) / requests * 1e6))
    finally:
        store.close()
    return {label: tuple(statistics.median(sample[i] for sample in rows) for i in (0, 1))
            for label, rows in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-database", action="store_true", help="measure the file store only")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the database CPU figure")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    args = parser.parse_args()
    server = os.environ.get("ZIRI_BENCH_DATABASE_URL") or DEFAULT_SERVER
    work_dir = tempfile.mkdtemp(prefix="ziri-team-cost-")
    servers = Servers(work_dir, Children(work_dir))
    keys_path = os.path.join(work_dir, "teams-keys.json")
    write_keys(keys_path)
    database = None if args.skip_database else scratch_database(server, keys_path)
    try:
        servers.start_upstream()
        stores = [("file store", "")] + ([("PostgreSQL, the gateway's side", database[1])] if database else [])
        for title, url in stores:
            counted = instructions(servers, keys_path, url)
            alone, team = counted["key alone"], counted["key of a team"]
            print(f"instructions per request ({title}; {LONG} - {SHORT} requests, WSGI, gevent, callgrind):")
            print(f"  key alone      {alone / 1e6:.3f} M")
            print(f"  key of a team  {team / 1e6:.3f} M  (+{(team - alone) / 1e3:.0f} k, {team / alone:.3f}x)")
        if database:
            cpu = database_cpu(database[1], keys_path, args.rounds, args.requests)
            print(f"PostgreSQL per reserve + settle, median of {args.rounds} rounds x {args.requests} "
                  "(server CPU, and wall time on one connection):")
            for label, _user in VARIANTS:
                print(f"  {label:<14} {cpu[label][0]:.0f} µs server CPU, {cpu[label][1]:.0f} µs wall")
    finally:
        servers.children.stop_all()
        if database:
            drop_database(server, database[0])


if __name__ == "__main__":
    sys.exit(main())
