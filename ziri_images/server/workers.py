"""gunicorn's own answers in the gateway's contract, and a deadline on every request body.

gunicorn refuses some requests before the app sees them (a request line or a header it cannot
parse, a URI over 4 KB, more than 100 headers, a bad Content-Length) and answers them from
``Worker.handle_error`` with an HTML page. The worker classes here (``GeventWorker``,
``ThreadWorker``, ``SyncWorker``: gunicorn's, with ``JsonErrors`` mixed in) answer the
contract's JSON instead: ``{"error", "code", "requestId"}`` with ``X-Request-Id`` and
``x-should-retry: false``, and log one escaped, redacted line with that request id. Their codes
are in the one error catalogue (``errors.ERROR_CODES``, scope "server"), which gives each its
status; ``errors.render_raw_error`` draws the bytes.

A response has a deadline too (``send_deadline.py``): one its client does not take in time
closes its connection without a socket error's traceback (``SendTimeouts``).

``BodyDeadline`` wraps the app (gunicorn.conf.py installs it in every worker): a client whose
body has not arrived ``seconds`` after its headers gets 408 ``REQUEST_TIMEOUT`` and its
connection is closed (gunicorn closes one whose body read failed), so stalled uploads cannot
hold every greenlet or thread of a worker.
"""

import socket
import ssl
import time
import uuid
from datetime import datetime

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.wsgi import Response
from gunicorn.http.wsgi import default_environ
from gunicorn.workers import ggevent
from gunicorn.workers import gthread
from gunicorn.workers import sync

from ..errors import ApiError
from ..errors import ConfigError
from ..errors import error_status
from ..errors import reason_phrase
from ..errors import render_raw_error
from .logs import escape
from .logs import escape_quoted


def _errors(*names):
    """Return gunicorn's exception classes of these names (older gunicorns lack some)."""
    return tuple(getattr(http_errors, name) for name in names if hasattr(http_errors, name))


CHUNK_ERRORS = _errors("InvalidChunkSize", "ChunkMissingTerminator", "InvalidChunkExtension")
#: (exception types, code, message): the first match wins; each code's status is the catalogue's (errors.py).
REFUSALS = [
    (_errors("InvalidResponseHeader", "InvalidResponseHeaderName", "ConfigurationProblem"),
     "INTERNAL_ERROR", "Internal server error."),
    (_errors("LimitRequestLine"), "URI_TOO_LONG", "The request line (method, URI and version) is too long."),
    (_errors("LimitRequestHeaders"), "HEADERS_TOO_LARGE", "Too many request headers, or one is too large."),
    (_errors("InvalidHeader", "InvalidHeaderName", "ObsoleteFolding", "InvalidSchemeHeaders"),
     "INVALID_HEADER", "A request header is malformed (its name, its value or a Content-Length)."),
    (_errors("InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion", "InvalidProxyLine",
             "InvalidH2CPreface") + (ssl.SSLError,),
     "INVALID_REQUEST_LINE", "The request line is malformed."),
    (CHUNK_ERRORS, "INVALID_CHUNKED_BODY", "The chunked request body is malformed."),
    (_errors("UnsupportedTransferCoding"),
     "UNSUPPORTED_TRANSFER_ENCODING", "Transfer-Encoding must be chunked or absent."),
    (_errors("ExpectationFailed"), "EXPECTATION_FAILED", "Only 'Expect: 100-continue' is supported."),
    (_errors("ForbiddenProxyRequest"), "FORBIDDEN", "Request forbidden."),
]
UNEXPECTED = ("INTERNAL_ERROR", "Internal server error.")


def refusal_for(error):
    """Return the ``ApiError`` answering an error gunicorn raised before or around the app."""
    code, message = next(((code, message) for types, code, message in REFUSALS if isinstance(error, types)),
                         UNEXPECTED)
    return ApiError(error_status(code), code, message)


