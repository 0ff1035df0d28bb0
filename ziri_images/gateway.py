"""The per-app objects (keys, prices, providers, ledger, limiter), built once per app.

They live in ``app.extensions["ziri_images"]`` and are reached through ``current_gateway()``.
keys.json and pricing.json are reloaded when they change on disk (``reloading.py``).
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
from .reloading import ReloadingFile
from .settings import load_json_file

log = logging.getLogger("ziri_images")


def utc_now():
    return datetime.now(timezone.utc)


@dataclass
class Gateway:
    keys: KeyStore
    catalog: ReloadingFile  # pricing.json, reloaded when it changes
    providers: dict
    ledger: Ledger
    limiter: Limiter
    clock: object
    allow_demo_keys_upstream: bool

    @property
    def prices(self):
        """Return the PriceBook as pricing.json holds it now; a request keeps the one it was quoted from."""
        return self.catalog.current()


def compatible_providers(providers, providers_file):
    """Return the providers reached at another endpoint than the published API providers.json names.

    Such an endpoint (a loopback one such as the local stub, an OpenAI-compatible server) serves
    models on its own terms, so the provider's retirements do not apply to it. Azure has no
    published endpoint: every non-loopback Azure resource is Azure's, and its retirements apply.
    """
    entries = load_json_file(providers_file, "providers file")["providers"]
    published = {name: (entries[name].get("base_url") or "").rstrip("/") for name in providers}
    return frozenset(
        name for name, provider in providers.items()
        if provider.is_loopback or (provider.base_url and published[name] and provider.base_url != published[name])
    )


def catalog_loader(providers, providers_file, clock):
    """Return the function that loads pricing.json and checks it against providers.json."""
    compatible = compatible_providers(providers, providers_file)

    def load(path):
        book = PriceBook.from_file(path, clock=clock, compatible_providers=compatible)
        check_catalog(providers, book, providers_file)
        return book

    return load


def init_app(app):
    """Load and validate every file the gateway needs; replay the ledger once."""
    config = app.config
    clock = config.get("CLOCK", utc_now)
    keys = KeyStore(config["KEYS_FILE"])
    providers = build_providers(config)
    load_catalog = catalog_loader(providers, config["PROVIDERS_FILE"], clock)
    catalog = ReloadingFile(config["PRICING_FILE"], load_catalog, "pricing file")
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
        catalog=catalog,
        providers=providers,
        ledger=ledger,
        limiter=limiter,
        clock=clock,
        allow_demo_keys_upstream=config["ALLOW_DEMO_KEYS_UPSTREAM"],
    )


def current_gateway():
    return current_app.extensions["ziri_images"]
