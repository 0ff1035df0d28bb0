"""Operating the gateway under gunicorn: metrics summed over workers, JSON logs, the dashboard in Chromium."""

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import free_port
from .png import decode_png

pytestmark = pytest.mark.real_http

METRICS_TOKEN = "metrics-token-e2e-0123456789"
ADMIN_TOKEN = "admin-token-e2e-0123456789"
BAR_COLOUR = (37, 99, 235)  # dashboard_page.BAR_COLOUR, #2563eb
KEY_COLOUR = (124, 58, 237)  # dashboard_page.KEY_COLOUR, #7c3aed: spend per key over time
MODEL_COLOUR = (13, 148, 136)  # dashboard_page.MODEL_COLOUR, #0d9488: spend per model over time
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=900,1100")


def metric(text, name):
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name)


def test_metrics_sum_every_worker_and_every_log_line_is_json(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=2, threads=2, extra_env={
        "ZIRI_METRICS_TOKEN": METRICS_TOKEN, "ZIRI_LOG_FORMAT": "json", "ZIRI_LOG_LEVEL": "INFO"})
    for _ in range(4):
        assert gateway.generate("alice", size="1024x1024", quality="standard").status_code == 200
    assert gateway.generate("nobody").status_code == 403
    assert requests.get(f"{gateway.url}/metrics", timeout=5).status_code == 401
    for _ in range(4):  # whichever worker answers the scrape, it reports every worker's counts
        text = requests.get(f"{gateway.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                            timeout=5).text
        assert metric(text, "ziri_images_total") == 4
        assert metric(text, "ziri_spend_usd_total") == pytest.approx(0.16)
        assert metric(text, "ziri_refusals_total") == 1
        assert metric(text, "ziri_reservations_open") == 0
    gateway.process.stop()
    # The refusal reached its record as the workers exited, without waiting for the 10 s flush.
    refusals = gateway.ledger_path.parent / "refusals.jsonl"
    rows = [json.loads(line) for line in refusals.read_text().splitlines()]
    assert [(row["keyId"], row["code"], row["count"]) for row in rows] == [("-", "API_KEY_INVALID", 1)]
    lines = [line for line in gateway.process.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, gunicorn's and the gateway's, is one object
    messages = " ".join(entry["message"] for entry in entries)
    assert "Booting worker" in messages and "requestId=" in messages and '"POST /api/images/generations' in messages
    assert METRICS_TOKEN not in gateway.process.log()


class AuthenticatingForwarder(BaseHTTPRequestHandler):
    """Pass GETs to the gateway with the admin token in the header (a browser cannot be told to send one)."""

    target = None

    def do_GET(self):
        answer = requests.get(self.target + self.path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                              timeout=10, allow_redirects=False)
        self.send_response(answer.status_code)
        for name in ("Content-Type", "Content-Security-Policy"):
            if name in answer.headers:
                self.send_header(name, answer.headers[name])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


def screenshot(url, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("ZIRI_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (ZIRI_REQUIRE_BROWSER) but not installed")
        pytest.skip("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "dashboard.png"
    profile = tmp_path / "chromium-profile"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
                   check=True, timeout=90, capture_output=True)
    return decode_png(path.read_bytes())


def bar_pixels(rows, colour=BAR_COLOUR):
    return sum(1 for row in rows for pixel in row if all(abs(a - b) <= 12 for a, b in zip(pixel, colour)))


@pytest.mark.parametrize("worker_class", ["gevent"])
def test_the_dashboard_draws_its_chart_in_headless_chromium(start_gateway, tmp_path, worker_class):
    gateway = start_gateway({"alice": {"limits": {"monthly_spend_limit": 1.0}}}, workers=2, threads=2,
                            extra_env={"ZIRI_ADMIN_TOKEN": ADMIN_TOKEN})
    assert requests.get(f"{gateway.url}/admin/", timeout=5).status_code == 401
    AuthenticatingForwarder.target = gateway.url
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), AuthenticatingForwarder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _, _, empty = screenshot(f"http://127.0.0.1:{port}/admin/", tmp_path / "before")
        for _ in range(3):
            assert gateway.generate("alice", size="1024x1024", quality="hd").status_code == 200
        width, height, rows = screenshot(f"http://127.0.0.1:{port}/admin/", tmp_path / "after")
    finally:
        server.shutdown()
        server.server_close()
    assert (width, height) == (900, 1100)
    assert bar_pixels(empty) == 0  # no spend yet: no bar
    assert bar_pixels(rows) > 2000  # today's bar, the full chart height, about 22 x 166 px
    for colour in (KEY_COLOUR, MODEL_COLOUR):  # today's bar of alice's and of the model's row, about 7 x 24 px
        assert bar_pixels(empty, colour) == 0 and bar_pixels(rows, colour) > 100
