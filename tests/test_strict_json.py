"""Only strict JSON (RFC 8259) is written to clients, and to the ledger, whatever a provider sends.

A provider's ``NaN``, ``Infinity``, ``1e999`` or lone surrogate is cleaned where its answer is
parsed (a number becomes ``null``, a surrogate U+FFFD); the app's JSON provider refuses to
write a non-finite number, and refuses a request body holding one as not JSON.
"""

from pathlib import Path

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import strict_json_loads

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a lighthouse at dusk"}


def assert_strict_ledger(app):
    for line in Path(app.config["LEDGER_PATH"]).read_bytes().decode("utf-8", errors="strict").splitlines():
        strict_json_loads(line)


@pytest.mark.parametrize("raw", [
    pytest.param(b'{"created": NaN, "data": [{"url": "https://images.test/0.png"}]}', id="nan"),
    pytest.param(b'{"created": -Infinity, "data": [{"url": "https://images.test/0.png"}]}', id="infinity"),
    pytest.param(b'{"created": 1e999, "data": [{"url": "https://images.test/0.png"}]}', id="overflowing-number"),
    pytest.param(b'{"created": 1, "data": [{"url": "https://images.test/0.png", "revised_prompt": "\\ud83d"}]}',
                 id="lone-surrogate"),
    pytest.param(b'{"created": 1, "data": [{"url": "https://images.test/0.png"}], "usage": {"\\udfff": 1}}',
                 id="lone-surrogate-in-recorded-usage"),
])
def test_only_strict_json_reaches_the_client_and_the_ledger(client, app, responses_mock, raw):
    responses_mock.post(GENERATIONS_URL, body=raw, content_type="application/json")

    response = client.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY})

    assert response.status_code == 200
    text = response.get_data().decode("utf-8", errors="strict")
    body = strict_json_loads(text)
    assert "\\ud8" not in text.lower() and "\\udf" not in text.lower()  # no lone surrogate, even escaped
    assert body["data"][0]["url"] == "https://images.test/0.png"
    assert_strict_ledger(app)


def test_flask_refuses_to_write_non_finite_numbers(app):
    with pytest.raises(ValueError):
        app.json.dumps({"created": float("nan")})


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e400"])
def test_a_request_body_with_a_non_finite_number_is_not_json(client, number):
    data = b'{"provider": "openai", "model": "dall-e-3", "prompt": "a fox", "n": ' + number + b"}"

    response = client.post(ENDPOINT, data=data, content_type="application/json", headers={"X-API-Key": USER_KEY})

    assert (response.status_code, response.get_json()["code"]) == (400, "INVALID_JSON")
