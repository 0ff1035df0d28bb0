"""The HTTP API: one blueprint, read top to bottom as the request's path.

authenticate -> validate -> price -> check access -> reserve -> call provider -> settle -> respond

Generations (JSON) and edits (multipart, with uploads) take the same path, ``serve``; with
``stream: true`` its last steps relay the provider's events instead (``streaming.py``).
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
from .catalog.pricing import PriceBook
from .catalog.quoting import price_request
from .errors import ApiError
from .gateway import current_gateway
from .ledger.records import request_summary
from .providers.openai import ProviderError
from .schemas import OPENAI_COMPATIBLE_DEFAULT_PROVIDER
from .schemas import parse_generation_request
from .server.logs import escape
from .server.send_deadline import start_send_deadline
from .streaming import stream_response
from .uploads import hold_edit_body
from .uploads import read_edit_form

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
    hold_edit_body(key)  # before any of it is read: the key's limits, then the worker's room for uploads
    body, images, mask = read_edit_form(current_app.config)
    return serve(key, "edits", parse_generation_request(with_default_provider(body)), images, mask)


def serve(key, endpoint, generation, images=(), mask=None):
    """The request's path once it is authenticated and validated, the same for every endpoint."""
    gateway = current_gateway()
    idempotency_key = idempotency_digest()
    uploads = (*images, *([mask] if mask else []))
    image_model, quote, payload = price_request(gateway, generation, uploads)
    check_access(key, generation.provider, generation.model)
    provider = resolve_provider(gateway, key, generation.provider)

    start_send_deadline(provider.call_deadline)  # before the reservation, which must outlive the answer's sending
    settle = reserve_spend(gateway, key, endpoint, generation, quote, idempotency_key)
    if generation.stream:
        return stream_events(provider, endpoint, generation, image_model, payload, quote, settle,
                             upload_files(images, mask))
    result = call_provider(provider, payload, quote, settle, upload_files(images, mask))
    charge = charge_result(image_model, quote, result, settle)
    return generation_response(generation, quote, result, charge)


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
    if request.path.startswith("/v1/") and isinstance(body, dict) and "provider" not in body:
        body["provider"] = OPENAI_COMPATIBLE_DEFAULT_PROVIDER  # OpenAI's SDKs do not send one
    return body


def upload_files(images, mask):
    """Return an edit's files as requests sends them (None for a generation): OpenAI's field names."""
    if not images:
        return None
    field = "image[]" if len(images) > 1 else "image"
    return [(field, image.as_file()) for image in images] + ([("mask", mask.as_file())] if mask else [])


def reserve_spend(gateway, key, endpoint, generation, quote, idempotency_key):
    """Reserve the most the request can cost; return ``settle(status, http_status, **outcome)`` for its charge."""
    summary = request_summary(g.request_id, endpoint, key, generation, quote, idempotency_key)
    reservation = gateway.limiter.reserve(key, quote.reserved, summary)
    started = time.monotonic()

    def settle(status, http_status, **outcome):
        gateway.limiter.settle(reservation, {
            **summary, "status": status, "httpStatus": http_status, **outcome, "latencyMs": elapsed_ms(started),
        })

    return settle


def call_provider(provider, payload, quote, settle, files=None, stream=False):
    """Return the ProviderResult (if ``stream``: the ProviderStream, unless answered without one); settle a failure."""
    try:
        if stream:
            return provider.open_stream(payload, g.request_id, files)
        if files is not None:
            return provider.edit(payload, files, g.request_id)
        return provider.generate(payload, g.request_id)
    except ProviderError as error:
        settle("provider_error", error.status, **error.charge_fields(quote.reserved))
        raise
    except BaseException:
        # Unknown outcome: charge what was reserved rather than risk an unrecorded generation.
        settle("gateway_error", 500, imagesReturned=None, cost=quote.reserved)
        raise


def charge_result(image_model, quote, result, settle):
    """Return the Charge for a successful call, settled before the client hears back, whatever the body holds."""
    upstream = {"providerStatus": result.provider_status, "providerRequestId": result.provider_request_id}
    try:
        charge = PriceBook.charge(image_model, quote, result.body)
        if charge.cost > quote.reserved:
            # Token bills only (capped): the ledger shows the provider's own figure as tokenCost.
            log.warning("charge exceeds reservation requestId=%s model=%s/%s charged=%s reserved=%s tokenCost=%s",
                        g.request_id, image_model.provider, image_model.name, charge.cost, quote.reserved,
                        charge.token_cost)
        settle("succeeded", 200, **charge.ledger_fields(), **upstream)
    except ApiError:
        raise  # the ledger refused the charge: the reservation stays open and expires at its amount
    except Exception:
        # The provider answered, and may have billed: charge the reservation, and say so.
        log.exception("answer could not be charged requestId=%s model=%s/%s", g.request_id, image_model.provider,
                      image_model.name)
        settle("gateway_error", 502, imagesReturned=None, cost=quote.reserved, mayHaveBilled=True, **upstream)
        raise ProviderError(502, f"Provider '{image_model.provider}' answered, but its answer could not be charged; "
                                 "the reservation was charged instead.", provider=image_model.provider,
                            provider_status=result.provider_status, provider_request_id=result.provider_request_id,
                            may_have_billed=True)
    return charge


def stream_events(provider, endpoint, generation, image_model, payload, quote, settle, files):
    """Return the streamed answer: the provider's events, the request settled once from ``completed`` (streaming.py)."""
    upstream = call_provider(provider, payload, quote, settle, files, stream=True)

    def charge_completed(result):
        return response_meta(generation, quote, result, charge_result(image_model, quote, result, settle))

    return stream_response(upstream, endpoint, quote, settle, charge_completed)


def generation_response(generation, quote, result, charge):
    """Return the client's answer: the provider's body with only the images charged, plus ``_meta``."""
    return {**result.body, "data": result.body["data"][:charge.images],
            "_meta": response_meta(generation, quote, result, charge)}


def response_meta(generation, quote, result, charge):
    """Return the gateway's ``_meta``: the request id, the provider's, and what was reserved and charged."""
    return {
        "requestId": g.request_id,
        "provider": generation.provider,
        "model": generation.model,
        "providerRequestId": result.provider_request_id,
        "cost": {
            "estimated": quote.estimated,
            "reserved": quote.reserved,
            "actual": charge.cost,
            "pricePerImage": charge.price_per_image,
            "imagesRequested": quote.images,
            "imagesCharged": charge.images,
            **charge.choices,
            "currency": quote.currency,
            "chargedBy": charge.charged_by,
            "usage": charge.usage,
        },
    }


@bp.get("/api/me/usage")
def usage():
    key = authenticate()
    return current_gateway().limiter.usage(key)


@bp.get("/health")
def health():
    return {"status": "ok"}
