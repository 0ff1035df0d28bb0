"""Group commit per key (ledger/postgres/batch.py): calls queued while a batch runs go together, in order."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ziri_images.errors import ApiError
from ziri_images.ledger.postgres.batch import Combiner


class Database:
    """A run_batch that records its batches and can be held open until released."""

    def __init__(self, fail_on=None):
        self.batches = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on

    def run_batch(self, key, items):
        self.batches.append((key, list(items)))
        self.entered.set()
        assert self.release.wait(10)
        if self.fail_on in items:
            raise RuntimeError("the database is away")
        return [f"{key}:{item}" for item in items]


def queued(combiner, count):
    with combiner._lock:
        return sum(len(slots) for slots in combiner._queues.values())


def wait_until(condition):
    for _ in range(1000):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def test_calls_of_one_key_queued_while_a_batch_runs_go_together_in_order():
    database = Database()
    combiner = Combiner(database.run_batch)
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(combiner.submit, "key_a", 0)
        assert database.entered.wait(10)
        rest = []
        for item in range(1, 6):
            rest.append(pool.submit(combiner.submit, "key_a", item))
            wait_until(lambda item=item: queued(combiner, item) == item)
        database.release.set()
        results = [future.result(timeout=10) for future in [first, *rest]]
    assert database.batches == [("key_a", [0]), ("key_a", [1, 2, 3, 4, 5])]
    assert results == [f"key_a:{item}" for item in range(6)]
    assert (combiner._queues, combiner._running) == ({}, set())


def test_other_keys_do_not_wait_for_a_keys_batch():
    database = Database()
    combiner = Combiner(database.run_batch)
    database.release.set()
    assert combiner.submit("key_a", 1) == "key_a:1"
    assert combiner.submit("key_b", 2) == "key_b:2"
    assert database.batches == [("key_a", [1]), ("key_b", [2])]


def test_a_failed_batch_fails_each_of_its_calls_and_the_next_batch_still_runs():
    database = Database(fail_on=2)
    combiner = Combiner(database.run_batch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(combiner.submit, "key_a", 1)
        assert database.entered.wait(10)
        second = pool.submit(combiner.submit, "key_a", 2)
        wait_until(lambda: queued(combiner, 1) == 1)
        third = pool.submit(combiner.submit, "key_a", 3)
        wait_until(lambda: queued(combiner, 2) == 2)
        database.release.set()
        assert first.result(timeout=10) == "key_a:1"
        for failed in (second, third):
            with pytest.raises(RuntimeError):
                failed.result(timeout=10)
    assert combiner.submit("key_a", 4) == "key_a:4"
    assert database.batches[-1] == ("key_a", [4])


class Interrupted(BaseException):
    """What a killed greenlet sees (GreenletExit is a BaseException too)."""


def test_an_interrupted_runner_exits_alone_and_the_others_of_its_batch_may_have_committed():
    database = Database()
    interrupted = {"key_a:2"}

    def run_batch(key, items):
        results = database.run_batch(key, items)
        if interrupted & set(results):
            raise Interrupted()
        return results

    combiner = Combiner(run_batch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(combiner.submit, "key_a", 1)
        assert database.entered.wait(10)
        runner = pool.submit(combiner.submit, "key_a", 2)
        wait_until(lambda: queued(combiner, 1) == 1)
        other = pool.submit(combiner.submit, "key_a", 3)
        wait_until(lambda: queued(combiner, 2) == 2)
        database.release.set()
        assert first.result(timeout=10) == "key_a:1"
        with pytest.raises(Interrupted):
            runner.result(timeout=10)
        with pytest.raises(ApiError) as lost:
            other.result(timeout=10)
    assert (lost.value.code, lost.value.should_retry, lost.value.maybe_committed) == ("LEDGER_UNAVAILABLE", True, True)
    assert combiner.submit("key_a", 4) == "key_a:4"  # the key's queue goes on
