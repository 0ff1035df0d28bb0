"""Disk faults: a ledger that cannot be written refuses requests before the provider is called.

The tests run as root (here and in CI), which ``chmod`` does not stop, so the faults are
simulated. In-process, through the Flask test client: the ledger's own system calls fail as
on a read-only or full disk (EROFS, ENOSPC, a short write, fdatasync or flock failing, the
file unreadable), aimed at the ledger's descriptor only. In real processes: gunicorn with a
file size limit (RLIMIT_FSIZE) just above the ledger's size, a disk that is full for it.

Each case checks that the client gets LEDGER_UNAVAILABLE, that no provider call happens
without a reservation on disk, that the ledger keeps only whole lines, and that once the disk
recovers the spend the gateway reports is what the ledger says.
"""

import builtins
import errno
import fcntl
import json
import os
import threading
import time
from datetime import datetime
from datetime import timezone

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import ledger_lines
from conftest import openai_image_response

from faults.conftest import live_workers
from faults.conftest import set_file_size_limit
from ziri_images.ledger.money import parse_ts

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a harbour at night"}
PRICE = 0.04
MICROS = 1_000_000


def micros(amount):
    return round(amount * MICROS)


def rederived_spend(records, key_id):
    """Return the key's spend in micros from ledger records: each request's charge, else its expiry."""
    reservations, costs = {}, {}
    for record in records:
        request_id = record.get("requestId")
        if record["type"] == "reservation":
            reservations[request_id] = record
        elif record["type"] == "charge":
            costs[request_id] = record["cost"]
        elif record["type"] == "reservation_expired":
            costs.setdefault(request_id, record["cost"])
    return sum(micros(cost) for request_id, cost in costs.items() if reservations[request_id]["keyId"] == key_id)


def open_reservations(records):
    settled = {r["requestId"] for r in records if r["type"] in ("charge", "reservation_expired")}
    return [r for r in records if r["type"] == "reservation" and r["requestId"] not in settled]


class LedgerFault:
    """Make one system call fail on the ledger's file while ``active``, as a bad disk would."""

    def __init__(self, monkeypatch, ledger_path):
        self.ledger_path = str(ledger_path)
        self.monkeypatch = monkeypatch
        self.active = False
        self.calls = 0  # calls of the failing function on the ledger, failed or not

    def is_ledger(self, fd):
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == self.ledger_path
        except OSError:
            return False

    def fail(self, module, name, error_number, when=lambda *args: True):
        real = getattr(module, name)

        def replacement(fd, *args):
            if self.is_ledger(fd):
                self.calls += 1
                if self.active and when(*args):
                    raise OSError(error_number, os.strerror(error_number))
            return real(fd, *args)

        self.monkeypatch.setattr(module, name, replacement)

    def write_half(self):
        real = os.write

        def replacement(fd, data):
            if self.active and self.is_ledger(fd):
                return real(fd, data[: len(data) // 2])  # a real short write, as when the disk fills mid-line
            return real(fd, data)

        self.monkeypatch.setattr(os, "write", replacement)

    def fail_reading(self, error_number):
        real = builtins.open

        def replacement(path, *args, **kwargs):
            if self.active and str(path) == self.ledger_path:
                raise OSError(error_number, os.strerror(error_number))
            return real(path, *args, **kwargs)

        self.monkeypatch.setattr("ziri_images.ledger.file.jsonl.open", replacement, raising=False)
        # A worker reads what others appended through the descriptor it appends with.
        self.fail(os, "pread", error_number)


FAULTS = [
    pytest.param(lambda fault: fault.fail(os, "write", errno.EROFS), "Read-only file system", id="read-only"),
    pytest.param(lambda fault: fault.fail(os, "write", errno.ENOSPC), "No space left on device", id="disk-full"),
    pytest.param(LedgerFault.write_half, "short write (disk full?)", id="short-write"),
    pytest.param(lambda fault: fault.fail(fcntl, "flock", errno.ENOLCK, when=lambda op: op & fcntl.LOCK_EX),
                 "No locks available", id="lock-fails"),
    pytest.param(lambda fault: fault.fail_reading(errno.EIO), "Input/output error", id="read-fails"),
]


@pytest.fixture
def disk(monkeypatch, ledger_path):
    return LedgerFault(monkeypatch, ledger_path)


@pytest.fixture
def durable_client(make_app):
    app = make_app(LEDGER_DURABLE=True)  # fdatasync every append, as in production
    return app, app.test_client()


def post(client):
    return client.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY})


