"""ZIRI_LOG_FORMAT=json: each log line one JSON object, redacted and escaped as text lines are."""

import json
import logging

import pytest

from ziri_images.config import Config
from ziri_images.errors import ConfigError
from ziri_images.server.logs import JsonFormatter
from ziri_images.server.logs import RedactingFilter
from ziri_images.server.logs import log_formatter

SECRET = "sk-live-provider-secret-1234567890"
CLIENT_KEY = "ziri-alice-0123456789abcdef0123456789abcdef"


def formatted(message, *args, exc_info=None):
    record = logging.LogRecord("ziri_images", logging.ERROR, __file__, 1, message, args, exc_info)
    RedactingFilter([SECRET]).filter(record)
    return JsonFormatter().format(record)


def test_a_line_is_one_json_object_without_secrets():
    line = formatted("request path=%s key=%s provider=%s", "/x\n{\"forged\": true}", CLIENT_KEY, SECRET)
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "pid", "message"}
    assert entry["level"] == "ERROR" and entry["time"].endswith("Z")
    assert CLIENT_KEY not in line and SECRET not in line and "[redacted]" in entry["message"]
    assert "\\x0a" in entry["message"]  # the client's newline stays escaped inside the message


def test_a_traceback_stays_inside_its_line():
    try:
        raise ValueError(f"bad {SECRET}\nsecond line")
    except ValueError as error:
        line = formatted("failed", exc_info=(type(error), error, error.__traceback__))
    assert "\n" not in line and SECRET not in line
    assert "ValueError" in json.loads(line)["exception"]


@pytest.mark.parametrize("environ, kind", [
    pytest.param({}, logging.Formatter, id="text-by-default"),
    pytest.param({"ZIRI_LOG_FORMAT": "json"}, JsonFormatter, id="json"),
])
def test_the_one_formatter_slot_follows_the_setting(environ, kind):
    line_format = Config.from_environ(environ, read_providers=False).log_format
    assert type(log_formatter("%(message)s", line_format=line_format)) is kind


def test_an_unknown_format_stops_start_up():
    with pytest.raises(ConfigError, match="ZIRI_LOG_FORMAT"):
        Config.from_environ({"ZIRI_LOG_FORMAT": "xml"}, read_providers=False)
