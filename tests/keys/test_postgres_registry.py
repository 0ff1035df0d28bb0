"""The database's key registry: edits checked by the key file's rule, tombstones, an import never repeated."""

import json

import pytest
from conftest import DEMO_KEY
from conftest import USER_KEY
from conftest import key_record

from ziri_images.errors import ConfigError
from ziri_images.keys.base import Conflict
from ziri_images.keys.base import KeyEditError
from ziri_images.keys.base import NotFound
from ziri_images.keys.postgres import load_keys
from ziri_images.keys.postgres_registry import PostgresKeyRegistry
from ziri_images.keys.store import hash_key
from ziri_images.ledger.postgres.connection import command_transaction

ALICE = key_record(USER_KEY, key_id="key_user", user="alice", limits={"daily_spend_limit": 5.0})
DOCUMENT = {"teams": {"team_a": {"name": "A", "limits": {"monthly_spend_limit": 100}}},
            "keys": [{**ALICE, "team": "team_a"}, key_record(DEMO_KEY, key_id="key_demo", user="user-123", demo=True)]}


@pytest.fixture
def registry(database):
    return PostgresKeyRegistry(lambda: command_transaction(database.url, 5))


def version_and_keys(database):
    with database.connect() as connection, connection.transaction():
        return load_keys(connection.cursor())


def audit_rows(database):
    with database.connect() as connection:
        return [row[0] for row in connection.execute("SELECT record FROM audit_records ORDER BY id")]


def test_an_import_twice_writes_nothing_twice(registry, database):
    assert registry.import_document("cli", DOCUMENT, "keys.json") == {"keys": 2, "teams": 1}
    version, keys = version_and_keys(database)
    alice = keys[hash_key(USER_KEY)]
    assert (alice.team.id, alice.team.limits, alice.limits) == ("team_a", {"monthly_spend_limit": 100},
                                                              {"daily_spend_limit": 5.0})
    assert keys[hash_key(DEMO_KEY)].demo is True
    audited = audit_rows(database)

    assert registry.import_document("cli", DOCUMENT, "keys.json") == {"existing": 3}
    assert version_and_keys(database)[0] == version  # no reload anywhere
    assert audit_rows(database) == audited
    assert [record["action"] for record in audited] == ["team.imported", "key.imported", "key.imported"]


def test_a_key_deleted_or_rotated_in_the_database_never_comes_back_through_an_import(registry, database):
    registry.import_document("cli", DOCUMENT, "keys.json")
    registry.delete_key("cli", "key_demo")
    registry.rotate_key("cli", "key_user")
    # The old secret under a new id, as an old copy of keys.json edited by hand could hold it.
    old_secret = key_record(USER_KEY, key_id="key_user_again", user="alice")

    assert registry.import_document("cli", DOCUMENT, "keys.json") == {"deleted": 1, "existing": 2}
    assert registry.import_document("cli", {"keys": [old_secret]}, "old-keys.json") == {"deleted": 1}
    keys = version_and_keys(database)[1]
    assert hash_key(USER_KEY) not in keys and hash_key(DEMO_KEY) not in keys
    with pytest.raises(Conflict, match="exists or existed"):
        registry.create_key("cli", "user-123", key_id="key_demo")  # a deleted key's id names its ledger records


def test_an_invalid_file_imports_nothing(registry, database):
    version = version_and_keys(database)[0]
    broken = {**DOCUMENT, "keys": [*DOCUMENT["keys"], {**ALICE, "id": "key_x", "team": "team_missing"}]}
    with pytest.raises(ConfigError, match="'team' names no known team"):
        registry.import_document("cli", broken, "keys.json")
    assert version_and_keys(database) == (version, {}) and audit_rows(database) == []


def test_an_edit_the_key_rule_refuses_writes_nothing(registry, database):
    registry.import_document("cli", DOCUMENT, "keys.json")
    version = version_and_keys(database)[0]

    with pytest.raises(KeyEditError, match="limit 'daily_spend_limit' must be"):
        registry.update_key("cli", "key_user", limits={"daily_spend_limit": float("inf")})
    with pytest.raises(KeyEditError, match="names no known team"):
        registry.update_key("cli", "key_user", team="team_missing")
    with pytest.raises(NotFound):
        registry.update_key("cli", "key_nobody", status="disabled")

    assert version_and_keys(database)[0] == version
    assert registry.update_key("cli", "key_user", status="active")["status"] == "active"  # no change: no audit
    assert len(audit_rows(database)) == 3


def test_teams_are_kept_with_their_limits_and_a_team_with_keys_stays(registry):
    team = registry.create_team("cli", "Design", team_id="team_design", limits={"daily_spend_limit": 10})
    record, raw_key = registry.create_key("cli", "carol", team="team_design")

    assert registry.get_team("team_design") == {**team, "keys": 1}
    assert registry.list_keys(team="team_design") == [record] and raw_key.startswith("ziri-carol-")
    with pytest.raises(Conflict, match="has 1 key"):
        registry.delete_team("cli", "team_design")
    updated = registry.update_team("cli", "team_design", limits={"daily_spend_limit": None}, name="Design team")
    assert (updated["limits"], updated["name"]) == ({}, "Design team")
    registry.update_key("cli", record["id"], team=None)
    assert registry.delete_team("cli", "team_design")["id"] == "team_design"
    with pytest.raises(NotFound):
        registry.get_team("team_design")


def test_the_audit_names_fields_never_a_key_or_its_hash(registry, database):
    record, raw_key = registry.create_key("cli", "erin", key_id="key_erin", limits={"requests_per_minute": 5})
    _, new_key = registry.rotate_key("cli", "key_erin")
    registry.delete_key("cli", "key_erin")

    audit = audit_rows(database)
    assert [(row["action"], row["actor"]) for row in audit] == [("key.created", "cli"), ("key.rotated", "cli"),
                                                              ("key.deleted", "cli")]
    assert audit[0]["changes"]["limits.requests_per_minute"] == {"from": None, "to": 5}
    assert list(audit[1]["changes"]) == ["rotated_at"]
    text = json.dumps(audit)
    assert "sha256:" not in text and raw_key not in text and new_key not in text and "hash" not in text