def spent(client):
    return micros(client.get("/api/me/usage", headers={"X-API-Key": USER_KEY}).get_json()["daily"]["spent"])


def assert_ledger_unavailable(response, reason):
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == "LEDGER_UNAVAILABLE"
    assert body["error"] == f"Cost ledger is not writable: {reason}"
    assert body["requestId"] == response.headers["X-Request-Id"]
    # Either the provider was never called, or it was and a retry could bill twice.
    assert response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize(("install", "reason"), FAULTS)
def test_ledger_fault_refuses_the_request_before_the_provider_is_called(durable_client, disk, responses_mock,
                                                                        ledger_path, install, reason):
    app, client = durable_client
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    assert post(client).status_code == 200
    before = ledger_path.read_bytes()
    install(disk)

    disk.active = True
    response = post(client)
    disk.active = False

    assert_ledger_unavailable(response, reason)
    assert len(responses_mock.calls) == 1  # only the request before the fault
    assert ledger_path.read_bytes() == before  # nothing written, or a partial line cut back
    assert post(client).status_code == 200  # the disk is back: no restart needed
    assert len(responses_mock.calls) == 2
    records = ledger_lines(app)
    assert [r["type"] for r in records] == ["reservation", "charge"] * 2
    assert spent(client) == rederived_spend(records, "key_user") == 2 * micros(PRICE)


@pytest.mark.parametrize("full_until_expired", [
    pytest.param(False, id="disk-back-before-expiry"),
    pytest.param(True, id="disk-still-full-at-expiry"),
])
def test_disk_full_after_the_provider_answered_is_charged_from_the_reservation(durable_client, disk, responses_mock,
                                                                               clock, ledger_path, full_until_expired):
    """The charge cannot be written: the reservation on disk is what records the generation."""
    app, client = durable_client
    disk.fail(os, "write", errno.ENOSPC)

    def fill_the_disk_and_answer(request):
        if len(responses_mock.calls) == 0:
            disk.active = True  # the disk fills while the provider generates the first request's image
        return 200, {}, '{"created": 1, "data": [{"url": "https://images.openai.test/a.png"}]}'

    responses_mock.add_callback("POST", GENERATIONS_URL, callback=fill_the_disk_and_answer)

    response = post(client)

    assert_ledger_unavailable(response, "No space left on device")
    [reservation] = ledger_lines(app)
    assert (reservation["type"], reservation["amount"]) == ("reservation", PRICE)
    assert reservation["requestId"] == response.get_json()["requestId"]
    clock.now = parse_ts(reservation["expiresAt"])
    if full_until_expired:
        # The next request would settle the expired reservation, but that write fails too.
        assert_ledger_unavailable(post(client), "No space left on device")
        assert len(responses_mock.calls) == 1

    disk.active = False
    assert post(client).status_code == 200

    records = ledger_lines(app)
    expired = [r for r in records if r["type"] == "reservation_expired"]
    assert [(r["requestId"], r["cost"], r["reason"]) for r in expired] == [
        (reservation["requestId"], PRICE, "expired")]
    assert open_reservations(records) == []
    assert len(responses_mock.calls) == 2
    assert spent(client) == rederived_spend(records, "key_user") == 2 * micros(PRICE)


def test_a_charge_whose_fsync_failed_says_what_its_client_got_then_requests_are_refused_before_the_provider(
        durable_client, disk, responses_mock, ledger_path):
    """A disk that fails only at fsync (NFS, thin volumes) shows at the first synced write.

    Reservations are written without an fsync (the charge's fsync flushes them), so the first
    request reaches the provider and fails at its charge's fsync. That fsync ran once the ledger
    was released, so the charge cannot be cut back: it stays, read and counted by every worker,
    charged as the provider billed, and the client gets the answer it records (refusing it
    would not un-charge it). After that failure reservations are synced too, under the lock, so
    the next requests are refused before the provider is called until a sync succeeds again.
    """
    app, client = durable_client
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    disk.fail(os, "fdatasync", errno.EIO)
    disk.active = True

    first = post(client)

    assert first.status_code == 200, first.get_data(as_text=True)
    assert len(first.get_json()["data"]) == 1
    assert len(responses_mock.calls) == 1
    records = ledger_lines(app)
    request_id = first.get_json()["_meta"]["requestId"]
    assert [(r["type"], r["requestId"]) for r in records] == [("reservation", request_id), ("charge", request_id)]
    assert (records[1]["status"], records[1]["httpStatus"], records[1]["cost"]) == ("succeeded", 200, PRICE)
    before = ledger_path.read_bytes()
    for _ in range(3):
        assert_ledger_unavailable(post(client), "Input/output error")
    assert len(responses_mock.calls) == 1
    assert ledger_path.read_bytes() == before

    disk.active = False
    syncs = []
    for _ in range(2):
        disk.calls = 0
        assert post(client).status_code == 200
        syncs.append(disk.calls)
    assert syncs == [2, 1]  # the reservation synced once more, then only the charge again

    records = ledger_lines(app)
    assert [r["type"] for r in records] == ["reservation", "charge"] * 3
    assert open_reservations(records) == []
    assert len(responses_mock.calls) == 3
    assert spent(client) == rederived_spend(records, "key_user") == 3 * micros(PRICE)


