"""Closing the PostgreSQL store is quiet: a command that succeeded never ends with a database fault on stderr.

Each process's pool starts a housekeeping thread (``pglease.LeaseKeeper``); a command that closes
the store while that thread is mid-pass used to print "the store is closed" and "the database is
unavailable" at exit, though nothing had failed. The race is made certain here: the pass waits in
its sweep until the store is closed, and the close waits until the pass is there.
"""

import logging
import threading
import time

import pytest

from ziri_images.cli import entry as cli
from ziri_images.ledger.postgres.lease import LeaseKeeper
from ziri_images.ledger.postgres.store import PostgresStore


@pytest.fixture
def closing_mid_pass(monkeypatch):
    """Hold every housekeeping pass in its sweep until its store is closed, and every close until a pass is there."""
    in_pass = threading.Event()
    sweep, close = LeaseKeeper.sweep, PostgresStore.close

    def sweep_after_close(keeper):
        in_pass.set()
        deadline = time.monotonic() + 10
        while not keeper.store.database.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        return sweep(keeper)

    def close_during_a_pass(store):
        assert in_pass.wait(10), "no housekeeping pass started"
        return close(store)

    monkeypatch.setattr(LeaseKeeper, "sweep", sweep_after_close)
    monkeypatch.setattr(PostgresStore, "close", close_during_a_pass)
    return in_pass


@pytest.mark.parametrize("argv", [
    pytest.param(["report", "--format", "json"], id="report"),
    pytest.param(["report", "--view", "refusals", "--format", "json"], id="refusals"),
    pytest.param(["ledger", "export"], id="export"),
])
def test_a_command_on_postgresql_that_succeeded_exits_without_a_database_fault(
        database, tmp_path, monkeypatch, capsys, caplog, closing_mid_pass, argv):
    monkeypatch.setenv("ZIRI_DATABASE_URL", database.url)
    monkeypatch.setenv("ZIRI_SPOOL_DIR", str(tmp_path / "spool"))
    caplog.set_level(logging.INFO, logger="ziri_images")

    assert cli.main(argv) == 0

    assert closing_mid_pass.is_set()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert "unavailable" not in capsys.readouterr().err
