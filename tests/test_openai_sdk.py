"""OpenAI's own Python SDK against the gateway (gunicorn on loopback, the stub as OpenAI).

Only the base URL and the key change. Also shows how the SDK's retries meet paid requests: it
obeys the gateway's x-should-retry on every answer, but resends on its own client-side timeout.
"""

import time
import urllib.request

import openai
import pytest
import responses
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import openai_image_response
from raw_stream import open_raw_stream
from responses import matchers
from sdk_gateway import GATEWAY_READ_TIMEOUT
from sdk_gateway import charges_of
from sdk_gateway import new_records
from sdk_gateway import running_gateway


def test_the_clients_key_never_goes_upstream(client, responses_mock):
    responses_mock.add(responses.POST, GENERATIONS_URL, json=openai_image_response(1), match=[
        matchers.header_matcher({"Authorization": f"Bearer {PROVIDER_KEY}"}),
        # provider defaulted on the /v1 path, and not forwarded
        matchers.json_params_matcher({"model": "dall-e-3", "prompt": "a cat", "n": 1, "size": "1024x1024",
                                      "quality": "standard"}),
    ])

    response = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "a cat"},
                           headers={"Authorization": f"Bearer {USER_KEY}"})

    assert response.status_code == 200
    assert response.get_json()["_meta"]["provider"] == "openai"


def test_the_gateway_path_still_requires_a_provider(client):
    response = client.post(ENDPOINT, json={"model": "dall-e-3", "prompt": "a cat"}, headers={"X-API-Key": USER_KEY})
    assert response.status_code == 400
    assert response.get_json()["missing"] == ["provider"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("openai-sdk")) as started:
        yield started


@pytest.fixture(scope="module")
def api_key(gateway):
    return gateway.cli("keys", "create", "--user", "sdk-user", "--id", "key_sdk")


@pytest.mark.real_http
def test_images_generate_with_extra_body(gateway, api_key):
    with gateway.client(api_key) as client:
        result = client.images.generate(model="dall-e-3", prompt="a lighthouse at dusk",
                                        extra_body={"provider": "openai"})

    assert result.data[0].url.startswith("http://127.0.0.1:")
    assert result.data[0].revised_prompt == "a lighthouse at dusk (revised by the local stub)"
    meta = result.model_extra["_meta"]  # the gateway's addition does not disturb the SDK's model
    assert meta["cost"]["actual"] == 0.04 and meta["requestId"].startswith("req_")


@pytest.mark.real_http
def test_images_generate_without_a_provider(gateway, api_key):
    with gateway.client(api_key) as client:
        response = client.images.with_raw_response.generate(model="dall-e-2", prompt="a red kite", size="256x256",
                                                            n=2, response_format="b64_json")
    result = response.parse()

    assert len(result.data) == 2 and result.data[0].b64_json.startswith("iVBORw0KGgo")  # a PNG
    assert result.model_extra["_meta"]["provider"] == "openai"
    assert result.model_extra["_meta"]["cost"]["actual"] == 0.032
    assert response.headers["x-request-id"] == result.model_extra["_meta"]["requestId"]


@pytest.mark.real_http
@pytest.mark.parametrize("options", [
    pytest.param({"model": "google/gemini-3.1-flash-image"}, id="provider-slash-model"),
    pytest.param({"model": "gemini-3.1-flash-image", "extra_body": {"provider": "google"}}, id="extra-body"),
])
def test_images_generate_reaches_googles_models(gateway, api_key, options):
    with gateway.client(api_key) as client:
        result = client.images.generate(prompt="a red kite", size="1536x1024", **options)

    assert result.data[0].b64_json.startswith("iVBORw0KGgo")  # a PNG
    assert (result.to_dict()["size"], result.to_dict()["image_size"]) == ("2528x1696", "2K")  # 3:2 at 2K
    meta = result.model_extra["_meta"]
    assert (meta["provider"], meta["model"], meta["cost"]["chargedBy"]) == ("google", "gemini-3.1-flash-image",
                                                                              "tokens")
    assert 0 < meta["cost"]["actual"] <= meta["cost"]["reserved"]


@pytest.mark.real_http
def test_a_model_two_providers_serve_needs_one(gateway, api_key):
    with gateway.client(api_key) as client, pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gemini-3.1-flash-image", prompt="a red kite")

    assert raised.value.body["code"] == "PROVIDER_REQUIRED"


