"""Teams in keys.json: the ``teams`` object, a key's ``team``, and a disabled team's keys refused."""

import json
from datetime import datetime
from datetime import timezone

import pytest
from conftest import key_record
from conftest import write_keys

from ziri_images.errors import ApiError
from ziri_images.errors import ConfigError
from ziri_images.keys.store import KeyStore
from ziri_images.keys.store import Team
from ziri_images.keys.store import hash_key
from ziri_images.keys.store import load_key_file

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
ALICE = "ziri-alice-0123456789abcdef"
BOB = "ziri-bob-fedcba9876543210"
DESIGN = {"name": "Design", "limits": {"daily_spend_limit": 10, "requests_per_minute": 30,
                                        "soft_monthly_spend_limit": 150}}


def member(raw_key, name, team="design", **limits):
    record = key_record(raw_key, key_id=f"key_{name}", user=name, limits=limits or None)
    return {**record, "team": team} if team is not None else record


def test_a_key_carries_its_resolved_team(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [member(ALICE, "alice", end_user_daily_spend_limit=0.5), member(BOB, "bob", team=None)],
               teams={"design": DESIGN})

    keys = load_key_file(str(path))

    alice = keys[hash_key(ALICE)]
    assert alice.team == Team(id="design", name="Design", status="active", limits=DESIGN["limits"])
    assert alice.team.limit("daily_spend_limit") == 10 and alice.team.limit("monthly_spend_limit") is None
    assert alice.limit("end_user_daily_spend_limit") == 0.5
    assert keys[hash_key(BOB)].team is None


@pytest.mark.parametrize(("teams", "keys", "problem"), [
    pytest.param({}, [member(ALICE, "alice")], "keys[0]: 'team' names no known team ('design')", id="unknown-team"),
    pytest.param(None, [member(ALICE, "alice")], "keys[0]: 'team' names no known team", id="no-teams-at-all"),
    pytest.param({"design": DESIGN}, [member(ALICE, "alice", team=7)], "'team' names no known team (7)",
                 id="team-not-a-string"),
    pytest.param(["design"], [member(ALICE, "alice")], "'teams' must be an object", id="teams-a-list"),
    pytest.param({"design": "Design"}, [], "teams.design: expected an object", id="team-not-an-object"),
    pytest.param({"design": {"name": ""}}, [], "teams.design: 'name' is required", id="empty-name"),
    pytest.param({"design": {"name": "D", "status": "paused"}}, [],
                 "teams.design: 'status' must be one of active, disabled", id="bad-status"),
    pytest.param({"design": {"name": "D", "limits": {"daily_spend_limit": -1}}}, [],
                 "teams.design: limit 'daily_spend_limit' must be a number >= 0", id="negative-limit"),
    pytest.param({"design": {"name": "D", "limits": {"max_concurrent_requests": 1.5}}}, [],
                 "limit 'max_concurrent_requests' must be a whole number", id="fractional-count"),
    pytest.param({"design": {"name": "D", "limits": {"end_user_daily_spend_limit": 1}}}, [],
                 "teams.design: unknown limit 'end_user_daily_spend_limit'", id="a-key-only-limit"),
    pytest.param({"design": {"name": "D", "limits": {"soft_daily_spend_limit": 1e400}}}, [],
                 "limit 'soft_daily_spend_limit' must be a number >= 0", id="infinite-soft-limit"),
])
def test_team_errors_name_the_file_and_the_problem(tmp_path, teams, keys, problem):
    path = tmp_path / "keys.json"
    document = {"keys": keys} if teams is None else {"teams": teams, "keys": keys}
    path.write_text(json.dumps(document).replace("Infinity", "1e400"), encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_key_file(str(path))

    assert str(raised.value).startswith(f"key file {path}: ")
    assert problem in str(raised.value)


def test_a_key_of_a_disabled_team_is_refused_as_a_disabled_key(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [member(ALICE, "alice")], teams={"design": {**DESIGN, "status": "disabled"}})

    with pytest.raises(ApiError) as raised:
        KeyStore(str(path)).authenticate(ALICE, NOW)

    refusal = raised.value
    assert (refusal.status, refusal.code) == (403, "API_KEY_REVOKED_OR_DISABLED")
    assert refusal.details == {"keyId": "key_alice", "reason": "team_disabled"}
