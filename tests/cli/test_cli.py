"""The ziri-images command line: keys, report, pricing check, and the existing run commands."""

import json
import os
import subprocess
import sys
from datetime import date
from datetime import datetime
from datetime import timezone
from pathlib import Path

import pytest
from conftest import DEMO_KEY
from conftest import SHIPPED_PRICING
from conftest import USER_KEY
from conftest import read_keys

from ziri_images.catalog import pricing_check
from ziri_images.cli import dev
from ziri_images.cli import entry as cli
from ziri_images.cli import keys as cli_keys
from ziri_images.cli import ledger as cli_ledger
from ziri_images.errors import ApiError
from ziri_images.keys.store import KEY_PATTERN
from ziri_images.keys.store import KeyStore
from ziri_images.keys.store import hash_key
from ziri_images.ledger.records import encode_record

SCRIPT = Path(sys.executable).with_name("ziri-images")


def run(capsys, *argv):
    """Return (exit code, stdout, stderr) of ``ziri-images argv``."""
    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exit:  # argparse: --help, or a wrong command line
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def record_of(keys_path, key_id):
    return next(record for record in read_keys(keys_path) if record["id"] == key_id)


def test_keys_create_prints_the_key_once_and_stores_its_hash(capsys, keys_path, pricing_path):
    code, out, err = run(capsys, "keys", "create", "--user", "carol", "--id", "key_carol",
                         "--daily-spend-limit", "5", "--monthly-spend-limit", "0", "--requests-per-minute", "30",
                         "--max-concurrent-requests", "4", "--expires-at", "2027-01-01",
                         "--allowed-providers", "openai", "--allowed-models", "dall-e-3,gpt-image-1-mini",
                         "--keys-file", keys_path, "--pricing-file", pricing_path)

    assert code == 0
    raw_key = out.strip()
    assert KEY_PATTERN.match(raw_key).group(1) == "carol"
    assert "only time the key is shown" in err and raw_key not in err
    assert raw_key not in keys_path.read_text()
    assert record_of(keys_path, "key_carol") == {
        "id": "key_carol", "user": "carol", "hash": hash_key(raw_key), "status": "active",
        "created_at": record_of(keys_path, "key_carol")["created_at"], "expires_at": "2027-01-01T00:00:00Z",
        "allowed_providers": ["openai"], "allowed_models": ["dall-e-3", "gpt-image-1-mini"],
        "limits": {"daily_spend_limit": 5.0, "requests_per_minute": 30, "max_concurrent_requests": 4},
    }


def test_paths_default_to_the_servers_settings(capsys, keys_path, monkeypatch):
    monkeypatch.setenv("ZIRI_KEYS_FILE", str(keys_path))

    code, out, _ = run(capsys, "keys", "list", "--format", "json")

    assert code == 0
    assert [record["id"] for record in json.loads(out)] == ["key_demo", "key_user", "key_disabled"]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_keys_list_never_shows_keys_or_hashes(capsys, keys_path, fmt):
    code, out, _ = run(capsys, "keys", "list", "--format", fmt, "--keys-file", keys_path)

    assert code == 0
    assert "key_user" in out and "alice" in out and "key_disabled" in out
    assert "sha256" not in out and USER_KEY not in out


def test_keys_list_table_spells_out_defaults(capsys, keys_path):
    _, out, _ = run(capsys, "keys", "list", "--keys-file", keys_path)

    lines = out.splitlines()
    assert lines[0].split() == list(cli_keys.KEY_COLUMNS)
    assert lines[3].split() == ["key_user", "alice", "-", "active", "never", "any", "any", "5.0", "50.0", "-", "-",
                                "-", "-", "-"]


def test_keys_show(capsys, keys_path):
    code, out, _ = run(capsys, "keys", "show", "key_user", "--format", "json", "--keys-file", keys_path)
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == "key_user" and shown["limits"]["daily_spend_limit"] == 5.0
    assert "hash" not in shown

    code, out, _ = run(capsys, "keys", "show", "key_user", "--keys-file", keys_path)
    assert code == 0
    assert {line.split()[0]: line.split()[1] for line in out.splitlines()[2:]}["daily_spend_limit"] == "5.0"
    assert "sha256" not in out


