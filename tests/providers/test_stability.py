"""Stability AI through the endpoint: the multipart form sent, each answer and failure, and the charge."""

import email.parser
import email.policy

import pytest
import requests
from conftest import ENDPOINT
from conftest import STABILITY_KEY
from conftest import STABILITY_URL
from conftest import USER_KEY
from conftest import ledger_lines

from ziri_images.providers.stability import build_form

GENERATE = f"{STABILITY_URL}/v2beta/stable-image/generate"
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
SUCCESS = {"image": IMAGE, "finish_reason": "SUCCESS", "seed": 1050}
FILTERED = {"image": IMAGE, "finish_reason": "CONTENT_FILTERED", "seed": 1050}


def post(client, **fields):
    body = {"provider": "stability", "model": "sd3.5-large", "prompt": "a lighthouse", **fields}
    return client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY})


def form_of(request):
    """Return {field: text} of a multipart request, and assert no field is a file."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    fields = {}
    for part in message.iter_parts():
        assert part.get_filename() is None
        fields[part.get_param("name", header="content-disposition")] = part.get_content().strip()
    return fields


@pytest.mark.parametrize(("model", "endpoint", "sent_model"), [
    pytest.param("stable-image-ultra", "ultra", None, id="ultra"),
    pytest.param("stable-image-core", "core", None, id="core"),
    pytest.param("sd3.5-large-turbo", "sd3", "sd3.5-large-turbo", id="sd3-names-its-model"),
])
def test_build_form_picks_the_endpoint_and_names_sd3_models(model, endpoint, sent_model):
    payload = {"model": model, "prompt": "a lighthouse", "n": 3, "aspect_ratio": "1:1", "seed": 7,
               "response_format": "b64_json"}

    path, form = build_form(payload)

    assert path == endpoint
    fields = dict((name, value) for name, (_, value) in form)
    expected = {"prompt": "a lighthouse", "aspect_ratio": "1:1", "seed": "7"}
    assert fields == ({**expected, "model": sent_model} if sent_model else expected)
    assert all(filename is None for _, (filename, _) in form)  # form fields, not files


def test_sends_one_multipart_call_with_the_nearest_aspect_ratio(client, app, responses_mock):
    responses_mock.post(f"{GENERATE}/sd3", json=SUCCESS, headers={"x-request-id": "stab_req_1"})

    response = post(client, size="1792x1024", seed=1050, negative_prompt="fog", output_format="png")

    assert response.status_code == 200, response.get_json()
    request = responses_mock.calls[0].request
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {STABILITY_KEY}"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert form_of(request) == {"prompt": "a lighthouse", "aspect_ratio": "16:9", "seed": "1050",
                                "negative_prompt": "fog", "output_format": "png", "model": "sd3.5-large"}
    assert USER_KEY.encode() not in request.body
    body = response.get_json()
    assert body["data"] == [{"b64_json": IMAGE, "seed": 1050}]
    assert (body["_meta"]["cost"]["actual"], body["_meta"]["providerRequestId"]) == (0.065, "stab_req_1")
    reservation, charge = ledger_lines(app)
    assert (reservation["amount"], charge["cost"], charge["imagesReturned"]) == (0.065, 0.065, 1)


def test_n_images_are_n_calls_under_one_reservation(client, app, responses_mock):
    for _ in range(3):
        responses_mock.post(f"{GENERATE}/ultra", json=SUCCESS)

    response = post(client, model="stable-image-ultra", n=3, size="1024x1536")

    assert response.status_code == 200
    assert len(responses_mock.calls) == 3
    assert {form_of(call.request)["aspect_ratio"] for call in responses_mock.calls} == {"2:3"}
    assert len(response.get_json()["data"]) == 3
    reservation, charge = ledger_lines(app)
    assert (reservation["amount"], charge["cost"]) == (0.24, 0.24)


def test_a_filtered_image_is_a_policy_error_charged_one_image(client, app, responses_mock):
    responses_mock.post(f"{GENERATE}/core", json={**FILTERED, "id": "stab_req_2"})

    response = post(client, model="stable-image-core")

    assert response.status_code == 400
    error = response.get_json()
    assert (error["code"], error["reason"]) == ("CONTENT_POLICY_VIOLATION", "CONTENT_FILTERED")
    assert IMAGE not in response.get_data(as_text=True)  # the blurred image is not delivered
    _, charge = ledger_lines(app)
    assert (charge["status"], charge["cost"], charge["chargedBy"], charge["imagesBilled"]) == (
        "provider_error", 0.03, "provider", 1)
    assert charge["providerRequestId"] == "stab_req_2"


def test_every_image_filtered_is_charged_every_image(client, app, responses_mock):
    for _ in range(2):
        responses_mock.post(f"{GENERATE}/sd3", json=FILTERED)

    response = post(client, model="sd3.5-medium", n=2)

    assert (response.status_code, response.get_json()["code"]) == (400, "CONTENT_POLICY_VIOLATION")
    _, charge = ledger_lines(app)
    assert (charge["cost"], charge["imagesBilled"], charge["chargedBy"]) == (0.07, 2, "provider")


def test_one_filtered_image_of_two_is_charged_with_the_delivered_one(client, app, responses_mock):
    responses_mock.post(f"{GENERATE}/sd3", json=SUCCESS)
    responses_mock.post(f"{GENERATE}/sd3", json=FILTERED)

    response = post(client, model="sd3.5-medium", n=2)

    assert response.status_code == 200
    assert len(response.get_json()["data"]) == 1
    assert response.get_json()["_meta"]["cost"]["actual"] == 0.07
    _, charge = ledger_lines(app)
    assert (charge["imagesReturned"], charge["imagesBilledUndelivered"], charge["cost"]) == (1, 1, 0.07)


@pytest.mark.parametrize(("status", "answer", "gateway_status", "code", "retry", "message"), [
    pytest.param(400, {"id": "e1", "name": "bad_request", "errors": ["prompt: is required", "seed: too large"]},
                 400, "LLM_PROVIDER_ERROR", "false", "prompt: is required; seed: too large", id="400-errors-list"),
    pytest.param(401, {"id": "e2", "name": "unauthorized", "errors": ["missing authorization header"]},
                 502, "LLM_PROVIDER_ERROR", "false",
                 "Provider 'stability' rejected the gateway's credentials: missing authorization header", id="401"),
    pytest.param(403, {"id": "e3", "name": "content_moderation",
                       "errors": ["Your request was flagged by our content moderation system."]},
                 400, "CONTENT_POLICY_VIOLATION", "false", None, id="403-moderation-is-the-prompt"),
    pytest.param(429, {"id": "e4", "name": "rate_limit_exceeded", "errors": ["You have exceeded 150 requests"]},
                 429, "LLM_PROVIDER_ERROR", "true", "You have exceeded 150 requests", id="429"),
    pytest.param(500, {"id": "e5", "name": "internal_error", "message": "An unexpected server error occurred."},
                 502, "LLM_PROVIDER_ERROR", "true", "An unexpected server error occurred.", id="500-message"),
])
def test_stability_errors_map_to_the_gateways_codes(client, app, responses_mock, status, answer, gateway_status,
                                                    code, retry, message):
    responses_mock.post(f"{GENERATE}/sd3", status=status, json=answer)

    response = post(client)

    assert response.status_code == gateway_status
    error = response.get_json()
    assert (error["code"], response.headers["x-should-retry"]) == (code, retry)
    if message is not None:
        assert error["error"] == message
    _, charge = ledger_lines(app)
    assert (charge["cost"], charge["providerRequestId"]) == (0.0, answer["id"])


@pytest.mark.parametrize(("answer", "cost"), [
    pytest.param({"status": 200, "body": "<html>ok</html>"}, 0.065, id="200-not-json-charges-the-reservation"),
    pytest.param({"status": 200, "json": {"finish_reason": "SUCCESS"}}, 0.065, id="200-without-image"),
    # As for every provider: no answer, no charge, but the record says it may have billed.
    pytest.param({"body": requests.ConnectionError("reset")}, 0.0, id="dropped-connection-may-have-billed"),
])
def test_unusable_answers_are_502_and_say_they_may_have_billed(client, app, responses_mock, answer, cost):
    responses_mock.post(f"{GENERATE}/sd3", **answer)

    response = post(client)

    assert response.status_code == 502
    _, charge = ledger_lines(app)
    assert charge["cost"] == cost and charge["mayHaveBilled"] is True


def test_a_size_it_cannot_map_is_refused_before_any_call(client, app, responses_mock):
    response = post(client, size="large")

    assert (response.status_code, response.get_json()["code"]) == (400, "INVALID_SIZE")
    assert len(responses_mock.calls) == 0 and ledger_lines(app) == []


def test_openais_sdk_path_reaches_stability_with_provider_in_the_body(client, app, responses_mock):
    # OpenAI's SDKs send extra_body={"provider": "stability"} merged into the JSON body.
    responses_mock.post(f"{GENERATE}/core", json=SUCCESS)

    response = client.post("/v1/images/generations", json={"model": "stable-image-core", "prompt": "a lighthouse",
                                                            "provider": "stability", "size": "1024x1024"},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == [{"b64_json": IMAGE, "seed": 1050}]
    assert form_of(responses_mock.calls[0].request)["aspect_ratio"] == "1:1"
