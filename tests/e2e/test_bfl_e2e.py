"""Black Forest Labs through gunicorn: a job polled on another port than its submit, and a client that leaves.

A small server of BFL's shape runs in the test on two ports of 127.0.0.1: submits on one, the
polling URL and the result on the other. A client that disconnects while its job is still pending
does not end the job's accounting: the worker keeps polling, fetches the image and writes the charge,
once, at what BFL reported it billed.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests

from e2e.conftest import raw_key
from ziri_images.dev.stub import png_bytes

pytestmark = pytest.mark.real_http

KEY = "bfl-e2e-key-0123456789abcdef"
COST_CREDITS = 4


class FakeBfl:
    """BFL's shape: ``POST /v1/{model}`` on one port; the polling URL and the result on another.

    A job whose prompt holds ``wait`` stays Pending until ``release`` is set.
    """

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.prompts, self.polls, self.fetched, self.problems = {}, [], [], []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, content_type="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.server is not fake.submit_server or self.headers.get("x-key") != KEY:
                    fake.problems.append(f"submit {self.path} on the wrong port or without the key")
                    return self.answer(401, {"detail": "Not authenticated"})
                with fake.lock:
                    job = f"job_{len(fake.prompts) + 1}"
                    fake.prompts[job] = body["prompt"]
                self.answer(200, {"id": job, "polling_url": f"{fake.poll_origin}/v1/get_result?id={job}",
                                  "cost": COST_CREDITS, "input_mp": 0, "output_mp": 1.05})

            def do_GET(self):
                path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
                if path.startswith("/delivery/"):
                    if "x-key" in self.headers:
                        fake.problems.append("the key was sent to the result URL")
                    fake.fetched.append(path)
                    return self.answer(200, png_bytes(path, 16), "image/png")
                job = query["id"][0]
                if self.server is not fake.poll_server or self.headers.get("x-key") != KEY:
                    fake.problems.append(f"poll {self.path} on the wrong port or without the key")
                    return self.answer(401, {"detail": "Not authenticated"})
                fake.polls.append((job, time.monotonic()))
                if "wait" in fake.prompts[job] and not fake.release.is_set():
                    return self.answer(200, {"id": job, "status": "Pending"})
                self.answer(200, {"id": job, "status": "Ready",
                                  "result": {"sample": f"{fake.poll_origin}/delivery/{job}.png"}})

        self.submit_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.poll_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.submit_server.server_port}/v1"
        self.poll_origin = f"http://127.0.0.1:{self.poll_server.server_port}"
        self.threads = [threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
                        for server in (self.submit_server, self.poll_server)]
        for thread in self.threads:
            thread.start()

    def close(self):
        for server in (self.submit_server, self.poll_server):
            server.shutdown()
            server.server_close()


@pytest.fixture
def fake_bfl():
    fake = FakeBfl()
    yield fake
    fake.close()


def wait_for(condition, what, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_jobs_polled_on_another_port_are_charged_once_even_when_the_client_leaves(start_gateway, fake_bfl):
    gateway = start_gateway({"alice": {}}, workers=1, extra_env={"BFL_BASE_URL": fake_bfl.base_url,
                                                                 "BFL_API_KEY": KEY})
    url, headers = f"{gateway.url}/api/images/generations", {"X-API-Key": raw_key("alice")}
    body = {"provider": "bfl", "model": "flux-2-pro", "size": "1024x1024"}

    answer = requests.post(url, json={**body, "prompt": "a red fox"}, headers=headers, timeout=(2, 10))
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0]["b64_json"] and answer.json()["_meta"]["cost"]["actual"] == 0.04

    # The second client gives up while its job is pending; the worker polls on, unaware.
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, json={**body, "prompt": "a grey wolf, wait"}, headers=headers, timeout=(2, 0.5))
    left_at = time.monotonic()
    wait_for(lambda: any(job == "job_2" and at > left_at for job, at in fake_bfl.polls), "a poll after the client left")
    # The one worker still serves while it polls (under gevent: its polls sleep on gevent's clock).
    assert gateway.usage("alice")["inFlight"] == 1
    fake_bfl.release.set()
    wait_for(lambda: len(gateway.records("charge")) == 2, "the second job's charge")

    assert fake_bfl.problems == [] and fake_bfl.fetched == ["/delivery/job_1.png", "/delivery/job_2.png"]
    reservations, charges = gateway.records("reservation"), gateway.records("charge")
    assert sorted(r["requestId"] for r in reservations) == sorted(c["requestId"] for c in charges)  # once each
    assert [(c["status"], c["cost"], c["chargedBy"], c["providerBilled"]) for c in charges] == [
        ("succeeded", 0.04, "provider", 0.04)] * 2
    assert gateway.usage("alice")["daily"]["spent"] == 0.08
