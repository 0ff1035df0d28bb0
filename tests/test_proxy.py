"""Behind a reverse proxy: X-Forwarded-* is trusted only through ZIRI_TRUSTED_PROXIES hops."""

import logging
import re
from pathlib import Path

import pytest
from flask import request

from ziri_images.config import Config
from ziri_images.errors import ConfigError

NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
PEER = "10.0.0.2"


@pytest.mark.parametrize("raw, expected", [
    pytest.param(None, 0, id="default-trusts-none"),
    pytest.param("0", 0, id="zero"),
    pytest.param("1", 1, id="one"),
    pytest.param(" 2 ", 2, id="spaces"),
])
def test_trusted_proxies_setting(raw, expected):
    environ = {} if raw is None else {"ZIRI_TRUSTED_PROXIES": raw}
    assert Config.from_environ(environ, read_providers=False)["TRUSTED_PROXIES"] == expected


@pytest.mark.parametrize("raw", [
    pytest.param("-1", id="negative"),
    pytest.param("1.5", id="fraction"),
    pytest.param("yes", id="word"),
    pytest.param("", id="empty"),
])
def test_trusted_proxies_setting_refuses_non_counts(raw):
    with pytest.raises(ConfigError, match="ZIRI_TRUSTED_PROXIES: expected a whole number >= 0"):
        Config.from_environ({"ZIRI_TRUSTED_PROXIES": raw}, read_providers=False)


@pytest.mark.parametrize("hops, headers, address, scheme, host", [
    pytest.param(0, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                     "X-Forwarded-Host": "evil.example"}, PEER, "http", "localhost", id="untrusted-ignored"),
    pytest.param(1, {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
                     "X-Forwarded-Host": "images.example.com"}, "203.0.113.7", "https", "images.example.com",
                 id="one-proxy-honoured"),
    pytest.param(1, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}, "203.0.113.7", "http", "localhost",
                 id="forged-entry-before-the-proxys-ignored"),
    pytest.param(2, {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}, "198.51.100.9", "http", "localhost",
                 id="two-proxies"),
    pytest.param(1, {}, PEER, "http", "localhost", id="no-header"),
])
def test_forwarded_headers(make_app, hops, headers, address, scheme, host):
    app = make_app(TRUSTED_PROXIES=hops)
    app.add_url_rule("/test/whoami", "whoami",
                     lambda: {"address": request.remote_addr, "scheme": request.scheme, "host": request.host})

    response = app.test_client().get("/test/whoami", headers=headers, environ_base={"REMOTE_ADDR": PEER})

    assert response.get_json() == {"address": address, "scheme": scheme, "host": host}


@pytest.mark.parametrize("hops, client", [
    pytest.param(0, PEER, id="untrusted"),
    pytest.param(1, "203.0.113.7", id="trusted"),
])
def test_the_request_log_line_names_the_client(make_app, caplog, hops, client):
    app = make_app(TRUSTED_PROXIES=hops)
    with caplog.at_level(logging.INFO, logger="ziri_images"):
        app.test_client().get("/health", headers={"X-Forwarded-For": "203.0.113.7"},
                              environ_base={"REMOTE_ADDR": PEER})

    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("request ")]
    assert len(lines) == 1
    assert f" client={client} " in lines[0]


def nginx_directive(name, text=None):
    values = re.findall(rf"^\s*{name}\s+([^;]+);", NGINX_CONF.read_text() if text is None else text, re.MULTILINE)
    assert len(values) == 1, f"{name} appears {len(values)} times"
    return values[0]


def nginx_bytes(size):
    return int(size[:-1]) * {"k": 1024, "m": 1024 * 1024}[size[-1]]


def test_the_nginx_sample_matches_the_gateways_settings():
    settings = Config.from_environ({}, read_providers=False)
    text = NGINX_CONF.read_text()
    edits_start = text.index("location ~ ^/(api|v1)/images/edits$ {")
    edits = text[edits_start:text.index("}", edits_start)]
    elsewhere = text[:edits_start] + text[edits_start + len(edits):]
    assert nginx_bytes(nginx_directive("client_max_body_size", elsewhere)) == settings["MAX_CONTENT_LENGTH"]
    # Edits: every upload the gateway accepts, plus room for the form's text fields.
    edit_limit = nginx_bytes(nginx_directive("client_max_body_size", edits))
    assert settings["EDIT_MAX_TOTAL_BYTES"] < edit_limit <= settings["EDIT_MAX_TOTAL_BYTES"] + 2 * 1024 * 1024
    assert nginx_bytes(nginx_directive("client_body_buffer_size", edits)) == edit_limit  # in memory, never a file
    read_timeout = int(nginx_directive("proxy_read_timeout").rstrip("s"))
    assert read_timeout > settings["UPSTREAM_CONNECT_TIMEOUT"] + settings["UPSTREAM_READ_TIMEOUT"]
    assert nginx_directive("proxy_set_header X-Forwarded-For") == "$proxy_add_x_forwarded_for"
    assert nginx_directive("proxy_set_header X-Forwarded-Proto") == "$scheme"
    assert nginx_directive("add_header x-should-retry") == "$ziri_should_retry always"
