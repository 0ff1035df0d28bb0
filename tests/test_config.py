"""Start-up: settings from the environment, and broken files stop the app with one clear line."""

import os
import subprocess
import sys

import pytest
from conftest import PROJECT_DIR

from ziri_images.config import Config
from ziri_images.errors import ConfigError
from ziri_images.server.send_deadline import send_grace_seconds


def load_settings(environ):
    """Return the settings ``environ`` sets (providers.json left unread)."""
    return Config.from_environ(environ, read_providers=False)


def test_defaults_run_from_a_checkout():
    settings = load_settings({})

    assert settings["KEYS_FILE"] == "keys.json"
    assert settings["PRICING_FILE"] == "pricing.json"
    assert settings["LEDGER_PATH"] == "var/ledger.jsonl"
    assert settings["LEDGER_DURABLE"] is True and settings["LEDGER_STDOUT"] is False
    assert (settings["UPSTREAM_CONNECT_TIMEOUT"], settings["UPSTREAM_READ_TIMEOUT"]) == (5.0, 180.0)
    assert settings["ALLOW_DEMO_KEYS_UPSTREAM"] is False
    assert settings["MAX_CONTENT_LENGTH"] == 256 * 1024
    assert settings["LOG_LEVEL"] == "INFO"


@pytest.mark.parametrize(
    ("env_name", "raw", "name", "value"),
    [
        pytest.param("ZIRI_ALLOW_DEMO_KEYS_UPSTREAM", " TRUE ", "ALLOW_DEMO_KEYS_UPSTREAM", True, id="bool-true"),
        pytest.param("ZIRI_LEDGER_DURABLE", "off", "LEDGER_DURABLE", False, id="bool-off"),
        pytest.param("ZIRI_LEDGER_STDOUT", "1", "LEDGER_STDOUT", True, id="bool-one"),
        pytest.param("ZIRI_UPSTREAM_READ_TIMEOUT", "25.5", "UPSTREAM_READ_TIMEOUT", 25.5, id="float"),
        pytest.param("ZIRI_MAX_BODY_BYTES", "1024", "MAX_CONTENT_LENGTH", 1024, id="int"),
        pytest.param("ZIRI_LOG_LEVEL", "debug", "LOG_LEVEL", "DEBUG", id="log-level-lower-case"),
        pytest.param("ZIRI_SPOOL_DIR", "/var/spool/ziri", "SPOOL_DIR", "/var/spool/ziri", id="string"),
        pytest.param("ZIRI_BODY_TIMEOUT_SECONDS", "2.5", "BODY_TIMEOUT_SECONDS", 2.5, id="seconds"),
        pytest.param("ZIRI_KEYS_REFRESH_SECONDS", "0", "KEYS_REFRESH_SECONDS", 0.0, id="interval-zero"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", " 100, 50,80,50 ", "ALERT_THRESHOLDS", (50, 80, 100), id="thresholds"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", "", "ALERT_THRESHOLDS", (), id="thresholds-none"),
        pytest.param("ZIRI_ALERT_RETRY_SECONDS", "90", "ALERT_RETRY_SECONDS", 90.0, id="alert-retry"),
    ],
)
def test_environment_values_are_parsed(env_name, raw, name, value):
    assert load_settings({env_name: raw})[name] == value


