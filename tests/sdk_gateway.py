"""The gateway the SDK tests drive: gunicorn with the project's settings and the stub as OpenAI.

``running_gateway(directory, keys=())`` starts both on free loopback ports (keys, pricing and the
ledger under ``directory``) and yields a ``Gateway``: its ``url``, ``stub_url``, ``env``,
``cli(*argv)`` (the console script on the same files, e.g. to create keys), ``ledger()`` and
``client(key)`` (OpenAI's Python client). The Python, the npm SDK and the JavaScript client's
tests share it, so all meet the same server.
Both processes are stopped (then killed, by process group) when the block ends.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import openai

PROJECT_DIR = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("ziri-images")
GATEWAY_READ_TIMEOUT = 1.5  # seconds the gateway waits for the stub in these tests
START_SECONDS = 20


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


class Service:
    """A child process in its own session (so its workers go with it), its output in a file."""

    def __init__(self, command, env, log_path):
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.popen = subprocess.Popen(command, env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def wait_for(self, url):
        deadline = time.monotonic() + START_SECONDS
        while not answers(url):
            assert self.popen.poll() is None, self.log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, f"{url} did not answer\n{self.log_path.read_text()[-2000:]}"
            time.sleep(0.05)

    def stop(self):
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)  # gunicorn's quick shutdown
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


class Gateway:
    def __init__(self, url, stub_url, env, ledger_path):
        self.url = url
        self.stub_url = stub_url
        self.env = env
        self.ledger_path = ledger_path

    def cli(self, *argv):
        """Run the console script with the gateway's settings; return its stdout."""
        done = subprocess.run([SCRIPT, *argv], env=self.env, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def ledger(self):
        with open(self.ledger_path, encoding="utf-8") as file:
            return [json.loads(line) for line in file]

    def client(self, api_key, **options):
        """Return OpenAI's client for the gateway; use it in a ``with`` block so its connections close."""
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **options)


@contextlib.contextmanager
def running_gateway(directory, keys=()):
    """Run gunicorn with the project's gunicorn.conf.py, and the stub started by the console script.

    ``keys`` are keys.json's records to start with (conftest's ``key_record``); more can be made with ``cli``.
    """
    shutil.copyfile(PROJECT_DIR / "pricing.json", directory / "pricing.json")
    (directory / "keys.json").write_text(json.dumps({"keys": list(keys)}))
    stub_port, gateway_port = free_port(), free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("ZIRI_", "OPENAI_", "GEMINI_", "GOOGLE_", "VERTEX_", "GUNICORN_", "PORT", "HOST",
                                    "WEB_CONCURRENCY"))}
    # The worker class is gunicorn.conf.py's own (what production runs).
    env.update(HOST="127.0.0.1", PORT=str(gateway_port), WEB_CONCURRENCY="1",
               ZIRI_KEYS_FILE=str(directory / "keys.json"), ZIRI_PRICING_FILE=str(directory / "pricing.json"),
               ZIRI_LEDGER_PATH=str(directory / "ledger.jsonl"), ZIRI_LEDGER_DURABLE="false", ZIRI_LOG_LEVEL="WARNING",
               ZIRI_UPSTREAM_READ_TIMEOUT=str(GATEWAY_READ_TIMEOUT),
               OPENAI_BASE_URL=f"http://127.0.0.1:{stub_port}/v1", OPENAI_API_KEY="sk-local-stub-not-a-real-key",
               GEMINI_BASE_URL=f"http://127.0.0.1:{stub_port}/v1beta", GEMINI_API_KEY="local-stub-gemini-key")
    stub = Service([SCRIPT, "stub", "--port", str(stub_port)], env, directory / "stub.log")
    server = None
    try:
        stub.wait_for(f"http://127.0.0.1:{stub_port}/stats")
        server = Service([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:app"], env,
                         directory / "gunicorn.log")
        server.wait_for(f"http://127.0.0.1:{gateway_port}/ready")
        yield Gateway(f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{stub_port}", env,
                      directory / "ledger.jsonl")
    finally:
        if server is not None:
            server.stop()
        stub.stop()


def new_records(gateway, before, kind, count, seconds=5):
    """Wait for ``count`` records of ``kind`` after the first ``before`` ledger lines; return them."""
    deadline = time.monotonic() + seconds
    while True:
        records = [record for record in gateway.ledger()[before:] if record["type"] == kind]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def charges_of(gateway, before, request_id):
    return [record for record in gateway.ledger()[before:]
            if record["type"] == "charge" and record["requestId"] == request_id]
