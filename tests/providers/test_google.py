"""Google's Gemini API and Vertex AI through the endpoint: the request sent, the answer read, the money.

``responses`` stands in for Google: each test registers the exact calls it expects (URL, the one
credential header, the JSON body) and the answer. The figures in the comments are worked by hand
from pricing.json's Gemini entries (USD per 1M tokens: gemini-3.1-flash-image 0.50 in / 3 text
out / 60 image out; 1,120 image tokens at 1K, 1,680 at 2K; 2,048 text tokens bounded a call).
"""

import base64
import io
import struct
import zlib

import pytest
from conftest import ENDPOINT
from conftest import GEMINI_KEY
from conftest import GEMINI_URL
from conftest import USER_KEY
from conftest import VERTEX_TOKEN_URI
from conftest import VERTEX_URL
from conftest import exact_headers
from conftest import ledger_lines
from responses import matchers

FLASH = "gemini-3.1-flash-image"
FLASH_URL = f"{GEMINI_URL}/models/{FLASH}:generateContent"
VERTEX_FLASH_URL = (f"{VERTEX_URL}/projects/ziri-test-project/locations/us-central1/publishers/google/models/"
                    f"{FLASH}:generateContent")
PROMPT = "a red fox"  # 9 bytes: at most 9 prompt tokens


