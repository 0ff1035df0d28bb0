"""Every configured provider through the endpoint: what is sent (URL, headers, body), and how its answers map.

The ``app`` fixture configures the shipped providers.json with fake credentials: OpenAI at
``BASE_URL``, Azure OpenAI at ``AZURE_ENDPOINT`` and xAI at its real URL. ``responses`` matches
the exact URL (query string included), the exact set of headers (so no second credential and
no client key leaves the gateway) and the exact JSON body.
"""

import json
import logging
import re

import pytest
import requests
from conftest import AZURE_ENDPOINT
from conftest import AZURE_KEY
from conftest import DEMO_KEY
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import PROJECT_DIR
from conftest import PROVIDER_KEY
from conftest import RECRAFT_KEY
from conftest import RECRAFT_URL
from conftest import USER_KEY
from conftest import XAI_KEY
from conftest import exact_headers
from conftest import ledger_lines
from responses import matchers

from ziri_images.errors import ConfigError

AZURE_QUERY = "?api-version=2025-04-01-preview"
AZURE_DALLE3_URL = f"{AZURE_ENDPOINT}/openai/deployments/dall-e-3/images/generations{AZURE_QUERY}"
AZURE_GPT_IMAGE_1_URL = f"{AZURE_ENDPOINT}/openai/deployments/gpt-image-1/images/generations{AZURE_QUERY}"
XAI_URL = "https://api.x.ai/v1/images/generations"
BEARER_OPENAI = {"Authorization": f"Bearer {PROVIDER_KEY}"}
API_KEY_AZURE = {"api-key": AZURE_KEY}
BEARER_XAI = {"Authorization": f"Bearer {XAI_KEY}"}
BEARER_RECRAFT = {"Authorization": f"Bearer {RECRAFT_KEY}"}


def expect(responses_mock, url, credential, sent, **answer):
    """Register the one upstream call a test expects; ``url`` must match exactly, query string included."""
    path, _, query = url.partition("?")
    match = [matchers.json_params_matcher(sent), matchers.header_matcher(exact_headers(credential), strict_match=True),
             matchers.query_string_matcher(query)]
    return responses_mock.post(path, match=match, **answer)


def post(client, body, key=USER_KEY):
    return client.post(ENDPOINT, json=body, headers={"X-API-Key": key})


# --- success: each provider's request and answer shapes ------------------------------------

AZURE_DALLE3_ANSWER = {
    "created": 1764158400,
    "data": [{
        "url": "https://dalleproduse.blob.core.windows.net/private/images/0b1c.png?se=2026-11-27T12%3A00%3A00Z&sig=x",
        "revised_prompt": "A lighthouse on a cliff at dusk, waves below.",
        "content_filter_results": {"hate": {"filtered": False, "severity": "safe"},
                                   "violence": {"filtered": False, "severity": "safe"}},
        "prompt_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
    }],
}
AZURE_GPT_IMAGE_1_ANSWER = {
    "created": 1764158400,
    "data": [{"b64_json": "iVBORw0KGgo="}],
    "background": "opaque", "output_format": "png", "quality": "low", "size": "1024x1024",
    "usage": {"input_tokens": 3, "input_tokens_details": {"image_tokens": 0, "text_tokens": 3},
              "output_tokens": 272, "total_tokens": 275},
}
XAI_ANSWER = {"data": [{"b64_json": "iVBORw0KGgo=", "revised_prompt": "A lighthouse at dusk."},
                       {"b64_json": "iVBORw0KGgo=", "revised_prompt": "A lighthouse at dusk."}]}
OPENAI_GPT_IMAGE_2_ANSWER = {
    "created": 1764158400,
    "data": [{"b64_json": "iVBORw0KGgo="}],
    "background": "opaque", "output_format": "png", "quality": "low", "size": "1280x720",
    "usage": {"input_tokens": 3, "input_tokens_details": {"image_tokens": 0, "text_tokens": 3},
              "output_tokens": 106, "output_tokens_details": {"image_tokens": 106, "text_tokens": 0},
              "total_tokens": 109},
}


@pytest.fixture(autouse=True)
def azure_still_serving_dalle3(pricing_path):
    """Keep Azure's dall-e-3 in service here: these tests use its deployment for Azure's wire format.

    Azure has retired it (the shipped catalog refuses it with MODEL_RETIRED, see test_pricing.py).
    """
    document = json.loads(pricing_path.read_text(encoding="utf-8"))
    del document["providers"]["azure"]["models"]["dall-e-3"]["retired"]
    pricing_path.write_text(json.dumps(document), encoding="utf-8")


