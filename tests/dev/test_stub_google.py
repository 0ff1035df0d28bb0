"""The stub answers Google's shapes: generateContent on the Gemini API and Vertex AI, and the token endpoint."""

import base64
import io
import json
import time

import pytest
from conftest import SHIPPED_PRICING
from google.auth import crypt
from google.auth import jwt
from google_credentials import service_account_info

from ziri_images.dev import stub_gemini
from ziri_images.dev.stub import create_stub_app
from ziri_images.uploads.imageinfo import image_info

GEMINI = "/v1beta/models/{model}:generateContent"
VERTEX = "/v1/projects/ziri-test/locations/us-central1/publishers/google/models/{model}:generateContent"
PROMPT = "a red fox in the snow"  # 21 characters: 5 tokens at four characters a token
CATALOG = json.loads(SHIPPED_PRICING.read_text(encoding="utf-8"))


@pytest.fixture
def stub():
    return create_stub_app().test_client()


def request_body(prompt=PROMPT, images=0, **image_config):
    parts = [{"text": prompt}] + [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}] * images
    config = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def gemini(stub, model="gemini-3.1-flash-image", key="any-key", **body):
    headers = {"x-goog-api-key": key} if key else {}
    return stub.post(GEMINI.format(model=model), json=request_body(**body), headers=headers)


def assertion(audience, expires_in=3600):
    now = int(time.time())
    signer = crypt.RSASigner.from_service_account_info(service_account_info())
    claims = {"iss": "ziri-test@ziri-test-project.iam.gserviceaccount.com", "aud": audience, "iat": now,
              "exp": now + expires_in, "scope": "https://www.googleapis.com/auth/cloud-platform"}
    return jwt.encode(signer, claims).decode("ascii")


def access_token(stub):
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion("http://x/token")}
    answer = stub.post("/token", data=grant)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def image_part(answer):
    [candidate] = answer["candidates"]
    [data] = [part["inlineData"]["data"] for part in candidate["content"]["parts"] if "inlineData" in part]
    return image_info(io.BytesIO(base64.b64decode(data)))


@pytest.mark.parametrize(("model", "config", "size", "image_tokens"), [
    pytest.param("gemini-3.1-flash-image", {}, (1024, 1024), 1120, id="default-1:1-1K"),
    pytest.param("gemini-3.1-flash-image", {"aspectRatio": "3:2", "imageSize": "2K"}, (2528, 1696), 1680,
                 id="flash-3:2-2K"),
    pytest.param("gemini-3-pro-image", {"aspectRatio": "16:9", "imageSize": "4K"}, (5504, 3072), 2000,
                 id="pro-16:9-4K"),
    pytest.param("gemini-3-pro-image", {"aspectRatio": "21:9", "imageSize": "1K"}, (1584, 672), 1120,
                 id="pro-21:9-1K"),
    pytest.param("gemini-3.1-flash-image", {"aspectRatio": "1:4", "imageSize": "1K"}, (512, 2048), 1120,
                 id="flash-1:4-computed"),
])
def test_the_image_follows_image_config_and_the_usage_its_tier(stub, model, config, size, image_tokens):
    answer = gemini(stub, model=model, **config).get_json()

    info = image_part(answer)
    assert (info.format, info.width, info.height) == ("png", *size)
    [candidate] = answer["candidates"]
    assert candidate["finishReason"] == "STOP"
    [text] = [part["text"] for part in candidate["content"]["parts"] if "text" in part]
    assert PROMPT in text
    usage = answer["usageMetadata"]
    assert usage["promptTokenCount"] == 5
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": 5}]
    assert usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": image_tokens},
                                                {"modality": "TEXT", "tokenCount": len(text) // 4}]
    assert usage["candidatesTokenCount"] == image_tokens + len(text) // 4
    assert usage["thoughtsTokenCount"] == stub_gemini.THOUGHT_TOKENS
    assert usage["totalTokenCount"] == 5 + usage["candidatesTokenCount"] + stub_gemini.THOUGHT_TOKENS


def test_reference_images_are_counted_in_the_prompt(stub):
    usage = gemini(stub, model="gemini-3-pro-image", images=2).get_json()["usageMetadata"]

    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": 5},
                                            {"modality": "IMAGE", "tokenCount": 2 * 560}]
    assert usage["promptTokenCount"] == 5 + 2 * 560


def test_the_stubs_token_counts_are_the_catalogs():
    """The stub states Google's figures again: the catalog's, for every Google model both providers list."""
    for provider in ("google", "vertex"):
        for model, entry in CATALOG["providers"][provider]["models"].items():
            family = stub_gemini.family(model)
            assert stub_gemini.IMAGE_TOKENS[family] == entry["output_tokens_per_image"], model
            assert stub_gemini.INPUT_IMAGE_TOKENS[family] == entry["input_image_tokens"], model
            assert set(entry["size_mapping"]["aspect_ratio"]) == set(stub_gemini.aspect_ratios(model)), model


