"""No answer to a client carries the provider credential the gateway sent, however the provider echoes it."""

import json

import pytest
import responses
from conftest import GENERATIONS_URL
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from test_streaming import SHAPE
from test_streaming import USAGE
from test_streaming import completed
from test_streaming import events_of
from test_streaming import only_charge
from test_streaming import partial
from test_streaming import sse
from test_streaming import stream_request

from ziri_images.providers.streams import parse_event

# A credential no key-shaped pattern catches (Azure's keys look like this): only its exact value can.
HEX_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
KEYS = [pytest.param(PROVIDER_KEY, id="key-shaped"), pytest.param(HEX_KEY, id="hex")]
XAI_URL = "https://imgen.x.ai/xai-imgen/xai-tmp-imgen-11b443c1-3780-4690-849a-51430eecc0a9.jpeg"


def escaped(text):
    """Return ``text`` as JSON text with its first character written as a \\u escape (still the same string)."""
    return f"\\u{ord(text[0]):04x}{text[1:]}"


def echoing_body(key):
    """Return the raw JSON of an images answer that repeats ``key`` in every kind of place, plainly and escaped."""
    return ('{"created": 1, "data": [{"b64_json": "ZmluYWw=", "revised_prompt": "a lighthouse, ' + escaped(key)
            + '", "url": "https://images.openai.test/1.png?sig=' + key + '"}], "quality": "medium", "size": '
            '"1024x1024", "output_format": "png", "debug": {"sent": ["Bearer ' + key + '"], "' + key + '": true}, '
            '"usage": ' + json.dumps(USAGE) + '}').encode()


def assert_never_carries(key, raw, decoded):
    assert key.encode() not in raw
    assert key not in json.dumps(decoded, ensure_ascii=False)


@pytest.fixture
def keyed_client(request, make_app):
    return make_app(OPENAI_API_KEY=request.param).test_client()


@pytest.mark.parametrize("keyed_client", KEYS, indirect=True)
def test_a_provider_key_echoed_in_a_success_body_never_reaches_the_client(keyed_client, responses_mock):
    key = provider_key_of(keyed_client)
    responses_mock.add(responses.POST, GENERATIONS_URL, body=echoing_body(key), content_type="application/json")

    response = keyed_client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a lighthouse"},
                                 headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200
    assert responses_mock.calls[0].request.headers["Authorization"] == f"Bearer {key}"
    body = response.get_json()
    assert_never_carries(key, response.get_data(), body)
    assert body["data"][0]["revised_prompt"] == "a lighthouse, [redacted]"
    assert body["data"][0]["url"] == "https://images.openai.test/1.png?sig=[redacted]"
    assert body["data"][0]["b64_json"] == "ZmluYWw=" and body["debug"]["[redacted]"] is True


@pytest.mark.parametrize("keyed_client", KEYS, indirect=True)
def test_a_provider_key_echoed_in_stream_events_never_reaches_the_client(keyed_client, responses_mock):
    key = provider_key_of(keyed_client)
    echoing_partial = sse("image_generation.partial_image", {"type": "image_generation.partial_image",
                                                              "b64_json": "cGFydA==", "partial_image_index": 0,
                                                              **SHAPE, "note": f"sent {key}"})
    not_json = f"event: debug\ndata: Authorization: Bearer {key}\n\n".encode()
    echoing_completed = completed().replace(b'"type": "image_generation.completed"',
                                            b'"type": "image_generation.completed", "revised_prompt": "'
                                            + escaped(key).encode() + b'"')
    responses_mock.add(responses.POST, GENERATIONS_URL, body=echoing_partial + not_json + echoing_completed,
                       content_type="text/event-stream")

    response = stream_request(keyed_client, partial_images=1)
    text = b"".join(response.response)
    response.close()

    events = events_of_bytes(text)
    assert [event.name for event in events] == ["image_generation.partial_image", "debug",
                                                "image_generation.completed"]
    assert_never_carries(key, text, [event.data for event in events])
    assert events[0].data["note"] == "sent [redacted]" and events[0].data["b64_json"] == "cGFydA=="
    assert events[-1].data["revised_prompt"] == "[redacted]" and events[-1].data["_meta"]["cost"]["actual"] > 0


@pytest.mark.parametrize("keyed_client", KEYS, indirect=True)
def test_a_provider_key_echoed_in_a_json_answer_to_a_stream_never_reaches_the_client(keyed_client, responses_mock):
    key = provider_key_of(keyed_client)
    responses_mock.add(responses.POST, GENERATIONS_URL, body=echoing_body(key), content_type="application/json")

    response = stream_request(keyed_client)
    text = b"".join(response.response)
    response.close()

    [event] = events_of_bytes(text)
    assert event.type == "image_generation.completed"
    assert_never_carries(key, text, event.data)


def test_an_answer_without_the_key_reaches_the_client_unchanged(app, client, responses_mock):
    # Key-shaped strings that are not the gateway's credential (xAI's image URLs hold one) are the answer's own.
    body = {"created": 1, "data": [{"url": XAI_URL, "revised_prompt": "a sign reading sk-not-our-key-0000"}]}
    responses_mock.add(responses.POST, GENERATIONS_URL, json=body)

    response = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "a lighthouse"},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200 and response.get_json()["data"] == body["data"]
    assert only_charge(app)[1]["status"] == "succeeded"


def test_events_without_the_key_are_passed_on_byte_for_byte(app, client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, body=partial(0) + completed(),
                       content_type="text/event-stream")

    response = stream_request(client, partial_images=1)

    assert events_of(response)[0].raw == partial(0)


def provider_key_of(keyed_client):
    return keyed_client.application.config["OPENAI_API_KEY"]


def events_of_bytes(text):
    return [parse_event(block) for block in text.split(b"\n\n") if block]
