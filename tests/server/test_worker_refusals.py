"""gunicorn's own refusals (server/workers.py): the bytes answered, and the error catalogue that lists them.

``JsonErrors.handle_error`` is driven directly with gunicorn's exceptions and a socket that keeps
what it is sent; under real gunicorn the same refusals are in e2e/test_server_errors.py.
"""

import json
import logging
import uuid
from types import SimpleNamespace

import pytest
from gunicorn.http import errors as http_errors

from ziri_images.errors import ERROR_CODES
from ziri_images.openapi import build_document
from ziri_images.server import workers

REQUEST_ID = "req_" + "0" * 32
REFUSED = [
    pytest.param(http_errors.InvalidRequestLine("GET /\x7f HTTP/1.1"), 400, "Bad Request", "INVALID_REQUEST_LINE",
                 "The request line is malformed.", id="request-line"),
    pytest.param(http_errors.InvalidHeader("Bad Name"), 400, "Bad Request", "INVALID_HEADER",
                 "A request header is malformed (its name, its value or a Content-Length).", id="header"),
    pytest.param(http_errors.LimitRequestLine(5000, 4094), 414, "URI Too Long", "URI_TOO_LONG",
                 "The request line (method, URI and version) is too long.", id="uri"),
    pytest.param(http_errors.LimitRequestHeaders("too many"), 431, "Request Header Fields Too Large",
                 "HEADERS_TOO_LARGE", "Too many request headers, or one is too large.", id="headers"),
    pytest.param(http_errors.InvalidChunkSize(b"zz"), 400, "Bad Request", "INVALID_CHUNKED_BODY",
                 "The chunked request body is malformed.", id="chunk"),
    pytest.param(http_errors.UnsupportedTransferCoding("br"), 501, "Not Implemented", "UNSUPPORTED_TRANSFER_ENCODING",
                 "Transfer-Encoding must be chunked or absent.", id="transfer-encoding"),
    pytest.param(http_errors.ExpectationFailed("201-created"), 417, "Expectation Failed", "EXPECTATION_FAILED",
                 "Only 'Expect: 100-continue' is supported.", id="expect"),
    pytest.param(http_errors.ForbiddenProxyRequest("203.0.113.9"), 403, "Forbidden", "FORBIDDEN",
                 "Request forbidden.", id="proxy"),
    pytest.param(http_errors.InvalidResponseHeader("X-Bad"), 500, "Internal Server Error", "INTERNAL_ERROR",
                 "Internal server error.", id="response-header"),
    pytest.param(RuntimeError("unexpected"), 500, "Internal Server Error", "INTERNAL_ERROR",
                 "Internal server error.", id="unexpected"),
]


class SentBytes:
    """A client socket that keeps what the worker sends it."""

    def __init__(self):
        self.sent = b""

    def gettimeout(self):
        return None

    def setblocking(self, flag):
        pass

    def sendall(self, data):
        self.sent += data


def answer_to(error, monkeypatch):
    """Return the bytes the worker sends for ``error`` raised before the app ran (no parsed request)."""
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=0))
    worker = workers.JsonErrors()
    worker.log = SimpleNamespace(exception=lambda *args: None, warning=lambda *args: None,
                                 debug=lambda *args: None)
    client = SentBytes()
    worker.handle_error(None, client, ("127.0.0.1", 5000), error)
    return client.sent


def status_and_code(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["code"]


@pytest.mark.parametrize("error, status, reason, code, message", REFUSED)
def test_the_workers_answers_are_the_same_bytes(monkeypatch, error, status, reason, code, message):
    body = f'{{"error": "{message}", "code": "{code}", "requestId": "{REQUEST_ID}"}}'.encode()
    expected = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Request-Id: {REQUEST_ID}\r\nx-should-retry: false\r\n\r\n"
                ).encode() + body

    assert answer_to(error, monkeypatch) == expected


def test_every_code_the_worker_answers_is_in_the_error_catalogue_and_the_document(monkeypatch, caplog):
    caplog.set_level(logging.CRITICAL)
    answered = {status_and_code(answer_to(param.values[0], monkeypatch)) for param in REFUSED}
    catalogued = {(status, code) for status, code, _scope, _when in ERROR_CODES}
    documented = {(entry["status"], entry["code"]) for entry in build_document()["x-error-codes"]}

    assert answered - catalogued == set()
    assert answered - documented == set()
