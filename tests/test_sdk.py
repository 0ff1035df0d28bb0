"""The Python SDK: what it sends, the one error type it raises, and that it never retries."""

import json
import socket
import threading

import pytest
import requests
import responses
from conftest import DEMO_KEY
from conftest import USER_KEY
from conftest import package_modules_loaded_by
from responses import matchers
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import ProtocolError
from werkzeug.serving import make_server

from ziri_images import sdk
from ziri_images.dev.stub import create_stub_app
from ziri_images.keys import store as keys_store
from ziri_images.providers import answers
from ziri_images.sdk import UserSDK
from ziri_images.sdk import ZiriError

PROXY = "http://gateway.test:3100"
GENERATIONS = PROXY + "/api/images/generations"


@pytest.mark.parametrize("api_key", [
    pytest.param("", id="empty"),
    pytest.param("sk-openai-key", id="openai-key"),
    pytest.param("ziri-alice-xyz", id="secret-not-hex"),
    pytest.param("ziri-alice-0123456789abcdef\n", id="trailing-newline"),
    pytest.param(None, id="none"),
])
def test_a_malformed_key_is_refused_at_construction(api_key):
    with pytest.raises(ValueError, match="ziri-"):
        UserSDK(api_key=api_key)


@pytest.mark.parametrize("proxy_url", [
    pytest.param("localhost:3100", id="no-scheme"),
    pytest.param("ftp://gateway", id="other-scheme"),
    pytest.param("", id="empty"),
])
def test_a_malformed_proxy_url_is_refused(proxy_url):
    with pytest.raises(ValueError, match="proxy_url"):
        UserSDK(api_key=USER_KEY, proxy_url=proxy_url)


def test_the_key_is_not_in_its_repr():
    sdk = UserSDK(api_key=USER_KEY, proxy_url=PROXY + "/")
    assert USER_KEY not in repr(sdk)
    assert sdk.proxy_url == PROXY


def test_images_sends_the_given_fields_with_the_key(responses_mock):
    body = {"created": 1, "data": [{"url": "https://img/1.png"}], "_meta": {"requestId": "req_1"}}
    responses_mock.add(responses.POST, GENERATIONS, json=body, match=[
        matchers.json_params_matcher({"provider": "openai", "model": "dall-e-3", "prompt": "a cat", "n": 1,
                                      "quality": "hd", "style": "vivid"}),
        matchers.header_matcher({"X-API-Key": USER_KEY}),
    ])
    sdk = UserSDK(api_key=USER_KEY, proxy_url=PROXY, timeout=(1, 2))

    assert sdk.images(provider="openai", model="dall-e-3", prompt="a cat", n=1, quality="hd", style="vivid") == body
    assert responses_mock.calls[0].request.req_kwargs["timeout"] == (1, 2)


def test_usage(responses_mock):
    responses_mock.add(responses.GET, PROXY + "/api/me/usage", json={"keyId": "key_user"},
                       match=[matchers.header_matcher({"X-API-Key": USER_KEY})])
    assert UserSDK(api_key=USER_KEY, proxy_url=PROXY).usage() == {"keyId": "key_user"}


@pytest.mark.parametrize("answer, status, code, message, request_id, retryable", [
    pytest.param(dict(json={"error": "Invalid API key.", "code": "API_KEY_INVALID", "requestId": "req_9"},
                      headers={"x-should-retry": "false", "X-Request-Id": "req_9"}),
                 403, "API_KEY_INVALID", "Invalid API key.", "req_9", False, id="gateway-error"),
    pytest.param(dict(json={"error": "Rate limit of 2 requests per minute exceeded.", "code": "RATE_LIMIT_EXCEEDED",
                            "requestId": "req_8", "retryAfter": 30}, headers={"x-should-retry": "true"}),
                 429, "RATE_LIMIT_EXCEEDED", "Rate limit of 2 requests per minute exceeded.", "req_8", True,
                 id="retryable"),
    pytest.param(dict(body="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html",
                      headers={"x-should-retry": "false"}),
                 502, "HTTP_ERROR", "unexpected answer from the gateway: <html><body><h1>502 Bad Gateway</h1>"
                 "</body></html>", None, False, id="proxy-html-page"),
    pytest.param(dict(body="", headers={"X-Request-Id": "req_7"}), 500, "HTTP_ERROR",
                 "unexpected answer from the gateway: Internal Server Error", "req_7", False, id="empty-body"),
    pytest.param(dict(json=["not", "an", "object"]), 400, "HTTP_ERROR",
                 'unexpected answer from the gateway: ["not", "an", "object"]', None, False, id="json-not-object"),
])
def test_every_failure_is_one_error_type(responses_mock, answer, status, code, message, request_id, retryable):
    responses_mock.add(responses.POST, GENERATIONS, status=status, **answer)

    with pytest.raises(ZiriError) as raised:
        UserSDK(api_key=USER_KEY, proxy_url=PROXY).images(provider="openai", model="dall-e-3", prompt="x")

    error = raised.value
    assert (error.status, error.code, error.message) == (status, code, message)
    assert error.request_id == error.requestId == request_id
    assert error.retryable is retryable
    assert len(responses_mock.calls) == 1


