"""Audit records: validated like every record, exported with the ledger's, imported once, never counted as spend."""

import json
from datetime import timedelta

import pytest
from conftest import START
from conftest import charge_record
from conftest import fmt
from conftest import reservation_record
from conftest import store_records

from ziri_images.cli import entry as cli
from ziri_images.ledger.parse import parse_audit
from ziri_images.ledger.records import audit_record

AUDIT = audit_record(START, "cli", "key.updated", "key_user", {"status": {"from": "active", "to": "disabled"}})


@pytest.mark.parametrize("change", [
    pytest.param({"ts": "yesterday"}, id="bad-ts"),
    pytest.param({"auditId": ""}, id="no-audit-id"),
    pytest.param({"actor": 7}, id="actor-not-text"),
    pytest.param({"action": "key.stolen"}, id="unknown-action"),
    pytest.param({"targetId": None}, id="no-target"),
    pytest.param({"changes": []}, id="changes-not-an-object"),
    pytest.param({"type": "charge"}, id="not-an-audit-record"),
])
def test_an_audit_record_that_is_not_valid_is_skipped(change, caplog):
    assert parse_audit(AUDIT) == AUDIT
    assert parse_audit({**AUDIT, **change}) is None
    assert "skipping a record that is not valid" in caplog.text


@pytest.mark.stores()
def test_audit_records_are_exported_in_time_order_and_imported_once(make_app, another_worker, clock):
    app = make_app()
    another_worker(reservation_record("alice", 0.04, START, "elsewhere:1:0", request_id="req_1"))
    clock.advance(1)
    app.extensions["ziri_images"].registry.update_key("cli", "key_user", status="disabled")
    another_worker(charge_record("alice", 0.04, START + timedelta(seconds=2), "req_1"))

    exported = store_records(app)
    assert [record["type"] for record in exported] == ["reservation", "audit", "charge"]
    assert exported[1]["ts"] == fmt(START + timedelta(seconds=1))

    store = app.extensions["ziri_images"].store
    assert store.import_records([AUDIT, {**AUDIT, "action": "nope"}]) == (1, 1)
    assert store.import_records([AUDIT, exported[1]]) == (0, 2)  # both already there
    assert store.report(by=("key",)).totals().as_row()["requests"] == 1  # an audit record is no request


@pytest.mark.stores("postgres")
def test_the_ledger_export_command_includes_the_audit_records(app, database, monkeypatch, capsys, tmp_path):
    app.extensions["ziri_images"].registry.update_key("cli", "key_user", status="disabled")
    monkeypatch.setenv("ZIRI_DATABASE_URL", database.url)
    monkeypatch.setenv("ZIRI_SPOOL_DIR", str(tmp_path / "spool"))

    assert cli.main(["ledger", "export"]) == 0

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["type"], line["action"], line["actor"]) for line in lines] == [("audit", "key.updated", "cli")]
