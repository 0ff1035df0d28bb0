"""Secrets: no raw gateway key or provider key in any log line, ledger line or response.

Representative traffic — successes, every kind of refused key, keys in a URL, and provider
errors whose every field (message, type, code, param, request id header, a plain-text body)
echoes the credential the gateway sent — first through the Flask test client with every
logger at DEBUG, then through real gunicorn and the stub at DEBUG, whose captured output is
scanned too. The upstream is a ``FaultServer`` on 127.0.0.1 that plays the echoing provider.
"""

import json
import logging
import re
from pathlib import Path

import pytest
import requests
from conftest import AZURE_KEY
from conftest import DEMO_KEY
from conftest import DISABLED_KEY
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import XAI_KEY
from e2e.conftest import STUB_API_KEY
from e2e.conftest import raw_key

from faults.conftest import FaultServer
from faults.conftest import http_response
from faults.conftest import reset

pytestmark = pytest.mark.real_http

UNKNOWN_KEY = "ziri-nobody-" + "7" * 32
PROVIDER_KEYS = (PROVIDER_KEY, AZURE_KEY, XAI_KEY, STUB_API_KEY)
_ECHO = re.compile(r"\[echo:([a-z0-9-]+)\]")


def credential(request):
    """Return the credential the gateway sent upstream (a Bearer token or Azure's api-key)."""
    authorization = request.header("Authorization") or ""
    return authorization.removeprefix("Bearer ") or request.header("api-key") or ""


def echoing_provider(connection, request, server):
    """Answer as a provider that repeats the credential it received in everything it says."""
    body = request.json()
    mode = _ECHO.search(body.get("prompt", ""))
    mode = mode.group(1) if mode else "ok"
    secret = credential(request)
    error = {"error": {"message": f"Incorrect API key provided: {secret}.", "type": f"invalid_key:{secret}",
                       "code": f"key_{secret}", "param": secret}}
    echo_headers = {"x-request-id": f"req_{secret}"}
    if mode == "ok":
        data = [{"url": f"https://images.test/{index}.png"} for index in range(body.get("n", 1))]
        connection.sendall(http_response(200, {"created": 1, "data": data}, {"x-request-id": "req_upstream_ok"}))
    elif mode in ("400", "401", "403", "429", "500"):
        connection.sendall(http_response(int(mode), error, {**echo_headers, "Retry-After": f"3 {secret}"}))
    elif mode == "xai-400":
        connection.sendall(http_response(400, {"code": f"bad {secret}", "error": f"Incorrect API key: {secret}"},
                                         echo_headers))
    elif mode == "text-500":
        connection.sendall(http_response(500, f"upstream broke for key {secret}".encode(), echo_headers))
    elif mode == "text-200":
        connection.sendall(http_response(200, f"<html>hello {secret}</html>".encode(), echo_headers))
    elif mode == "reset":
        reset(connection)
    elif mode == "stall":
        server.released.wait(5)


def body(prompt="a quiet street", provider="openai", model="dall-e-3", **fields):
    return {"provider": provider, "model": model, "prompt": prompt, **fields}


def scan(where, text, secrets, whole_keys_only=False):
    """Fail naming the first secret found in ``text``; a gateway key's hex secret counts on its own too."""
    for secret in secrets:
        parts = {secret, secret.rsplit("-", 1)[-1]} if secret.startswith("ziri-") and not whole_keys_only else {secret}
        for part in parts:
            assert part not in text, f"{where} contains a secret: ...{text[max(0, text.find(part) - 80):][:200]}"


# (id, path, headers, json body, query string)
REQUESTS = [
    ("x-api-key", "/api/images/generations", {"X-API-Key": USER_KEY}, body(), ""),
    ("bearer", "/api/images/generations", {"Authorization": f"Bearer {USER_KEY}"}, body(model="dall-e-2", n=2), ""),
    ("openai-path", "/v1/images/generations", {"Authorization": f"Bearer {USER_KEY}"},
     {"model": "dall-e-2", "prompt": "a street"}, ""),
    ("usage", "/api/me/usage", {"X-API-Key": USER_KEY}, None, ""),
    *[(f"provider-{mode}", "/api/images/generations", {"X-API-Key": USER_KEY}, body(f"a street [echo:{mode}]"), "")
      for mode in ("400", "401", "403", "429", "500", "xai-400", "text-500", "text-200", "reset", "stall")],
    ("azure-401", "/api/images/generations", {"X-API-Key": USER_KEY},
     body("a street [echo:401]", provider="azure", model="gpt-image-2"), ""),
    ("azure-text-500", "/api/images/generations", {"X-API-Key": USER_KEY},
     body("a street [echo:text-500]", provider="azure", model="gpt-image-2"), ""),
    ("disabled-key", "/api/images/generations", {"X-API-Key": DISABLED_KEY}, body(), ""),
    ("unknown-key", "/api/images/generations", {"X-API-Key": UNKNOWN_KEY}, body(), ""),
    ("demo-key-upstream", "/api/images/generations", {"X-API-Key": DEMO_KEY}, body(), ""),
    ("malformed-key", "/api/images/generations", {"X-API-Key": USER_KEY.upper()}, body(), ""),
    ("key-in-url", "/api/images/generations", {}, body(), f"api_key={USER_KEY}&key={UNKNOWN_KEY}"),
    ("usage-disabled-key", "/api/me/usage", {"Authorization": f"Bearer {DISABLED_KEY}"}, None, ""),
    ("usage-key-in-url", "/api/me/usage", {}, None, f"api_key={USER_KEY}"),
    ("bad-json", "/api/images/generations", {"X-API-Key": USER_KEY}, "{not json", ""),
]
GATEWAY_KEYS = (USER_KEY, DEMO_KEY, DISABLED_KEY, UNKNOWN_KEY)


