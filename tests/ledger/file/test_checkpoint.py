"""Checkpoints of the file store's state (ledger/file/checkpoint.py): used only when they match the ledger.

Each test builds a ledger, lets a store start (which writes a checkpoint), changes the ledger or
the checkpoint, and starts a second store: it must load the checkpoint when it is sound, and
otherwise replay the whole ledger to exactly the state a store without any checkpoint reaches.
"""

import json
import os
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from conftest import append_lines
from conftest import charge_record
from conftest import reservation_record

from ziri_images.ledger.file import checkpoint
from ziri_images.ledger.file import store as file_store
from ziri_images.ledger.file.jsonl import Ledger
from ziri_images.ledger.file.store import FileStore

NOW = datetime(2026, 11, 15, 12, 0, 0, tzinfo=timezone.utc)
WORKER = "elsewhere:1:feedf00d"  # another host's worker: only its expiry time frees it


def history(count, start=0):
    """Return ``count`` charges for alice, then one reservation still open."""
    at = NOW - timedelta(hours=1)
    lines = [charge_record("alice", 0.04, at, f"req_{start + number}") for number in range(count)]
    return lines + [reservation_record("alice", 0.08, at, WORKER, f"req_open_{start}")]


def started(ledger_path):
    """Return (store, start-up summary) for a new store on ``ledger_path``."""
    store = FileStore(Ledger(str(ledger_path)), lambda: NOW, reservation_ttl=245)
    return store, store.start()


def comparable(state):
    """Return ``state`` as a value equal for equal states, whatever order its tables were built in."""
    return {name: sorted(json.dumps(item) for item in (value.items() if isinstance(value, dict) else value))
            for name, value in state.snapshot().items() if name != "offset"} | {"offset": state.offset}


def replayed_from_scratch(ledger_path):
    os.unlink(checkpoint.checkpoint_path(str(ledger_path)))
    store, summary = started(ledger_path)
    assert "replayed:" in summary
    return comparable(store.state)


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.jsonl"
    append_lines(path, *history(50))
    started(path)  # writes the checkpoint
    assert os.path.exists(checkpoint.checkpoint_path(str(path)))
    return path


def test_a_sound_checkpoint_is_loaded_and_the_records_after_it_replayed(ledger):
    covered = os.path.getsize(ledger)
    append_lines(ledger, *history(7, start=100))

    store, summary = started(ledger)

    assert summary.endswith(f"checkpoint to byte {covered} loaded, 8 records after it replayed")
    assert store.state.keys.spent[("key_alice", "2026-11-15")] == 57 * 40_000
    assert sorted(store.state.open) == ["req_open_0", "req_open_100"]
    assert comparable(store.state) == replayed_from_scratch(ledger)


def test_start_up_rewrites_the_checkpoint_to_cover_the_whole_ledger(ledger):
    append_lines(ledger, *history(3, start=100))
    started(ledger)

    _, summary = started(ledger)

    assert summary.endswith(f"checkpoint to byte {os.path.getsize(ledger)} loaded, 0 records after it replayed")


def rewrite_in_place(path):
    """Same file, same length, other records: one charge's cost changes (0.04 -> 0.05)."""
    data = path.read_bytes()
    with open(path, "r+b") as file:
        file.write(data.replace(b'"cost":0.04', b'"cost":0.05', 1))


def replace_file(path):
    data = path.read_bytes()
    os.unlink(path)
    path.write_bytes(data)  # a new inode (a restored backup, a copy from another host)


def truncate(path):
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-3]))


def corrupt_body(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 1
    path.write_bytes(bytes(data))


def other_version(path):
    path.write_bytes(path.read_bytes().replace(checkpoint.FORMAT, b"ziri-images checkpoint 999\n", 1))


def cut_short(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize("change, on", [
    pytest.param(rewrite_in_place, "ledger", id="ledger-rewritten-in-place"),
    pytest.param(replace_file, "ledger", id="ledger-replaced-by-a-copy"),
    pytest.param(truncate, "ledger", id="ledger-shorter"),
    pytest.param(corrupt_body, "checkpoint", id="checksum-mismatch"),
    pytest.param(other_version, "checkpoint", id="other-format-version"),
    pytest.param(cut_short, "checkpoint", id="checkpoint-cut-short"),
    pytest.param(lambda path: path.write_bytes(b""), "checkpoint", id="checkpoint-empty"),
])
def test_a_stale_or_corrupt_checkpoint_means_a_full_replay(ledger, change, on, caplog):
    change(ledger if on == "ledger" else ledger.with_name(ledger.name + checkpoint.SUFFIX))

    store, summary = started(ledger)

    assert "replayed:" in summary
    assert "replaying the whole ledger" in caplog.text
    assert comparable(store.state) == replayed_from_scratch(ledger)


def test_no_checkpoint_means_a_full_replay(tmp_path):
    path = tmp_path / "ledger.jsonl"
    append_lines(path, *history(5))

    store, summary = started(path)

    assert summary.endswith("replayed: 6 records")
    assert os.path.exists(checkpoint.checkpoint_path(str(path)))


def test_an_unwritable_directory_only_skips_the_checkpoint(ledger, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", refuse)
    append_lines(ledger, *history(1, start=100))

    store, summary = started(ledger)

    assert "2 records after it replayed" in summary
    assert "not written: Permission denied" in caplog.text


def test_a_running_store_checkpoints_as_the_ledger_grows(ledger, monkeypatch):
    store, _ = started(ledger)
    monkeypatch.setattr(file_store, "CHECKPOINT_EVERY_BYTES", 1)

    store.settle(store.state.open["req_open_0"], {"requestId": "req_open_0", "keyId": "key_alice",
                                                   "status": "succeeded", "cost": 0.08})

    _, summary = started(ledger)
    assert summary.endswith(f"checkpoint to byte {os.path.getsize(ledger)} loaded, 0 records after it replayed")
