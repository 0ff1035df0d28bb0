"""The ledger's lines, byte for byte: every record type the gateway writes, as it was first written.

The ledger is a public format (operators parse it, reports read years of it): a change of field
order, spacing or number format is a change of that format. These lines are the golden copies.
"""

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from ziri_images.catalog.charges import Charge
from ziri_images.keys.store import ApiKey
from ziri_images.ledger.records import Reservation
from ziri_images.ledger.records import charge_record
from ziri_images.ledger.records import encode_record
from ziri_images.ledger.records import expiry_record
from ziri_images.ledger.records import peek
from ziri_images.ledger.records import reservation_record
from ziri_images.ledger.records import summary_of

NOW = datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=timezone.utc)
KEY = ApiKey(id="key_alice", user="alice", status="active")
WORKER = "host:4242:0badc0de"
# The request summary as the gateway writes it (api.reserve_spend): its fields, in its order.
SUMMARY = {
    "requestId": "req_0123", "endpoint": "generations", "keyId": "key_alice", "user": "alice",
    "provider": "openai", "model": "gpt-image-1", "quality": "high", "size": "1024x1024",
    "imagesRequested": 2, "pricePerImage": 0.167, "currency": "USD",
}
STREAMED = {**SUMMARY, "idempotencyKey": "sha256:d1g3st", "stream": True, "partialImages": 2}
HELD = Reservation(request_id="req_0123", key_id="key_alice", micros=334_000, reserved_at="2026-11-26T12:00:00.250000Z",
                   expires_at=(NOW + timedelta(seconds=245)).timestamp(), worker=WORKER)
CHARGE = Charge(images=2, choices={"quality": "high", "size": "1024x1024"}, price_per_image=0.167,
                estimated_cost=0.334, token_cost=0.31, usage={"input_tokens": 50, "output_tokens": 12000},
                charged_by="tokens", cost=0.31, provider_images=2, provider_choices={"quality": "high"})


def succeeded(summary):
    return {**summary, "status": "succeeded", "httpStatus": 200, **CHARGE.ledger_fields(),
            "providerStatus": 200, "providerRequestId": "req_up_9", "latencyMs": 5120}


def refused_upstream(summary):
    return {**summary, "status": "provider_error", "httpStatus": 429, "imagesReturned": 0, "cost": 0,
            "shouldRetry": True, "latencyMs": 80}


