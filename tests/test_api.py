"""The generation endpoint end to end through the test client, with ``responses`` as OpenAI."""

import json
import re
from pathlib import Path

import pytest
import requests
from conftest import DEMO_KEY
from conftest import DISABLED_KEY
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import PROVIDER_KEY
from conftest import START
from conftest import USER_KEY
from conftest import exact_headers
from conftest import ledger_lines
from conftest import openai_image_response
from responses import matchers

from ziri_images.providers.openai import OpenAIProvider

# The request from the README's curl example.
README_BODY = {
    "provider": "openai",
    "model": "dall-e-3",
    "prompt": "A white cat sitting on a windowsill",
    "n": 1,
    "size": "1024x1024",
    "quality": "standard",
}
# Exactly the headers the gateway sends upstream: its own credential, never the client's.
UPSTREAM_HEADERS = exact_headers({"Authorization": f"Bearer {PROVIDER_KEY}"})
RESERVATION_FIELDS = {
    "ts", "type", "requestId", "endpoint", "provider", "model", "quality", "size", "imagesRequested", "pricePerImage",
    "currency", "keyId", "user", "amount", "expiresAt", "worker",
}
SUMMARY_FIELDS = {
    "ts", "type", "requestId", "endpoint", "provider", "model", "quality", "size", "imagesRequested", "pricePerImage",
    "currency", "user", "keyId", "status", "httpStatus", "imagesReturned", "cost", "latencyMs", "reservedAt",
    "reserved",
}
CHARGE_FIELDS = SUMMARY_FIELDS | {"providerStatus", "providerRequestId"}
SUCCESS_CHARGE_FIELDS = CHARGE_FIELDS | {"estimatedCost", "tokenCost", "chargedBy", "usage", "providerImages"}
PROVIDER_ERROR_CHARGE_FIELDS = CHARGE_FIELDS | {"mayHaveBilled", "shouldRetry"}


def expect_upstream(responses_mock, payload, *, json_body=None, status=200, headers=None, body=None):
    """Register the one upstream call the test expects, matching its exact body and headers."""
    kwargs = {"json": json_body} if body is None else {"body": body}
    return responses_mock.post(
        GENERATIONS_URL,
        status=status,
        headers=headers or {},
        match=[matchers.json_params_matcher(payload), matchers.header_matcher(UPSTREAM_HEADERS, strict_match=True)],
        **kwargs,
    )


def post(client, body, key=USER_KEY, **headers):
    if key is not None:
        headers["X-API-Key"] = key
    return client.post(ENDPOINT, json=body, headers=headers)


def upstream_payload(body, **defaults):
    """Return what the gateway should send for ``body``: gateway-only fields dropped, defaults filled."""
    payload = {name: value for name, value in body.items() if name != "provider"}
    return {"n": 1, **defaults, **payload}


