"""Team and end-user limits through the API, on every store: one budget shared by a team's keys, one per end user.

The provider and the helpers are test_limits.py's (``provider``: the stub's answers through
``responses``; ``[hold]`` keeps a reservation open). Every request here costs $0.04 (dall-e-3,
standard, 1024x1024).
"""

import json
import os
from datetime import timedelta

import pytest
from conftest import reservation_record
from test_limits import HeldRequest
from test_limits import gate  # noqa: F401  (a fixture, used by name)
from test_limits import generate
from test_limits import live_worker
from test_limits import provider  # noqa: F401  (a fixture, used by name)
from test_limits import raw_key
from test_limits import records
from test_limits import usage
from test_limits import utc

from ziri_images.keys.store import hash_key

# Every test answers from the stub through ``provider`` (test_limits.py's fixture, imported above).
pytestmark = [pytest.mark.stores(), pytest.mark.usefixtures("provider")]

DESIGN = {"name": "Design", "limits": {"daily_spend_limit": 0.12}}


def write_team_keys(path, teams, specs):
    """Replace keys.json with ``teams`` and one key per ``name -> fields`` (id ``key_{name}``)."""
    keys = [{"id": f"key_{name}", "user": name, "hash": hash_key(raw_key(name)), **fields}
            for name, fields in specs.items()]
    previous = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(json.dumps({"teams": teams, "keys": keys}))
    os.utime(path, ns=(previous + 1_000_000_000,) * 2)


@pytest.fixture
def team_client(make_app, keys_path):
    """Return ``make(teams, **keys)``: write keys.json with teams, build an app, return its client."""
    def make(teams, **specs):
        write_team_keys(keys_path, teams, specs)
        return make_app().test_client()

    return make


def test_two_keys_of_a_team_share_its_budget_and_the_refusal_says_so(team_client, clock):
    client = team_client({"design": DESIGN}, alice={"team": "design"}, bob={"team": "design"}, carol={})
    assert [generate(client, name).status_code for name in ("alice", "bob", "alice")] == [200, 200, 200]

    refused = generate(client, "bob")

    assert refused.status_code == 402
    body = refused.json
    assert (body["code"], body["scope"], body["teamId"], body["period"]) == ("SPEND_LIMIT_EXCEEDED", "team", "design",
                                                                             "daily")
    assert (body["spent"], body["limit"]) == (0.12, 0.12)
    assert body["error"] == "The team's daily spend limit of $0.12 would be exceeded by this request."
    assert generate(client, "carol").status_code == 200  # a key of no team is not held to it
    assert [r["team"] for r in records(client, "charge")[:3]] == ["design"] * 3
    assert "team" not in records(client, "charge", "carol")[0]


def test_a_team_holds_its_keys_in_flight_together(team_client, gate):  # noqa: F811  (the fixture imported above)
    team = {"name": "Design", "limits": {"max_concurrent_requests": 1}}
    client = team_client({"design": team}, alice={"team": "design"}, bob={"team": "design"})
    held = HeldRequest(client, "alice")

    refused = generate(client, "bob")

    assert (refused.status_code, refused.json["code"], refused.json["scope"]) == (503, "QUEUE_FULL", "team")
    gate.set()
    assert held.response().status_code == 200
    assert generate(client, "bob").status_code == 200


def test_a_team_rate_counts_every_key_of_the_team(team_client):
    team = {"name": "Design", "limits": {"requests_per_minute": 3}}
    client = team_client({"design": team}, alice={"team": "design"}, bob={"team": "design"})

    answers = [generate(client, name) for name in ("alice", "bob", "alice", "bob")]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert (answers[-1].json["scope"], answers[-1].json["limit"]) == ("team", 3)
    assert "X-RateLimit-Limit" not in answers[-1].headers  # the headers are the key's own rate (none here)


def test_a_teams_stale_reservation_of_another_key_is_settled_before_the_team_is_judged(
        team_client, clock, another_worker):
    team = {"name": "Design", "limits": {"max_concurrent_requests": 1}}
    client = team_client({"design": team}, alice={"team": "design"}, bob={"team": "design"})
    # Bob's request, admitted 5 minutes ago by a worker that never settled it: its time ran out.
    expired = {**reservation_record("bob", 0.04, clock() - timedelta(minutes=5), live_worker(), "req_lost",
                                    ttl_seconds=60), "team": "design"}
    another_worker(expired)

    assert generate(client, "alice").status_code == 200

    [expiry] = records(client, "reservation_expired", "bob")
    assert (expiry["requestId"], expiry["team"], expiry["cost"]) == ("req_lost", "design", 0.04)
    assert usage(client, "alice")["team"]["daily"]["spent"] == 0.08


