"""Per-key limits (billing.Limiter, ledger/checks.py and the stores) through the API, with an injected clock.

The provider is mocked with ``responses``; its answers come from the local stub app
(``ziri_images.dev.stub``), so bodies have OpenAI's shapes and prompt directives such as
``[stub:status=500]`` work. A prompt containing ``[hold]`` blocks at the provider until the
test releases it, which keeps a reservation open while other requests run.

Every test runs against every store (``STORE_KINDS`` in conftest.py) and reads records through
the store; those marked ``stores("file")`` are about the JSONL file itself.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import responses
from conftest import NOT_RECORDS
from conftest import append_lines
from conftest import charge_record
from conftest import reservation_record
from conftest import store_records

from ziri_images.dev.stub import create_stub_app
from ziri_images.keys.store import LIMIT_NAMES
from ziri_images.keys.store import hash_key

pytestmark = pytest.mark.stores()

HOLD = "[hold]"
WAIT_SECONDS = 5


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def raw_key(name):
    """Return the raw API key of the test user ``name`` (stable, so apps can share a key file)."""
    return f"ziri-{name}-{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def write_user_keys(path, specs):
    """Replace keys.json with one key per ``name -> extra fields`` entry (id ``key_{name}``)."""
    keys = [
        {"id": f"key_{name}", "user": name, "hash": hash_key(raw_key(name)), "status": "active", **fields}
        for name, fields in specs.items()
    ]
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps({"keys": keys}))
    # A running app re-reads the file when its mtime moves; make sure it does.
    os.utime(path, ns=(previous + 1_000_000_000,) * 2)


def records(client, kind, key=None):
    """Return the records of ``kind`` (of ``key_{key}``) the client's app holds, through its store."""
    return [r for r in store_records(client.application)
            if r["type"] == kind and (key is None or r["keyId"] == f"key_{key}")]


def dead_pid():
    """Return the pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def live_worker():
    """Return a worker string for a live process on this host that is not this one."""
    return f"{socket.gethostname()}:{os.getppid()}:feedf00d"


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def gate():
    """An event that ``[hold]`` requests wait on; set at teardown so no thread is left blocked."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def provider(responses_mock, app_config, gate):
    """Answer the provider with the local stub's bodies; ``[hold]`` prompts wait for ``gate``."""
    stub = create_stub_app().test_client()

    def answer(request):
        if HOLD in json.loads(request.body)["prompt"]:
            assert gate.wait(WAIT_SECONDS), "a held request was never released"
        reply = stub.post("/v1/images/generations", data=request.body, headers=dict(request.headers))
        return reply.status_code, {"x-request-id": reply.headers["x-request-id"]}, reply.get_data()

    url = app_config["OPENAI_BASE_URL"] + "/images/generations"
    responses_mock.add_callback(responses.POST, url, callback=answer, content_type="application/json")
    return responses_mock


@pytest.fixture
def make_client(make_app, keys_path):
    """Return ``make(**keys)``: replace keys.json when keys are given, build an app, return its client."""

    def make(**specs):
        if specs:
            write_user_keys(keys_path, specs)
        return make_app().test_client()

    return make


def generate(client, name, **body):
    body = {"provider": "openai", "model": "dall-e-3", "prompt": "a red fox", **body}
    return client.post("/api/images/generations", json=body, headers={"X-API-Key": raw_key(name)})


def usage(client, name):
    response = client.get("/api/me/usage", headers={"X-API-Key": raw_key(name)})
    assert response.status_code == 200, response.json
    return response.json


def reservations(client):
    """Return the reservation records written so far (safe while another thread writes)."""
    return records(client, "reservation")


class HeldRequest:
    """A generation request running in a thread, blocked at the provider until ``gate`` is set."""

    def __init__(self, client, name, **body):
        before = len(reservations(client))
        self._pool = ThreadPoolExecutor(max_workers=1)
        body.setdefault("prompt", f"a red fox {HOLD}")
        self._future = self._pool.submit(generate, client, name, **body)
        wait_for(lambda: len(reservations(client)) > before, "the held request's reservation")
        self.reservation = reservations(client)[-1]

    def response(self):
        try:
            return self._future.result(timeout=WAIT_SECONDS)
        finally:
            self._pool.shutdown()


# --- day and month boundaries --------------------------------------------------------------


