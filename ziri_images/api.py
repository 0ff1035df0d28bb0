"""The HTTP API: one blueprint, read top to bottom as the request's path.

authenticate -> validate -> price -> check access -> reserve -> call provider -> settle -> respond

Generations (JSON) and edits (multipart, with uploads) take the same path, ``serve``, one line
per step. The request's money is one ``billing.Bill``: opened (reserved) before the provider is
called, settled exactly once by the call's outcome. With ``stream: true`` its last steps relay
the provider's events instead (``streaming.py``), settling the same Bill.
"""

import logging
import time
import uuid

from flask import Blueprint
from flask import current_app
from flask import g
from flask import request

from .access import authenticate
from .access import check_access
from .access import idempotency_digest
from .access import resolve_provider
from .billing import Bill
from .catalog.quoting import price_request
from .errors import ApiError
from .gateway import current_gateway
from .schemas.request import OPENAI_COMPATIBLE_DEFAULT_PROVIDER
from .schemas.request import parse_generation_request
from .server.logs import escape
from .server.send_deadline import start_send_deadline
from .streaming import stream_response
from .uploads.form import hold_edit_body
from .uploads.form import read_edit_form

log = logging.getLogger("ziri_images")

bp = Blueprint("api", __name__)


@bp.before_app_request
def assign_request_id():
    g.request_id = "req_" + uuid.uuid4().hex
    g.started = time.monotonic()


@bp.after_app_request
def finish_response(response):
    response.headers["X-Request-Id"] = g.request_id
    key = g.get("api_key")
    if key is not None:
        response.headers.update(current_gateway().limiter.rate_headers(key))
    # client: the peer, or the forwarded client address behind ZIRI_TRUSTED_PROXIES proxies.
    # The client's values are escaped: a %0a or a space in the path cannot forge a line or a field.
    log.info(
        "request requestId=%s method=%s path=%s status=%d code=%s key=%s client=%s latencyMs=%d",
        g.request_id, escape(request.method), escape(request.path), response.status_code, g.get("error_code", "-"),
        key.id if key is not None else "-", escape(request.remote_addr), elapsed_ms(g.started),
    )
    return response


def elapsed_ms(started):
    return round((time.monotonic() - started) * 1000)


@bp.post("/api/images/generations")
@bp.post("/v1/images/generations")
def create_generation():
    key = authenticate()
    return serve(key, "generations", parse_generation_request(json_body()))


@bp.post("/api/images/edits")
@bp.post("/v1/images/edits")
def create_edit():
    key = authenticate()
    # Before any of the body is read: the key's limits, then the worker's room for uploads.
    hold_edit_body(current_gateway().limiter, key)
    body, images, mask = read_edit_form(current_app.config)
    return serve(key, "edits", parse_generation_request(with_default_provider(body)), images, mask)


def serve(key, endpoint, generation, images=(), mask=None):
    """Answer an authenticated, validated request: price, check access, reserve, call, settle, respond."""
    gateway = current_gateway()
    idempotency_key = idempotency_digest()
    image_model, quote, payload = price_request(gateway, generation, images, mask)
    check_access(key, generation.provider, generation.model)
    provider = resolve_provider(gateway, key, generation.provider)
    start_send_deadline(provider.call_deadline)  # before the reservation, which must outlive the answer's sending
    bill = Bill.open(gateway.limiter, g.request_id, key, endpoint, generation, image_model, quote, idempotency_key)
    files = upload_files(images, mask)
    if generation.stream:
        return stream_response(bill.call(provider.open_stream, payload, g.request_id, files), endpoint, bill)
    result = bill.call(send, provider, payload, files)
    return generation_response(result, bill.charge(result), bill)


def json_body():
    """Return the decoded JSON body (``provider`` defaulted on /v1), or raise the contract's 400."""
    try:
        # Not cached on the request: the parsed body and its bytes would stay held while the provider works.
        body = request.get_json(cache=False)
    except RecursionError:
        # json gives up on deeply nested arrays or objects with RecursionError, which Flask lets through as a 500.
        raise ApiError(400, "INVALID_JSON", "Request body is not valid JSON: it is nested too deeply.")
    return with_default_provider(body)


def with_default_provider(body):
    """On /v1 (OpenAI's SDKs send no provider), route ``provider/model`` or a model one provider serves."""
    if request.path.startswith("/v1/") and isinstance(body, dict) and isinstance(body.get("model"), str):
        provider, model = current_gateway().prices.route(body.get("provider"), body["model"],
                                                         OPENAI_COMPATIBLE_DEFAULT_PROVIDER)
        body.update(provider=provider, model=model)
    elif request.path.startswith("/v1/") and isinstance(body, dict) and "provider" not in body:
        body["provider"] = OPENAI_COMPATIBLE_DEFAULT_PROVIDER
    return body


def upload_files(images, mask):
    """Return an edit's files as requests sends them (None for a generation): OpenAI's field names."""
    if not images:
        return None
    field = "image[]" if len(images) > 1 else "image"
    return [(field, image.as_file()) for image in images] + ([("mask", mask.as_file())] if mask else [])


def send(provider, payload, files):
    """Return the provider's answer (a ProviderResult): to an edit when there are files, else to a generation."""
    if files is None:
        return provider.generate(payload, g.request_id)
    return provider.edit(payload, files, g.request_id)


def generation_response(result, charge, bill):
    """Return the client's answer: the provider's body with only the images charged, plus ``_meta``."""
    return {**result.body, "data": result.body["data"][:charge.images], "_meta": bill.meta(result, charge)}


@bp.get("/api/me/usage")
def usage():
    key = authenticate()
    return current_gateway().limiter.usage(key)


@bp.get("/health")
def health():
    return {"status": "ok"}