@pytest.mark.real_http
@pytest.mark.parametrize("key, options, error_class, status, code", [
    pytest.param(None, {"model": "dall-e-5"}, openai.BadRequestError, 400, "IMAGE_CONFIG_NOT_FOUND",
                 id="unknown-model"),
    pytest.param(None, {"model": "dall-e-3", "n": 2}, openai.BadRequestError, 400, "IMAGE_REQUEST_TOO_LARGE",
                 id="too-many-images"),
    pytest.param(None, {"model": "gpt-4o"}, openai.BadRequestError, 400, "ACTION_NOT_SUPPORTED", id="chat-model"),
    pytest.param("ziri-sdk-user-" + "0" * 32, {"model": "dall-e-3"}, openai.PermissionDeniedError, 403,
                 "API_KEY_INVALID", id="unknown-key"),
    pytest.param("sk-not-a-gateway-key", {"model": "dall-e-3"}, openai.AuthenticationError, 401,
                 "INVALID_API_KEY_FORMAT", id="openai-key"),
])
def test_gateway_errors_become_the_sdks_exceptions(gateway, api_key, key, options, error_class, status, code):
    with gateway.client(key or api_key) as client, pytest.raises(error_class) as raised:
        client.images.generate(prompt="a cat", **options)

    error = raised.value
    assert error.status_code == status
    assert error.code == code  # OpenAI's error shape: the SDK reads the gateway's code
    assert error.type and error.message in str(error)  # the message, no longer only "Error code: NNN"
    assert error.request_id == error.response.json()["error"]["requestId"]
    assert error.response.headers["x-should-retry"] == "false"


@pytest.mark.real_http
def test_a_gateway_timeout_is_not_retried(gateway, api_key):
    before = len(gateway.ledger())

    with gateway.client(api_key) as client, pytest.raises(openai.InternalServerError) as raised:  # two retries
        client.images.generate(model="dall-e-3", prompt=f"[stub:delay={GATEWAY_READ_TIMEOUT + 1}] a slow fox")

    assert raised.value.status_code == 504
    assert len([record for record in gateway.ledger()[before:] if record["type"] == "reservation"]) == 1


@pytest.mark.real_http
def test_a_provider_failure_that_cost_nothing_is_retried(gateway, api_key):
    before = len(gateway.ledger())

    with gateway.client(api_key, max_retries=1) as client, pytest.raises(openai.InternalServerError) as raised:
        client.images.generate(model="dall-e-3", prompt="[stub:status=500] a fox")

    assert raised.value.response.headers["x-should-retry"] == "true"
    charges = new_records(gateway, before, "charge", 2)
    assert [(charge["status"], charge["cost"]) for charge in charges] == [("provider_error", 0.0)] * 2


@pytest.mark.real_http
@pytest.mark.parametrize("max_retries, billed", [
    pytest.param(1, 2, id="default-style-retries-bill-twice"),
    pytest.param(0, 1, id="no-retries-bill-once"),
])
def test_a_client_timeout_shorter_than_the_gateways_is_retried_by_the_sdk(gateway, api_key, max_retries, billed):
    before = len(gateway.ledger())

    with gateway.client(api_key, timeout=0.5, max_retries=max_retries) as client, pytest.raises(openai.APITimeoutError):
        client.images.generate(model="dall-e-3", prompt="[stub:delay=1] a patient owl")

    # The gateway never learns that the client gave up: each attempt is generated and charged.
    charges = new_records(gateway, before, "charge", billed)
    assert [charge["cost"] for charge in charges] == [0.04] * billed


@pytest.mark.real_http
def test_an_idempotency_key_makes_the_sdks_own_retries_safe(gateway, api_key):
    before = len(gateway.ledger())

    with gateway.client(api_key, timeout=0.5, max_retries=2) as client, pytest.raises(openai.ConflictError) as raised:
        client.images.generate(model="dall-e-3", prompt="[stub:delay=1] a careful owl",
                               extra_headers={"Idempotency-Key": "owl-0001"})

    # The SDK gave up on the first attempt and sent it again: the retry is refused, not billed. Whether it
    # arrives while the first is still generating or just after depends on the SDK's random back-off.
    assert raised.value.code in ("IDEMPOTENT_REQUEST_IN_PROGRESS", "IDEMPOTENCY_KEY_REUSED")
    charges = new_records(gateway, before, "charge", 1)
    assert [charge["cost"] for charge in charges] == [0.04]
    assert len([record for record in gateway.ledger()[before:] if record["type"] == "reservation"]) == 1


@pytest.mark.real_http
def test_key_file_edits_reach_the_running_gateway(gateway):
    old_key = gateway.cli("keys", "create", "--user", "rotating", "--id", "key_rotating")
    request = {"model": "dall-e-2", "prompt": "a boat", "size": "256x256"}
    with gateway.client(old_key) as old_client:
        assert old_client.images.generate(**request).data

        gateway.cli("keys", "disable", "key_rotating")
        with pytest.raises(openai.PermissionDeniedError) as raised:
            old_client.images.generate(**request)
        assert raised.value.code == "API_KEY_REVOKED_OR_DISABLED"

        gateway.cli("keys", "enable", "key_rotating")
        new_key = gateway.cli("keys", "rotate", "key_rotating")
        with pytest.raises(openai.PermissionDeniedError) as raised:
            old_client.images.generate(**request)
        assert raised.value.code == "API_KEY_INVALID"
    with gateway.client(new_key) as new_client:
        assert new_client.images.generate(**request).data