def test_an_end_user_limit_holds_each_end_user_and_those_who_name_none_together(team_client):
    client = team_client({}, alice={"limits": {"end_user_daily_spend_limit": 0.08}})
    for user in ("carol", "carol", "dave", None, None):
        body = {"user": user} if user else {}
        assert generate(client, "alice", **body).status_code == 200

    refused = [generate(client, "alice", **body) for body in ({"user": "carol"}, {})]

    assert [r.status_code for r in refused] == [402, 402]
    assert [(r.json["scope"], r.json["endUser"]) for r in refused] == [("end_user", "carol"), ("end_user", "")]
    assert refused[0].json["error"] == "The daily spend limit per end user of $0.08 would be exceeded by this request."
    assert generate(client, "alice", user="erin").status_code == 200
    assert [r.get("endUser") for r in records(client, "charge")] == ["carol", "carol", "dave", None, None, "erin"]


@pytest.mark.parametrize("user", [
    pytest.param("", id="empty"),
    pytest.param("x" * 257, id="too-long"),
    pytest.param("carol\nforged", id="a-line-break"),
    pytest.param(7, id="not-a-string"),
])
def test_an_end_user_that_cannot_be_recorded_is_refused(team_client, responses_mock, user):
    client = team_client({}, alice={})
    responses_mock.reset()  # nothing reaches the provider

    answer = generate(client, "alice", user=user)

    assert (answer.status_code, answer.json["code"]) == (400, "VALIDATION_ERROR")
    assert "user" in answer.json["details"]
    assert records(client, "reservation") == []


def test_usage_shows_the_teams_figures_beside_the_keys(team_client, clock):
    clock.now = utc(2026, 11, 15, 12, 0, 0)
    team = {"name": "Design", "limits": {"daily_spend_limit": 1.0, "monthly_spend_limit": 10.0,
                                         "soft_daily_spend_limit": 0.5}}
    client = team_client({"design": team}, alice={"team": "design", "limits": {"daily_spend_limit": 0.5}},
                         bob={"team": "design"})
    for name in ("alice", "bob", "bob"):
        assert generate(client, name).status_code == 200

    report = usage(client, "alice")

    assert report["daily"]["spent"] == 0.04 and report["daily"]["remaining"] == 0.46
    team_report = report["team"]
    assert (team_report["id"], team_report["name"]) == ("design", "Design")
    assert team_report["daily"] == {"period": "2026-11-15", "spent": 0.12, "reserved": 0, "limit": 1.0,
                                    "remaining": 0.88, "requests": 3, "resetsAt": "2026-11-16T00:00:00.000000Z"}
    assert team_report["monthly"]["spent"] == 0.12 and team_report["monthly"]["limit"] == 10.0
    assert (team_report["inFlight"], team_report["requestsLastMinute"]) == (0, 3)
    assert team_report["limits"]["soft_daily_spend_limit"] == 0.5
    assert "end_user_daily_spend_limit" not in team_report["limits"]


def test_a_teams_usage_survives_a_restart_exactly_as_a_keys(team_client, clock, another_worker):
    clock.now = utc(2026, 11, 15, 12, 0, 0)
    keys = {"alice": {"team": "design"}, "bob": {"team": "design", "limits": {"end_user_daily_spend_limit": 0.08}}}
    client = team_client({"design": DESIGN}, **keys)
    assert generate(client, "alice").status_code == 200
    assert generate(client, "bob", user="carol").status_code == 200
    # A request of bob's for carol still at the provider, in another (live) worker.
    another_worker({**reservation_record("bob", 0.04, clock(), live_worker(), "req_open"), "team": "design",
                    "endUser": "carol"})
    before = usage(client, "alice")["team"]

    restarted = team_client({"design": DESIGN}, **keys)  # a new process: the state replayed (or read) again

    assert usage(restarted, "alice")["team"] == before
    assert (before["daily"]["spent"], before["daily"]["reserved"], before["inFlight"]) == (0.08, 0.04, 1)
    refused = generate(restarted, "bob", user="carol")
    assert (refused.status_code, refused.json["scope"]) == (402, "end_user")  # 0.04 spent + 0.04 held
    assert generate(restarted, "alice").status_code == (402)  # the team's 0.12: 0.08 spent + 0.04 held


def test_reports_group_by_team_and_end_user(team_client, clock):
    client = team_client({"design": DESIGN}, alice={"team": "design"}, bob={})
    for name, user in (("alice", "carol"), ("alice", None), ("bob", "carol")):
        assert generate(client, name, **({"user": user} if user else {})).status_code == 200
    store = client.application.extensions["ziri_images"].store

    report = store.report(by=("team", "end_user"))

    assert {group: totals.as_row()["requests"] for group, totals in report.groups.items()} == {
        ("design", "carol"): 1, ("design", "(none)"): 1, ("(none)", "carol"): 1}
    assert {group: totals.cost for group, totals in store.report(by=("team",)).groups.items()} == {
        ("design",): 0.08, ("(none)",): 0.04}
