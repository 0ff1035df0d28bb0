"""Crashes: gunicorn workers SIGKILLed at random moments of a concurrent load lose no money.

Real gunicorn (4 workers, the project's gunicorn.conf.py) in front of the stub, whose prompt
directives give every request a small random delay and some of them a provider error or fewer
images. A pool of clients sends a few hundred requests while a killer thread SIGKILLs workers
that hold a reservation (or any worker, when none does); gunicorn starts replacements. Once the
load is over and every reservation's expiry has passed, one more request lets a worker settle
what the dead ones left open (on the PostgreSQL store, once a dead worker's lease lapses).
It runs on both stores under both worker classes (the README's test command runs gevent on
the file store; the rest is marked ``slow``, for CI). Then:

- every ledger line parses and the file ends with a whole line;
- every 200 a client saw has exactly one charge: succeeded, its cost > 0 and as answered;
- no request is charged twice, every reservation is settled (charge or reservation_expired),
  and a ``worker_died`` expiry names a worker this test killed, at the reserved amount;
- each key's spend re-derived from the ledger (each request's charge, else its expiry) is what
  GET /api/me/usage reports, with nothing still reserved or in flight.
"""

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from datetime import timezone

import pytest
import requests
from e2e.conftest import LEASE_SECONDS

from faults.conftest import live_workers
from ziri_images.ledger.money import parse_ts

pytestmark = pytest.mark.real_http

USERS = ("alice", "bob", "carol")
REQUESTS = 200
CLIENTS = 16
WORKERS = 4
KILLS = 4
# A reservation expires 3 s after it is made (connect 1 + read 1.5 + grace 0.5), so the test can wait for it.
SHORT_EXPIRY = {"ZIRI_UPSTREAM_CONNECT_TIMEOUT": 1, "ZIRI_UPSTREAM_READ_TIMEOUT": 1.5,
                "ZIRI_RESERVATION_GRACE_SECONDS": 0.5}
# On PostgreSQL a dead worker is seen when its lease lapses: expire reservations well after that.
EXPIRY_AFTER_LEASE = {**SHORT_EXPIRY, "ZIRI_UPSTREAM_READ_TIMEOUT": 2 * LEASE_SECONDS + 1}
MICROS = 1_000_000


# gevent on the file store (the defaults) runs everywhere; the rest of the matrix, a minute more, in CI.
@pytest.fixture(params=[
    pytest.param("gevent", id="gevent"),
    pytest.param("gthread", id="gthread", marks=pytest.mark.slow),
])
def worker_class(request):
    if request.param == "gevent":
        pytest.importorskip("gevent")
    return request.param


@pytest.fixture(params=[
    pytest.param("file", id="file"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.slow),
])
def store(request):
    return request.param


def micros(amount):
    return round(amount * MICROS)


def request_plan(rng):
    """Return REQUESTS (user, body) pairs: several models, random delays, some faults."""
    plan = []
    for number in range(REQUESTS):
        delay = f"[stub:delay={rng.uniform(0.02, 0.3):.2f}]"
        roll = rng.random()
        if roll < 0.45:
            body = {"model": "dall-e-3", "prompt": f"fox {number} {delay}"}
        elif roll < 0.70:
            fewer = " [stub:fewer]" if rng.random() < 0.3 else ""
            body = {"model": "dall-e-2", "n": rng.randint(1, 3), "size": "256x256",
                    "prompt": f"owl {number} {delay}{fewer}"}
        elif roll < 0.85:
            body = {"model": "gpt-image-1", "quality": "low", "prompt": f"cat {number} {delay}"}  # billed by tokens
        else:
            body = {"model": "dall-e-3", "prompt": f"bat {number} {delay} [stub:status=503]"}
        plan.append((rng.choice(USERS), body))
    return plan


def complete_records(path):
    """Return the records of the ledger's complete lines (writers are appending meanwhile)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def worker_pid(record):
    return int(record["worker"].split(":")[1])


class Killer(threading.Thread):
    """SIGKILL a worker every few hundred milliseconds, preferring one with a reservation open."""

    def __init__(self, gateway, rng):
        super().__init__(daemon=True)
        self.gateway = gateway
        self.rng = rng
        self.killed = []
        self.stop = threading.Event()

    def victim(self):
        workers = set(live_workers(self.gateway))
        gateway = self.gateway
        records = complete_records(gateway.ledger_path) if gateway.database is None else gateway.ledger()
        settled = {r["requestId"] for r in records if r["type"] in ("charge", "reservation_expired")}
        busy = sorted({worker_pid(r) for r in records if r["type"] == "reservation" and r["requestId"] not in settled}
                      & workers)
        candidates = busy or sorted(workers)
        return self.rng.choice(candidates) if candidates else None

    def run(self):
        while len(self.killed) < KILLS and not self.stop.wait(self.rng.uniform(0.1, 0.3)):
            pid = self.victim()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)


def send(gateway, user, body):
    """Return (status, request id, body), or (None, None, the error's name) when a kill cut the answer short."""
    try:
        response = gateway.generate(user, timeout=10, **body)
        return response.status_code, response.headers.get("X-Request-Id"), response.json()
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, ValueError) as error:
        return None, None, type(error).__name__


