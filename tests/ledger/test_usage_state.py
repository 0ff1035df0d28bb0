"""The file store's in-memory state (ledger/usage.py): the deadline index and the per-worker index."""

from datetime import datetime
from datetime import timezone

from conftest import charge_record
from conftest import reservation_record

from ziri_images.ledger.parse import parse_record
from ziri_images.ledger.report import Aggregator
from ziri_images.ledger.usage import UsageState
from ziri_images.ledger.usage import fold_expiry

START = datetime(2026, 11, 15, 12, 0, 0, tzinfo=timezone.utc)


def open_reservations(state, specs):
    """Apply one reservation per (request id, ttl seconds, worker) of ``specs``."""
    for request_id, ttl, worker in specs:
        state.apply(parse_record(reservation_record("alice", 0.04, START, worker, request_id, ttl_seconds=ttl)))


def test_overdue_returns_only_reservations_past_their_time_soonest_first():
    state = UsageState()
    open_reservations(state, [("req_late", 300, "w1"), ("req_soon", 10, "w1"), ("req_mid", 60, "w2")])

    due = state.overdue(START.timestamp() + 61)

    assert [reservation.request_id for reservation in due] == ["req_soon", "req_mid"]
    assert set(state.open) == {"req_late", "req_soon", "req_mid"}  # still open until their records apply


def test_overdue_skips_settled_reservations_and_repeats_unsettled_ones():
    state = UsageState()
    open_reservations(state, [("req_settled", 10, "w1"), ("req_unsettled", 10, "w1")])
    state.apply(parse_record(charge_record("alice", 0.04, START, "req_settled")))

    first = state.overdue(START.timestamp() + 11)
    second = state.overdue(START.timestamp() + 11)  # the expiry record was never written (a failed commit)

    assert [r.request_id for r in first] == [r.request_id for r in second] == ["req_unsettled"]
    assert len(state._deadlines) == 1  # the settled one was dropped when it surfaced


def test_overdue_ignores_a_reservation_imported_twice():
    state = UsageState()
    open_reservations(state, [("req_twice", 10, "w1"), ("req_twice", 10, "w1")])

    assert [r.request_id for r in state.overdue(START.timestamp() + 11)] == ["req_twice"]


def test_open_by_worker_follows_reservations_and_forgets_finished_workers():
    state = UsageState()
    open_reservations(state, [("req_a", 60, "w1"), ("req_b", 60, "w1"), ("req_c", 60, "w2")])
    state.apply(parse_record(charge_record("alice", 0.04, START, "req_c")))
    state.apply(parse_record(charge_record("alice", 0.04, START, "req_a")))

    assert {worker: sorted(held) for worker, held in state.open_by_worker.items()} == {"w1": ["req_b"]}
    assert state.keys.in_flight == {"key_alice": 1}


def expiry_of(reservation, cost):
    return {"ts": reservation["ts"], "type": "reservation_expired", "requestId": reservation["requestId"],
            "keyId": reservation["keyId"], "reservedAt": reservation["ts"], "cost": cost, "reason": "expired",
            "worker": reservation["worker"]}


def test_a_charge_replaces_the_expiry_of_its_own_request_in_the_limits_and_in_the_report():
    held = [reservation_record("alice", 0.08, START, "h:1:a", request_id) for request_id in ("req_late", "req_lost")]
    records = [*held, expiry_of(held[0], 0.08), expiry_of(held[1], 0.08),
               {**charge_record("alice", 0.02, START, "req_late"), "imagesReturned": 1}]
    state, aggregator, expired = UsageState(), Aggregator(("key",), None, None), {}
    replaced = []
    for value in records:
        record = parse_record(value)
        state.apply(record)
        aggregator.apply(record)
        if record.kind != "reservation":
            replaced.append(fold_expiry(expired, record, record.micros))

    assert replaced == [None, None, 80_000]  # the late charge took back its own expiry, not the other one
    assert expired == {"req_lost": 80_000}
    assert state.keys.spent[("key_alice", "2026-11-15")] == 100_000  # 0.08 expired + 0.02 charged
    assert aggregator.groups[("key_alice",)].as_row() == {"requests": 2, "images": 1, "cost": 0.1, "expired": 1}
