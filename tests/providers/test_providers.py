"""The outbound HTTP boundary: what is sent to OpenAI and how its failures are translated."""

import http.server
import re
import threading
import time

import pytest
import requests
from conftest import GENERATIONS_URL
from conftest import PROVIDER_KEY
from conftest import SHIPPED_PROVIDERS
from responses import matchers
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import NewConnectionError

from ziri_images import __version__
from ziri_images.config import Config
from ziri_images.errors import ApiError
from ziri_images.providers import answers
from ziri_images.providers import openai as providers
from ziri_images.providers.config import build_providers
from ziri_images.providers.openai import OpenAIProvider
from ziri_images.providers.openai import ProviderError
from ziri_images.redaction import redact

PAYLOAD = {"model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "1024x1024", "quality": "standard"}
ANY = re.compile(r".*")


@pytest.fixture
def provider():
    # A trailing slash on the base URL must not produce "//images".
    return OpenAIProvider("openai", "https://api.openai.test/v1/", PROVIDER_KEY, 1.5, 7.0)


def test_sends_exactly_one_authenticated_request(provider, responses_mock):
    responses_mock.post(
        GENERATIONS_URL,
        json={"created": 7, "data": [{"url": "https://images.openai.test/1.png"}]},
        headers={"x-request-id": "req_upstream_9"},
        match=[
            matchers.json_params_matcher(PAYLOAD),
            matchers.header_matcher({
                "Authorization": f"Bearer {PROVIDER_KEY}",
                "Content-Type": "application/json",
                "User-Agent": f"ziri-images/{__version__}",
                "X-Client-Request-Id": "req_abc",
                "Content-Length": ANY,
                "Accept": ANY,
                "Accept-Encoding": ANY,
                "Connection": ANY,
            }, strict_match=True),
            matchers.request_kwargs_matcher({"timeout": (1.5, 7.0)}),
        ],
    )

    result = provider.generate(PAYLOAD, "req_abc")

    assert result.body == {"created": 7, "data": [{"url": "https://images.openai.test/1.png"}]}
    assert (result.provider_status, result.provider_request_id) == (200, "req_upstream_9")
    assert len(responses_mock.calls) == 1
    assert responses_mock.calls[0].request.url == GENERATIONS_URL


def openai_error(message, type_="invalid_request_error", code=None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def refused():
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, GENERATIONS_URL, reason))


def mapping(upstream, status, *, id, retry=False, billed=False, provider_status=None, message=None, headers=None):
    return pytest.param(upstream, status, retry, billed, provider_status, message, headers or {}, id=id)


