"""The per-app objects (keys, prices, providers, store, limiter), built once per app.

They live in ``app.extensions["ziri_images"]`` and are reached through ``current_gateway()``.
The store the settings choose also chooses the key store: with a database, its tables are the
one key store (``keys/postgres.py``, every process checking the key version); without one,
keys.json. keys.json and pricing.json are reloaded when they change on disk (``keys/reloading.py``).
"""

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone

from flask import current_app

from .alerts.sender import AlertSender
from .billing import Limiter
from .catalog.pricing import PriceBook
from .errors import ConfigError
from .keys.base import KeyRegistry
from .keys.base import KeySource
from .keys.file_registry import FileKeyRegistry
from .keys.reloading import ReloadingFile
from .keys.store import KeyStore
from .keys.store import load_key_file
from .ledger.base import Store
from .ledger.file.audit import AuditFile
from .ledger.file.jsonl import Ledger
from .ledger.file.store import FileStore
from .providers.config import build_providers
from .providers.config import check_catalog
from .server.send_deadline import send_grace_seconds

log = logging.getLogger("ziri_images")


def utc_now():
    return datetime.now(timezone.utc)


@dataclass
class Gateway:
    keys: KeySource  # what a request authenticates against
    registry: KeyRegistry  # the operator's edits of keys and teams (the admin API)
    catalog: ReloadingFile  # pricing.json, reloaded when it changes
    providers: dict
    store: Store
    limiter: Limiter
    clock: object
    allow_demo_keys_upstream: bool
    alerts: AlertSender | None = None  # posts budget alerts (None: no ZIRI_ALERT_WEBHOOK_URL)

    @property
    def prices(self):
        """Return the PriceBook as pricing.json holds it now; a request keeps the one it was quoted from."""
        return self.catalog.current()


def compatible_providers(providers, entries):
    """Return the providers reached at another endpoint than the published API providers.json names.

    Such an endpoint (a loopback one such as the local stub, an OpenAI-compatible server) serves
    models on its own terms, so the provider's retirements do not apply to it. Azure has no
    published endpoint: every non-loopback Azure resource is Azure's, and its retirements apply.
    """
    published = {entry.name: entry.published_url for entry in entries}
    return frozenset(
        name for name, provider in providers.items()
        if provider.is_loopback or (provider.base_url and published[name] and provider.base_url != published[name])
    )


def catalog_loader(providers, config, clock):
    """Return the function that loads pricing.json and checks it against providers.json."""
    compatible = compatible_providers(providers, config.providers)

    def load(path):
        book = PriceBook.from_file(path, clock=clock, compatible_providers=compatible)
        check_catalog(providers, book, config.providers_file)
        return book

    return load


def reservation_seconds(settings):
    """Return a reservation's life, or raise ConfigError if the sending of its answer could outlive it.

    A reservation outlives the longest possible upstream call (every provider call ends by its
    deadline, connect + read timeout from its start: providers/openai.py), plus a grace period that is
    longer than a client's time to take the answer after that deadline (server/send_deadline.py).
    """
    send_grace_seconds(settings)  # raises unless below the reservation's grace
    call_seconds = settings["UPSTREAM_CONNECT_TIMEOUT"] + settings["UPSTREAM_READ_TIMEOUT"]
    return call_seconds + settings["RESERVATION_GRACE_SECONDS"]


def open_store(settings, clock=utc_now, create=True):
    """Return the store the settings choose: PostgreSQL at DATABASE_URL, else the JSONL ledger at LEDGER_PATH.

    ``create=False`` opens an existing ledger only (a report or an export never makes one).
    """
    ttl = reservation_seconds(settings)
    if settings.get("DATABASE_URL"):
        # Imported only when used: the file store never loads the driver.
        from .ledger.postgres.store import PostgresStore

        return PostgresStore(settings["DATABASE_URL"], clock, ttl, pool_size=settings["DATABASE_POOL_SIZE"],
                             timeout=settings["DATABASE_TIMEOUT"], lease_seconds=settings["DATABASE_LEASE_SECONDS"],
                             spool_dir=settings["SPOOL_DIR"], queue_seconds=settings["DATABASE_QUEUE_SECONDS"])
    ledger = Ledger(settings["LEDGER_PATH"], durable=settings["LEDGER_DURABLE"],
                    mirror_stdout=settings["LEDGER_STDOUT"], create=create)
    return FileStore(ledger, clock, ttl)


