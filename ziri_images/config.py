"""Read the gateway's configuration once: every setting from the environment, and providers.json.

``Config.from_environ()`` is the one reader of the environment and of providers.json; everything
else is handed the parsed values. Every setting has a default that runs the gateway from a
checkout; deployments override them with environment variables (Heroku config vars, systemd
``Environment=``...). A ``Config`` also reads as the mapping of its settings by their Flask names
(``config["KEYS_FILE"]``), which is what ``app.config`` holds. Tests pass ``create_app`` a mapping
of overrides instead (``Config.from_environ(overrides=...)``).
"""

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from urllib.parse import urlsplit

from .errors import ConfigError
from .providers.entries import ProviderEntry
from .providers.entries import provider_entries
from .strict_json import load_json_file
from .uploads import EDIT_FORM_ROOM

# Two edits of the largest size allowed (ZIRI_EDIT_MAX_TOTAL_BYTES's default, 64 MiB, and the form).
DEFAULT_EDIT_WORKER_MAX_BYTES = 2 * (64 * 1024 * 1024 + EDIT_FORM_ROOM)
# Heroku's convention: heroku-postgresql sets DATABASE_URL; ZIRI_DATABASE_URL wins over it.
PLATFORM_DATABASE_URL = "DATABASE_URL"
LOG_FORMATS = ("text", "json")
# The largest alert threshold (percent of a limit): soft limits may alert past their limit.
MAX_ALERT_THRESHOLD = 1000
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _setting(env_name, default, parser):
    return field(default=default, metadata={"env": env_name, "parser": parser})