def test_no_secret_in_logs_ledger_or_answers(make_app, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: the gateway's, urllib3's, werkzeug's
    answers = []
    with FaultServer(echoing_provider) as upstream:
        app = make_app(OPENAI_BASE_URL=upstream.url, AZURE_OPENAI_ENDPOINT=upstream.url.removesuffix("/v1"),
                       UPSTREAM_READ_TIMEOUT=0.5, LOG_LEVEL="DEBUG")
        client = app.test_client()
        for name, path, headers, payload, query in REQUESTS:
            kwargs = {"data": payload, "content_type": "application/json"} if isinstance(payload, str) else (
                {"json": payload} if payload is not None else {})
            method = client.get if path.endswith("usage") else client.post
            response = method(path, headers=headers, query_string=query, **kwargs)
            assert response.status_code != 500, (name, response.get_data())
            answers.append((name, response))
        upstream_requests = list(upstream.requests)

    by_name = dict(answers)
    assert by_name["x-api-key"].status_code == by_name["bearer"].status_code == 200
    assert by_name["provider-401"].status_code == 502  # the provider refused the gateway's key
    assert by_name["key-in-url"].get_json()["code"] == "API_KEY_REQUIRED"  # keys are never read from URLs
    # The echoing provider really had the provider keys to repeat: the scan below is not vacuous.
    assert {credential(request) for request in upstream_requests} == {PROVIDER_KEY, AZURE_KEY}
    everything = GATEWAY_KEYS + PROVIDER_KEYS
    for name, response in answers:
        scan(f"the answer to {name}", response.get_data(as_text=True), everything)
        scan(f"the headers of the answer to {name}", str(response.headers), everything)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    for record in caplog.records:
        scan(f"log record {record.name}:{record.lineno}", formatter.format(record), everything)
    scan("the ledger", Path(app.config["LEDGER_PATH"]).read_text(encoding="utf-8"), everything)
    for request in upstream_requests:  # the gateway's keys never leave it (USER_KEY's hex part is AZURE_KEY)
        scan("a request sent upstream", request.head + request.body.decode(), GATEWAY_KEYS, whole_keys_only=True)


def test_no_secret_in_gunicorn_or_stub_output(start_gateway, stub, tmp_path):
    with FaultServer(echoing_provider) as upstream:
        gateway = start_gateway({"alice": {}, "bob": {"status": "disabled"}}, workers=2, extra_env={
            "OPENAI_BASE_URL": upstream.url, "ZIRI_LOG_LEVEL": "DEBUG", "GUNICORN_CMD_ARGS": "--log-level debug",
            "ZIRI_UPSTREAM_READ_TIMEOUT": 0.5})
        url, alice, bob = gateway.url, raw_key("alice"), raw_key("bob")
        sent = [
            gateway.generate("alice"),
            gateway.generate("alice", prompt="a street [echo:401]"),
            gateway.generate("alice", prompt="a street [echo:text-500]"),
            gateway.generate("alice", prompt="a street [echo:stall]"),
            gateway.generate("bob"),
            requests.post(f"{url}/api/images/generations?api_key={alice}", json=body(), timeout=5),
            requests.get(f"{url}/api/me/usage?key={bob}", headers={"Authorization": f"Bearer {alice}"}, timeout=5),
            requests.post(f"{url}/v1/images/generations", json={"model": "dall-e-2", "prompt": "x"},
                          headers={"Authorization": f"Bearer {alice.upper()}"}, timeout=5),
        ]
        # Stubs and upstream calls are done; the access log line is written before the answer is.
        upstream_requests = list(upstream.requests)
    assert [response.status_code for response in sent] == [200, 502, 502, 504, 403, 400, 200, 401]
    assert {credential(request) for request in upstream_requests} == {STUB_API_KEY}

    secrets = (alice, bob, *PROVIDER_KEYS)
    for response in sent:
        scan(f"the answer to {response.request.url}", response.text + str(response.headers), secrets)
    log = gateway.process.log()
    assert "requestId=req_" in log and "[DEBUG]" in log  # the access log and gunicorn's debug lines
    scan("gunicorn's output", log, secrets)
    scan("the stub's output", stub.process.log(), secrets)
    scan("the ledger", gateway.ledger_path.read_text(encoding="utf-8"), secrets)
    assert all(json.loads(line) for line in gateway.ledger_path.read_text(encoding="utf-8").splitlines())
