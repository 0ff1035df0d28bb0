"""stream: true: the provider's events passed on as they arrive, the request settled exactly once."""

import io
import json

import pytest
import requests
import responses
from conftest import BASE_URL
from conftest import GENERATIONS_URL
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import ledger_lines

from ziri_images.dev.stub import png_bytes
from ziri_images.providers.streams import parse_event

EDITS_URL = BASE_URL + "/images/edits"
USAGE = {"input_tokens": 10, "output_tokens": 1256, "total_tokens": 1266,
         "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
         "output_tokens_details": {"image_tokens": 1256, "text_tokens": 0}}
SHAPE = {"size": "1024x1024", "quality": "medium", "background": "opaque", "output_format": "png"}
USAGE_COST = 0.050_29  # 10 x $5 + 1256 x $40 per 1M tokens (gpt-image-1)


def sse(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def partial(index, prefix="image_generation"):
    return sse(f"{prefix}.partial_image", {"type": f"{prefix}.partial_image", "b64_json": "cGFydA==",
                                           "created_at": 1, **SHAPE, "partial_image_index": index})


def completed(prefix="image_generation", usage=USAGE):
    return sse(f"{prefix}.completed", {"type": f"{prefix}.completed", "b64_json": "ZmluYWw=", "created_at": 2,
                                       **SHAPE, "usage": usage})


def add_stream(mock, body, url=GENERATIONS_URL, status=200, content_type="text/event-stream"):
    mock.add(responses.POST, url, body=body, status=status, content_type=content_type,
             headers={"x-request-id": "req_upstream"})


def stream_request(client, path="/v1/images/generations", **fields):
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "stream": True, "partial_images": 2, **fields}
    return client.post(path, json=body, headers={"Authorization": f"Bearer {USER_KEY}"}, buffered=False)


def events_of(response):
    text = b"".join(response.response).decode()
    response.close()
    return [parse_event(block.encode()) for block in text.split("\n\n") if block]


def only_charge(app):
    records = ledger_lines(app)
    charges = [record for record in records if record["type"] == "charge"]
    assert len(charges) == 1, records
    return records[0], charges[0]


