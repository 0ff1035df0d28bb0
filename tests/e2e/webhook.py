"""A webhook receiver on 127.0.0.1 for the budget alert tests: it keeps every event posted, and can go down."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

from e2e.conftest import free_port

SECRET = "whsec-e2e-0123456789"


class Receiver:
    """Take POSTs at ``url`` while up (answering 204), keeping each (event, signature ok, event id)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/ziri"
        self.received = []
        self._lock = threading.Lock()
        self._server = None

    def up(self):
        """Listen (again) on the receiver's port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(expected, self.headers.get("X-Ziri-Signature", ""))
                with receiver._lock:
                    receiver.received.append((json.loads(body), signed, self.headers.get("X-Ziri-Event-Id")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self):
        """Stop listening: a post is refused a connection until ``up`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self):
        with self._lock:
            return list(self.received)

    def wait_for(self, count, seconds=20):
        """Return the events once ``count`` have arrived (fail after ``seconds``)."""
        deadline = time.monotonic() + seconds
        while len(self.events()) < count:
            assert time.monotonic() < deadline, f"{len(self.events())} of {count} alerts arrived: {self.events()}"
            time.sleep(0.1)
        return self.events()


def alert_environment(receiver, **extra):
    """Return the gateway's environment that sends budget alerts to ``receiver``."""
    return {"ZIRI_ALERT_WEBHOOK_URL": receiver.url, "ZIRI_ALERT_WEBHOOK_SECRET": SECRET, **extra}