@pytest.mark.parametrize(
    ("body", "url", "credential", "sent", "answer", "actual", "charged_by"),
    [
        pytest.param({"provider": "openai", "model": "gpt-image-2", "prompt": "a lighthouse", "quality": "low",
                      "size": "1280x720"},
                     GENERATIONS_URL, BEARER_OPENAI,
                     {"model": "gpt-image-2", "prompt": "a lighthouse", "n": 1, "quality": "low", "size": "1280x720"},
                     OPENAI_GPT_IMAGE_2_ANSWER, 0.003195, "tokens",  # 3 x $5 + 106 x $30 = 3,195 millionths
                     id="openai-gpt-image-2"),
        pytest.param({"provider": "azure", "model": "dall-e-3", "prompt": "a lighthouse", "quality": "hd",
                      "size": "1792x1024", "style": "natural"},
                     AZURE_DALLE3_URL, API_KEY_AZURE,
                     {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "quality": "hd", "size": "1792x1024",
                      "style": "natural"},
                     AZURE_DALLE3_ANSWER, 0.12, "per_image", id="azure-dall-e-3"),
        pytest.param({"provider": "azure", "model": "gpt-image-1", "prompt": "a lighthouse", "quality": "low"},
                     AZURE_GPT_IMAGE_1_URL, API_KEY_AZURE,
                     {"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1, "quality": "low", "size": "1024x1024"},
                     AZURE_GPT_IMAGE_1_ANSWER, 0.010895, "tokens",  # 3 x $5 + 272 x $40 = 10,895 millionths
                     id="azure-gpt-image-1"),
        pytest.param({"provider": "xai", "model": "grok-imagine-image", "prompt": "a lighthouse", "n": 2,
                      "response_format": "b64_json"},
                     XAI_URL, BEARER_XAI,
                     {"model": "grok-imagine-image", "prompt": "a lighthouse", "n": 2, "resolution": "1k",
                      "response_format": "b64_json"},
                     XAI_ANSWER, 0.04, "per_image", id="xai-grok-imagine-image"),
    ],
)
def test_each_provider_is_sent_exactly_its_request(client, app, responses_mock, body, url, credential, sent, answer,
                                                   actual, charged_by):
    expect(responses_mock, url, credential, sent, json=answer, headers={"x-request-id": "req_upstream_7"})

    response = post(client, body)

    assert response.status_code == 200, response.get_json()
    assert responses_mock.calls[0].request.url == url
    result = response.get_json()
    assert result["data"] == answer["data"]
    meta = result["_meta"]
    assert (meta["provider"], meta["providerRequestId"]) == (body["provider"], "req_upstream_7")
    assert (meta["cost"]["actual"], meta["cost"]["chargedBy"]) == (actual, charged_by)
    reservation, charge = ledger_lines(app)
    assert reservation["provider"] == charge["provider"] == body["provider"]
    assert (charge["status"], charge["cost"]) == ("succeeded", actual)
    sent_text = responses_mock.calls[0].request.body.decode()
    assert USER_KEY not in sent_text and "provider" not in json.loads(sent_text)


@pytest.mark.parametrize(("answer", "charged", "served"), [
    pytest.param({"quality": "low", "model": "grok-imagine-image-2.0", "usage": {"cost_in_usd_ticks": 800000000}},
                 0.08, {"quality": "low"}, id="served-quality-reported"),
    pytest.param({}, 0.12, None, id="not-reported-charges-the-dearest-reserved"),
])
def test_grok_imagine_2_auto_reserves_the_dearest_and_charges_the_quality_served(client, app, responses_mock, answer,
                                                                                 charged, served):
    sent = {"model": "grok-imagine-image-2.0", "prompt": "a lighthouse", "n": 2, "quality": "auto",
            "resolution": "1k", "aspect_ratio": "5:2"}
    expect(responses_mock, XAI_URL, BEARER_XAI, sent, json={**XAI_ANSWER, **answer})

    response = post(client, {"provider": "xai", "model": "grok-imagine-image-2.0", "prompt": "a lighthouse", "n": 2,
                             "aspect_ratio": "5:2"})

    assert response.status_code == 200, response.get_json()
    reservation, charge = ledger_lines(app)
    assert (reservation["amount"], charge["cost"]) == (0.12, charged)  # medium 1k $0.06 reserved per image
    assert charge.get("providerChoices") == served
    # xAI's own figure (10^10 ticks a dollar) is kept beside the charge, for reconciliation.
    assert charge.get("providerBilled") == (0.08 if "usage" in answer else None)


@pytest.mark.parametrize(("model", "retired_on"), [
    pytest.param("grok-2-image-1212", "2026-02-24", id="grok-2-image"),
    pytest.param("grok-imagine-image-quality", "2026-11-02", id="grok-imagine-image-quality"),
])
def test_xai_retired_models_are_refused_naming_the_replacement(client, app, responses_mock, model, retired_on):
    response = post(client, {"provider": "xai", "model": model, "prompt": "a lighthouse"})

    assert response.status_code == 410
    error = response.get_json()
    assert (error["code"], error["retiredOn"], error["suggestedModel"]) == (
        "MODEL_RETIRED", retired_on, "grok-imagine-image-2.0")
    assert len(responses_mock.calls) == 0 and ledger_lines(app) == []


@pytest.mark.parametrize(("model", "answer", "cost"), [
    pytest.param("recraftv4_1", {"created": 1, "data": [{"url": "https://img.recraft.test/a.webp"}], "credits": 35},
                 0.035, id="raster"),
    pytest.param("recraftv4_1_vector", {"created": 1, "data": [{"url": "https://img.recraft.test/a.svg"}]}, 0.08,
                 id="vector-svg-url-passed-through"),
])
def test_recraft_is_sent_its_style_and_substyle(client, app, responses_mock, model, answer, cost):
    fields = {"style": "digital_illustration", "substyle": "hand_drawn", "size": "1024x1024"}
    expect(responses_mock, f"{RECRAFT_URL}/images/generations", BEARER_RECRAFT,
           {"model": model, "prompt": "a lighthouse", "n": 1, **fields}, json=answer)

    response = post(client, {"provider": "recraft", "model": model, "prompt": "a lighthouse", **fields})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == answer["data"]
    assert ledger_lines(app)[1]["cost"] == cost


def test_azure_deployment_names_come_from_configuration(make_app, providers_path, responses_mock):
    document = json.loads(providers_path.read_text())
    document["providers"]["azure"]["deployments"] = {"dall-e-3": "images/dalle 3", "gpt-image-1": "gpt-image-1-prod",
                                                    "gpt-image-2": "gpt-image-2-prod"}
    providers_path.write_text(json.dumps(document))
    url = f"{AZURE_ENDPOINT}/openai/deployments/images%2Fdalle%203/images/generations{AZURE_QUERY}"
    sent = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "quality": "standard", "size": "1024x1024"}
    expect(responses_mock, url, API_KEY_AZURE, sent, json=AZURE_DALLE3_ANSWER)

    response = post(make_app().test_client(), {"provider": "azure", "model": "dall-e-3", "prompt": "a lighthouse"})

    assert response.status_code == 200
    assert responses_mock.calls[0].request.url == url