@pytest.mark.parametrize(
    ("env_name", "raw", "problem"),
    [
        pytest.param("ZIRI_ALLOW_DEMO_KEYS_UPSTREAM", "maybe", "expected true/false", id="bool-word"),
        pytest.param("ZIRI_LEDGER_DURABLE", "2", "expected true/false", id="bool-number"),
        pytest.param("ZIRI_UPSTREAM_READ_TIMEOUT", "soon", "expected float", id="float-word"),
        pytest.param("ZIRI_UPSTREAM_READ_TIMEOUT", "0", "must be positive", id="float-zero"),
        pytest.param("ZIRI_UPSTREAM_CONNECT_TIMEOUT", "-1", "must be positive", id="float-negative"),
        pytest.param("ZIRI_UPSTREAM_READ_TIMEOUT", "nan", "must be positive", id="float-nan"),
        pytest.param("ZIRI_UPSTREAM_READ_TIMEOUT", "inf", "must be positive", id="float-inf"),
        pytest.param("ZIRI_RESERVATION_GRACE_SECONDS", "", "expected float", id="float-empty"),
        pytest.param("ZIRI_MAX_BODY_BYTES", "1.5", "expected int", id="int-fraction"),
        pytest.param("ZIRI_MAX_BODY_BYTES", "256KB", "expected int", id="int-with-unit"),
        pytest.param("ZIRI_MAX_BODY_BYTES", "0", "must be positive", id="int-zero"),
        pytest.param("ZIRI_LOG_LEVEL", "LOUD", "expected DEBUG, INFO", id="log-level-unknown"),
        pytest.param("ZIRI_KEYS_REFRESH_SECONDS", "-1", "expected seconds from 0 to 3600", id="interval-negative"),
        pytest.param("ZIRI_KEYS_REFRESH_SECONDS", "nan", "expected seconds from 0 to 3600", id="interval-nan"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", "50,eighty", "expected whole percents from 1", id="threshold-word"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", "0,50", "expected whole percents from 1 to 1000", id="threshold-zero"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", "1001", "expected whole percents from 1 to 1000", id="threshold-large"),
        pytest.param("ZIRI_ALERT_THRESHOLDS", "50.5", "expected whole percents from 1 to 1000", id="threshold-frac"),
    ],
)
def test_bad_environment_values_name_the_variable(env_name, raw, problem):
    with pytest.raises(ConfigError) as raised:
        load_settings({env_name: raw})

    message = str(raised.value)
    assert message.startswith(f"environment variable {env_name}: ")
    assert problem in message and repr(raw) in message


@pytest.mark.parametrize("url", ["hooks.example.com/ziri", "ftp://hooks.example.com/x", "https:///no-host"])
def test_an_alert_webhook_that_is_no_http_url_is_refused_without_echoing_it(url):
    with pytest.raises(ConfigError) as raised:
        load_settings({"ZIRI_ALERT_WEBHOOK_URL": url, "ZIRI_ALERT_WEBHOOK_SECRET": "s"})

    assert str(raised.value) == ("environment variable ZIRI_ALERT_WEBHOOK_URL: expected an http:// or https:// URL "
                                 "with a host")


def test_an_alert_webhook_needs_its_secret():
    with pytest.raises(ConfigError, match="^environment variable ZIRI_ALERT_WEBHOOK_SECRET: must be set with"):
        load_settings({"ZIRI_ALERT_WEBHOOK_URL": "https://hooks.example.com/ziri"})
    assert load_settings({"ZIRI_ALERT_WEBHOOK_URL": "https://hooks.example.com/ziri",
                          "ZIRI_ALERT_WEBHOOK_SECRET": "s"})["ALERT_WEBHOOK_URL"] == "https://hooks.example.com/ziri"


def test_create_app_refuses_a_bad_environment_value(make_app, monkeypatch):
    monkeypatch.setenv("ZIRI_UPSTREAM_READ_TIMEOUT", "soon")

    with pytest.raises(ConfigError, match="ZIRI_UPSTREAM_READ_TIMEOUT"):
        make_app()


def test_environment_configures_the_app_unless_test_config_overrides(make_app, monkeypatch):
    monkeypatch.setenv("ZIRI_UPSTREAM_READ_TIMEOUT", "90")
    monkeypatch.setenv("ZIRI_ALLOW_DEMO_KEYS_UPSTREAM", "true")
    monkeypatch.setenv("ZIRI_MAX_BODY_BYTES", "2048")

    app = make_app()

    gateway = app.extensions["ziri_images"]
    assert gateway.allow_demo_keys_upstream is True
    assert app.config["MAX_CONTENT_LENGTH"] == 2048
    assert gateway.providers["openai"].timeout == (2.0, 30.0)  # the fixture's test_config sets these


@pytest.mark.parametrize(
    ("file_setting", "content", "problem"),
    [
        pytest.param("KEYS_FILE", '{"keys": [', "key file", id="keys-bad-json"),
        pytest.param("KEYS_FILE", '{"keys": [{"id": "k", "user": "u"}]}', "'hash' is required", id="keys-no-hash"),
        pytest.param("PRICING_FILE", "[]", "pricing file", id="pricing-not-an-object"),
        pytest.param("PRICING_FILE", '{"providers": {"openai": {"models": {"x": {"kind": "image"}}}}}',
                     "providers.openai.models.x: missing or invalid", id="pricing-incomplete-model"),
    ],
)
def test_create_app_names_the_broken_file(tmp_path, make_app, file_setting, content, problem):
    broken = tmp_path / "broken.json"
    broken.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        make_app(**{file_setting: str(broken)})

    assert str(broken) in str(raised.value)
    assert problem in str(raised.value)


def test_create_app_names_a_missing_file(tmp_path, make_app):
    missing = tmp_path / "nowhere" / "keys.json"

    with pytest.raises(ConfigError, match="not found") as raised:
        make_app(KEYS_FILE=str(missing))

    assert str(missing) in str(raised.value)


def test_create_app_names_an_unwritable_ledger(tmp_path, make_app):
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(ConfigError) as raised:
        make_app(LEDGER_PATH=str(blocker / "ledger.jsonl"))

    assert str(blocker / "ledger.jsonl") in str(raised.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"ZIRI_KEYS_FILE": "{broken}"}, "{broken}", id="broken-keys-file"),
        pytest.param({"ZIRI_PRICING_FILE": "{broken}"}, "{broken}", id="broken-pricing-file"),
        pytest.param({"ZIRI_UPSTREAM_READ_TIMEOUT": "soon"}, "ZIRI_UPSTREAM_READ_TIMEOUT", id="bad-setting"),
        pytest.param({"ZIRI_LOG_LEVEL": "LOUD"}, "ZIRI_LOG_LEVEL", id="bad-log-level"),
    ],
)
def test_wsgi_import_exits_with_one_line(tmp_path, env, named):
    broken = tmp_path / "broken.json"
    broken.write_text('{"keys": [', encoding="utf-8")
    env = {name: value.format(broken=broken) for name, value in env.items()}

    result = import_app(tmp_path, env)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ziri-images: configuration error: ")
    assert named.format(broken=broken) in result.stderr


