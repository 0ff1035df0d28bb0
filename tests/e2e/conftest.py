"""Real processes on 127.0.0.1: the local stub upstream and the gateway under gunicorn.

``stub`` / ``shared_stub``
    ``python -m ziri_images.cli stub`` (werkzeug, threaded) on a free port. A test that names
    ``stub`` gets one of its own, so its ``/stats`` (``peakInFlight``) and its output describe
    that test alone, and its gateways use it; the other tests' gateways share one stub for the
    whole run (``shared_stub``, in tests/conftest.py so that every module that imports these
    fixtures finds it: a stub costs a Python start-up, a third of a second).
``worker_class``
    Parametrized: each test runs under gunicorn's ``gthread`` worker and, when gevent is
    installed, its ``gevent`` worker (chosen with ``GUNICORN_WORKER_CLASS``).
``store``
    The store the gateways use: ``"file"`` here; a module that runs on both parametrizes it
    with ``STORES`` (``"postgres"`` uses the run's test database, emptied for the test, with
    ``LEASE_SECONDS`` leases so a killed worker's lease lapses quickly).
``start_gateway(keys, workers=4, threads=4, extra_env=None, directory=None, teams=None)``
    The gateway under gunicorn with the project's ``gunicorn.conf.py`` (preload_app),
    keys/pricing/ledger (and the PostgreSQL store's spool) under ``directory`` (default
    ``tmp_path``: a second host gets a directory of its own) and the stub (above) as OpenAI, the
    Gemini API and Vertex AI (``google_environment``: a test service account whose token
    endpoint is the stub's). ``keys``
    maps a user name to extra keys.json fields; ``raw_key(name)`` is that user's key; ``teams``
    is keys.json's ``teams`` object (on PostgreSQL the database's keys and teams are made those
    of that keys.json: ``database.load_keys``).
    ``extra_env`` adds or replaces environment variables (e.g. shorter timeouts, another
    upstream). Returns a ``Gateway``, whose ``ledger()`` reads the records from the store.

Every process is started in its own session and killed with its process group when the test
ends (``Process.stop()`` is the graceful stop, for a test that checks what happens on the way
out); start-up and every request are bounded in time. Tests using these
fixtures need ``@pytest.mark.real_http`` so the suite's ``responses`` mock stays out of the way.
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from google_credentials import service_account_json

from ziri_images.keys.store import hash_key

PROJECT_DIR = Path(__file__).resolve().parents[2]
START_SECONDS = 15
STOP_SECONDS = 10
STUB_API_KEY = "sk-local-stub-not-a-real-key"
STUB_GEMINI_KEY = "AIzaE2eStubGeminiKey0123456789"
VERTEX_PROJECT = "ziri-e2e-project"
VERTEX_LOCATION = "us-central1"
# Settings the gateway reads from the environment: the developer's values must not leak in.
ENV_PREFIXES = ("ZIRI_", "OPENAI_", "GUNICORN_", "GEMINI_", "VERTEX_", "GOOGLE_")
ENV_NAMES = ("PORT", "HOST", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "DATABASE_URL")
# GUNICORN_WORKER_CLASS -> the ziri_images.server.workers class gunicorn reports using.
WORKER_CLASS_NAMES = {"gevent": "GeventWorker", "gthread": "ThreadWorker", "sync": "SyncWorker"}


def raw_key(name):
    """Return the raw API key of the test user ``name``."""
    return f"ziri-{name}-{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**settings):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(ENV_PREFIXES) and name not in ENV_NAMES}
    env.update({name: str(value) for name, value in settings.items()})
    return env


class Process:
    """A child process in its own session, its output in a log file."""

    def __init__(self, command, log_path, env, cwd=PROJECT_DIR):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                          start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_until(self, condition, what, seconds=START_SECONDS):
        deadline = time.monotonic() + seconds
        while not condition():
            if self.popen.poll() is not None:
                raise AssertionError(f"{what}: process exited with {self.popen.returncode}\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: timed out after {seconds}s\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self, sig=signal.SIGINT):
        """Ask the process to stop; kill its whole process group if it does not, or left children."""
        if self.popen.poll() is None:
            # Only the master: gunicorn signals its workers itself, and a second signal arriving
            # while a worker is exiting can leave it hanging.
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the session's leftovers (e.g. orphaned workers)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=STOP_SECONDS)

    def kill(self):
        """End the process and everything it started at once (SIGKILL to its process group).

        For the end of a test: nothing is asked of the processes any more, and a graceful stop costs
        every gateway one to three seconds (each process tearing down its interpreter), or the whole
        STOP_SECONDS when a worker hangs on its way out.
        """
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=STOP_SECONDS)


def google_environment(url):
    """Return the variables that make the server at ``url`` the Gemini API and Vertex AI, its ``/token`` Vertex's
    token endpoint."""
    return {"GEMINI_BASE_URL": f"{url}/v1beta", "GEMINI_API_KEY": STUB_GEMINI_KEY, "VERTEX_BASE_URL": f"{url}/v1",
            "VERTEX_CREDENTIALS_JSON": service_account_json(f"{url}/token"), "VERTEX_PROJECT": VERTEX_PROJECT,
            "VERTEX_LOCATION": VERTEX_LOCATION}


def answers(url):
    def check():
        try:
            return requests.get(url, timeout=0.5).status_code == 200
        except requests.RequestException:
            return False
    return check


class Stub:
    def __init__(self, url, process):
        self.url = url
        self.process = process

    def stats(self):
        return requests.get(f"{self.url}/stats", timeout=5).json()


class Gateway:
    """A running gateway: its URL, ledger (or database) and gunicorn processes."""

    def __init__(self, url, ledger_path, process, worker_pids, database=None):
        self.url = url
        self.ledger_path = ledger_path
        self.process = process
        self.worker_pids = worker_pids
        self.database = database

    def generate(self, name, prompt="a red fox", timeout=15, **body):
        body = {"provider": "openai", "model": "dall-e-3", "prompt": prompt, **body}
        return requests.post(f"{self.url}/api/images/generations", json=body,
                             headers={"X-API-Key": raw_key(name)}, timeout=(2, timeout))

    def usage(self, name):
        response = requests.get(f"{self.url}/api/me/usage", headers={"X-API-Key": raw_key(name)}, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def ledger(self):
        """Return every ledger record (in the order written); fail on a torn or unparsable line."""
        if self.database is not None:
            return self.database.records()
        text = self.ledger_path.read_text(encoding="utf-8") if self.ledger_path.exists() else ""
        assert text == "" or text.endswith("\n"), "the ledger ends with a partial line"
        return [json.loads(line) for line in text.splitlines()]

    def records(self, kind, name=None):
        return [r for r in self.ledger() if r["type"] == kind and (name is None or r["keyId"] == f"key_{name}")]


def run_stub(directory):
    """Start the stub on a free port, its output in ``directory``; yield it, then kill it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = Process([sys.executable, "-m", "ziri_images.cli", "stub", "--host", "127.0.0.1", "--port", str(port)],
                      directory / "stub.log", clean_environment())
    try:
        process.wait_until(answers(f"{url}/stats"), "stub start-up")
        yield Stub(url, process)
    finally:
        process.kill()


