"""Team budgets and budget alerts with real gateways: two hosts on one database, a file store's workers, a restart.

Two keys of one team race 10 x K requests at a team budget of K images: exactly K succeed,
however the requests spread over hosts, workers and keys, and the webhook receiver (a small
HTTP server on 127.0.0.1) gets exactly one signed event per threshold the team crossed, even
though the crossing charges land on several hosts at once. An alert recorded while the receiver
is down is retried, and survives a restart of the gateway that recorded it.
"""

import threading
import time
from collections import Counter

import pytest

from e2e.conftest import STORES
from e2e.test_limits_e2e import PRICE
from e2e.test_limits_e2e import burst
from e2e.test_limits_e2e import micros
from e2e.webhook import Receiver
from e2e.webhook import alert_environment

pytestmark = pytest.mark.real_http

FITS = 4  # the team's budget, in images
TEAM = {"design": {"name": "Design", "limits": {"daily_spend_limit": round(FITS * PRICE, 2)}}}
MEMBERS = {"alice": {"team": "design"}, "bob": {"team": "design"}}


# Each test runs on one store in the quick suite, on both in CI (ZIRI_TEST_ALL=1).
@pytest.fixture(params=STORES)
def store(request):
    return request.param


def slow_on(store_kind):
    return [pytest.param(kind, marks=pytest.mark.slow) if kind == store_kind else kind for kind in ("file", "postgres")]


def attempted(gateway, directory):
    """Return True once the gateway's sender has tried to post an alert (and failed: the receiver is down)."""
    if gateway.database is not None:
        with gateway.database.connect() as connection:
            return connection.execute("SELECT count(*) FROM budget_alerts WHERE attempts > 0").fetchone()[0] > 0
    outbox = directory / "var" / "alerts.jsonl"
    return outbox.exists() and '"type":"attempt"' in outbox.read_text()


@pytest.fixture(params=["gevent", pytest.param("gthread", marks=pytest.mark.slow)])
def worker_class(request):
    """gevent (the production default) in the quick suite; gthread too in CI: the sender runs under both."""
    if request.param == "gevent":
        pytest.importorskip("gevent")
    return request.param


@pytest.fixture
def receiver():
    webhook = Receiver()
    webhook.up()
    yield webhook
    webhook.down()


def spread(gateways, names):
    """Return a send() that takes turns over ``gateways`` and the keys ``names``; it returns (name, answer)."""
    turn = iter(range(1_000_000))
    lock = threading.Lock()

    def send():
        with lock:
            number = next(turn)
        name = names[number // len(gateways) % len(names)]
        return name, gateways[number % len(gateways)].generate(name, prompt="a red fox [stub:delay=0.1]")

    return send


@pytest.mark.parametrize("store", slow_on("file"), indirect=True)
def test_two_keys_of_a_team_admit_exactly_its_budget_and_each_threshold_is_posted_once(
        start_gateway, tmp_path, store, receiver):
    # PostgreSQL: two hosts of two workers; the file store: one host of four workers.
    hosts = ("host-a", "host-b") if store == "postgres" else ("host",)
    gateways = [start_gateway(MEMBERS, workers=4 // len(hosts), teams=TEAM, directory=tmp_path / name,
                              extra_env=alert_environment(receiver)) for name in hosts]

    sent = burst(10 * FITS, spread(gateways, ("alice", "bob")))

    answers = [answer for _name, answer in sent]
    assert Counter(answer.status_code for answer in answers) == {200: FITS, 402: 9 * FITS}
    assert {(a.json()["code"], a.json()["scope"]) for a in answers if a.status_code == 402} == {
        ("SPEND_LIMIT_EXCEEDED", "team")}
    # Each key got 20 requests, and only FITS were admitted in all: the one team budget refused both keys.
    assert {name for name, answer in sent if answer.status_code == 402} == {"alice", "bob"}
    charges = gateways[0].records("charge")
    assert len(charges) == FITS and sum(micros(r["cost"]) for r in charges) == micros(FITS * PRICE)
    receiver.wait_for(3)
    time.sleep(2.2)  # a sender's poll interval (2 s) and more: nothing else arrives
    events = receiver.events()
    assert sorted((e["scope"], e["id"], e["period"], e["threshold"]) for e, _signed, _id in events) == [
        ("team", "design", "daily", 50), ("team", "design", "daily", 80), ("team", "design", "daily", 100)]
    assert all(signed for _event, signed, _id in events)
    assert len({event_id for _event, _signed, event_id in events}) == 3


@pytest.mark.parametrize("store", slow_on("postgres"), indirect=True)
def test_an_alert_recorded_while_the_receiver_is_down_arrives_once_after_a_restart(
        start_gateway, tmp_path, store, receiver):
    receiver.down()
    limits = {"alice": {"limits": {"daily_spend_limit": 0.08}}}
    first = start_gateway(limits, workers=2, directory=tmp_path / "host", extra_env=alert_environment(
        receiver, ZIRI_ALERT_THRESHOLDS="50"))
    assert first.generate("alice").status_code == 200  # $0.04 of $0.08: 50 % reached
    first.process.wait_until(lambda: attempted(first, tmp_path / "host"), "a failed post to the receiver")
    first.process.kill()

    receiver.up()
    second = start_gateway(limits, workers=2, directory=tmp_path / "host", extra_env=alert_environment(
        receiver, ZIRI_ALERT_THRESHOLDS="50"))

    [(event, signed, _id)] = receiver.wait_for(1)
    assert signed and (event["id"], event["threshold"], event["spent"], event["limit"]) == ("key_alice", 50, 0.04,
                                                                                             0.08)
    assert second.usage("alice")["daily"]["spent"] == 0.04
    time.sleep(2.2)  # a sender's poll interval (2 s) and more: nothing else arrives
    assert len(receiver.events()) == 1