def test_events_are_passed_on_and_the_completed_usage_is_charged(app, client, responses_mock):
    add_stream(responses_mock, partial(0) + partial(1) + completed())

    response = stream_request(client)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["X-Request-Id"].startswith("req_")
    events = events_of(response)
    assert [event.type for event in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert events[0].raw == partial(0)  # passed on as the provider sent it
    assert events[-1].data["usage"] == USAGE and events[-1].data["b64_json"] == "ZmluYWw="
    meta = events[-1].data["_meta"]  # the gateway's addition, as in a JSON answer
    assert meta["requestId"] == response.headers["X-Request-Id"] and meta["providerRequestId"] == "req_upstream"
    assert (meta["cost"]["actual"], meta["cost"]["chargedBy"]) == (USAGE_COST, "tokens")
    sent = json.loads(responses_mock.calls[0].request.body)
    assert sent["stream"] is True and sent["partial_images"] == 2 and "provider" not in sent
    assert responses_mock.calls[0].request.headers["Accept"] == "text/event-stream"
    reservation, charge = only_charge(app)
    assert reservation["stream"] is True and charge["stream"] is True and charge["endpoint"] == "generations"
    assert charge["status"] == "succeeded" and charge["chargedBy"] == "tokens" and charge["cost"] == USAGE_COST
    assert charge["providerRequestId"] == "req_upstream"


def test_each_partial_image_adds_100_output_tokens_to_the_reservation(app, client, responses_mock):
    for _ in range(2):
        add_stream(responses_mock, completed())
    events_of(stream_request(client, partial_images=0))
    events_of(stream_request(client, partial_images=3))

    first, second = [record for record in ledger_lines(app) if record["type"] == "reservation"]
    assert round(second["amount"] - first["amount"], 6) == 300 * 40 / 1e6


def test_events_split_across_reads_and_crlf_line_endings_are_reassembled(app, client, responses_mock):
    body = (partial(0) + completed()).replace(b"\n", b"\r\n")
    add_stream(responses_mock, io.BufferedReader(Trickle(body, step=7, breaks=False), buffer_size=7))

    events = events_of(stream_request(client, partial_images=1))

    assert [event.type for event in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert only_charge(app)[1]["cost"] == USAGE_COST


@pytest.mark.parametrize("body, why", [
    pytest.param(partial(0) + partial(1), "no_completed_event", id="ends-without-completed"),
    pytest.param(requests.exceptions.ChunkedEncodingError("dropped"), "broken", id="breaks"),
])
def test_a_stream_without_completed_is_charged_the_reservation_and_the_client_gets_an_error_event(
        app, client, responses_mock, body, why):
    if isinstance(body, Exception):
        responses_mock.add(responses.POST, GENERATIONS_URL, body=broken_after(partial(0)),
                           content_type="text/event-stream")
    else:
        add_stream(responses_mock, body)

    events = events_of(stream_request(client))

    error = events[-1]
    assert error.name == "error" and error.data["type"] == "error"
    assert error.data["error"]["code"] == "LLM_PROVIDER_ERROR" and error.data["error"]["type"] == "api_error"
    reservation, charge = only_charge(app)
    assert charge["cost"] == reservation["amount"] and charge["chargedBy"] == "reservation"
    assert charge["mayHaveBilled"] is True and charge["streamEnd"] == why and charge["stream"] is True


class Trickle(io.RawIOBase):
    """A body that sends ``data`` ``step`` bytes per read, then ends, or fails as a dropped connection does."""

    def __init__(self, data, step=None, breaks=True):
        self.data, self.step, self.breaks = data, step, breaks
        self.reads_past_the_end = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.data:
            self.reads_past_the_end += 1
            if self.breaks:
                raise ConnectionResetError("connection reset by peer")
            return 0
        size = min(len(buffer), len(self.data), self.step or len(buffer))
        buffer[:size], self.data = self.data[:size], self.data[size:]
        return size


def broken_after(data):
    return io.BufferedReader(Trickle(data))


def test_a_client_that_leaves_is_still_charged_from_completed(app, client, responses_mock):
    add_stream(responses_mock, partial(0) + partial(1) + completed())

    response = stream_request(client)
    first = next(iter(response.response))
    response.close()  # what the server does when the client has gone: GeneratorExit in the relay

    assert b"partial_image" in first
    reservation, charge = only_charge(app)
    assert charge["status"] == "succeeded" and charge["cost"] == USAGE_COST


def test_a_client_that_leaves_a_stream_that_then_breaks_is_charged_the_reservation(app, client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, body=broken_after(partial(0) + partial(1)),
                       content_type="text/event-stream")

    response = stream_request(client)
    next(iter(response.response))
    response.close()

    reservation, charge = only_charge(app)
    assert charge["cost"] == reservation["amount"] and charge["streamEnd"] == "client_gone"


def test_an_upstream_error_before_the_stream_takes_the_normal_error_path(app, client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, status=400,
                       json={"error": {"message": "Bad size", "type": "invalid_request_error", "code": None}})

    response = stream_request(client)

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "LLM_PROVIDER_ERROR"
    reservation, charge = only_charge(app)
    assert charge["status"] == "provider_error" and charge["cost"] == 0.0


def test_edits_stream_their_own_event_names(app, client, responses_mock):
    add_stream(responses_mock, partial(0, "image_edit") + completed("image_edit"), url=EDITS_URL)

    response = client.post("/v1/images/edits", data={
        "model": "gpt-image-1", "prompt": "add a hat", "stream": "true", "partial_images": "1",
        "image": (io.BytesIO(png_bytes("a", 64)), "a.png")}, content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {USER_KEY}"}, buffered=False)

    assert [event.type for event in events_of(response)] == ["image_edit.partial_image", "image_edit.completed"]
    assert b'name="stream"\r\n\r\ntrue' in responses_mock.calls[0].request.body
    charge = only_charge(app)[1]
    assert charge["endpoint"] == "edits" and charge["stream"] is True and charge["chargedBy"] == "tokens"


def test_the_api_path_streams_too_and_its_error_events_are_flat(app, client, responses_mock):
    add_stream(responses_mock, partial(0))

    events = events_of(stream_request(client, path="/api/images/generations", provider="openai"))

    assert events[-1].data["error"]["code"] == "LLM_PROVIDER_ERROR" and "type" not in events[-1].data["error"]


@pytest.mark.parametrize("fields, code", [
    pytest.param({"model": "dall-e-3", "partial_images": None}, "STREAMING_NOT_SUPPORTED", id="dall-e-3"),
    pytest.param({"model": "dall-e-2", "partial_images": None}, "STREAMING_NOT_SUPPORTED", id="dall-e-2"),
    pytest.param({"partial_images": 4}, "VALIDATION_ERROR", id="too-many-partial-images"),
    pytest.param({"partial_images": -1}, "VALIDATION_ERROR", id="negative-partial-images"),
    pytest.param({"partial_images": "2"}, "VALIDATION_ERROR", id="partial-images-string"),
    pytest.param({"n": 2}, "IMAGE_REQUEST_TOO_LARGE", id="more-than-one-image"),
])
def test_refused_before_any_reservation(app, client, fields, code):
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "stream": True, "partial_images": 2, **fields}
    body = {name: value for name, value in body.items() if value is not None}

    response = client.post("/v1/images/generations", json=body, headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert ledger_lines(app) == []


def test_nothing_after_completed_is_waited_for(app, client, responses_mock):
    # The connection fails if read again after completed: it is not, and the client sees no error.
    responses_mock.add(responses.POST, GENERATIONS_URL, body=broken_after(partial(0) + completed()),
                       content_type="text/event-stream")

    events = events_of(stream_request(client, partial_images=1))

    assert [event.type for event in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert only_charge(app)[1]["status"] == "succeeded"


def test_a_client_that_leaves_at_the_completed_event_is_not_kept_waiting(app, client, responses_mock):
    # Charged at completed: the client's leaving then reads nothing more from the provider.
    body = Trickle(completed())
    responses_mock.add(responses.POST, GENERATIONS_URL, body=io.BufferedReader(body),
                       content_type="text/event-stream")

    response = stream_request(client, partial_images=0)
    assert b"image_generation.completed" in next(iter(response.response))
    response.close()

    assert only_charge(app)[1]["status"] == "succeeded"
    assert body.reads_past_the_end == 0


def test_a_providers_error_event_is_redacted_and_charged_the_reservation(app, client, responses_mock):
    failure = sse("error", {"type": "error", "error": {"message": f"Bad key {PROVIDER_KEY} mid-stream",
                                                         "type": "server_error", "code": "moderation_blocked"}})
    add_stream(responses_mock, partial(0) + failure + completed())

    response = stream_request(client, partial_images=1)
    text = b"".join(response.response)
    response.close()

    assert PROVIDER_KEY.encode() not in text and b"[redacted]" in text
    error = parse_event(text.split(b"\n\n")[-2])
    assert error.data["error"]["providerError"]["code"] == "moderation_blocked"
    assert b"image_generation.completed" not in text  # nothing after the error is passed on or charged
    reservation, charge = only_charge(app)
    assert charge["cost"] == reservation["amount"] and charge["chargedBy"] == "reservation"