def file_keys(config, clock):
    """Return (key source, key registry) of keys.json (no database), or raise ConfigError if it does not parse."""
    return KeyStore(config["KEYS_FILE"]), FileKeyRegistry(config["KEYS_FILE"], AuditFile.beside(config["LEDGER_PATH"]),
                                                          clock)


def database_keys(config, store, clock):
    """Return (key source, key registry) of the PostgreSQL ``store``'s database: the one key store with a database."""
    from .keys.postgres import PostgresKeySource
    from .keys.postgres_registry import PostgresKeyRegistry

    keys = PostgresKeySource(store.database, store.conninfo, store.timeout, config["KEYS_REFRESH_SECONDS"])
    log.info("%s", keys.start())
    if keys.count == 0:
        warn_of_an_unimported_key_file(config["KEYS_FILE"])
    return keys, PostgresKeyRegistry(store.transaction, clock, on_change=keys.changed)


def warn_of_an_unimported_key_file(path):
    """Log that keys.json holds keys the gateway does not read, the database having none (a release step missed)."""
    try:
        unread = len(load_key_file(path)) if os.path.exists(path) else 0
    except ConfigError:
        unread = 0  # not read with a database, so not checked either
    if unread:
        log.warning("the database holds no keys; %s (%d keys) is not read when a database is configured: run "
                    "'ziri-images keys import %s'", path, unread, path)


def init_app(app, config):
    """Load and validate every file the ``config`` names; open the store (the file store replays its ledger)."""
    clock = app.config.get("CLOCK", utc_now)  # a test's clock
    # First, as ever: a broken keys.json stops start-up before anything else runs.
    keys = None if config.get("DATABASE_URL") else file_keys(config, clock)
    providers = build_providers(config.providers, config.upstream_connect_timeout, config.upstream_read_timeout,
                                config.ca_bundle)
    load_catalog = catalog_loader(providers, config, clock)
    catalog = ReloadingFile(config["PRICING_FILE"], load_catalog, "pricing file")
    for provider in providers.values():
        if provider.missing_setting is not None:
            # Names the variable, never a value: its requests get PROVIDER_KEY_MISSING until it is set.
            log.info("provider %s: no %s until %s is set", provider.name, *provider.missing_setting)
    store = open_store(config, clock)
    started = time.monotonic()
    summary = store.start()
    log.info("%s in %.2fs", summary, time.monotonic() - started)
    keys, registry = keys or database_keys(config, store, clock)
    alerts = alert_sender(store, config, autostart=not app.config.get("TESTING"))
    app.extensions["ziri_images"] = Gateway(
        keys=keys,
        registry=registry,
        catalog=catalog,
        providers=providers,
        store=store,
        limiter=Limiter(store, config["EDIT_WORKER_MAX_BYTES"], config["ALERT_THRESHOLDS"] if alerts else ()),
        clock=clock,
        allow_demo_keys_upstream=config["ALLOW_DEMO_KEYS_UPSTREAM"],
        alerts=alerts,
    )


def alert_sender(store, config, autostart=True):
    """Return the sender of ``store``'s budget alerts to the configured webhook, or None without one.

    ``autostart``: a process's sender thread starts when its store records an alert (gunicorn's
    workers also start theirs as they boot: gunicorn.conf.py), not in tests, which run it by hand.
    """
    if not config["ALERT_WEBHOOK_URL"] or not config["ALERT_THRESHOLDS"]:
        return None
    sender = AlertSender(store, config["ALERT_WEBHOOK_URL"], config["ALERT_WEBHOOK_SECRET"],
                         config["ALERT_RETRY_SECONDS"], autostart=autostart)
    store.alert_outbox().on_record = sender.wake
    return sender


def start_alert_sender(app):
    """Start this process's alert sender, if the app has one (gunicorn's ``post_worker_init``: pending ones resume)."""
    gateway = getattr(app, "extensions", {}).get("ziri_images")
    if gateway is not None and gateway.alerts is not None:
        gateway.alerts.start()


def current_gateway():
    return current_app.extensions["ziri_images"]
