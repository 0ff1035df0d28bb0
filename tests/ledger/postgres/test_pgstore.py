"""The PostgreSQL store on the real server: schema, faults, leases, the spool, import and export.

The limits suites (tests/test_limits.py and the end-to-end ones) run against both stores
through the ``store`` parametrization; what is here is PostgreSQL's own: what the database
rules out, and what happens when it is away.
"""

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from conftest import FakeClock

from ziri_images.cli import entry as cli
from ziri_images.config import Config
from ziri_images.errors import ApiError
from ziri_images.ledger.file.scan import build_report
from ziri_images.ledger.money import format_ts
from ziri_images.ledger.money import to_micros
from ziri_images.ledger.postgres.migrate import LATEST
from ziri_images.ledger.postgres.migrate import migrate
from ziri_images.ledger.postgres.migrate import schema_version
from ziri_images.ledger.postgres.store import PostgresStore
from ziri_images.ledger.records import Reservation
from ziri_images.ledger.records import charge_record
from ziri_images.ledger.records import encode_record
from ziri_images.ledger.records import expiry_record
from ziri_images.ledger.records import reservation_record

TTL = 245.0
PRICE = 40_000  # micros: dall-e-3 standard 1024x1024


class Key:
    """The part of an ApiKey the store reads."""

    def __init__(self, key_id="key_pg", user="pat", team=None, **limits):
        self.id, self.user, self.team, self.limits = key_id, user, team, limits

    def limit(self, name):
        return self.limits.get(name)


def details(**extra):
    return {"requestId": "req_" + uuid.uuid4().hex, "provider": "openai", "model": "dall-e-3", **extra}


def outcome(reservation, cost, images=1, user="pat"):
    return {"requestId": reservation.request_id, "keyId": reservation.key_id, "user": user, "model": "dall-e-3",
            "status": "succeeded", "httpStatus": 200, "imagesReturned": images, "cost": cost}


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"postgresql://postgres@127.0.0.1:{sock.getsockname()[1]}/none"


