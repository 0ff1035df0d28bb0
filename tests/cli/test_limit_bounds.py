"""Only enforceable limits get in: the CLI and keys.json refuse the rest; the largest fits every store."""

import json

import pytest
from conftest import ENDPOINT
from conftest import GENERATIONS_URL
from conftest import USER_KEY
from conftest import key_record
from conftest import openai_image_response
from conftest import read_keys

from ziri_images.cli import entry as cli
from ziri_images.errors import ConfigError
from ziri_images.keys.store import load_key_file

BODY = {"provider": "openai", "model": "dall-e-3", "prompt": "a fox", "size": "1024x1024", "quality": "standard"}
TOKEN = "admin-token-abcdef0123456789"
BAD_KEY = "ziri-bad-" + "b" * 32
# The documented largest limits (docs/limits.md).
LARGEST = {"daily_spend_limit": 1_000_000_000, "monthly_spend_limit": 1_000_000_000,
           "requests_per_minute": 1_000_000, "max_concurrent_requests": 100_000}

UNENFORCEABLE = [
    pytest.param("--daily-spend-limit", "nan", id="daily-nan"),
    pytest.param("--daily-spend-limit", "inf", id="daily-inf"),
    pytest.param("--daily-spend-limit", "-inf", id="daily-minus-inf"),
    pytest.param("--daily-spend-limit", "1e400", id="daily-1e400"),
    pytest.param("--daily-spend-limit", "1e13", id="daily-overflows-bigint-micros"),
    pytest.param("--monthly-spend-limit", "NaN", id="monthly-nan"),
    pytest.param("--monthly-spend-limit", "1000000000.01", id="monthly-above-the-largest"),
    pytest.param("--requests-per-minute", "1000001", id="rate-above-the-largest"),
    pytest.param("--requests-per-minute", "99999999999999999999999", id="rate-beyond-bigint"),
    pytest.param("--max-concurrent-requests", "100001", id="concurrency-above-the-largest"),
]


def run(capsys, *argv):
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("option, value", UNENFORCEABLE)
@pytest.mark.parametrize("command", [["keys", "create", "--user", "zed"], ["keys", "set", "key_user"]],
                         ids=["create", "set"])
def test_the_cli_refuses_a_limit_the_gateway_cannot_enforce(capsys, keys_path, command, option, value):
    before = keys_path.read_bytes()

    code, out, err = run(capsys, *command, f"{option}={value}", "--keys-file", keys_path)

    assert (code, out) == (2, "")
    assert f"argument {option}: " in err and "at most" in err and repr(value) in err
    assert keys_path.read_bytes() == before


@pytest.mark.parametrize("option, value", [
    pytest.param("--daily-spend-limit", "1000000000", id="the-largest-spend"),
    pytest.param("--requests-per-minute", "1000000", id="the-largest-rate"),
    pytest.param("--max-concurrent-requests", "100000", id="the-largest-concurrency"),
])
def test_the_cli_accepts_the_largest_limits(capsys, keys_path, option, value):
    code, _, err = run(capsys, "keys", "set", "key_user", option, value, "--keys-file", keys_path)
    assert code == 0, err
    limits = next(record for record in read_keys(keys_path) if record["id"] == "key_user")["limits"]
    assert limits[option[2:].replace("-", "_")] == float(value)


@pytest.mark.parametrize("limits_text, problem", [
    pytest.param('{"daily_spend_limit": NaN}', "limit 'daily_spend_limit' must be a number >= 0 and at most "
                 "1,000,000,000", id="nan"),
    pytest.param('{"daily_spend_limit": Infinity}', "got inf", id="infinity"),
    pytest.param('{"monthly_spend_limit": -Infinity}', "got -inf", id="minus-infinity"),
    pytest.param('{"monthly_spend_limit": 1e400}', "got inf", id="1e400"),
    pytest.param('{"daily_spend_limit": 1e13}', "got 10000000000000.0", id="overflows-bigint-micros"),
    pytest.param('{"daily_spend_limit": 10000000000000}', "got 10000000000000", id="integer-too-large"),
    pytest.param('{"requests_per_minute": 1000001}', "limit 'requests_per_minute' must be a whole number >= 0 "
                 "and at most 1,000,000", id="rate-too-large"),
    pytest.param('{"requests_per_minute": 1.5}', "whole number", id="fractional-rate"),
    pytest.param('{"max_concurrent_requests": 1e20}', "limit 'max_concurrent_requests' must be a whole number",
                 id="concurrency-too-large"),
    pytest.param('{"max_concurrent_requests": NaN}', "got nan", id="concurrency-nan"),
])
def test_a_hand_edited_unenforceable_limit_is_a_file_error(tmp_path, limits_text, problem):
    record = json.dumps(key_record(USER_KEY, key_id="key_user", user="alice")).rstrip("}")
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [' + record + ', "limits": ' + limits_text + "}]}", encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_key_file(str(path))

    assert str(raised.value).startswith(f"key file {path}: keys[0]: ") and problem in str(raised.value)


@pytest.mark.stores()
def test_one_unenforceable_limit_never_breaks_other_keys_or_the_dashboard(make_app, keys_path, responses_mock):
    admin = make_app(ADMIN_TOKEN=TOKEN).test_client()
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    good = read_keys(keys_path)
    bad = json.dumps(key_record(BAD_KEY, key_id="key_bad", user="bad")).rstrip("}") + ', "limits": ' \
        '{"daily_spend_limit": NaN, "monthly_spend_limit": 1e13}}'
    text = json.dumps({"keys": good})
    keys_path.write_text(text[:-2] + ", " + bad + "]}", encoding="utf-8")

    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": USER_KEY}).status_code == 200
    assert admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": BAD_KEY}).get_json()["code"] == "API_KEY_INVALID"
    assert admin.get("/admin/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


@pytest.mark.stores()
def test_the_largest_limits_are_enforced_by_every_store(make_app, add_key, responses_mock):
    admin = make_app(ADMIN_TOKEN=TOKEN).test_client()
    responses_mock.post(GENERATIONS_URL, json=openai_image_response(1))
    largest = add_key(key_id="key_largest", limits=LARGEST)

    answer = admin.post(ENDPOINT, json=BODY, headers={"X-API-Key": largest})
    usage = admin.get("/api/me/usage", headers={"X-API-Key": largest}).get_json()

    assert answer.status_code == 200 and answer.headers["X-RateLimit-Limit"] == "1000000"
    assert usage["daily"]["limit"] == 1_000_000_000 and usage["daily"]["remaining"] == 999_999_999.96
    assert admin.get("/admin/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
