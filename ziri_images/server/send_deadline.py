"""Send every response within its deadline, or abort its connection: no client holds a request by not reading.

gunicorn writes a response with a blocking ``sendall`` on the client's socket, under gevent and
gthread alike. A client that stops reading (its socket left open) fills the socket buffers, and
the write then waits for ever: a stream's relay never runs again, so its request is neither
settled nor ended, past its reservation's expiry (and the key's next request, finding the
reservation expired, is admitted beside it).

``SendDeadline`` (gunicorn.conf.py wraps every worker's app in it) gives each response a
deadline, and before each of gunicorn's writes sets the socket's timeout to the time that
remains: a write still blocked at the deadline fails with ``TimeoutError``. gunicorn then closes
the response's iterator, as for a client that left (a stream is settled once, by
``streaming.relay``'s rules), and the connection is aborted: a TCP reset, which the client sees
at once, where a FIN would wait behind the data it does not take.

The deadline, with the send grace (``ZIRI_SEND_GRACE_SECONDS``):

- a request that reserved (streamed or not): the provider call's deadline (connect + read
  timeout, counted from before the reservation) plus the grace, set by the app before it
  reserves (``start_send_deadline``): the client takes a stream's last event, or a JSON answer,
  within the grace after the call's deadline at the latest;
- any other response (a refusal, a usage report): the grace, from when the app returned it.

The grace is below the reservation's (``ZIRI_RESERVATION_GRACE_SECONDS``; by default half of
it), so a reservation (connect + read timeout + its grace, from when it is made) outlives the
sending of its answer, and what remains of its grace is the relay's time to settle.
"""

import logging
import socket
import struct
import time

from flask import current_app
from flask import request

from ..errors import ConfigError

log = logging.getLogger("ziri_images")

# environ: the time.monotonic() by which the answer of a request that reserved must have been sent.
RESPOND_BY = "ziri_images.respond_by"
# SO_LINGER on, 0 seconds: closing the socket resets the connection, dropping what was not sent.
ABORT_ON_CLOSE = struct.pack("ii", 1, 0)


def send_grace_seconds(config):
    """Return the seconds a client has to take a response (default: half the reservation grace), or ConfigError."""
    reservation_grace = config["RESERVATION_GRACE_SECONDS"]
    grace = config.get("SEND_GRACE_SECONDS") or reservation_grace / 2
    if grace >= reservation_grace:
        raise ConfigError(f"environment variable ZIRI_SEND_GRACE_SECONDS: must be below "
                          f"ZIRI_RESERVATION_GRACE_SECONDS ({reservation_grace:g}), so that a reservation outlives "
                          f"the sending of its answer; got {grace:g}")
    return grace


def start_send_deadline(call_seconds):
    """Give this request's answer its send deadline: a provider call of ``call_seconds`` from now, plus the send grace.

    Called before the reservation is made, so the reservation (made later, living longer) outlives it.
    """
    request.environ[RESPOND_BY] = time.monotonic() + call_seconds + send_grace_seconds(current_app.config)


class SendDeadline:
    """WSGI middleware: each response is sent by its deadline, or its connection is reset."""

    def __init__(self, app, grace):
        self.app = app
        self.grace = grace

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        request_id = []

        def start(status, headers, exc_info=None):
            request_id[:] = [value for name, value in headers if name.lower() == "x-request-id"]
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        deadline = environ.get(RESPOND_BY) or time.monotonic() + self.grace
        return DeadlineBody(body, sock, deadline, request_id[0] if request_id else "-")


class DeadlineBody:
    """A response's iterable that sets the socket's timeout to the time left before gunicorn writes each part."""

    def __init__(self, body, sock, deadline, request_id):
        self._body = body
        self._parts = iter(body)
        self._sock = sock
        self._deadline = deadline
        self._request_id = request_id
        self._timeout = sock.gettimeout()  # the worker's own, restored for the connection's next request

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._parts)
        finally:
            # Also when the parts have run out: gunicorn still writes the last chunk (and an empty body's headers).
            self._time_the_next_write()

    def _time_the_next_write(self):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the response's send deadline has passed")
        self._sock.settimeout(remaining)

    def close(self):
        """Close the app's iterable (an unsent stream is settled then); reset the connection if the deadline passed."""
        if time.monotonic() >= self._deadline:
            # gunicorn's write timed out (or ended only now): what the client has not taken is dropped.
            log.warning("response not taken by the client within its send deadline requestId=%s: connection reset",
                        self._request_id)
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, ABORT_ON_CLOSE)
                self._sock.shutdown(socket.SHUT_RD)  # gthread's graceful close then does not wait for the client
            except OSError:
                pass
        else:
            self._sock.settimeout(self._timeout)
        if hasattr(self._body, "close"):
            self._body.close()