@pytest.mark.real_http
def test_an_over_budget_request_raises_with_the_gateways_code(gateway, api_key):
    poor_key = gateway.cli("keys", "create", "--user", "sdk-poor", "--id", "key_sdk_poor",
                           "--daily-spend-limit", "0.01")
    before = len(gateway.ledger())

    with gateway.client(poor_key) as client, pytest.raises(openai.APIStatusError) as raised:
        client.images.generate(model="dall-e-3", prompt="an expensive cat")

    error = raised.value
    assert (error.status_code, error.code, error.type) == (402, "SPEND_LIMIT_EXCEEDED", "insufficient_quota")
    assert "spend limit" in error.message
    assert [record for record in gateway.ledger()[before:] if record["type"] != "key"] == []


@pytest.mark.real_http
def test_models_list(gateway, api_key):
    with gateway.client(api_key) as client:
        models = {model.id: model.owned_by for model in client.models.list()}
        one = client.models.retrieve("gpt-image-1")

    assert models["gpt-image-1"] == "openai" and "gpt-4o" not in models
    assert (one.id, one.object) == ("gpt-image-1", "model")


@pytest.mark.real_http
@pytest.mark.parametrize("images, with_mask", [
    pytest.param(1, False, id="one-image"),
    pytest.param(2, True, id="two-images-and-a-mask"),
])
def test_images_edit(gateway, api_key, images, with_mask):
    from ziri_images.dev.stub import png_bytes

    before = len(gateway.ledger())
    files = [(f"ref{index}.png", png_bytes(f"ref{index}", 64), "image/png") for index in range(images)]
    mask = {"mask": ("mask.png", png_bytes("mask", 64), "image/png")} if with_mask else {}
    with gateway.client(api_key) as client:
        response = client.images.with_raw_response.edit(model="gpt-image-1", prompt="add a red hat",
                                                        image=files[0] if images == 1 else files, **mask)
    result = response.parse()

    assert result.data[0].b64_json.startswith("iVBORw0KGgo")
    meta = result.model_extra["_meta"]
    assert result.usage.input_tokens_details.image_tokens == (images + with_mask) * (85 + 170)
    new_records(gateway, before, "charge", 1)
    [charge] = charges_of(gateway, before, meta["requestId"])
    assert (charge["endpoint"], charge["status"], charge["cost"]) == ("edits", "succeeded", meta["cost"]["actual"])


@pytest.mark.real_http
def test_an_edit_larger_than_the_json_body_limit(gateway, api_key):
    from ziri_images.dev.stub import png_bytes

    image = png_bytes("large", 64) + b"\0" * (1024 * 1024)  # past ZIRI_MAX_BODY_BYTES (256 KB): edits have their own
    with gateway.client(api_key) as client:
        result = client.images.edit(model="gpt-image-1", prompt="a hat", image=("large.png", image, "image/png"))
    assert result.data[0].b64_json


