"""Turn every failure into the contract's JSON error body.

Raise ``ApiError(status, code, message, **details)`` anywhere in a request; one app-level
handler renders it, for werkzeug's HTTP errors (bad JSON, 404, 405, 413, 415) and for anything
unexpected (500, logged with the request id, never a traceback in the body). ``/api/*`` answers
the flat ``{"error", "code", "requestId", ...details}``; ``/v1/*`` answers OpenAI's shape,
``{"error": {"message", "type", "param", "code", "requestId", ...details}}``, which OpenAI's
SDKs read into ``e.code``, ``e.type`` and ``e.param``. ``ERROR_CODES`` is the one catalogue of
codes, for every layer: it gives each its status and OpenAI type, the OpenAPI document lists it,
and the gunicorn worker's own refusals (``server/workers.py``, before the app runs) take their
status from it and are drawn by ``render_raw_error``.
"""

import json
import logging
from http import HTTPStatus

from flask import g
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("ziri_images")


class ConfigError(Exception):
    """A configuration file or setting is unusable; the message names it and the problem."""


class ApiError(Exception):
    """An error answered to the client with a stable ``code``."""

    def __init__(self, status, code, message, headers=None, should_retry=False, param=None, **details):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param  # the offending request field, when there is one
        self.headers = dict(headers or {})
        self.should_retry = should_retry
        self.details = details