def test_spend_at_2359_on_the_last_day_does_not_count_the_next_day(make_client, provider, clock):
    client = make_client(alice={"limits": {"daily_spend_limit": 0.05, "monthly_spend_limit": 0.05}})
    clock.now = utc(2026, 11, 30, 23, 59, 0)
    assert generate(client, "alice").status_code == 200
    refused = generate(client, "alice")
    assert refused.status_code == 402
    assert refused.json["period"] == "daily"

    clock.now = utc(2026, 12, 1, 0, 0, 30)
    assert generate(client, "alice").status_code == 200
    report = usage(client, "alice")
    assert report["daily"]["period"] == "2026-12-01"
    assert report["daily"]["spent"] == 0.04
    assert report["monthly"]["period"] == "2026-12"
    assert report["monthly"]["spent"] == 0.04
    reservations = records(client, "reservation", "alice")
    assert [r["ts"][:10] for r in reservations] == ["2026-11-30", "2026-12-01"]


def test_request_in_flight_at_midnight_is_charged_to_the_day_it_was_admitted(make_client, provider, clock, gate):
    client = make_client(alice={"limits": {"daily_spend_limit": 0.04}})
    clock.now = utc(2026, 11, 30, 23, 59, 59)
    held = HeldRequest(client, "alice")

    clock.now = utc(2026, 12, 1, 0, 0, 1)
    assert usage(client, "alice")["daily"]["reserved"] == 0  # held against November 30's budget
    gate.set()
    assert held.response().status_code == 200

    [charge] = records(client, "charge", "alice")
    assert (charge["ts"][:10], charge["reservedAt"][:10]) == ("2026-12-01", "2026-11-30")
    report = usage(client, "alice")
    assert (report["daily"]["spent"], report["monthly"]["spent"]) == (0, 0)
    assert generate(client, "alice").status_code == 200  # December 1's budget is untouched


def test_monthly_spend_accumulates_across_days(make_client, provider, clock):
    client = make_client(alice={"limits": {"monthly_spend_limit": 0.10}})
    for day in (28, 29):
        clock.now = utc(2026, 11, day, 9, 0, 0)
        assert generate(client, "alice").status_code == 200
    clock.now = utc(2026, 11, 30, 9, 0, 0)
    refused = generate(client, "alice")
    assert refused.status_code == 402
    assert refused.json["period"] == "monthly"
    assert refused.json["spent"] == 0.08
    assert usage(client, "alice")["daily"]["spent"] == 0

    clock.now = utc(2026, 12, 1, 0, 0, 0)
    assert generate(client, "alice").status_code == 200


@pytest.mark.parametrize(
    ("limits", "now", "expected"),
    [
        pytest.param(
            {"daily_spend_limit": 0.10, "monthly_spend_limit": 5.0}, utc(2026, 11, 30, 23, 59, 0),
            {"period": "daily", "limit": 0.10, "resetsAt": "2026-12-01T00:00:00.000000Z"},
            id="daily-last-day-of-month",
        ),
        pytest.param(
            {"monthly_spend_limit": 0.10}, utc(2026, 12, 31, 12, 0, 0),
            {"period": "monthly", "limit": 0.10, "resetsAt": "2027-01-01T00:00:00.000000Z"},
            id="monthly-december-wraps-the-year",
        ),
        pytest.param(
            {"daily_spend_limit": 0.10, "monthly_spend_limit": 0.10}, utc(2026, 11, 15, 12, 0, 0),
            {"period": "daily", "limit": 0.10, "resetsAt": "2026-11-16T00:00:00.000000Z"},
            id="daily-checked-before-monthly",
        ),
    ],
)
def test_spend_limit_error_body(make_client, provider, clock, limits, now, expected, another_worker):
    client = make_client(alice={"limits": limits})
    clock.now = now
    assert generate(client, "alice").status_code == 200
    another_worker(reservation_record("alice", 0.04, now, live_worker()))

    response = generate(client, "alice")

    assert response.status_code == 402
    assert response.headers["x-should-retry"] == "false"
    body = response.json
    assert body["code"] == "SPEND_LIMIT_EXCEEDED"
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert {name: body[name] for name in ("period", "limit", "resetsAt")} == expected
    assert (body["spent"], body["reserved"], body["requested"]) == (0.04, 0.04, 0.04)
    assert len(records(client, "reservation", "alice")) == 2  # the refused request reserved nothing