ERROR_MAPPING = [
    mapping({"status": 400, "json": openai_error("Invalid size", param="size")}, 400, provider_status=400,
            message="Invalid size", id="400-passes-through"),
    mapping({"status": 404, "json": openai_error("The model does not exist")}, 404, provider_status=404,
            id="404-passes-through"),
    mapping({"status": 401, "json": openai_error(f"Incorrect API key provided: {PROVIDER_KEY}")}, 502,
            provider_status=401,
            message="Provider 'openai' rejected the gateway's credentials: Incorrect API key provided: [redacted]",
            id="401-is-the-gateways-fault"),
    mapping({"status": 403, "json": openai_error("Project not allowed")}, 502, provider_status=403, id="403"),
    mapping({"status": 429, "json": openai_error("Slow down", "requests", "rate_limit_exceeded"),
             "headers": {"Retry-After": "7"}}, 429, retry=True, provider_status=429, headers={"Retry-After": "7"},
            id="429-with-retry-after"),
    mapping({"status": 429, "json": openai_error("Slow down", "requests", "rate_limit_exceeded")}, 429, retry=True,
            provider_status=429, id="429-without-retry-after"),
    mapping({"status": 429, "json": openai_error("Quota", "insufficient_quota", "insufficient_quota")}, 429,
            provider_status=429, id="429-insufficient-quota-not-retried"),
    mapping({"status": 500, "json": openai_error("Oops", "server_error")}, 502, retry=True, provider_status=500,
            message="Oops", id="500"),
    mapping({"status": 503, "body": "upstream connect error"}, 502, retry=True, provider_status=503,
            message="Provider 'openai' answered HTTP 503.", id="503-not-json"),
    mapping({"status": 200, "body": "<html>"}, 502, billed=True, provider_status=200,
            message="Provider 'openai' returned a response without image data.", id="200-not-json"),
    mapping({"status": 200, "json": {"created": 1}}, 502, billed=True, provider_status=200, id="200-without-data"),
    mapping({"status": 200, "json": [1, 2]}, 502, billed=True, provider_status=200, id="200-json-list"),
    mapping({"body": requests.ReadTimeout()}, 504, billed=True,
            message="Provider 'openai' did not answer in time; the images may still have been generated.",
            id="read-timeout"),
    mapping({"body": requests.ConnectTimeout()}, 504, retry=True,
            message="Timed out connecting to provider 'openai'.", id="connect-timeout"),
    mapping({"body": refused()}, 502, retry=True, message="Provider 'openai' could not be reached.",
            id="connection-refused"),
    mapping({"body": requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))}, 502, retry=True,
            message="Provider 'openai' could not be reached.", id="connection-refused-oserror"),
    mapping({"body": requests.ConnectionError("Connection aborted.")}, 502, billed=True,
            message="Provider 'openai' dropped the connection.", id="connection-dropped"),
    mapping({"body": requests.exceptions.ChunkedEncodingError()}, 502, billed=True,
            message="Provider 'openai' dropped the connection in the middle of its answer.", id="cut-mid-body"),
    mapping({"body": requests.exceptions.InvalidHeader()}, 502, billed=True,
            message="Provider 'openai' request failed: InvalidHeader.", id="other-requests-error"),
]


@pytest.mark.parametrize(("upstream", "status", "retry", "billed", "provider_status", "message", "headers"),
                         ERROR_MAPPING)
def test_error_mapping(provider, responses_mock, upstream, status, retry, billed, provider_status, message, headers):
    responses_mock.post(GENERATIONS_URL, **upstream)

    with pytest.raises(ProviderError) as raised:
        provider.generate(PAYLOAD, "req_abc")

    error = raised.value
    assert (error.status, error.code) == (status, "LLM_PROVIDER_ERROR")
    assert error.should_retry is retry
    assert error.may_have_billed is billed
    assert error.provider_status == provider_status
    assert error.headers == headers
    if message is not None:
        assert error.message == message
    assert error.details["provider"] == "openai"
    assert PROVIDER_KEY not in error.message


def test_provider_error_details_describe_the_upstream_error(provider, responses_mock):
    responses_mock.post(GENERATIONS_URL, status=400, headers={"x-request-id": "req_up"},
                        json=openai_error("Invalid size", code="invalid_value", param="size"))

    with pytest.raises(ProviderError) as raised:
        provider.generate(PAYLOAD, "req_abc")

    assert raised.value.provider_request_id == "req_up"
    assert raised.value.details["providerError"] == {
        "status": 400, "type": "invalid_request_error", "code": "invalid_value", "param": "size", "requestId": "req_up"}


def test_response_over_the_cap_is_refused(provider, responses_mock, monkeypatch):
    monkeypatch.setattr(providers, "MAX_RESPONSE_BYTES", 1000)
    responses_mock.post(GENERATIONS_URL, body=b'{"data": [{"b64_json": "' + b"A" * 5000 + b'"}]}')

    with pytest.raises(ProviderError) as raised:
        provider.generate(PAYLOAD, "req_abc")

    assert raised.value.status == 502
    assert raised.value.message == "Provider 'openai' response exceeds 1000 bytes."
    assert raised.value.may_have_billed is True