def test_wsgi_import_succeeds_with_the_shipped_files(tmp_path):
    result = import_app(tmp_path, {})

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ledger.jsonl").exists()


def import_app(tmp_path, env):
    """Run ``python -c "import app"`` from the project directory, as gunicorn would import it."""
    environ = {**os.environ, "ZIRI_LEDGER_PATH": str(tmp_path / "ledger.jsonl"), **env}
    return subprocess.run([sys.executable, "-c", "import app"], cwd=PROJECT_DIR, env=environ, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize(("env", "grace"), [
    pytest.param({}, 30.0, id="default-half-the-reservation-grace"),
    pytest.param({"ZIRI_RESERVATION_GRACE_SECONDS": "10"}, 5.0, id="half-a-shorter-reservation-grace"),
    pytest.param({"ZIRI_SEND_GRACE_SECONDS": "45"}, 45.0, id="set"),
])
def test_a_clients_time_to_take_a_response_is_shorter_than_a_reservations_grace(env, grace):
    settings = load_settings(env)

    assert send_grace_seconds(settings) == grace < settings["RESERVATION_GRACE_SECONDS"]


@pytest.mark.parametrize("send_grace", ["60", "90"])
def test_a_send_grace_a_reservation_would_not_outlive_stops_start_up(make_app, monkeypatch, send_grace):
    monkeypatch.setenv("ZIRI_SEND_GRACE_SECONDS", send_grace)

    with pytest.raises(ConfigError, match="ZIRI_SEND_GRACE_SECONDS: must be below ZIRI_RESERVATION_GRACE_SECONDS"):
        make_app()


def test_the_environment_is_read_by_config_alone():
    """Everything else is handed parsed values; the launcher only hands the environment on to its child."""
    package = PROJECT_DIR / "ziri_images"
    readers = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                     if "os.environ" in path.read_text() or "getenv" in path.read_text())

    assert readers == ["cli/dev.py", "config.py"]


def test_providers_json_is_read_once_when_the_app_starts(make_app, providers_path, monkeypatch):
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if str(file) == str(providers_path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    make_app()

    assert len(opened) == 1


def test_providers_get_their_credentials_endpoints_and_ca_bundle_from_the_environment_read_once(make_app, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/company-ca.pem")
    monkeypatch.setenv("XAI_BASE_URL", "http://127.0.0.1:9/v1/")
    app = make_app(XAI_BASE_URL=None, XAI_API_KEY=None)
    monkeypatch.setenv("XAI_API_KEY", "xai-set-after-start")  # read once: a later change is not seen

    xai = app.extensions["ziri_images"].providers["xai"]
    assert (xai.base_url, xai.api_key, xai.transport.verify) == ("http://127.0.0.1:9/v1", "", "/etc/ssl/company-ca.pem")


def test_the_shipped_providers_reach_their_published_apis_unless_the_environment_says_otherwise():
    shipped = {"ZIRI_PROVIDERS_FILE": str(PROJECT_DIR / "providers.json")}
    published = {entry.name: entry for entry in Config.from_environ(shipped).providers}
    config = Config.from_environ({**shipped, "OPENAI_BASE_URL": "http://127.0.0.1:3199/v1", "OPENAI_API_KEY": " sk-x "})
    local = {entry.name: entry for entry in config.providers}

    assert (published["openai"].base_url, published["openai"].api_key) == ("https://api.openai.com/v1", "")
    assert (local["openai"].base_url, local["openai"].api_key) == ("http://127.0.0.1:3199/v1", "sk-x")
    assert local["openai"].published_url == "https://api.openai.com/v1"
    assert config.provider_secrets == ("sk-x",)


def test_a_config_is_frozen_and_reads_as_the_apps_settings(make_app):
    config = Config.from_environ({"ZIRI_TRUSTED_PROXIES": "2"}, read_providers=False)

    with pytest.raises(AttributeError):
        config.trusted_proxies = 0  # type: ignore[misc]
    assert config["TRUSTED_PROXIES"] == config.trusted_proxies == 2
    assert set(config) <= set(make_app().config)