def test_quality_auto_reserves_the_highest_price_and_charges_what_was_produced(make_client, provider):
    client = make_client(alice={}, bob={"limits": {"daily_spend_limit": 0.10}})
    body = {"model": "gpt-image-1", "size": "1024x1024"}
    for quality in ("low", "medium", "high", "auto"):
        assert generate(client, "alice", quality=quality, **body).status_code == 200
    reserved = {r["quality"]: r["amount"] for r in records(client, "reservation", "alice")}
    charged = {r["quality"]: r["cost"] for r in records(client, "charge", "alice")}

    assert reserved["auto"] == reserved["high"] == max(reserved.values())
    assert charged["auto"] == charged["medium"] < reserved["auto"]  # the stub answers "medium" for auto

    assert reserved["medium"] < 0.10 < reserved["high"]
    refused = generate(client, "bob", quality="auto", **body)
    assert (refused.status_code, refused.json["requested"]) == (402, reserved["auto"])
    assert generate(client, "bob", quality="medium", **body).status_code == 200


def test_provider_failure_releases_the_reservation(make_client, provider):
    client = make_client(alice={"limits": {"daily_spend_limit": 0.04}})

    failed = generate(client, "alice", prompt="a red fox [stub:status=500]")

    assert failed.status_code == 502
    [charge] = records(client, "charge", "alice")
    assert (charge["status"], charge["cost"], charge["reserved"]) == ("provider_error", 0.0, 0.04)
    report = usage(client, "alice")
    assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (0, 0, 0)
    assert generate(client, "alice").status_code == 200  # the whole budget is still there


# --- reservations that are never settled ---------------------------------------------------


def test_stale_reservation_expires_and_a_late_charge_replaces_it(make_client, provider, clock, gate, store_kind):
    client = make_client(alice={}, bob={})
    held = HeldRequest(client, "alice", model="gpt-image-1", quality="auto")
    reserved = held.reservation["amount"]

    clock.now = datetime.fromisoformat(held.reservation["expiresAt"])
    assert generate(client, "bob").status_code == 200  # file store: any reservation catches up with stale ones
    if store_kind == "postgres":
        usage(client, "alice")  # PostgreSQL settles a key's stale reservations under that key's lock only

    [expired] = records(client, "reservation_expired")
    assert expired["requestId"] == held.reservation["requestId"]
    assert (expired["reason"], expired["cost"]) == ("expired", reserved)
    assert expired["reservedAt"] == held.reservation["ts"]
    report = usage(client, "alice")
    assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (reserved, 0, 0)

    gate.set()
    assert held.response().status_code == 200
    [charge] = records(client, "charge", "alice")
    assert charge["afterExpiry"] is True
    assert 0 < charge["cost"] < reserved  # "auto" came back as medium: less than was reserved
    assert usage(client, "alice")["daily"]["spent"] == charge["cost"]
    assert usage(make_client(), "alice")["daily"]["spent"] == charge["cost"]  # and so does a replay


@pytest.mark.stores("file")  # a pid's liveness; PostgreSQL's leases: tests/test_pgstore.py
@pytest.mark.parametrize(
    ("worker", "expires"),
    [
        pytest.param(lambda: f"{socket.gethostname()}:{dead_pid()}:0badc0de", True, id="dead-pid-on-this-host"),
        pytest.param(lambda: f"{socket.gethostname()}:{os.getpid()}:0badc0de", True, id="earlier-process-with-our-pid"),
        pytest.param(live_worker, False, id="live-pid-on-this-host"),
        pytest.param(lambda: f"other-host.invalid:{dead_pid()}:0badc0de", False, id="another-host"),
    ],
)
def test_reservation_of_a_dead_worker_is_charged_at_the_reserved_amount(make_client, provider, clock, worker, expires,
                                                                        another_worker):
    client = make_client(alice={}, bob={})
    written = reservation_record("alice", 0.08, clock() - timedelta(seconds=5), worker())
    another_worker(written)

    assert generate(client, "bob").status_code == 200

    expired = records(client, "reservation_expired")
    report = usage(client, "alice")
    if expires:
        [record] = expired
        assert record["requestId"] == written["requestId"]
        assert (record["reason"], record["cost"], record["worker"]) == ("worker_died", 0.08, written["worker"])
        assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (0.08, 0, 0)
    else:
        assert expired == []
        assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (0, 0.08, 1)


