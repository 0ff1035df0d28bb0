"""The JSONL ledger: whole lines or nothing, one writer at a time, readers follow offsets.

The ledger moves lines; what a line means (and which lines are skipped) is tested in test_records.py.
"""

import errno
import json
import os
import subprocess
import sys
import threading

import pytest
import responses
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response

from ziri_images.cli import entry as cli
from ziri_images.errors import ApiError
from ziri_images.errors import ConfigError
from ziri_images.ledger.file import jsonl as ledger_module
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.jsonl import encode_record


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "var" / "ledger.jsonl")


def strict_loads(line):
    """Parse ``line`` as RFC 8259 JSON: NaN and Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(line, parse_constant=refuse)


def decoded(lines):
    return [json.loads(line) for line in lines]


def read_records(ledger, offset):
    """Return (decoded records, new offset) of ``ledger.read_from(offset)``."""
    lines, end = ledger.read_from(offset)
    return decoded(lines), end


def append(ledger, *records):
    with ledger.transaction() as transaction:
        for record in records:
            transaction.append(record)
        return transaction.commit()


def test_encode_record_is_one_compact_line():
    line = encode_record({"type": "charge", "prompt": "café\nmenu", "cost": 0.04})

    assert line == '{"type":"charge","prompt":"café\\nmenu","cost":0.04}\n'.encode("utf-8")
    assert line.count(b"\n") == 1


@pytest.mark.parametrize("durable", [pytest.param(True, id="durable"), pytest.param(False, id="not-durable")])
def test_records_round_trip(path, durable):
    ledger = Ledger(path, durable=durable)
    first = {"type": "reservation", "requestId": "req_1", "amount": 0.04}
    second = {"type": "charge", "requestId": "req_1", "cost": 0.04, "note": "ünïcode"}

    end = append(ledger, first, second)

    assert end == os.path.getsize(path)
    assert read_records(ledger, 0) == ([first, second], end)
    assert read_records(ledger, end) == ([], end)
    third = {"type": "charge", "requestId": "req_2", "cost": 0}
    new_end = append(ledger, third)
    assert read_records(ledger, end) == ([third], new_end)


def test_commit_with_nothing_queued_writes_nothing(path):
    ledger = Ledger(path)

    assert append(ledger) is None
    assert os.path.getsize(path) == 0


def test_read_from_leaves_a_partial_line_for_later(path):
    ledger = Ledger(path)
    end = append(ledger, {"n": 1})
    with open(path, "ab") as file:
        file.write(b'{"n": 2, "half')

    assert read_records(ledger, 0) == ([{"n": 1}], end)
    assert read_records(ledger, end) == ([], end)

    with open(path, "ab") as file:
        file.write(b'": true}\n')
    assert read_records(ledger, end) == ([{"n": 2, "half": True}], os.path.getsize(path))


def test_blank_lines_are_left_out_and_the_others_handed_on_as_they_are(path):
    ledger = Ledger(path)
    with open(path, "wb") as file:
        file.write(b'{"n": 1}\nnot json\n\n  \n{"n": 2}\n')

    assert ledger.read_from(0) == ([b'{"n": 1}', b"not json", b'{"n": 2}'], os.path.getsize(path))
    assert list(ledger.scan(0)) == [b'{"n": 1}', b"not json", b'{"n": 2}']


def half_write(ledger):
    real_write = os.write

    def write(fd, data):
        if fd == ledger._fd:
            return real_write(fd, data[: len(data) // 2])
        return real_write(fd, data)

    return write


def disk_full(fd, data):
    raise OSError(errno.ENOSPC, "No space left on device")


def fsync_fails(fd):
    raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize(
    ("function", "make_replacement", "reason"),
    [
        pytest.param("write", half_write, "short write", id="short-write"),
        pytest.param("write", lambda ledger: disk_full, "No space left on device", id="disk-full"),
        pytest.param("fdatasync", lambda ledger: fsync_fails, "Input/output error", id="fsync-fails-again"),
    ],
)
def test_failed_commit_leaves_the_file_as_it_was(path, monkeypatch, function, make_replacement, reason):
    ledger = Ledger(path, durable=True)
    append(ledger, {"n": 1})
    if function == "fdatasync":
        ledger.failing = True  # a first failed fsync (below) made the ledger sync under its lock
    with open(path, "rb") as file:
        before = file.read()
    monkeypatch.setattr(os, function, make_replacement(ledger))

    with pytest.raises(ApiError) as raised:
        append(ledger, {"n": 2, "padding": "x" * 4000}, {"n": 3})

    monkeypatch.undo()
    assert (raised.value.status, raised.value.code) == (503, "LEDGER_UNAVAILABLE")
    assert reason in raised.value.message
    with open(path, "rb") as file:
        assert file.read() == before
    # The ledger is usable again once the disk is.
    append(ledger, {"n": 4})
    assert read_records(ledger, 0)[0] == [{"n": 1}, {"n": 4}]


def test_a_first_failed_fsync_refuses_the_commit_keeps_its_records_and_syncs_under_the_lock_from_then_on(
        path, monkeypatch):
    ledger = Ledger(path, durable=True)
    append(ledger, {"n": 1})
    syncs = []

    def fsync(fd):
        syncs.append(ledger._thread_lock.locked())
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", fsync)
    with pytest.raises(ApiError) as raised:
        append(ledger, {"n": 2})
    # Made once the ledger was released: others appended meanwhile, so the records cannot be cut back.
    assert (raised.value.code, syncs, ledger.failing) == ("LEDGER_UNAVAILABLE", [False], True)
    assert read_records(ledger, 0)[0] == [{"n": 1}, {"n": 2}]

    with pytest.raises(ApiError):
        append(ledger, {"n": 3})
    assert syncs == [False, True]  # failing: synced under the lock, and cut back
    assert read_records(ledger, 0)[0] == [{"n": 1}, {"n": 2}]

    monkeypatch.undo()
    append(ledger, {"n": 4})
    assert not ledger.failing
    assert read_records(ledger, 0)[0] == [{"n": 1}, {"n": 2}, {"n": 4}]


def test_the_fsync_waits_for_no_lock_and_the_transaction_ends_after_it(path, monkeypatch):
    ledger = Ledger(path, durable=True)
    other = Ledger(path, durable=False)  # another worker's descriptor on the same file
    real = os.fdatasync
    seen = {}

    def fsync(fd):
        # Another worker appends while this one's fsync runs: the file is not held.
        seen["appended"] = append(other, {"n": "during"}) is not None
        real(fd)
        seen["synced"] = True

    monkeypatch.setattr(os, "fdatasync", fsync)
    with ledger.transaction() as transaction:
        transaction.append({"n": 1})
        transaction.commit()
        assert "synced" not in seen
    assert seen == {"appended": True, "synced": True}


def test_concurrent_appends_from_threads_and_descriptors(path):
    # Two Ledger objects on one file behave like two workers: they share only the flock.
    ledgers = [Ledger(path, durable=False), Ledger(path, durable=False)]

    def writer(thread):
        ledger = ledgers[thread % 2]
        for index in range(50):
            append(ledger, {"thread": thread, "index": index, "pad": "x" * (thread * 37)})

    threads = [threading.Thread(target=writer, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with open(path, "rb") as file:
        lines = file.read().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 400
    assert {(r["thread"], r["index"]) for r in records} == {(t, i) for t in range(8) for i in range(50)}
    for thread in range(8):
        assert [r["index"] for r in records if r["thread"] == thread] == list(range(50))


@pytest.mark.parametrize("block", [pytest.param(7, id="tiny-blocks"), pytest.param(1 << 20, id="one-block")])
def test_scan_filters_lines_and_stops_at_the_last_complete_one(path, monkeypatch, block):
    monkeypatch.setattr(ledger_module, "_READ_BLOCK", block)
    ledger = Ledger(path)
    records = [{"ts": f"2026-11-{day:02d}T00:00:00Z", "day": day} for day in range(20, 30)]
    end = append(ledger, *records)
    with open(path, "ab") as file:
        file.write(b'{"ts":"2026-11-30')  # still being written by another process

    blocks = []
    scanned = list(ledger.scan(0, lambda line: line[7:17] >= b"2026-11-25", on_block=blocks.append))

    assert decoded(scanned) == records[5:]
    assert blocks[-1] == end  # the line still being written is not read past


def test_scan_from_an_offset(path):
    ledger = Ledger(path)
    middle = append(ledger, {"n": 1}, {"n": 2})
    append(ledger, {"n": 3})

    assert decoded(ledger.scan(middle)) == [{"n": 3}]


def test_mirror_to_stdout(path, capsys):
    ledger = Ledger(path, mirror_stdout=True)

    append(ledger, {"type": "charge", "cost": 0.04})

    assert capsys.readouterr().out == '{"type":"charge","cost":0.04}\n'


def test_unopenable_ledger_is_a_config_error(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    with pytest.raises(ConfigError) as raised:
        Ledger(str(blocker / "ledger.jsonl"))

    assert str(raised.value).startswith(f"ledger {blocker / 'ledger.jsonl'}: cannot open for appending")


# --- what reaches the file, and ledger export --------------------------------------------


def test_nan_and_infinity_from_the_provider_never_reach_the_ledger(app, client, responses_mock):
    # Python's json reads these words; a strict parser (jq, JavaScript, PostgreSQL's jsonb) does not.
    body = ('{"created": NaN, "data": [{"url": "https://images.openai.test/a.png"}],'
            ' "usage": {"total_tokens": Infinity, "input_tokens": -Infinity}}')
    responses_mock.add(responses.POST, GENERATIONS_URL, body=body, content_type="application/json")

    client.post(ENDPOINT, json={"provider": "openai", "model": "dall-e-3", "prompt": "a fox"},
                headers={"X-API-Key": USER_KEY})

    with open(app.config["LEDGER_PATH"], "rb") as file:
        lines = file.read().splitlines()
    assert [strict_loads(line)["type"] for line in lines] == ["reservation", "charge"]
    charge = strict_loads(lines[1])
    assert charge["usage"] == {"total_tokens": None, "input_tokens": None}


def export(capsys, *options):
    """Return (exit code, exported records, stderr) of ``ziri-images ledger export``."""
    code = cli.main(["ledger", "export", *map(str, options)])
    out, err = capsys.readouterr()
    return code, [strict_loads(line) for line in out.splitlines()], err


def test_ledger_export_writes_every_record_in_the_ledger_format(path, capsys):
    records = [{"ts": f"2026-11-0{day}T12:00:00.000000Z", "type": "charge", "requestId": f"req_{day}",
                "keyId": "key_a", "cost": 0.04} for day in (1, 2, 3)]
    ledger = Ledger(path)
    append(ledger, records[0])
    with open(path, "ab") as file:
        file.write(b"[]\n")  # not a record: not exported
    append(ledger, *records[1:])

    code, exported, err = export(capsys, "--ledger", path)
    assert (code, exported) == (0, records)
    assert "exported 3 record(s)" in err
    assert export(capsys, "--ledger", path, "--since", "2026-11-02", "--until", "2026-11-03")[1] == records[1:2]


def test_ledger_export_of_a_missing_ledger_is_an_error_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "var" / "ledger.jsonl"

    code, exported, err = export(capsys, "--ledger", missing)

    assert (code, exported) == (1, [])
    assert "No such file" in err
    assert not missing.parent.exists()


@pytest.mark.stores()
def test_store_records_are_what_the_gateway_wrote_oldest_first(app, client, clock, responses_mock):
    for _ in range(2):
        responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1))
        client.post(ENDPOINT, json={"provider": "openai", "model": "dall-e-3", "prompt": "a fox"},
                    headers={"X-API-Key": USER_KEY})
        clock.advance(60)
    store = app.extensions["ziri_images"].store

    records = list(store.records())

    assert [record["type"] for record in records] == ["reservation", "charge"] * 2
    first, second = records[:2], records[2:]
    assert [charge["reservedAt"] for charge in (first[1], second[1])] == [first[0]["ts"], second[0]["ts"]]
    assert list(store.records(since=second[0]["ts"])) == second
    assert list(store.records(until=second[0]["ts"])) == first
    assert store.import_records(records) == (0, 4)  # already there: nothing twice


# --- blocking calls and the gevent loop -------------------------------------------------------

OFF_LOOP_PROBE = """
import signal, sys, threading
signal.alarm(20)  # a loop that blocks on the flock never frees it: fail, do not hang
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.jsonl import off_loop
main = threading.get_ident()
ran_in = off_loop(threading.get_ident)
ticks = []
if sys.argv[1] == "gevent":
    # While one greenlet waits on a contended flock, the loop keeps running the others.
    import fcntl, os
    holder = os.open(sys.argv[2], os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another open file description: the ledger's flock must wait
    ledger = Ledger(sys.argv[2])
    def ticker():
        for _ in range(5):
            ticks.append(1)
            gevent.sleep(0.01)
        fcntl.flock(holder, fcntl.LOCK_UN)
    def writer():
        with ledger.transaction() as transaction:
            transaction.append({"ts": "2026-11-15T12:00:00.000000Z", "type": "charge"})
            transaction.commit()
    gevent.joinall([gevent.spawn(writer), gevent.spawn(ticker)], timeout=30)
print(ran_in != main, len(ticks))
"""


@pytest.mark.parametrize("mode, expected", [
    pytest.param("gevent", "True 5", id="gevent-patched-off-the-loop"),
    pytest.param("plain", "False 0", id="unpatched-called-directly"),
])
def test_blocking_ledger_calls_leave_the_gevent_loop_free(path, mode, expected):
    os.makedirs(os.path.dirname(path))
    open(path, "w").close()
    probe = subprocess.run([sys.executable, "-c", OFF_LOOP_PROBE, mode, path], capture_output=True, text=True,
                           timeout=60)

    assert probe.stdout.strip() == expected, probe.stderr
    if mode == "gevent":
        with open(path, "rb") as file:
            assert b'"type":"charge"' in file.read()  # the writer got the lock once it was free