# (status, code, scope, when). Scopes: "key" (authenticated routes), "generation" (the images
# endpoint), "ledger" (routes that read or write the ledger), "admin_api" (/admin/api/), "any" (every
# route), "server" (the gunicorn worker, before the app: any path). A code several scopes answer
# names them in a tuple.
ERROR_CODES = (
    (400, "API_KEY_REQUIRED", "key", "No X-API-Key (or Authorization: Bearer) header."),
    (401, "INVALID_API_KEY_FORMAT", "key", "The key is not ziri-{userId}-{hex secret}."),
    (403, "API_KEY_INVALID", "key", "Unknown key."),
    (403, "API_KEY_REVOKED_OR_DISABLED", "key", "The key is disabled."),
    (403, "API_KEY_EXPIRED", "key", "The key is past its expires_at."),
    (503, "KEYS_UNAVAILABLE", "key", "The keys are kept in the database, which has not answered since this process "
                                     "started; safe to retry."),
    (400, "INVALID_JSON", ("generation", "admin_api"), "The body is not valid JSON."),
    (400, "INVALID_BODY", ("generation", "admin_api"), "The body is JSON but not an object."),
    (415, "UNSUPPORTED_MEDIA_TYPE", ("generation", "admin_api"), "The body is not application/json."),
    (413, "REQUEST_TOO_LARGE", ("generation", "admin_api"), "The body exceeds ZIRI_MAX_BODY_BYTES."),
    (408, "REQUEST_TIMEOUT", "generation", "The body did not arrive within ZIRI_BODY_TIMEOUT_SECONDS of the headers."),
    (400, "INVALID_CHUNKED_BODY", "generation", "The chunked body cannot be parsed."),
    (400, "MISSING_FIELDS", "generation", "provider, model or prompt is missing (`missing`)."),
    (400, "VALIDATION_ERROR", ("generation", "admin_api"), "A field has the wrong type or range (`details`); on "
                                                           "/admin/api/ also an edit the key store refuses."),
    (400, "INVALID_SIZE", "generation", "A size the model's size rule does not take: not WxH, or past a limit "
                                        "(the message and `reason` say which)."),
    (400, "STREAMING_NOT_SUPPORTED", "generation", "stream: true for a model whose catalog entry does not stream."),
    (404, "PROVIDER_NOT_FOUND", "generation", "Unknown provider (`availableProviders`)."),
    (400, "PROVIDER_REQUIRED", "generation", "On /v1, a model several providers serve, without `provider` "
                                             "(`providers`); name one, or send `provider/model`."),
    (400, "ACTION_NOT_SUPPORTED", "generation", "The model is not an image model (`suggestedModel`)."),
    (400, "IMAGE_CONFIG_NOT_FOUND", "generation", "Unknown model, or a quality/size without a price."),
    (410, "MODEL_RETIRED", "generation", "The provider has retired the model (`retiredOn`, `suggestedModel`)."),
    (400, "PARAMETER_NOT_SUPPORTED", "generation", "A parameter the model does not accept (`unsupported`)."),
    (400, "IMAGE_REQUEST_TOO_LARGE", "generation", "n above the model's maximum (1 for a stream)."),
    (400, "PROMPT_TOO_LONG", "generation", "The prompt is longer than the model accepts."),
    (400, "EDITS_NOT_SUPPORTED", "edit", "The model (or its provider) does not edit images."),
    (413, "TOO_MANY_IMAGES", "edit", "More reference images than ZIRI_EDIT_MAX_FILES or the model takes, or more "
                                     "than one mask."),
    (413, "UPLOAD_TOO_LARGE", "edit", "A file above ZIRI_EDIT_MAX_FILE_BYTES, or all of them above "
                                      "ZIRI_EDIT_MAX_TOTAL_BYTES."),
    (400, "UNSUPPORTED_IMAGE_FORMAT", "edit", "An upload that is not a PNG, JPEG or WebP image (by content)."),
    (503, "UPLOAD_CAPACITY_FULL", "edit", "The worker holds ZIRI_EDIT_WORKER_MAX_BYTES of edit bodies, or the key "
                                          "half of it (`reason`: server or key); safe to retry (Retry-After)."),
    (403, "AUTHORIZATION_DENIED", "generation", "Provider or model outside the key's allow-lists (`reason`)."),
    (403, "DEMO_KEY_RESTRICTED", "generation", "A demo key against a non-local provider."),
    (429, "RATE_LIMIT_EXCEEDED", "generation", "Over the key's requests_per_minute (Retry-After)."),
    (503, "QUEUE_FULL", "generation", "Over the key's max_concurrent_requests (Retry-After)."),
    (400, "INVALID_IDEMPOTENCY_KEY", "generation", "Idempotency-Key is not 1 to 255 printable characters."),
    (409, "IDEMPOTENT_REQUEST_IN_PROGRESS", "generation",
     "A request with the same Idempotency-Key is still running (originalRequestId)."),
    (409, "IDEMPOTENCY_KEY_REUSED", "generation",
     "A request with the same Idempotency-Key was already processed (originalRequestId)."),
    (402, "SPEND_LIMIT_EXCEEDED", "generation", "The cost does not fit the daily or monthly budget."),
    (500, "PROVIDER_KEY_MISSING", "generation", "No provider key is configured."),
    (400, "CONTENT_POLICY_VIOLATION", "generation", "The provider's safety system refused the prompt or an image "
                                                    "(`reason`: the provider's); charged what the provider billed."),
    (400, "LLM_PROVIDER_ERROR", "generation", "The provider refused the request; its 4xx status is kept."),
    (429, "LLM_PROVIDER_ERROR", "generation", "The provider rate-limited the gateway."),
    (502, "LLM_PROVIDER_ERROR", "generation", "Provider 5xx, unreachable, bad answer, or it refused our credentials."),
    (504, "LLM_PROVIDER_ERROR", "generation", "The provider timed out; the images may have been generated."),
    (503, "LEDGER_UNAVAILABLE", ("ledger", "admin_api"), "The cost ledger (or the database holding the keys) cannot "
                                                          "be written."),
    (401, "METRICS_TOKEN_INVALID", "metrics", "No or a wrong 'Authorization: Bearer' metrics token."),
    (401, "ADMIN_TOKEN_INVALID", ("admin", "admin_api"),
     "No admin session and no or a wrong 'Authorization: Bearer' admin token (/admin/api/: the token only)."),
    (404, "KEY_NOT_FOUND", "admin_api", "No key with that id."),
    (404, "TEAM_NOT_FOUND", "admin_api", "No team with that id."),
    (409, "KEY_EXISTS", "admin_api", "A key with that id exists (in the database: or existed; ids are not reused)."),
    (409, "TEAM_EXISTS", "admin_api", "A team with that id exists."),
    (409, "TEAM_NOT_EMPTY", "admin_api", "The team still has keys: move or delete them first."),
    (404, "MODEL_NOT_FOUND", "models", "No such image model, or the key may not use it."),
    (404, "NOT_FOUND", ("unrouted", "admin_api"), "No such endpoint (/admin/ and /admin/api/: also while "
                                                  "ZIRI_ADMIN_TOKEN is not set)."),
    (405, "METHOD_NOT_ALLOWED", "any", "Method not allowed for this endpoint."),
    (500, "INTERNAL_ERROR", "any", "Anything unexpected (logged with the request id)."),
    (400, "INVALID_REQUEST_LINE", "server", "The request line cannot be parsed."),
    (400, "INVALID_HEADER", "server", "A header's name or value, or a Content-Length, is malformed."),
    (414, "URI_TOO_LONG", "server", "The request line is over 4 KB."),
    (431, "HEADERS_TOO_LARGE", "server", "A header over 8 KB, or more than 100 headers."),
    (501, "UNSUPPORTED_TRANSFER_ENCODING", "server", "A Transfer-Encoding other than chunked."),
    (417, "EXPECTATION_FAILED", "server", "An Expect header other than 100-continue."),
    (403, "FORBIDDEN", "server", "A request gunicorn forbids (a PROXY line from an address it does not trust)."),
)
# The status of each code; a code answered with several (LLM_PROVIDER_ERROR) maps to its first.
_STATUS_BY_CODE = {code: status for status, code, _scope, _when in reversed(ERROR_CODES)}
# The status line's words where Python's differ from what the gateway has always answered.
_REASONS = {414: "URI Too Long"}