@pytest.mark.stores("file")  # a pid's liveness; PostgreSQL's leases: tests/test_pgstore.py
def test_usage_settles_a_dead_workers_reservation_without_waiting_for_a_request(make_client, clock, another_worker):
    client = make_client(alice={})
    dead_worker = f"{socket.gethostname()}:{dead_pid()}:0"
    written = reservation_record("alice", 0.08, clock() - timedelta(seconds=5), dead_worker)
    another_worker(written)

    report = usage(client, "alice")

    [record] = records(client, "reservation_expired")
    assert (record["requestId"], record["reason"]) == (written["requestId"], "worker_died")
    assert (report["daily"]["spent"], report["daily"]["reserved"], report["inFlight"]) == (0.08, 0, 0)


# --- rate and concurrency ------------------------------------------------------------------


def test_rate_limit_refuses_with_retry_after_until_the_window_moves(make_client, provider, clock):
    client = make_client(alice={"limits": {"requests_per_minute": 2}})
    clock.now = utc(2026, 11, 15, 12, 0, 0)
    reset = str(int(clock().timestamp()) + 60)

    first, second = generate(client, "alice"), generate(client, "alice")
    assert [r.headers["X-RateLimit-Remaining"] for r in (first, second)] == ["1", "0"]
    clock.advance(seconds=30)
    refused = generate(client, "alice")

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["x-should-retry"] == "true"
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("2", "0")
    assert refused.headers["X-RateLimit-Reset"] == reset
    body = refused.json
    assert (body["code"], body["limit"], body["retryAfter"]) == ("RATE_LIMIT_EXCEEDED", 2, 30)
    assert body["resetAt"] == "2026-11-15T12:01:00.000000Z"
    assert len(records(client, "reservation", "alice")) == 2

    assert generate(make_client(), "alice").status_code == 429  # a replay rebuilds the window

    clock.advance(seconds=30)
    assert generate(client, "alice").status_code == 200


@pytest.mark.parametrize(
    ("send", "status", "remaining"),
    # Only the first case reaches the provider; for the others an upstream call would fail the test.
    [
        pytest.param(lambda c: generate(c, "alice"), 200, "4", id="success"),
        pytest.param(lambda c: generate(c, "alice", n="two"), 400, "5", id="validation-error"),
        pytest.param(lambda c: generate(c, "alice", prompt=""), 400, "5", id="missing-field"),
        pytest.param(lambda c: generate(c, "alice", model="dall-e-9"), 400, "5", id="unknown-model"),
        pytest.param(lambda c: generate(c, "alice", model="gpt-image-1"), 403, "5", id="model-not-allowed"),
        pytest.param(lambda c: generate(c, "alice", model="dall-e-2", n=3), 402, "5", id="spend-limit"),
        pytest.param(lambda c: c.get("/api/me/usage", headers={"X-API-Key": raw_key("alice")}), 200, "5",
                     id="usage"),
    ],
)
def test_rate_limit_headers_on_every_response_of_an_authenticated_key(request, make_client, clock, send, status,
                                                                      remaining):
    if remaining == "4":
        request.getfixturevalue("provider")
    client = make_client(alice={
        "allowed_models": ["dall-e-2", "dall-e-3"],
        "limits": {"requests_per_minute": 5, "daily_spend_limit": 0.05},
    })

    response = send(client)

    assert response.status_code == status
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == remaining
    expected_reset = clock().timestamp() + (60 if remaining == "4" else 0)
    assert response.headers["X-RateLimit-Reset"] == str(int(expected_reset))


def test_no_rate_limit_headers_without_a_rate_limit_or_a_key(make_client, provider):
    client = make_client(alice={})
    assert "X-RateLimit-Limit" not in generate(client, "alice").headers
    assert "X-RateLimit-Limit" not in generate(client, "nobody").headers