def test_keys_disable_and_enable(capsys, keys_path):
    assert run(capsys, "keys", "disable", "key_user", "--keys-file", keys_path)[0] == 0
    assert record_of(keys_path, "key_user")["status"] == "disabled"
    code, _, err = run(capsys, "keys", "enable", "key_user", "--keys-file", keys_path)
    assert code == 0 and "now active" in err
    assert record_of(keys_path, "key_user")["status"] == "active"


def test_keys_revoke_refuses_the_key_keeping_its_record_and_id(capsys, keys_path):
    store = KeyStore(str(keys_path))
    code, out, err = run(capsys, "keys", "revoke", "key_user", "--keys-file", keys_path)

    assert (code, out) == (0, "") and "key_user (alice) is revoked" in err
    record = record_of(keys_path, "key_user")
    assert record["status"] == "disabled" and record["revoked_at"].endswith("Z")
    assert record["hash"] == hash_key(USER_KEY) and record["limits"]["daily_spend_limit"] == 5.0
    with pytest.raises(ApiError) as refused:
        store.authenticate(USER_KEY, datetime.now(timezone.utc))
    assert refused.value.code == "API_KEY_REVOKED_OR_DISABLED" and refused.value.details["keyId"] == "key_user"
    assert run(capsys, "keys", "enable", "key_user", "--keys-file", keys_path)[0] == 0
    assert "revoked_at" not in record_of(keys_path, "key_user")


def test_keys_delete_removes_the_key_from_the_file(capsys, keys_path):
    store = KeyStore(str(keys_path))
    code, out, err = run(capsys, "keys", "delete", "key_demo", "--keys-file", keys_path)

    assert (code, out) == (0, "") and "deleted key key_demo (user-123)" in err
    assert [record["id"] for record in read_keys(keys_path)] == ["key_user", "key_disabled"]
    with pytest.raises(ApiError) as refused:
        store.authenticate(DEMO_KEY, datetime.now(timezone.utc))
    assert refused.value.code == "API_KEY_INVALID"
    assert run(capsys, "keys", "delete", "key_demo", "--keys-file", keys_path)[0] == 1


def test_keys_rotate_replaces_the_secret(capsys, keys_path):
    code, out, err = run(capsys, "keys", "rotate", "key_user", "--keys-file", keys_path)

    assert code == 0
    new_key = out.strip()
    assert KEY_PATTERN.match(new_key).group(1) == "alice"
    assert record_of(keys_path, "key_user")["hash"] == hash_key(new_key) != hash_key(USER_KEY)
    assert "old key no longer works" in err


def test_keys_rotate_warns_about_a_disabled_key(capsys, keys_path):
    code, _, err = run(capsys, "keys", "rotate", "key_disabled", "--keys-file", keys_path)
    assert code == 0 and "keys enable key_disabled" in err


def test_keys_set_changes_only_what_is_given(capsys, keys_path, pricing_path):
    code, _, err = run(capsys, "keys", "set", "key_user", "--daily-spend-limit", "none", "--requests-per-minute", "12",
                       "--expires-at", "2027-03-01T09:30:00+02:00", "--allowed-models", "dall-e-3,dall-e-4",
                       "--keys-file", keys_path, "--pricing-file", pricing_path)

    assert code == 0
    assert "'dall-e-4' is not in the catalog" in err
    record = record_of(keys_path, "key_user")
    assert record["limits"] == {"monthly_spend_limit": 50.0, "requests_per_minute": 12}
    assert record["expires_at"] == "2027-03-01T07:30:00Z"
    assert record["allowed_models"] == ["dall-e-3", "dall-e-4"]

    assert run(capsys, "keys", "set", "key_user", "--allowed-models", "any", "--expires-at", "never",
               "--keys-file", keys_path)[0] == 0
    record = record_of(keys_path, "key_user")
    assert record["allowed_models"] is None and record["expires_at"] is None
    assert record["limits"] == {"monthly_spend_limit": 50.0, "requests_per_minute": 12}