@pytest.fixture
def make_store(database, tmp_path, clock):
    """Return ``make(url=None, host_clock=None, **options)``: a store on the database (a host of its own).

    The database's clock follows ``clock``; a store reads ``host_clock`` (default ``clock``) as its host's.
    """
    stores = []
    database.follow(clock)

    def make(url=None, host_clock=None, **options):
        options = {"spool_dir": str(tmp_path / "spool"), "timeout": 2.0, **options}
        store = PostgresStore(url or database.url, host_clock or clock, TTL, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def lock_waiters(database):
    with database.connect() as connection:
        return connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'").fetchone()[0]


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def charges(database):
    return [record for record in database.records() if record["type"] == "charge"]


def test_migrate_twice_changes_nothing_the_second_time(database):
    with database.connect() as connection:
        assert migrate(connection) == []  # the run's database is migrated already
        assert schema_version(connection) == LATEST


def test_db_migrate_without_a_database_says_so_and_succeeds(capsys):
    assert cli.main(["db", "migrate"]) == 0
    assert "no database configured" in capsys.readouterr().err


def test_db_migrate_on_an_empty_database_creates_the_schema(test_database, capsys):
    with test_database.connect() as connection:
        connection.execute("CREATE SCHEMA fresh")
    url = f"{test_database.url} options='-c search_path=fresh'"
    try:
        assert cli.main(["db", "migrate", "--database-url", url]) == 0
        assert "applied 001_schema, 002_keys, 003_team_usage_and_alerts, ziri_now, " in capsys.readouterr().err
        assert cli.main(["db", "migrate", "--database-url", url]) == 0
        assert "already current" in capsys.readouterr().err
    finally:
        with test_database.connect() as connection:
            connection.execute("DROP SCHEMA fresh CASCADE")


def test_db_migrate_names_an_unreachable_database_in_one_line(capsys):
    assert cli.main(["db", "migrate", "--database-url", closed_port_url(), "--timeout", "2"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("ziri-images: error: database 127.0.0.1:") and error.count("\n") == 1


def test_unreachable_database_refuses_before_the_provider_with_a_retryable_503(make_store):
    store = make_store(closed_port_url(), timeout=1.0)
    with pytest.raises(ApiError) as refused:
        store.reserve(Key(), PRICE, details())
    assert (refused.value.status, refused.value.code, refused.value.should_retry) == (503, "LEDGER_UNAVAILABLE", True)
    assert store.ping_database() == (False, "the database is unavailable")


def test_a_row_lock_held_past_the_timeout_refuses_instead_of_waiting(make_store, database):
    store = make_store(timeout=1.0)
    store.reserve(Key(), PRICE, details())  # creates the key's row
    with database.connect() as holder, holder.transaction():
        holder.execute("SELECT * FROM key_locks WHERE key_id = 'key_pg' FOR UPDATE")
        with pytest.raises(ApiError) as refused:
            store.reserve(Key(), PRICE, details())
    assert refused.value.code == "LEDGER_UNAVAILABLE"
    assert store.reserve(Key(), PRICE, details()).micros == PRICE  # released: admitted again


def test_a_charge_written_twice_is_stored_and_counted_once(make_store, database, clock):
    store = make_store()
    reservation = store.reserve(Key(), PRICE, details())
    store.write_charge(reservation, outcome(reservation, 0.04), clock())
    store.write_charge(reservation, outcome(reservation, 0.04), clock())  # a retry after a lost answer
    assert len(charges(database)) == 1
    assert store.key_usage(Key()).spent == {"daily": PRICE, "monthly": PRICE}


def test_a_charge_the_database_cannot_take_is_spooled_and_written_once_when_it_is_back(make_store, database):
    store = make_store()
    reservation = store.reserve(Key(), PRICE, details())
    away = make_store(closed_port_url(), timeout=1.0)  # the same host's spool, the database gone

    record = away.settle(reservation, outcome(reservation, 0.04))

    assert (record["type"], record["cost"]) == ("charge", 0.04)
    assert away.spool.pending() and charges(database) == []
    assert store.lease.run_once() == 1
    assert [charge["requestId"] for charge in charges(database)] == [reservation.request_id]
    assert not store.spool.pending() and store.lease.run_once() == 0
    usage = store.key_usage(Key())
    assert (usage.spent["daily"], usage.reserved["daily"], usage.in_flight) == (PRICE, 0, 0)


def test_a_spooled_charge_that_did_reach_the_database_is_not_written_again(make_store, database, clock):
    store = make_store()
    reservation = store.reserve(Key(), PRICE, details())
    store.write_charge(reservation, outcome(reservation, 0.04), clock())
    # The commit went through but its answer was lost: the same charge was spooled too.
    store.spool.put({"settledAt": format_ts(clock()), "reservation": vars(reservation),
                     "fields": outcome(reservation, 0.04)})
    assert store.lease.run_once() == 1  # handed to the database, which already had it
    assert len(charges(database)) == 1
    assert store.key_usage(Key()).spent["daily"] == PRICE


def lapse_leases(database):
    with database.connect() as connection:
        connection.execute("UPDATE worker_leases SET expires_at = clock_timestamp() - interval '1 second'")


def test_a_dead_hosts_reservation_is_settled_once_its_lease_lapses_and_a_late_charge_replaces_it(
        make_store, database, clock):
    dead, alive = make_store(), make_store()
    reservation = dead.reserve(Key(), PRICE, details())
    assert alive.key_usage(Key()).in_flight == 1  # its lease is live: still in flight
    lapse_leases(database)

    usage = alive.key_usage(Key())

    assert (usage.in_flight, usage.spent["daily"]) == (0, PRICE)
    [expiry] = [r for r in database.records() if r["type"] == "reservation_expired"]
    assert (expiry["reason"], expiry["cost"], expiry["worker"]) == ("worker_died", 0.04, reservation.worker)
    late = dead.write_charge(reservation, outcome(reservation, 0.02), clock())
    assert late["afterExpiry"] is True
    assert alive.key_usage(Key()).spent == {"daily": to_micros(0.02), "monthly": to_micros(0.02)}


def test_the_sweep_settles_a_dead_hosts_reservations_without_a_request_for_their_key(make_store, database):
    dead, alive = make_store(), make_store()
    dead.reserve(Key(), PRICE, details())
    lapse_leases(database)
    alive.lease.sweep()
    assert [r["reason"] for r in database.records() if r["type"] == "reservation_expired"] == ["worker_died"]


def test_a_refused_request_keeps_the_stale_settlements_of_its_transaction(make_store, database, clock):
    store = make_store()
    key = Key(daily_spend_limit=0.04)
    store.reserve(key, PRICE, details())
    clock.advance(TTL + 1)
    with pytest.raises(ApiError) as refused:
        store.reserve(key, PRICE, details())  # the expired reservation is now spent: no room left
    assert refused.value.code == "SPEND_LIMIT_EXCEEDED"
    assert [r["reason"] for r in database.records() if r["type"] == "reservation_expired"] == ["expired"]


def ledger_of(clock, key, **summary):
    """Return records as a file store writes them: a charged request, an expired one, one replaced late."""
    records = []
    for cost, fate in ((0.04, "charged"), (0.04, "expired"), (0.02, "late")):
        now = clock()
        record = reservation_record(now, key, details(**summary), PRICE, now + timedelta(seconds=TTL), "h:1:ab")
        records.append(record)
        held = Reservation(request_id=record["requestId"], key_id=key.id, micros=PRICE, reserved_at=record["ts"],
                           expires_at=(now + timedelta(seconds=TTL)).timestamp(), worker="h:1:ab")
        clock.advance(1)
        if fate != "charged":
            records.append(expiry_record(clock(), held, "expired"))
        if fate != "expired":
            fields = outcome(held, cost, user=key.user)
            records.append(charge_record(clock(), held, fields, after_expiry=fate == "late"))
    return records


def test_import_twice_writes_each_record_once_and_export_gives_the_lines_back(make_store, database, tmp_path, capsys):
    clock = FakeClock()
    records = ledger_of(clock, Key())
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"".join(encode_record(record) for record in records) + b'[]\n{"type": "charge"}\n')
    store = make_store()

    assert store.import_records(json.loads(line) for line in path.read_text().splitlines()) == (7, 2)
    assert store.import_records(json.loads(line) for line in path.read_text().splitlines()) == (0, 9)

    assert b"".join(encode_record(record) for record in store.records()) == b"".join(map(encode_record, records))
    usage = store.key_usage(Key())
    assert usage.spent["daily"] == to_micros(0.04 + 0.04 + 0.02)
    assert (usage.requests["daily"], usage.in_flight) == (3, 0)


def test_report_groups_in_sql_as_the_ledger_counts(make_store):
    clock = FakeClock()
    store = make_store()
    store.import_records(ledger_of(clock, Key()) + ledger_of(clock, Key("key_other", "sam")))

    report = store.report(by=("user", "model"))

    rows = {group: totals.as_row() for group, totals in report.rows()}
    each = {"requests": 3, "images": 2, "cost": 0.1, "expired": 1}
    assert rows == {("pat", "dall-e-3"): each, ("sam", "dall-e-3"): each}
    assert store.report(by=("day",), since="2027-01-01T00:00:00.000000Z").groups == {}


def test_report_by_endpoint_in_sql_matches_the_file_store(make_store, tmp_path):
    clock = FakeClock()
    # Edits name their endpoint; records from before edits name none (they were generations).
    records = ledger_of(clock, Key(), endpoint="edits") + ledger_of(clock, Key("key_other", "sam"))
    store = make_store()
    store.import_records(records)
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"".join(encode_record(record) for record in records))

    in_sql = {group: totals.as_row() for group, totals in store.report(by=("endpoint", "user")).rows()}
    in_file = {group: totals.as_row() for group, totals in build_report(str(path), by=("endpoint", "user")).rows()}

    each = {"requests": 3, "images": 2, "cost": 0.1, "expired": 1}
    assert in_sql == in_file == {("edits", "pat"): each, ("generations", "sam"): each}


@pytest.mark.parametrize("environ, expected", [
    pytest.param({}, "", id="neither: the file store"),
    pytest.param({"DATABASE_URL": "postgresql://heroku/db"}, "postgresql://heroku/db", id="heroku"),
    pytest.param({"DATABASE_URL": "postgresql://heroku/db", "ZIRI_DATABASE_URL": "postgresql://own/db"},
                 "postgresql://own/db", id="ziri-wins"),
])
def test_the_database_url_setting(environ, expected):
    assert Config.from_environ(environ, read_providers=False)["DATABASE_URL"] == expected


def test_ledger_import_command_twice_and_report_and_export_on_the_database(database, tmp_path, monkeypatch, capsys):
    records = ledger_of(FakeClock(), Key())
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"".join(encode_record(record) for record in records))
    monkeypatch.setenv("ZIRI_DATABASE_URL", database.url)
    monkeypatch.setenv("ZIRI_SPOOL_DIR", str(tmp_path / "spool"))

    assert cli.main(["ledger", "import", str(path)]) == 0
    assert "imported 7 record(s); skipped 0" in capsys.readouterr().err
    assert cli.main(["ledger", "import", str(path)]) == 0
    assert "imported 0 record(s); skipped 7" in capsys.readouterr().err

    assert cli.main(["report", "--by", "key", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["totals"] == {"requests": 3, "images": 2, "cost": 0.1, "expired": 1}
    assert cli.main(["ledger", "export"]) == 0
    assert capsys.readouterr().out.encode() == path.read_bytes()


def test_ledger_import_without_a_database_refuses(tmp_path, capsys):
    path = tmp_path / "ledger.jsonl"
    path.write_text("")
    assert cli.main(["ledger", "import", str(path)]) == 1
    assert "no database configured" in capsys.readouterr().err


def test_stream_records_round_trip_through_import_and_export(make_store):
    # A streamed request's records carry stream: true (and partialImages), reservation and charge alike.
    records = ledger_of(FakeClock(), Key(), endpoint="edits", stream=True, partialImages=2)
    for record in records:
        if record["type"] == "charge":
            record.update(stream=True, partialImages=2, chargedBy="reservation", streamEnd="no_completed_event")
    store = make_store()
    store.import_records(records)

    assert b"".join(encode_record(record) for record in store.records()) == b"".join(map(encode_record, records))
    assert {record["stream"] for record in store.records() if record["type"] != "reservation_expired"} == {True}


def test_requests_queue_for_a_busy_pool_past_the_timeout_while_the_database_answers(make_store, database):
    # One pooled connection, held by requests that each wait on a row lock for less than the
    # timeout: the ones queued behind them wait longer than the timeout for the connection, and
    # are served, not refused (a busy pool is not a fault).
    store = make_store(timeout=1.5, pool_size=1)
    keys = [Key(key_id=f"key_{name}") for name in ("a", "b", "c")]
    for key in keys:
        held = store.reserve(key, PRICE, details())
        store.settle(held, outcome(held, 0.04))
    holders = [database.connect() for _ in range(2)]
    try:
        for holder, key in zip(holders, keys[:2], strict=True):
            holder.execute("BEGIN")
            holder.execute("SELECT * FROM key_locks WHERE key_id = %s FOR UPDATE", (key.id,))
        with ThreadPoolExecutor(max_workers=8) as pool:
            first = pool.submit(store.reserve, keys[0], PRICE, details())
            wait_for(lambda: lock_waiters(database) == 1)
            second = pool.submit(store.reserve, keys[1], PRICE, details())
            queued = [pool.submit(store.reserve, keys[2], PRICE, details()) for _ in range(6)]
            for holder in holders:
                time.sleep(1.0)  # under the lock timeout, so each lock wait is served
                holder.execute("COMMIT")
                wait_for(lambda: lock_waiters(database) <= 1)
            outcomes = [future.result(timeout=30) for future in [first, second, *queued]]
    finally:
        for holder in holders:
            holder.close()
    assert [reservation.key_id for reservation in outcomes] == ["key_a", "key_b"] + ["key_c"] * 6
    assert store.key_usage(keys[2]).in_flight == 6


def hold_the_only_connection(store, pool, seconds):
    """Borrow the store's one pooled connection for ``seconds`` in a thread; return once it is held."""
    held = threading.Event()

    def borrow():
        with store.database.connection():
            held.set()
            time.sleep(seconds)

    borrowing = pool.submit(borrow)
    assert held.wait(10)
    return borrowing


@pytest.mark.parametrize("fault_first, admitted", [
    pytest.param(False, True, id="answering-queues"),
    pytest.param(True, False, id="failing-refuses-fast"),
])
def test_a_busy_pool_queues_while_the_database_answers_and_refuses_after_a_fault(
        make_store, database, fault_first, admitted):
    store = make_store(timeout=1.0, pool_size=1, queue_seconds=60.0)
    store.reserve(Key(), PRICE, details())
    if fault_first:
        with database.connect() as holder, holder.transaction():
            holder.execute("SELECT * FROM key_locks WHERE key_id = 'key_pg' FOR UPDATE")
            with pytest.raises(ApiError):  # the lock timeout: a fault
                store.reserve(Key(), PRICE, details())
    assert store.database.answering() is not fault_first
    with ThreadPoolExecutor(max_workers=1) as pool:
        hold_the_only_connection(store, pool, 2.5)  # longer than the timeout, far shorter than the queue
        try:
            store.reserve(Key(), PRICE, details())
        except ApiError as error:
            assert error.code == "LEDGER_UNAVAILABLE"
            assert not admitted
        else:
            assert admitted


def test_many_threads_on_one_key_are_admitted_exactly_to_the_budget(make_store, database):
    store = make_store()
    key = Key(daily_spend_limit=0.2)  # five reservations of 0.04
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(store.reserve, key, PRICE, details()) for _ in range(40)]
    admitted, refused = [], []
    for future in futures:
        try:
            admitted.append(future.result())
        except ApiError as error:
            refused.append(error.code)
    assert (len(admitted), set(refused)) == (5, {"SPEND_LIMIT_EXCEEDED"})
    usage = store.key_usage(key)
    assert (usage.in_flight, usage.reserved["daily"], usage.requests["daily"]) == (5, 5 * PRICE, 5)
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(lambda held: store.settle(held, outcome(held, 0.03)), admitted))
    usage = store.key_usage(key)
    assert (usage.in_flight, usage.reserved["daily"], usage.spent["daily"]) == (0, 0, 5 * to_micros(0.03))
    assert len(charges(database)) == 5