# --- real processes -------------------------------------------------------------------------------

# A reservation expires 3 s after it is made: connect 1 + read 1.5 + grace 0.5.
SHORT_EXPIRY = {"ZIRI_UPSTREAM_CONNECT_TIMEOUT": 1, "ZIRI_UPSTREAM_READ_TIMEOUT": 1.5,
                "ZIRI_RESERVATION_GRACE_SECONDS": 0.5}
OLD_LINE = '{"ts":"2020-01-01T00:00:00.000000Z","type":"note","pad":"' + "x" * 960 + '"}\n'


def complete_records(path):
    """Return the records of the ledger's complete lines (a writer may be mid-append)."""
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def wait_for(condition, what, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.real_http
def test_gunicorn_on_a_full_disk_refuses_before_the_provider_and_loses_no_generation(start_gateway, stub, tmp_path):
    ledger_path = tmp_path / "var" / "ledger.jsonl"
    ledger_path.parent.mkdir(parents=True)
    # Last year's records fill a megabyte: the limit below sits above every log file the test writes.
    ledger_path.write_text(OLD_LINE * 1024)
    gateway = start_gateway({"alice": {}}, workers=2, extra_env=SHORT_EXPIRY)
    processes = [gateway.process.pid, *live_workers(gateway)]
    size = ledger_path.stat().st_size

    set_file_size_limit(processes, size + 64)  # room for a tenth of a record: a real short write
    refused = gateway.generate("alice")

    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "LEDGER_UNAVAILABLE"
    assert refused.json()["error"] == "Cost ledger is not writable: short write (disk full?)"
    assert stub.stats()["requests"] == 0
    assert ledger_path.stat().st_size == size  # the partial line was cut back

    set_file_size_limit(processes, None)
    assert gateway.generate("alice").status_code == 200
    assert stub.stats()["requests"] == 1

    # The disk fills while the provider is generating: the charge cannot be written.
    outcome = {}
    slow = threading.Thread(target=lambda: outcome.update(response=gateway.generate(
        "alice", prompt="a slow harbour [stub:delay=0.5]")))
    slow.start()
    wait_for(lambda: len(open_reservations(complete_records(ledger_path))) == 1, "the slow request's reservation")
    set_file_size_limit(processes, ledger_path.stat().st_size)
    slow.join(10)
    set_file_size_limit(processes, None)

    assert outcome["response"].status_code == 503, outcome["response"].text
    assert outcome["response"].json()["error"] == "Cost ledger is not writable: File too large"
    assert stub.stats()["requests"] == 2
    [stranded] = open_reservations(gateway.ledger())
    expires_at = parse_ts(stranded["expiresAt"])
    wait_for(lambda: datetime.now(timezone.utc) > expires_at, "the reservation's expiry")
    assert gateway.generate("alice").status_code == 200

    records = gateway.ledger()
    assert [(r["requestId"], r["cost"], r["reason"]) for r in records if r["type"] == "reservation_expired"] == [
        (stranded["requestId"], PRICE, "expired")]
    assert open_reservations(records) == []
    # Every generation the stub made has a reservation on disk, and is charged.
    assert stub.stats()["requests"] == len(gateway.records("reservation")) == 3
    usage = gateway.usage("alice")["daily"]
    assert micros(usage["spent"]) == rederived_spend(records, "key_alice") == 3 * micros(PRICE)
    assert usage["reserved"] == 0
