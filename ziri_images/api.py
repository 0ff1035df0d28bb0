"""The HTTP API: one blueprint, read top to bottom as the request's path.

authenticate -> validate -> price -> check access -> reserve -> call provider -> settle -> respond
"""

import hashlib
import logging
import time
import uuid

from flask import Blueprint
from flask import g
from flask import request

from .errors import ApiError
from .gateway import current_gateway
from .providers import ProviderError
from .schemas import OPENAI_COMPATIBLE_DEFAULT_PROVIDER
from .schemas import check_model_fields
from .schemas import parse_generation_request
from .serverlog import escape

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


def authenticate():
    """Return the caller's ApiKey from ``X-API-Key`` (or ``Authorization: Bearer``)."""
    raw_key = request.headers.get("X-API-Key", "").strip()
    if not raw_key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            raw_key = token.strip()
    gateway = current_gateway()
    g.api_key = gateway.keys.authenticate(raw_key, gateway.clock())
    return g.api_key


def idempotency_digest():
    """Return a digest of the client's ``Idempotency-Key`` header (None without one), or raise."""
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isprintable():
        raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 255 printable characters.")
    # Only a digest is kept: the value is the client's, and could be anything.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def check_access(key, provider, model):
    """Raise AUTHORIZATION_DENIED unless the key's allow-lists admit (provider, model)."""
    if key.allowed_providers is not None and provider not in key.allowed_providers:
        raise ApiError(403, "AUTHORIZATION_DENIED", f"This key may not use provider '{provider}'.", param="provider",
                       reason="provider_not_allowed", allowedProviders=list(key.allowed_providers))
    if key.allowed_models is not None and model not in key.allowed_models:
        raise ApiError(403, "AUTHORIZATION_DENIED", f"This key may not use model '{model}'.", param="model",
                       reason="model_not_allowed", allowedModels=list(key.allowed_models))


def resolve_provider(gateway, key, name):
    """Return the configured provider client, refusing demo keys against paid providers."""
    provider = gateway.providers.get(name)
    if provider is None:
        raise ApiError(404, "PROVIDER_NOT_FOUND", f"Provider '{name}' not found.",
                       availableProviders=sorted(gateway.providers))
    provider.require_credentials()
    if key.demo and not provider.is_loopback and not gateway.allow_demo_keys_upstream:
        raise ApiError(403, "DEMO_KEY_RESTRICTED",
                       "This demo key only works with the local stub provider. Create a key of your own "
                       "(or set ZIRI_ALLOW_DEMO_KEYS_UPSTREAM=true) to reach a paid provider.")
    return provider


def price_request(gateway, generation):
    """Return (image_model, quote, upstream payload) for a validated request, or raise."""
    image_model = gateway.prices.find_model(generation.provider, generation.model)
    choices, params = check_model_fields(image_model, generation)
    if generation.n > image_model.max_images:
        raise ApiError(400, "IMAGE_REQUEST_TOO_LARGE",
                       f"Requested number of images ({generation.n}) exceeds maximum allowed "
                       f"({image_model.max_images})",
                       requested=generation.n, maximum=image_model.max_images)
    if len(generation.prompt) > image_model.max_prompt_chars:
        raise ApiError(400, "PROMPT_TOO_LONG",
                       f"Prompt is {len(generation.prompt)} characters; '{image_model.name}' accepts at most "
                       f"{image_model.max_prompt_chars}.", maximum=image_model.max_prompt_chars)
    quote = gateway.prices.quote(image_model, choices, generation.n, generation.prompt)
    # The priced values are always sent, so what is generated is what was priced.
    payload = {"model": generation.model, "prompt": generation.prompt, "n": generation.n, **choices, **params}
    return image_model, quote, payload


@bp.post("/api/images/generations")
@bp.post("/v1/images/generations")
def create_generation():
    gateway = current_gateway()
    key = authenticate()
    try:
        body = request.get_json()
    except RecursionError:
        # json gives up on deeply nested arrays or objects with RecursionError, which Flask lets through as a 500.
        raise ApiError(400, "INVALID_JSON", "Request body is not valid JSON: it is nested too deeply.")
    if request.path.startswith("/v1/") and isinstance(body, dict) and "provider" not in body:
        body["provider"] = OPENAI_COMPATIBLE_DEFAULT_PROVIDER  # OpenAI's SDKs do not send one
    generation = parse_generation_request(body)
    idempotency_key = idempotency_digest()
    image_model, quote, payload = price_request(gateway, generation)
    check_access(key, generation.provider, generation.model)
    provider = resolve_provider(gateway, key, generation.provider)

    settle = reserve_spend(gateway, key, generation, quote, idempotency_key)
    result = call_provider(provider, payload, quote, settle)
    charge = charge_result(gateway, image_model, quote, result, settle)
    return generation_response(generation, quote, result, charge)


def reserve_spend(gateway, key, generation, quote, idempotency_key):
    """Reserve the most the request can cost; return ``settle(status, http_status, **outcome)`` for its charge."""
    summary = {
        "requestId": g.request_id,
        "keyId": key.id,
        "user": key.user,
        "provider": generation.provider,
        "model": generation.model,
        **quote.choices,
        "imagesRequested": quote.images,
        "pricePerImage": quote.price_per_image,
        "currency": quote.currency,
    }
    if idempotency_key:
        summary["idempotencyKey"] = idempotency_key
    reservation = gateway.limiter.reserve(key, quote.reserved, summary)
    started = time.monotonic()

    def settle(status, http_status, **outcome):
        gateway.limiter.settle(reservation, {
            **summary, "status": status, "httpStatus": http_status, **outcome, "latencyMs": elapsed_ms(started),
        })

    return settle


def call_provider(provider, payload, quote, settle):
    """Return the provider's ProviderResult; a failed call is settled, then raised."""
    try:
        return provider.generate(payload, g.request_id)
    except ProviderError as error:
        settle("provider_error", error.status, imagesReturned=0, cost=0.0, providerStatus=error.provider_status,
               providerRequestId=error.provider_request_id, mayHaveBilled=error.may_have_billed)
        raise
    except BaseException:
        # Unknown outcome: charge what was reserved rather than risk an unrecorded generation.
        settle("gateway_error", 500, imagesReturned=None, cost=quote.reserved)
        raise


def charge_result(gateway, image_model, quote, result, settle):
    """Return the Charge for a successful call, settled before the client hears back, whatever the body holds."""
    upstream = {"providerStatus": result.provider_status, "providerRequestId": result.provider_request_id}
    try:
        charge = gateway.prices.charge(image_model, quote, result.body)
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


def generation_response(generation, quote, result, charge):
    """Return the client's answer: the provider's body with only the images charged, plus ``_meta``."""
    return {
        **result.body,
        "data": result.body["data"][:charge.images],
        "_meta": {
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
        },
    }


@bp.get("/api/me/usage")
def usage():
    key = authenticate()
    return current_gateway().limiter.usage(key)


@bp.get("/health")
def health():
    return {"status": "ok"}
