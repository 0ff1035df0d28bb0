"""Server-level answers: gunicorn's own refusals and stalled bodies, under real gunicorn.

Requests gunicorn refuses before the app runs (a request line or header it cannot parse,
limits on the URI and the headers, a bad Content-Length) are answered in the JSON contract by
``ziri_images.server.workers``, on gthread and gevent. A body that stalls after its headers gets 408
after ``ZIRI_BODY_TIMEOUT_SECONDS`` and frees its slot: more stalled uploads than a worker has
slots leave ``/health`` answering. The nginx sample's own error pages are checked in
``test_nginx_sample.py``.
"""

import re
import socket

import pytest
import requests
from conftest import parse_response
from conftest import raw_exchange

from e2e.conftest import raw_key
from ziri_images.config import Config
from ziri_images.errors import ConfigError
from ziri_images.server.workers import json_worker_class

pytestmark = pytest.mark.real_http

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}\Z")
HEAD = b"Host: gateway\r\nConnection: close\r\n"


def generation_head(content_length, key=None):
    """Return the head of a POST to the generations endpoint announcing ``content_length`` body bytes."""
    return (b"POST /api/images/generations HTTP/1.1\r\n" + HEAD
            + f"X-API-Key: {key or raw_key('alice')}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {content_length}\r\n\r\n".encode())


REFUSALS = [
    pytest.param(b"GET /health HTTP/1.1\r\n" + HEAD + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
                 431, "HEADERS_TOO_LARGE", id="header-over-8k"),
    pytest.param(b"GET /health HTTP/1.1\r\n" + HEAD + b"".join(b"X-H%d: 1\r\n" % i for i in range(101)) + b"\r\n",
                 431, "HEADERS_TOO_LARGE", id="over-100-headers"),
    pytest.param(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n", 414, "URI_TOO_LONG", id="uri-over-4k"),
    pytest.param(b"POST /api/images/generations HTTP/1.1\r\n" + HEAD + b"Content-Length: 12abc\r\n\r\n",
                 400, "INVALID_HEADER", id="bad-content-length"),
    pytest.param(b"POST /api/images/generations HTTP/1.1\r\n" + HEAD
                 + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, "INVALID_HEADER", id="two-content-lengths"),
    pytest.param(b"GET /health HTTP/1.1\r\n" + HEAD + b"Bad Name: 1\r\n\r\n", 400, "INVALID_HEADER",
                 id="bad-header-name"),
    pytest.param(b"GET /health\x7f HTTP/1.1\r\n" + HEAD + b"\r\n", 400, "INVALID_REQUEST_LINE", id="del-in-line"),
    pytest.param(b"GET /health \tHTTP/1.1\r\n" + HEAD + b"\r\n", 400, "INVALID_REQUEST_LINE", id="tab-before-version"),
    pytest.param(b"GET /health HTTP/9.9\r\n" + HEAD + b"\r\n", 400, "INVALID_REQUEST_LINE", id="bad-version"),
    pytest.param(b"POST /api/images/generations HTTP/1.1\r\n" + HEAD + b"Transfer-Encoding: br\r\n\r\n",
                 501, "UNSUPPORTED_TRANSFER_ENCODING", id="unsupported-transfer-encoding"),
    pytest.param(generation_head(None).replace(b"Content-Length: None", b"Transfer-Encoding: chunked") + b"zz\r\n",
                 400, "INVALID_CHUNKED_BODY", id="bad-chunk-size"),
]


def assert_contract(response, status, code, should_retry="false"):
    """Assert ``response`` is the contract's JSON error: status, code, request id (body = header), retry header."""
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json", response
    body = response.json()
    assert body["code"] == code and body["error"], body
    assert REQUEST_ID.match(body["requestId"]) and response.headers["x-request-id"] == body["requestId"], response
    assert response.headers["x-should-retry"] == should_retry, response


def test_every_server_refusal_is_the_json_contract(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=1)
    for param in REFUSALS:
        data, status, code = param.values
        assert_contract(raw_exchange(gateway.url, data), status, code)
    # The worker is still serving after them all.
    assert requests.get(f"{gateway.url}/health", timeout=(2, 10)).status_code == 200


def stalled_upload(url, key=None):
    """Open a connection that sends complete headers and the first bytes of a 200-byte body, then nothing."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(generation_head(200, key) + b'{"provider": "openai"')
    return sock


def read_until_closed(sock):
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_stalled_bodies_get_408_and_free_every_slot(start_gateway):
    # One worker with two slots (two greenlets, or two threads), bodies due within half a second.
    gateway = start_gateway({"alice": {}}, workers=1, threads=2,
                            extra_env={"GUNICORN_WORKER_CONNECTIONS": 2, "ZIRI_BODY_TIMEOUT_SECONDS": 0.5})
    # The clients stay silent after their 408 too (they neither read nor close).
    stalled = [stalled_upload(gateway.url) for _ in range(6)]
    try:
        # Six uploads through two slots take about 1.5 s. Without a body deadline they hold both
        # slots for good; a slot held 2 s longer per upload (gthread lingering on each silent
        # client before closing) takes over 12 s: both miss this bound.
        assert requests.get(f"{gateway.url}/health", timeout=(10, 10)).status_code == 200
        for sock in stalled:
            # Nothing was sent upstream: resending is safe.
            assert_contract(parse_response(read_until_closed(sock)), 408, "REQUEST_TIMEOUT", should_retry="true")
    finally:
        for sock in stalled:
            sock.close()
    assert not gateway.records("reservation"), "a stalled request reached the limiter"


@pytest.mark.parametrize("raw, problem", [
    pytest.param("0", "positive", id="zero"),
    pytest.param("-3", "positive", id="negative"),
    pytest.param("nan", "positive", id="nan"),
    pytest.param("inf", "positive", id="infinite"),
    pytest.param("soon", "positive", id="not-a-number"),
])
def test_a_bad_body_timeout_stops_start_up(raw, problem):
    with pytest.raises(ConfigError, match=rf"ZIRI_BODY_TIMEOUT_SECONDS: expected a {problem} number.*{raw!r}"):
        body_timeout_seconds({"ZIRI_BODY_TIMEOUT_SECONDS": raw})


def test_body_timeout_defaults_within_the_routers_30_seconds():
    assert body_timeout_seconds({}) <= 30
    assert body_timeout_seconds({"ZIRI_BODY_TIMEOUT_SECONDS": "2.5"}) == 2.5


def body_timeout_seconds(environ):
    """Return the body timeout ``environ`` sets, as gunicorn.conf.py reads it (providers.json left unread)."""
    return Config.from_environ(environ, read_providers=False).body_timeout_seconds


@pytest.mark.parametrize("name, threads, expected", [
    pytest.param("gevent", 32, "GeventWorker", id="gevent"),
    pytest.param("gthread", 32, "ThreadWorker", id="gthread"),
    pytest.param("sync", 1, "SyncWorker", id="sync"),
    pytest.param("sync", 4, "ThreadWorker", id="sync-with-threads-is-gthread"),
])
def test_every_worker_class_answers_in_json(name, threads, expected):
    chosen = json_worker_class(name, threads)
    assert chosen.__name__ == expected and chosen.__module__ == "ziri_images.server.workers"


def test_an_unknown_worker_class_stops_start_up():
    with pytest.raises(ConfigError, match="GUNICORN_WORKER_CLASS: expected gevent, gthread or sync, got 'tornado'"):
        json_worker_class("tornado", 1)