# OpenAI's error types: by code where the status alone does not say it, otherwise by status.
_TYPE_BY_CODE = {
    "SPEND_LIMIT_EXCEEDED": "insufficient_quota",
    "LLM_PROVIDER_ERROR": "api_error",
    "PROVIDER_KEY_MISSING": "server_error",
    "LEDGER_UNAVAILABLE": "server_error",
    "INTERNAL_ERROR": "server_error",
}
_TYPE_BY_STATUS = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                   429: "rate_limit_error"}


def error_type(status, code):
    """Return OpenAI's error ``type`` for a gateway error."""
    if code in _TYPE_BY_CODE and not (code == "LLM_PROVIDER_ERROR" and status < 500):
        return _TYPE_BY_CODE[code]
    return _TYPE_BY_STATUS.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_param(error):
    """Return the request field an error is about (OpenAI's ``param``), or None."""
    if error.param is not None:
        return error.param
    for name in ("missing", "unsupported"):
        if error.details.get(name):
            return error.details[name][0]
    fields = error.details.get("details")
    if isinstance(fields, dict) and fields:
        return sorted(fields)[0]
    return None


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
    """Render an ``ApiError`` as the contract's JSON body: OpenAI's shape on ``/v1``, the flat one elsewhere."""
    if request.path.startswith("/v1/"):
        body = {"error": {"message": error.message, "type": error_type(error.status, error.code),
                          "param": error_param(error), "code": error.code, "requestId": request_id(),
                          **error.details}}
    else:
        body = {"error": error.message, "code": error.code, "requestId": request_id(), **error.details}
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    # OpenAI's SDKs obey this header: never let them resend a request that may be billed.
    response.headers["x-should-retry"] = "true" if error.should_retry else "false"
    g.error_code = error.code
    return response


def error_status(code):
    """Return the HTTP status the catalogue gives ``code``."""
    return _STATUS_BY_CODE[code]


def reason_phrase(status):
    """Return the words of ``status``'s status line (``URI Too Long`` for 414)."""
    return _REASONS.get(status) or HTTPStatus(status).phrase


def render_raw_error(error, request_id):
    """Return a whole HTTP/1.1 response closing its connection: ``error`` answered outside Flask, in the flat body.

    The gunicorn worker sends it (server/workers.py) for a request the app never saw.
    """
    body = json.dumps({"error": error.message, "code": error.code, "requestId": request_id, **error.details}).encode()
    head = (f"HTTP/1.1 {error.status} {reason_phrase(error.status)}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n"
            f"x-should-retry: {'true' if error.should_retry else 'false'}\r\n\r\n")
    return head.encode("latin-1") + body


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
