"""``ziri-images dev``: an explicit ``--port`` wins over ``$PORT``, which honcho and `heroku local` always set."""

import pytest

from ziri_images.cli import dev
from ziri_images.cli import entry as cli


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
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-provider-key-000000")  # no stub: only gunicorn starts
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
