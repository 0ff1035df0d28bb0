"""report: spend and images per group from the ledger, skipping what cannot count without parsing it."""

import io
import json
import random

import pytest
import responses
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import NOT_RECORDS
from conftest import USER_KEY
from conftest import openai_image_response
from conftest import store_records

from ziri_images.cli import entry as cli
from ziri_images.dev.stub import png_bytes
from ziri_images.ledger.file.scan import build_report
from ziri_images.ledger.money import to_micros
from ziri_images.ledger.records import encode_record
from ziri_images.ledger.report import Progress


def ts(day, hour=12, minute=0, second=0):
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.000000Z"


def reservation(request_id, at, key="key_a", user="alice", model="dall-e-3", amount=0.04):
    return {"ts": at, "type": "reservation", "requestId": request_id, "provider": "openai", "model": model,
            "keyId": key, "user": user, "amount": amount, "expiresAt": at, "worker": "host:1:0badc0de"}


def charge(request_id, at, reserved_at, key="key_a", user="alice", model="dall-e-3", cost=0.04, images=1):
    return {"ts": at, "type": "charge", "requestId": request_id, "provider": "openai", "model": model,
            "user": user, "keyId": key, "status": "succeeded", "imagesReturned": images, "cost": cost,
            "reservedAt": reserved_at}


def expiry(request_id, at, reserved_at, key="key_a", cost=0.04):
    return {"ts": at, "type": "reservation_expired", "requestId": request_id, "keyId": key,
            "reservedAt": reserved_at, "cost": cost, "reason": "worker_died"}


def write_ledger(path, records, tail=b""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode_record(record) for record in records) + tail)
    return str(path)


def summary(report):
    """Return {group: (requests, images, cost, expired)} of a Report."""
    return {group: (totals.requests, totals.images, round(totals.cost, 6), totals.expired)
            for group, totals in report.rows()}


def test_charges_count_and_open_reservations_do_not(tmp_path):
    path = write_ledger(tmp_path / "ledger.jsonl", [
        reservation("r1", ts(1)), charge("r1", ts(1, second=9), ts(1), images=1),
        reservation("r2", ts(1, 13), key="key_b", user="bob", model="gpt-image-1", amount=0.5),
        charge("r2", ts(1, 13, 0, 30), ts(1, 13), key="key_b", user="bob", model="gpt-image-1", cost=0.336, images=8),
        reservation("r3", ts(2)),  # still in flight: nothing is spent yet
    ])

    report = build_report(path)

    assert summary(report) == {("key_a",): (1, 1, 0.04, 0), ("key_b",): (1, 8, 0.336, 0)}
    assert report.lines == 5
    assert report.parsed == 2  # reservations are skipped unread when grouping by key


def test_an_expiry_counts_until_a_later_charge_replaces_it(tmp_path):
    path = write_ledger(tmp_path / "ledger.jsonl", [
        reservation("r1", ts(1), model="gpt-image-1", amount=0.167),
        expiry("r1", ts(1, 12, 5), ts(1), cost=0.167),  # its worker looked dead
        reservation("r2", ts(1, 12, 1), model="dall-e-2", amount=0.02),
        expiry("r2", ts(1, 12, 6), ts(1, 12, 1), cost=0.02),
        charge("r2", ts(1, 12, 7), ts(1, 12, 1), model="dall-e-2", cost=0.02),  # it was only slow
    ])

    assert summary(build_report(path, by=("key",))) == {("key_a",): (2, 1, 0.187, 1)}
    # The expiry record names only the key: its user and model come from the reservation.
    assert summary(build_report(path, by=("user", "model"))) == {
        ("alice", "dall-e-2"): (1, 1, 0.02, 0),
        ("alice", "gpt-image-1"): (1, 0, 0.167, 1),
    }


def test_requests_count_on_the_day_they_were_admitted(tmp_path):
    path = write_ledger(tmp_path / "ledger.jsonl", [
        reservation("r1", ts(1, 23, 59, 50)),
        charge("r1", ts(2, 0, 0, 20), ts(1, 23, 59, 50)),  # settled after midnight
        reservation("r2", ts(2, 9)), charge("r2", ts(2, 9, 0, 5), ts(2, 9), cost=0.08),
    ])

    assert summary(build_report(path, by=("day",))) == {("2026-11-01",): (1, 1, 0.04, 0),
                                                        ("2026-11-02",): (1, 1, 0.08, 0)}


