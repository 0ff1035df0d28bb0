"""The schema's migrations and functions: applied once, again when a function's text changes, shipped as files."""

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from ziri_images.cli import entry as cli
from ziri_images.ledger.postgres.migrate import LATEST
from ziri_images.ledger.postgres.migrate import migrate
from ziri_images.ledger.postgres.migrate import schema_version
from ziri_images.ledger.postgres.sql import scripts

PROJECT_DIR = Path(__file__).resolve().parents[3]
FUNCTIONS = [file[:-4] for file, _text in scripts("functions")]
MIGRATIONS = [file[:-4] for file, _text in scripts("migrations")]
# schema_migrations as the development versions left it, before they were squashed into 001.
DEVELOPMENT_VERSIONS = [(1, "ledger records, key locks, period totals, open reservations, worker leases"),
                        (2, "refusal counts per day, key and code"),
                        (3, "request path functions: ziri_reserve_begin, ziri_settle_charge"),
                        (4, "request path in one call each: per-key counters, admission ordinals, ziri_reserve"),
                        (5, "the database's clock decides expiry and the rate window (ziri_now); "
                            "a released Idempotency-Key is free")]


@pytest.fixture
def fresh(test_database):
    """Yield the URL of an empty schema of its own in the run's database (dropped afterwards)."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with test_database.connect() as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    yield f"{test_database.url} options='-c search_path={name}'"
    with test_database.connect() as connection:
        connection.execute(f"DROP SCHEMA {name} CASCADE")


def as_before_the_squash(connection, versions):
    """Make a migrated schema the development versions': 001's tables, ``versions`` recorded, no function hashes."""
    connection.execute("DROP TABLE api_keys, teams, key_tombstones, key_store_version, audit_records")  # 002's
    connection.execute("DROP TABLE schema_functions")
    connection.execute("DELETE FROM schema_migrations")
    for version, name in versions:
        connection.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))


def test_an_empty_database_gets_every_migration_and_function_once(fresh):
    with psycopg.connect(fresh, autocommit=True) as connection:
        assert migrate(connection) == ["001_schema", "002_keys", "003_team_usage_and_alerts", *FUNCTIONS]
        assert migrate(connection) == []
        assert schema_version(connection) == LATEST == 3


def test_a_database_migrated_before_the_squash_keeps_its_tables_and_gets_the_current_functions(fresh, capsys):
    with psycopg.connect(fresh, autocommit=True) as connection:
        migrate(connection)
        as_before_the_squash(connection, DEVELOPMENT_VERSIONS)
        connection.execute("CREATE OR REPLACE FUNCTION ziri_now() RETURNS timestamptz LANGUAGE sql AS 'SELECT now()'")

    assert cli.main(["db", "migrate", "--database-url", fresh]) == 0
    # Recorded as 001, then migrated on from there like any other database.
    assert f"applied {', '.join([*MIGRATIONS[1:], *FUNCTIONS])}; schema version {LATEST}" in capsys.readouterr().err
    with psycopg.connect(fresh, autocommit=True) as connection:
        assert connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall() == [
            (1, "schema"), (2, "keys"), (3, "team_usage_and_alerts")]
        body = connection.execute("SELECT prosrc FROM pg_proc WHERE proname = 'ziri_now' "
                                  "AND pronamespace = current_schema()::regnamespace").fetchone()[0]
        assert body == "SELECT clock_timestamp()"
        assert migrate(connection) == []


def test_a_database_left_half_way_by_a_development_version_is_refused_untouched(fresh, capsys):
    with psycopg.connect(fresh, autocommit=True) as connection:
        migrate(connection)
        as_before_the_squash(connection, DEVELOPMENT_VERSIONS[:3])

    assert cli.main(["db", "migrate", "--database-url", fresh]) == 1
    error = capsys.readouterr().err
    assert "schema version 3 from a development version of ziri-images: recreate the database" in error
    assert error.count("\n") == 1
    with psycopg.connect(fresh, autocommit=True) as connection:
        assert [row[0] for row in connection.execute("SELECT version FROM schema_migrations")] == [1, 2, 3]


def test_a_function_whose_text_changed_is_applied_again_alone(fresh):
    with psycopg.connect(fresh, autocommit=True) as connection:
        migrate(connection)
        connection.execute("UPDATE schema_functions SET sha256 = 'an older text' WHERE name = 'ziri_reserve'")
        assert migrate(connection) == ["ziri_reserve"]
        assert migrate(connection) == []


def test_the_sql_files_ship_with_the_package(tmp_path):
    # build_py is the step that gathers a wheel's files: the package's modules and its package data.
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "--build-lib", str(tmp_path / "lib")], cwd=PROJECT_DIR, check=True, timeout=120,
                   capture_output=True)
    listing = subprocess.run(
        [sys.executable, "-c", "import ziri_images.ledger.postgres.migrate as m, ziri_images.ledger.postgres.sql as s; "
         "print(m.__file__); print([f for f, _ in s.scripts('migrations') + s.scripts('functions')])"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "lib")}, capture_output=True, text=True, timeout=60,
        check=True).stdout.splitlines()

    assert listing[0].startswith(str(tmp_path / "lib"))
    assert listing[1] == str([file for file, _ in scripts("migrations") + scripts("functions")])
    assert (tmp_path / "lib" / "ziri_images" / "ledger" / "postgres" / "migrate.sql").is_file()
