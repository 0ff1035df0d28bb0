"""The OpenAPI 3 document of the gateway, generated from its marshmallow schemas.

Served at ``GET /api/openapi.json``. Request and response bodies come from ``schemas.py``
(apispec's MarshmallowPlugin); every error code the gateway can answer is listed once in
``ERROR_CODES`` with its status, and each operation documents the statuses it can return.
The tests check that every route of the app and every ``ApiError`` raised in the code is here.
"""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint

from . import __version__
from . import schemas

bp = Blueprint("openapi", __name__)

# (status, code, scope, when). Scopes: "key" (authenticated routes), "generation" (the images
# endpoint), "ledger" (routes that read or write the ledger), "any" (every route).
ERROR_CODES = (
    (400, "API_KEY_REQUIRED", "key", "No X-API-Key (or Authorization: Bearer) header."),
    (401, "INVALID_API_KEY_FORMAT", "key", "The key is not ziri-{userId}-{hex secret}."),
    (403, "API_KEY_INVALID", "key", "Unknown key."),
    (403, "API_KEY_REVOKED_OR_DISABLED", "key", "The key is disabled."),
    (403, "API_KEY_EXPIRED", "key", "The key is past its expires_at."),
    (400, "INVALID_JSON", "generation", "The body is not valid JSON."),
    (400, "INVALID_BODY", "generation", "The body is JSON but not an object."),
    (415, "UNSUPPORTED_MEDIA_TYPE", "generation", "The body is not application/json."),
    (413, "REQUEST_TOO_LARGE", "generation", "The body exceeds ZIRI_MAX_BODY_BYTES."),
    (408, "REQUEST_TIMEOUT", "generation", "The body did not arrive within ZIRI_BODY_TIMEOUT_SECONDS of the headers."),
    (400, "INVALID_CHUNKED_BODY", "generation", "The chunked body cannot be parsed."),
    (400, "MISSING_FIELDS", "generation", "provider, model or prompt is missing (`missing`)."),
    (400, "VALIDATION_ERROR", "generation", "A field has the wrong type or range (`details`)."),
    (400, "STREAMING_NOT_SUPPORTED", "generation", "stream: true."),
    (404, "PROVIDER_NOT_FOUND", "generation", "Unknown provider (`availableProviders`)."),
    (400, "ACTION_NOT_SUPPORTED", "generation", "The model is not an image model (`suggestedModel`)."),
    (400, "IMAGE_CONFIG_NOT_FOUND", "generation", "Unknown model, or a quality/size without a price."),
    (410, "MODEL_RETIRED", "generation", "The provider has retired the model (`retiredOn`, `suggestedModel`)."),
    (400, "PARAMETER_NOT_SUPPORTED", "generation", "A parameter the model does not accept (`unsupported`)."),
    (400, "IMAGE_REQUEST_TOO_LARGE", "generation", "n above the model's maximum."),
    (400, "PROMPT_TOO_LONG", "generation", "The prompt is longer than the model accepts."),
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
    (400, "LLM_PROVIDER_ERROR", "generation", "The provider refused the request; its 4xx status is kept."),
    (429, "LLM_PROVIDER_ERROR", "generation", "The provider rate-limited the gateway."),
    (502, "LLM_PROVIDER_ERROR", "generation", "Provider 5xx, unreachable, bad answer, or it refused our credentials."),
    (504, "LLM_PROVIDER_ERROR", "generation", "The provider timed out; the images may have been generated."),
    (503, "LEDGER_UNAVAILABLE", "ledger", "The cost ledger cannot be written."),
    (401, "METRICS_TOKEN_INVALID", "metrics", "No or a wrong 'Authorization: Bearer' metrics token."),
    (401, "ADMIN_TOKEN_INVALID", "admin", "No admin session and no or a wrong 'Authorization: Bearer' admin token."),
    (404, "NOT_FOUND", "unrouted", "No such endpoint."),
    (405, "METHOD_NOT_ALLOWED", "any", "Method not allowed for this endpoint."),
    (500, "INTERNAL_ERROR", "any", "Anything unexpected (logged with the request id)."),
)

