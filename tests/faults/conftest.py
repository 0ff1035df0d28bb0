"""Fixtures of the fault suites: hostile upstreams on 127.0.0.1 and the end-to-end gateway.

``FaultServer(behaviour)``
    A bare TCP server on 127.0.0.1 (a context manager) that reads each HTTP request and hands
    the socket to ``behaviour(connection, request, server)``, which may answer, close, reset
    (SO_LINGER 0), stall until ``server.released`` or stream a body without end. ``requests``
    lists what it received, so a test can prove the gateway called it exactly once (or never).
    The behaviours below build the common ones: ``respond``, ``close_at_once``,
    ``reset_at_once``, ``partial_body``, ``stall``, ``endless_body``, ``gzip_bomb``, and
    ``trickle_headers`` / ``trickle_body``, a valid answer sent a few bytes at a time.
``start_gateway`` / ``stub``
    The end-to-end fixtures of tests/e2e (real gunicorn with the project's gunicorn.conf.py,
    the stub as OpenAI: here always a stub of the test's own). ``worker_class`` here is gevent
    only, the production default, to keep the suites short; a module may override it.
``no_secret_left_behind``
    Autouse: after every test here, no log record it produced and no file it left under
    ``tmp_path`` (gunicorn and stub output, ledgers) holds a gateway key (anything shaped like
    one) or a provider key.
``live_workers(gateway)`` / ``set_file_size_limit(pids, limit)``
    The gateway's worker processes now, and a per-process file size limit (RLIMIT_FSIZE): a
    disk that fills up at a chosen byte, for real processes and without root-only tricks.
"""

import gzip
import importlib.util
import json
import logging
import os
import re
import resource
import socket
import struct
import threading
from dataclasses import dataclass

import pytest
from conftest import AZURE_KEY
from conftest import GEMINI_KEY
from conftest import PROVIDER_KEY
from conftest import XAI_KEY
from e2e.conftest import STUB_API_KEY
from e2e.conftest import STUB_GEMINI_KEY
from e2e.conftest import start_gateway  # noqa: F401  (a fixture, used by name)
from e2e.conftest import store  # noqa: F401  (a fixture, used by name)
from e2e.conftest import stub  # noqa: F401  (a fixture, used by name)

# A gateway key (ziri-{user}-{hex secret}), whoever it belongs to, and the provider keys the tests use
# (Vertex AI's credential: the service account's private key, in PEM).
KEY_SHAPED = re.compile(r"ziri-[A-Za-z0-9][A-Za-z0-9_.-]*-[0-9a-f]{16,}")
PROVIDER_KEYS = (PROVIDER_KEY, AZURE_KEY, XAI_KEY, STUB_API_KEY, GEMINI_KEY, STUB_GEMINI_KEY, "PRIVATE KEY-----")
SERVE_SECONDS = 10
HUGE_BODY_LIMIT = 512 * 1024 * 1024  # an endless body stops here if the gateway never hangs up


def find_secret(text):
    """Return the first gateway key or provider key in ``text``, or None."""
    match = KEY_SHAPED.search(text)
    return match.group() if match else next((key for key in PROVIDER_KEYS if key in text), None)


@pytest.fixture(autouse=True)
def no_secret_left_behind(caplog, tmp_path):
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        secret = find_secret(formatter.format(record))
        assert secret is None, f"log record {record.name}:{record.lineno} holds {secret}"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            secret = find_secret(path.read_text(encoding="utf-8", errors="replace"))
            assert secret is None, f"{path.name} holds {secret}"


@pytest.fixture
def worker_class():
    return "gevent" if importlib.util.find_spec("gevent") is not None else "gthread"


@pytest.fixture
def shared_stub(request):
    """Give each test's gateways a stub of its own: its output is the test's, scanned for secrets above."""
    return request.getfixturevalue("stub")


@dataclass
class UpstreamRequest:
    """One HTTP request as the fault server received it."""

    head: str
    body: bytes

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            field, _, value = line.partition(":")
            if field.strip().lower() == name.lower():
                return value.strip()
        return None

    def json(self):
        return json.loads(self.body)


