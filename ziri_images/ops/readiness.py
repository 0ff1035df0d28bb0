"""Readiness: can this instance serve a paid request right now?

``GET /ready`` checks what a request needs and a restart would not fix by itself: the key
store can be read (the key file still parses, or the database's keys are loaded), the catalog
is loaded, the ledger can be written, and at least one provider has its key (and endpoint)
set. It answers 200 when every check passes and 503 otherwise, naming each check;
``providers`` says which providers are usable and, for the others, which variable to set
(their requests get ``PROVIDER_KEY_MISSING``). The body never carries secrets, file paths or
error text (those go to the log): it is meant for load balancers and uptime monitors.
"""

import logging

from flask import Blueprint

from ..gateway import current_gateway

log = logging.getLogger("ziri_images")

bp = Blueprint("readiness", __name__)

def check_keys(gateway):
    """Return None if the key store can be read (the key file parses; the database's keys are loaded), else why not."""
    return gateway.keys.readiness()


def check_catalog_has_image_models(gateway):
    """Return None if the catalog offers at least one image model, else a short reason."""
    if not any(True for _ in gateway.prices.image_models()):
        return "the catalog has no image models"
    return None


def check_ledger(gateway):
    """Return None if the store can keep a request's records, else a short reason."""
    ok, reason = gateway.store.readiness()
    return None if ok else reason


def provider_status(gateway):
    """Return {provider: {"usable": bool, and for an unusable one the variable to set}}."""
    status = {}
    for name, provider in gateway.providers.items():
        missing = provider.missing_setting
        status[name] = {"usable": True} if missing is None else {"usable": False, "missing": missing[1]}
    return status


def check_providers(gateway):
    """Return None if at least one provider has its key (and endpoint) set, else a short reason."""
    if not any(provider.missing_setting is None for provider in gateway.providers.values()):
        return "no provider has its key set"
    return None


# A check that does not apply to this gateway (e.g. the database, with the file store): left out.
NOT_USED = object()


def check_database(gateway):
    """Return None if the PostgreSQL store's database answers with a current schema, else a short reason."""
    ping = getattr(gateway.store, "ping_database", None)
    if ping is None:
        return NOT_USED  # the file store: no database to reach
    ok, reason = ping()
    return None if ok else reason


CHECKS = {"keys": check_keys, "catalog": check_catalog_has_image_models, "ledger": check_ledger,
          "database": check_database, "providers": check_providers}


@bp.get("/ready")
def ready():
    gateway = current_gateway()
    checks = {}
    for name, check in CHECKS.items():
        reason = check(gateway)
        if reason is NOT_USED:
            continue
        checks[name] = {"ok": True} if reason is None else {"ok": False, "reason": reason}
    ok = all(result["ok"] for result in checks.values())
    body = {"status": "ready" if ok else "not_ready", "checks": checks, "providers": provider_status(gateway)}
    return body, 200 if ok else 503
