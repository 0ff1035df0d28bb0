"""The OpenAPI 3 document of the gateway, generated from its marshmallow schemas.

Served at ``GET /api/openapi.json``. Request bodies come from ``schemas/request.py`` and response bodies
from ``schemas/responses.py`` (apispec's MarshmallowPlugin); every error code the gateway can answer
is listed once in ``errors.ERROR_CODES`` with its status, and each operation documents the
statuses it can return.
The tests check that every route of the app and every ``ApiError`` raised in the code is here.
"""

from flask import Blueprint

from ._version import __version__
from .errors import ERROR_CODES
from .errors import error_type
from .schemas import request as request_schemas
from .schemas import responses as response_schemas

bp = Blueprint("openapi", __name__)

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
                   "(within 24 h, per API key) is refused with 409 instead of being billed again, unless the "
                   "first was answered x-should-retry: true.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_SHOULD_RETRY = {"$ref": "#/components/headers/x-should-retry"}
_GENERATION_DESCRIPTION = (
    "Generate images. The body is priced and checked against the key's limits before the provider "
    "is called; fields other than the gateway's own are provider parameters, accepted only if the "
    "model's catalog entry lists them.")

_BINARY = {"type": "string", "format": "binary"}
EDIT_FORM = {
    "type": "object",
    "required": ["image", "prompt"],
    "description": "OpenAI's edit form. Text fields are a generation's (model, prompt, n, size, quality and the "
                   "model's parameters, e.g. input_fidelity); on /api also provider.",
    "properties": {
        "image": {"oneOf": [_BINARY, {"type": "array", "items": _BINARY}],
                  "description": "One or more PNG, JPEG or WebP images (also sent as image[])."},
        "mask": {**_BINARY, "description": "Optional: where to edit (a PNG with transparency)."},
        "prompt": {"type": "string"}, "model": {"type": "string"}, "provider": {"type": "string"},
        "n": {"type": "integer", "minimum": 1}, "size": {"type": "string"}, "quality": {"type": "string"},
        "stream": {"type": "string", "enum": ["true", "false"], "description": "true: answer Server-Sent Events."},
        "partial_images": {"type": "integer", "minimum": 0, "maximum": 3, "description": "With stream=true."},
    },
    "additionalProperties": True,
}
EDIT_REQUEST = {"multipart/form-data": {"schema": EDIT_FORM}}

# stream: true answers Server-Sent Events in OpenAI's shapes (ImageGenStreamEvent, ImageEditStreamEvent).
STREAM_EVENT = {
    "type": "object",
    "required": ["type"],
    "description": "One Server-Sent Event (`event: <type>`, `data: <this object>`), passed on as the provider sent "
                   "it: partial images (up to partial_images), then the completed one, whose usage is the charge. A "
                   "stream that ends or breaks without it ends with an `error` event (the reservation is charged).",
    "properties": {
        "type": {"type": "string", "enum": ["image_generation.partial_image", "image_generation.completed",
                                            "image_edit.partial_image", "image_edit.completed", "error"]},
        "b64_json": {"type": "string"}, "created_at": {"type": "integer"}, "size": {"type": "string"},
        "quality": {"type": "string"}, "background": {"type": "string"}, "output_format": {"type": "string"},
        "partial_image_index": {"type": "integer", "description": "Partial images only: 0-based."},
        "usage": {"type": "object", "description": "The completed event: the provider's token usage."},
        "error": {"type": "object", "description": "The error event: the error body's fields (OpenAI's on /v1)."},
        "_meta": {"allOf": [{"$ref": "#/components/schemas/Meta"}],
                  "description": "The completed event: the gateway's addition, as in a JSON answer (the charge)."},
    },
}
STREAMED_PATHS = ("/api/images/generations", "/v1/images/generations", "/api/images/edits", "/v1/images/edits")