def read_request(connection):
    """Return the UpstreamRequest read from ``connection``, or None if it hung up first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request = UpstreamRequest(head.decode("latin-1"), b"")
    length = int(request.header("Content-Length") or 0)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    request.body = body
    return request


class FaultServer:
    """An upstream on 127.0.0.1 that answers each request with ``behaviour``."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests = []
        self.released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._handlers = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self):
        while not self.released.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handler = threading.Thread(target=self._handle, args=(connection,), daemon=True)
            self._handlers.append(handler)
            handler.start()

    def _handle(self, connection):
        with connection:
            connection.settimeout(SERVE_SECONDS)
            try:
                request = read_request(connection)
                if request is not None:
                    self.requests.append(request)
                    self.behaviour(connection, request, self)
            except OSError:
                pass  # the gateway hung up first: what several behaviours are waiting for

    def close(self):
        self.released.set()
        self._acceptor.join(SERVE_SECONDS)
        for handler in self._handlers:
            handler.join(SERVE_SECONDS)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_response(status, body=b"", headers=None, announced=None):
    """Return the bytes of an HTTP/1.1 response.

    ``announced`` replaces the Content-Length (to promise more than is sent); False sends none,
    so the body ends only when the connection closes.
    """
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    length = len(body) if announced is None else announced
    framing = {} if length is False else {"Content-Length": str(length)}
    headers = {**framing, "Connection": "close", **(headers or {})}
    head = f"HTTP/1.1 {status} Whatever\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def reset(connection):
    """Close with an RST instead of a FIN."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def respond(status, body=b"", headers=None):
    def behaviour(connection, request, server):
        connection.sendall(http_response(status, body, headers))
    return behaviour


def close_at_once(connection, request, server):
    connection.close()


def reset_at_once(connection, request, server):
    reset(connection)


def partial_body(then_reset):
    """Send the headers and a tenth of the announced body, then reset or close."""
    def behaviour(connection, request, server):
        connection.sendall(http_response(200, b'{"created": 1, "data": [' + b" " * 990,
                                         {"Content-Type": "application/json"}, announced=10000))
        if then_reset:
            server.released.wait(0.1)  # let the gateway start reading the body first
            reset(connection)
    return behaviour


def stall(after_headers):
    """Send nothing (or only the headers and the body's first bytes) until the server closes."""
    def behaviour(connection, request, server):
        if after_headers:
            connection.sendall(http_response(200, b'{"created": 1, "data"', {"Content-Type": "application/json"},
                                             announced=1000))
        server.released.wait(SERVE_SECONDS)
    return behaviour


def endless_body(connection, request, server):
    """Stream a JSON-looking body with no length until the gateway hangs up."""
    connection.sendall(http_response(200, b'{"created": 1, "data": ["', {"Content-Type": "application/json"},
                                     announced=False))
    block, sent = b"A" * (1 << 20), 0
    while sent < HUGE_BODY_LIMIT:
        connection.sendall(block)
        sent += len(block)


def gzip_bomb(megabytes):
    """Answer 200 with a small gzip body that inflates to ``megabytes`` MB of zeros."""
    member = gzip.compress(b"\0" * (1 << 20))  # concatenated members are one valid gzip stream
    body = member * megabytes

    def behaviour(connection, request, server):
        connection.sendall(http_response(200, body, {"Content-Type": "application/json",
                                                     "Content-Encoding": "gzip"}))
    return behaviour


TRICKLE_STEPS, TRICKLE_PAUSE = 40, 0.2  # 40 small writes 0.2 s apart: 8 s for the whole answer
TRICKLED_ANSWER = json.dumps({"created": 1, "data": [{"url": "https://images.test/trickled.png"}]}).encode()


def _trickle(connection, server, pieces):
    for piece in pieces:
        connection.sendall(piece)
        if server.released.wait(TRICKLE_PAUSE):
            return


def trickle_headers(connection, request, server):
    """Send a valid answer whose headers arrive one short line at a time, each well within a read timeout."""
    head = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Padding: %d\r\n" % step for step in range(TRICKLE_STEPS)]
    body = http_response(200, TRICKLED_ANSWER, {"Content-Type": "application/json"}).split(b"\r\n", 1)[1]
    _trickle(connection, server, head + [body])


def trickle_body(connection, request, server):
    """Send the headers at once, then a valid body a few bytes at a time, each well within a read timeout."""
    body = TRICKLED_ANSWER + b" " * TRICKLE_STEPS  # trailing whitespace keeps it valid JSON
    step = -(-len(body) // TRICKLE_STEPS)
    head = http_response(200, b"", {"Content-Type": "application/json"}, announced=len(body))
    _trickle(connection, server, [head] + [body[start:start + step] for start in range(0, len(body), step)])


def closed_port_url():
    """Return the URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def live_workers(gateway):
    """Return the pids of the gateway's worker processes now (children of the master, not zombies)."""
    master, pids = gateway.process.pid, []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == master and state != "Z":
            pids.append(int(entry))
    return pids


def set_file_size_limit(pids, limit):
    """Set RLIMIT_FSIZE of ``pids``: a write past ``limit`` bytes fails with EFBIG, as on a full disk.

    Python ignores SIGXFSZ, so the write returns an error (or a short count) instead of killing
    the process. Only the soft limit moves, so it can be raised again without privileges.
    """
    soft = resource.RLIM_INFINITY if limit is None else limit
    for pid in pids:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))