@pytest.fixture
def stub(tmp_path):
    yield from run_stub(tmp_path)


@pytest.fixture(params=[
    pytest.param("gthread", id="gthread"),
    pytest.param("gevent", id="gevent", marks=pytest.mark.skipif(
        importlib.util.find_spec("gevent") is None, reason="gevent is not installed")),
])
def worker_class(request):
    return request.param


# The limits and streaming matrices run gevent (the default) on both stores and gthread on the file
# store everywhere; gthread on PostgreSQL, its fourth corner, in CI (``slow``: ZIRI_TEST_ALL=1).
SLOW_CORNER = {"worker_class": "gthread", "store": "postgres"}
SLOW_CORNER_MODULES = {"test_limits_e2e.py", "test_streaming_e2e.py"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the matrices' fourth corner ``slow`` before the root conftest leaves the slow tests out."""
    for item in items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        if item.path.name in SLOW_CORNER_MODULES and all(params.get(k) == v for k, v in SLOW_CORNER.items()):
            item.add_marker(pytest.mark.slow)


# The stores an end-to-end module may run on: ``@pytest.fixture(params=STORES)`` named ``store``.
STORES = [pytest.param("file", id="file"), pytest.param("postgres", id="postgres")]
# Short leases for the PostgreSQL gateways: a killed worker's reservations are settled within seconds.
LEASE_SECONDS = 2


@pytest.fixture
def store():
    return "file"


def store_environment(request, store, directory):
    """Return (environment, test database or None) that make a gateway use ``store``."""
    if store != "postgres":
        return {}, None
    database = request.getfixturevalue("database")
    return {"ZIRI_DATABASE_URL": database.url, "ZIRI_SPOOL_DIR": directory / "var" / "spool",
            "ZIRI_DATABASE_LEASE_SECONDS": LEASE_SECONDS, "ZIRI_DATABASE_TIMEOUT": 3}, database


@pytest.fixture
def start_gateway(request, tmp_path, tmp_path_factory, worker_class, store):
    # The test's own stub when it names one (to read its /stats or its output), else the run's.
    stub = request.getfixturevalue("stub" if "stub" in request.fixturenames else "shared_stub")
    started = []

    def start(keys, workers=4, threads=4, extra_env=None, directory=None, teams=None):
        directory = tmp_path if directory is None else directory
        directory.mkdir(parents=True, exist_ok=True)
        store_env, database = store_environment(request, store, directory)
        keys_path = directory / "keys.json"
        keys_path.write_text(json.dumps({"teams": teams or {}, "keys": [
            {"id": f"key_{name}", "user": name, "hash": hash_key(raw_key(name)), **fields}
            for name, fields in keys.items()
        ]}))
        if database is not None:
            database.load_keys(keys_path)  # the database is the key store, as a release step's import makes it
        pricing_path = directory / "pricing.json"
        shutil.copyfile(PROJECT_DIR / "pricing.json", pricing_path)
        ledger_path = directory / "var" / "ledger.jsonl"
        port = free_port()
        env = clean_environment(
            HOST="127.0.0.1", PORT=port, WEB_CONCURRENCY=workers, GUNICORN_THREADS=threads,
            GUNICORN_WORKER_CLASS=worker_class,
            ZIRI_KEYS_FILE=keys_path, ZIRI_PRICING_FILE=pricing_path, ZIRI_LEDGER_PATH=ledger_path,
            OPENAI_BASE_URL=f"{stub.url}/v1", OPENAI_API_KEY=STUB_API_KEY, **google_environment(stub.url),
            ZIRI_UPSTREAM_READ_TIMEOUT=10, ZIRI_LOG_LEVEL="WARNING",
            # Temporary files (gunicorn.conf.py's metrics directory) in pytest's own temporary tree,
            # outside tmp_path (the fault suites read every file there): a killed master leaves them.
            TMPDIR=tmp_path_factory.mktemp("gunicorn-tmp"),
        )
        env.update({name: str(value) for name, value in {**store_env, **(extra_env or {})}.items()})
        command = [sys.executable, "-m", "gunicorn", "--config", str(PROJECT_DIR / "gunicorn.conf.py"), "app:app"]
        process = Process(command, tmp_path / f"gunicorn-{len(started)}.log", env)
        started.append(process)

        def booted():
            return re.findall(r"Booting worker with pid: (\d+)", process.log())

        url = f"http://127.0.0.1:{port}"
        process.wait_until(lambda: len(booted()) >= workers and answers(f"{url}/health")(), "gateway start-up")
        # The class really in use (gunicorn.conf.py chooses ziri_images.server.workers' from GUNICORN_WORKER_CLASS).
        in_use = WORKER_CLASS_NAMES[worker_class]
        assert re.search(rf"Using worker: {in_use}\b", process.log()), process.log()[-3000:]
        return Gateway(url, ledger_path, process, [int(pid) for pid in booted()], database)

    yield start
    for process in started:
        process.kill()