def png(width, height):
    """Return a PNG's signature and header chunk: enough for its size to be read."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode("ascii")


def usage(prompt=9, image=1120, text_tokens=20, thoughts=100, prompt_images=0):
    text = text_tokens
    details = [{"modality": "TEXT", "tokenCount": prompt}]
    if prompt_images:
        details.append({"modality": "IMAGE", "tokenCount": prompt_images})
    metadata = {"promptTokenCount": prompt + prompt_images, "promptTokensDetails": details,
                "candidatesTokenCount": image + text, "thoughtsTokenCount": thoughts,
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image},
                                            {"modality": "TEXT", "tokenCount": text}],
                "totalTokenCount": prompt + prompt_images + image + text + thoughts}
    return {"usageMetadata": metadata}


def answer(width=1024, height=1024, text="A red fox in snow.", finish="STOP", **figures):
    parts = [{"text": "thinking it over", "thought": True}, {"text": text},
             {"inlineData": {"mimeType": "image/png", "data": png(width, height)}}]
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
            "responseId": "resp_1", **usage(**figures)}


def sent(image_size="1K", aspect_ratio=None, max_tokens=1120 + 2048, parts=None):
    config = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1,
              "imageConfig": {**({"aspectRatio": aspect_ratio} if aspect_ratio else {}), "imageSize": image_size},
              "maxOutputTokens": max_tokens}
    return {"contents": [{"role": "user", "parts": parts or [{"text": PROMPT}]}], "generationConfig": config}


def expect(mock, body, url=FLASH_URL, credential=None, **reply):
    credential = credential or {"x-goog-api-key": GEMINI_KEY}
    headers = {**exact_headers(credential), "Accept": "application/json"}
    match = [matchers.json_params_matcher(body), matchers.header_matcher(headers, strict_match=True)]
    return mock.post(url, match=match, **reply)


def generate(client, path=ENDPOINT, **fields):
    body = {"provider": "google", "model": FLASH, "prompt": PROMPT, **fields}
    return client.post(path, json=body, headers={"X-API-Key": USER_KEY})


def charge_of(app):
    reservation, charge = ledger_lines(app)
    return reservation, charge


def test_a_size_is_sent_as_the_nearest_ratio_and_its_tier_and_charged_from_the_usage(app, client, responses_mock):
    expect(responses_mock, sent("2K", "3:2", 1680 + 2048), json=answer(2496, 1664, image=1680))

    response = generate(client, size="1536x1024")

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["data"] == [{"b64_json": png(2496, 1664), "revised_prompt": "A red fox in snow."}]
    assert (body["size"], body["image_size"]) == ("2496x1664", "2K")
    assert body["usage"]["usageMetadata"][0]["candidatesTokenCount"] == 1700
    # 9 x 0.50 + 1,680 x 60 + (20 + 100) x 3, per 1M tokens = 0.0000045 + 0.1008 + 0.00036
    assert body["_meta"]["cost"]["actual"] == 0.101165
    # 9 x 0.50 + 1,680 x 60 + 2,048 x 3 = 0.0000045 + 0.1008 + 0.006144
    assert body["_meta"]["cost"]["reserved"] == 0.106949
    assert body["_meta"]["cost"]["chargedBy"] == "tokens"
    reservation, charge = charge_of(app)
    assert (reservation["amount"], charge["cost"], charge["tokenCost"]) == (0.106949, 0.101165, 0.101165)


def test_aspect_ratio_and_image_size_are_taken_as_given(client, responses_mock):
    expect(responses_mock, sent("1K", "16:9"), json=answer(1376, 768))

    response = generate(client, aspect_ratio="16:9", image_size="1K")

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["image_size"] == "1K"


@pytest.mark.parametrize(("fields", "code"), [
    pytest.param({"quality": "high"}, "PARAMETER_NOT_SUPPORTED", id="quality"),
    pytest.param({"response_format": "url"}, "VALIDATION_ERROR", id="url"),
    pytest.param({"size": "1024x1024", "aspect_ratio": "1:1"}, "VALIDATION_ERROR", id="size-and-ratio"),
    pytest.param({"size": "5000x5000"}, "INVALID_SIZE", id="past-4k"),
    pytest.param({"aspect_ratio": "7:3"}, "VALIDATION_ERROR", id="unknown-ratio"),
])
def test_fields_google_does_not_take_are_refused_before_anything_is_reserved(app, client, fields, code):
    response = generate(client, **fields)

    assert (response.status_code, response.get_json()["code"]) == (400, code)
    assert ledger_lines(app) == []


def test_a_served_size_other_than_the_one_asked_is_reported_and_priced_as_served(app, client, responses_mock):
    # Asked 2K; Vertex-style, a 1K image comes back (and its usage says 1,120 image tokens).
    expect(responses_mock, sent("2K", "1:1", 1680 + 2048), json=answer(1024, 1024))

    body = generate(client, size="2048x2048").get_json()

    assert (body["size"], body["image_size"]) == ("1024x1024", "1K")
    assert body["_meta"]["cost"]["image_size"] == "1K"
    assert body["_meta"]["cost"]["actual"] == 0.067565  # 0.0000045 + 1,120 x 60 + 120 x 3 per 1M
    assert ledger_lines(app)[1]["providerChoices"] == {"image_size": "1K"}


def test_n_images_are_n_calls_and_a_failed_call_is_not_charged(app, client, responses_mock):
    expect(responses_mock, sent(), json=answer())
    expect(responses_mock, sent(), status=500, json={"error": {"code": 500, "message": "Internal error",
                                                             "status": "INTERNAL"}})

    body = generate(client, n=2).get_json()

    assert len(body["data"]) == 1
    assert body["_meta"]["cost"]["actual"] == 0.067565
    assert body["_meta"]["cost"]["imagesCharged"] == 1
    # 2 x (1,120 x 60 + 2,048 x 3 + 9 x 0.50), per 1M: each call is sent (and billed) the prompt again
    assert ledger_lines(app)[0]["amount"] == 0.146697


def test_n_images_all_failing_are_charged_nothing(app, client, responses_mock):
    for _ in range(2):
        expect(responses_mock, sent(), status=503, json={"error": {"code": 503, "message": "overloaded",
                                                                 "status": "UNAVAILABLE"}})

    response = generate(client, n=2)

    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "true"
    assert ledger_lines(app)[1]["cost"] == 0.0


@pytest.mark.parametrize("blocked", [
    pytest.param({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}, id="prompt-blocked"),
    pytest.param({"candidates": [{"finishReason": "IMAGE_SAFETY", "content": {"parts": []}}]}, id="image-safety"),
])
def test_a_safety_block_is_a_400_charged_what_the_usage_says(app, client, responses_mock, blocked):
    expect(responses_mock, sent(), json={**blocked, **usage(image=0, text_tokens=0, thoughts=0)})

    response = generate(client)

    assert (response.status_code, response.get_json()["code"]) == (400, "CONTENT_POLICY_VIOLATION")
    reason = response.get_json()["reason"]
    assert reason in ("PROHIBITED_CONTENT", "IMAGE_SAFETY")
    charge = ledger_lines(app)[1]
    assert (charge["cost"], charge["chargedBy"]) == (0.000005, "tokens")  # 9 prompt tokens x 0.50 per 1M, rounded


def test_an_answer_without_an_image_is_a_502_charged_its_usage(app, client, responses_mock):
    reply = answer(image=0, text_tokens=40, thoughts=0)
    reply["candidates"][0]["content"]["parts"] = [{"text": "I can only describe it."}]
    expect(responses_mock, sent(), json=reply)

    response = generate(client)

    assert response.status_code == 502
    assert ledger_lines(app)[1]["cost"] == 0.000125  # 9 x 0.50 + 40 x 3, per 1M tokens


def test_an_answer_without_usage_is_charged_the_reservation(app, client, responses_mock):
    reply = answer()
    del reply["usageMetadata"]
    expect(responses_mock, sent(), json=reply)

    body = generate(client).get_json()

    assert (body["_meta"]["cost"]["actual"], body["_meta"]["cost"]["chargedBy"]) == (0.073349, "reservation")


@pytest.mark.parametrize(("status", "google_status", "answered", "retry"), [
    pytest.param(429, "RESOURCE_EXHAUSTED", 429, "true", id="quota"),
    pytest.param(400, "INVALID_ARGUMENT", 400, "false", id="invalid"),
    pytest.param(403, "PERMISSION_DENIED", 502, "false", id="credentials"),
    pytest.param(500, "INTERNAL", 502, "true", id="server"),
])
def test_google_errors_map_to_the_gateway_codes(app, client, responses_mock, status, google_status, answered, retry):
    expect(responses_mock, sent(), status=status,
           json={"error": {"code": status, "message": f"{google_status} ({GEMINI_KEY})", "status": google_status}})

    response = generate(client)

    assert response.status_code == answered
    assert response.headers["x-should-retry"] == retry
    assert GEMINI_KEY not in response.get_data(as_text=True)
    assert response.get_json()["providerError"]["status"] == google_status
    assert ledger_lines(app)[1]["cost"] == 0.0


def test_a_retired_model_names_its_replacement(make_app):
    client = make_app(GEMINI_BASE_URL="").test_client()  # Google's own API, where its retirements apply
    response = client.post(ENDPOINT, json={"provider": "google", "model": "gemini-2.5-flash-image", "prompt": "x"},
                           headers={"X-API-Key": USER_KEY})

    assert (response.status_code, response.get_json()["code"]) == (410, "MODEL_RETIRED")
    assert response.get_json()["suggestedModel"] == FLASH


def test_an_edit_sends_its_images_inline_and_reserves_their_tokens(app, client, responses_mock):
    image = base64.b64decode(png(64, 64))
    parts = [{"text": PROMPT}, {"inlineData": {"mimeType": "image/png", "data": png(64, 64)}}]
    expect(responses_mock, sent(parts=parts), json=answer(prompt_images=1120))

    response = client.post("/api/images/edits", data={"provider": "google", "model": FLASH, "prompt": PROMPT,
                                                      "image": (io.BytesIO(image), "in.png")},
                           content_type="multipart/form-data", headers={"X-API-Key": USER_KEY})

    assert response.status_code == 200, response.get_json()
    cost = response.get_json()["_meta"]["cost"]
    assert cost["reserved"] == 0.073909  # 0.073349 + one reference image's 1,120 tokens x 0.50 per 1M
    assert cost["actual"] == 0.068125  # 0.067565 + 1,120 image input tokens x 0.50 per 1M


def test_an_edit_with_a_mask_is_refused(app, client):
    image = base64.b64decode(png(64, 64))
    response = client.post("/api/images/edits", data={"provider": "google", "model": FLASH, "prompt": PROMPT,
                                                      "image": (io.BytesIO(image), "in.png"),
                                                      "mask": (io.BytesIO(image), "mask.png")},
                           content_type="multipart/form-data", headers={"X-API-Key": USER_KEY})

    assert (response.status_code, response.get_json()["code"]) == (400, "PARAMETER_NOT_SUPPORTED")
    assert ledger_lines(app) == []


def test_vertex_gets_one_token_for_several_calls_and_sends_it_as_a_bearer(app, client, responses_mock):
    token = responses_mock.post(VERTEX_TOKEN_URI, json={"access_token": "ya29.test-token-0123456789",
                                                        "expires_in": 3600, "token_type": "Bearer"})
    for _ in range(2):
        expect(responses_mock, sent(), url=VERTEX_FLASH_URL,
               credential={"Authorization": "Bearer ya29.test-token-0123456789"}, json=answer())

    for _ in range(2):
        response = generate(client, provider="vertex")
        assert response.status_code == 200, response.get_json()

    assert token.call_count == 1
    body = token.calls[0].request.body
    assert "grant-type%3Ajwt-bearer" in (body.decode() if isinstance(body, bytes) else body)


def test_a_token_endpoint_that_fails_is_a_502_charged_nothing(app, client, responses_mock):
    responses_mock.post(VERTEX_TOKEN_URI, status=400, json={"error": "invalid_grant"})

    response = generate(client, provider="vertex")

    assert response.status_code == 502
    assert "oauth2.test" in response.get_json()["error"]
    assert ledger_lines(app)[1]["cost"] == 0.0


@pytest.mark.parametrize(("fields", "provider"), [
    pytest.param({"model": f"google/{FLASH}"}, "google", id="provider-slash-model"),
    pytest.param({"model": FLASH, "provider": "vertex"}, "vertex", id="extra-body"),
])
def test_openai_sdks_reach_google_on_v1(client, responses_mock, fields, provider):
    if provider == "vertex":
        responses_mock.post(VERTEX_TOKEN_URI, json={"access_token": "ya29.t", "expires_in": 3600})
    expect(responses_mock, sent(), url=FLASH_URL if provider == "google" else VERTEX_FLASH_URL,
           credential={"x-goog-api-key": GEMINI_KEY} if provider == "google" else {"Authorization": "Bearer ya29.t"},
           json=answer())

    response = client.post("/v1/images/generations", json={"prompt": PROMPT, **fields},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["_meta"]["provider"] == provider


def test_a_model_two_providers_serve_needs_one_on_v1(client):
    response = client.post("/v1/images/generations", json={"prompt": PROMPT, "model": FLASH},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["providers"]) == ("PROVIDER_REQUIRED", ["google", "vertex"])


def test_the_models_list_names_the_gemini_models(client):
    ids = {model["id"] for model in client.get("/v1/models", headers={"Authorization": f"Bearer {USER_KEY}"})
           .get_json()["data"]}

    assert {"gemini-3-pro-image", FLASH, "gemini-3.1-flash-lite-image"} <= ids
    assert "gemini-2.5-flash-image" in ids  # retired, but this test's Google is not Google's own API
