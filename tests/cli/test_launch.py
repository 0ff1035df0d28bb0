"""``ziri-images dev``: an explicit ``--port`` wins over ``$PORT``, which honcho and `heroku local` always set; each
provider without a key of its own goes to the stub."""

import json

import pytest

from ziri_images.cli import dev
from ziri_images.cli import entry as cli
from ziri_images.dev.stub_credentials import STUB_API_KEY


class FinishedProcess:
    def wait(self, timeout=None):
        return 0

    def poll(self):
        return 0


@pytest.fixture
def started(monkeypatch):
    """Run ``dev`` without starting anything: return the environments it would start gunicorn with."""
    environments = []

    def popen(command, env=None):
        environments.append(env)
        return FinishedProcess()

    monkeypatch.setattr(dev.subprocess, "Popen", popen)
    monkeypatch.setattr(dev.signal, "signal", lambda *args: None)
    # Every provider has a key of its own: no stub, only gunicorn starts.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-provider-key-000000")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-real-gemini-key-000000")
    monkeypatch.setenv("VERTEX_CREDENTIALS_JSON", "{}")
    monkeypatch.setenv("STABILITY_API_KEY", "sk-real-provider-key-000000")
    monkeypatch.setenv("RECRAFT_API_KEY", "sk-real-provider-key-000000")
    monkeypatch.setenv("BFL_API_KEY", "bfl-real-provider-key-000000")
    return environments


@pytest.mark.parametrize(("environment_port", "argv", "port"), [
    pytest.param("5000", ["--port", "4000"], "4000", id="flag-wins-over-PORT"),
    pytest.param("5000", [], "5000", id="PORT-without-flag"),
    pytest.param(None, ["--port", "4000"], "4000", id="flag-alone"),
    pytest.param(None, [], "3100", id="default"),
])
def test_dev_port(started, monkeypatch, capsys, environment_port, argv, port):
    if environment_port is None:
        monkeypatch.delenv("PORT", raising=False)
    else:
        monkeypatch.setenv("PORT", environment_port)

    assert cli.main(["dev", *argv]) == 0

    (env,) = started
    assert env["PORT"] == port


@pytest.mark.parametrize(("tokens", "lines"), [
    pytest.param({}, ["/admin/ (the spend dashboard) is off (404): set ZIRI_ADMIN_TOKEN to serve it",
                      "/metrics is off (404): set ZIRI_METRICS_TOKEN to serve it"], id="off"),
    pytest.param({"ZIRI_ADMIN_TOKEN": "a" * 24, "ZIRI_METRICS_TOKEN": "m" * 24},
                 ["/admin/ (the spend dashboard) is on at http://localhost:3100/admin/ (ZIRI_ADMIN_TOKEN)",
                  "/metrics is on at http://localhost:3100/metrics (ZIRI_METRICS_TOKEN)"], id="on"),
])
def test_dev_says_which_setting_serves_the_dashboard_and_metrics(started, monkeypatch, capsys, tokens, lines):
    monkeypatch.delenv("PORT", raising=False)
    for name in ("ZIRI_ADMIN_TOKEN", "ZIRI_METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in tokens.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["dev"]) == 0

    out = capsys.readouterr().out
    for line in lines:
        assert f"ziri-images dev: {line}" in out
    assert all(value not in out for value in tokens.values())


@pytest.mark.parametrize(("unset", "stubbed"), [
    pytest.param(("GEMINI_API_KEY", "VERTEX_CREDENTIALS_JSON"), {"google", "vertex"}, id="google-and-vertex"),
    pytest.param(("OPENAI_API_KEY",), {"openai"}, id="openai-alone"),
])
def test_dev_sends_each_provider_without_a_key_to_the_stub(started, monkeypatch, capsys, unset, stubbed):
    for name in (*unset, "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "OPENAI_BASE_URL", "GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dev, "_wait_until_up", lambda url, process: None)

    assert cli.main(["dev", "--stub-port", "3999"]) == 0

    stub, env = started  # the stub's environment is the caller's, gunicorn's the one that matters
    out = capsys.readouterr().out
    assert {"openai", "google", "vertex"} - stubbed == {
        provider for provider in ("openai", "google", "vertex") if f"provider '{provider}' goes to the real API" in out}
    assert ("OPENAI_BASE_URL" in env) == ("openai" in stubbed)
    if "google" in stubbed:
        assert (env["GEMINI_BASE_URL"], env["VERTEX_BASE_URL"]) == ("http://127.0.0.1:3999/v1beta",
                                                                    "http://127.0.0.1:3999/v1")
        account = json.loads(env["VERTEX_CREDENTIALS_JSON"])
        assert (account["type"], account["token_uri"]) == ("service_account", "http://127.0.0.1:3999/token")
        assert account["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert env["GEMINI_API_KEY"] and env["VERTEX_PROJECT"]
        assert "provider 'vertex' uses the LOCAL STUB at http://127.0.0.1:3999" in out
    else:
        assert env["GEMINI_API_KEY"] == "AIza-real-gemini-key-000000" and "GEMINI_BASE_URL" not in env


def test_dev_points_stability_without_a_key_at_the_stub(started, monkeypatch, capsys):
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("STABILITY_API_KEY")
    monkeypatch.setattr(dev, "_wait_until_up", lambda *args: None)

    assert cli.main(["dev", "--stub-port", "3999"]) == 0

    _stub, gateway = started
    assert (gateway["STABILITY_BASE_URL"], gateway["STABILITY_API_KEY"]) == ("http://127.0.0.1:3999", STUB_API_KEY)
    assert gateway["OPENAI_API_KEY"] == gateway["RECRAFT_API_KEY"] == "sk-real-provider-key-000000"
    assert "provider 'stability' uses the LOCAL STUB at http://127.0.0.1:3999" in capsys.readouterr().out


def test_dev_points_black_forest_labs_at_the_stub_without_a_bfl_key(started, monkeypatch, capsys):
    monkeypatch.delenv("BFL_API_KEY")
    monkeypatch.delenv("BFL_BASE_URL", raising=False)
    monkeypatch.setattr(dev, "_wait_until_up", lambda url, process: None)

    assert cli.main(["dev", "--stub-port", "3299"]) == 0

    stub_env, gateway_env = started  # the stub starts first, then gunicorn
    assert gateway_env["BFL_BASE_URL"] == "http://127.0.0.1:3299/bfl/v1" and gateway_env["BFL_API_KEY"]
    assert gateway_env["OPENAI_API_KEY"] == "sk-real-provider-key-000000"  # set: the real provider, not the stub
    assert "OPENAI_BASE_URL" not in gateway_env or "3299" not in gateway_env["OPENAI_BASE_URL"]
    assert "provider 'bfl' uses the LOCAL STUB at http://127.0.0.1:3299" in capsys.readouterr().out