@pytest.mark.parametrize("argv, code, message", [
    pytest.param([], 2, "required: COMMAND", id="no-command"),
    pytest.param(["keys"], 2, "required: ACTION", id="no-action"),
    pytest.param(["frobnicate"], 2, "invalid choice", id="unknown-command"),
    pytest.param(["keys", "create"], 2, "--user", id="create-without-user"),
    pytest.param(["keys", "create", "--user", "bad user"], 1, "cannot be part of a key", id="bad-user"),
    pytest.param(["keys", "create", "--user", "x", "--id", "key_user"], 1, "already exists", id="duplicate-id"),
    pytest.param(["keys", "show"], 2, "ID", id="show-without-id"),
    pytest.param(["keys", "disable", "key_nobody"], 1, "no key with id 'key_nobody'", id="unknown-id"),
    pytest.param(["keys", "set", "key_user"], 1, "nothing to change", id="set-nothing"),
    pytest.param(["keys", "set", "key_user", "--daily-spend-limit", "-1"], 2, "number >= 0", id="negative-limit"),
    pytest.param(["keys", "set", "key_user", "--requests-per-minute", "1.5"], 2, "number >= 0", id="fractional-rpm"),
    pytest.param(["keys", "set", "key_user", "--expires-at", "soon"], 2, "ISO date", id="bad-expiry"),
    pytest.param(["keys", "set", "key_user", "--allowed-models", ","], 2, "comma-separated", id="empty-list"),
    pytest.param(["report", "--by", "week"], 2, "one or more of key, user, model, day", id="bad-grouping"),
    pytest.param(["report", "--since", "2026-12-01", "--until", "2026-11-01"], 1, "--since must be before",
                 id="backwards-range"),
    pytest.param(["report", "--format", "xml"], 2, "invalid choice", id="bad-format"),
    pytest.param(["pricing"], 2, "required: ACTION", id="pricing-without-action"),
])
def test_misuse_is_refused_with_a_message(capsys, keys_path, tmp_path, argv, code, message):
    before = keys_path.read_bytes()
    options = ["--keys-file", keys_path] if argv[:1] == ["keys"] and len(argv) > 1 else []
    if argv[:1] == ["report"]:
        options = ["--ledger", tmp_path / "ledger.jsonl"]
        (tmp_path / "ledger.jsonl").write_text("")

    exit_code, out, err = run(capsys, *argv, *options)

    assert exit_code == code
    assert out == ""
    assert message in err
    assert keys_path.read_bytes() == before