def test_concurrency_limit_refuses_while_a_request_is_in_flight(make_client, provider, gate):
    client = make_client(alice={"limits": {"max_concurrent_requests": 1}}, bob={})
    held = HeldRequest(client, "alice")

    refused = generate(client, "alice")
    other_key = generate(client, "bob")
    gate.set()

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["x-should-retry"] == "true"
    assert (refused.json["code"], refused.json["limit"], refused.json["inFlight"]) == ("QUEUE_FULL", 1, 1)
    assert other_key.status_code == 200
    assert held.response().status_code == 200
    assert generate(client, "alice").status_code == 200  # settled: the slot is free again
    assert len(records(client, "reservation", "alice")) == 2


def test_concurrency_limit_counts_reservations_written_by_other_workers(make_client, clock, another_worker):
    client = make_client(alice={"limits": {"max_concurrent_requests": 2}})
    another_worker(*(reservation_record("alice", 0.04, clock(), live_worker(), f"req_{i}")
                                  for i in range(2)))
    refused = generate(client, "alice")
    assert (refused.status_code, refused.json["inFlight"]) == (503, 2)


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "body", "denied"),
    [
        pytest.param({"allowed_providers": ["stability"]}, {}, {"reason": "provider_not_allowed",
                     "allowedProviders": ["stability"]}, id="provider-not-allowed"),
        pytest.param({"allowed_models": ["dall-e-2"]}, {}, {"reason": "model_not_allowed",
                     "allowedModels": ["dall-e-2"]}, id="model-not-allowed"),
        pytest.param({"allowed_providers": [], "allowed_models": None}, {}, {"reason": "provider_not_allowed",
                     "allowedProviders": []}, id="empty-list-allows-nothing"),
    ],
)
def test_allow_lists_deny_before_anything_is_reserved(make_client, responses_mock, fields, body, denied):
    client = make_client(alice=fields)

    response = generate(client, "alice", **body)

    assert response.status_code == 403
    assert response.json["code"] == "AUTHORIZATION_DENIED"
    assert {name: response.json[name] for name in denied} == denied
    assert store_records(client.application) == []
    assert len(responses_mock.calls) == 0


def test_allow_lists_admit_what_they_list(make_client, provider):
    client = make_client(alice={"allowed_providers": ["openai"], "allowed_models": ["dall-e-2"]})
    assert generate(client, "alice", model="dall-e-2").status_code == 200
    assert generate(client, "alice").status_code == 403
    assert len(records(client, "charge", "alice")) == 1


def test_expired_key_is_refused_from_its_expiry_time(make_client, provider, clock):
    client = make_client(alice={"expires_at": "2026-11-15T12:00:00Z"})
    clock.now = utc(2026, 11, 15, 11, 59, 59)
    assert generate(client, "alice").status_code == 200

    clock.now = utc(2026, 11, 15, 12, 0, 0)
    for response in (generate(client, "alice"),
                     client.get("/api/me/usage", headers={"X-API-Key": raw_key("alice")})):
        assert response.status_code == 403
        body = response.json
        assert (body["code"], body["keyId"], body["expiredAt"]) == (
            "API_KEY_EXPIRED", "key_alice", "2026-11-15T12:00:00+00:00")
    assert len(records(client, "reservation")) == 1


# --- usage and replay -----------------------------------------------------------------------


ALICE_LIMITS = {
    "expires_at": "2027-01-01T00:00:00Z",
    "limits": {"daily_spend_limit": 1.0, "monthly_spend_limit": 10.0, "requests_per_minute": 10,
               "max_concurrent_requests": 4},
}


def traffic(client, clock, another_worker):
    """Make yesterday's and today's requests for alice, leave one open reservation; return today."""
    clock.now = utc(2026, 11, 14, 12, 0, 0)
    assert generate(client, "alice").status_code == 200
    clock.now = utc(2026, 11, 15, 12, 0, 0)
    assert generate(client, "alice").status_code == 200
    assert generate(client, "alice", model="dall-e-2", n=2).status_code == 200
    assert generate(client, "alice", prompt="a red fox [stub:status=500]").status_code == 502
    another_worker(reservation_record("alice", 0.08, clock(), live_worker()))