def test_response_at_the_cap_is_accepted(provider, responses_mock, monkeypatch):
    body = b'{"data": []}'
    monkeypatch.setattr(providers, "MAX_RESPONSE_BYTES", len(body))
    responses_mock.post(GENERATIONS_URL, body=body)

    assert provider.generate(PAYLOAD, "req_abc").body == {"data": []}


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        pytest.param(f"bad key {PROVIDER_KEY}!", (PROVIDER_KEY,), "bad key [redacted]!", id="given-secret"),
        pytest.param("token=hunter2-hunter2", ("hunter2-hunter2",), "token=[redacted]", id="non-key-shaped-secret"),
        pytest.param("key sk-proj-AbC_123-xyz was wrong", (), "key [redacted] was wrong", id="openai-shaped"),
        pytest.param("key sk-abc***wxyz masked", (), "key [redacted] masked", id="openai-masked"),
        pytest.param("client ziri-user-123-a1b2c3d4e5f67890 said", (), "client [redacted] said", id="gateway-key"),
        pytest.param("token sk-ip", (), "token sk-ip", id="short-not-a-key"),
        # Wherever it starts: after a letter too, so a key behind an escaped quote (\x22) cannot slip by.
        pytest.param("task-runner", (), "ta[redacted]", id="key-shaped-after-a-letter"),
        pytest.param("path=/x\\x22ziri-user-123-a1b2c3d4e5f67890", (), "path=/x\\x22[redacted]", id="after-an-escape"),
        pytest.param("nothing secret here", ("",), "nothing secret here", id="empty-secret-ignored"),
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


@pytest.mark.parametrize(
    ("base_url", "loopback"),
    [
        pytest.param("http://127.0.0.1:3199/v1", True, id="ipv4"),
        pytest.param("http://localhost:3199/v1", True, id="localhost"),
        pytest.param("http://LOCALHOST:3199/v1", True, id="localhost-upper"),
        pytest.param("http://[::1]:3199/v1", True, id="ipv6"),
        pytest.param("https://api.openai.com/v1", False, id="openai"),
        pytest.param("https://api.openai.test/v1", False, id="fake"),
        pytest.param("http://localhost.example.com/v1", False, id="localhost-prefix"),
        pytest.param("http://127.0.0.1.nip.io/v1", False, id="loopback-lookalike"),
        pytest.param("http://user@127.0.0.1.evil.test/v1", False, id="userinfo-lookalike"),
    ],
)
def test_is_loopback(base_url, loopback):
    assert OpenAIProvider("openai", base_url, "sk-x", 1, 1).is_loopback is loopback


def test_require_credentials_names_the_variable():
    OpenAIProvider("openai", "https://api.openai.test/v1", PROVIDER_KEY, 1, 1).require_credentials()

    with pytest.raises(ApiError) as raised:
        OpenAIProvider("other", "https://x.test", "", 1, 1, api_key_env="OTHER_KEY").require_credentials()

    assert (raised.value.status, raised.value.code) == (500, "PROVIDER_KEY_MISSING")
    assert raised.value.message == "No API key configured for provider 'other' (set OTHER_KEY)."


class _CountingServer(http.server.ThreadingHTTPServer):
    """A loopback images endpoint that keeps connections alive and remembers each one it accepted."""

    daemon_threads = True

    def __init__(self):
        self.connections = []
        self.hold_first = False  # the first answer waits for a second connection: two calls in flight at once
        self.second = threading.Event()
        super().__init__(("127.0.0.1", 0), _CountingHandler)

    def get_request(self):
        connection, address = super().get_request()
        self.connections.append(address)
        if len(self.connections) >= 2:
            self.second.set()
        return connection, address


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.hold_first:
            self.server.hold_first = False
            self.server.second.wait(5)
        body = b'{"created": 1, "data": [{"url": "https://images.test/1.png"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def counting_server():
    server = _CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def loopback_provider(server):
    return OpenAIProvider("openai", f"http://127.0.0.1:{server.server_address[1]}/v1", PROVIDER_KEY, 2.0, 5.0)


