"""The file store on its hot path: group commit of charges (ledger/file/group_commit.py), the rate-limit summary.

Sixteen threads settle sixteen reservations at once while the first fsync is held until the other
fifteen charges are queued behind it. Every settle must return only after an fsync that began
after its record was written (its record is durable), and the sixteen charges share two fsyncs.
"""

import errno
import os
import threading
from collections import Counter
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from conftest import append_lines
from conftest import reservation_record

from ziri_images.errors import ApiError
from ziri_images.keys.store import ApiKey
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.store import FileStore

NOW = datetime(2026, 11, 15, 12, 0, 0, tzinfo=timezone.utc)
WORKER = "elsewhere:1:feedf00d"  # another host's worker: only its expiry time frees it
CHARGES = 16
WAIT_SECONDS = 10


class Interrupted(BaseException):
    """What a killed greenlet sees (GreenletExit is a BaseException too)."""


class SyncWatch:
    """A stand-in for ``os.fdatasync`` that records how far each sync reached, and can hold the first one."""

    def __init__(self, store, hold_until_queued=0, fail=False):
        """``fail``: True fails every sync with EIO; a number interrupts that sync (the 1st, 2nd...)."""
        self.store = store
        self.hold_until_queued = hold_until_queued
        self.fail = fail
        self.calls = 0
        self.durable_to = 0  # the file size when the last finished sync began: everything before it is on disk
        self.real = os.fdatasync

    def __call__(self, fd):
        size = os.fstat(fd).st_size
        self.calls += 1
        if self.calls == 1 and self.hold_until_queued:
            queue_filled = threading.Event()
            while not queue_filled.wait(0.005):
                if len(self.store._charges._queue) >= self.hold_until_queued:
                    queue_filled.set()
        if self.fail is True:
            raise OSError(errno.EIO, "Input/output error")
        if self.fail == self.calls:
            raise Interrupted()
        self.real(fd)
        self.durable_to = max(self.durable_to, size)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "ledger.jsonl"
    append_lines(path, *[reservation_record("alice", 0.04, NOW, WORKER, f"req_{n}") for n in range(CHARGES)])
    store = FileStore(Ledger(str(path), durable=True), lambda: NOW, reservation_ttl=245)
    store.start()
    return store


def fields(request_id, **extra):
    return {"requestId": request_id, "keyId": "key_alice", "status": "succeeded", "cost": 0.04, **extra}


def read(path):
    with open(path, "rb") as file:
        return file.read()


def end_of_charge(path, request_id):
    """Return the byte offset just past ``request_id``'s charge line."""
    data = read(path)
    start = data.index(b'"type":"charge","requestId":"%s"' % request_id.encode())
    return data.index(b"\n", start) + 1


def settle_all_at_once(store, fields_of):
    """Settle every open reservation from its own thread; return {request id: record or exception}."""
    outcomes = {}
    start = threading.Barrier(CHARGES)

    def settle(reservation):
        start.wait(WAIT_SECONDS)
        try:
            outcomes[reservation.request_id] = store.settle(reservation, fields_of(reservation.request_id))
        except BaseException as error:  # the interrupted leader's own exit too
            outcomes[reservation.request_id] = error
            return
        # Checked by the settling thread itself, the moment settle returns: its record is durable.
        outcomes[reservation.request_id, "durable"] = end_of_charge(store.ledger.path, reservation.request_id) \
            <= sync.durable_to

    sync = store.sync_watch
    threads = [threading.Thread(target=settle, args=(r,)) for r in list(store.state.open.values())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    return outcomes


def test_charges_waiting_on_one_fsync_share_the_next_and_each_returns_only_once_durable(store, monkeypatch):
    store.sync_watch = SyncWatch(store, hold_until_queued=CHARGES - 1)
    monkeypatch.setattr(os, "fdatasync", store.sync_watch)

    outcomes = settle_all_at_once(store, fields)

    assert all(outcomes[f"req_{n}", "durable"] for n in range(CHARGES))
    assert store.sync_watch.calls == 2  # the first charge alone, then the fifteen queued behind it
    assert store.state.open == {}
    assert read(store.ledger.path).count(b'"type":"charge"') == CHARGES


def test_a_charge_whose_fsync_failed_is_answered_as_written_and_the_failing_ledger_cuts_the_next_batch_back(
        store, monkeypatch):
    before = read(store.ledger.path)
    store.sync_watch = SyncWatch(store, hold_until_queued=CHARGES - 1, fail=True)
    monkeypatch.setattr(os, "fdatasync", store.sync_watch)

    outcomes = settle_all_at_once(store, fields)

    # The first charge's fsync ran with the file released: its record stays, counted by every
    # worker, so its caller gets that record (what its client is answered). The ledger is failing
    # from then on, so the batch behind it synced under the lock, was cut back and is refused.
    [first] = [line for line in read(store.ledger.path)[len(before):].splitlines()]
    [(answered, record)] = [(n, outcomes[f"req_{n}"]) for n in range(CHARGES) if isinstance(outcomes[f"req_{n}"], dict)]
    assert b'"type":"charge","requestId":"req_%d"' % answered in first
    assert record["requestId"] == f"req_{answered}"
    errors = [outcomes[f"req_{n}"] for n in range(CHARGES) if n != answered]
    assert all(isinstance(error, ApiError) and error.code == "LEDGER_UNAVAILABLE" for error in errors)
    assert len(store.state.open) == CHARGES - 1  # the others stay held
    assert store._written == {}


def test_an_interrupted_leader_answers_the_others_of_its_batch_as_their_written_charges_say(store, monkeypatch):
    # The first charge syncs alone while the fifteen others queue; the sync of their batch is interrupted.
    store.sync_watch = SyncWatch(store, hold_until_queued=CHARGES - 1, fail=2)
    monkeypatch.setattr(os, "fdatasync", store.sync_watch)

    outcomes = settle_all_at_once(store, fields)

    # Their records were written before the sync was cut short: each is in the file once, counted,
    # and its caller gets it; only the interrupted leader's own exit is its own.
    kinds = Counter(type(outcomes[f"req_{n}"]).__name__ for n in range(CHARGES))
    assert kinds == {"dict": CHARGES - 1, "Interrupted": 1}
    assert read(store.ledger.path).count(b'"type":"charge"') == CHARGES
    assert store.key_usage(ApiKey(id="key_alice", user="alice", status="active")).in_flight == 0
    assert store._written == {}


def test_a_charge_that_cannot_be_written_fails_alone(store, monkeypatch):
    store.sync_watch = SyncWatch(store, hold_until_queued=CHARGES - 1)
    monkeypatch.setattr(os, "fdatasync", store.sync_watch)

    outcomes = settle_all_at_once(store, lambda request_id: fields(
        request_id, **({"usage": object()} if request_id == "req_3" else {})))

    assert isinstance(outcomes["req_3"], TypeError)
    assert all(outcomes[f"req_{n}", "durable"] for n in range(CHARGES) if n != 3)
    assert list(store.state.open) == ["req_3"]


@pytest.mark.parametrize(("seconds_later", "expected"), [
    pytest.param(0, (CHARGES, NOW.timestamp()), id="all-in-the-window"),
    pytest.param(60, (0, None), id="all-stale-untrimmed"),
    pytest.param(59.5, (CHARGES, NOW.timestamp()), id="just-inside"),
])
def test_rate_summary_counts_the_window_without_copying_it(store, seconds_later, expected):
    store.clock = lambda: NOW + timedelta(seconds=seconds_later)

    assert store.rate_summary("key_alice") == expected
    assert store.rate_summary("key_nobody") == (0, None)
