"""The gateway's /v1 answers against OpenAI's own OpenAPI document (its images subset)."""

import io
from pathlib import Path

import pytest
import responses
import yaml
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import openai_image_response
from jsonschema import Draft202012Validator

from ziri_images.dev.stub import png_bytes

OPENAI_SPEC = Path("/work/shared/openai/images-openapi.yaml")
pytestmark = pytest.mark.skipif(not OPENAI_SPEC.exists(), reason=f"OpenAI's document is not at {OPENAI_SPEC}")
BEARER = {"Authorization": f"Bearer {USER_KEY}"}


@pytest.fixture(scope="module")
def openai_spec():
    return yaml.safe_load(OPENAI_SPEC.read_text(encoding="utf-8"))


def check(spec, name, body):
    """Raise unless ``body`` is valid against OpenAI's component schema ``name``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    Draft202012Validator(schema).validate(body)


@pytest.mark.parametrize("request_args", [
    pytest.param({"json": {"model": "dall-e-3"}}, id="missing-prompt"),
    pytest.param({"json": {"model": "dall-e-3", "prompt": "x", "n": 0}}, id="invalid-field"),
    pytest.param({"json": {"model": "dall-e-3", "prompt": "x"}, "headers": {}}, id="no-key"),
    pytest.param({"data": "{", "content_type": "application/json"}, id="bad-json"),
])
def test_errors_are_openais_error_response(client, openai_spec, request_args):
    request_args = {"headers": BEARER, **request_args}
    response = client.post("/v1/images/generations", **request_args)
    assert 400 <= response.status_code < 500
    check(openai_spec, "ErrorResponse", response.get_json())


def test_a_generation_is_openais_images_response(client, openai_spec, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1))
    response = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"}, headers=BEARER)
    assert response.status_code == 200
    check(openai_spec, "ImagesResponse", response.get_json())


def test_an_edit_is_openais_images_response(client, openai_spec, responses_mock):
    usage = {"input_tokens": 300, "output_tokens": 1056, "total_tokens": 1356,
             "input_tokens_details": {"text_tokens": 45, "image_tokens": 255}}
    responses_mock.add(responses.POST, GENERATIONS_URL.replace("generations", "edits"),
                       json={"created": 1, "data": [{"b64_json": "aGk="}], "usage": usage})
    response = client.post("/v1/images/edits", content_type="multipart/form-data", headers=BEARER, data={
        "model": "gpt-image-1", "prompt": "x", "image": (io.BytesIO(png_bytes("a", 32)), "a.png")})
    assert response.status_code == 200, response.get_json()
    check(openai_spec, "ImagesResponse", response.get_json())


def test_the_documented_error_shape_requires_what_openai_requires(client, openai_spec):
    ours = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    detail = ours["OpenAIErrorDetail"]
    assert set(openai_spec["components"]["schemas"]["Error"]["required"]) <= set(detail["required"])
    assert ours["OpenAIError"]["required"] == openai_spec["components"]["schemas"]["ErrorResponse"]["required"]


@pytest.mark.parametrize("body", [
    pytest.param({"model": "gpt-image-1", "prompt": "x", "stream": True, "partial_images": 2}, id="partial-images"),
    pytest.param({"model": "gpt-image-2", "prompt": "x", "stream": True, "quality": "high"}, id="no-partial-images"),
])
def test_the_stubs_stream_events_are_openais(openai_spec, body):
    from ziri_images.dev.stub import create_stub_app
    from ziri_images.providers.streams import parse_event

    stub = create_stub_app().test_client()
    response = stub.post("/v1/images/generations", json=body, headers={"Authorization": "Bearer sk-test"})

    assert response.mimetype == "text/event-stream"
    events = [parse_event(block.encode()) for block in response.get_data(as_text=True).split("\n\n") if block]
    *partials, last = events
    assert len(partials) == body.get("partial_images", 0)
    for index, event in enumerate(partials):
        assert event.name == event.data["type"] == "image_generation.partial_image"
        assert event.data["partial_image_index"] == index
        check(openai_spec, "ImageGenPartialImageEvent", event.data)
    assert last.name == last.data["type"] == "image_generation.completed"
    check(openai_spec, "ImageGenCompletedEvent", last.data)
    check(openai_spec, "ImageGenStreamEvent", last.data)