@pytest.mark.parametrize("since, until, expected", [
    pytest.param(None, None, {"r1", "r2", "r3", "r4"}, id="everything"),
    pytest.param(ts(2), None, {"r2", "r3", "r4"}, id="since-is-inclusive"),
    pytest.param(None, ts(3), {"r1", "r2"}, id="until-is-exclusive"),
    pytest.param(ts(2), ts(3), {"r2"}, id="one-day"),
    pytest.param(ts(3, 12, 0, 5), None, {"r4"}, id="charged-in-range-but-admitted-before"),
    pytest.param(ts(5), None, set(), id="after-everything"),
])
def test_a_time_range_selects_requests_by_admission(tmp_path, since, until, expected):
    records = []
    for number, day in enumerate((1, 2, 3), 1):
        records += [reservation(f"r{number}", ts(day)), charge(f"r{number}", ts(day, 12, 0, 10), ts(day),
                                                              cost=number / 100)]
    records += [reservation("r4", ts(3, 23, 59)), charge("r4", ts(4, 0, 1), ts(3, 23, 59), cost=0.5)]
    path = write_ledger(tmp_path / "ledger.jsonl", records)
    costs = {"r1": 0.01, "r2": 0.02, "r3": 0.03, "r4": 0.5}

    report = build_report(path, since=since, until=until)

    assert report.totals().requests == len(expected)
    assert report.totals().cost_micros == sum(to_micros(costs[name]) for name in expected)


def test_unparsable_lines_are_counted_and_a_line_being_written_is_not(tmp_path):
    path = tmp_path / "ledger.jsonl"
    records = [reservation("r1", ts(1)), charge("r1", ts(1, 12, 0, 3), ts(1))]
    text = b"".join(encode_record(record) for record in records)
    path.write_bytes(text + b'{"ts":"2026-11-01T12:00:04.000000Z","type":"charge",garbage\n'
                     + b'{"ts":"2026-11-01T12:00:05.000000Z","type":"char')

    report = build_report(str(path))

    assert report.skipped_unparsable == 1
    assert summary(report) == {("key_a",): (1, 1, 0.04, 0)}


@pytest.mark.parametrize("line", NOT_RECORDS)
def test_a_line_that_is_not_a_record_is_skipped_and_the_rest_reported(tmp_path, capsys, line):
    path = tmp_path / "ledger.jsonl"
    around = (reservation("r1", ts(1)), charge("r1", ts(1, 12, 5), ts(1)))
    path.write_bytes(encode_record(around[0]) + line + b"\n" + encode_record(around[1]))

    code = cli.main(["report", "--ledger", str(path), "--by", "user,model", "--format", "json"])

    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["totals"] == {"requests": 1, "images": 1, "cost": 0.04, "expired": 0}
    assert "Traceback" not in err


def test_records_in_another_field_order_are_still_read(tmp_path):
    path = tmp_path / "ledger.jsonl"
    line = json.dumps({"type": "charge", "ts": ts(1), "keyId": "key_x", "user": "xena", "requestId": "r9",
                       "cost": 0.25, "imagesReturned": 2, "reservedAt": ts(1)})
    path.write_text(line + "\n")

    assert summary(build_report(str(path), by=("user",))) == {("xena",): (1, 2, 0.25, 0)}


def reference_report(records, by, since, until):
    """The rules of the report applied to every record, slowly and plainly."""
    details, final = {}, {}
    for record in records:
        if record["type"] == "reservation":
            details[record["requestId"]] = record
        else:
            final[record["requestId"]] = record  # a later charge replaces an expiry
    groups = {}
    for request_id, record in final.items():
        moment = record["reservedAt"]
        if (since and moment < since) or (until and moment >= until):
            continue
        admitted = details[request_id]
        values = {"key": admitted["keyId"], "user": admitted["user"], "model": admitted["model"], "day": moment[:10]}
        group = tuple(values[name] for name in by)
        expired = record["type"] == "reservation_expired"
        old = groups.get(group, (0, 0, 0.0, 0))
        groups[group] = (old[0] + 1, old[1] + (0 if expired else record["imagesReturned"]),
                         round(old[2] + record["cost"], 6), old[3] + expired)
    return groups