@dataclass(frozen=True)
class Config(Mapping):
    """Every setting of the gateway, parsed and checked once, and the providers providers.json names."""

    keys_file: str = _setting("ZIRI_KEYS_FILE", "keys.json", str)
    pricing_file: str = _setting("ZIRI_PRICING_FILE", "pricing.json", str)
    # Where each provider is reached and which variable holds its key (never the key itself).
    providers_file: str = _setting("ZIRI_PROVIDERS_FILE", "providers.json", str)
    ledger_path: str = _setting("ZIRI_LEDGER_PATH", "var/ledger.jsonl", str)
    # fsync every ledger write before answering; off only for throwaway runs.
    ledger_durable: bool = _setting("ZIRI_LEDGER_DURABLE", True, "bool")
    # Mirror each ledger record to stdout (platforms whose disks are wiped on restart).
    ledger_stdout: bool = _setting("ZIRI_LEDGER_STDOUT", False, "bool")
    upstream_connect_timeout: float = _setting("ZIRI_UPSTREAM_CONNECT_TIMEOUT", 5.0, float)
    # Image generation can take well over a minute for large GPT image requests.
    upstream_read_timeout: float = _setting("ZIRI_UPSTREAM_READ_TIMEOUT", 180.0, float)
    # Demo keys (published in the README) only reach loopback providers unless this is on.
    allow_demo_keys_upstream: bool = _setting("ZIRI_ALLOW_DEMO_KEYS_UPSTREAM", False, "bool")
    # Bodies above this are refused with 413 before they are parsed (Flask's own setting name).
    max_content_length: int = _setting("ZIRI_MAX_BODY_BYTES", 256 * 1024, int)
    # An edit's uploads (multipart), instead of ZIRI_MAX_BODY_BYTES: OpenAI takes 16 images of up to 50 MB.
    edit_max_files: int = _setting("ZIRI_EDIT_MAX_FILES", 16, int)
    edit_max_file_bytes: int = _setting("ZIRI_EDIT_MAX_FILE_BYTES", 50 * 1024 * 1024, int)
    edit_max_total_bytes: int = _setting("ZIRI_EDIT_MAX_TOTAL_BYTES", 64 * 1024 * 1024, int)
    # Edit bodies one worker process holds at once (each at its size, from its first byte read until its
    # answer is sent; one key at most half, or one body); beyond it 503 UPLOAD_CAPACITY_FULL.
    edit_worker_max_bytes: int = _setting("ZIRI_EDIT_WORKER_MAX_BYTES", DEFAULT_EDIT_WORKER_MAX_BYTES, int)
    # Seconds a request body may take to arrive after its headers (gunicorn's workers): then 408.
    body_timeout_seconds: float = _setting("ZIRI_BODY_TIMEOUT_SECONDS", 20.0, "seconds")
    log_level: str = _setting("ZIRI_LOG_LEVEL", "INFO", "level")
    # "text" (key=value lines) or "json" (one JSON object per line, for log drains).
    log_format: str = _setting("ZIRI_LOG_FORMAT", "text", "log_format")
    # A reservation whose worker died is settled this long after the upstream read timeout.
    reservation_grace_seconds: float = _setting("ZIRI_RESERVATION_GRACE_SECONDS", 60.0, float)
    # Seconds a client has to take an answer (after the provider call's deadline, for a request that reserved),
    # then its connection is reset. Below the reservation grace, so a reservation outlives it; unset: half of it.
    send_grace_seconds: float | None = _setting("ZIRI_SEND_GRACE_SECONDS", None, float)
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted (0 = none).
    trusted_proxies: int = _setting("ZIRI_TRUSTED_PROXIES", 0, "count")
    # /metrics is served only when this is set, to "Authorization: Bearer <token>".
    metrics_token: str = _setting("ZIRI_METRICS_TOKEN", "", str)
    # Label refusals and spend with the key id too (one series per key: mind the cardinality).
    metrics_key_labels: bool = _setting("ZIRI_METRICS_KEY_LABELS", False, "bool")
    # Where every gunicorn worker writes its metrics (gunicorn.conf.py sets it); unset: this process's only.
    prometheus_multiproc_dir: str = _setting("PROMETHEUS_MULTIPROC_DIR", "", str)
    # /admin/ (the spend dashboard) is served only when this is set.
    admin_token: str = _setting("ZIRI_ADMIN_TOKEN", "", str)
    # The PostgreSQL store: unset keeps the file ledger (and then PLATFORM_DATABASE_URL's, if set).
    database_url: str = _setting("ZIRI_DATABASE_URL", "", str)
    # Connections per worker process: each request holds one for a few milliseconds, never during the
    # provider call, so a few serve ~1,000 concurrent requests; the server's max_connections caps the total.
    database_pool_size: int = _setting("ZIRI_DATABASE_POOL_SIZE", 4, int)
    # Seconds to connect, and for any statement or row lock: beyond it a request is refused with 503
    # LEDGER_UNAVAILABLE before the provider is called. Also the wait for a pooled connection while
    # the database is failing (or has not answered yet): new requests are refused quickly then.
    database_timeout: float = _setting("ZIRI_DATABASE_TIMEOUT", 5.0, float)
    # Seconds a request may queue for a pooled connection while the database answers: a busy pool is
    # not a fault (under Heroku's 30 s router limit).
    database_queue_seconds: float = _setting("ZIRI_DATABASE_QUEUE_SECONDS", 25.0, float)
    # A process's lease: when it is not renewed for this long, other processes settle its reservations.
    database_lease_seconds: float = _setting("ZIRI_DATABASE_LEASE_SECONDS", 30.0, float)
    # With a database (the key store): how often each process checks the keys' version, in seconds; a
    # change reaches every process within it (0: on every request, one more query per request).
    keys_refresh_seconds: float = _setting("ZIRI_KEYS_REFRESH_SECONDS", 1.0, "interval")
    # Charges that could not reach the database wait here (fsynced) until it is back.
    spool_dir: str = _setting("ZIRI_SPOOL_DIR", "var/spool", str)
    # Budget alerts (alerts/): POSTed here, signed with the secret, when a key's or team's spend reaches
    # one of the thresholds (percent) of a limit. Unset: no alert is recorded or sent.
    alert_webhook_url: str = _setting("ZIRI_ALERT_WEBHOOK_URL", "", "url")
    alert_webhook_secret: str = _setting("ZIRI_ALERT_WEBHOOK_SECRET", "", str)
    alert_thresholds: tuple = _setting("ZIRI_ALERT_THRESHOLDS", (50, 80, 100), "thresholds")
    # An alert the webhook does not take (2xx) is retried with backoff for about this long, then failed.
    alert_retry_seconds: float = _setting("ZIRI_ALERT_RETRY_SECONDS", 3600.0, "seconds")
    # The CA bundle provider calls verify against (requests' and curl's variables); None: certifi's.
    ca_bundle: str | None = None
    # providers.json's providers, each with its credential and endpoint as the environment set them.
    providers: tuple[ProviderEntry, ...] = ()

    @classmethod
    def from_environ(cls, environ=None, overrides=None, read_providers=True):
        """Return the Config ``environ`` (default: ``os.environ``) sets, or raise ConfigError naming the variable.

        ``overrides`` (tests) replace settings by their Flask names, as given, and stand for the
        variables providers.json names. ``read_providers=False`` leaves providers.json unread (the CLI).
        """
        environ = os.environ if environ is None else environ
        overrides = dict(overrides or {})
        values = {}
        for setting in _settings():
            raw = environ.get(setting.metadata["env"])
            values[setting.name] = setting.default if raw is None else _parse(setting, raw)
        values["database_url"] = values["database_url"].strip() or environ.get(PLATFORM_DATABASE_URL, "").strip()
        _check_edit_room(values)
        _check_alerts(values)
        values.update((name.lower(), value) for name, value in overrides.items() if name in SETTING_NAMES)
        values["ca_bundle"] = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE") or None
        if read_providers:
            given = {name: value for name, value in overrides.items() if value is not None}
            document = load_json_file(values["providers_file"], "providers file")
            values["providers"] = provider_entries(document, values["providers_file"], {**environ, **given})
        return cls(**values)

    @property
    def provider_secrets(self):
        """Return the provider keys the environment sets (what every log redacts)."""
        return tuple(entry.api_key for entry in self.providers if entry.api_key)

    def __getitem__(self, name):
        if name not in SETTING_NAMES:
            raise KeyError(name)
        return getattr(self, name.lower())

    def __iter__(self):
        return iter(SETTING_NAMES)

    def __len__(self):
        return len(SETTING_NAMES)


