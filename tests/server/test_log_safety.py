"""Log lines: no key in any of them, and none a client can forge (ziri_images.server.logs).

The gateway's own logger (through the Flask test client) and gunicorn's error and access logs
(``serverlog.Logger``, driven directly here; under real gunicorn in e2e/test_server_logs.py).
"""

import importlib.util
import logging
import re
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from conftest import AZURE_ENDPOINT
from conftest import AZURE_KEY
from conftest import PROJECT_DIR
from conftest import PROVIDER_KEY
from conftest import USER_KEY
from conftest import package_modules_loaded_by
from gunicorn.config import Config

from ziri_images.server.logs import escape
from ziri_images.server.logs import escape_quoted

GATEWAY_FIELDS = ["requestId", "method", "path", "status", "code", "key", "client", "latencyMs"]
ENCODED_KEY = USER_KEY.replace("-", "%2D")
FORGED_PATH = "/x%0a2026-12-02 12:00:00,000 INFO [1] request requestId=req_0 status=200 key=key_admin"


@pytest.mark.parametrize("value, bare, quoted", [
    pytest.param("/api/images/generations", "/api/images/generations", "/api/images/generations", id="plain"),
    pytest.param("/x\nFORGED", "/x\\x0aFORGED", "/x\\x0aFORGED", id="newline"),
    pytest.param("/x\r\x7f\x85\u2028", "/x\\x0d\\x7f\\x85\\u2028", "/x\\x0d\\x7f\\x85\\u2028", id="controls"),
    pytest.param("/a b=c", "/a\\x20b=c", "/a b=c", id="space"),
    pytest.param('/"q"\\', "/\\x22q\\x22\\x5c", "/\\x22q\\x22\\x5c", id="quotes-and-backslash"),
    pytest.param("/caf\u00e9", "/caf\u00e9", "/caf\u00e9", id="unicode-kept"),
    pytest.param(None, "-", "None", id="none"),
])
def test_escape(value, bare, quoted):
    assert escape(value) == bare
    assert escape_quoted(value) == quoted


def request_lines(caplog):
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith("request requestId=")]


@pytest.mark.parametrize("path, headers", [
    pytest.param(FORGED_PATH, {}, id="newline-and-fields-in-path"),
    pytest.param("/health", {"X-Forwarded-For": "10.0.0.1 status=200 key=key_admin\tFORGED"}, id="forwarded-for"),
])
def test_the_request_line_cannot_be_forged(make_app, caplog, path, headers):
    client = make_app(TRUSTED_PROXIES=1).test_client()
    with caplog.at_level(logging.INFO, logger="ziri_images"):
        client.get(path, headers=headers)
    [line] = request_lines(caplog)
    assert "\n" not in line
    assert re.findall(r"(?:^request | )(\w+)=", line) == GATEWAY_FIELDS, line