@pytest.mark.parametrize("by, since, until", [
    pytest.param(("key",), None, None, id="key"),
    pytest.param(("user", "model"), ts(3), ts(6), id="user-model-range"),
    pytest.param(("day",), ts(2, 6), None, id="day-since"),
    pytest.param(("model", "day", "key"), None, ts(4, 18), id="three-ways-until"),
])
def test_skipping_lines_unread_gives_the_same_answer_as_reading_all(tmp_path, by, since, until):
    rng = random.Random(11)
    records, pending, clock = [], [], 0
    for number in range(400):
        clock += rng.randint(20, 1500)
        day, rest = divmod(clock, 86400)
        at = ts(1 + day, rest // 3600, rest % 3600 // 60, rest % 60)
        key = rng.choice(("key_a", "key_b", "key_c"))
        record = reservation(f"r{number}", at, key=key, user=key.replace("key_", "user-"),
                             model=rng.choice(("dall-e-3", "gpt-image-1")))
        records.append(record)
        pending.append(record)
        while pending and rng.random() < 0.6:
            admitted = pending.pop(0)
            fields = {"key": admitted["keyId"], "user": admitted["user"], "model": admitted["model"]}
            cost = rng.choice((0.0, 0.04, 0.08, 0.167))
            if rng.random() < 0.1:
                records.append(expiry(admitted["requestId"], at, admitted["ts"], key=admitted["keyId"], cost=0.2))
                if rng.random() < 0.5:
                    continue
            records.append(charge(admitted["requestId"], at, admitted["ts"], cost=cost, images=rng.randint(0, 4),
                                  **fields))
    path = write_ledger(tmp_path / "ledger.jsonl", records)

    assert summary(build_report(path, by=by, since=since, until=until)) == reference_report(records, by, since, until)


@pytest.mark.stores()
def test_the_records_the_gateway_writes_are_reported_by_its_store(app, client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1))
    responses_mock.add(responses.POST, GENERATIONS_URL, json={"error": {"message": "no"}}, status=400)
    body = {"provider": "openai", "model": "dall-e-3", "prompt": "a fox"}
    assert client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY}).status_code == 200
    assert client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY}).status_code == 400

    report = app.extensions["ziri_images"].store.report(by=("user", "model", "day"))

    charges = [record for record in store_records(app) if record["type"] == "charge"]
    day = charges[0]["reservedAt"][:10]
    assert summary(report) == {("alice", "dall-e-3", day): (2, 1, 0.04, 0)}


def test_the_report_groups_by_endpoint(app, client, responses_mock, capsys):
    responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1))
    responses_mock.add(responses.POST, GENERATIONS_URL.replace("generations", "edits"), json=openai_image_response(2))
    headers = {"X-API-Key": USER_KEY}
    body = {"provider": "openai", "model": "dall-e-2", "prompt": "a fox", "size": "256x256"}
    assert client.post(ENDPOINT, json=body, headers=headers).status_code == 200
    form = {**body, "n": "2", "image": (io.BytesIO(png_bytes("fox", 32)), "fox.png")}
    assert client.post("/api/images/edits", data=form, content_type="multipart/form-data",
                       headers=headers).status_code == 200

    report = app.extensions["ziri_images"].store.report(by=("endpoint",))
    assert summary(report) == {("edits",): (1, 2, 0.032, 0), ("generations",): (1, 1, 0.016, 0)}
    assert cli.main(["report", "--ledger", app.config["LEDGER_PATH"], "--by", "endpoint", "--format", "json"]) == 0
    assert {row["endpoint"] for row in json.loads(capsys.readouterr().out)["rows"]} == {"edits", "generations"}


def test_progress_appears_after_a_delay_and_is_cleared():
    stream = io.StringIO()
    progress = Progress(stream, delay=0, interval=0)

    progress(250_000_000, 1_000_000_000)
    assert "reading ledger: 25% (250 of 1000 MB)" in stream.getvalue()
    progress(1_000_000_000, 1_000_000_000)
    assert stream.getvalue().endswith("\r")

    quiet = io.StringIO()
    slow_to_show = Progress(quiet, delay=60)
    slow_to_show(5, 10)
    slow_to_show(10, 10)
    assert quiet.getvalue() == ""


def test_an_unknown_grouping_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot group by 'week'"):
        build_report(write_ledger(tmp_path / "ledger.jsonl", []), by=("week",))
