"""Shared fixtures: an app built on files under ``tmp_path``, and no real outbound HTTP.

Fixtures (names are stable; other test modules rely on them):

``app`` / ``client``
    ``create_app(app_config)`` with ``TESTING=True``, keys.json, a copy of the shipped
    pricing.json and the ledger under ``tmp_path``, a frozen ``clock``, a non-loopback fake
    OpenAI at ``BASE_URL`` and the provider key ``PROVIDER_KEY``.
``make_app(**overrides)``
    Build another app on the same files with some config values replaced, e.g.
    ``make_app(OPENAI_API_KEY="")``.
``app_config``
    The config dict ``app`` is built from (a fresh dict per test).
``clock``
    A ``FakeClock`` (the ``CLOCK`` config value): call it for "now", ``clock.advance(seconds)``
    or assign ``clock.now`` to move time. With the PostgreSQL store the database's clock (which
    decides expiries and rate windows for every host) follows it: ``database.follow(clock)``.
``keys_path`` / ``add_key``
    keys.json holds ``DEMO_KEY`` (demo), ``USER_KEY`` (id ``key_user``) and ``DISABLED_KEY``.
    ``add_key(limits=..., allowed_models=..., expires_at=...)`` appends a key and returns the raw
    key; the running app picks it up (the key store re-reads the file when it changes). With the
    PostgreSQL store the database is the key store: ``make_app`` and ``add_key`` make its keys
    those of keys.json (``database.load_keys``), and its apps check the key version on every request.
``pricing_path`` / ``ledger_path``
    The copied catalog and the ledger file.
``providers_path``
    A copy of the shipped providers.json. ``app`` gives every provider a fake key: OpenAI at
    ``BASE_URL``, Azure at ``AZURE_ENDPOINT`` (``AZURE_KEY``), xAI at its real URL (``XAI_KEY``),
    Black Forest Labs at ``BFL_URL`` (``BFL_KEY``).
``store_kind`` / ``store_settings``
    The kind of store the app keeps its records in: ``"file"`` unless the test is marked
    ``@pytest.mark.stores()`` (every kind in ``STORE_KINDS``) or ``@pytest.mark.stores("file")``
    (those named), which runs it once per store. A module opts in with ``pytestmark``.
    ``store_settings`` are the config values that select it (``app_config`` includes them).
``another_worker``
    ``another_worker(*records)`` writes records the way another worker on the same store
    would (through a second app's ``store.import_records``); the app under test catches up.
``responses_mock``
    Autouse: a ``responses.RequestsMock(assert_all_requests_are_fired=True)``, so a call to an
    unregistered URL fails (the gateway answers 502) and an unused registration fails the test.
    Tests that need real HTTP (end-to-end against 127.0.0.1) are marked ``@pytest.mark.real_http``.

``NOT_RECORDS`` is a table of ledger lines that are valid JSON (or nearly) but not records, for the
tests that no line of any shape breaks the limits or the report.

``test_database`` / ``database``
    This run's database on the shared PostgreSQL server (tests/database.py), emptied per test.
``shared_stub``
    The local stub (a process) that end-to-end gateways share for the whole run (tests/e2e/conftest.py).
``throwaway_cluster``
    A PostgreSQL server of the test's own (tests/throwaway_cluster.py) for the tests that stop or
    restart it: the shared server is never stopped, restarted or reconfigured.

``slow`` (a marker)
    For runs that need minutes: left out of the README's test command, run by CI, which sets
    ``ZIRI_TEST_ALL=1`` (``run_everything()`` says whether it is set); ``-m slow`` runs them alone.

Plain helpers to import: ``store_records(app)`` (every record, through the app's store: use it
wherever the test is not about the JSONL file itself), ``ledger_lines(app)`` (the file store's
lines), ``key_record(raw_key, ...)``,
``write_keys(path, records)``, ``openai_image_response(...)``, ``strict_json_loads(text)``, ``raw_exchange(url, data)``
(bytes sent as they are, for requests ``requests`` will not send; returns a ``RawResponse``).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import responses
from database import open_test_database
from e2e.conftest import run_stub
from google_credentials import service_account_json
from throwaway_cluster import open_throwaway_cluster

from ziri_images import __version__
from ziri_images import create_app
from ziri_images.config import SETTING_VARIABLES
from ziri_images.keys.store import hash_key

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHIPPED_PRICING = PROJECT_DIR / "pricing.json"
SHIPPED_PROVIDERS = PROJECT_DIR / "providers.json"
SHIPPED_PROVIDER_VARIABLES = tuple(
    entry[field] for entry in json.loads(SHIPPED_PROVIDERS.read_text())["providers"].values()
    for field in entry if field.endswith("_env"))

DEMO_KEY = "ziri-user-123-a1b2c3d4e5f67890"
USER_KEY = "ziri-alice-0123456789abcdef0123456789abcdef"
DISABLED_KEY = "ziri-mallory-fedcba9876543210fedcba9876543210"
PROVIDER_KEY = "sk-test-provider-key-123456"
BASE_URL = "https://api.openai.test/v1"
GENERATIONS_URL = BASE_URL + "/images/generations"
ENDPOINT = "/api/images/generations"
AZURE_KEY = "0123456789abcdef0123456789abcdef"
AZURE_ENDPOINT = "https://ziri-test.openai.azure.com"
XAI_KEY = "xai-test-provider-key-abcdef123456"
GEMINI_KEY = "AIzaTestGeminiKey0123456789abcdef"
GEMINI_URL = "https://gemini.test/v1beta"
BFL_KEY = "bfl-test-provider-key-0123456789"
BFL_URL = "https://api.bfl.test/v1"
VERTEX_URL = "https://vertex.test/v1"
VERTEX_TOKEN_URI = "https://oauth2.test/token"
STABILITY_KEY = "sk-stability-test-key-0123456789"
STABILITY_URL = "https://stability.test"
RECRAFT_KEY = "recraft-test-key-0123456789abcdef"
RECRAFT_URL = "https://recraft.test/v1"
START = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
_REQUEST = '"requestId":"req_foreign","keyId":"key_other","user":"other"'
# Lines another program (or a bug, or a hand edit) could leave in a ledger; none is a record.
NOT_RECORDS = [
    pytest.param(b"[]", id="array"),
    pytest.param(b'"x"', id="string"),
    pytest.param(b"1", id="number"),
    pytest.param(b"null", id="null"),
    pytest.param(b"{}", id="empty-object"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"charge",' + _REQUEST.encode() + b',"cost":NaN}',
                 id="charge-cost-nan"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"charge",' + _REQUEST.encode() + b',"cost":1e999}',
                 id="charge-cost-1e999"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"charge",' + _REQUEST.encode() + b',"cost":"0.04"}',
                 id="charge-cost-a-string"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"charge",' + _REQUEST.encode() + b',"cost":-5}',
                 id="charge-cost-negative"),
    pytest.param(b'{"ts":1764154800,"type":"charge",' + _REQUEST.encode() + b',"cost":0.04}', id="charge-ts-a-number"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"reservation",' + _REQUEST.encode()
                 + b',"amount":0.04,"worker":"elsewhere:1:0"}', id="reservation-without-expiresAt"),
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"reservation",' + _REQUEST.encode()
                 + b',"amount":0.04,"expiresAt":"soon","worker":"elsewhere:1:0"}', id="reservation-bad-expiresAt"),
    # A valid record, but no process can have its pid: asking the kernel about it must not fail the request.
    pytest.param(b'{"ts":"2026-11-26T11:00:00.000000Z","type":"reservation",' + _REQUEST.encode()
                 + b',"amount":0.04,"expiresAt":"2026-11-26T12:04:05.000000Z","worker":"'
                 + socket.gethostname().encode() + b':99999999999999999999:0"}', id="reservation-pid-too-large"),
]
# The stores a test marked ``@pytest.mark.stores()`` runs against.
STORE_KINDS = ("file", "postgres")
# How many tests marked ``slow`` this run leaves out.
SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, config):
    """Add one line per reason: how many tests were skipped, and why (CI requires what they need instead)."""
    reasons = Counter(skip_reason_of(report) for report in terminalreporter.stats.get("skipped", []))
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count} test(s) skipped: {reason}")
    if config.stash.get(SLOW_LEFT_OUT, 0):
        terminalreporter.write_line(f"{config.stash[SLOW_LEFT_OUT]} slow test(s) deselected: "
                                    "ZIRI_TEST_ALL=1 runs them (.ci/run sets it)")


def skip_reason_of(report):
    if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_configure(config):
    config.addinivalue_line("markers", "real_http: let requests reach real sockets (no responses mock)")
    config.addinivalue_line("markers", "stores(*kinds): run the test once per store kind (default: every kind)")
    config.addinivalue_line("markers", "slow: a run that needs minutes; left out unless ZIRI_TEST_ALL=1 (CI sets it)"
                                       " or -m chooses the markers")


def run_everything():
    """Return True when the whole suite runs, the slow tests and the full fuzzing runs too (``.ci/run``)."""
    return os.environ.get("ZIRI_TEST_ALL", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    """Leave out the tests marked ``slow`` unless ZIRI_TEST_ALL is set or ``-m`` says which to run."""
    if run_everything() or config.option.markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
    config.stash[SLOW_LEFT_OUT] = len(slow)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("stores")
    if marker is not None and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", marker.args or STORE_KINDS, indirect=True)


class FakeClock:
    """A settable clock for the ``CLOCK`` config value: ``clock()`` returns ``clock.now``.

    ``followers`` are called with every new time: a test database's clock follows this one.
    """

    def __init__(self, now=START):
        self.followers = []
        self.now = now

    @property
    def now(self):
        return self._now

    @now.setter
    def now(self, moment):
        self._now = moment
        for follow in self.followers:
            follow(moment)

    def __call__(self):
        return self._now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)
        return self.now


ANY = re.compile(r".*")


def exact_headers(credential):
    """Return every header the gateway sends: its one credential header and nothing of the client's."""
    return {
        **credential,
        "Content-Type": "application/json",
        "User-Agent": f"ziri-images/{__version__}",
        "X-Client-Request-Id": re.compile(r"req_[0-9a-f]{32}\Z"),
        "Content-Length": re.compile(r"\d+\Z"),
        "Accept": ANY,
        "Accept-Encoding": ANY,
        "Connection": ANY,
    }


