"""Upstream faults over real HTTP: each gets its documented status, code, x-should-retry and charge.

The gateway runs in the Flask test client, but its provider calls go over real sockets on
127.0.0.1: to a ``FaultServer`` that refuses, hangs up, resets, stalls or streams without end,
and to the project's stub (in a thread of this process) driven by prompt directives. Each
case checks what the client got, that the upstream was called exactly once (never retried:
a retry could bill twice) and the ledger's record of it.
"""

import threading
from pathlib import Path

import pytest
from conftest import ENDPOINT
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import ledger_lines
from werkzeug.serving import make_server

from faults.conftest import FaultServer
from faults.conftest import close_at_once
from faults.conftest import closed_port_url
from faults.conftest import endless_body
from faults.conftest import gzip_bomb
from faults.conftest import partial_body
from faults.conftest import reset_at_once
from faults.conftest import respond
from faults.conftest import stall
from ziri_images.dev.stub import create_stub_app
from ziri_images.openapi import ERROR_CODES
from ziri_images.providers.openai import MAX_RESPONSE_BYTES

pytestmark = pytest.mark.real_http

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a lighthouse at dusk"}
READ_TIMEOUT = 0.5
DROPPED = "Provider 'openai' dropped the connection."
TIMED_OUT = "Provider 'openai' did not answer in time; the images may still have been generated."
# The statuses the contract lists for LLM_PROVIDER_ERROR.
DOCUMENTED = {status for status, code, _scope, _when in ERROR_CODES if code == "LLM_PROVIDER_ERROR"}
RATE_LIMITED = {"error": {"message": "Rate limit reached for images per minute", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}


def nested_json(depth):
    return b'{"created": 1, "data": ' + b"[" * depth + b"]" * depth + b"}"


def fault(behaviour, status, *, id, retry="false", billed=True, provider_status=None, message=None, headers=None):
    expected = {"status": status, "retry": retry, "billed": billed, "provider_status": provider_status,
                "message": message, "headers": headers or {}}
    return pytest.param(behaviour, expected, id=id)


TRANSPORT_FAULTS = [
    # Nothing was sent: retrying cannot bill twice.
    fault(None, 502, retry="true", billed=False, message="Provider 'openai' could not be reached.",
          id="connection-refused"),
    fault(close_at_once, 502, message=DROPPED, id="closed-before-answering"),
    fault(reset_at_once, 502, message=DROPPED, id="reset-before-answering"),
    # Past a 2xx status: the provider may have billed it all, so the reservation is charged.
    fault(partial_body(then_reset=True), 502, provider_status=200, id="reset-mid-body"),
    fault(partial_body(then_reset=False), 502, provider_status=200, id="closed-mid-body"),
    fault(stall(after_headers=False), 504, message=TIMED_OUT, id="read-timeout-before-headers"),
    fault(stall(after_headers=True), 504, provider_status=200, message=TIMED_OUT, id="read-timeout-mid-body"),
    fault(endless_body, 502, provider_status=200, id="huge-body",
          message=f"Provider 'openai' response exceeds {MAX_RESPONSE_BYTES} bytes."),
    fault(gzip_bomb(MAX_RESPONSE_BYTES // (1 << 20) + 16), 502, provider_status=200, id="gzip-bomb",
          message=f"Provider 'openai' response exceeds {MAX_RESPONSE_BYTES} bytes."),
    fault(respond(429, RATE_LIMITED, {"Retry-After": "7"}), 429, retry="true", billed=False, provider_status=429,
          headers={"Retry-After": "7"}, message="Rate limit reached for images per minute",
          id="429-with-retry-after"),
    fault(respond(200, nested_json(100_000), {"Content-Type": "application/json"}), 502, provider_status=200,
          message="Provider 'openai' returned a response without image data.", id="200-json-nested-too-deep"),
]


def assert_provider_error(app, response, expected):
    """Check the error answered for a failed provider call and its one ledger charge.

    The charge is 0, or the reservation when the provider answered 2xx: it may have billed it all.
    """
    assert response.status_code == expected["status"], response.get_data(as_text=True)
    assert response.status_code in DOCUMENTED
    body = response.get_json()
    assert body["code"] == "LLM_PROVIDER_ERROR"
    assert body["requestId"] == response.headers["X-Request-Id"]
    assert response.headers["x-should-retry"] == expected["retry"]
    if expected["message"] is not None:
        assert body["error"] == expected["message"]
    for name, value in expected["headers"].items():
        assert response.headers[name] == value
    assert PROVIDER_KEY not in response.get_data(as_text=True)
    reservation, charge = ledger_lines(app)
    assert reservation["type"] == "reservation" and reservation["requestId"] == body["requestId"]
    assert (charge["type"], charge["requestId"], charge["status"]) == ("charge", body["requestId"], "provider_error")
    answered = expected["provider_status"] is not None and 200 <= expected["provider_status"] < 300
    cost, images = (reservation["amount"], None) if answered else (0.0, 0)
    assert (charge["cost"], charge["imagesReturned"], charge["httpStatus"]) == (cost, images, expected["status"])
    assert charge.get("chargedBy") == ("reservation" if answered else None)
    assert charge["mayHaveBilled"] is expected["billed"]
    assert charge["providerStatus"] == expected["provider_status"]
    assert PROVIDER_KEY not in Path(app.config["LEDGER_PATH"]).read_text(encoding="utf-8")


@pytest.mark.parametrize(("behaviour", "expected"), TRANSPORT_FAULTS)
def test_transport_fault(make_app, behaviour, expected):
    with FaultServer(behaviour or close_at_once) as upstream:
        url = closed_port_url() if behaviour is None else upstream.url
        app = make_app(OPENAI_BASE_URL=url, UPSTREAM_READ_TIMEOUT=READ_TIMEOUT)

        response = app.test_client().post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY})

    assert_provider_error(app, response, expected)
    assert len(upstream.requests) == (0 if behaviour is None else 1)
    if upstream.requests:
        sent = upstream.requests[0]
        assert sent.header("Authorization") == f"Bearer {PROVIDER_KEY}"
        assert sent.json() == {"model": "dall-e-3", "prompt": BODY["prompt"], "n": 1, "quality": "standard",
                               "size": "1024x1024"}


