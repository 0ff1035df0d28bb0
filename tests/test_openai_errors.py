"""Errors on /v1 in OpenAI's shape; /api keeps the flat one; one catalogue gives both their status and type."""

import pytest
from conftest import ENDPOINT
from conftest import USER_KEY

from ziri_images.errors import ERROR_CODES
from ziri_images.errors import error_type

V1 = "/v1/images/generations"


def post(client, path, body, key=USER_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(path, json=body, headers=headers)


@pytest.mark.parametrize("body, key, status, code, type_, param", [
    pytest.param({"model": "dall-e-3"}, USER_KEY, 400, "MISSING_FIELDS", "invalid_request_error", "prompt",
                 id="missing-prompt"),
    pytest.param({"model": "dall-e-3", "prompt": "a cat", "n": 0}, USER_KEY, 400, "VALIDATION_ERROR",
                 "invalid_request_error", "n", id="bad-n"),
    pytest.param({"model": "dall-e-2", "prompt": "a cat", "style": "vivid"}, USER_KEY, 400,
                 "PARAMETER_NOT_SUPPORTED", "invalid_request_error", "style", id="unsupported-parameter"),
    pytest.param({"model": "dall-e-3", "prompt": "a cat"}, None, 400, "API_KEY_REQUIRED", "invalid_request_error",
                 None, id="no-key"),
    pytest.param({"model": "dall-e-3", "prompt": "a cat"}, "sk-not-a-gateway-key", 401, "INVALID_API_KEY_FORMAT",
                 "authentication_error", None, id="openai-key"),
    pytest.param({"model": "dall-e-3", "prompt": "a cat"}, "ziri-nobody-" + "0" * 32, 403, "API_KEY_INVALID",
                 "permission_error", None, id="unknown-key"),
])
def test_v1_errors_have_openais_shape(client, body, key, status, code, type_, param):
    response = post(client, V1, body, key)

    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert (error["code"], error["type"], error["param"]) == (code, type_, param)
    assert isinstance(error["message"], str) and error["message"]
    assert error["requestId"] == response.headers["X-Request-Id"]


def test_a_key_outside_its_model_list_names_the_param(client, add_key):
    response = post(client, V1, {"model": "dall-e-3", "prompt": "a cat"}, add_key(allowed_models=["dall-e-2"]))
    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["type"], error["param"]) == (
        403, "AUTHORIZATION_DENIED", "permission_error", "model")
    assert error["allowedModels"] == ["dall-e-2"]  # the details stay, inside the error object


def test_an_over_budget_request_is_insufficient_quota(client, add_key):
    key = add_key(limits={"daily_spend_limit": 0.01})
    response = post(client, V1, {"model": "dall-e-3", "prompt": "a cat"}, key)
    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["type"]) == (402, "SPEND_LIMIT_EXCEEDED", "insufficient_quota")


def test_routing_errors_on_v1_have_openais_shape(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"


def test_the_gateway_path_keeps_the_flat_shape(client):
    response = post(client, ENDPOINT, {"provider": "openai", "model": "dall-e-3"})
    body = response.get_json()
    assert body == {"error": "provider, model, and prompt are required", "code": "MISSING_FIELDS",
                    "requestId": response.headers["X-Request-Id"], "missing": ["prompt"]}


@pytest.mark.parametrize("status, code, expected", [
    pytest.param(402, "SPEND_LIMIT_EXCEEDED", "insufficient_quota", id="budget"),
    pytest.param(429, "RATE_LIMIT_EXCEEDED", "rate_limit_error", id="rate"),
    pytest.param(400, "LLM_PROVIDER_ERROR", "invalid_request_error", id="provider-refused"),
    pytest.param(504, "LLM_PROVIDER_ERROR", "api_error", id="provider-timeout"),
    pytest.param(503, "QUEUE_FULL", "server_error", id="queue"),
])
def test_error_types(status, code, expected):
    assert error_type(status, code) == expected


def test_every_catalogued_code_has_a_type(document):
    listed = {(entry["status"], entry["code"]): entry["type"] for entry in document["x-error-codes"]}
    assert listed == {(status, code): error_type(status, code) for status, code, _scope, _when in ERROR_CODES}


@pytest.fixture
def document(client):
    return client.get("/api/openapi.json").get_json()
