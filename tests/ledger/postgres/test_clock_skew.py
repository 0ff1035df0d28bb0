"""On PostgreSQL, expiry and the rate window are judged on the database's clock, whatever a host's says.

Two stores on one database are two hosts. The database's clock follows the test's ``clock``
(tests/database.py); the skewed host's own clock runs five minutes ahead of it, more than a
reservation's life.
"""

from datetime import timedelta

import pytest
from conftest import FakeClock

from ledger.postgres.test_pgstore import PRICE
from ledger.postgres.test_pgstore import TTL
from ledger.postgres.test_pgstore import Key
from ledger.postgres.test_pgstore import details
from ledger.postgres.test_pgstore import make_store  # noqa: F401  (a fixture, used by name)
from ledger.postgres.test_pgstore import outcome
from ziri_images.errors import ApiError
from ziri_images.ledger.money import format_ts
from ziri_images.ledger.records import reservation_record

SKEW = timedelta(minutes=5)


@pytest.fixture
def hosts(make_store, clock):  # noqa: F811  (the fixture imported above)
    """Return (a host on the database's time, a host whose clock runs five minutes ahead)."""
    return make_store(), make_store(host_clock=FakeClock(clock.now + SKEW))


def reservations(database):
    return [record for record in database.records() if record["type"] == "reservation"]


def expiries(database):
    return [(record["requestId"], record["reason"]) for record in database.records()
            if record["type"] == "reservation_expired"]


def test_a_host_whose_clock_runs_ahead_neither_expires_another_hosts_reservation_nor_admits_past_the_limit(
        hosts, database):
    on_time, ahead = hosts
    key = Key(max_concurrent_requests=1)
    held = on_time.reserve(key, PRICE, details())

    with pytest.raises(ApiError) as refused:
        ahead.reserve(key, PRICE, details())

    assert (refused.value.status, refused.value.code) == (503, "QUEUE_FULL")
    assert expiries(database) == []
    assert [record["requestId"] for record in reservations(database)] == [held.request_id]
    assert ahead.key_usage(key).in_flight == 1


def test_the_sweep_of_a_host_whose_clock_runs_ahead_settles_only_dead_processes_reservations(
        hosts, database, clock):
    on_time, ahead = hosts
    held = on_time.reserve(Key(), PRICE, details())
    ahead.key_usage(Key("key_other"))  # its pool (and its housekeeping's first pass) is open
    for store in hosts:
        store.lease.stop()  # no pass of their own from here: the sweep below is the one that runs
    dead = reservation_record(clock(), Key(), details(), PRICE, clock() + timedelta(seconds=TTL), "gone:1:dead")
    assert on_time.import_records([dead]) == (1, 0)

    ahead.lease.sweep()

    assert expiries(database) == [(dead["requestId"], "worker_died")]
    assert ahead.key_usage(Key()).in_flight == 1
    on_time.settle(held, outcome(held, 0.04))  # still open: settled by its own charge
    assert expiries(database) == [(dead["requestId"], "worker_died")]


def test_a_host_whose_clock_runs_ahead_does_not_freeze_the_keys_rate_window(hosts, database, clock):
    on_time, ahead = hosts
    key = Key(requests_per_minute=1)
    first = ahead.reserve(key, PRICE, details())
    ahead.settle(first, outcome(first, 0.04))
    admitted_at = clock()

    clock.advance(61)  # the database's clock: the window has moved past the first admission
    ahead.clock.advance(61)
    second = on_time.reserve(key, PRICE, details())

    assert [(record["ts"], record["expiresAt"]) for record in reservations(database)] == [
        (format_ts(moment), format_ts(moment + timedelta(seconds=TTL))) for moment in (admitted_at, clock())]
    assert (first.reserved_at, second.reserved_at) == (format_ts(admitted_at), format_ts(clock()))
    with pytest.raises(ApiError) as refused:
        ahead.reserve(key, PRICE, details())
    assert (refused.value.code, refused.value.details["retryAfter"]) == ("RATE_LIMIT_EXCEEDED", 60)
