"""The command line's tests: a key file's changes are audited beside the ledger, so the ledger is the test's own."""

import pytest


@pytest.fixture(autouse=True)
def ledger_in_tmp_path(monkeypatch, tmp_path):
    """Point ZIRI_LEDGER_PATH (and so audit.jsonl beside it) into the test's directory, never the checkout's var/."""
    monkeypatch.setenv("ZIRI_LEDGER_PATH", str(tmp_path / "var" / "ledger.jsonl"))