# --- the stub's fault modes -------------------------------------------------------------------

class ThreadedStub:
    """The project's stub served by werkzeug in a thread of this process."""

    def __init__(self):
        self.server = make_server("127.0.0.1", 0, create_stub_app(), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def requests(self):
        client = self.server.app.test_client()
        return client.get("/stats").get_json()["requests"]

    def close(self):
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


@pytest.fixture(scope="module")
def stub_upstream():
    stub = ThreadedStub()
    yield stub
    stub.close()


STUB_FAULTS = [
    fault("[stub:status=500]", 502, retry="true", billed=False, provider_status=500, message="Stub error 500.",
          id="500"),
    fault("[stub:status=502]", 502, retry="true", billed=False, provider_status=502, message="Stub error 502.",
          id="502"),
    fault("[stub:status=503]", 502, retry="true", billed=False, provider_status=503, message="Stub error 503.",
          id="503"),
    fault("[stub:nonjson]", 502, provider_status=200,
          message="Provider 'openai' returned a response without image data.", id="200-not-json"),
    fault("[stub:nodata]", 502, provider_status=200,
          message="Provider 'openai' returned a response without image data.", id="200-without-data"),
]


@pytest.mark.parametrize(("directive", "expected"), STUB_FAULTS)
def test_stub_fault_mode(make_app, stub_upstream, directive, expected):
    app = make_app(OPENAI_BASE_URL=stub_upstream.url, UPSTREAM_READ_TIMEOUT=READ_TIMEOUT)
    before = stub_upstream.requests()

    response = app.test_client().post(ENDPOINT, json={**BODY, "prompt": f"a lighthouse {directive}"},
                                      headers={"X-API-Key": USER_KEY})

    assert_provider_error(app, response, expected)
    assert stub_upstream.requests() == before + 1


@pytest.mark.parametrize(("body", "returned", "cost"), [
    pytest.param({"model": "dall-e-2", "n": 3}, 2, 0.04, id="dall-e-2-three-asked-two-returned"),
    pytest.param({"model": "dall-e-2", "n": 10, "size": "256x256"}, 9, 0.144, id="dall-e-2-ten-asked-nine-returned"),
])
def test_fewer_images_than_requested_are_charged_as_returned(make_app, stub_upstream, body, returned, cost):
    app = make_app(OPENAI_BASE_URL=stub_upstream.url)

    response = app.test_client().post(ENDPOINT, json={**BODY, **body, "prompt": "two foxes [stub:fewer]"},
                                      headers={"X-API-Key": USER_KEY})

    assert response.status_code == 200, response.get_data(as_text=True)
    payload = response.get_json()
    assert len(payload["data"]) == returned
    meta = payload["_meta"]["cost"]
    assert (meta["imagesRequested"], meta["imagesCharged"], meta["actual"]) == (body["n"], returned, cost)
    assert meta["reserved"] > cost
    reservation, charge = ledger_lines(app)
    assert (charge["status"], charge["imagesReturned"], charge["cost"]) == ("succeeded", returned, cost)
    assert charge["requestId"] == reservation["requestId"] == payload["_meta"]["requestId"]
    usage = app.test_client().get("/api/me/usage", headers={"X-API-Key": USER_KEY}).get_json()
    assert (usage["daily"]["spent"], usage["daily"]["reserved"]) == (cost, 0)


def test_slow_stub_past_the_read_timeout_is_a_504_that_may_have_billed(make_app, stub_upstream):
    app = make_app(OPENAI_BASE_URL=stub_upstream.url, UPSTREAM_READ_TIMEOUT=READ_TIMEOUT)

    response = app.test_client().post(ENDPOINT, json={**BODY, "prompt": "slow [stub:delay=1]"},
                                      headers={"X-API-Key": USER_KEY})

    assert_provider_error(app, response, {"status": 504, "retry": "false", "billed": True, "provider_status": None,
                                          "message": TIMED_OUT, "headers": {}})

