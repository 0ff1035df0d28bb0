"""The shipped catalog through the endpoint: retired models, the current models, and pricing.json
reloaded while the gateway runs."""

import json
import logging
import os
from datetime import datetime
from datetime import timezone

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import ledger_lines
from conftest import openai_image_response
from conftest import package_modules_loaded_by
from responses import matchers

from ziri_images.dev.stub import create_stub_app

PUBLISHED_OPENAI_URL = "https://api.openai.com/v1"  # providers.json's base_url for openai
XAI_URL = "https://api.x.ai/v1/images/generations"
PROMPT = "a lighthouse"  # 12 bytes: a prompt bound of 12 x $5 / 1M = $0.00006
CURRENT_OPENAI_MODELS = ("gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-sunburst", "gpt-image-2.5-flare",
                         "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2.5-flare-2026-09-08",
                         "gpt-image-2.6-sunburst", "gpt-image-2.6-flare")


def post(client, **fields):
    body = {"provider": "openai", "prompt": PROMPT, **fields}
    return client.post(ENDPOINT, json=body, headers={"X-API-Key": USER_KEY})


# --- retired models ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("provider", "model", "settings", "suggestion"),
    [
        pytest.param("openai", "dall-e-3", {"OPENAI_BASE_URL": PUBLISHED_OPENAI_URL}, "gpt-image-2.6-flare",
                     id="openai-dall-e-3"),
        pytest.param("openai", "gpt-image-1-mini", {"OPENAI_BASE_URL": PUBLISHED_OPENAI_URL}, "gpt-image-2.6-flare",
                     id="openai-gpt-image-1-mini"),
        pytest.param("azure", "dall-e-3", {}, "gpt-image-2", id="azure-dall-e-3"),
    ],
)
def test_a_retired_model_is_refused_before_anything_is_reserved_or_sent(make_app, clock, responses_mock, provider,
                                                                        model, settings, suggestion):
    clock.now = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)  # gpt-image-1-mini shut down the day before
    app = make_app(**settings)

    response = post(app.test_client(), provider=provider, model=model)

    assert response.status_code == 410
    body = response.get_json()
    assert (body["code"], body["model"], body["suggestedModel"]) == ("MODEL_RETIRED", model, suggestion)
    assert body["error"].startswith(f"Model '{model}' was retired by {provider} on ")
    assert response.headers["x-should-retry"] == "false"
    assert len(responses_mock.calls) == 0
    assert ledger_lines(app) == []


def test_a_compatible_endpoint_still_serves_a_retired_model(client, responses_mock):
    # The test provider is at api.openai.test, not OpenAI's own API: OpenAI's retirements do not apply.
    responses_mock.post(GENERATIONS_URL, json=openai_image_response())

    assert post(client, model="dall-e-3").status_code == 200


# --- the current models ----------------------------------------------------------------------

@pytest.mark.parametrize("model", CURRENT_OPENAI_MODELS)
def test_current_openai_models_reserve_published_tokens_and_charge_the_usage(client, app, responses_mock, model):
    usage = {"input_tokens": 3, "input_tokens_details": {"text_tokens": 3, "image_tokens": 0}, "output_tokens": 5488}
    responses_mock.post(GENERATIONS_URL, json={"created": 1, "data": [{"b64_json": "AA=="}], "quality": "high",
                                               "size": "1536x1024", "usage": usage}, match=[
        matchers.json_params_matcher({"model": model, "prompt": PROMPT, "n": 1, "quality": "high",
                                      "size": "1536x1024"})])

    cost = post(client, model=model, quality="high", size="1536x1024").get_json()["_meta"]["cost"]

    # High 1536x1024 is OpenAI's published 5,488 output tokens ($0.16464), not the tier's bound.
    assert (cost["estimated"], cost["reserved"]) == (0.16464, 0.1647)
    assert (cost["chargedBy"], cost["actual"]) == ("tokens", 0.164655)