def wait_for(condition, what, seconds=15):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_workers_killed_during_a_load_lose_no_charge(start_gateway, worker_class, store):
    rng = random.Random(20261126)
    expiry = EXPIRY_AFTER_LEASE if store == "postgres" else SHORT_EXPIRY
    gateway = start_gateway({user: {} for user in USERS}, workers=WORKERS, extra_env=expiry)
    killer = Killer(gateway, random.Random(rng.random()))

    killer.start()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        outcomes = list(pool.map(lambda job: send(gateway, *job), request_plan(rng)))
    killer.stop.set()
    killer.join(5)

    assert len(killer.killed) == KILLS
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in killer.killed), "the killed workers' exit")
    wait_for(lambda: len(live_workers(gateway)) == WORKERS, "gunicorn's replacement workers")
    # Past every reservation's expiry, the next request settles whatever the dead workers left open.
    last_expiry = max(parse_ts(r["expiresAt"]) for r in gateway.records("reservation"))
    wait_for(lambda: datetime.now(timezone.utc) > last_expiry, "the last reservation's expiry")
    final = gateway.generate("alice")
    assert final.status_code == 200, final.text
    outcomes.append((200, final.headers["X-Request-Id"], final.json()))

    records = gateway.ledger()  # fails on a torn or unparsable line
    statuses = Counter(status for status, _, _ in outcomes)
    assert set(statuses) <= {200, 502, None}, statuses
    assert statuses[None] >= 1  # the kills really cut requests short

    reservations = {r["requestId"]: r for r in records if r["type"] == "reservation"}
    charges = Counter(r["requestId"] for r in records if r["type"] == "charge")
    expiries = [r for r in records if r["type"] == "reservation_expired"]
    assert len(reservations) == len(gateway.records("reservation"))  # one reservation per request id
    assert max(charges.values()) == 1
    assert Counter(r["requestId"] for r in expiries).most_common(1)[0][1] == 1
    settled = set(charges) | {r["requestId"] for r in expiries}
    assert settled == set(reservations)  # none outlived its expiry; nothing settled without a reservation

    charge_by_id = {r["requestId"]: r for r in records if r["type"] == "charge"}
    for status, request_id, body in outcomes:
        if status == 200:
            charge = charge_by_id[request_id]
            assert (charge["status"], charge["httpStatus"]) == ("succeeded", 200)
            assert charge["cost"] > 0 and charge["cost"] == body["_meta"]["cost"]["actual"]
            assert charge["imagesReturned"] == len(body["data"])
        elif status == 502:
            assert body["code"] == "LLM_PROVIDER_ERROR" and body["requestId"] == request_id
            assert (charge_by_id[request_id]["status"], charge_by_id[request_id]["cost"]) == ("provider_error", 0.0)

    died = [r for r in expiries if r["reason"] == "worker_died"]
    assert died, "no reservation of a killed worker was found open"
    for expiry in expiries:
        reservation = reservations[expiry["requestId"]]
        assert expiry["worker"] == reservation["worker"]
        assert expiry["cost"] == reservation["amount"]
        if expiry["reason"] == "worker_died":
            assert worker_pid(expiry) in killer.killed

    for user in USERS:
        usage = gateway.usage(user)
        period = usage["daily"]["period"]
        cost = {r["requestId"]: r["cost"] for r in expiries}
        cost.update({r["requestId"]: r["cost"] for r in records if r["type"] == "charge"})  # a charge replaces
        mine = [request_id for request_id, r in reservations.items()
                if r["keyId"] == f"key_{user}" and r["ts"].startswith(period)]
        assert micros(usage["daily"]["spent"]) == sum(micros(cost[request_id]) for request_id in mine), user
        assert usage["daily"]["requests"] == len(mine)
        assert (usage["daily"]["reserved"], usage["inFlight"]) == (0, 0)
