"""Under real gunicorn: no key in any log line, and no line or field a client can forge.

Malformed request lines (a DEL, a tab before the version) carrying a gateway key, percent-encoded
or not, or a configured provider key, make gunicorn log the line it refused; a ``%0a`` in a valid
path reaches both the gateway's ``request`` line and gunicorn's access log. Everything the
gateway process wrote (the master's and the worker's output, at INFO) is then read back.
"""

import re

import pytest
from conftest import AZURE_ENDPOINT
from conftest import AZURE_KEY
from conftest import raw_exchange

from e2e.conftest import raw_key

pytestmark = pytest.mark.real_http

HEAD = b"Host: gateway\r\nConnection: close\r\n\r\n"
GATEWAY_FIELDS = ["requestId", "method", "path", "status", "code", "key", "client", "latencyMs"]


@pytest.fixture
def worker_class():
    return "gevent"  # the production default; the logger and the error path are the same under gthread


def test_no_key_and_no_forged_line_in_any_log(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env={
        "ZIRI_LOG_LEVEL": "INFO", "AZURE_OPENAI_API_KEY": AZURE_KEY, "AZURE_OPENAI_ENDPOINT": AZURE_ENDPOINT})
    key = raw_key("alice")
    refused = [
        f"GET /?api_key={key}\x7f HTTP/1.1\r\n",
        f"GET /?api_key={key} \tHTTP/1.1\r\n",
        f"GET /?api_key={key.replace('-', '%2D')}\x7f HTTP/1.1\r\n",
        f"GET /{AZURE_KEY}\x7f HTTP/1.1\r\n",
    ]
    for line in refused:
        assert raw_exchange(gateway.url, line.encode("latin-1") + HEAD).status == 400
    forged = raw_exchange(gateway.url, b"GET /x%0aFORGED%20status=200%20key=key_admin HTTP/1.1\r\n" + HEAD)
    assert forged.status == 404
    request_id = forged.json()["requestId"]
    # The gateway's request line, then gunicorn's access line (written once the answer is sent).
    gateway.process.wait_until(lambda: gateway.process.log().count(request_id) == 2, "the request's two log lines")
    log = gateway.process.log()
    for secret in (key, key.rsplit("-", 1)[1], AZURE_KEY):
        assert secret not in log, f"{secret} in the log:\n{log}"
    assert log.count("invalid request requestId=") == len(refused), log
    assert not re.search(r"^FORGED", log, re.M), log
    [gateway_line] = [line for line in log.splitlines() if f"request requestId={request_id}" in line]
    fields = re.findall(r"(?:^| )(\w+)=", gateway_line.split(" request ", 1)[1])
    assert fields == GATEWAY_FIELDS, gateway_line
    [access_line] = [line for line in log.splitlines() if line.endswith(f" requestId={request_id}")]
    # The path stays inside its quotes: nothing after it but the status, size, time and request id.
    assert re.fullmatch(r'127\.0\.0\.1 "GET /x[^"]* HTTP/1\.1" 404 \d+ \d+ms requestId=req_\w+', access_line), \
        access_line


def test_a_key_after_a_quote_tab_backslash_or_apostrophe_in_the_url_reaches_no_log(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env={"ZIRI_LOG_LEVEL": "INFO"})
    key = raw_key("alice")
    request_ids = []
    for before in ("%22", "%09", "%5C", "'", "%27", "%2522", "desk"):
        for where in (f"/x{before}{key}", f"/x?q={before}{key}", f"/x{before}{key.replace('-', '%252D')}"):
            answer = raw_exchange(gateway.url, f"GET {where} HTTP/1.1\r\n".encode("latin-1") + HEAD)
            assert answer.status == 404
            request_ids.append(answer.json()["requestId"])
    # Each request's two lines: the gateway's request line and gunicorn's access line.
    gateway.process.wait_until(lambda: all(gateway.process.log().count(request_id) == 2 for request_id in request_ids),
                               "every request's two log lines")
    log = gateway.process.log()
    for secret in (key, key.rsplit("-", 1)[1]):
        assert secret not in log, f"{secret} in the log:\n{log}"
