"""A 2xx answer is charged, whatever its Content-Type and body: from its usage, or at the reservation.

A stream request answered with a JSON images body (an endpoint that ignores ``stream``, a proxy
that rewrites the Content-Type) is served as OpenAI's events; events labelled as something else
are relayed as events; any other 2xx answer, to a stream or not, is charged the reservation.
"""

import io
import json

import pytest
import requests
import responses
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import ledger_lines
from test_streaming import EDITS_URL
from test_streaming import SHAPE
from test_streaming import USAGE
from test_streaming import USAGE_COST
from test_streaming import Trickle
from test_streaming import completed
from test_streaming import events_of
from test_streaming import only_charge
from test_streaming import partial
from test_streaming import stream_request

from ziri_images.dev.stub import png_bytes

JSON_ANSWER = {"created": 2, "data": [{"b64_json": "ZmluYWw="}], **SHAPE, "usage": USAGE}


def add_answer(mock, body, content_type, url=GENERATIONS_URL, status=200):
    mock.add(responses.POST, url, body=body, status=status, content_type=content_type,
             headers={"x-request-id": "req_upstream"})


def assert_charged_the_reservation(app):
    reservation, charge = only_charge(app)
    assert (charge["cost"], charge["chargedBy"], charge["mayHaveBilled"]) == (reservation["amount"], "reservation",
                                                                              True)
    return charge


@pytest.mark.parametrize("content_type", [
    pytest.param("application/json", id="json"),
    pytest.param("text/plain; charset=utf-8", id="rewritten-by-a-proxy"),
    pytest.param("application/octet-stream", id="octet-stream"),
    pytest.param("text/event-stream", id="labelled-as-events"),
])
def test_a_stream_answered_as_json_is_charged_from_its_usage(app, client, responses_mock, content_type):
    add_answer(responses_mock, json.dumps(JSON_ANSWER), content_type)

    response = stream_request(client)

    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    [event] = events_of(response)
    assert (event.name, event.type) == ("image_generation.completed", "image_generation.completed")
    assert event.data["b64_json"] == "ZmluYWw=" and event.data["usage"] == USAGE and event.data["created_at"] == 2
    assert {name: event.data[name] for name in SHAPE} == SHAPE
    meta = event.data["_meta"]
    assert (meta["cost"]["actual"], meta["cost"]["chargedBy"], meta["providerRequestId"]) == (USAGE_COST, "tokens",
                                                                                             "req_upstream")
    _reservation, charge = only_charge(app)
    assert (charge["status"], charge["cost"], charge["chargedBy"]) == ("succeeded", USAGE_COST, "tokens")
    assert charge["stream"] is True and charge["imagesReturned"] == 1


def test_an_edit_stream_answered_as_json_is_served_as_an_edit_event(app, client, responses_mock):
    add_answer(responses_mock, json.dumps(JSON_ANSWER), "application/json", url=EDITS_URL)

    response = client.post("/v1/images/edits", data={
        "model": "gpt-image-1", "prompt": "add a hat", "stream": "true",
        "image": (io.BytesIO(png_bytes("a", 64)), "a.png")}, content_type="multipart/form-data",
        headers={"Authorization": f"Bearer {USER_KEY}"}, buffered=False)

    assert [event.type for event in events_of(response)] == ["image_edit.completed"]
    assert only_charge(app)[1]["cost"] == USAGE_COST


def test_a_stream_answered_as_json_without_an_image_is_charged_its_usage_and_ends_with_an_error(
        app, client, responses_mock):
    add_answer(responses_mock, json.dumps({**JSON_ANSWER, "data": []}), "application/json")

    [event] = events_of(stream_request(client))

    assert event.name == "error" and event.data["error"]["code"] == "LLM_PROVIDER_ERROR"
    assert only_charge(app)[1]["cost"] == USAGE_COST


