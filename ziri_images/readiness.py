"""Readiness: can this instance serve a paid request right now?

``GET /ready`` checks what a request needs and a restart would not fix by itself: the key
file still parses, the catalog is loaded, the ledger can be written. It answers 200 when every
check passes and 503 otherwise, naming each check. The body never carries secrets, file paths
or error text (those go to the log): it is meant for load balancers and uptime monitors.
"""

import logging

from flask import Blueprint

from .errors import ConfigError
from .gateway import current_gateway
from .keys import load_key_file

log = logging.getLogger("ziri_images")

bp = Blueprint("readiness", __name__)

def check_key_file(gateway):
    """Return None if the key file on disk parses, else a short reason."""
    try:
        load_key_file(gateway.keys.path)
    except ConfigError as error:
        log.warning("readiness: %s", error)
        return "the key file is missing or invalid"
    return None


def check_catalog(gateway):
    """Return None if the catalog offers at least one image model, else a short reason."""
    if not any(True for _ in gateway.prices.image_models()):
        return "the catalog has no image models"
    return None


def check_ledger(gateway):
    """Return None if the store can keep a request's records, else a short reason."""
    ok, reason = gateway.store.readiness()
    return None if ok else reason


# A check that does not apply to this gateway (e.g. the database, with the file store): left out.
NOT_USED = object()


def check_database(gateway):
    """Return None if the PostgreSQL store's database answers with a current schema, else a short reason."""
    ping = getattr(gateway.store, "ping_database", None)
    if ping is None:
        return NOT_USED  # the file store: no database to reach
    ok, reason = ping()
    return None if ok else reason


CHECKS = {"keys": check_key_file, "catalog": check_catalog, "ledger": check_ledger, "database": check_database}


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
    return {"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503