def key_record(raw_key, *, key_id, user, status="active", demo=False, expires_at=None, limits=None,
               allowed_providers=None, allowed_models=None):
    """Return a keys.json entry for ``raw_key`` (stored as its hash)."""
    record = {"id": key_id, "user": user, "hash": hash_key(raw_key), "status": status, "demo": demo}
    if expires_at is not None:
        record["expires_at"] = expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
    if limits is not None:
        record["limits"] = limits
    if allowed_providers is not None:
        record["allowed_providers"] = list(allowed_providers)
    if allowed_models is not None:
        record["allowed_models"] = list(allowed_models)
    return record


def write_keys(path, records, teams=None):
    """Write ``{"keys": records}`` (and ``teams``) to ``path``; move its mtime forward so a reload is noticed."""
    path = Path(path)
    previous = path.stat().st_mtime_ns if path.exists() else 0
    document = {"keys": records} if teams is None else {"teams": teams, "keys": records}
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    # Two writes within the filesystem's timestamp granularity would otherwise look unchanged.
    mtime = max(previous + 1_000_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(mtime, mtime))


def read_keys(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["keys"]


def store_records(app):
    """Return every record the app's store holds, oldest first, as dicts (whichever the store)."""
    return list(app.extensions["ziri_images"].store.records())


def ledger_lines(app):
    """Return the app's ledger records, one dict per line (the file store's JSONL file)."""
    path = Path(app.config["LEDGER_PATH"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_lines(path, *entries):
    """Append records to the JSONL ledger the way a worker writes them (compact JSON, ts first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        file.writelines(json.dumps(entry, separators=(",", ":")) + "\n" for entry in entries)


def fmt(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reservation_record(name, amount, at, worker, request_id="req_written", ttl_seconds=245):
    """Return a reservation record as another worker would have written it."""
    return {
        "ts": fmt(at), "type": "reservation", "requestId": request_id, "provider": "openai",
        "model": "dall-e-3", "quality": "standard", "size": "1024x1024", "imagesRequested": 1,
        "pricePerImage": amount, "currency": "USD", "keyId": f"key_{name}", "user": name, "amount": amount,
        "expiresAt": fmt(at + timedelta(seconds=ttl_seconds)), "worker": worker,
    }


def charge_record(name, cost, at, request_id):
    return {"ts": fmt(at), "type": "charge", "requestId": request_id, "keyId": f"key_{name}", "user": name,
            "status": "succeeded", "cost": cost, "reservedAt": fmt(at), "reserved": cost}


def strict_json_loads(text):
    """Parse RFC 8259 JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are refused, as jq and JavaScript do."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def package_modules_loaded_by(module):
    """Return the names of the package's modules that importing ``module`` loads, in a fresh interpreter.

    A fresh one: the test process has imported every module of the package already.
    """
    program = (f"import sys, {module}; "
               "print(*sorted(name for name in sys.modules if name.partition('.')[0] == 'ziri_images'))")
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout.split()


def openai_image_response(n=1, *, revised_prompt=None, **extra):
    """Return an OpenAI-shaped images response body with ``n`` URL images."""
    data = []
    for index in range(n):
        item = {"url": f"https://images.openai.test/img-{index}.png"}
        if revised_prompt is not None:
            item["revised_prompt"] = revised_prompt
        data.append(item)
    return {"created": 1764158400, "data": data, **extra}


@dataclass
class RawResponse:
    """An HTTP response as it came off the wire: status, lower-cased headers, body."""

    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw_exchange(url, data, timeout=15):
    """Send ``data`` (bytes, sent as is) to ``url``'s host and port; return the RawResponse.

    For what ``requests`` refuses to send: malformed request lines, oversized headers, bad framing.
    Reads until the announced Content-Length has arrived, or the server closes.
    """
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while not _complete(received) and (chunk := sock.recv(65536)):
            received += chunk
    return parse_response(received)


def _complete(received):
    head, separator, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(separator) and length is not None and len(body) >= int(length.group(1))


def parse_response(received):
    """Return the RawResponse of the bytes of one complete HTTP/1.1 response."""
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch):
    """Keep the developer's ZIRI_* variables, and those the shipped providers.json names, out of every test."""
    for env_name in (*SETTING_VARIABLES, *SHIPPED_PROVIDER_VARIABLES):
        monkeypatch.delenv(env_name, raising=False)


@pytest.fixture(autouse=True)
def responses_mock(request):
    """Intercept all ``requests`` traffic; unregistered URLs fail, unused registrations fail."""
    if request.node.get_closest_marker("real_http"):
        yield None
        return
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def keys_path(tmp_path):
    path = tmp_path / "keys.json"
    write_keys(path, [
        key_record(DEMO_KEY, key_id="key_demo", user="user-123", demo=True),
        key_record(USER_KEY, key_id="key_user", user="alice",
                   limits={"daily_spend_limit": 5.0, "monthly_spend_limit": 50.0}),
        key_record(DISABLED_KEY, key_id="key_disabled", user="mallory", status="disabled"),
    ])
    return path


@pytest.fixture
def add_key(request, keys_path, store_kind):
    """Return ``add_key(raw_key=None, **key_record options) -> raw key`` appending to keys.json.

    With the PostgreSQL store the database's keys follow the file (the key store is the database).
    """
    counter = iter(range(1, 1000))

    def add(raw_key=None, *, key_id=None, user=None, **options):
        number = next(counter)
        raw_key = raw_key or f"ziri-extra{number}-{number:032x}"
        record = key_record(raw_key, key_id=key_id or f"key_extra{number}", user=user or f"extra{number}", **options)
        write_keys(keys_path, read_keys(keys_path) + [record])
        if store_kind == "postgres":
            request.getfixturevalue("database").load_keys(keys_path)
        return raw_key

    return add


@pytest.fixture
def pricing_path(tmp_path):
    path = tmp_path / "pricing.json"
    shutil.copyfile(SHIPPED_PRICING, path)
    return path


@pytest.fixture
def providers_path(tmp_path):
    path = tmp_path / "providers.json"
    shutil.copyfile(SHIPPED_PROVIDERS, path)
    return path


@pytest.fixture
def ledger_path(tmp_path):
    return tmp_path / "var" / "ledger.jsonl"


@pytest.fixture
def store_kind(request):
    """Return the kind of store under test: "file", or the kind a ``stores`` mark parametrizes."""
    return getattr(request, "param", "file")


@pytest.fixture
def store_settings(request, store_kind, tmp_path):
    """Return the config values that select the store under test (the file store uses LEDGER_PATH).

    "postgres" uses this run's test database (emptied for the test; the tests skip, or fail with
    ZIRI_TEST_REQUIRE_DATABASE, when no server is reachable) and a spool under ``tmp_path``.
    """
    if store_kind == "file":
        return {}
    if store_kind == "postgres":
        database = request.getfixturevalue("database")
        database.follow(request.getfixturevalue("clock"))  # the database decides on the test's time
        # The database is the key store: every app sees keys.json's keys (make_app loads them) at once.
        return {"DATABASE_URL": database.url, "SPOOL_DIR": str(tmp_path / "spool"), "KEYS_REFRESH_SECONDS": 0}
    raise ValueError(f"unknown store kind {store_kind!r}")


@pytest.fixture
def app_config(keys_path, pricing_path, providers_path, ledger_path, clock, store_settings):
    return {
        "TESTING": True,
        "KEYS_FILE": str(keys_path),
        "PRICING_FILE": str(pricing_path),
        "PROVIDERS_FILE": str(providers_path),
        "LEDGER_PATH": str(ledger_path),
        # fsync is exercised by the ledger tests; here it would only slow the suite down.
        "LEDGER_DURABLE": False,
        "OPENAI_BASE_URL": BASE_URL,
        "OPENAI_API_KEY": PROVIDER_KEY,
        # Config values named like the variables providers.json names win over the environment.
        "AZURE_OPENAI_ENDPOINT": AZURE_ENDPOINT,
        "AZURE_OPENAI_API_KEY": AZURE_KEY,
        "XAI_BASE_URL": "",
        "XAI_API_KEY": XAI_KEY,
        "GEMINI_BASE_URL": GEMINI_URL,
        "GEMINI_API_KEY": GEMINI_KEY,
        "BFL_BASE_URL": BFL_URL,
        "BFL_API_KEY": BFL_KEY,
        "VERTEX_BASE_URL": VERTEX_URL,
        "VERTEX_CREDENTIALS_JSON": service_account_json(VERTEX_TOKEN_URI),
        "VERTEX_PROJECT": "ziri-test-project",
        "VERTEX_LOCATION": "us-central1",
        "STABILITY_BASE_URL": STABILITY_URL,
        "STABILITY_API_KEY": STABILITY_KEY,
        "RECRAFT_BASE_URL": RECRAFT_URL,
        "RECRAFT_API_KEY": RECRAFT_KEY,
        "UPSTREAM_CONNECT_TIMEOUT": 2.0,
        "UPSTREAM_READ_TIMEOUT": 30.0,
        "CLOCK": clock,
        **store_settings,
    }


@pytest.fixture
def make_app(request, app_config, store_kind):
    made = []

    def make(**overrides):
        config = {**app_config, **overrides}
        if store_kind == "postgres" and Path(config["KEYS_FILE"]).exists():
            database = request.getfixturevalue("database")
            if config.get("DATABASE_URL") == database.url:
                # With a database, its tables are the key store: they hold keys.json's keys, as an import would.
                database.load_keys(config["KEYS_FILE"])
        app = create_app(config)
        made.append(app)
        return app

    yield make
    for app in made:  # the PostgreSQL store's pools and lease threads end with the test
        app.extensions["ziri_images_refusals"].close()  # its last counts written while the store is open
        app.extensions["ziri_images"].store.close()


@pytest.fixture
def another_worker(request, make_app, store_kind):
    """Return ``write(*records)``: append records as another worker on the same store would.

    On PostgreSQL a worker is alive while its lease is: the workers of the reservations written
    get a live lease, as a running process would keep (a dead one is a file-store test: its pid).
    """
    writer = []

    def write(*records):
        if not writer:
            writer.append(make_app())
        if store_kind == "postgres":
            # The leases first: the writer's own sweep may run as soon as the records are in, and
            # would take a reservation without a live lease for a dead process's.
            workers = {record["worker"] for record in records if record.get("type") == "reservation"}
            request.getfixturevalue("database").keep_alive(workers)
        written, skipped = writer[0].extensions["ziri_images"].store.import_records(records)
        assert (written, skipped) == (len(records), 0), "a test record was refused"

    return write


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def test_database():
    """This run's own database on the test server (see tests/database.py); dropped at the end."""
    database = open_test_database()
    yield database
    database.drop()


@pytest.fixture
def database(test_database):
    """The run's database, emptied for this test."""
    test_database.empty()
    return test_database


@pytest.fixture
def throwaway_cluster():
    """A PostgreSQL server of this test's own, to stop or restart (see tests/throwaway_cluster.py)."""
    cluster = open_throwaway_cluster()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def shared_stub(tmp_path_factory):
    """The stub the end-to-end gateways share when their test does not name one (tests/e2e/conftest.py)."""
    yield from run_stub(tmp_path_factory.mktemp("shared-stub"))
