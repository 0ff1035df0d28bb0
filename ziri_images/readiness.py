"""Readiness: can this instance serve a paid request right now?

``GET /ready`` checks what a request needs and a restart would not fix by itself: the key
file still parses, the catalog is loaded, the ledger can be written. It answers 200 when every
check passes and 503 otherwise, naming each check. The body never carries secrets, file paths
or error text (those go to the log): it is meant for load balancers and uptime monitors.
"""

import logging
import os
import tempfile

from flask import Blueprint

from .errors import ConfigError
from .gateway import current_gateway
from .keys import load_key_file

log = logging.getLogger("ziri_images")

bp = Blueprint("readiness", __name__)

# Below this much free space a ledger write (and so every paid request) is about to fail.
MIN_FREE_BYTES = 1024 * 1024


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
    """Return None if the ledger file and its directory accept writes, else a short reason."""
    path = gateway.ledger.path
    directory = os.path.dirname(os.path.abspath(path))
    try:
        # A real write, not os.access: root passes os.access even on a read-only mount.
        with tempfile.TemporaryFile(dir=directory):
            pass
        # No O_CREAT: the file was created at start-up, so a missing one was moved or deleted.
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        disk = os.statvfs(directory)
    except OSError as error:
        log.warning("readiness: ledger %s is not writable: %s", path, error.strerror or error)
        return "the ledger is not writable"
    if disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES:
        log.warning("readiness: ledger %s: less than %d bytes free", path, MIN_FREE_BYTES)
        return "the ledger's disk is full"
    return None


def check_database(gateway):
    """Return None if the PostgreSQL store's database answers with a current schema (or none is used)."""
    ping = getattr(gateway.store, "ping_database", None)
    if ping is None:
        return None  # the file store: no database to reach
    ok, reason = ping()
    return None if ok else reason


CHECKS = {"keys": check_key_file, "catalog": check_catalog, "ledger": check_ledger, "database": check_database}


@bp.get("/ready")
def ready():
    gateway = current_gateway()
    checks = {}
    for name, check in CHECKS.items():
        reason = check(gateway)
        checks[name] = {"ok": True} if reason is None else {"ok": False, "reason": reason}
    ok = all(result["ok"] for result in checks.values())
    return {"status": "ready" if ok else "not_ready", "checks": checks}, 200 if ok else 503