# path -> {method: (summary, request schema, response schema, error scopes, authenticated)}
OPERATIONS = {
    "/api/images/generations": {"post": ("Generate images", "GenerationRequest", "ImagesResponse",
                                         ("key", "generation", "ledger"), True)},
    "/v1/images/generations": {"post": ("Generate images (OpenAI-compatible path; provider defaults to openai)",
                                        "OpenAIImagesRequest", "ImagesResponse", ("key", "generation", "ledger"),
                                        True)},
    "/v1/models": {"get": ("The image models this key may use (OpenAI's list shape)", None, "ModelList", ("key",),
                           True)},
    "/v1/models/{model_id}": {"get": ("One image model this key may use", None, "Model", ("key", "models"), True)},
    "/api/images/edits": {"post": ("Edit images (multipart: reference images, optional mask)", EDIT_REQUEST,
                                   "ImagesResponse", ("key", "generation", "edit", "ledger"), True)},
    "/v1/images/edits": {"post": ("Edit images (OpenAI-compatible path; provider defaults to openai)", EDIT_REQUEST,
                                  "ImagesResponse", ("key", "generation", "edit", "ledger"), True)},
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


def _error_responses(scopes, error_schema):
    """Return {status: response} for the error codes of ``scopes`` (plus those of every route)."""
    by_status = {}
    for status, code, scope, when in ERROR_CODES:
        named = (scope,) if isinstance(scope, str) else scope
        if "any" in named or set(named) & set(scopes):
            by_status.setdefault(str(status), []).append(f"`{code}`: {when}")
    return {
        status: {
            "description": " ".join(lines),
            "headers": {"X-Request-Id": _REQUEST_ID, "x-should-retry": _SHOULD_RETRY},
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{error_schema}"}}},
        }
        for status, lines in sorted(by_status.items())
    }


def _operation(path, summary, request_schema, response_schema, scopes, authenticated):
    ok = {"description": "OK", "headers": {"X-Request-Id": _REQUEST_ID},
          "content": {"application/json": {"schema": response_schema or {"type": "object"}}}}
    if path in STREAMED_PATHS:
        ok["content"]["text/event-stream"] = {"schema": STREAM_EVENT}
        ok["description"] = "OK: the images (JSON), or with stream: true their events (text/event-stream)."
    operation = {"summary": summary, "responses": {"200": ok, **_error_responses(scopes, error_schema(path))}}
    if request_schema is not None:
        operation["description"] = _GENERATION_DESCRIPTION
        operation["parameters"] = [IDEMPOTENCY_KEY]
        content = request_schema
        if not isinstance(content, dict):
            content = {"application/json": {"schema": request_schema}}
        operation["requestBody"] = {"required": True, "content": content}
    if "{model_id}" in path:
        operation["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    if authenticated:
        operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
    return operation


def error_schema(path):
    """Return the name of the error body's schema on ``path``: OpenAI's shape on /v1, the flat one elsewhere."""
    return "OpenAIError" if path.startswith("/v1/") else "Error"


def build_document():
    """Return the OpenAPI document (a dict)."""
    # Imported here, not at start-up: only this route uses apispec, and a module imported in the
    # preloaded master is resident in every worker too.
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

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
    spec.components.schema("GenerationRequest", schema=request_schemas.GenerationRequestSchema)
    for name in ("ImagesResponse", "Error", "OpenAIError", "Model", "ModelList", "Usage", "Health", "Readiness"):
        spec.components.schema(name, schema=getattr(response_schemas, f"{name}Schema"))
    spec.components.schema("OpenAIImagesRequest", schema=request_schemas.OpenAIImagesRequestSchema)
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for path, methods in OPERATIONS.items():
        operations = {method: _operation(path, *details) for method, details in methods.items()}
        for operation in operations.values():
            operation["responses"].update(OTHER_RESPONSES.get(path, {}))
        spec.path(path=path, operations=operations)
    from .admin.document import add_admin_api

    add_admin_api(spec, _error_responses)
    document = spec.to_dict()
    document["x-error-codes"] = [{"status": status, "code": code, "type": error_type(status, code), "when": when}
                                 for status, code, _scope, when in ERROR_CODES]
    return document


@bp.get("/api/openapi.json")
def openapi_document():
    return build_document()
