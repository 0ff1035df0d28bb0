"""Who may call what: the caller's key, its Idempotency-Key, its allow-lists, and the provider it reaches."""

import hashlib

from flask import g
from flask import request

from .errors import ApiError
from .gateway import current_gateway


def authenticate():
    """Return the caller's ApiKey from ``X-API-Key`` (or ``Authorization: Bearer``)."""
    raw_key = request.headers.get("X-API-Key", "").strip()
    if not raw_key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            raw_key = token.strip()
    gateway = current_gateway()
    try:
        g.api_key = gateway.keys.authenticate(raw_key, gateway.clock())
    except ApiError as error:
        # A known key refused (disabled, expired) names its id: its refusals are counted under it.
        g.refused_key_id = error.details.get("keyId")
        raise
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
    # Priced first: the catalog refuses a provider it does not name (PROVIDER_NOT_FOUND), and start-up
    # and every reload check that each provider it names is configured (providers.config.check_catalog).
    provider = gateway.providers[name]
    provider.require_credentials()
    if key.demo and not provider.is_loopback and not gateway.allow_demo_keys_upstream:
        raise ApiError(403, "DEMO_KEY_RESTRICTED",
                       "This demo key only works with the local stub provider. Create a key of your own "
                       "(or set ZIRI_ALLOW_DEMO_KEYS_UPSTREAM=true) to reach a paid provider.")
    return provider