# --- error shapes ---------------------------------------------------------------------------

AZURE_DALLE3_BODY = {"provider": "azure", "model": "dall-e-3", "prompt": "a lighthouse"}
AZURE_DALLE3_SENT = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "quality": "standard", "size": "1024x1024"}
XAI_BODY = {"provider": "xai", "model": "grok-imagine-image", "prompt": "a lighthouse"}
XAI_SENT = {"model": "grok-imagine-image", "prompt": "a lighthouse", "n": 1, "resolution": "1k"}
AZURE = (AZURE_DALLE3_BODY, AZURE_DALLE3_URL, API_KEY_AZURE, AZURE_DALLE3_SENT)
XAI = (XAI_BODY, XAI_URL, BEARER_XAI, XAI_SENT)
SAFETY = "Your task failed as a result of our safety system."
XAI_INVALID = "Client specified an invalid argument"


def azure_error(code, message, **extra):
    return {"error": {"code": code, "message": message, **extra}}


def xai_error(code, message):
    return {"code": code, "error": message}


def error_case(provider, upstream, status, *, id, retry="false", message=None, provider_error=None, reason=None,
               headers=None):
    return pytest.param(provider, upstream, status, retry, message, provider_error, reason, headers or {}, id=id)


ERROR_CASES = [
    error_case(AZURE, {"status": 400, "json": azure_error("contentFilter", SAFETY)}, 400, message=SAFETY,
               provider_error={"status": 400, "code": "contentFilter"}, reason="content_policy",
               id="azure-content-filter"),
    error_case(AZURE, {"status": 400, "json": azure_error(
        "content_policy_violation", "Your request was rejected as a result of our safety system.",
        type="invalid_request_error", inner_error={"code": "ResponsibleAIPolicyViolation",
                                                   "content_filter_results": {"violence": {"filtered": True}}})},
               400, provider_error={"status": 400, "code": "content_policy_violation", "type": "invalid_request_error"},
               reason="content_policy", id="azure-content-policy-with-inner-error"),
    error_case(AZURE, {"status": 401, "json": azure_error(
        "401", "Access denied due to invalid subscription key or wrong API endpoint.")}, 502,
               message="Provider 'azure' rejected the gateway's credentials: Access denied due to invalid "
                       "subscription key or wrong API endpoint.", id="azure-401-is-the-gateways-fault"),
    error_case(AZURE, {"status": 404, "json": azure_error(
        "DeploymentNotFound", "The API deployment for this resource does not exist.")}, 404,
               provider_error={"status": 404, "code": "DeploymentNotFound"}, id="azure-deployment-not-found"),
    error_case(AZURE, {"status": 429, "headers": {"Retry-After": "6"}, "json": azure_error(
        "429", "Requests to the Images_Generations Operation have exceeded call rate limit.")}, 429, retry="true",
               headers={"Retry-After": "6"}, id="azure-429"),
    error_case(AZURE, {"status": 500, "json": azure_error("InternalServerError", "Backend error.")}, 502,
               retry="true", id="azure-500"),
    error_case(XAI, {"status": 400, "json": xai_error(XAI_INVALID, "Generated image rejected by content moderation.")},
               400, message="Generated image rejected by content moderation.",
               provider_error={"status": 400, "code": XAI_INVALID}, id="xai-400-error-string"),
    error_case(XAI, {"status": 400, "json": xai_error(
        XAI_INVALID, "Incorrect API key provided: xa***56. You can obtain an API key from https://console.x.ai.")},
               502, message="Provider 'xai' rejected the gateway's credentials: Incorrect API key provided: xa***56. "
                            "You can obtain an API key from https://console.x.ai.",
               id="xai-wrong-key-is-a-400-but-the-gateways-fault"),
    error_case(XAI, {"status": 400, "json": xai_error(XAI_INVALID, f"Bad key {XAI_KEY} for this team")}, 400,
               message="Bad key [redacted] for this team", id="xai-echoed-key-is-redacted"),
    error_case(XAI, {"status": 429, "json": xai_error("Some resource has been exhausted", "Rate limit reached.")},
               429, retry="true", provider_error={"status": 429, "code": "Some resource has been exhausted"},
               id="xai-429"),
    error_case(XAI, {"status": 503, "body": "<html>unavailable</html>"}, 502, retry="true",
               message="Provider 'xai' answered HTTP 503.", id="xai-503-not-json"),
    error_case(XAI, {"status": 200, "json": {"data": "nope"}}, 502, message="Provider 'xai' returned a response "
               "without image data.", id="xai-200-without-image-list"),
    error_case(XAI, {"body": requests.ReadTimeout()}, 504, id="xai-read-timeout"),
]