def test_the_gateways_log_redacts_keys_and_configured_provider_keys(app, caplog):
    log = logging.getLogger("ziri_images")
    with caplog.at_level(logging.INFO, logger="ziri_images"):
        log.warning("echo %s %s %s %s", USER_KEY, ENCODED_KEY, PROVIDER_KEY, AZURE_KEY)
        try:
            raise ValueError(f"the provider said {AZURE_KEY} and {USER_KEY}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "[redacted]" in text
    for secret in (USER_KEY, USER_KEY.rsplit("-", 1)[1], PROVIDER_KEY, AZURE_KEY):
        assert secret not in text, text


def test_a_traceback_keeps_its_lines_but_cannot_start_a_record(app, caplog):
    log = logging.getLogger("ziri_images")
    with caplog.at_level(logging.INFO, logger="ziri_images"):
        try:
            raise ValueError("bad path /x\n2026-12-02 12:00:00,000 INFO [1] request status=200 key=key_admin\rX")
        except ValueError:
            log.exception("unhandled error requestId=%s", "req_1")
        log.warning("bad %d format", "not a number")  # logged, not raised into the caller
    first, *rest = caplog.text.splitlines()
    assert first.endswith("unhandled error requestId=req_1") and rest[0] == "Traceback (most recent call last):"
    assert all(line.startswith("| ") for line in rest[1:-1]), rest
    assert rest[-2].endswith("request status=200 key=key_admin\\x0dX"), rest
    assert "bad %d format ('not a number',)" in rest[-1]


def project_gunicorn_conf():
    """Return gunicorn.conf.py as a module (imported as a module, it patches nothing)."""
    spec = importlib.util.spec_from_file_location("project_gunicorn_conf", PROJECT_DIR / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gunicorn_logs(tmp_path, monkeypatch, providers_path):
    """Return (logger, error log path, access log path) for gunicorn.conf.py's logger_class, Azure's key configured."""
    monkeypatch.setenv("ZIRI_PROVIDERS_FILE", str(providers_path))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", AZURE_ENDPOINT)
    conf = project_gunicorn_conf()
    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("access_log_format", conf.access_log_format)
    logger = conf.logger_class(cfg)
    yield logger, tmp_path / "error.log", tmp_path / "access.log"
    for log in (logger.error_log, logger.access_log):
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def test_gunicorns_logs_hold_no_key(gunicorn_logs):
    logger, error_log, _ = gunicorn_logs
    # What gunicorn logs for a malformed request line: the whole line, query string included.
    for line in (f"GET /?api_key={USER_KEY}\\x7f HTTP/1.1", f"GET /?api_key={ENCODED_KEY} \tHTTP/1.1",
                 f"GET /{AZURE_KEY}\\x7f HTTP/1.1"):
        logger.warning("Invalid request from ip=127.0.0.1: Invalid HTTP request line: '%s'", line)
    text = error_log.read_text()
    assert text.count("[redacted]") == 3, text
    for secret in (USER_KEY, USER_KEY.rsplit("-", 1)[1], AZURE_KEY):
        assert secret not in text, text


def test_gunicorns_access_log_cannot_be_forged(gunicorn_logs):
    logger, _, access_log = gunicorn_logs
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/x", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "PATH_INFO": '/x" 200 0 0ms requestId=req_0\nFORGED key=key_admin'}
    response = SimpleNamespace(status="404 NOT FOUND", headers=[("X-Request-Id", "req_1")], sent=10)
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    [line] = access_log.read_text().splitlines()
    assert line.startswith('127.0.0.1 "GET /x\\x22 200 0 0ms requestId=req_0\\x0aFORGED key=key_admin HTTP/1.1" 404 ')
    assert line.endswith(" requestId=req_1")


# Key shapes no configured secret covers: only the pattern can redact them.
GATEWAY_KEY = "ziri-carol-4f3e2d1c0b0a99884f3e2d1c0b0a9988"
ENCODED_GATEWAY_KEY = GATEWAY_KEY.replace("-", "%2D")
UNCONFIGURED_SK_KEY = "sk-proj-Unconfigured0123456789"
UNCONFIGURED_XAI_KEY = "xai-Unconfigured0123456789abcdef"


# (what a client puts in the URL's path, the secrets that must not be logged): a key right after a
# character the logs escape, or a letter, digit, percent-escape..., wherever it starts.
KEY_AFTER_ANY_CHARACTER = [
    pytest.param("/x%22" + GATEWAY_KEY, id="quote"),
    pytest.param("/x%27" + GATEWAY_KEY, id="apostrophe-encoded"),
    pytest.param("/x'" + GATEWAY_KEY, id="apostrophe"),
    pytest.param("/x%09" + GATEWAY_KEY, id="tab"),
    pytest.param("/x%5C" + GATEWAY_KEY, id="backslash"),
    pytest.param("/x%0a" + GATEWAY_KEY, id="newline"),
    pytest.param("/x%20" + GATEWAY_KEY, id="space"),
    pytest.param("/x%7f" + GATEWAY_KEY, id="del"),
    pytest.param("/x%C2%85" + GATEWAY_KEY, id="c1-control"),
    pytest.param("/x%E2%80%A8" + GATEWAY_KEY, id="line-separator"),
    pytest.param("/x%2522" + GATEWAY_KEY, id="double-encoded-quote"),
    pytest.param("/x%22" + ENCODED_GATEWAY_KEY.replace("%", "%25"), id="quote-then-percent-encoded-key"),
    pytest.param("/x%5C" + GATEWAY_KEY.replace("a", "%2561"), id="backslash-then-percent-encoded-letters"),
    pytest.param("/desk" + GATEWAY_KEY, id="letter"),
    pytest.param("/x9" + GATEWAY_KEY, id="digit"),
    pytest.param("/x_" + GATEWAY_KEY, id="underscore"),
    pytest.param("/x%22" + UNCONFIGURED_SK_KEY, id="quote-then-sk-key"),
    pytest.param("/x%5C" + UNCONFIGURED_XAI_KEY, id="backslash-then-xai-key"),
    pytest.param("/task" + UNCONFIGURED_SK_KEY.removeprefix("sk-").join(["sk-", ""]), id="letters-then-sk-key"),
]
SECRETS = (GATEWAY_KEY, GATEWAY_KEY.rsplit("-", 1)[1], UNCONFIGURED_SK_KEY, UNCONFIGURED_XAI_KEY)


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text, text
    assert "[redacted]" in text, text


@pytest.mark.parametrize("path", KEY_AFTER_ANY_CHARACTER)
def test_a_key_is_redacted_from_the_request_line_wherever_it_starts(make_app, caplog, path):
    client = make_app().test_client()
    with caplog.at_level(logging.INFO, logger="ziri_images"):
        client.get(path + "?q=%22" + GATEWAY_KEY)
    [line] = request_lines(caplog)
    assert_no_secret(line)


@pytest.mark.parametrize("path", KEY_AFTER_ANY_CHARACTER)
def test_a_key_is_redacted_from_gunicorns_logs_wherever_it_starts(gunicorn_logs, path):
    logger, error_log, access_log = gunicorn_logs
    # gunicorn hands the access log the path percent-decoded, as the app sees it.
    decoded = unquote(path)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
               "PATH_INFO": decoded, "QUERY_STRING": "q=%22" + GATEWAY_KEY}
    response = SimpleNamespace(status="404 NOT FOUND", headers=[("X-Request-Id", "req_1")], sent=10)
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    # A refused request line, as the worker logs it: quoted and escaped (workers.JsonErrors).
    logger.warning('invalid request requestId=req_2 status=400 code=INVALID_REQUEST_LINE client=127.0.0.1 '
                   'error="%s"', escape_quoted(f"InvalidRequestLine: Invalid HTTP request line: 'GET {decoded}?q=\""
                                               f"{GATEWAY_KEY}\\x7f HTTP/1.1'"))
    assert_no_secret(access_log.read_text())
    assert_no_secret(error_log.read_text())


@pytest.mark.parametrize("value", [
    pytest.param('"' + GATEWAY_KEY, id="quote"),
    pytest.param("\t" + UNCONFIGURED_SK_KEY, id="tab"),
    pytest.param("\\" + UNCONFIGURED_XAI_KEY, id="backslash"),
    pytest.param("'" + GATEWAY_KEY, id="apostrophe"),
    pytest.param('"' + ENCODED_GATEWAY_KEY, id="quote-then-percent-encoded"),
])
def test_a_value_is_redacted_before_it_is_escaped(value):
    for escaped in (escape(value), escape_quoted(value)):
        assert "[redacted]" in escaped
        for secret in SECRETS:
            assert secret not in escaped


@pytest.mark.parametrize("module, allowed", [
    pytest.param("ziri_images.server.logs", ["ziri_images.redaction", "ziri_images.server"], id="logging"),
    pytest.param("ziri_images.redaction", [], id="redaction"),
])
def test_logging_redacts_without_loading_the_providers(module, allowed):
    assert package_modules_loaded_by(module) == sorted({"ziri_images", "ziri_images._version", module, *allowed})
