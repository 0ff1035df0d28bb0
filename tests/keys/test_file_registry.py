"""keys.json's registry: teams in the file, the key file's own checks, each change's audit record beside the ledger."""

import json

import pytest
from conftest import USER_KEY
from conftest import read_keys

from ziri_images.keys.base import Conflict
from ziri_images.keys.base import KeyEditError
from ziri_images.keys.base import NotFound
from ziri_images.keys.file_registry import FileKeyRegistry
from ziri_images.keys.store import KeyStore
from ziri_images.keys.store import hash_key
from ziri_images.ledger.file.audit import AuditFile


@pytest.fixture
def audit(tmp_path):
    return AuditFile(str(tmp_path / "var" / "audit.jsonl"))


@pytest.fixture
def registry(keys_path, audit, clock):
    return FileKeyRegistry(str(keys_path), audit, clock)


def test_a_team_and_its_keys_live_in_keys_json(registry, keys_path):
    team = registry.create_team("cli", "Design", team_id="team_design", limits={"daily_spend_limit": 10})
    registry.update_key("cli", "key_user", team="team_design")

    document = json.loads(keys_path.read_text())
    assert document["teams"] == {"team_design": {"name": "Design", "status": "active",
                                                 "limits": {"daily_spend_limit": 10}, "created_at": team["created_at"]}}
    key = KeyStore(str(keys_path)).find(hash_key(USER_KEY))
    assert (key.team.id, key.team.name, key.team.limits) == ("team_design", "Design", {"daily_spend_limit": 10})
    assert registry.list_teams() == [{**team, "keys": 1}]
    assert [record["id"] for record in registry.list_keys(team="team_design")] == ["key_user"]


def test_refused_edits_leave_the_file_as_it_was(registry, keys_path, audit):
    registry.create_team("cli", "Design", team_id="team_design")
    registry.update_key("cli", "key_user", team="team_design")
    before = keys_path.read_bytes()
    written = list(audit.records())

    with pytest.raises(Conflict, match="has 1 key"):
        registry.delete_team("cli", "team_design")
    with pytest.raises(KeyEditError, match="names no known team"):
        registry.update_key("cli", "key_user", team="team_missing")
    with pytest.raises(KeyEditError, match="limit 'requests_per_minute' must be"):
        registry.update_team("cli", "team_design", limits={"requests_per_minute": 0.5})
    with pytest.raises(Conflict, match="already exists"):
        registry.create_key("cli", "alice", key_id="key_user")
    with pytest.raises(NotFound, match="no team with id 'team_x'"):
        registry.update_team("cli", "team_x", name="x")

    assert keys_path.read_bytes() == before and list(audit.records()) == written


def test_every_change_is_audited_with_the_clocks_time(registry, audit, clock):
    registry.create_team("admin:0123456789ab", "Ops", team_id="team_ops")
    record, raw_key = registry.create_key("cli", "frank", key_id="key_frank")
    registry.revoke_key("cli", "key_frank", "2026-11-26T12:00:00Z")
    registry.update_key("cli", "key_frank", status="disabled")  # no change: no record
    _, new_key = registry.rotate_key("cli", "key_frank")
    registry.delete_key("cli", "key_frank")
    registry.delete_team("cli", "team_ops")

    records = list(audit.records())
    assert [(r["actor"], r["action"], r["targetId"]) for r in records] == [
        ("admin:0123456789ab", "team.created", "team_ops"), ("cli", "key.created", "key_frank"),
        ("cli", "key.updated", "key_frank"), ("cli", "key.rotated", "key_frank"), ("cli", "key.deleted", "key_frank"),
        ("cli", "team.deleted", "team_ops")]
    assert records[2]["changes"] == {"revoked_at": {"from": None, "to": "2026-11-26T12:00:00Z"},
                                     "status": {"from": "active", "to": "disabled"}}
    assert {r["ts"] for r in records} == {"2026-11-26T12:00:00.000000Z"}
    text = json.dumps(records)
    assert "sha256:" not in text and raw_key not in text and new_key not in text
    assert "key_frank" not in [r["id"] for r in read_keys(registry.path)]