@pytest.mark.real_http
def test_calls_one_after_another_reuse_one_kept_alive_connection(counting_server):
    provider = loopback_provider(counting_server)
    for _ in range(3):
        assert provider.generate({"model": "gpt-image-1", "prompt": "p"}, "req_1").provider_status == 200
    assert len(counting_server.connections) == 1


@pytest.mark.real_http
def test_a_stream_request_answered_as_json_is_its_result_and_leaves_its_connection_for_the_next(counting_server):
    provider = loopback_provider(counting_server)
    for _ in range(3):
        result = provider.open_stream({"model": "gpt-image-1", "prompt": "p", "stream": True}, "req_1")
        assert result.body == {"created": 1, "data": [{"url": "https://images.test/1.png"}]}
    assert len(counting_server.connections) == 1


@pytest.mark.real_http
def test_calls_in_flight_at_once_each_get_a_connection_and_leave_it_for_the_next(counting_server):
    counting_server.hold_first = True
    provider = loopback_provider(counting_server)
    results = []
    first = threading.Thread(target=lambda: results.append(provider.generate({"model": "m", "prompt": "p"}, "a")))
    first.start()
    deadline = time.monotonic() + 5
    while not counting_server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    results.append(provider.generate({"model": "m", "prompt": "p"}, "b"))  # the first still holds its connection
    first.join(5)
    for _ in range(3):
        results.append(provider.generate({"model": "m", "prompt": "p"}, "c"))
    assert [result.provider_status for result in results] == [200] * 5
    assert counting_server.second.is_set()
    assert len(counting_server.connections) == 2  # the later calls took the idle ones


class _Interrupted(BaseException):
    """What a killed greenlet sees: not an Exception, so nothing on the way may swallow it."""


@pytest.mark.real_http
def test_a_call_interrupted_mid_answer_gives_its_connection_back(counting_server, monkeypatch):
    provider = loopback_provider(counting_server)
    provider.generate({"model": "m", "prompt": "p"}, "a")  # the pool for the host exists, its connection idle
    url = provider.url_for("m")
    transport = provider.transport
    pool = transport.adapter.get_connection_with_tls_context(transport.prepare("POST", url, {}), transport.verify)
    idle = pool.pool.qsize()

    def interrupted(provider, response, limit):
        raise _Interrupted()

    monkeypatch.setattr(answers, "read_capped", interrupted)  # where every adapter reads its answer
    with pytest.raises(_Interrupted):
        provider.generate({"model": "m", "prompt": "p"}, "b")

    assert pool.pool.qsize() == idle  # back in the pool (closed: its answer was not read), not lost


def test_build_providers_from_settings():
    config = Config.from_environ({"ZIRI_PROVIDERS_FILE": str(SHIPPED_PROVIDERS), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                  "OPENAI_API_KEY": "sk-x", "ZIRI_UPSTREAM_CONNECT_TIMEOUT": "3",
                                  "ZIRI_UPSTREAM_READ_TIMEOUT": "90"})
    built = build_providers(config.providers, config.upstream_connect_timeout, config.upstream_read_timeout)

    openai = built["openai"]
    # every provider of the shipped providers.json
    assert list(built) == ["openai", "azure", "xai", "google", "vertex", "stability", "recraft", "bfl"]
    assert (openai.base_url, openai.api_key, openai.timeout) == ("http://127.0.0.1:9/v1", "sk-x", (3.0, 90.0))


def test_proxy_settings_are_read_once_not_per_call(monkeypatch, responses_mock):
    """Proxy settings are taken from the environment when the provider is built, not on each call."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    provider = OpenAIProvider("openai", "https://api.openai.test/v1", "sk-x", 1.0, 2.0)
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.internal:3128")
    responses_mock.post(GENERATIONS_URL, json={"created": 1, "data": [{"url": "https://images.test/1.png"}]})

    provider.generate({"model": "gpt-image-1", "prompt": "p"}, "req_1")

    [call] = responses_mock.calls
    assert call.request.req_kwargs["proxies"]["https"] == "http://proxy.internal:3128"
    assert call.request.req_kwargs["timeout"] == (1.0, 2.0)