def test_usage_reports_spend_reservations_limits_and_counts(make_client, provider, clock, another_worker):
    client = make_client(alice=ALICE_LIMITS)
    traffic(client, clock, another_worker)

    report = usage(client, "alice")

    assert report == {
        "keyId": "key_alice",
        "user": "alice",
        "currency": "USD",
        "daily": {"period": "2026-11-15", "spent": 0.08, "reserved": 0.08, "limit": 1.0, "remaining": 0.84,
                  "requests": 4, "resetsAt": "2026-11-16T00:00:00.000000Z"},
        "monthly": {"period": "2026-11", "spent": 0.12, "reserved": 0.08, "limit": 10.0, "remaining": 9.8,
                    "requests": 5, "resetsAt": "2026-12-01T00:00:00.000000Z"},
        "inFlight": 1,
        "requestsLastMinute": 4,
        "limits": {**dict.fromkeys(LIMIT_NAMES), **ALICE_LIMITS["limits"]},
        "expiresAt": "2027-01-01T00:00:00+00:00",
        "team": None,
    }


def test_usage_without_limits_has_no_remaining(make_client):
    client = make_client(alice={})
    report = usage(client, "alice")
    assert (report["daily"]["limit"], report["daily"]["remaining"]) == (None, None)
    assert report["limits"] == {"daily_spend_limit": None, "monthly_spend_limit": None,
                                "requests_per_minute": None, "max_concurrent_requests": None,
                                "soft_daily_spend_limit": None, "soft_monthly_spend_limit": None,
                                "end_user_daily_spend_limit": None}


def test_state_is_replayed_from_the_ledger_at_start_up(make_client, provider, clock, keys_path, another_worker):
    first = make_client(alice=ALICE_LIMITS)
    traffic(first, clock, another_worker)

    second = make_client()

    assert usage(second, "alice") == usage(first, "alice")
    write_user_keys(keys_path, {"alice": {"limits": {"daily_spend_limit": 0.16}}})
    refused = generate(make_client(), "alice")
    assert (refused.status_code, refused.json["spent"], refused.json["reserved"]) == (402, 0.08, 0.08)


@pytest.mark.stores("file")
def test_replay_skips_months_old_lines_but_keeps_the_day_before(make_client, clock, ledger_path, caplog):
    append_lines(
        ledger_path,
        charge_record("alice", 5.0, utc(2026, 9, 3, 10, 0, 0), "req_september"),
        charge_record("alice", 0.04, utc(2026, 11, 29, 23, 0, 0), "req_two_days_ago"),
        charge_record("alice", 0.04, utc(2026, 11, 30, 10, 0, 0), "req_yesterday"),
        reservation_record("alice", 0.08, utc(2026, 11, 30, 23, 59, 58), live_worker(), "req_open"),
    )
    with open(ledger_path, "a") as file:
        file.write('{"ts":"2026-10-01T00:00:00.000000Z","type":"charge","cost":\n')  # old and broken
    clock.now = utc(2026, 12, 1, 0, 0, 5)

    client = make_client(alice={})

    state = client.application.extensions["ziri_images"].store.state
    assert sorted(period for key, period in state.keys.spent) == ["2026-11", "2026-11-30"]
    assert state.keys.spent[("key_alice", "2026-11-30")] == 40_000
    assert list(state.open) == ["req_open"]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # the old line was never parsed
    report = usage(client, "alice")
    assert (report["monthly"]["spent"], report["inFlight"]) == (0, 1)


@pytest.mark.stores("file")
def test_record_after_a_torn_line_is_not_lost(make_client, provider, clock, ledger_path):
    ledger_path.parent.mkdir(parents=True)
    ledger_path.write_text('{"ts":"2026-11-15T11:59:00.000000Z","type":"charge","requestId":"req_torn","co')
    clock.now = utc(2026, 11, 15, 12, 0, 0)
    client = make_client(alice={})

    assert generate(client, "alice").status_code == 200

    lines = ledger_path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines[1:]] == ["reservation", "charge"]
    report = usage(make_client(), "alice")
    assert (report["daily"]["spent"], report["daily"]["requests"]) == (0.04, 1)


# --- lines that are not records (the JSONL file) --------------------------------------------


