"""Liveness (/health) and readiness (/ready): what each check reports, and nothing secret."""

import ast
import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import PROVIDER_KEY

import ziri_images
from ziri_images.ledger.file import readiness as ledger_readiness

ALL_OK = {"keys": {"ok": True}, "catalog": {"ok": True}, "ledger": {"ok": True}, "providers": {"ok": True}}
ALL_USABLE = {name: {"usable": True} for name in ("openai", "azure", "xai", "google", "vertex", "stability", "recraft",
                                                     "bfl")}
FakeStatvfs = namedtuple("FakeStatvfs", "f_bavail f_frsize")


def test_health_is_liveness_only(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_every_check_passes(client):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": ALL_OK, "providers": ALL_USABLE}


def break_key_file(app, monkeypatch):
    with open(app.config["KEYS_FILE"], "w") as file:
        file.write('{"keys": [')


def delete_key_file(app, monkeypatch):
    os.remove(app.config["KEYS_FILE"])


def remove_ledger_directory(app, monkeypatch):
    shutil.rmtree(os.path.dirname(app.config["LEDGER_PATH"]))


def delete_ledger_file(app, monkeypatch):
    os.remove(app.config["LEDGER_PATH"])  # rotated away: the gateway would write to a deleted file


def fill_the_disk(app, monkeypatch):
    monkeypatch.setattr(ledger_readiness.os, "statvfs", lambda path: FakeStatvfs(f_bavail=10, f_frsize=4096))


def empty_the_catalog(app, monkeypatch):
    app.extensions["ziri_images"].prices.providers = {"openai": {"gpt-4o": "chat"}}


@pytest.mark.parametrize("breakage, check, reason", [
    pytest.param(break_key_file, "keys", "the key file is missing or invalid", id="key-file-broken"),
    pytest.param(delete_key_file, "keys", "the key file is missing or invalid", id="key-file-deleted"),
    pytest.param(remove_ledger_directory, "ledger", "the ledger is not writable", id="ledger-directory-gone"),
    pytest.param(delete_ledger_file, "ledger", "the ledger is not writable", id="ledger-file-deleted"),
    pytest.param(fill_the_disk, "ledger", "the ledger's disk is full", id="disk-full"),
    pytest.param(empty_the_catalog, "catalog", "the catalog has no image models", id="no-image-models"),
])
def test_not_ready_names_the_failing_check(app, client, monkeypatch, tmp_path, breakage, check, reason):
    breakage(app, monkeypatch)

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.get_json() == {"status": "not_ready",
                                   "checks": {**ALL_OK, check: {"ok": False, "reason": reason}},
                                   "providers": ALL_USABLE}
    text = json.dumps(response.get_json())
    assert str(tmp_path) not in text and PROVIDER_KEY not in text
    assert client.get("/health").status_code == 200  # liveness does not depend on it


def test_check_catalog_names_one_function_in_the_package():
    # Readiness's "the catalog has image models" and the start-up check of providers.json against the catalog
    # are different rules: one name each.
    package = Path(ziri_images.__file__).parent
    defined = sorted(path.relative_to(package).as_posix() for path in package.rglob("*.py")
                     for node in ast.parse(path.read_text()).body
                     if isinstance(node, ast.FunctionDef) and node.name == "check_catalog")
    assert len(defined) <= 1, defined
