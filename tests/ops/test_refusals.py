"""Refusals on record: counted per day, key and code, flushed as aggregated rows, reported, bounded."""

import json
from datetime import timedelta

import pytest
from conftest import DISABLED_KEY
from conftest import ENDPOINT
from conftest import USER_KEY
from conftest import ledger_lines

from ziri_images.cli import entry as cli
from ziri_images.ledger.file.refusals import RefusalFile
from ziri_images.ops.refusals import RefusalCounter
from ziri_images.ops.refusals import refusal_counts

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a fox", "size": "1024x1024", "quality": "standard"}


class ListSink:
    def __init__(self, fail=False):
        self.rows = []
        self.fail = fail

    def add_refusals(self, rows):
        if self.fail:
            raise OSError("disk full")
        self.rows.extend(rows)


def refusals_file(ledger_path):
    return ledger_path.parent / "refusals.jsonl"


@pytest.mark.stores()
def test_a_flood_of_refusals_writes_one_row_per_group_and_nothing_to_the_ledger(app, client, add_key):
    denied = add_key(key_id="key_denied", allowed_models=["gpt-image-1"])
    for _ in range(50):
        assert client.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied}).status_code == 403
    client.post(ENDPOINT, json=BODY, headers={"X-API-Key": "ziri-nobody-" + "0" * 32})
    counter = app.extensions["ziri_images_refusals"]
    assert counter.flush() == 2
    for _ in range(3):
        client.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied})
    assert counter.flush() == 1
    store = app.extensions["ziri_images"].store
    assert refusal_counts(store.refusal_record().refusal_rows()) == {
        ("2026-11-26", "-", "API_KEY_INVALID"): 1,
        ("2026-11-26", "key_denied", "AUTHORIZATION_DENIED"): 53,
    }
    assert list(store.records()) == []  # refusals never touch the cost ledger


def test_the_file_store_keeps_refusals_beside_its_ledger(app, client, add_key, ledger_path):
    denied = add_key(key_id="key_denied", allowed_models=["gpt-image-1"])
    for _ in range(5):
        client.post(ENDPOINT, json=BODY, headers={"X-API-Key": denied})
    app.extensions["ziri_images_refusals"].flush()
    assert [json.loads(line) for line in refusals_file(ledger_path).read_text().splitlines()] == [
        {"day": "2026-11-26", "keyId": "key_denied", "code": "AUTHORIZATION_DENIED", "count": 5}]
    assert ledger_lines(app) == []


def test_admitted_requests_and_bad_input_are_not_refusals(app, client, ledger_path):
    assert client.post(ENDPOINT, json={**BODY, "n": "x"}, headers={"X-API-Key": USER_KEY}).status_code == 400
    assert app.extensions["ziri_images_refusals"].flush() == 0
    assert not refusals_file(ledger_path).exists()


def test_groups_beyond_the_bound_count_as_other(clock):
    sink = ListSink()
    counter = RefusalCounter(sink, clock, max_groups=2)
    for number in range(5):
        counter.count(f"key_{number}", "RATE_LIMIT_EXCEEDED")
    counter.flush()
    assert [(row["keyId"], row["count"]) for row in sink.rows] == [
        ("(other)", 3), ("key_0", 1), ("key_1", 1)]


def test_counts_survive_a_failed_flush(clock):
    sink = ListSink(fail=True)
    counter = RefusalCounter(sink, clock)
    counter.count("key_a", "QUEUE_FULL")
    assert counter.flush() == 0
    sink.fail = False
    counter.count("key_a", "QUEUE_FULL")
    assert counter.flush() == 1 and sink.rows[0]["count"] == 2


def test_rows_of_several_flushes_and_processes_add_up(tmp_path):
    record = RefusalFile(tmp_path / "refusals.jsonl")
    record.add_refusals([{"day": "2026-11-26", "keyId": "k", "code": "QUEUE_FULL", "count": 2}])
    record.add_refusals([{"day": "2026-11-26", "keyId": "k", "code": "QUEUE_FULL", "count": 3},
                         {"day": "2026-11-27", "keyId": "k", "code": "QUEUE_FULL", "count": 1}])
    with (tmp_path / "refusals.jsonl").open("a") as file:
        file.write('{"day": "2026-11-2')  # a torn last line
    assert refusal_counts(record.refusal_rows()) == {("2026-11-26", "k", "QUEUE_FULL"): 5,
                                                     ("2026-11-27", "k", "QUEUE_FULL"): 1}
    assert refusal_counts(record.refusal_rows("2026-11-27")) == {("2026-11-27", "k", "QUEUE_FULL"): 1}


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_report_refusals_view(capsys, tmp_path, fmt):
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    RefusalFile.beside(ledger).add_refusals([
        {"day": "2026-11-25", "keyId": "key_a", "code": "SPEND_LIMIT_EXCEEDED", "count": 4},
        {"day": "2026-11-26", "keyId": "key_a", "code": "SPEND_LIMIT_EXCEEDED", "count": 1},
    ])
    code = cli.main(["report", "--view", "refusals", "--since", "2026-11-26", "--ledger", str(ledger),
                     "--format", fmt])
    out = capsys.readouterr().out
    assert code == 0
    if fmt == "json":
        assert json.loads(out)["rows"] == [{"day": "2026-11-26", "key": "key_a", "code": "SPEND_LIMIT_EXCEEDED",
                                            "refused": 1}]
    else:
        assert "SPEND_LIMIT_EXCEEDED" in out and "2026-11-25" not in out


def test_a_dropped_counter_stops_its_thread(clock):
    import gc
    import threading
    import weakref

    before = set(threading.enumerate())
    counter = RefusalCounter(ListSink(), clock, flush_seconds=0.01)
    counter.count("key_a", "QUEUE_FULL")
    (thread,) = [thread for thread in set(threading.enumerate()) - before if thread.name == "ziri-refusals"]
    reference = weakref.ref(counter)
    del counter
    gc.collect()
    assert reference() is None
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.stores()
def test_a_known_keys_refusals_are_counted_under_its_id(app, client, add_key, clock):
    expired = add_key(key_id="key_expired", expires_at=clock() - timedelta(days=1))
    client.post(ENDPOINT, json=BODY, headers={"X-API-Key": DISABLED_KEY})
    client.post(ENDPOINT, json=BODY, headers={"X-API-Key": expired})
    client.post(ENDPOINT, json=BODY, headers={"X-API-Key": "ziri-nobody-" + "0" * 32})
    app.extensions["ziri_images_refusals"].flush()
    store = app.extensions["ziri_images"].store
    assert refusal_counts(store.refusal_record().refusal_rows()) == {
        ("2026-11-26", "key_disabled", "API_KEY_REVOKED_OR_DISABLED"): 1,
        ("2026-11-26", "key_expired", "API_KEY_EXPIRED"): 1,
        ("2026-11-26", "-", "API_KEY_INVALID"): 1,
    }