def append_raw_lines(path, *lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as file:
        file.writelines(line + b"\n" for line in lines)


@pytest.mark.stores("file")
@pytest.mark.parametrize("line", NOT_RECORDS)
def test_a_line_that_is_not_a_record_is_skipped_at_start_up(make_client, provider, clock, ledger_path, caplog, line):
    append_raw_lines(ledger_path, line)
    append_lines(ledger_path, charge_record("alice", 0.04, clock() - timedelta(minutes=5), "req_after"))

    client = make_client(alice={"limits": {"daily_spend_limit": 0.08}})

    assert usage(client, "alice")["daily"]["spent"] == 0.04  # the record after it still counts
    assert generate(client, "alice").status_code == 200
    assert generate(client, "alice").status_code == 402
    if b":99999999999999999999:" not in line:  # that one is a record: nothing to skip
        assert "ledger: skipping" in caplog.text


@pytest.mark.stores("file")
@pytest.mark.parametrize("line", NOT_RECORDS)
def test_a_line_that_is_not_a_record_is_skipped_by_a_running_worker(make_client, provider, clock, ledger_path, line):
    client = make_client(alice={"limits": {"daily_spend_limit": 0.08}})
    assert generate(client, "alice").status_code == 200
    # Another gateway on the same ledger writes a foreign line, then charges alice in the same read.
    append_raw_lines(ledger_path, line)
    append_lines(ledger_path, charge_record("alice", 0.04, clock(), "req_other_gateway"))

    refused = generate(client, "alice")

    assert (refused.status_code, refused.json["code"], refused.json["spent"]) == (402, "SPEND_LIMIT_EXCEEDED", 0.08)
    assert usage(client, "alice")["daily"]["spent"] == 0.08


# --- idempotency ---------------------------------------------------------------------------


def generate_with_idempotency_key(client, name, idempotency_key, prompt="a red fox"):
    body = {"provider": "openai", "model": "dall-e-3", "prompt": prompt}
    return client.post("/api/images/generations", json=body,
                       headers={"X-API-Key": raw_key(name), "Idempotency-Key": idempotency_key})


def test_a_repeated_idempotency_key_is_refused_not_billed_again(make_client, provider):
    client = make_client(alice={}, bob={})
    first = generate_with_idempotency_key(client, "alice", "fox-1")
    again = generate_with_idempotency_key(client, "alice", "fox-1")
    other_key = generate_with_idempotency_key(client, "bob", "fox-1")  # keys are per API key
    other_token = generate_with_idempotency_key(client, "alice", "fox-2")

    assert first.status_code == 200
    assert (again.status_code, again.json["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert again.json["originalRequestId"] == first.json["_meta"]["requestId"]
    assert again.headers["x-should-retry"] == "false"
    assert (other_key.status_code, other_token.status_code) == (200, 200)
    assert [r["cost"] for r in records(client, "charge", "alice")] == [0.04, 0.04]
    assert "fox-1" not in json.dumps(store_records(client.application))  # only a digest is kept


def test_an_idempotency_key_in_flight_is_refused_with_retry_after(make_client, provider, gate):
    client = make_client(alice={})
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(generate_with_idempotency_key, client, "alice", "owl", f"an owl {HOLD}")
        wait_for(lambda: reservations(client), "the held request's reservation")
        retry = generate_with_idempotency_key(client, "alice", "owl", f"an owl {HOLD}")
        gate.set()
        assert held.result(timeout=WAIT_SECONDS).status_code == 200

    assert (retry.status_code, retry.json["code"]) == (409, "IDEMPOTENT_REQUEST_IN_PROGRESS")
    assert retry.headers["Retry-After"] == "5"
    assert len(records(client, "reservation", "alice")) == 1


def test_idempotency_keys_survive_a_restart_for_a_day(make_client, provider, clock):
    client = make_client(alice={})
    assert generate_with_idempotency_key(client, "alice", "fox").status_code == 200

    restarted = make_client()
    assert generate_with_idempotency_key(restarted, "alice", "fox").status_code == 409
    clock.advance(24 * 3600 + 1)
    generate(restarted, "alice")  # a later admission ages the day-old key out
    assert generate_with_idempotency_key(restarted, "alice", "fox").status_code == 200


@pytest.mark.parametrize("value", [
    pytest.param("", id="empty"),
    pytest.param("x" * 256, id="too-long"),
    pytest.param("tab\there", id="not-printable"),
])
def test_a_malformed_idempotency_key_is_refused_before_anything_is_reserved(make_client, responses_mock, value):
    client = make_client(alice={})
    response = generate_with_idempotency_key(client, "alice", value)

    assert (response.status_code, response.json["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert records(client, "reservation") == []
