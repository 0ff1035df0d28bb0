"""The per-app objects (keys, prices, providers, ledger, limiter), built once per app.

They live in ``app.extensions["ziri_images"]`` and are reached through ``current_gateway()``.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone

from flask import current_app

from .keys import KeyStore
from .ledger import Ledger
from .limits import Limiter
from .pricing import PriceBook
from .providers import build_providers
from .providers import check_catalog

log = logging.getLogger("ziri_images")


def utc_now():
    return datetime.now(timezone.utc)


@dataclass
class Gateway:
    keys: KeyStore
    prices: PriceBook
    providers: dict
    ledger: Ledger
    limiter: Limiter
    clock: object
    allow_demo_keys_upstream: bool


def init_app(app):
    """Load and validate every file the gateway needs; replay the ledger once."""
    config = app.config
    clock = config.get("CLOCK", utc_now)
    keys = KeyStore(config["KEYS_FILE"])
    prices = PriceBook.from_file(config["PRICING_FILE"])
    providers = build_providers(config)
    check_catalog(providers, prices, config["PROVIDERS_FILE"])
    for provider in providers.values():
        if provider.missing_setting is not None:
            # Names the variable, never a value: its requests get PROVIDER_KEY_MISSING until it is set.
            log.info("provider %s: no %s until %s is set", provider.name, *provider.missing_setting)
    ledger = Ledger(config["LEDGER_PATH"], durable=config["LEDGER_DURABLE"], mirror_stdout=config["LEDGER_STDOUT"])
    # A reservation outlives the longest possible upstream call (each call ends by its deadline,
    # connect + read timeout from its start), plus a grace period.
    ttl = max(provider.call_deadline for provider in providers.values()) + config["RESERVATION_GRACE_SECONDS"]
    limiter = Limiter(ledger, clock, ttl)
    started = time.monotonic()
    records = limiter.replay()
    log.info("ledger %s replayed: %d records in %.2fs", ledger.path, records, time.monotonic() - started)
    app.extensions["ziri_images"] = Gateway(
        keys=keys,
        prices=prices,
        providers=providers,
        ledger=ledger,
        limiter=limiter,
        clock=clock,
        allow_demo_keys_upstream=config["ALLOW_DEMO_KEYS_UPSTREAM"],
    )


def current_gateway():
    return current_app.extensions["ziri_images"]