def test_readme_request_succeeds_and_is_charged(client, app, responses_mock):
    provider_body = openai_image_response(1, revised_prompt="A fluffy white cat on a sunlit windowsill")
    expect_upstream(responses_mock, upstream_payload(README_BODY), json_body=provider_body,
                    headers={"x-request-id": "req_provider_1"})

    response = post(client, README_BODY, Authorization=f"Bearer {USER_KEY}")

    assert response.status_code == 200
    body = response.get_json()
    assert body["created"] == provider_body["created"]
    assert body["data"] == provider_body["data"]
    assert body["data"][0]["url"] == "https://images.openai.test/img-0.png"
    assert body["data"][0]["revised_prompt"] == "A fluffy white cat on a sunlit windowsill"
    meta = body["_meta"]
    assert meta["requestId"] == response.headers["X-Request-Id"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", meta["requestId"])
    assert meta["provider"] == "openai" and meta["model"] == "dall-e-3"
    assert meta["providerRequestId"] == "req_provider_1"
    assert meta["cost"] == {
        "estimated": 0.04,
        "reserved": 0.04,
        "actual": 0.04,
        "pricePerImage": 0.04,
        "imagesRequested": 1,
        "imagesCharged": 1,
        "quality": "standard",
        "size": "1024x1024",
        "currency": "USD",
        "chargedBy": "per_image",
        "usage": None,
    }

    sent = responses_mock.calls[0].request
    assert sent.headers["X-Client-Request-Id"] == meta["requestId"]
    assert "X-API-Key" not in sent.headers
    assert USER_KEY not in str(sent.headers) and USER_KEY not in sent.body.decode()

    reservation, charge = ledger_lines(app)
    assert set(reservation) == RESERVATION_FIELDS
    assert reservation["type"] == "reservation"
    assert reservation["requestId"] == meta["requestId"]
    assert reservation["endpoint"] == charge["endpoint"] == "generations"
    assert reservation["ts"] == "2026-11-26T12:00:00.000000Z"
    assert reservation["expiresAt"] == "2026-11-26T12:01:32.000000Z"  # connect 2 + read 30 + grace 60
    assert (reservation["keyId"], reservation["user"], reservation["amount"]) == ("key_user", "alice", 0.04)
    assert set(charge) == SUCCESS_CHARGE_FIELDS
    assert (charge["estimatedCost"], charge["tokenCost"], charge["chargedBy"]) == (0.04, None, "per_image")
    assert charge["type"] == "charge"
    assert charge["requestId"] == meta["requestId"]
    assert charge["status"] == "succeeded" and charge["httpStatus"] == 200
    assert (charge["cost"], charge["reserved"], charge["imagesReturned"]) == (0.04, 0.04, 1)
    assert charge["providerRequestId"] == "req_provider_1" and charge["providerStatus"] == 200
    assert charge["reservedAt"] == reservation["ts"]
    ledger_text = Path(app.config["LEDGER_PATH"]).read_text(encoding="utf-8")
    assert USER_KEY not in ledger_text and PROVIDER_KEY not in ledger_text


def test_defaults_are_filled_and_provider_params_pass_through(client, responses_mock):
    body = {"provider": "openai", "model": "dall-e-3", "prompt": "a red bicycle", "style": "natural",
            "user": "end-user-42", "response_format": "b64_json"}
    expect_upstream(responses_mock, upstream_payload(body, size="1024x1024", quality="standard"),
                    json_body={"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}]})

    response = post(client, body)

    assert response.status_code == 200
    assert response.get_json()["data"] == [{"b64_json": "iVBORw0KGgo="}]


def test_bearer_key_and_v1_route_are_accepted(client, responses_mock):
    expect_upstream(responses_mock, upstream_payload(README_BODY), json_body=openai_image_response(1))

    response = client.post("/v1/images/generations", json=README_BODY, headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200
    assert response.get_json()["_meta"]["cost"]["actual"] == 0.04


def test_dall_e_2_charges_each_image(client, responses_mock):
    body = {"provider": "openai", "model": "dall-e-2", "prompt": "three cats", "n": 3, "size": "512x512"}
    expect_upstream(responses_mock, upstream_payload(body, quality="standard"), json_body=openai_image_response(3))

    cost = post(client, body).get_json()["_meta"]["cost"]

    assert (cost["estimated"], cost["actual"], cost["pricePerImage"]) == (0.054, 0.054, 0.018)
    assert cost["imagesCharged"] == 3


@pytest.mark.parametrize(
    ("request_fields", "reported", "reserved_per_image", "charged_per_image"),
    [
        pytest.param({}, {"quality": "medium", "size": "1024x1024"}, 0.167, 0.042, id="auto-quality-medium"),
        pytest.param({"quality": "auto", "size": "auto"}, {"quality": "low", "size": "1024x1536"}, 0.25, 0.016,
                     id="auto-quality-and-size"),
        pytest.param({"quality": "high", "size": "1536x1024"}, {"quality": "high", "size": "1536x1024"}, 0.25, 0.25,
                     id="explicit-high"),
        pytest.param({}, {}, 0.167, 0.167, id="nothing-reported-charges-reserved-price"),
    ],
)
def test_gpt_image_reserves_highest_and_charges_reported(client, app, responses_mock, request_fields, reported,
                                                         reserved_per_image, charged_per_image):
    body = {"provider": "openai", "model": "gpt-image-1", "prompt": "an otter", "n": 2, "output_format": "webp",
            **request_fields}
    expect_upstream(responses_mock, upstream_payload(body, size="1024x1024", quality="auto"),
                    json_body={"created": 1, "data": [{"b64_json": "AA=="}, {"b64_json": "AA=="}], **reported})

    response = post(client, body)

    assert response.status_code == 200
    cost = response.get_json()["_meta"]["cost"]
    assert cost["estimated"] == round(2 * reserved_per_image, 6)
    assert cost["pricePerImage"] == charged_per_image
    assert cost["actual"] == round(2 * charged_per_image, 6)
    assert cost["chargedBy"] == "per_image"  # no usage reported: the per-image figure is charged
    reservation, charge = ledger_lines(app)
    # A token-priced model also reserves its prompt's text tokens: 8 bytes x $5 per 1M.
    assert reservation["amount"] == cost["reserved"] == round(2 * reserved_per_image + 8 * 5 / 1_000_000, 6)
    assert charge["cost"] == cost["actual"] and charge["pricePerImage"] == charged_per_image


def test_fewer_images_than_requested_are_charged_as_returned(client, app, responses_mock):
    body = {"provider": "openai", "model": "dall-e-2", "prompt": "birds", "n": 3}
    expect_upstream(responses_mock, upstream_payload(body, size="1024x1024", quality="standard"),
                    json_body=openai_image_response(2))

    cost = post(client, body).get_json()["_meta"]["cost"]

    assert (cost["imagesRequested"], cost["imagesCharged"]) == (3, 2)
    assert (cost["estimated"], cost["actual"]) == (0.06, 0.04)
    assert ledger_lines(app)[-1]["imagesReturned"] == 2


def test_demo_key_allowed_upstream_when_configured(make_app, responses_mock):
    client = make_app(ALLOW_DEMO_KEYS_UPSTREAM=True).test_client()
    expect_upstream(responses_mock, upstream_payload(README_BODY), json_body=openai_image_response(1))

    assert post(client, README_BODY, key=DEMO_KEY).status_code == 200


def test_demo_key_allowed_against_loopback_provider(make_app, responses_mock):
    client = make_app(OPENAI_BASE_URL="http://127.0.0.1:3199/v1").test_client()
    responses_mock.post("http://127.0.0.1:3199/v1/images/generations", json=openai_image_response(1),
                        match=[matchers.json_params_matcher(upstream_payload(README_BODY))])

    assert post(client, README_BODY, key=DEMO_KEY).status_code == 200


def test_unexpected_failure_during_provider_call_charges_the_reservation(client, app, monkeypatch):
    def explode(self, payload, request_id):
        raise RuntimeError("socket library blew up")

    monkeypatch.setattr(OpenAIProvider, "generate", explode)

    response = post(client, README_BODY)

    assert response.status_code == 500
    assert response.get_json()["code"] == "INTERNAL_ERROR"
    reservation, charge = ledger_lines(app)
    assert set(charge) == SUMMARY_FIELDS
    # Unknown outcome: the provider may have generated the image, so the reserved amount is charged.
    assert (charge["status"], charge["cost"], charge["imagesReturned"]) == ("gateway_error", 0.04, None)


# --- the error catalogue -------------------------------------------------------------------

def body_with(**changes):
    body = {**README_BODY, **changes}
    return {name: value for name, value in body.items() if value is not None}


def error_case(status, code, message=None, *, id, body=README_BODY, key=USER_KEY, data=None,
               content_type="application/json", method="POST", path=ENDPOINT, config=None, details=None, patch=None):
    """One row of the error table: a request and the error it must get."""
    request_spec = {"body": body, "key": key, "data": data, "content_type": content_type, "method": method,
                    "path": path, "config": config or {}, "patch": patch}
    return pytest.param(request_spec, status, code, message, details, id=id)


def expired_key(add_key):
    return add_key(expires_at="2026-11-26T11:59:59Z")


def models_limited_key(add_key):
    return add_key(allowed_models=["dall-e-2"])


def break_access_check(monkeypatch):
    def explode(*args):
        raise RuntimeError("kaboom at /srv/secret/path")

    monkeypatch.setattr("ziri_images.api.check_access", explode)


ERROR_CASES = [
    error_case(400, "API_KEY_REQUIRED", "API key required. Include X-API-Key header.", key=None, id="missing-key"),
    error_case(400, "API_KEY_REQUIRED", "API key required. Include X-API-Key header.", key="   ", id="blank-key"),
    error_case(401, "INVALID_API_KEY_FORMAT", key="sk-not-a-gateway-key", id="bad-key-format"),
    error_case(401, "INVALID_API_KEY_FORMAT", key=USER_KEY.upper(), id="uppercase-secret"),
    error_case(403, "API_KEY_INVALID", key="ziri-nobody-" + "0" * 32, id="unknown-key"),
    error_case(403, "API_KEY_REVOKED_OR_DISABLED", key=DISABLED_KEY, id="disabled-key"),
    error_case(403, "API_KEY_EXPIRED", key=expired_key, id="expired-key"),
    error_case(403, "AUTHORIZATION_DENIED", "This key may not use model 'dall-e-3'.", key=models_limited_key,
               id="model-not-allowed"),
    error_case(400, "MISSING_FIELDS", "provider, model, and prompt are required", body=body_with(prompt=None),
               id="missing-prompt"),
    error_case(400, "MISSING_FIELDS", "provider, model, and prompt are required", body=body_with(prompt=""),
               id="empty-prompt"),
    error_case(400, "MISSING_FIELDS", "provider, model, and prompt are required", body={"prompt": "x"},
               id="missing-provider-and-model"),
    error_case(400, "VALIDATION_ERROR", body=body_with(n=0), details="n", id="n-zero"),
    error_case(400, "VALIDATION_ERROR", body=body_with(n="2"), details="n", id="n-string"),
    error_case(400, "VALIDATION_ERROR", body=body_with(n=1.5), details="n", id="n-float"),
    error_case(400, "VALIDATION_ERROR", body=body_with(n=True), details="n", id="n-bool"),
    error_case(400, "VALIDATION_ERROR", body=body_with(prompt=42), details="prompt", id="prompt-number"),
    error_case(400, "VALIDATION_ERROR", body=body_with(size=["1024x1024"]), details="size", id="size-list"),
    error_case(400, "VALIDATION_ERROR", body=body_with(stream="yes"), details="stream", id="stream-string"),
    error_case(400, "VALIDATION_ERROR", body=body_with(style="cartoon"), details="style", id="style-unknown-value"),
    error_case(400, "PROMPT_TOO_LONG", body=body_with(model="dall-e-2", prompt="x" * 1001), id="prompt-too-long"),
    error_case(404, "PROVIDER_NOT_FOUND", "Provider 'midjourney' not found.", body=body_with(provider="midjourney"),
               id="unknown-provider"),
    error_case(400, "ACTION_NOT_SUPPORTED",
               "Model gpt-4o does not support image_generation action. Use gpt-image-2.6-flare instead.",
               body=body_with(model="gpt-4o"), id="chat-model"),
    error_case(400, "IMAGE_CONFIG_NOT_FOUND", "Image pricing not configured for model 'dall-e-3' (hd, 256x256)",
               body=body_with(quality="hd", size="256x256"), id="unpriced-size"),
    error_case(400, "IMAGE_CONFIG_NOT_FOUND", "Image pricing not configured for model 'dall-e-2' (hd, 1024x1024)",
               body=body_with(model="dall-e-2", quality="hd"), id="unpriced-quality"),
    error_case(400, "IMAGE_CONFIG_NOT_FOUND", "Image pricing not configured for model 'dall-e-3' (auto, 1024x1024)",
               body=body_with(quality="auto"), id="auto-not-offered"),
    error_case(400, "IMAGE_CONFIG_NOT_FOUND", "Image pricing not configured for model 'dall-e-9'",
               body=body_with(model="dall-e-9"), id="unknown-model"),
    error_case(400, "IMAGE_REQUEST_TOO_LARGE", "Requested number of images (5) exceeds maximum allowed (1)",
               body=body_with(n=5), id="too-many-images"),
    error_case(400, "PARAMETER_NOT_SUPPORTED", "Model 'gpt-image-1' does not accept: response_format",
               body=body_with(model="gpt-image-1", quality=None, response_format="url"),
               id="response-format-gpt-image"),
    error_case(400, "PARAMETER_NOT_SUPPORTED", "Model 'dall-e-2' does not accept: style",
               body=body_with(model="dall-e-2", quality=None, style="vivid"), id="style-dall-e-2"),
    error_case(400, "STREAMING_NOT_SUPPORTED", body=body_with(stream=True), id="stream"),
    error_case(500, "PROVIDER_KEY_MISSING", "No API key configured for provider 'openai' (set OPENAI_API_KEY).",
               config={"OPENAI_API_KEY": ""}, id="no-provider-key"),
    error_case(403, "DEMO_KEY_RESTRICTED", key=DEMO_KEY, id="demo-key-upstream"),
    error_case(400, "INVALID_JSON", body=None, data='{"provider": "openai",', id="malformed-json"),
    error_case(400, "INVALID_JSON", body=None, data="", id="empty-body"),
    error_case(400, "INVALID_JSON", body=None, data=b'\xff\xfe{"provider": 1}', id="not-utf-8"),
    error_case(415, "UNSUPPORTED_MEDIA_TYPE", body=None, data=json.dumps(README_BODY), content_type="text/plain",
               id="not-json-content-type"),
    error_case(413, "REQUEST_TOO_LARGE", body=body_with(prompt="x" * 2000), config={"MAX_CONTENT_LENGTH": 1024},
               id="body-too-large"),
    error_case(400, "INVALID_BODY", "Request body must be a JSON object.", body=[README_BODY], id="json-array"),
    error_case(400, "INVALID_BODY", "Request body must be a JSON object.", body="draw a cat", id="json-string"),
    error_case(404, "NOT_FOUND", key=None, path="/api/images/nope", id="unknown-route"),
    error_case(405, "METHOD_NOT_ALLOWED", method="GET", body=None, id="get-generations"),
    error_case(400, "API_KEY_REQUIRED", key=None, method="GET", body=None, path="/api/me/usage", id="usage-no-key"),
    error_case(500, "INTERNAL_ERROR", "Internal server error.", patch=break_access_check, id="unexpected-exception"),
]


def send(make_app, add_key, monkeypatch, spec):
    """Build the app for ``spec`` and send its request; return (app, response)."""
    app = make_app(**spec["config"])
    if spec["patch"]:
        spec["patch"](monkeypatch)
    key = spec["key"](add_key) if callable(spec["key"]) else spec["key"]
    headers = {} if key is None else {"X-API-Key": key}
    kwargs = {"headers": headers}
    if spec["data"] is not None:
        kwargs.update(data=spec["data"], content_type=spec["content_type"])
    elif spec["body"] is not None:
        kwargs["json"] = spec["body"]
    return app, app.test_client().open(spec["path"], method=spec["method"], **kwargs)


@pytest.mark.parametrize(("spec", "status", "code", "message", "detail_field"), ERROR_CASES)
def test_error_catalogue(make_app, add_key, monkeypatch, responses_mock, caplog, spec, status, code, message,
                         detail_field):
    app, response = send(make_app, add_key, monkeypatch, spec)

    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert body["error"] == message
    if detail_field is not None:
        assert list(body["details"]) == [detail_field]
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert response.headers["x-should-retry"] == "false"
    assert "Traceback" not in response.get_data(as_text=True)
    assert len(responses_mock.calls) == 0
    assert ledger_lines(app) == []


def test_method_not_allowed_lists_allowed_methods(client):
    response = client.get(ENDPOINT)

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_validation_error_names_each_bad_field(client):
    response = post(client, body_with(n=0, size=7, quality=["hd"]))

    assert response.status_code == 400
    details = response.get_json()["details"]
    assert set(details) == {"n", "size", "quality"}
    assert all(isinstance(messages, list) and messages for messages in details.values())


def test_unexpected_exception_is_logged_with_request_id_not_answered(client, monkeypatch, caplog):
    break_access_check(monkeypatch)

    response = post(client, README_BODY)

    request_id = response.get_json()["requestId"]
    assert "kaboom" not in response.get_data(as_text=True)
    assert any(request_id in record.getMessage() and record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    ("key", "body", "data", "code"),
    [
        pytest.param(None, None, "{not json", "API_KEY_REQUIRED", id="no-key-before-bad-json"),
        pytest.param("sk-wrong", [1, 2], None, "INVALID_API_KEY_FORMAT", id="bad-format-before-bad-body"),
        pytest.param("ziri-nobody-" + "0" * 32, {"prompt": "x"}, None, "API_KEY_INVALID",
                     id="unknown-key-before-missing-fields"),
        pytest.param(DISABLED_KEY, body_with(model="gpt-4o"), None, "API_KEY_REVOKED_OR_DISABLED",
                     id="disabled-key-before-catalog"),
        pytest.param(USER_KEY, body_with(model="dall-e-9", n=0), None, "VALIDATION_ERROR",
                     id="body-before-catalog"),
        pytest.param(USER_KEY, {"provider": "nobody", "model": "x"}, None, "MISSING_FIELDS",
                     id="missing-fields-before-provider"),
        pytest.param(DEMO_KEY, body_with(model="dall-e-9"), None, "IMAGE_CONFIG_NOT_FOUND",
                     id="catalog-before-demo-restriction"),
    ],
)
def test_checks_run_key_then_body_then_catalog(client, app, key, body, data, code):
    headers = {} if key is None else {"X-API-Key": key}
    if data is not None:
        response = client.post(ENDPOINT, data=data, content_type="application/json", headers=headers)
    else:
        response = client.post(ENDPOINT, json=body, headers=headers)

    assert response.get_json()["code"] == code
    assert ledger_lines(app) == []


# --- provider failures through the endpoint -------------------------------------------------

SAFETY_MESSAGE = "Your request was rejected as a result of our safety system."
ECHO = f"Incorrect API key provided: {PROVIDER_KEY}. You can find your API key at https://platform.openai.test."


def openai_error(message, type_="invalid_request_error", code=None):
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def provider_case(upstream, status, *, id, retry="false", headers=None, message=None, provider_error=None,
                  may_have_billed=False):
    return pytest.param(upstream, status, retry, headers or {}, message, provider_error, may_have_billed, id=id)


PROVIDER_CASES = [
    provider_case({"status": 400, "json": openai_error(SAFETY_MESSAGE, code="content_policy_violation")}, 400,
                  message=SAFETY_MESSAGE, id="content-policy",
                  provider_error={"status": 400, "type": "invalid_request_error", "code": "content_policy_violation",
                                  "requestId": "req_upstream"}),
    provider_case({"status": 400, "json": openai_error(f"bad request from {PROVIDER_KEY}")}, 400,
                  message="bad request from [redacted]", id="400-echoing-provider-key"),
    provider_case({"status": 500, "json": openai_error(ECHO, "server_error")}, 502, retry="true", id="500"),
    provider_case({"status": 502, "body": "<html>Bad gateway</html>"}, 502, retry="true",
                  message="Provider 'openai' answered HTTP 502.", id="502-html"),
    provider_case({"status": 503, "json": openai_error("overloaded", "server_error")}, 502, retry="true", id="503"),
    provider_case({"status": 401, "json": openai_error(ECHO, code="invalid_api_key")}, 502,
                  message="Provider 'openai' rejected the gateway's credentials: Incorrect API key provided: "
                          "[redacted]. You can find your API key at https://platform.openai.test.",
                  id="401-gateway-credential"),
    provider_case({"status": 429, "json": openai_error("Rate limit reached", "requests", "rate_limit_exceeded"),
                   "headers": {"Retry-After": "20"}}, 429, retry="true", headers={"Retry-After": "20"},
                  message="Rate limit reached", id="429-retry-after"),
    provider_case({"status": 429, "json": openai_error("You exceeded your current quota", "insufficient_quota",
                                                       "insufficient_quota")}, 429, id="429-insufficient-quota"),
    provider_case({"body": requests.ReadTimeout(f"read timed out for {PROVIDER_KEY}")}, 504, may_have_billed=True,
                  id="read-timeout"),
    provider_case({"body": requests.ConnectTimeout("connect timed out")}, 504, retry="true", id="connect-timeout"),
    provider_case({"body": requests.ConnectionError("Connection aborted.")}, 502, may_have_billed=True,
                  id="connection-dropped"),
    provider_case({"status": 200, "body": f"not json {PROVIDER_KEY}"}, 502, may_have_billed=True, id="200-not-json"),
    provider_case({"status": 200, "json": {"created": 1}}, 502, may_have_billed=True, id="200-without-data"),
    provider_case({"status": 200, "json": {"created": 1, "data": {"url": "x"}}}, 502, may_have_billed=True,
                  id="200-data-not-a-list"),
]


@pytest.mark.parametrize(("upstream", "status", "retry", "headers", "message", "provider_error", "may_have_billed"),
                         PROVIDER_CASES)
def test_provider_failure(client, app, responses_mock, upstream, status, retry, headers, message, provider_error,
                          may_have_billed):
    upstream = {**upstream, "headers": {"x-request-id": "req_upstream", **upstream.get("headers", {})}}
    responses_mock.post(GENERATIONS_URL, match=[matchers.json_params_matcher(upstream_payload(README_BODY))],
                        **upstream)

    response = post(client, README_BODY)

    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == "LLM_PROVIDER_ERROR"
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert response.headers["x-should-retry"] == retry
    for name, value in headers.items():
        assert response.headers[name] == value
    if message is not None:
        assert body["error"] == message
    if provider_error is not None:
        assert body["providerError"] == provider_error
    assert PROVIDER_KEY not in response.get_data(as_text=True)

    reservation, charge = ledger_lines(app)
    if 200 <= upstream.get("status", 0) < 300:  # a 2xx it could not use: the provider may have billed it all
        assert set(charge) == PROVIDER_ERROR_CHARGE_FIELDS | {"chargedBy"} and charge["chargedBy"] == "reservation"
        assert (charge["status"], charge["cost"], charge["imagesReturned"]) == ("provider_error",
                                                                              reservation["amount"], None)
    else:
        assert set(charge) == PROVIDER_ERROR_CHARGE_FIELDS
        assert (charge["status"], charge["cost"], charge["imagesReturned"]) == ("provider_error", 0.0, 0)
    assert charge["httpStatus"] == status
    assert charge["mayHaveBilled"] is may_have_billed
    assert charge["shouldRetry"] is (retry == "true")  # what the client was told
    assert PROVIDER_KEY not in Path(app.config["LEDGER_PATH"]).read_text(encoding="utf-8")


# --- other endpoints --------------------------------------------------------------------------

def test_usage_reports_spend_of_the_key(client, responses_mock):
    expect_upstream(responses_mock, upstream_payload(README_BODY), json_body=openai_image_response(1))
    assert post(client, README_BODY).status_code == 200

    response = client.get("/api/me/usage", headers={"X-API-Key": USER_KEY})

    assert response.status_code == 200
    usage = response.get_json()
    assert (usage["keyId"], usage["user"], usage["currency"]) == ("key_user", "alice", "USD")
    assert usage["daily"]["period"] == START.strftime("%Y-%m-%d")
    assert (usage["daily"]["spent"], usage["daily"]["limit"], usage["daily"]["remaining"]) == (0.04, 5.0, 4.96)
    assert usage["daily"]["requests"] == 1
    assert (usage["monthly"]["spent"], usage["monthly"]["limit"]) == (0.04, 50.0)
    assert usage["inFlight"] == 0
    assert USER_KEY not in response.get_data(as_text=True)


def test_usage_of_a_fresh_key_is_zero(client):
    usage = client.get("/api/me/usage", headers={"X-API-Key": DEMO_KEY}).get_json()

    assert usage["keyId"] == "key_demo"
    assert usage["daily"]["spent"] == 0 and usage["daily"]["remaining"] is None


def test_health(client):
    first, second = client.get("/health"), client.get("/health")

    assert first.status_code == 200
    assert first.get_json() == {"status": "ok"}
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]

