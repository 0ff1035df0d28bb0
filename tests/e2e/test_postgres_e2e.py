"""The PostgreSQL store end to end: several hosts on one database, a wiped disk, and gevent
workers that keep answering while a query waits (the database restarted under load:
test_postgres_restart_e2e.py, on a server of its own).

"Hosts" are gunicorn masters with scratch directories of their own (keys, catalog, spool) on
the run's test database. Every test checks outcomes and the records, never timings.
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from e2e.test_limits_e2e import PRICE
from e2e.test_limits_e2e import burst
from e2e.test_limits_e2e import micros

pytestmark = pytest.mark.real_http


@pytest.fixture
def store():
    return "postgres"


@pytest.fixture
def worker_class():
    pytest.importorskip("gevent")
    return "gevent"  # the production default; the limits suites run both classes


def two_hosts(start_gateway, tmp_path, keys):
    return [start_gateway(keys, workers=2, threads=4, directory=tmp_path / name) for name in ("host-a", "host-b")]


def alternate(hosts, name, prompt):
    """Return a send() that spreads requests over ``hosts`` in turn."""
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    def send():
        with lock:
            host = hosts[next(counter) % len(hosts)]
        return host.generate(name, prompt=prompt)

    return send


def test_two_hosts_on_one_database_admit_exactly_the_budget(start_gateway, tmp_path):
    fits = 4
    hosts = two_hosts(start_gateway, tmp_path, {"alice": {"limits": {"daily_spend_limit": round(fits * PRICE, 2)}}})

    responses = burst(10 * fits, alternate(hosts, "alice", "a red fox [stub:delay=0.1]"))

    # Each host alone would admit the whole budget (2 x fits in all): exactly fits means one shared budget.
    assert Counter(r.status_code for r in responses) == {200: fits, 402: 9 * fits}
    assert {r.json()["code"] for r in responses if r.status_code == 402} == {"SPEND_LIMIT_EXCEEDED"}
    charges = hosts[0].records("charge", "alice")
    assert len(charges) == fits and sum(micros(r["cost"]) for r in charges) <= micros(fits * PRICE)
    for host in hosts:
        assert host.usage("alice")["daily"]["remaining"] == 0


def test_two_hosts_on_one_database_share_one_rate_limit(start_gateway, tmp_path):
    rpm = 4
    hosts = two_hosts(start_gateway, tmp_path, {"alice": {"limits": {"requests_per_minute": rpm}}})

    responses = burst(3 * rpm, alternate(hosts, "alice", "a red fox"))

    assert Counter(r.status_code for r in responses) == {200: rpm, 429: 2 * rpm}
    assert len(hosts[1].records("reservation", "alice")) == rpm


def test_a_new_gateway_on_an_empty_disk_sees_the_same_usage(start_gateway, tmp_path):
    limits = {"limits": {"daily_spend_limit": 0.16}}
    first = start_gateway({"alice": limits}, workers=2, directory=tmp_path / "before")
    assert [first.generate("alice").status_code for _ in range(3)] == [200] * 3
    before = first.usage("alice")
    first.process.stop()

    # A wiped disk: a new directory with nothing in it but the keys and the catalog.
    second = start_gateway({"alice": limits}, workers=2, directory=tmp_path / "after")

    after = second.usage("alice")
    assert (after["daily"], after["monthly"]) == (before["daily"], before["monthly"])
    assert after["daily"]["remaining"] == pytest.approx(0.16 - 3 * PRICE)
    assert [second.generate("alice").status_code for _ in range(2)] == [200, 402]


def lock_waiters(database):
    with database.connect() as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def test_a_request_waiting_on_a_row_lock_does_not_stop_health_on_the_same_gevent_worker(start_gateway, database):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env={"ZIRI_DATABASE_TIMEOUT": 30})
    assert gateway.generate("alice").status_code == 200  # the key's row exists

    with database.connect() as holder, ThreadPoolExecutor(max_workers=1) as pool:
        with holder.transaction():
            holder.execute("SELECT * FROM key_locks WHERE key_id = 'key_alice' FOR UPDATE")
            waiting = pool.submit(gateway.generate, "alice", timeout=60)
            gateway.process.wait_until(lambda: lock_waiters(database) == 1, "the request waiting on the row lock")

            # The one worker process is blocked in a database call for that request; a driver that
            # blocked the process (not the greenlet) would leave /health unanswered until the lock goes.
            for _ in range(3):
                assert requests.get(f"{gateway.url}/health", timeout=10).json() == {"status": "ok"}
            assert not waiting.done()
        assert waiting.result(timeout=30).status_code == 200
    assert len(gateway.records("charge", "alice")) == 2


def test_ready_reports_the_database(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=1)
    body = requests.get(f"{gateway.url}/ready", timeout=10).json()
    assert body["checks"]["database"] == {"ok": True}  # the unreachable case: tests/test_pgstore.py
