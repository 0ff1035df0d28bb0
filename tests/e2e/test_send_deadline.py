"""Under real gunicorn (gevent and gthread): a client that stops reading cannot keep its request alive.

A raw-socket client with a small receive buffer asks for an answer of many megabytes and never
reads it, its socket left open. The gateway's write blocks; by the provider call's deadline
plus the send grace (short here: 1 s connect + 2 s read timeout, 1 s grace) the server resets
the connection, the request has been settled exactly once, and the key, limited to one request
in flight, is refused while the first is alive and admitted at once after, with no
reservation left to expire.
"""

import json
import socket
import time

import pytest

from e2e.conftest import raw_key

pytestmark = pytest.mark.real_http

CONNECT_TIMEOUT, READ_TIMEOUT, SEND_GRACE, RESERVATION_GRACE = 1, 2, 1, 3
CALL_DEADLINE = CONNECT_TIMEOUT + READ_TIMEOUT
# Each image's base64 (8 MB) is far beyond what the sockets' buffers hold (at most 4 MB on Linux).
IMAGE_BYTES = 6_000_000
SLACK = 3  # for a busy machine; still before the reservation's expiry would show
TCP_ESTABLISHED = 1


def send_and_never_read(gateway, user, body):
    """Send ``user``'s generation from a socket whose receive buffer is small, and never read it; return the socket."""
    host, port = gateway.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window stays small
    sock.settimeout(10)
    sock.connect((host, int(port)))
    payload = json.dumps({"provider": "openai", "model": "gpt-image-1", **body})
    sock.sendall((f"POST /api/images/generations HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
                  f"X-API-Key: {raw_key(user)}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(payload)}\r\n\r\n{payload}").encode())
    return sock


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def seconds_until_reset(sock, seconds):
    """Return how long the server took to reset the connection, or None if it is still open after ``seconds``."""
    started = time.monotonic()
    while tcp_state(sock) == TCP_ESTABLISHED:
        if time.monotonic() - started > seconds:
            return None
        time.sleep(0.05)
    return time.monotonic() - started


# One key per case, each limited to one request in flight, so the cases stall side by side in one gateway:
# user -> (the request, how it is settled, whether it still holds its reservation while the client stalls).
STALLED = {
    "alice": ({"prompt": f"blocked before completed [stub:image_bytes={IMAGE_BYTES}]", "stream": True,
               "partial_images": 2}, ("provider_error", "reservation"), True),  # a stream blocked on a partial image
    "bob": ({"prompt": f"blocked on completed [stub:image_bytes={IMAGE_BYTES}]", "stream": True},
            ("succeeded", "tokens"), False),  # a stream blocked on its completed event
    "carol": ({"prompt": f"a large JSON answer [stub:image_bytes={IMAGE_BYTES}]"}, ("succeeded", "tokens"), False),
}


def test_a_response_the_client_does_not_take_ends_within_the_call_deadline_and_the_send_grace(start_gateway):
    gateway = start_gateway({user: {"limits": {"max_concurrent_requests": 1}} for user in STALLED}, workers=1,
                            extra_env={"ZIRI_UPSTREAM_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
                                       "ZIRI_UPSTREAM_READ_TIMEOUT": READ_TIMEOUT,
                                       "ZIRI_SEND_GRACE_SECONDS": SEND_GRACE,
                                       "ZIRI_RESERVATION_GRACE_SECONDS": RESERVATION_GRACE})

    stalled = {user: send_and_never_read(gateway, user, body) for user, (body, _, _) in STALLED.items()}
    try:
        gateway.process.wait_until(lambda: all(gateway.records("reservation", user) for user in STALLED),
                                   "every first reservation")
        for user, (_, _, holds_reservation) in STALLED.items():
            if holds_reservation:
                # Its reservation is held while its relay is alive: the key's one slot is taken.
                refused = gateway.generate(user, model="gpt-image-1", prompt="while the first is alive")
                assert refused.status_code == 503 and refused.json()["code"] == "QUEUE_FULL", (user, refused.text)
        for user, sock in stalled.items():
            took = seconds_until_reset(sock, CALL_DEADLINE + SEND_GRACE + SLACK)
            assert took is not None, f"{user}: the server still holds the connection of a client that does not read"
            with pytest.raises(ConnectionResetError):
                while sock.recv(1 << 20):  # what the client had taken, then the reset: never the whole answer
                    pass
    finally:
        for sock in stalled.values():
            sock.close()

    for user, (_, settled_by, _) in STALLED.items():
        [reservation] = gateway.records("reservation", user)
        [charge] = gateway.records("charge", user)
        assert charge["requestId"] == reservation["requestId"], user
        assert (charge["status"], charge["chargedBy"]) == settled_by, user
        assert gateway.usage(user)["inFlight"] == 0, user
        admitted = gateway.generate(user, model="gpt-image-1", prompt="after the first has ended")
        assert admitted.status_code == 200, (user, admitted.text)
        assert len(gateway.records("charge", user)) == 2, user
    assert gateway.records("reservation_expired") == []
