"""The suite leaves the machine's PostgreSQL server alone: its tests stop and restart only servers of their own.

Every other client of the shared server (other test runs, a developer's gateway) is cut off by a
restart, so no test may stop, restart or reconfigure it, nor end other sessions' connections.
The one thing that drives ``pg_ctl`` is tests/throwaway_cluster.py, on a cluster it created.
"""

import re
from pathlib import Path

import psycopg

TESTS_DIR = Path(__file__).resolve().parent
# What stops, restarts or reconfigures a server, or ends other clients' sessions.
SERVER_CONTROL = re.compile(r"pg_ctlcluster|pg_ctl\b|systemctl\b[^\n]*postgres|service\s+postgresql|ALTER\s+SYSTEM"
                            r"|pg_reload_conf|pg_terminate_backend|pg_cancel_backend", re.IGNORECASE)
# Ending sessions is allowed on the test's own database only (its own connections, nobody else's).
OWN_DATABASE = re.compile(r"datname\s*=\s*current_database\(\)", re.IGNORECASE)
THROWAWAY = TESTS_DIR / "throwaway_cluster.py"


def server_control_outside_the_throwaway_cluster():
    found = []
    for path in sorted(TESTS_DIR.rglob("*.py")):
        if path in (THROWAWAY, Path(__file__).resolve()) or "node_modules" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for match in SERVER_CONTROL.finditer(text):
            statement = text[match.start():match.start() + 200]
            if match.group().lower().startswith("pg_terminate") and OWN_DATABASE.search(statement):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(TESTS_DIR)}:{line}: {match.group()}")
    return found


def test_no_test_stops_restarts_or_reconfigures_a_server_it_did_not_start():
    assert server_control_outside_the_throwaway_cluster() == []


def start_time(url):
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        return connection.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_a_throwaway_cluster_restarts_alone_and_leaves_nothing_behind(test_database, throwaway_cluster):
    shared = start_time(test_database.url)
    before = start_time(throwaway_cluster.url)

    throwaway_cluster.restart()

    assert start_time(throwaway_cluster.url) > before
    assert start_time(test_database.url) == shared
    directory = throwaway_cluster.directory
    throwaway_cluster.cleanup()
    assert not directory.exists() and not throwaway_cluster.running()