@pytest.mark.parametrize("argv, message", [
    pytest.param(["keys", "list", "--keys-file", "/nonexistent/keys.json"], "not found", id="missing-key-file"),
    pytest.param(["keys", "create", "--user", "x", "--keys-file", "/nonexistent/keys.json"], "does not exist",
                 id="missing-key-directory"),
    pytest.param(["report", "--ledger", "/nonexistent/ledger.jsonl"], "No such file", id="missing-ledger"),
    pytest.param(["pricing", "check", "--pricing-file", "/nonexistent/pricing.json"], "not found",
                 id="missing-catalog"),
])
def test_missing_files_are_reported(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("ziri-images: error:") and message in err


def command_paths(parser, prefix=()):
    """Yield every command path of the parser (e.g. ('keys', 'create'))."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, subparser in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(subparser, (*prefix, name))


@pytest.mark.parametrize("path", [pytest.param(path, id=" ".join(path)) for path in command_paths(cli.build_parser())])
def test_every_command_has_help(capsys, path):
    code, out, _ = run(capsys, *path, "--help")
    assert code == 0
    aliases = {"usage": "report", "update": "set"}  # 'report' is also 'usage', 'teams set' also 'teams update'
    canonical = [aliases.get(name, name) for name in path]
    assert out.startswith("usage: ziri-images " + " ".join(canonical))


def write_ledger(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode_record(record) for record in records))


def ledger_records():
    records = []
    for number, (key, user, day, cost, images) in enumerate([
        ("key_a", "alice", "01", 0.04, 1), ("key_a", "alice", "02", 0.08, 1), ("key_b", "bob", "02", 0.336, 8),
    ]):
        at = f"2026-11-{day}T10:00:00.000000Z"
        base = {"requestId": f"r{number}", "model": "dall-e-3", "keyId": key, "user": user}
        records += [{"ts": at, "type": "reservation", **base, "amount": cost, "expiresAt": at, "worker": "host:1:0"},
                    {"ts": at.replace("10:00:00", "10:00:09"), "type": "charge", **base, "imagesReturned": images,
                     "cost": cost, "reservedAt": at}]
    return records


def test_report_table(capsys, tmp_path):
    write_ledger(tmp_path / "ledger.jsonl", ledger_records())

    code, out, _ = run(capsys, "report", "--ledger", tmp_path / "ledger.jsonl", "--by", "user,day")

    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["user", "day", "requests", "images", "cost", "expired"],
        ["-----", "----------", "--------", "------", "------", "-------"],
        ["alice", "2026-11-01", "1", "1", "0.0400", "0"],
        ["alice", "2026-11-02", "1", "1", "0.0800", "0"],
        ["bob", "2026-11-02", "1", "8", "0.3360", "0"],
        ["TOTAL", "3", "10", "0.4560", "0"],
    ]


def test_usage_is_report_as_json_and_csv_within_a_range(capsys, tmp_path, monkeypatch):
    write_ledger(tmp_path / "ledger.jsonl", ledger_records())
    monkeypatch.setenv("ZIRI_LEDGER_PATH", str(tmp_path / "ledger.jsonl"))

    code, out, _ = run(capsys, "usage", "--since", "2026-11-02", "--until", "2026-11-03", "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["rows"] == [{"key": "key_a", "requests": 1, "images": 1, "cost": 0.08, "expired": 0},
                                {"key": "key_b", "requests": 1, "images": 8, "cost": 0.336, "expired": 0}]
    assert document["totals"] == {"requests": 2, "images": 9, "cost": 0.416, "expired": 0}
    assert document["since"] == "2026-11-02T00:00:00.000000Z"

    code, out, _ = run(capsys, "report", "--by", "model", "--format", "csv")
    assert code == 0
    assert out.splitlines() == ["model,requests,images,cost,expired", "dall-e-3,3,10,0.456,0"]


def test_report_progress_is_shown_on_request(capsys, tmp_path, monkeypatch):
    write_ledger(tmp_path / "ledger.jsonl", ledger_records())
    monkeypatch.setattr(cli_ledger, "Progress", lambda stream: lambda done, total: stream.write(f"[{done}/{total}]"))

    _, _, err = run(capsys, "report", "--ledger", tmp_path / "ledger.jsonl", "--progress")
    size = (tmp_path / "ledger.jsonl").stat().st_size
    assert f"[{size}/{size}]" in err

    _, _, err = run(capsys, "report", "--ledger", tmp_path / "ledger.jsonl")
    assert err == ""  # stderr is not a terminal under pytest


CATALOG = {"currency": "USD", "providers": {"acme": {"models": {
    "paint-1": {"kind": "image", "source": "https://acme.test/pricing", "as_of": "2026-11-01", "max_images": 4,
                "max_prompt_chars": 1000, "default_quality": "standard", "default_size": "1024x1024",
                "prices": {"standard": {"1024x1024": 0.02, "512x512": 0.01}, "hd": {"1024x1024": 0.04}}},
    "paint-2": {"kind": "image", "max_images": 1, "max_prompt_chars": 1000, "retired": "2026-01",
                "price_dimensions": ["resolution"], "default_resolution": "1k", "prices": {"1k": 0.03, "2k": 0.06},
                "token_prices": {"text_input": 5, "image_input": 8, "image_output": 30}},
    "chat-1": {"kind": "chat"},
}}}}


@pytest.fixture
def catalog_path(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    return path


@pytest.fixture
def today(monkeypatch):
    """Pin the day pricing check counts ages and retirements from."""
    day = {"date": date(2026, 12, 2)}
    monkeypatch.setattr(pricing_check, "utc_today", lambda: day["date"])
    return day


def test_pricing_check_prints_the_catalog_and_warns(capsys, catalog_path, today):
    code, out, err = run(capsys, "pricing", "check", "--pricing-file", catalog_path)

    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        ["provider", "model", "quality", "size", "other", "price", "charged_by", "max_images", "source", "as_of",
         "retired"],
        ["--------", "-------", "--------", "---------", "-------------", "-----", "----------", "----------",
         "-------------------------", "----------", "-------"],
        ["acme", "paint-1", "standard", "1024x1024", "-", "0.02", "image", "4", "https://acme.test/pricing",
         "2026-11-01", "-"],
        ["acme", "paint-1", "standard", "512x512", "-", "0.01", "image", "4", "https://acme.test/pricing",
         "2026-11-01", "-"],
        ["acme", "paint-1", "hd", "1024x1024", "-", "0.04", "image", "4", "https://acme.test/pricing",
         "2026-11-01", "-"],
        ["acme", "paint-2", "-", "-", "resolution=1k", "0.03", "tokens", "1", "-", "-", "2026-01"],
        ["acme", "paint-2", "-", "-", "resolution=2k", "0.06", "tokens", "1", "-", "-", "2026-01"],
    ]
    assert err.splitlines() == [
        "note: acme/paint-2: retired by its provider on 2026-01; refused with MODEL_RETIRED (except where the "
        "provider is reached at a compatible endpoint)",
        "warning: acme/paint-2: no source or as_of: say where its prices come from and when",
        f"{catalog_path}: valid, 2 image models, 5 prices, 1 warning(s)",
    ]
    assert run(capsys, "pricing", "check", "--pricing-file", catalog_path, "--strict")[0] == 1


@pytest.mark.parametrize(
    ("day", "warning"),
    [
        pytest.param(date(2027, 1, 30), None, id="90-days-old"),
        pytest.param(date(2027, 1, 31), "warning: acme/paint-1: figures read 91 days ago (2026-11-01): check them "
                     "against the provider's page, then update as_of", id="91-days-old"),
    ],
)
def test_pricing_check_warns_about_figures_older_than_90_days(capsys, catalog_path, today, day, warning):
    document = json.loads(catalog_path.read_text())
    document["providers"]["acme"]["models"]["paint-2"].update(source="https://acme.test/pricing", as_of="2025-01-01")
    catalog_path.write_text(json.dumps(document))
    today["date"] = day

    code, _, err = run(capsys, "pricing", "check", "--pricing-file", catalog_path, "--strict")

    # paint-2 is retired: its figures no longer change, so their age is not a warning.
    assert [line for line in err.splitlines() if line.startswith("warning")] == ([warning] if warning else [])
    assert code == (1 if warning else 0)


def test_pricing_check_warns_about_a_retirement_to_come_and_a_retired_suggestion(capsys, catalog_path, today):
    document = json.loads(catalog_path.read_text())
    document["providers"]["acme"]["models"]["paint-1"]["retired"] = "2026-12-31"
    document["providers"]["acme"]["image_model_suggestion"] = "paint-2"
    catalog_path.write_text(json.dumps(document))

    _, _, err = run(capsys, "pricing", "check", "--pricing-file", catalog_path)

    assert "warning: acme/paint-1: is to be retired by its provider on 2026-12-31; from that day it is refused " \
           "with MODEL_RETIRED" in err.splitlines()
    assert "warning: acme: image_model_suggestion paint-2 is retired: suggest a current model" in err.splitlines()


def test_the_shipped_catalog_passes_the_strict_check(capsys, today):
    code, _, err = run(capsys, "pricing", "check", "--pricing-file", SHIPPED_PRICING, "--strict")

    assert code == 0, err
    assert err.splitlines()[-1].endswith(" 0 warning(s)")


def test_pricing_check_as_csv_and_json(capsys, catalog_path, monkeypatch):
    monkeypatch.setenv("ZIRI_PRICING_FILE", str(catalog_path))

    code, out, _ = run(capsys, "pricing", "check", "--format", "csv")
    assert code == 0
    assert out.splitlines()[1] == "acme,paint-1,standard,1024x1024,,0.02,image,4,https://acme.test/pricing,2026-11-01,"

    code, out, _ = run(capsys, "pricing", "check", "--format", "json")
    assert json.loads(out)[-1] == {"provider": "acme", "model": "paint-2", "quality": None, "size": None,
                                   "other": "resolution=2k", "price": 0.06, "charged_by": "tokens", "max_images": 1,
                                   "source": None, "as_of": None, "retired": "2026-01"}


def test_pricing_check_cuts_long_cells_in_the_table_only(capsys, catalog_path):
    document = json.loads(catalog_path.read_text())
    long_source = "https://acme.test/pricing/" + "x" * 80
    document["providers"]["acme"]["models"]["paint-1"]["source"] = long_source
    catalog_path.write_text(json.dumps(document))

    _, table, _ = run(capsys, "pricing", "check", "--pricing-file", catalog_path)
    _, csv_text, _ = run(capsys, "pricing", "check", "--pricing-file", catalog_path, "--format", "csv")

    assert f" {long_source[:57]}... " in table and long_source not in table
    assert long_source in csv_text


def test_the_shipped_catalog_is_valid(capsys):
    code, _, err = run(capsys, "pricing", "check", "--pricing-file", SHIPPED_PRICING)
    assert code == 0
    assert err.splitlines()[-1].startswith(f"{SHIPPED_PRICING}: valid, ")


def test_pricing_check_fails_on_an_invalid_catalog(capsys, pricing_path):
    document = json.loads(pricing_path.read_text())
    document["providers"]["openai"]["models"]["dall-e-3"]["prices"]["hd"]["1024x1024"] = -1
    pricing_path.write_text(json.dumps(document))

    code, out, err = run(capsys, "pricing", "check", "--pricing-file", pricing_path)

    assert code == 1 and out == ""
    assert "dall-e-3.prices.hd.1024x1024: price must be a number >= 0" in err


def test_serve_runs_gunicorn_with_the_config(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(dev.os, "execv", lambda path, argv: calls.append((path, argv)))

    assert run(capsys, "serve", "--config", "other.conf.py")[0] == 0
    assert calls == [(sys.executable, [sys.executable, "-m", "gunicorn", "--config", "other.conf.py", "app:app"])]


def test_the_console_script_runs_in_a_subprocess(keys_path, tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ZIRI_", "OPENAI_"))}
    env["ZIRI_KEYS_FILE"] = str(keys_path)

    created = subprocess.run([SCRIPT, "keys", "create", "--user", "gina"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=30, check=False)
    assert created.returncode == 0, created.stderr
    assert record_of(keys_path, read_keys(keys_path)[-1]["id"])["hash"] == hash_key(created.stdout.strip())

    refused = subprocess.run([SCRIPT, "keys", "disable", "key_nobody"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 1
    assert refused.stderr == "ziri-images: error: no key with id 'key_nobody'\n"


def test_pricing_check_online_warns_of_models_the_provider_will_shut_down(capsys, catalog_path, today, tmp_path,
                                                                         monkeypatch, responses_mock):
    providers = tmp_path / "providers.json"
    providers.write_text(json.dumps({"providers": {"acme": {
        "type": "openai", "base_url": "https://api.acme.test/v1", "api_key_env": "ACME_API_KEY"}}}))
    monkeypatch.setenv("ZIRI_PROVIDERS_FILE", str(providers))
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-test-key-0123456789")
    responses_mock.get("https://api.acme.test/v1/models", json={"data": [
        {"id": "paint-1", "shutdown_date": 1798761600}, {"id": "chat-1"}]})

    code, _, err = run(capsys, "pricing", "check", "--pricing-file", catalog_path, "--online", "--strict")

    assert code == 1
    assert ("warning: acme/paint-1: acme will shut it down on 2027-01-01; the catalog says nothing: set retired to "
            "2027-01-01") in err.splitlines()
    assert "sk-acme-test-key" not in err
