"""deploy/nginx.conf: nginx's own error pages answer in the gateway's JSON contract.

Always: the sample is read as text, and every status nginx itself may answer (a request it
cannot parse, a body over client_max_body_size, the gateway down or slow...) must lead by
``error_page`` to a location that returns ``{"error", "code", "requestId"}`` as JSON with
``X-Request-Id`` and ``x-should-retry: false``, with a code and a message for that status.

When nginx is installed (Debian: ``apt-get install nginx-light``), the sample itself, with
only its ports, certificates and log path replaced, passes ``nginx -t`` and is run in front
of a gateway that is down, and its answers are checked on the wire; then in front of a running
gateway (gunicorn, gevent, the stub), a stream's first event must arrive before its last and an
edit of several MB must go through; otherwise those tests skip.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
import requests
from conftest import PROJECT_DIR
from conftest import USER_KEY
from conftest import raw_exchange
from e2e.conftest import free_port
from e2e.conftest import raw_key
from e2e.conftest import start_gateway  # noqa: F401  (fixtures: a gateway and the stub behind nginx)
from e2e.conftest import store  # noqa: F401
from e2e.conftest import stub  # noqa: F401
from raw_stream import open_raw_stream

SAMPLE = PROJECT_DIR / "deploy" / "nginx.conf"
# Every status nginx answers itself in front of the gateway; 494 is its "request header too large".
NGINX_OWN_ERRORS = {400, 404, 408, 413, 414, 494, 500, 502, 503, 504}
HEX_ID = "0123456789abcdef0123456789abcdef"
REQUEST_ID = re.compile(r"req_[0-9a-f]{32}\Z")


def sample_text():
    return SAMPLE.read_text(encoding="utf-8")


def error_pages(text):
    """Return {status nginx produced: (status answered, target URI)} from the sample's error_page lines."""
    pages = {}
    for statuses, answered, target in re.findall(r"^\s*error_page\s+([\d\s]+?)\s+(?:=(\d+)\s+)?(\S+);", text, re.M):
        for status in statuses.split():
            pages[int(status)] = (int(answered or status), target)
    return pages


def location_block(text, target):
    match = re.search(r"location\s+=\s+" + re.escape(target) + r"\s*\{(.*?)\n    \}", text, re.S)
    assert match, f"no location = {target}"
    return match.group(1)


def map_entries(text, variable):
    block = re.search(r"map \$status \$" + variable + r" \{(.*?)\n\}", text, re.S)
    assert block, f"no map for ${variable}"
    entries = re.findall(r"^\s*(\d{3})\s+(.+?);", block.group(1), re.M)
    return {int(status): value.strip('"') for status, value in entries}


def test_every_nginx_error_page_is_the_json_contract():
    text = sample_text()
    pages = error_pages(text)
    assert set(pages) == NGINX_OWN_ERRORS
    codes, messages = map_entries(text, "ziri_error_code"), map_entries(text, "ziri_error_message")
    for status, (answered, target) in pages.items():
        block = location_block(text, target)
        assert "internal;" in block and "default_type application/json;" in block, block
        # An add_header of its own would drop the server's x-should-retry and X-Request-Id.
        assert not re.search(r"^\s*add_header", block, re.M), block
        body = re.search(r"return 200 '(.*)';", block).group(1)
        body = (body.replace("$ziri_error_message", messages[answered]).replace("$ziri_error_code", codes[answered])
                .replace("$ziri_request_id", "req_" + HEX_ID).replace("\\n", ""))
        document = json.loads(body)
        assert set(document) == {"error", "code", "requestId"}, (status, document)
        assert re.fullmatch(r"[A-Z_]+", document["code"]) and document["error"], (status, document)
    server = text[text.index("listen 443"):]
    assert re.search(r"^    add_header x-should-retry \$ziri_should_retry always;", server, re.M)
    assert re.search(r"^    add_header X-Request-Id\s+\$ziri_request_id always;", server, re.M)
    # nginx's own errors: no gateway header, so "false", and a request id in the gateway's format.
    assert re.search(r'^\s*""\s+"false";', text[text.index("$ziri_should_retry {"):], re.M)
    assert re.search(r'^\s*""\s+req_\$request_id;', text[text.index("$ziri_request_id {"):], re.M)


def test_the_access_log_leaves_out_query_strings_and_escapes():
    text = sample_text()
    log_format = re.search(r"log_format ziri_images (.*?);", text, re.S).group(1)
    assert "escape=default" in log_format
    for variable in ("$request ", "$request_uri", "$args", "$query_string", "$http_"):
        assert variable not in log_format, variable


def render(tmp_path, upstream_port, port):
    """Return the path of a runnable nginx.conf around the sample: loopback ports, no TLS, files under tmp_path."""
    text = sample_text()
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{free_port()};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{port};",
        "listen [::]:443 ssl http2;": "",
        "server 127.0.0.1:3100;": f"server 127.0.0.1:{upstream_port};",
        "/var/log/nginx/ziri-images.access.log": str(tmp_path / "access.log"),
    }
    for old, new in replacements.items():
        assert old in text, f"the sample no longer has {old!r}: update this test"
        text = text.replace(old, new)
    text = re.sub(r"\n\s*ssl_certificate(_key)? [^\n]*;", "", text)
    (tmp_path / "site.conf").write_text(text)
    main = tmp_path / "nginx.conf"
    # One process (no user switch), every file nginx writes under tmp_path.
    main.write_text(f"""daemon off; master_process off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;
events {{}}
http {{
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    include {tmp_path}/site.conf;
}}
""")
    return main


