"""Budget alerts through the API on every store: recorded once per threshold by the charges, posted signed, retried.

The provider answers from the stub (test_limits.py's ``provider``); the webhook is a ``responses``
mock, and each test runs the sender's pass itself (``AlertSender.run_once``), as a worker's
background thread does. Every request costs $0.04 (dall-e-3, standard, 1024x1024).
"""

import json
import time

import pytest
import requests
import responses
from test_limits import gate  # noqa: F401  (a fixture the provider uses)
from test_limits import generate
from test_limits import provider  # noqa: F401  (a fixture, used by name)
from test_limits import utc
from test_team_limits import write_team_keys

from alerts.conftest import WEBHOOK
from alerts.conftest import events
from ziri_images.cli import entry as cli

pytestmark = [pytest.mark.stores(), pytest.mark.usefixtures("provider")]


class Alerting:
    """An alerting app: its test client, its sender (``alerts``), its store's outbox and its metrics."""

    def __init__(self, app):
        gateway = app.extensions["ziri_images"]
        self.client, self.alerts, self.outbox = app.test_client(), gateway.alerts, gateway.store.alert_outbox()
        self.metrics = app.extensions["ziri_images_metrics"]

    def spend(self, *names):
        return [generate(self.client, name).status_code for name in names]


@pytest.fixture
def gateway_with(alerting_app, keys_path, clock):
    """Return ``make(teams, keys, **overrides)``: an ``Alerting`` app on those keys, at 2026-11-26 12:00 UTC."""
    clock.now = utc(2026, 11, 26, 12, 0, 0)

    def make(teams, keys, **overrides):
        write_team_keys(keys_path, teams, keys)
        return Alerting(alerting_app(**overrides))

    return make


def test_each_threshold_reached_is_posted_once_signed(gateway_with, responses_mock):
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.12}}})
    assert gateway.spend("alice", "alice", "alice", "alice") == [200, 200, 200, 402]
    responses_mock.add(responses.POST, WEBHOOK, status=200)

    assert gateway.alerts.run_once() == 3
    assert gateway.alerts.run_once() == 0  # delivered: never posted again

    posted = events(responses_mock.calls)
    assert [(event["threshold"], event["spent"]) for event in posted] == [(50, 0.08), (80, 0.12), (100, 0.12)]
    assert posted[0] == {"type": "budget.threshold", "scope": "key", "id": "key_alice", "user": "alice",
                         "period": "daily", "threshold": 50, "spent": 0.08, "limit": 0.12,
                         "periodStart": "2026-11-26T00:00:00.000000Z", "at": posted[0]["at"],
                         "limitName": "daily_spend_limit"}
    ids = [call.request.headers["X-Ziri-Event-Id"] for call in responses_mock.calls if call.request.url == WEBHOOK]
    assert len(set(ids)) == 3
    assert [(a.threshold, a.status, a.attempts) for a in gateway.outbox.alerts()] == [
        (100, "delivered", 1), (80, "delivered", 1), (50, "delivered", 1)]


def test_two_keys_of_a_team_set_off_the_teams_alert_once(gateway_with, responses_mock):
    teams = {"design": {"name": "Design", "limits": {"daily_spend_limit": 1.0, "monthly_spend_limit": 0.16}}}
    gateway = gateway_with(teams, {"alice": {"team": "design"}, "bob": {"team": "design"}})
    assert gateway.spend("alice", "bob", "alice", "bob") == [200] * 4
    responses_mock.add(responses.POST, WEBHOOK, status=204)

    gateway.alerts.run_once()

    posted = events(responses_mock.calls)
    assert [(e["scope"], e["id"], e["period"], e["threshold"], e["spent"]) for e in posted] == [
        ("team", "design", "monthly", 50, 0.08), ("team", "design", "monthly", 80, 0.16),
        ("team", "design", "monthly", 100, 0.16)]
    assert all("user" not in event for event in posted)
    assert posted[0]["periodStart"] == "2026-11-01T00:00:00.000000Z"


def test_a_soft_limit_alerts_and_never_refuses(gateway_with, responses_mock):
    gateway = gateway_with({}, {"alice": {"limits": {"soft_daily_spend_limit": 0.04}}}, ALERT_THRESHOLDS=(100, 200))
    assert gateway.spend("alice", "alice", "alice") == [200, 200, 200]
    responses_mock.add(responses.POST, WEBHOOK, status=200)

    gateway.alerts.run_once()

    assert [(e["limitName"], e["threshold"], e["spent"], e["limit"]) for e in events(responses_mock.calls)] == [
        ("soft_daily_spend_limit", 100, 0.04, 0.04), ("soft_daily_spend_limit", 200, 0.08, 0.04)]