@pytest.mark.parametrize(("provider", "upstream", "status", "retry", "message", "provider_error", "reason", "headers"),
                         ERROR_CASES)
def test_provider_errors_map_like_openais(client, app, responses_mock, provider, upstream, status, retry, message,
                                          provider_error, reason, headers):
    body, url, credential, sent = provider
    expect(responses_mock, url, credential, sent, **{"headers": {"x-request-id": "req_up"}, **upstream})

    response = post(client, body)

    assert response.status_code == status
    error = response.get_json()
    assert (error["code"], error["provider"]) == ("LLM_PROVIDER_ERROR", body["provider"])
    assert response.headers["x-should-retry"] == retry
    if message is not None:
        assert error["error"] == message
    if provider_error is not None:
        assert error["providerError"] == {**provider_error, "requestId": "req_up"}
    assert error.get("reason") == reason
    for name, value in headers.items():
        assert response.headers[name] == value
    for secret in (AZURE_KEY, XAI_KEY):
        assert secret not in response.get_data(as_text=True)
    reservation, charge = ledger_lines(app)
    # An error status billed nothing; a 2xx the gateway could not read may have billed what was reserved.
    cost = reservation["amount"] if 200 <= upstream.get("status", 0) < 300 else 0.0
    assert (charge["status"], charge["cost"], charge["provider"]) == ("provider_error", cost, body["provider"])