def _settings():
    return [setting for setting in fields(Config) if "env" in setting.metadata]


#: The settings' Flask names (``app.config``'s keys), and every variable the settings read.
SETTING_NAMES = tuple(setting.name.upper() for setting in _settings())
SETTING_VARIABLES = (*(setting.metadata["env"] for setting in _settings()), PLATFORM_DATABASE_URL,
                     "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _parse(setting, raw):
    """Return the value of ``raw`` for ``setting``, or raise ConfigError naming its variable."""
    env_name, parser = setting.metadata["env"], setting.metadata["parser"]
    if parser == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"environment variable {env_name}: expected true/false, got {raw!r}")
    if parser == "count":
        if not (raw.strip().isascii() and raw.strip().isdigit()):
            raise ConfigError(f"environment variable {env_name}: expected a whole number >= 0, got {raw!r}")
        return int(raw)
    if parser == "log_format":
        if raw.strip().lower() not in LOG_FORMATS:
            raise ConfigError(f"environment variable {env_name}: expected text or json, got {raw!r}")
        return raw.strip().lower()
    if parser == "level":
        # logging accepts only its own names; anything else would crash start-up with a traceback.
        level = raw.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ConfigError(f"environment variable {env_name}: expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
        return level
    if parser == "url":
        return _url(env_name, raw)
    if parser == "thresholds":
        return _thresholds(env_name, raw)
    if parser in ("seconds", "interval"):
        try:
            seconds = float(raw)
        except ValueError:
            seconds = math.nan
        if parser == "seconds" and math.isfinite(seconds) and seconds > 0:
            return seconds
        if parser == "interval" and math.isfinite(seconds) and 0 <= seconds <= 3600:
            return seconds
        expected = "a positive number of seconds" if parser == "seconds" else "seconds from 0 to 3600"
        raise ConfigError(f"environment variable {env_name}: expected {expected}, got {raw!r}")
    try:
        value = parser(raw)
    except ValueError:
        raise ConfigError(f"environment variable {env_name}: expected {parser.__name__}, got {raw!r}")
    # "nan" and "inf" parse as floats but are no usable timeout or size.
    if parser in (int, float) and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"environment variable {env_name}: must be positive and finite, got {raw!r}")
    return value


def _check_edit_room(values):
    """Raise ConfigError unless one worker can hold the largest edit allowed."""
    largest_edit = values["edit_max_total_bytes"] + EDIT_FORM_ROOM
    if values["edit_worker_max_bytes"] < largest_edit:
        raise ConfigError(f"environment variable ZIRI_EDIT_WORKER_MAX_BYTES: must be at least "
                          f"ZIRI_EDIT_MAX_TOTAL_BYTES plus {EDIT_FORM_ROOM} for the form ({largest_edit}), "
                          "or the largest edit allowed is never admitted")


def _url(env_name, raw):
    """Return an http(s) URL with a host ('' for none), or raise ConfigError naming the variable, never the URL."""
    url, parts = raw.strip(), urlsplit(raw.strip())
    if url and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ConfigError(f"environment variable {env_name}: expected an http:// or https:// URL with a host")
    return url


def _thresholds(env_name, raw):
    """Return the sorted, distinct whole percents of a comma-separated list (1 to 1000), or raise ConfigError."""
    texts = [text.strip() for text in raw.split(",") if text.strip()]
    if all(text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_ALERT_THRESHOLD for text in texts):
        return tuple(sorted({int(text) for text in texts}))
    raise ConfigError(f"environment variable {env_name}: expected whole percents from 1 to {MAX_ALERT_THRESHOLD}, "
                      f"comma-separated (e.g. 50,80,100), got {raw!r}")


def _check_alerts(values):
    if values["alert_webhook_url"] and not values["alert_webhook_secret"]:  # its events could not be signed
        raise ConfigError("environment variable ZIRI_ALERT_WEBHOOK_SECRET: must be set with ZIRI_ALERT_WEBHOOK_URL")