def wait_until_listening(port, process, tmp_path, seconds=15):
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            output = (tmp_path / "nginx.out").read_text(errors="replace")
            assert process.poll() is None and time.monotonic() < deadline, f"nginx did not start: {output}"
            time.sleep(0.05)


@pytest.mark.real_http
# CI sets ZIRI_TEST_REQUIRE_NGINX=1: there a missing nginx fails the test instead of skipping it.
@pytest.mark.skipif(shutil.which("nginx") is None and not os.environ.get("ZIRI_TEST_REQUIRE_NGINX"),
                    reason="nginx is not installed (apt-get install nginx-light)")
def test_nginx_answers_its_own_errors_in_json(tmp_path):
    port, gateway_down = free_port(), free_port()  # nothing listens on gateway_down: nginx answers 502
    config = render(tmp_path, gateway_down, port)
    checked = subprocess.run(["nginx", "-t", "-c", str(config), "-p", str(tmp_path)], capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stderr
    with open(tmp_path / "nginx.out", "wb") as output:
        nginx = subprocess.Popen(["nginx", "-c", str(config), "-p", str(tmp_path)], stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(port, nginx, tmp_path)
        head = b"Host: images.example.com\r\nConnection: close\r\n"
        cases = [
            (b"POST /api/images/generations?api_key=" + USER_KEY.encode() + b" HTTP/1.1\r\n" + head
             + b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 502, "GATEWAY_UNAVAILABLE"),
            (b"POST /api/images/generations HTTP/1.1\r\n" + head + b"Content-Length: 300000\r\n\r\n", 413,
             "REQUEST_TOO_LARGE"),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + head + b"\r\n", 414, "URI_TOO_LONG"),
            (b"GET /health HTTP/1.1\r\n" + head + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
            (b"GET /\x01 HTTP/1.1\r\n" + head + b"\r\n", 400, "BAD_REQUEST"),
            (b"GET /ziri-images-error HTTP/1.1\r\n" + head + b"\r\n", 404, "NOT_FOUND"),
        ]
        for data, status, code in cases:
            response = raw_exchange(url, data)
            assert response.status == status and response.headers["content-type"] == "application/json", response
            body = response.json()
            assert body["code"] == code and REQUEST_ID.match(body["requestId"]), body
            assert response.headers["x-request-id"] == body["requestId"], response
            assert response.headers["x-should-retry"] == "false", response
    finally:
        nginx.terminate()
        nginx.wait(timeout=15)
    access_log = (tmp_path / "access.log").read_text()
    assert "POST /api/images/generations HTTP/1.1\" 502" in access_log, access_log
    assert USER_KEY not in access_log and "api_key" not in access_log, access_log


@pytest.fixture
def worker_class():
    return "gevent"  # what production runs


def start_nginx(tmp_path, upstream_port):
    port = free_port()
    config = render(tmp_path, upstream_port, port)
    with open(tmp_path / "nginx.out", "wb") as output:
        nginx = subprocess.Popen(["nginx", "-c", str(config), "-p", str(tmp_path)], stdout=output, stderr=output)
    wait_until_listening(port, nginx, tmp_path)
    return nginx, port


@pytest.mark.real_http
@pytest.mark.skipif(shutil.which("nginx") is None and not os.environ.get("ZIRI_TEST_REQUIRE_NGINX"),
                    reason="nginx is not installed (apt-get install nginx-light)")
def test_a_stream_and_an_edit_upload_go_through_nginx(request, tmp_path):
    gateway = request.getfixturevalue("start_gateway")({"alice": {}}, workers=1)
    nginx, port = start_nginx(tmp_path, int(gateway.url.rsplit(":", 1)[1]))
    try:
        # A stream: its first event arrives while the gateway is still relaying (nginx does not buffer it).
        body = {"model": "gpt-image-1", "prompt": "[stub:event_delay=0.5] through nginx", "stream": True,
                "partial_images": 2}
        headers = {"Host": "images.example.com", "Connection": "close", "Authorization": f"Bearer {raw_key('alice')}"}
        sock, received = open_raw_stream("127.0.0.1", port, "/v1/images/generations", headers, body)
        with sock:
            assert b"image_generation.completed" not in received
            while chunk := sock.recv(65536):
                received += chunk
        head = received.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert head.startswith("http/1.1 200") and "content-type: text/event-stream" in head, head
        assert "cache-control: no-cache" in head and "x-request-id: req_" in head
        assert b"image_generation.completed" in received
        # An edit with two reference images, several MB: past the JSON limit of 256k, within the edits location's.
        from ziri_images.dev.stub import png_bytes

        images = [("image[]", (f"ref{index}.png", png_bytes(f"ref{index}", 64) + b"\0" * (2 * 1024 * 1024),
                               "image/png")) for index in range(2)]
        response = requests.post(f"http://127.0.0.1:{port}/v1/images/edits", files=images,
                                 data={"model": "gpt-image-1", "prompt": "a hat"},
                                 headers={"Authorization": f"Bearer {raw_key('alice')}"}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["b64_json"]
    finally:
        nginx.terminate()
        nginx.wait(timeout=15)
    charges = gateway.records("charge", "alice")
    assert [(charge["endpoint"], charge.get("stream", False)) for charge in charges] == [
        ("generations", True), ("edits", False)]