def test_a_reservation_behind_the_keys_last_one_moves_forward_with_its_expiry(make_store, database, clock):
    store = make_store()
    first = store.reserve(Key(), PRICE, details())
    clock.advance(-5)  # the database's clock stepped back (its time service corrected it)
    second = store.reserve(Key(), PRICE, details())
    assert second.reserved_at == first.reserved_at
    assert second.expires_at == first.expires_at
    record = next(r for r in database.records() if r["requestId"] == second.request_id)
    before = next(r for r in database.records() if r["requestId"] == first.request_id)
    assert (record["ts"], record["expiresAt"]) == (before["ts"], before["expiresAt"])
    assert len(store.key_usage(Key()).admissions) == 2


def test_a_reserve_whose_answer_was_lost_is_settled_at_zero_by_the_next_housekeeping_pass(
        make_store, database, monkeypatch):
    store = make_store()
    call = store.database.call

    def committed_then_lost(sql, params):
        call(sql, params)
        lost = ApiError(503, "LEDGER_UNAVAILABLE", "the database is unavailable")
        lost.maybe_committed = True
        raise lost

    monkeypatch.setattr(store.database, "call", committed_then_lost)
    with pytest.raises(ApiError):
        store.reserve(Key(), PRICE, details())
    monkeypatch.undo()
    assert store.key_usage(Key()).in_flight == 1  # committed: held, though the client got 503

    assert store.release_unconfirmed() == 1
    assert store.release_unconfirmed() == 0
    usage = store.key_usage(Key())
    assert (usage.in_flight, usage.reserved["daily"], usage.spent["daily"]) == (0, 0, 0)
    [charge] = charges(database)
    assert (charge["status"], charge["cost"], charge["httpStatus"]) == ("not_admitted", 0.0, 503)


def test_a_connection_lost_mid_reserve_is_checked_and_nothing_is_released_if_it_never_committed(
        make_store, database):
    store = make_store(timeout=5.0)
    store.reserve(Key(), PRICE, details())
    with database.connect() as holder, holder.transaction(), ThreadPoolExecutor(max_workers=1) as pool:
        holder.execute("SELECT * FROM key_locks WHERE key_id = 'key_pg' FOR UPDATE")
        waiting = pool.submit(store.reserve, Key(), PRICE, details())
        wait_for(lambda: lock_waiters(database) == 1)
        holder.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
        with pytest.raises(ApiError):
            waiting.result(timeout=30)
    assert len(store._unconfirmed) == 1
    assert store.release_unconfirmed() == 0
    assert store.key_usage(Key()).in_flight == 1