class JsonErrors:
    """Mixin for gunicorn workers: answer gunicorn's own refusals in the JSON contract."""

    def handle_error(self, req, client, addr, exc):
        started = datetime.now()
        addr = addr or ("", -1)  # a unix socket has no peer address
        request_id = "req_" + uuid.uuid4().hex
        refusal = refusal_for(exc)
        status, code = refusal.status, refusal.code
        if status >= 500:
            self.log.exception("server error requestId=%s status=%d code=%s client=%s", request_id, status, code,
                               escape(addr[0]))
        else:
            # The error's text quotes the client's bytes: escaped (one line) and redacted by the logger.
            self.log.warning('invalid request requestId=%s status=%d code=%s client=%s error="%s"', request_id, status,
                             code, escape(addr[0]), escape_quoted(f"{type(exc).__name__}: {exc}"))
        response = render_raw_error(refusal, request_id)
        if req is None and hasattr(getattr(exc, "req", None), "headers"):
            req = exc.req  # a header error knows its request: log it in the access log too
        if req is not None:
            self._log_refusal(req, client, addr, status, request_id, len(response), started)
        try:
            util.write_nonblock(client, response)
        except OSError:
            self.log.debug("could not send the error response requestId=%s", request_id)

    def _log_refusal(self, req, client, addr, status, request_id, length, started):
        environ = default_environ(req, client, self.cfg)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
        response = Response(req, client, self.cfg)
        response.status = f"{status} {reason_phrase(status)}"
        response.headers = [("X-Request-Id", request_id)]
        response.sent = length
        self.log.access(response, req, environ, datetime.now() - started)


class SendTimeouts:
    """Mixin for gunicorn workers: a response past its send deadline (send_deadline.py) just closes its connection.

    ``DeadlineBody`` has logged it and set the reset; gunicorn would log a socket error's traceback.
    """

    def handle_request(self, *args):
        try:
            return super().handle_request(*args)
        except TimeoutError:  # only a response's writes have a timeout here: the body's reads turn theirs into a 408
            if isinstance(self, gthread.ThreadWorker):
                return False  # no keep-alive: the connection is closed
            raise StopIteration("the response's send deadline passed")  # gevent, sync: the connection is closed


class GeventWorker(SendTimeouts, JsonErrors, ggevent.GeventWorker):
    """gunicorn's gevent worker (the default), answering its refusals in JSON."""


class ThreadWorker(SendTimeouts, JsonErrors, gthread.ThreadWorker):
    """gunicorn's gthread worker, answering its refusals in JSON."""


class SyncWorker(SendTimeouts, JsonErrors, sync.SyncWorker):
    """gunicorn's sync worker, answering its refusals in JSON."""


def json_worker_class(name, threads):
    """Return the worker class for GUNICORN_WORKER_CLASS ``name``, or raise ConfigError."""
    if name == "sync" and threads > 1:
        name = "gthread"  # gunicorn's own rule: sync with threads is gthread
    classes = {"gevent": GeventWorker, "gthread": ThreadWorker, "sync": SyncWorker}
    if name not in classes:
        raise ConfigError(f"environment variable GUNICORN_WORKER_CLASS: expected gevent, gthread or sync, got {name!r}")
    return classes[name]


class BodyDeadline:
    """WSGI middleware: a request body must arrive within ``seconds`` of its headers, or 408."""

    def __init__(self, app, seconds):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        # gunicorn closes a connection whose body read failed: the 408 is its last answer.
        environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], sock, time.monotonic() + self.seconds,
                                              self.seconds)
        return self.app(environ, start_response)


class DeadlineInput:
    """``wsgi.input`` whose every read waits at most until the deadline.

    Raises ``ApiError`` rendered by the app's handler: 408 ``REQUEST_TIMEOUT`` past the deadline
    (nothing was sent anywhere, so retrying is safe), 400 ``INVALID_CHUNKED_BODY`` for chunked
    framing gunicorn cannot parse (it would otherwise surface as a 500).
    """

    def __init__(self, stream, sock, deadline, seconds):
        self.stream = stream
        self.sock = sock
        self.deadline = deadline
        self.seconds = seconds
        self.expired = False

    def _before_deadline(self, read, *args):
        remaining = self.deadline - time.monotonic()
        if self.expired or remaining <= 0:
            self._expire()
        previous = self.sock.gettimeout()
        self.sock.settimeout(remaining)
        try:
            return read(*args)
        except TimeoutError:
            self._expire()
        except CHUNK_ERRORS:
            raise ApiError(400, "INVALID_CHUNKED_BODY", "The chunked request body is malformed.")
        finally:
            self.sock.settimeout(previous)

    def _expire(self):
        self.expired = True
        try:
            # Nothing more will be read: gunicorn's closing of the connection then does not linger
            # waiting for the silent client (gthread lingers up to 2 s each, on its main thread).
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        raise ApiError(408, "REQUEST_TIMEOUT", f"The request body did not arrive within {self.seconds:g} seconds.",
                       should_retry=True)

    def read(self, size=None):
        return self._before_deadline(self.stream.read, size)

    def readline(self, size=None):
        return self._before_deadline(self.stream.readline, size)

    def readlines(self, hint=None):
        return self._before_deadline(self.stream.readlines, hint)

    def __iter__(self):
        while line := self.readline():
            yield line