HEADERS = {
    "X-Request-Id": {"description": "The gateway's id of this request (also in the ledger and logs).",
                     "schema": {"type": "string"}},
    "x-should-retry": {"description": "true only when sending the request again cannot double-bill "
                                      "(OpenAI's SDKs obey it).",
                       "schema": {"type": "string", "enum": ["true", "false"]}},
}
_REQUEST_ID = {"$ref": "#/components/headers/X-Request-Id"}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "A client token, unique per intended generation: a second request with the same key "
                   "(within 24 h, per API key) is refused with 409 instead of being billed again.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_SHOULD_RETRY = {"$ref": "#/components/headers/x-should-retry"}
_GENERATION_DESCRIPTION = (
    "Generate images. The body is priced and checked against the key's limits before the provider "
    "is called; fields other than the gateway's own are provider parameters, accepted only if the "
    "model's catalog entry lists them.")

# path -> {method: (summary, request schema, response schema, error scopes, authenticated)}
OPERATIONS = {
    "/api/images/generations": {"post": ("Generate images", "GenerationRequest", "ImagesResponse",
                                         ("key", "generation", "ledger"), True)},
    "/v1/images/generations": {"post": ("Generate images (OpenAI-compatible path; provider defaults to openai)",
                                        "OpenAIImagesRequest", "ImagesResponse", ("key", "generation", "ledger"),
                                        True)},
    "/api/me/usage": {"get": ("The key's current spend, limits and counts", None, "Usage", ("key", "ledger"),
                              True)},
    "/health": {"get": ("Liveness", None, "Health", (), False)},
    "/ready": {"get": ("Readiness: key file, catalog, ledger and a provider usable", None, "Readiness", (), False)},
    "/api/openapi.json": {"get": ("This document", None, None, (), False)},
    "/metrics": {"get": ("Prometheus metrics (only when ZIRI_METRICS_TOKEN is set; Bearer that token)", None, None,
                         ("metrics",), False)},
    "/admin/": {"get": ("The spend dashboard, HTML (only when ZIRI_ADMIN_TOKEN is set)", None, None, ("admin",),
                        False)},
    "/admin/login": {"get": ("The dashboard's sign-in form, HTML", None, None, (), False),
                     "post": ("Sign in to the dashboard (form: token, csrf); sets a session cookie", None, None, (),
                              False)},
}


# Answers other than 200 that are not errors in the usual shape.
OTHER_RESPONSES = {
    "/ready": {"503": {"description": "Not ready: at least one check failed (each is named).",
                       "content": {"application/json": {"schema": "Readiness"}}}},
}


def _error_responses(scopes):
    """Return {status: response} for the error codes of ``scopes`` (plus those of every route)."""
    by_status = {}
    for status, code, scope, when in ERROR_CODES:
        if scope in scopes or scope == "any":
            by_status.setdefault(str(status), []).append(f"`{code}`: {when}")
    return {
        status: {
            "description": " ".join(lines),
            "headers": {"X-Request-Id": _REQUEST_ID, "x-should-retry": _SHOULD_RETRY},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, lines in sorted(by_status.items())
    }


def _operation(summary, request_schema, response_schema, scopes, authenticated):
    ok = {"description": "OK", "headers": {"X-Request-Id": _REQUEST_ID},
          "content": {"application/json": {"schema": response_schema or {"type": "object"}}}}
    operation = {"summary": summary, "responses": {"200": ok, **_error_responses(scopes)}}
    if request_schema is not None:
        operation["description"] = _GENERATION_DESCRIPTION
        operation["parameters"] = [IDEMPOTENCY_KEY]
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": request_schema}}}
    if authenticated:
        operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
    return operation


def build_document():
    """Return the OpenAPI document (a dict)."""
    spec = APISpec(
        title="ziri-images",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "An authenticated, priced and metered gateway for AI image generation."},
    )
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer",
                                                "description": "The same key, for OpenAI's SDKs."})
    for name in ("GenerationRequest", "ImagesResponse", "Error", "Usage", "Health", "Readiness"):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    spec.components.schema("OpenAIImagesRequest", schema=schemas.OpenAIImagesRequestSchema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for path, methods in OPERATIONS.items():
        operations = {method: _operation(*details) for method, details in methods.items()}
        for operation in operations.values():
            operation["responses"].update(OTHER_RESPONSES.get(path, {}))
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["x-error-codes"] = [{"status": status, "code": code, "when": when}
                                 for status, code, _scope, when in ERROR_CODES]
    return document


@bp.get("/api/openapi.json")
def openapi_document():
    return build_document()