@pytest.mark.parametrize(
    ("model", "fields", "code", "field"),
    [
        pytest.param("gpt-image-2.6-flare", {"quality": "xhigh"}, "IMAGE_CONFIG_NOT_FOUND", "quality", id="xhigh"),
        pytest.param("gpt-image-2.5-sunburst", {"quality": "max"}, "IMAGE_CONFIG_NOT_FOUND", "quality", id="max"),
        pytest.param("gpt-image-2.6-sunburst", {"complexity": "high"}, "PARAMETER_NOT_SUPPORTED", None,
                     id="complexity"),
        pytest.param("gpt-image-2.6-flare", {"output_format": "gif"}, "VALIDATION_ERROR", None, id="gif"),
        pytest.param("gpt-image-2.6-flare", {"output_format": "svg"}, "VALIDATION_ERROR", None, id="svg"),
        pytest.param("gpt-image-2", {"background": "transparent"}, "VALIDATION_ERROR", None, id="transparent"),
        pytest.param("gpt-image-2.6-sunburst", {"background": "transparent"}, "VALIDATION_ERROR", None,
                     id="transparent-2.6"),
    ],
)
def test_what_cannot_be_bounded_is_not_offered(client, app, responses_mock, model, fields, code, field):
    response = post(client, model=model, **fields)

    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert len(responses_mock.calls) == 0
    assert ledger_lines(app) == []


def test_grok_imagine_image_is_sent_resolution_and_aspect_ratio_and_charged_per_image(client, responses_mock):
    responses_mock.post(XAI_URL, json={"data": [{"url": "https://imgen.x.ai/1.jpg"}, {"url": "https://imgen.x.ai/2.jpg"}]},
                        match=[matchers.json_params_matcher({"model": "grok-imagine-image", "prompt": PROMPT, "n": 2,
                                                             "resolution": "1k", "aspect_ratio": "16:9"})])

    response = post(client, provider="xai", model="grok-imagine-image", n=2, aspect_ratio="16:9")

    cost = response.get_json()["_meta"]["cost"]
    assert (cost["resolution"], cost["pricePerImage"], cost["actual"], cost["chargedBy"]) == (
        "1k", 0.02, 0.04, "per_image")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        pytest.param({"size": "1024x1024"}, "PARAMETER_NOT_SUPPORTED", id="size"),
        pytest.param({"quality": "high"}, "PARAMETER_NOT_SUPPORTED", id="quality"),
        pytest.param({"resolution": "2k"}, "IMAGE_CONFIG_NOT_FOUND", id="2k-has-no-verified-price"),
        pytest.param({"aspect_ratio": "5:4"}, "VALIDATION_ERROR", id="unlisted-aspect-ratio"),
    ],
)
def test_grok_imagine_image_refuses_what_xai_does_not_price(client, responses_mock, fields, code):
    response = post(client, provider="xai", model="grok-imagine-image", **fields)

    assert (response.status_code, response.get_json()["code"]) == (400, code)


# --- pricing.json reloaded while the gateway runs ---------------------------------------------

def replace_catalog(path, change):
    """Edit the catalog as an operator's editor does: write a new file, then rename it over the old one."""
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    temporary = path.with_name("pricing.json.new")
    temporary.write_text(json.dumps(document), encoding="utf-8")
    os.replace(temporary, path)


def dalle3_standard_square(price):
    def change(document):
        document["providers"]["openai"]["models"]["dall-e-3"]["prices"]["standard"]["1024x1024"] = price
    return change


def test_a_price_change_applies_to_the_next_request_without_a_restart(client, pricing_path, responses_mock):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response())
    assert post(client, model="dall-e-3").get_json()["_meta"]["cost"]["actual"] == 0.04

    replace_catalog(pricing_path, dalle3_standard_square(0.05))

    cost = post(client, model="dall-e-3").get_json()["_meta"]["cost"]
    assert (cost["reserved"], cost["actual"]) == (0.05, 0.05)