@pytest.mark.parametrize("failure, code, may_have_billed", [
    pytest.param(requests.ReadTimeout("read timed out"), "TIMEOUT", True, id="read-timeout"),
    pytest.param(requests.ConnectTimeout("connect timed out"), "CONNECTION_ERROR", False, id="connect-timeout"),
    pytest.param(requests.ConnectionError("Connection aborted."), "CONNECTION_ERROR", True, id="dropped"),
])
def test_transport_failures_are_never_retried(responses_mock, failure, code, may_have_billed):
    responses_mock.add(responses.POST, GENERATIONS, body=failure)

    with pytest.raises(ZiriError) as raised:
        UserSDK(api_key=USER_KEY, proxy_url=PROXY).images(provider="openai", model="dall-e-3", prompt="x")

    assert (raised.value.status, raised.value.code, raised.value.may_have_billed) == (None, code, may_have_billed)
    assert len(responses_mock.calls) == 1


@pytest.mark.real_http
def test_a_refused_connection_was_not_billed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed

    with pytest.raises(ZiriError) as raised:
        UserSDK(api_key=USER_KEY, proxy_url=f"http://127.0.0.1:{port}").images(
            provider="openai", model="dall-e-3", prompt="x")

    assert raised.value.code == "CONNECTION_ERROR"
    assert (raised.value.may_have_billed, raised.value.retryable) == (False, True)
    assert "connection refused" in raised.value.message


def test_the_sdk_loads_nothing_of_the_server():
    # The package face is a leaf: it imports its version and nothing else at import time.
    assert package_modules_loaded_by("ziri_images.sdk") == ["ziri_images", "ziri_images._version", "ziri_images.sdk"]


@pytest.mark.parametrize("key", [
    USER_KEY, DEMO_KEY, "ziri-a-" + "0" * 16, "ziri-a-" + "f" * 128, "ziri-a-" + "f" * 129, "ziri-a-" + "0" * 15,
    "ziri-bob.smith_2-0123456789abcdef", "ziri-.bob-0123456789abcdef", "ziri--0123456789abcdef",
    "ziri-bob-0123456789ABCDEF", "ziri-bob-0123456789abcdef\n", "ziri-bob-0123456789abcdef ",
    " ziri-bob-0123456789abcdef",
    "ziri-bob-smith-0123456789abcdef", "ziri-bøb-0123456789abcdef", "sk-0123456789abcdef", "",
])
def test_the_sdk_accepts_exactly_the_keys_the_gateway_accepts(key):
    assert bool(sdk.KEY_PATTERN.match(key)) == bool(keys_store.KEY_PATTERN.match(key))


def _chained(error, cause):
    error.__cause__ = cause
    return error


@pytest.mark.parametrize("error", [
    pytest.param(requests.ConnectionError("Connection aborted."), id="dropped"),
    pytest.param(requests.ConnectionError(NewConnectionError(None, "refused")), id="refused-in-args"),
    pytest.param(_chained(requests.ConnectionError("x"), ConnectionRefusedError()), id="refused-as-cause"),
    pytest.param(_chained(requests.ConnectionError("x"), ConnectionResetError()), id="reset-as-cause"),
    pytest.param(requests.ConnectionError(ProtocolError("aborted", ConnectionRefusedError())), id="refused-nested"),
])
def test_the_sdk_judges_a_refused_connection_as_the_gateway_does(error):
    assert sdk.connection_refused(error) == answers.connection_refused(error)


class Served:
    """A WSGI app served on a free loopback port by a thread, until ``stop``."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_gateway(make_app):
    """The gateway app served on loopback, with the local stub (also served) as OpenAI."""
    stub = Served(create_stub_app())
    try:
        gateway = Served(make_app(OPENAI_BASE_URL=f"{stub.url}/v1"))
        try:
            yield gateway.url, stub.url
        finally:
            gateway.stop()
    finally:
        stub.stop()


def stub_requests(stub_url):
    return requests.get(f"{stub_url}/stats", timeout=5).json()["requests"]


@pytest.mark.real_http
def test_against_a_running_gateway(live_gateway, app_config):
    gateway_url, stub_url = live_gateway
    with UserSDK(api_key=DEMO_KEY, proxy_url=gateway_url, timeout=(2, 10)) as sdk:
        result = sdk.images(provider="openai", model="dall-e-3", prompt="a white cat", quality="hd",
                            size="1024x1792")
        assert result["data"][0]["url"].startswith(stub_url)
        assert result["_meta"]["cost"]["actual"] == 0.12

        usage = sdk.usage()
        assert usage["keyId"] == "key_demo"
        assert usage["daily"]["spent"] == 0.12

        with pytest.raises(ZiriError) as raised:
            sdk.images(provider="openai", model="dall-e-5", prompt="a white cat")
        assert (raised.value.status, raised.value.code) == (400, "IMAGE_CONFIG_NOT_FOUND")
        assert raised.value.request_id.startswith("req_")

        before = stub_requests(stub_url)
        with pytest.raises(ZiriError) as raised:
            sdk.images(provider="openai", model="dall-e-2", prompt="[stub:status=500] a dog")
        assert (raised.value.status, raised.value.code, raised.value.retryable) == (502, "LLM_PROVIDER_ERROR", True)
        assert stub_requests(stub_url) == before + 1  # retryable, and still sent once: the caller decides

    with open(app_config["LEDGER_PATH"]) as ledger:
        charges = [record for record in map(json.loads, ledger) if record["type"] == "charge"]
    assert [(charge["model"], charge["cost"]) for charge in charges] == [("dall-e-3", 0.12), ("dall-e-2", 0.0)]
