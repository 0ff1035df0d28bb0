"""Give an outbound HTTP call a total deadline, however slowly its answer arrives.

``requests``' read timeout bounds each socket read, not the call: an answer trickled a few
bytes at a time, in its headers or its body, never trips it. ``DeadlineAdapter`` makes every
read of the response (status line, headers, body) wait at most until the deadline of the call
in progress, by setting the socket's timeout to the time that remains before each read (or the
read timeout, if shorter); past the deadline a read fails at once with ``TimeoutError``, which
urllib3 reports as a read timeout. Plain socket timeouts work the same under threads and under gevent's patched
sockets, so one mechanism serves both gunicorn worker classes. The call in progress is a
context variable: each thread, and each greenlet, has its own.

Connection set-up (TCP connect, TLS handshake) is bounded by the connect timeout as usual.

``Transport`` is what an adapter sends with: one provider's pooled connections (urllib3's, safe to
share between threads and greenlets: a call takes an idle kept-alive connection, or opens one,
and gives it back once its answer is read), each request prepared by requests' own steps and
handed to the adapter directly. A ``Session`` would only merge defaults the gateway does not use
(cookies, environment settings, redirects) on every call.
"""

import contextvars
import http.client
import io
import time
from contextlib import contextmanager

from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.connectionpool import HTTPSConnectionPool

_deadline = contextvars.ContextVar("ziri_images_call_deadline", default=None)
# The response's read buffer, held by every call while it waits on the provider. It only serves the
# status line and headers (a provider's fit in one read): the body's larger reads bypass it, and a
# stream's read1 goes straight to the socket. io's default (8 KiB) would hold 8 MiB at 1,000 calls.
READ_BUFFER_BYTES = 2048
# Kept-alive connections a provider keeps per host for the next calls: one for every request a gevent
# worker holds at once (gunicorn.conf.py), so a burst never reconnects; more may be open meanwhile.
MAX_IDLE_CONNECTIONS = 1000


@contextmanager
def call_deadline(seconds):
    """Let the HTTP calls made inside the block read their answers for ``seconds`` in all, from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


class _DeadlineReader(io.RawIOBase):
    """The socket's own reader (``raw``), with every read ending by the deadline."""

    def __init__(self, raw, sock, deadline):
        super().__init__()
        self._raw = raw  # keeps the socket open while the answer is read, as http.client expects
        self._sock = sock
        self._deadline = deadline
        self._read_timeout = sock.gettimeout()  # the per-read timeout urllib3 set: it still applies

    def readable(self):
        return True

    def readinto(self, buffer):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the call's deadline has passed")
        self._sock.settimeout(remaining if self._read_timeout is None else min(remaining, self._read_timeout))
        return self._raw.readinto(buffer)

    def close(self):
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through a ``_DeadlineReader`` while a deadline is set."""

    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        deadline = _deadline.get()
        if deadline is not None:
            # Nothing was read yet: take the plain reader out of its buffer and put the deadline between them.
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline), READ_BUFFER_BYTES)


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections whose answers are read within the call's deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class Transport:
    """One provider's pooled connections, on which each request is sent within the call's deadline.

    ``timeout`` is (connect, read); ``verify`` and ``proxies`` are requests' settings, read once
    by the provider: left to requests, they are looked up (walking the whole environment) on every call.
    """

    def __init__(self, timeout, verify, proxies):
        self.timeout = timeout
        self.verify = verify
        self.proxies = proxies
        self.adapter = DeadlineAdapter(pool_maxsize=MAX_IDLE_CONNECTIONS)
        self._prepared_urls = {}  # URL -> as requests checks and quotes it: one per model and operation

    def prepare(self, method, url, headers, cached=True, **body):
        """Return the request as requests prepares it (``body``: json=, or data= and files=).

        A URL not ``cached`` is checked afresh and not kept: one that is new on every call (a job's
        polling URL) would make the cache grow without end.
        """
        request = PreparedRequest()
        request.prepare_method(method)
        prepared_url = self._prepared_urls.get(url)
        if prepared_url is None:
            request.prepare_url(url, None)
            prepared_url = request.url
            if cached:
                self._prepared_urls[url] = prepared_url
        request.url = prepared_url
        request.prepare_headers(headers)
        request.prepare_body(body.get("data"), body.get("files"), body.get("json"))
        return request

    def send(self, method, url, headers, cached=True, **body):
        """Send the request on a pooled connection; return the response with its body still to be read."""
        return self.adapter.send(self.prepare(method, url, headers, cached, **body), stream=True, timeout=self.timeout,
                                 verify=self.verify, proxies=self.proxies)