def test_a_stream_answered_as_json_with_unreadable_usage_is_charged_the_reservation(app, client, responses_mock):
    add_answer(responses_mock, json.dumps({**JSON_ANSWER, "usage": "lots"}), "application/json")

    [event] = events_of(stream_request(client))

    assert event.type == "image_generation.completed"
    reservation, charge = only_charge(app)
    assert (charge["cost"], charge["chargedBy"]) == (reservation["amount"], "reservation")


EVENTS = partial(0) + partial(1) + completed()


@pytest.mark.parametrize("content_type, body", [
    pytest.param("application/json", EVENTS, id="labelled-json"),
    pytest.param("text/plain", EVENTS, id="labelled-text"),
    pytest.param("application/json", b"\xef\xbb\xbf\n: keep-alive\n\n" + EVENTS, id="bom-comment-first"),
    pytest.param("application/json", io.BufferedReader(Trickle(EVENTS, step=2, breaks=False), buffer_size=2),
                 id="trickled-two-bytes-a-read"),
])
def test_events_under_another_content_type_are_relayed_and_charged_from_completed(
        app, client, responses_mock, content_type, body):
    add_answer(responses_mock, body, content_type)

    events = events_of(stream_request(client))

    assert [event.type for event in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert events[0].raw == partial(0)
    _reservation, charge = only_charge(app)
    assert (charge["status"], charge["cost"], charge["chargedBy"]) == ("succeeded", USAGE_COST, "tokens")


UNREADABLE = [
    pytest.param("text/html", b"<html>upstream exploded</html>", id="html"),
    pytest.param("application/json", b"not json", id="not-json"),
    pytest.param("application/json", b"", id="empty"),
    pytest.param("application/json", json.dumps({"created": 1}), id="json-without-data"),
    pytest.param("application/json", json.dumps({"error": {"message": "oops"}}), id="json-error-with-200"),
    pytest.param("application/json", json.dumps(JSON_ANSWER).encode()[:40], id="cut-short"),
]


@pytest.mark.parametrize("content_type, body", UNREADABLE)
def test_an_unreadable_2xx_answer_to_a_stream_is_charged_the_reservation(app, client, responses_mock, content_type,
                                                                         body):
    add_answer(responses_mock, body, content_type)

    response = stream_request(client)

    assert response.status_code == 502 and response.get_json()["error"]["code"] == "LLM_PROVIDER_ERROR"
    assert response.headers["x-should-retry"] == "false"
    charge = assert_charged_the_reservation(app)
    assert (charge["status"], charge["httpStatus"], charge["providerStatus"]) == ("provider_error", 502, 200)


@pytest.mark.parametrize("content_type, body", UNREADABLE)
def test_an_unreadable_2xx_answer_is_charged_the_reservation(app, client, responses_mock, content_type, body):
    add_answer(responses_mock, body, content_type)

    response = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a lighthouse"},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 502 and response.headers["x-should-retry"] == "false"
    assert assert_charged_the_reservation(app)["status"] == "provider_error"


@pytest.mark.parametrize("stream", [pytest.param(True, id="stream"), pytest.param(False, id="json")])
def test_a_2xx_answer_that_breaks_while_it_is_read_is_charged_the_reservation(app, client, responses_mock, stream):
    broken = io.BufferedReader(Trickle(json.dumps(JSON_ANSWER).encode()[:30]))
    add_answer(responses_mock, broken, "application/json")

    response = stream_request(client) if stream else client.post(
        "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a lighthouse"},
        headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 502
    assert assert_charged_the_reservation(app)["providerStatus"] == 200


def test_an_error_status_is_still_charged_nothing(app, client, responses_mock):
    add_answer(responses_mock, json.dumps({"error": {"message": "overloaded"}}), "application/json", status=503)

    response = stream_request(client)

    assert response.status_code == 502
    _reservation, charge = only_charge(app)
    assert (charge["cost"], charge["mayHaveBilled"]) == (0.0, False) and "chargedBy" not in charge


def test_a_read_timeout_before_any_answer_is_still_charged_nothing(app, client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, body=requests.ReadTimeout("no answer"))

    response = stream_request(client)

    assert response.status_code == 504
    assert [record["cost"] for record in ledger_lines(app) if record["type"] == "charge"] == [0.0]
