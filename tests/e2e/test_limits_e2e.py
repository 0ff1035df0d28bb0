"""Per-key limits hold across gunicorn workers: real gateway, real stub, real store.

Each test fires a burst of concurrent requests from a thread pool (released together by a
barrier) at 4 workers x 4 threads and checks the outcome and the ledger, never timings. Every
test runs on both stores: the ledger file and the PostgreSQL test database.
"""

import os
import signal
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from e2e.conftest import STORES

pytestmark = pytest.mark.real_http

PRICE = 0.04  # dall-e-3, standard, 1024x1024
MICROS = 1_000_000


@pytest.fixture(params=STORES)
def store(request):
    return request.param


def burst(count, send):
    """Call ``send()`` from ``count`` threads at once; return the responses (or exceptions)."""
    barrier = threading.Barrier(count, timeout=10)

    def call():
        barrier.wait()
        return send()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(call) for _ in range(count)]
        return [future.result(timeout=30) for future in futures]


def micros(amount):
    return round(amount * MICROS)


def max_open(records):
    """Return the most reservations that were open at once, replaying the ledger in order."""
    open_ids, peak = set(), 0
    for record in records:
        if record["type"] == "reservation":
            open_ids.add(record["requestId"])
            peak = max(peak, len(open_ids))
        elif record["type"] in ("charge", "reservation_expired"):
            open_ids.discard(record["requestId"])
    return peak


def worker_pid(record):
    _host, pid, _token = record["worker"].split(":")
    return int(pid)


def test_concurrent_requests_through_several_workers_are_each_reserved_and_charged_once(start_gateway):
    gateway = start_gateway({"alice": {}})
    count = 40

    responses = burst(count, lambda: gateway.generate("alice", prompt="a red fox [stub:delay=0.2]"))

    assert [r.status_code for r in responses] == [200] * count
    request_ids = {r.headers["X-Request-Id"] for r in responses}
    assert request_ids == {r.json()["_meta"]["requestId"] for r in responses}
    assert len(request_ids) == count
    reservations, charges = gateway.records("reservation"), gateway.records("charge")
    assert Counter(r["requestId"] for r in reservations) == Counter(dict.fromkeys(request_ids, 1))
    assert Counter(r["requestId"] for r in charges) == Counter(dict.fromkeys(request_ids, 1))
    assert sum(micros(r["cost"]) for r in charges) == count * micros(PRICE)
    assert len(gateway.ledger()) == 2 * count
    # The burst really was spread over processes, so the ledger lock was contended across them.
    assert len({worker_pid(r) for r in reservations}) >= 2
    assert {worker_pid(r) for r in reservations} <= set(gateway.worker_pids)


def test_daily_spend_limit_admits_exactly_what_fits(start_gateway):
    fits = 5
    gateway = start_gateway({"alice": {"limits": {"daily_spend_limit": round(fits * PRICE, 2)}}})

    responses = burst(10 * fits, lambda: gateway.generate("alice", prompt="a red fox [stub:delay=0.1]"))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: fits, 402: 9 * fits}
    refused = [r for r in responses if r.status_code == 402]
    assert {r.json()["code"] for r in refused} == {"SPEND_LIMIT_EXCEEDED"}
    assert {r.headers["x-should-retry"] for r in refused} == {"false"}
    charges = gateway.records("charge", "alice")
    assert len(charges) == fits
    assert sum(micros(r["cost"]) for r in charges) <= micros(fits * PRICE)
    assert len(gateway.records("reservation", "alice")) == fits
    report = gateway.usage("alice")["daily"]
    assert (report["spent"], report["reserved"], report["remaining"]) == (round(fits * PRICE, 2), 0, 0)


# gemini-3.1-flash-image at 1K, "a red fox [stub:delay=0.1]" (26 bytes), reserved at 26 x $0.50/1M + 1,120 image tokens
# x $60/1M + 2,048 text tokens x $3/1M = $0.000013 + $0.0672 + $0.006144 = $0.073357, and charged (the stub's usage)
# 6 prompt tokens x $0.50/1M + 1,120 x $60/1M + (15 text + 196 thinking) x $3/1M = $0.000003 + $0.0672 + $0.000633
# = $0.067836: five charges and a sixth reservation ($0.412537) never fit a limit of five reservations.
GOOGLE_RESERVATION = 0.073357
GOOGLE_CHARGE = 0.067836