@pytest.mark.real_http
def test_images_generate_streams_partial_images_then_completed(gateway, api_key):
    before = len(gateway.ledger())
    with gateway.client(api_key) as client:
        events = list(client.images.generate(model="gpt-image-1", prompt="a lighthouse, streamed", stream=True,
                                             partial_images=2))

    assert [event.type for event in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    assert events[-1].b64_json.startswith("iVBORw0KGgo") and events[-1].usage.output_tokens == 1056 + 200
    [charge] = new_records(gateway, before, "charge", 1)
    assert events[-1].model_extra["_meta"]["cost"]["actual"] == charge["cost"]
    assert (charge["status"], charge["chargedBy"], charge["stream"], charge["endpoint"]) == (
        "succeeded", "tokens", True, "generations")
    assert charge["usage"]["output_tokens"] == 1056 + 200


@pytest.mark.real_http
def test_images_edit_streams(gateway, api_key):
    from ziri_images.dev.stub import png_bytes

    before = len(gateway.ledger())
    with gateway.client(api_key) as client:
        events = list(client.images.edit(model="gpt-image-1", prompt="add a hat", stream=True, partial_images=1,
                                         image=("ref.png", png_bytes("ref", 64), "image/png")))

    assert [event.type for event in events] == ["image_edit.partial_image", "image_edit.completed"]
    [charge] = new_records(gateway, before, "charge", 1)
    assert (charge["endpoint"], charge["stream"], charge["chargedBy"]) == ("edits", True, "tokens")


@pytest.mark.real_http
@pytest.mark.parametrize("fault, types", [
    pytest.param("nostream", ["image_generation.completed"], id="answered-as-json"),
    pytest.param("mislabel", ["image_generation.partial_image", "image_generation.completed"], id="events-as-json"),
])
def test_a_stream_answered_without_a_stream_label_still_streams_and_is_charged_from_usage(gateway, api_key, fault,
                                                                                         types):
    before = len(gateway.ledger())
    with gateway.client(api_key) as client:
        events = list(client.images.generate(model="gpt-image-1", prompt=f"[stub:{fault}] a fox", stream=True,
                                             partial_images=1))

    assert [event.type for event in events] == types
    assert events[-1].b64_json.startswith("iVBORw0KGgo") and events[-1].usage.output_tokens > 0
    [charge] = new_records(gateway, before, "charge", 1)
    assert (charge["status"], charge["chargedBy"], charge["stream"]) == ("succeeded", "tokens", True)
    assert events[-1].model_extra["_meta"]["cost"]["actual"] == charge["cost"] > 0


@pytest.mark.real_http
def test_a_model_that_does_not_stream_is_refused_before_anything_is_reserved(gateway, api_key):
    before = len(gateway.ledger())
    with gateway.client(api_key) as client, pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="dall-e-3", prompt="a cat", stream=True)

    assert raised.value.code == "STREAMING_NOT_SUPPORTED" and raised.value.param == "stream"
    assert gateway.ledger()[before:] == []


@pytest.mark.real_http
@pytest.mark.parametrize("fault, stream_end", [
    pytest.param("stall=5", "broken", id="stalls"),  # longer than the gateway's read timeout
    pytest.param("break", "broken", id="drops-the-connection"),
    pytest.param("nocompleted", "no_completed_event", id="ends-without-completed"),
])
def test_a_stream_without_completed_ends_with_an_error_event_and_is_charged_the_reservation(gateway, api_key, fault,
                                                                                            stream_end):
    before = len(gateway.ledger())
    with gateway.client(api_key) as client, pytest.raises(openai.APIError) as raised:
        for _event in client.images.generate(model="gpt-image-1", prompt=f"[stub:{fault}] a fox", stream=True,
                                              partial_images=2):
            pass

    assert raised.value.code == "LLM_PROVIDER_ERROR"
    [charge] = new_records(gateway, before, "charge", 1)
    [reservation] = [record for record in gateway.ledger()[before:] if record["type"] == "reservation"]
    assert (charge["chargedBy"], charge["cost"], charge["mayHaveBilled"]) == ("reservation", reservation["amount"],
                                                                               True)
    assert charge["streamEnd"] == stream_end


def open_stream(gateway, api_key, prompt, partial_images=3):
    """Send a streamed generation on a raw socket; return the socket once its headers and first event are in."""
    host, port = gateway.url.removeprefix("http://").split(":")
    body = {"model": "gpt-image-1", "prompt": prompt, "stream": True, "partial_images": partial_images}
    sock, received = open_raw_stream(host, port, "/v1/images/generations",
                                     {"Host": host, "Authorization": f"Bearer {api_key}"}, body)
    assert received.startswith(b"HTTP/1.1 200") and b"text/event-stream" in received
    return sock


@pytest.mark.real_http
def test_a_client_that_leaves_after_the_first_event_is_charged_once_from_usage(gateway, api_key):
    before = len(gateway.ledger())
    sock = open_stream(gateway, api_key, "[stub:event_delay=0.3] a fox that was not watched")
    sock.close()

    [charge] = new_records(gateway, before, "charge", 1)
    assert (charge["status"], charge["chargedBy"], charge["stream"]) == ("succeeded", "tokens", True)
    assert charge["usage"]["output_tokens"] == 1056 + 300
    time.sleep(0.5)  # nothing else is written for it later
    assert len([record for record in gateway.ledger()[before:] if record["type"] == "charge"]) == 1


@pytest.mark.real_http
def test_the_worker_answers_other_requests_while_a_stream_is_open(gateway, api_key):
    before = len(gateway.ledger())
    sock = open_stream(gateway, api_key, "[stub:event_delay=0.8] a slow stream")
    try:
        # One worker (WEB_CONCURRENCY=1): reading the provider's stream must yield to other greenlets.
        with urllib.request.urlopen(f"{gateway.url}/health", timeout=2) as health:
            assert health.status == 200
        assert new_records(gateway, before, "charge", 1, seconds=0) == []  # the stream is still open
    finally:
        sock.close()
    new_records(gateway, before, "charge", 1)