LATER = NOW + timedelta(seconds=9, microseconds=1)
GOLDEN = [
    pytest.param(
        reservation_record(NOW, KEY, SUMMARY, 334_000, NOW + timedelta(seconds=245), WORKER),
        b'{"ts":"2026-11-26T12:00:00.250000Z","type":"reservation","requestId":"req_0123","endpoint":"generations",'
        b'"keyId":"key_alice","user":"alice","provider":"openai","model":"gpt-image-1","quality":"high",'
        b'"size":"1024x1024","imagesRequested":2,"pricePerImage":0.167,"currency":"USD","amount":0.334,'
        b'"expiresAt":"2026-11-26T12:04:05.250000Z","worker":"host:4242:0badc0de"}\n',
        id="reservation"),
    pytest.param(
        reservation_record(NOW, KEY, STREAMED, 334_000, NOW + timedelta(seconds=245), WORKER),
        b'{"ts":"2026-11-26T12:00:00.250000Z","type":"reservation","requestId":"req_0123","endpoint":"generations",'
        b'"keyId":"key_alice","user":"alice","provider":"openai","model":"gpt-image-1","quality":"high",'
        b'"size":"1024x1024","imagesRequested":2,"pricePerImage":0.167,"currency":"USD",'
        b'"idempotencyKey":"sha256:d1g3st","stream":true,"partialImages":2,"amount":0.334,'
        b'"expiresAt":"2026-11-26T12:04:05.250000Z","worker":"host:4242:0badc0de"}\n',
        id="streamed-reservation"),
    pytest.param(
        charge_record(LATER, HELD, succeeded(SUMMARY), after_expiry=False),
        b'{"ts":"2026-11-26T12:00:09.250001Z","type":"charge","requestId":"req_0123","endpoint":"generations",'
        b'"keyId":"key_alice","user":"alice","provider":"openai","model":"gpt-image-1","quality":"high",'
        b'"size":"1024x1024","imagesRequested":2,"pricePerImage":0.167,"currency":"USD","status":"succeeded",'
        b'"httpStatus":200,"imagesReturned":2,"providerImages":2,"estimatedCost":0.334,"tokenCost":0.31,'
        b'"chargedBy":"tokens","usage":{"input_tokens":50,"output_tokens":12000},"cost":0.31,'
        b'"providerChoices":{"quality":"high"},"providerStatus":200,"providerRequestId":"req_up_9","latencyMs":5120,'
        b'"reservedAt":"2026-11-26T12:00:00.250000Z","reserved":0.334}\n',
        id="charge"),
    pytest.param(
        charge_record(LATER, HELD, refused_upstream(STREAMED), after_expiry=True),
        b'{"ts":"2026-11-26T12:00:09.250001Z","type":"charge","requestId":"req_0123","endpoint":"generations",'
        b'"keyId":"key_alice","user":"alice","provider":"openai","model":"gpt-image-1","quality":"high",'
        b'"size":"1024x1024","imagesRequested":2,"pricePerImage":0.167,"currency":"USD",'
        b'"idempotencyKey":"sha256:d1g3st","stream":true,"partialImages":2,"status":"provider_error",'
        b'"httpStatus":429,"imagesReturned":0,"cost":0,"shouldRetry":true,"latencyMs":80,'
        b'"reservedAt":"2026-11-26T12:00:00.250000Z","reserved":0.334,"afterExpiry":true,'
        b'"idempotencyReleased":true}\n',
        id="late-charge-that-frees-its-idempotency-key"),
    pytest.param(
        expiry_record(LATER, HELD, "worker_died"),
        b'{"ts":"2026-11-26T12:00:09.250001Z","type":"reservation_expired","requestId":"req_0123",'
        b'"keyId":"key_alice","reservedAt":"2026-11-26T12:00:00.250000Z","cost":0.334,"reason":"worker_died",'
        b'"worker":"host:4242:0badc0de"}\n',
        id="reservation-expired"),
]


@pytest.mark.parametrize(("record", "line"), GOLDEN)
def test_every_record_type_is_written_byte_for_byte_as_before(record, line):
    assert encode_record(record) == line


@pytest.mark.parametrize(("record", "line"), GOLDEN)
def test_peek_reads_the_time_and_type_of_every_line_the_gateway_writes(record, line):
    assert peek(line) == (record["ts"].encode(), record["type"])


def test_a_record_is_written_with_ts_and_type_first_whatever_order_it_came_in():
    # An import (another program's export, PostgreSQL's jsonb) hands records in any field order.
    imported = {"requestId": "r1", "type": "charge", "keyId": "key_x", "cost": 0.5, "ts": "2026-11-26T12:00:00.000000Z"}

    line = encode_record(imported)

    assert line == (b'{"ts":"2026-11-26T12:00:00.000000Z","type":"charge","requestId":"r1","keyId":"key_x",'
                    b'"cost":0.5}\n')
    assert peek(line) == (b"2026-11-26T12:00:00.000000Z", "charge")


@pytest.mark.parametrize("line", [
    pytest.param(b'{"type":"charge","ts":"2026-11-26T12:00:00.000000Z"}', id="type-first"),
    pytest.param(b'{"ts":"2026-11-26T12:00:00Z","type":"charge"}', id="short-ts"),
    pytest.param(b'{"ts": "2026-11-26T12:00:00.000000Z", "type": "charge"}', id="spaced"),
    pytest.param(b"not json", id="not-json"),
])
def test_peek_leaves_any_line_not_in_the_written_shape_to_the_parser(line):
    assert peek(line) is None


@pytest.mark.parametrize("summary", [pytest.param(SUMMARY, id="generation"), pytest.param(STREAMED, id="stream")])
def test_a_reservation_gives_back_the_request_summary_it_was_written_with(summary):
    written = reservation_record(NOW, KEY, summary, 334_000, NOW + timedelta(seconds=245), WORKER)

    assert summary_of(written) == summary
    assert list(summary_of(written)) == list(summary)  # in its order: a charge built from it reads the same
