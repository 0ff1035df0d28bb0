"""Stability AI end to end: gunicorn's workers call a local Stability-shaped server, n images at once.

The server (threaded, on 127.0.0.1) answers ``/v2beta/stable-image/generate/{endpoint}`` as
Stability does with ``Accept: application/json``, after a short pause, and counts the calls it
holds at once: two images are two calls made side by side, under the one reservation.
"""

import base64
import email.parser
import email.policy
import http.server
import json
import threading
import time

import pytest

from .conftest import raw_key

STABILITY_KEY = "sk-stability-e2e-key-0123456789"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
PAUSE_SECONDS = 0.4


class StabilityShaped(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.calls, self.in_flight, self.peak = [], 0, 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.peak = max(server.peak, server.in_flight)
        try:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
            fields = {part.get_param("name", header="content-disposition"): part.get_content().strip()
                      for part in form.iter_parts()}
            with server.lock:
                server.calls.append({"path": self.path, "fields": fields, "accept": self.headers["Accept"],
                                     "authorization": self.headers["Authorization"]})
            time.sleep(PAUSE_SECONDS)
            answer = json.dumps({"image": PNG, "finish_reason": "SUCCESS", "seed": len(server.calls)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, *args):
        pass


@pytest.fixture
def stability():
    server = StabilityShaped()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.real_http
@pytest.mark.parametrize("worker_class", ["gevent"])  # the production worker; one gateway keeps this quick
def test_two_images_are_two_stability_calls_at_once_under_one_reservation(start_gateway, stability):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env={
        "STABILITY_BASE_URL": f"http://127.0.0.1:{stability.server_address[1]}", "STABILITY_API_KEY": STABILITY_KEY})

    response = gateway.generate("alice", provider="stability", model="sd3.5-large-turbo", n=2, size="1024x576")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["b64_json"] for item in body["data"]] == [PNG, PNG]
    assert body["_meta"]["cost"]["actual"] == 0.08  # 2 x 4 credits
    assert stability.peak == 2  # side by side, not one after the other
    assert [call["path"] for call in stability.calls] == ["/v2beta/stable-image/generate/sd3"] * 2
    for call in stability.calls:
        assert call["fields"] == {"prompt": "a red fox", "aspect_ratio": "16:9", "model": "sd3.5-large-turbo"}
        assert (call["accept"], call["authorization"]) == ("application/json", f"Bearer {STABILITY_KEY}")
    reservations, charges = gateway.records("reservation", "alice"), gateway.records("charge", "alice")
    assert len(reservations) == len(charges) == 1
    assert (reservations[0]["amount"], charges[0]["cost"], charges[0]["imagesReturned"]) == (0.08, 0.08, 2)
    assert raw_key("alice") not in json.dumps(stability.calls)
