"""Streams under real gunicorn (gthread and gevent) and the stub: relayed as they arrive, settled once.

A client that reads a whole stream, and one that closes its socket after the first event, are
each charged exactly once from the completed event's usage; on the PostgreSQL store too.
"""

import time

import pytest
from raw_stream import open_raw_stream

from e2e.conftest import STORES
from e2e.conftest import raw_key

pytestmark = pytest.mark.real_http


@pytest.fixture(params=STORES)
def store(request):
    return request.param


def send_stream(gateway, prompt, partial_images=2):
    """Send a streamed generation on a raw socket; return the socket once the first event has arrived."""
    host, port = gateway.url.removeprefix("http://").split(":")
    body = {"provider": "openai", "model": "gpt-image-1", "prompt": prompt, "stream": True,
            "partial_images": partial_images}
    return open_raw_stream(host, port, "/api/images/generations",
                           {"Host": "gateway", "Connection": "close", "X-API-Key": raw_key("alice")}, body, timeout=15)


def wait_for_charges(gateway, count, seconds=10):
    deadline = time.monotonic() + seconds
    while len(gateway.records("charge", "alice")) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return gateway.records("charge", "alice")


def test_a_whole_stream_and_a_stream_left_after_its_first_event_are_each_charged_once(start_gateway):
    gateway = start_gateway({"alice": {}}, workers=1, threads=4)

    sock, received = send_stream(gateway, "[stub:event_delay=0.2] read to the end")
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200") and b"event: image_generation.completed" in received
    assert b"\r\ntransfer-encoding: chunked" in received.lower()

    sock, _first = send_stream(gateway, "[stub:event_delay=0.3] left after the first event")
    sock.close()

    charges = wait_for_charges(gateway, 2)
    assert [(charge["status"], charge["chargedBy"], charge["stream"]) for charge in charges] == [
        ("succeeded", "tokens", True)] * 2
    assert [charge["usage"]["output_tokens"] for charge in charges] == [1056 + 200] * 2
    assert len(gateway.records("reservation", "alice")) == 2