def test_a_failing_webhook_is_retried_with_backoff_then_given_up(gateway_with, responses_mock):
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.08}}}, ALERT_THRESHOLDS=(50,),
                           ALERT_RETRY_SECONDS=1.5)
    assert gateway.spend("alice") == [200]
    responses_mock.add(responses.POST, WEBHOOK, status=503)
    outbox = gateway.outbox

    assert gateway.alerts.run_once() == 0
    [alert] = outbox.alerts()
    assert (alert.status, alert.attempts, alert.last_error) == ("pending", 1, "HTTP 503")
    assert gateway.alerts.run_once() == 0 and len(responses_mock.calls) == 2  # not due again for a second
    time.sleep(1.05)
    gateway.alerts.run_once()  # the second attempt: a third would come 3 s after the first, past 1.5 s

    [alert] = outbox.alerts(status="failed")
    assert (alert.attempts, alert.last_error, alert.finished_at is not None) == (2, "HTTP 503", True)
    assert len(events(responses_mock.calls)) == 2


@pytest.mark.parametrize(("failure", "error"), [
    pytest.param(requests.ReadTimeout(), "timeout", id="timeout"),
    pytest.param(requests.ConnectionError(f"cannot reach {WEBHOOK}"), "ConnectionError", id="unreachable"),
])
def test_a_webhook_that_cannot_be_reached_is_retried_and_its_url_never_recorded(
        gateway_with, responses_mock, failure, error):
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.08}}}, ALERT_THRESHOLDS=(50,))
    assert gateway.spend("alice") == [200]
    responses_mock.add(responses.POST, WEBHOOK, body=failure)

    gateway.alerts.run_once()

    [alert] = gateway.outbox.alerts()
    assert (alert.status, alert.last_error) == ("pending", error)


def test_alerts_list_shows_each_alert_and_its_delivery(gateway_with, responses_mock, capsys,
                                                       monkeypatch, store_settings, ledger_path):
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.08}}}, ALERT_THRESHOLDS=(50, 100))
    assert gateway.spend("alice", "alice") == [200, 200]
    responses_mock.add(responses.POST, WEBHOOK, status=200)
    gateway.alerts.run_once()
    database_url = store_settings.get("DATABASE_URL", "")
    monkeypatch.setenv("ZIRI_DATABASE_URL", database_url)
    where = [] if database_url else ["--ledger", str(ledger_path)]

    assert cli.main(["alerts", "list", "--format", "json", *where]) == 0

    rows = json.loads(capsys.readouterr().out)["alerts"]
    assert [(row["holder"], row["threshold"], row["spent"], row["status"]) for row in rows] == [
        ("key_alice", 100, 0.08, "delivered"), ("key_alice", 50, 0.04, "delivered")]


def test_the_metric_counts_each_delivery_by_result(gateway_with, responses_mock):
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.08}}}, ALERT_THRESHOLDS=(50,))
    assert gateway.spend("alice") == [200]
    responses_mock.add(responses.POST, WEBHOOK, status=500)

    gateway.alerts.run_once()

    assert gateway.metrics.alert_deliveries.labels("retry")._value.get() == 1


def test_without_a_webhook_no_alert_is_recorded(make_app, keys_path, responses_mock):
    write_team_keys(keys_path, {}, {"alice": {"limits": {"daily_spend_limit": 0.04}}})
    app = make_app()
    assert generate(app.test_client(), "alice").status_code == 200

    gateway = app.extensions["ziri_images"]
    assert gateway.alerts is None and gateway.limiter.alert_thresholds == ()
    assert gateway.store.alert_outbox().alerts() == []


@pytest.mark.stores("file")
def test_an_outbox_that_cannot_be_written_never_fails_a_charge(gateway_with, ledger_path, caplog):
    (ledger_path.parent / "alerts.jsonl").mkdir(parents=True)  # a directory where the outbox would be
    gateway = gateway_with({}, {"alice": {"limits": {"daily_spend_limit": 0.08}}}, ALERT_THRESHOLDS=(50,))

    assert gateway.spend("alice", "alice") == [200, 200]

    assert caplog.text.count("budget alerts not recorded") == 2