def test_openai_moderation_block_has_the_same_reason(client, responses_mock):
    expect(responses_mock, GENERATIONS_URL, BEARER_OPENAI,
           {"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1, "quality": "auto", "size": "1024x1024"},
           status=400, json={"error": {"message": "Your request was rejected by the safety system.",
                                       "type": "image_generation_user_error", "param": None,
                                       "code": "moderation_blocked"}})

    response = post(client, {"provider": "openai", "model": "gpt-image-1", "prompt": "a lighthouse"})

    assert (response.status_code, response.get_json()["reason"]) == (400, "content_policy")


# --- refused before any call -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "unsupported"),
    [
        pytest.param({"size": "1024x1024"}, ["size"], id="size"),
        pytest.param({"quality": "hd"}, ["quality"], id="quality"),
        pytest.param({"size": "1024x1024", "quality": "hd", "style": "vivid"}, ["quality", "size", "style"],
                     id="all-three"),
    ],
)
def test_xai_refuses_size_and_quality(client, app, responses_mock, fields, unsupported):
    response = post(client, {**XAI_BODY, **fields})

    assert response.status_code == 400
    error = response.get_json()
    assert (error["code"], error["unsupported"], error["accepted"]) == (
        "PARAMETER_NOT_SUPPORTED", unsupported, ["aspect_ratio", "resolution", "response_format"])
    assert error["error"] == f"Model 'grok-imagine-image' does not accept: {', '.join(unsupported)}"
    assert len(responses_mock.calls) == 0
    assert ledger_lines(app) == []


@pytest.mark.parametrize(
    ("config", "provider", "message"),
    [
        pytest.param({"OPENAI_API_KEY": ""}, "openai",
                     "No API key configured for provider 'openai' (set OPENAI_API_KEY).", id="openai-key"),
        pytest.param({"AZURE_OPENAI_API_KEY": ""}, "azure",
                     "No API key configured for provider 'azure' (set AZURE_OPENAI_API_KEY).", id="azure-key"),
        pytest.param({"AZURE_OPENAI_ENDPOINT": ""}, "azure",
                     "No endpoint configured for provider 'azure' (set AZURE_OPENAI_ENDPOINT).", id="azure-endpoint"),
        pytest.param({"XAI_API_KEY": ""}, "xai", "No API key configured for provider 'xai' (set XAI_API_KEY).",
                     id="xai-key"),
    ],
)
def test_missing_credential_names_its_variable(make_app, responses_mock, config, provider, message):
    app = make_app(**config)
    model = {"openai": "dall-e-3", "azure": "dall-e-3", "xai": "grok-imagine-image"}[provider]

    response = post(app.test_client(), {"provider": provider, "model": model, "prompt": "a lighthouse"})

    assert response.status_code == 500
    assert (response.get_json()["code"], response.get_json()["error"]) == ("PROVIDER_KEY_MISSING", message)
    assert len(responses_mock.calls) == 0 and ledger_lines(app) == []


def test_unknown_provider_lists_the_configured_ones(client):
    response = post(client, {"provider": "midjourney", "model": "v7", "prompt": "a lighthouse"})

    assert response.status_code == 404
    assert response.get_json()["availableProviders"] == ["azure", "bfl", "google", "openai", "recraft", "stability",
                                                         "vertex", "xai"]


def test_demo_key_reaches_a_provider_only_on_loopback(make_app, responses_mock):
    refused = post(make_app().test_client(), AZURE_DALLE3_BODY, key=DEMO_KEY)
    assert (refused.status_code, refused.get_json()["code"]) == (403, "DEMO_KEY_RESTRICTED")

    local = "http://localhost:8080"
    expect(responses_mock, f"{local}/openai/deployments/dall-e-3/images/generations{AZURE_QUERY}", API_KEY_AZURE,
           AZURE_DALLE3_SENT, json=AZURE_DALLE3_ANSWER)
    allowed = post(make_app(AZURE_OPENAI_ENDPOINT=local).test_client(), AZURE_DALLE3_BODY, key=DEMO_KEY)
    assert allowed.status_code == 200


# --- configuration: credentials from the environment, validated once at start-up ----------

