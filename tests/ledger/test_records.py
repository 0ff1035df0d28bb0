"""The record format (ledger/records.py): what is written, and what is accepted back."""

import json
import logging
import math
from datetime import datetime
from datetime import timezone

import pytest
from conftest import NOT_RECORDS

from ziri_images.keys.store import ApiKey
from ziri_images.ledger.parse import parse_line
from ziri_images.ledger.parse import parse_record
from ziri_images.ledger.records import Reservation
from ziri_images.ledger.records import charge_record
from ziri_images.ledger.records import encode_record
from ziri_images.ledger.records import expiry_record
from ziri_images.ledger.records import reservation_record

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
KEY = ApiKey(id="key_alice", user="alice", status="active")


def strict_loads(line):
    """Parse ``line`` as RFC 8259 JSON: NaN and Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(line, parse_constant=refuse)


def written_reservation(**details):
    return reservation_record(NOW, KEY, {"requestId": "req_1", "model": "dall-e-3", **details}, 40_000,
                              NOW.replace(minute=4), "host:1:0badc0de")


def test_each_record_type_round_trips_through_a_line():
    reservation = parse_record(written_reservation(idempotencyKey="d1g3st"))
    held = Reservation.from_record(reservation)
    charge = charge_record(NOW.replace(second=9), held, {"requestId": "req_1", "keyId": "key_alice",
                                                         "imagesReturned": 1, "cost": 0.04}, after_expiry=True)
    expiry = expiry_record(NOW.replace(minute=5), held, "expired")

    parsed = [parse_line(encode_record(record)) for record in (reservation.fields, charge, expiry)]

    assert [(r.kind, r.request_id, r.key_id, r.micros, r.reserved_at) for r in parsed] == [
        ("reservation", "req_1", "key_alice", 40_000, "2026-11-26T12:00:00.000000Z"),
        ("charge", "req_1", "key_alice", 40_000, "2026-11-26T12:00:00.000000Z"),
        ("reservation_expired", "req_1", "key_alice", 40_000, "2026-11-26T12:00:00.000000Z"),
    ]
    assert (parsed[0].idempotency_key, parsed[0].worker, parsed[0].user) == ("d1g3st", "host:1:0badc0de", "alice")
    assert parsed[0].expires_at == NOW.replace(minute=4).timestamp()
    assert (charge["afterExpiry"], charge["reserved"], parsed[1].images) == (True, 0.04, 1)
    assert (expiry["reason"], expiry["cost"], expiry["worker"]) == ("expired", 0.04, "host:1:0badc0de")


def test_a_record_is_written_as_strict_json_even_with_nan_and_infinity_in_it():
    record = written_reservation(usage={"total_tokens": math.nan, "scores": [math.inf, 1.5]}, created=-math.inf)

    line = encode_record(record)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = strict_loads(line)
    assert (decoded["usage"], decoded["created"]) == ({"total_tokens": None, "scores": [None, 1.5]}, None)
    assert parse_line(line).micros == 40_000


# That one is a valid record: it is the file store's pid check that must not fail on it.
@pytest.mark.parametrize("line", [param for param in NOT_RECORDS if param.id != "reservation-pid-too-large"])
def test_a_line_that_is_not_a_record_is_none_and_logged(caplog, line):
    caplog.set_level(logging.ERROR, logger="ziri_images")

    assert parse_line(line) is None
    assert "ledger: skipping a record that is not valid" in caplog.text


@pytest.mark.parametrize("value", [
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "", "keyId": "k", "cost": 0},
                 id="empty-request-id"),
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00Z", "requestId": "r", "keyId": "k", "cost": 0},
                 id="ts-not-in-the-ledger-format"),
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "r", "keyId": "k",
                  "cost": True}, id="cost-a-boolean"),
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "r", "keyId": "k",
                  "cost": 1e12}, id="cost-beyond-any-request"),
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "r", "keyId": "k",
                  "cost": 0.04, "imagesReturned": "3"}, id="images-a-string"),
    pytest.param({"type": "charge", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "r", "keyId": "k",
                  "cost": 0.04, "reservedAt": None}, id="reserved-at-null"),
    pytest.param({"type": "refund", "ts": "2026-11-26T12:00:00.000000Z", "requestId": "r", "keyId": "k"},
                 id="unknown-type"),
])
def test_a_value_with_a_field_the_limits_cannot_use_is_none(value):
    assert parse_record(value) is None


def test_fields_the_limits_do_not_use_are_kept_as_written():
    value = {"ts": "2026-11-26T12:00:00.000000Z", "type": "charge", "requestId": "r", "keyId": "k", "cost": 0,
             "imagesReturned": None, "user": 7, "model": None, "providerStatus": "odd"}

    record = parse_record(value)

    assert (record.user, record.model, record.images, record.reserved_at) == (None, None, None, value["ts"])
    assert record.fields is value