@pytest.mark.parametrize(("prompt", "feedback", "finish"), [
    pytest.param("a fox [stub:blocked]", {"blockReason": "SAFETY"}, None, id="prompt-blocked"),
    pytest.param("a fox [stub:blocked=PROHIBITED_CONTENT]", {"blockReason": "PROHIBITED_CONTENT"}, None,
                 id="prompt-prohibited"),
    pytest.param("a fox [stub:blocked=IMAGE_SAFETY]", None, "IMAGE_SAFETY", id="image-safety"),
])
def test_a_safety_block_answers_no_image_and_bills_the_prompt(stub, prompt, feedback, finish):
    response = gemini(stub, prompt=prompt)
    answer = response.get_json()

    assert response.status_code == 200
    assert answer.get("promptFeedback") == feedback
    assert [candidate.get("finishReason") for candidate in answer.get("candidates", [])] == ([finish] if finish else [])
    assert all("content" not in candidate for candidate in answer.get("candidates", []))
    assert answer["usageMetadata"]["promptTokenCount"] == len(prompt) // 4
    assert answer["usageMetadata"].get("candidatesTokensDetails", []) in ([], [{"modality": "TEXT", "tokenCount": 0}])


def test_directives_serve_another_tier_and_drop_the_image_or_the_usage(stub):
    served = gemini(stub, prompt="a fox [stub:served=1K]", aspectRatio="1:1", imageSize="4K").get_json()
    no_image = gemini(stub, prompt="a fox [stub:noimage]").get_json()
    no_usage = gemini(stub, prompt="a fox [stub:nousage]").get_json()

    assert (image_part(served).width, served["usageMetadata"]["candidatesTokensDetails"][0]["tokenCount"]) == (1024,
                                                                                                               1120)
    assert [list(part) for part in no_image["candidates"][0]["content"]["parts"]] == [["text"]]
    assert "usageMetadata" not in no_usage and image_part(no_usage).width == 1024


@pytest.mark.parametrize(("kwargs", "status", "google_status"), [
    pytest.param({"key": None}, 403, "PERMISSION_DENIED", id="no-key"),
    pytest.param({"model": "gemini-3-pro"}, 404, "NOT_FOUND", id="not-an-image-model"),
    pytest.param({"aspectRatio": "7:3"}, 400, "INVALID_ARGUMENT", id="unknown-ratio"),
    pytest.param({"model": "gemini-3.1-flash-lite-image", "imageSize": "2K"}, 400, "INVALID_ARGUMENT",
                 id="tier-not-offered"),
    pytest.param({"prompt": "a fox [stub:status=429]"}, 429, "RESOURCE_EXHAUSTED", id="directive-429"),
    pytest.param({"prompt": "a fox [stub:status=503]"}, 503, "UNAVAILABLE", id="directive-503"),
])
def test_refusals_are_in_googles_error_shape(stub, kwargs, status, google_status):
    response = gemini(stub, **kwargs)

    assert response.status_code == status
    assert response.get_json()["error"]["code"] == status
    assert response.get_json()["error"]["status"] == google_status


def test_vertex_takes_only_a_token_the_stub_issued(stub):
    url = VERTEX.format(model="gemini-3-pro-image")
    refused = stub.post(url, json=request_body(), headers={"Authorization": "Bearer ya29.made-up"})
    token = access_token(stub)
    answered = stub.post(url, json=request_body(), headers={"Authorization": f"Bearer {token['access_token']}"})

    assert (refused.status_code, refused.get_json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert (token["expires_in"], token["token_type"]) == (3600, "Bearer")
    assert token["access_token"].startswith("ya29.")
    assert answered.status_code == 200 and image_part(answered.get_json()).width == 1024
    assert stub.get("/stats").get_json()["tokensIssued"] == 1


@pytest.mark.parametrize(("form", "error"), [
    pytest.param({"grant_type": "client_credentials", "assertion": "a.b.c"}, "unsupported_grant_type",
                 id="another-grant"),
    pytest.param({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, "invalid_grant", id="no-assertion"),
    pytest.param({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not.a.jwt"},
                 "invalid_grant", id="not-a-jwt"),
    pytest.param({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                  "assertion": assertion("http://x/token", expires_in=-60)}, "invalid_grant", id="expired"),
])
def test_the_token_endpoint_refuses_what_is_not_a_jwt_bearer_grant(stub, form, error):
    response = stub.post("/token", data=form)

    assert response.status_code == 400
    assert response.get_json()["error"] == error
