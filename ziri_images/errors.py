"""Turn every failure into the contract's JSON error body.

Raise ``ApiError(status, code, message, **details)`` anywhere in a request; one app-level
handler renders ``{"error", "code", "requestId", ...details}`` for it, for werkzeug's HTTP
errors (bad JSON, 404, 405, 413, 415) and for anything unexpected (500, logged with the
request id, never a traceback in the body).
"""

import logging

from flask import g
from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("ziri_images")


class ConfigError(Exception):
    """A configuration file or setting is unusable; the message names it and the problem."""


class ApiError(Exception):
    """An error answered to the client with a stable ``code``."""

    def __init__(self, status, code, message, headers=None, should_retry=False, **details):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.should_retry = should_retry
        self.details = details


# werkzeug status -> (code, message) for errors raised before our code runs.
_HTTP_CODES = {
    400: ("INVALID_JSON", "Request body is not valid JSON."),
    404: ("NOT_FOUND", "No such endpoint."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed for this endpoint."),
    413: ("REQUEST_TOO_LARGE", "Request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Request body must be JSON (Content-Type: application/json)."),
}


def request_id():
    """Return the current request's id (set before every request)."""
    return g.get("request_id", "unknown")


def render_api_error(error):
    """Render an ``ApiError`` as the contract's JSON body."""
    body = {"error": error.message, "code": error.code, "requestId": request_id()}
    body.update(error.details)
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    # OpenAI's SDKs obey this header: never let them resend a request that may be billed.
    response.headers["x-should-retry"] = "true" if error.should_retry else "false"
    g.error_code = error.code
    return response


def render_http_exception(error):
    """Render werkzeug's HTTP errors (routing, body parsing) in the same shape."""
    code, message = _HTTP_CODES.get(error.code, (error.name.upper().replace(" ", "_"), error.description))
    headers = {}
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return render_api_error(ApiError(error.code, code, message, headers=headers))


def render_unexpected(error):
    """Log an unexpected exception with the request id and answer a bare 500."""
    log.exception("unhandled error requestId=%s", request_id())
    return render_api_error(ApiError(500, "INTERNAL_ERROR", "Internal server error."))


def init_app(app):
    app.register_error_handler(ApiError, render_api_error)
    app.register_error_handler(HTTPException, render_http_exception)
    app.register_error_handler(Exception, render_unexpected)
