"""Start what the load is sent to: the upstream, the bare forwarder and the gateway, with their keys."""

import hashlib
import json
import os
import subprocess
import time
import urllib.request

from bench.load import BODY
from bench.load import CLIENT_TIMEOUT
from bench.load import SLOW_SECONDS
from bench.processes import PROJECT_DIR
from bench.processes import PYTHON
from bench.processes import free_port
from bench.processes import group_cpu_seconds
from bench.processes import group_pids
from bench.processes import wait_until_answers

UPSTREAM_KEY = "sk-bench-upstream"
KEY_USERS = ("bench", "alice", "bob", "carol")
# Generous on purpose: every limit check runs, none refuses.
# The largest limits a key may have (ziri_images.keys.LIMIT_MAXIMUMS), far above what any run reaches.
GENEROUS_LIMITS = {"daily_spend_limit": 1_000_000_000, "monthly_spend_limit": 1_000_000_000,
                   "requests_per_minute": 1_000_000, "max_concurrent_requests": 100_000}


def raw_key(user):
    """Return the gateway key a benchmark gives ``user`` (derived from the name: the same every run)."""
    return f"ziri-{user}-{hashlib.sha256(user.encode()).hexdigest()[:32]}"


def key_entry(user, limits):
    """Return the keys.json entry of ``user``'s key with ``limits``."""
    return {"id": f"key_{user}", "user": user, "status": "active", "demo": False,
            "hash": "sha256:" + hashlib.sha256(raw_key(user).encode()).hexdigest(), "limits": limits}


def http_json(url, method="GET", timeout=5):
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


class Server:
    """One measured target: where to send the load and which process group serves it."""

    def __init__(self, name, url, process, api_key=None):
        self.name = name
        self.url = url
        self.process = process
        self.api_key = api_key

    def cpu(self):
        return group_cpu_seconds(self.process.pid)


class Servers:
    """Start the servers of one run in ``work_dir`` (its keys.json, ledgers and spool) under ``children``."""

    def __init__(self, work_dir, children):
        self.work_dir = work_dir
        self.log_dir = children.log_dir
        self.children = children
        self.raw_keys = {user: raw_key(user) for user in KEY_USERS}
        self.keys_path = os.path.join(work_dir, "keys.json")
        with open(self.keys_path, "w") as file:
            json.dump({"keys": [key_entry(user, GENEROUS_LIMITS) for user in KEY_USERS]}, file)

    def start_upstream(self):
        port = free_port()
        process = self.children.start("upstream", [PYTHON, "-m", "bench.upstream", "--port", str(port)])
        self.upstream_url = f"http://127.0.0.1:{port}"
        wait_until_answers(self.children, process, f"{self.upstream_url}/stats", 10)
        return Server("direct", f"{self.upstream_url}/v1/images/generations", process)

    def upstream_stats(self, reset=False):
        return http_json(f"{self.upstream_url}/stats" + ("/reset" if reset else ""), "POST" if reset else "GET")

    def drain_upstream(self):
        """Wait until the upstream holds no request (at most a slow request and a timeout); zero its counters."""
        deadline = time.monotonic() + SLOW_SECONDS + CLIENT_TIMEOUT
        while self.upstream_stats()["inFlight"] and time.monotonic() < deadline:
            time.sleep(0.1)
        self.upstream_stats(reset=True)

    def gunicorn_env(self, port, **extra):
        env = {name: value for name, value in os.environ.items() if not name.startswith(("ZIRI_", "OPENAI_"))}
        env.update(HOST="127.0.0.1", PORT=str(port), OPENAI_BASE_URL=f"{self.upstream_url}/v1",
                   OPENAI_API_KEY=UPSTREAM_KEY, **extra)
        return env

    def start_gunicorn(self, name, app, env_extra=None):
        """Start ``app`` under gunicorn with the project's gunicorn.conf.py; return (process, port)."""
        port = free_port()
        command = [PYTHON, "-m", "gunicorn", "--config", os.path.join(PROJECT_DIR, "gunicorn.conf.py"), app]
        return self.children.start(name, command, env=self.gunicorn_env(port, **(env_extra or {}))), port

    def start_forwarder(self):
        process, port = self.start_gunicorn("forwarder", "bench.forwarder:app")
        url = f"http://127.0.0.1:{port}/api/images/generations"
        # The forwarder has no /health: a POST through it to the upstream is its readiness check.
        deadline = time.monotonic() + 20
        while True:
            try:
                request = urllib.request.Request(url, data=json.dumps(BODY).encode(),
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"forwarder did not start:\n{self.children.log_tail(process)}")
                time.sleep(0.05)
        return Server("forwarder", url, process)

    def gateway_env(self, ledger_path, database_url="", durable=True):
        return {"ZIRI_KEYS_FILE": self.keys_path, "ZIRI_PRICING_FILE": os.path.join(PROJECT_DIR, "pricing.json"),
                "ZIRI_LEDGER_PATH": ledger_path, "ZIRI_LEDGER_DURABLE": "true" if durable else "false",
                "ZIRI_DATABASE_URL": database_url,
                "DATABASE_URL": "", "ZIRI_SPOOL_DIR": os.path.join(self.work_dir, "spool")}

    def start_gateway(self, name, ledger_path, seconds=20, database_url="", server_name="gateway", durable=True):
        """Start a gateway on ``ledger_path`` (or PostgreSQL); return (its Server, seconds until /health answered)."""
        if database_url:
            self.import_keys(database_url)
        process, port = self.start_gunicorn(name, "app:app", self.gateway_env(ledger_path, database_url, durable))
        waited = wait_until_answers(self.children, process, f"http://127.0.0.1:{port}/health", seconds)
        server = Server(server_name, f"http://127.0.0.1:{port}/api/images/generations", process,
                        api_key=self.raw_keys["bench"])
        return server, waited

    def import_keys(self, database_url):
        """Make the run's keys those of the database, which is the one key store of a gateway that has one."""
        env = {**os.environ, **self.gateway_env("", database_url)}
        for command in (["db", "migrate"], ["keys", "import", self.keys_path]):
            subprocess.run([PYTHON, "-m", "ziri_images.cli", *command], env=env, cwd=PROJECT_DIR, check=True,
                           stdout=subprocess.DEVNULL)

    def worker_setup(self, process):
        """Wait until gunicorn's worker count holds still; return (worker class, workers)."""
        counts = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (len(counts) >= 3 and len(set(counts[-3:])) == 1):
            counts.append(len(group_pids(process.pid)) - 1)
            time.sleep(0.2)
        with open(self.children.log_path(process.name), "rb") as log:
            head = log.read(20000).decode("utf-8", "replace")
        worker_class = next((line.rsplit(" ", 1)[1] for line in head.splitlines() if "Using worker:" in line), "?")
        return worker_class, counts[-1]