@pytest.mark.parametrize("store", ["file"])
@pytest.mark.parametrize("worker_class", ["gthread"])
def test_daily_spend_limit_admits_exactly_what_fits_of_a_google_model(start_gateway):
    """The same race for a model billed by tokens over n calls (Google's): the reservations bound the burst."""
    fits = 5
    gateway = start_gateway({"alice": {"limits": {"daily_spend_limit": fits * GOOGLE_RESERVATION}}})

    responses = burst(10 * fits, lambda: gateway.generate("alice", prompt="a red fox [stub:delay=0.1]",
                                                          provider="google", model="gemini-3.1-flash-image"))

    assert Counter(r.status_code for r in responses) == {200: fits, 402: 9 * fits}
    assert {r.json()["code"] for r in responses if r.status_code == 402} == {"SPEND_LIMIT_EXCEEDED"}
    assert [micros(r["amount"]) for r in gateway.records("reservation", "alice")] == [micros(GOOGLE_RESERVATION)] * fits
    assert [micros(r["cost"]) for r in gateway.records("charge", "alice")] == [micros(GOOGLE_CHARGE)] * fits
    assert gateway.usage("alice")["daily"]["spent"] == round(fits * GOOGLE_CHARGE, 6)


def test_rate_limit_admits_exactly_requests_per_minute(start_gateway):
    rpm = 5
    gateway = start_gateway({"alice": {"limits": {"requests_per_minute": rpm}}})

    responses = burst(3 * rpm, lambda: gateway.generate("alice"))

    assert Counter(r.status_code for r in responses) == {200: rpm, 429: 2 * rpm}
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert len(gateway.records("reservation", "alice")) == rpm


def test_concurrency_limit_caps_what_reaches_the_provider(start_gateway, stub):
    limit = 3
    gateway = start_gateway({"alice": {"limits": {"max_concurrent_requests": limit}}})

    responses = burst(4 * limit, lambda: gateway.generate("alice", prompt="a red fox [stub:delay=1.5]"))

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {200, 503}
    assert statuses[200] == limit  # the first ones hold their slots for the whole burst
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.json()["code"] == "QUEUE_FULL"
        assert refused.headers["Retry-After"] == "1"
    assert 1 <= stub.stats()["peakInFlight"] <= limit
    assert max_open(gateway.ledger()) <= limit
    assert stub.stats()["requests"] == statuses[200]


def test_reservation_of_a_killed_worker_is_charged_by_another_worker(start_gateway):
    gateway = start_gateway({"victim": {}, "bystander": {}})
    with ThreadPoolExecutor(max_workers=1) as pool:
        doomed = pool.submit(gateway.generate, "victim", prompt="a red fox [stub:delay=3]")
        gateway.process.wait_until(lambda: gateway.records("reservation"), "the slow request's reservation",
                                   seconds=5)
        [reservation] = gateway.records("reservation", "victim")
        pid = worker_pid(reservation)
        assert pid in gateway.worker_pids

        os.kill(pid, signal.SIGKILL)

        with pytest.raises(requests.ConnectionError):
            doomed.result(timeout=10)
    # The master reaps the worker (until then it is a zombie and still "alive" to kill(pid, 0)).
    gateway.process.wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "the killed worker's exit", seconds=5)
    # File store: at once (the pid is gone). PostgreSQL: once the dead worker's lease lapses.
    gateway.process.wait_until(lambda: gateway.usage("victim")["inFlight"] == 0, "the dead worker's reservation",
                               seconds=10)

    assert gateway.generate("bystander").status_code == 200  # the next request, on another worker

    [expired] = gateway.records("reservation_expired")
    assert expired["requestId"] == reservation["requestId"]
    assert (expired["reason"], expired["cost"], expired["worker"]) == ("worker_died", PRICE, reservation["worker"])
    assert gateway.records("charge", "victim") == []
    report = gateway.usage("victim")
    assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (PRICE, 0, 0)
    assert {worker_pid(r) for r in gateway.records("reservation", "bystander")}.isdisjoint({pid})
