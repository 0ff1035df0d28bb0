"""A batch of one key's calls (ledger/postgres/batch.py) interrupted mid-call is settled, never held to expiry.

The call that runs a key's batch can be interrupted while the database works (its greenlet
killed: a deploy's graceful stop, a kill). The batch may or may not have committed. Its
reservations are checked and released by the next housekeeping pass (their clients got 503 or
nothing); its charges are spooled and written once. Before, the other calls of the batch saw
the runner's own exit, and their reservations stayed open until they expired.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.postgres.test_pgbatch import Interrupted
from ledger.postgres.test_pgbatch import queued
from ledger.postgres.test_pgbatch import wait_until
from ledger.postgres.test_pgstore import PRICE
from ledger.postgres.test_pgstore import Key
from ledger.postgres.test_pgstore import details
from ledger.postgres.test_pgstore import make_store  # noqa: F401  (a fixture, used by name)
from ledger.postgres.test_pgstore import outcome
from ziri_images.errors import ApiError

WAIT_SECONDS = 10


class HeldDatabase:
    """Hold the first batch until two calls queue behind it; interrupt the second batch's runner."""

    def __init__(self, store, monkeypatch, after_commit):
        self.call = store.database.call
        self.after_commit = after_commit
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches = 0
        monkeypatch.setattr(store.database, "call", self.run)

    def run(self, sql, params):
        self.batches += 1
        if self.batches == 1:
            self.entered.set()
            assert self.release.wait(WAIT_SECONDS)
            return self.call(sql, params)
        if self.after_commit:
            self.call(sql, params)
        raise Interrupted()


def run_three(combiner, submit, held):
    """Run three calls of one key: the first alone, the other two in one batch, interrupted.

    Return the outcome of the third call (its result, or what it raised); the second, the
    batch's runner, exits with its own interruption.
    """
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(submit, 0)
        assert held.entered.wait(WAIT_SECONDS)
        runner = pool.submit(submit, 1)
        wait_until(lambda: queued(combiner, 1) == 1)
        other = pool.submit(submit, 2)
        wait_until(lambda: queued(combiner, 2) == 2)
        held.release.set()
        first.result(timeout=WAIT_SECONDS)
        with pytest.raises(Interrupted):
            runner.result(timeout=WAIT_SECONDS)
        return other.exception(timeout=WAIT_SECONDS) or other.result()


def quiet_store(make):
    """Return a store (from ``make_store``) whose pool is open and whose housekeeping runs only when the test says."""
    store = make()
    store.key_usage(Key())
    store.lease.stop()
    return store


def test_reserves_of_an_interrupted_batch_that_committed_are_released_not_held_to_expiry(
        make_store, monkeypatch):  # noqa: F811  (the fixture imported above)
    store = quiet_store(make_store)
    held = HeldDatabase(store, monkeypatch, after_commit=True)

    lost = run_three(store._reserves, lambda number: store.reserve(Key(), PRICE, details()), held)

    assert (type(lost), lost.code, lost.should_retry) == (ApiError, "LEDGER_UNAVAILABLE", True)

    monkeypatch.undo()
    assert store.key_usage(Key()).in_flight == 3  # all three committed; two clients never heard
    store.lease.run_once()  # the housekeeping pass
    assert store.key_usage(Key()).in_flight == 1
    released = [record for record in store.records() if record["type"] == "charge"]
    assert [(record["status"], record["cost"]) for record in released] == [("not_admitted", 0.0)] * 2


def test_charges_of_an_interrupted_batch_that_did_not_commit_are_spooled_and_written_once(
        make_store, monkeypatch):  # noqa: F811  (the fixture imported above)
    store = quiet_store(make_store)
    reservations = [store.reserve(Key(), PRICE, details()) for _ in range(3)]
    held = HeldDatabase(store, monkeypatch, after_commit=False)

    def settle(number):
        return store.settle(reservations[number], outcome(reservations[number], 0.03))

    spooled = run_three(store._settles, settle, held)

    assert spooled["requestId"] == reservations[2].request_id  # answered: its charge is kept on disk

    monkeypatch.undo()
    assert store.key_usage(Key()).in_flight == 2  # the batch never reached the database
    assert store.lease.run_once() == 2  # the housekeeping pass writes the spooled charges
    usage = store.key_usage(Key())
    assert (usage.in_flight, usage.spent["daily"]) == (0, 3 * 30_000)
    assert sorted(record["requestId"] for record in store.records() if record["type"] == "charge") == sorted(
        reservation.request_id for reservation in reservations)