def test_a_request_in_flight_keeps_the_price_it_was_quoted(client, app, pricing_path, responses_mock):
    def answer(request):
        replace_catalog(pricing_path, dalle3_standard_square(0.08))  # lands while the provider works
        return 200, {}, json.dumps(openai_image_response())

    responses_mock.add_callback("POST", GENERATIONS_URL, callback=answer)

    cost = post(client, model="dall-e-3").get_json()["_meta"]["cost"]

    assert (cost["reserved"], cost["actual"], cost["pricePerImage"]) == (0.04, 0.04, 0.04)
    assert [line["cost"] for line in ledger_lines(app) if line["type"] == "charge"] == [0.04]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(lambda document: document["providers"]["openai"]["models"]["dall-e-3"].update(max_images="x"),
                     "models.dall-e-3: missing or invalid", id="invalid-entry"),
        pytest.param(lambda document: document["providers"]["azure"]["models"].update(
            {"gpt-image-2-copy": {"kind": "image", "based_on": "gpt-image-2"}}),
            "providers.azure.deployments: no deployment for gpt-image-2-copy", id="no-azure-deployment"),
    ],
)
def test_a_broken_catalog_edit_keeps_the_previous_catalog_and_is_logged_once(client, pricing_path, responses_mock,
                                                                             caplog, change, problem):
    responses_mock.post(GENERATIONS_URL, json=openai_image_response())
    replace_catalog(pricing_path, dalle3_standard_square(0.06))
    replace_catalog(pricing_path, change)

    with caplog.at_level(logging.ERROR, logger="ziri_images"):
        costs = [post(client, model="dall-e-3").get_json()["_meta"]["cost"]["actual"] for _ in range(2)]

    assert costs == [0.04, 0.04]
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("pricing file change ignored, keeping the previous version: ")
    assert problem in errors[0]


# --- the local stub answers the current models as the real APIs do ----------------------------

def stub_generate(body):
    client = create_stub_app().test_client()
    return client.post("/v1/images/generations", json=body, headers={"Authorization": "Bearer sk-local"})


@pytest.mark.parametrize(
    ("model", "quality", "size", "tokens"),
    [
        pytest.param("gpt-image-2.6-flare", "high", "1536x1024", 5488, id="2.6-high-landscape"),
        pytest.param("gpt-image-2.6-sunburst", "high", "1024x1024", 7024, id="2.6-high-square"),
        pytest.param("gpt-image-2.5-sunburst", "low", "1024x1024", 196, id="2.5-low"),
        pytest.param("gpt-image-2-2026-04-21", "medium", "1024x1536", 1372, id="snapshot-medium-portrait"),
    ],
)
def test_the_stub_reports_the_output_tokens_of_each_quality(model, quality, size, tokens):
    body = stub_generate({"model": model, "prompt": PROMPT, "n": 2, "quality": quality, "size": size}).get_json()

    assert (body["quality"], body["size"], len(body["data"])) == (quality, size, 2)
    assert body["usage"]["output_tokens"] == 2 * tokens


def test_the_stub_answers_grok_imagine_image_as_xai_does():
    answer = stub_generate({"model": "grok-imagine-image", "prompt": PROMPT, "resolution": "1k",
                            "aspect_ratio": "16:9"})
    refused = stub_generate({"model": "grok-imagine-image", "prompt": PROMPT, "size": "1024x1024"})

    assert answer.status_code == 200 and "url" in answer.get_json()["data"][0]
    assert "usage" not in answer.get_json()
    assert (refused.status_code, refused.get_json()["error"]["message"]) == (400, "Argument not supported: size")


def test_the_catalog_checks_a_models_fields_without_the_request_schemas():
    loaded = package_modules_loaded_by("ziri_images.catalog.quoting")
    assert "ziri_images.schemas" not in loaded and "ziri_images.catalog.quoting" in loaded