def test_credentials_and_base_urls_come_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("XAI_API_KEY", "xai-from-the-environment-123456")
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "ignored-because-config-names-it")

    # None: the config does not name the variable, so the environment is read.
    providers = make_app(XAI_API_KEY=None, XAI_BASE_URL=None).extensions["ziri_images"].providers

    assert (providers["xai"].api_key, providers["xai"].base_url) == ("xai-from-the-environment-123456",
                                                                    "http://127.0.0.1:9/v1")
    assert providers["xai"].is_loopback is True
    assert providers["azure"].api_key == AZURE_KEY


def test_start_up_never_logs_a_credential(make_app, caplog, responses_mock):
    with caplog.at_level(logging.DEBUG, logger="ziri_images"):
        app = make_app(XAI_API_KEY="")
        expect(responses_mock, AZURE_DALLE3_URL, API_KEY_AZURE, AZURE_DALLE3_SENT, json=AZURE_DALLE3_ANSWER)
        assert post(app.test_client(), AZURE_DALLE3_BODY).status_code == 200

    assert "provider xai: no API key until XAI_API_KEY is set" in caplog.text
    for secret in (PROVIDER_KEY, AZURE_KEY):
        assert secret not in caplog.text


def edit(document, change):
    change(document["providers"])
    return document


PROVIDER_FILE_CASES = [
    pytest.param(lambda p: p["xai"].update(type="grpc"), "providers.xai.type: expected one of openai, azure",
                 id="unknown-type"),
    pytest.param(lambda p: p["xai"].update(api_key="xai-secret"),
                 "providers.xai: credentials are never read from files", id="key-in-the-file"),
    pytest.param(lambda p: p["xai"].pop("api_key_env"), "providers.xai.api_key_env: expected an environment variable",
                 id="no-key-variable"),
    pytest.param(lambda p: p["xai"].update(api_key_env="xai key"), "providers.xai.api_key_env: expected an environment",
                 id="bad-key-variable"),
    pytest.param(lambda p: p["xai"].update(base_url="api.x.ai/v1"), "providers.xai.base_url: expected an http(s) URL",
                 id="base-url-without-scheme"),
    pytest.param(lambda p: [p["xai"].pop("base_url"), p["xai"].pop("base_url_env")],
                 "providers.xai: needs base_url, base_url_env or both", id="no-base-url"),
    pytest.param(lambda p: p["xai"].update(auth_header="X Api Key"),
                 "providers.xai.auth_header: expected an HTTP header", id="bad-header-name"),
    pytest.param(lambda p: p["xai"].update(timeout=5), "providers.xai: unknown field(s) timeout", id="unknown-field"),
    pytest.param(lambda p: p["xai"].update(deployments={"grok-2-image-1212": "g"}),
                 "providers.xai.deployments: only for type azure", id="deployments-on-openai-type"),
    pytest.param(lambda p: p["azure"].pop("api_version"), "providers.azure.api_version: required for type azure",
                 id="azure-without-api-version"),
    pytest.param(lambda p: p["azure"].update(deployments={}), "providers.azure.deployments: required for type azure",
                 id="azure-without-deployments"),
    pytest.param(lambda p: p["azure"]["deployments"].pop("gpt-image-1"),
                 "providers.azure.deployments: no deployment for gpt-image-1", id="catalog-model-without-deployment"),
    pytest.param(lambda p: p["azure"]["deployments"].update({"dall-e-2": "d2"}),
                 "providers.azure.deployments: dall-e-2 is not an image model of 'azure'",
                 id="deployment-not-in-catalog"),
    pytest.param(lambda p: p.pop("xai"), "provider 'xai' is in the catalog", id="catalog-provider-not-configured"),
    pytest.param(lambda p: p.update(ideogram={"type": "openai", "base_url": "https://api.ideogram.test/v1",
                                              "api_key_env": "IDEOGRAM_KEY"}),
                 "providers.ideogram: not in the catalog", id="configured-provider-not-in-catalog"),
]


