"""The keys and teams commands on whichever store is configured: the database's tables, or keys.json; keys import."""

import json

import pytest
from conftest import USER_KEY
from conftest import read_keys

from cli.test_cli import run
from ziri_images.keys.postgres import load_keys
from ziri_images.keys.store import hash_key


@pytest.fixture
def on_the_database(database, monkeypatch, tmp_path):
    monkeypatch.setenv("ZIRI_DATABASE_URL", database.url)
    monkeypatch.setenv("ZIRI_SPOOL_DIR", str(tmp_path / "spool"))
    return database


def keys_in(database):
    with database.connect() as connection, connection.transaction():
        return load_keys(connection.cursor())[1]


def test_the_commands_edit_the_database_when_one_is_configured(on_the_database, keys_path, capsys):
    assert run(capsys, "teams", "create", "--name", "Ops", "--id", "team_ops", "--daily-spend-limit", "5")[1] == \
        "team_ops\n"
    code, out, _ = run(capsys, "keys", "create", "--user", "bob", "--id", "key_bob", "--team", "team_ops")
    raw_key = out.strip()

    assert code == 0 and keys_in(on_the_database)[hash_key(raw_key)].team.limits == {"daily_spend_limit": 5}
    listed = json.loads(run(capsys, "keys", "list", "--team", "team_ops", "--format", "json")[1])
    assert [record["id"] for record in listed] == ["key_bob"]
    assert run(capsys, "keys", "set", "key_bob", "--team", "none", "--requests-per-minute", "7")[0] == 0
    assert json.loads(run(capsys, "keys", "show", "key_bob", "--format", "json")[1])["limits"] == {
        "requests_per_minute": 7}
    assert run(capsys, "teams", "delete", "team_ops")[0] == 0
    assert run(capsys, "keys", "delete", "key_bob")[2].startswith("deleted key key_bob (bob) from database ")
    assert keys_in(on_the_database) == {}
    assert "key_bob" not in keys_path.read_text()  # keys.json is not the key store with a database
    with on_the_database.connect() as connection:
        actors = {row[0] for row in connection.execute("SELECT record->>'actor' FROM audit_records")}
    assert actors == {"cli"}


def test_a_key_file_named_on_the_command_line_is_edited_whatever_the_settings(on_the_database, keys_path, capsys):
    assert run(capsys, "keys", "disable", "key_user", "--keys-file", keys_path)[0] == 0
    assert next(record for record in read_keys(keys_path) if record["id"] == "key_user")["status"] == "disabled"
    assert keys_in(on_the_database) == {}


def test_keys_import_twice_imports_nothing_twice(on_the_database, keys_path, capsys):
    code, _, err = run(capsys, "keys", "import", keys_path)
    assert code == 0 and "imported 3 key(s) and 0 team(s); 0 already there" in err
    limits = keys_in(on_the_database)[hash_key(USER_KEY)].limits
    assert limits == {"daily_spend_limit": 5.0, "monthly_spend_limit": 50.0}

    assert run(capsys, "keys", "delete", "key_demo")[0] == 0
    code, _, err = run(capsys, "keys", "import", keys_path)
    assert code == 0 and "imported 0 key(s) and 0 team(s); 2 already there (left as they are); 1 deleted" in err


def test_keys_import_needs_a_database(keys_path, capsys):
    code, _, err = run(capsys, "keys", "import", keys_path)
    assert code == 1 and "no database configured" in err


def test_the_teams_commands_on_the_key_file(keys_path, capsys):
    assert run(capsys, "teams", "create", "--name", "Design", "--id", "team_d", "--keys-file", keys_path)[0] == 0
    assert run(capsys, "teams", "update", "team_d", "--monthly-spend-limit", "200", "--keys-file", keys_path)[0] == 0
    assert run(capsys, "keys", "set", "key_user", "--team", "team_d", "--keys-file", keys_path)[0] == 0
    code, out, _ = run(capsys, "teams", "list", "--keys-file", keys_path)
    assert code == 0 and out.splitlines()[2].split() == ["team_d", "Design", "active", "1", "-", "200.0", "-", "-",
                                                         "-", "-"]

    code, _, err = run(capsys, "teams", "delete", "team_d", "--keys-file", keys_path)
    assert code == 1 and "has 1 key(s)" in err
    code, _, err = run(capsys, "teams", "set", "team_d", "--keys-file", keys_path)
    assert code == 1 and "nothing to change" in err
    assert json.loads(run(capsys, "teams", "show", "team_d", "--format", "json", "--keys-file", keys_path)[1])[
        "limits"] == {"monthly_spend_limit": 200.0}