@pytest.mark.parametrize(("change", "problem"), PROVIDER_FILE_CASES)
def test_invalid_providers_file_names_the_file_and_the_entry(make_app, providers_path, change, problem):
    providers_path.write_text(json.dumps(edit(json.loads(providers_path.read_text()), change)))

    with pytest.raises(ConfigError) as raised:
        make_app()

    assert str(raised.value).startswith(f"providers file {providers_path}: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param('{"providers": ', "Expecting value", id="bad-json"),
        pytest.param('{"providers": {}}', "expected an object with a non-empty 'providers' object", id="empty"),
    ],
)
def test_unreadable_providers_file_names_it(make_app, tmp_path, content, problem):
    path = tmp_path / "elsewhere.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ConfigError) as raised:
        make_app(PROVIDERS_FILE=str(path))

    assert str(raised.value).startswith(f"providers file {path}: ") and problem in str(raised.value)


def test_bad_base_url_in_the_environment_names_the_variable(make_app):
    with pytest.raises(ConfigError, match=r"environment variable XAI_BASE_URL \(provider 'xai' in providers file .*\): "
                                          r"expected an http\(s\) URL"):
        make_app(XAI_BASE_URL="api.x.ai")


# --- a new OpenAI-compatible provider, added by configuration alone (the documented example) --

def documented_example():
    """Return the (providers.json, pricing.json) snippets of docs/configuration.md's "Adding a provider" section."""
    page = (PROJECT_DIR / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = page.split("### Adding an OpenAI-compatible provider", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2, "the page shows a providers.json entry and a pricing.json entry"
    return [json.loads("{" + block + "}") for block in blocks]


def test_documented_example_adds_a_provider_by_configuration(make_app, providers_path, pricing_path, responses_mock):
    provider_entry, catalog_entry = documented_example()
    for path, entry in ((providers_path, provider_entry), (pricing_path, catalog_entry)):
        document = json.loads(path.read_text())
        document["providers"].update(entry)
        path.write_text(json.dumps(document))
    [(name, config)] = provider_entry.items()
    [model] = catalog_entry[name]["models"]
    client = make_app(**{config["api_key_env"]: "acme-test-key-0001", config["base_url_env"]: None}).test_client()
    sent = {"model": model, "prompt": "a lighthouse", "n": 1, "size": "512x512"}
    expect(responses_mock, config["base_url"] + "/images/generations", {"X-Api-Key": "acme-test-key-0001"}, sent,
           json={"created": 1, "data": [{"url": "https://images.acme.example/1.png"}]})

    response = post(client, {"provider": name, "model": model, "prompt": "a lighthouse", "size": "512x512"})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["_meta"]["cost"]["actual"] == catalog_entry[name]["models"][model]["prices"]["512x512"]
    refused = post(client, {"provider": name, "model": model, "prompt": "a lighthouse", "quality": "hd"})
    assert refused.get_json()["code"] == "PARAMETER_NOT_SUPPORTED"


def test_a_model_priced_by_resolution_sends_its_own_parameters(make_app, pricing_path, responses_mock):
    # Configuration alone: an xAI model priced per resolution (figures made up for the test).
    document = json.loads(pricing_path.read_text())
    document["providers"]["xai"]["models"]["grok-test-image"] = {
        "kind": "image", "source": "https://docs.x.ai/docs/models", "as_of": "2026-11-26", "max_images": 10,
        "max_prompt_chars": 8000, "price_dimensions": ["resolution"], "default_resolution": "1k",
        "params": {"aspect_ratio": ["1:1", "16:9", "9:16"], "response_format": ["url", "b64_json"]},
        "prices": {"1k": 0.02, "2k": 0.05},
    }
    pricing_path.write_text(json.dumps(document))
    client = make_app().test_client()
    body = {"provider": "xai", "model": "grok-test-image", "prompt": "a lighthouse", "n": 3}
    sent = {"model": "grok-test-image", "prompt": "a lighthouse", "n": 3, "resolution": "2k", "aspect_ratio": "16:9"}
    expect(responses_mock, XAI_URL, BEARER_XAI, sent, json={"data": [{"url": "https://x.test/1.png"}] * 3})

    response = post(client, {**body, "resolution": "2k", "aspect_ratio": "16:9"})

    assert response.status_code == 200
    cost = response.get_json()["_meta"]["cost"]
    assert (cost["resolution"], cost["estimated"], cost["actual"]) == ("2k", 0.15, 0.15)
    unpriced = post(client, {**body, "resolution": "4k"})
    assert (unpriced.get_json()["code"], unpriced.get_json()["error"]) == (
        "IMAGE_CONFIG_NOT_FOUND", "Image pricing not configured for model 'grok-test-image' (4k)")
    assert post(client, {**body, "size": "1024x1024"}).get_json()["code"] == "PARAMETER_NOT_SUPPORTED"
