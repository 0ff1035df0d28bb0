"""Load the gateway's settings from the environment.

Every setting has a default that runs the gateway from a checkout; deployments override
them with environment variables (Heroku config vars, systemd ``Environment=``...).
Tests pass a ``test_config`` mapping to ``create_app`` instead.
"""

import json
import logging
import math
import os

from .errors import ConfigError

# Room in an edit's body beside its uploads: the form's text fields and each part's headers.
EDIT_FORM_ROOM = 1024 * 1024
# Two edits of the largest size allowed (ZIRI_EDIT_MAX_TOTAL_BYTES's default, 64 MiB, and the form).
DEFAULT_EDIT_WORKER_MAX_BYTES = 2 * (64 * 1024 * 1024 + EDIT_FORM_ROOM)

#: name -> (environment variable, default, parser)
_SETTINGS = {
    "KEYS_FILE": ("ZIRI_KEYS_FILE", "keys.json", str),
    "PRICING_FILE": ("ZIRI_PRICING_FILE", "pricing.json", str),
    # Where each provider is reached and which variable holds its key (never the key itself).
    "PROVIDERS_FILE": ("ZIRI_PROVIDERS_FILE", "providers.json", str),
    "LEDGER_PATH": ("ZIRI_LEDGER_PATH", "var/ledger.jsonl", str),
    # fsync every ledger write before answering; off only for throwaway runs.
    "LEDGER_DURABLE": ("ZIRI_LEDGER_DURABLE", True, "bool"),
    # Mirror each ledger record to stdout (platforms whose disks are wiped on restart).
    "LEDGER_STDOUT": ("ZIRI_LEDGER_STDOUT", False, "bool"),
    "OPENAI_API_KEY": ("OPENAI_API_KEY", "", str),
    "OPENAI_BASE_URL": ("OPENAI_BASE_URL", "https://api.openai.com/v1", str),
    "UPSTREAM_CONNECT_TIMEOUT": ("ZIRI_UPSTREAM_CONNECT_TIMEOUT", 5.0, float),
    # Image generation can take well over a minute for large GPT image requests.
    "UPSTREAM_READ_TIMEOUT": ("ZIRI_UPSTREAM_READ_TIMEOUT", 180.0, float),
    # Demo keys (published in the README) only reach loopback providers unless this is on.
    "ALLOW_DEMO_KEYS_UPSTREAM": ("ZIRI_ALLOW_DEMO_KEYS_UPSTREAM", False, "bool"),
    # Bodies above this are refused with 413 before they are parsed.
    "MAX_CONTENT_LENGTH": ("ZIRI_MAX_BODY_BYTES", 256 * 1024, int),
    # An edit's uploads (multipart), instead of ZIRI_MAX_BODY_BYTES: OpenAI takes 16 images of up to 50 MB.
    "EDIT_MAX_FILES": ("ZIRI_EDIT_MAX_FILES", 16, int),
    "EDIT_MAX_FILE_BYTES": ("ZIRI_EDIT_MAX_FILE_BYTES", 50 * 1024 * 1024, int),
    "EDIT_MAX_TOTAL_BYTES": ("ZIRI_EDIT_MAX_TOTAL_BYTES", 64 * 1024 * 1024, int),
    # Edit bodies one worker process holds at once (each at its size, from its first byte read until its
    # answer is sent; one key at most half, or one body); beyond it 503 UPLOAD_CAPACITY_FULL.
    "EDIT_WORKER_MAX_BYTES": ("ZIRI_EDIT_WORKER_MAX_BYTES", DEFAULT_EDIT_WORKER_MAX_BYTES, int),
    "LOG_LEVEL": ("ZIRI_LOG_LEVEL", "INFO", "level"),
    # A reservation whose worker died is settled this long after the upstream read timeout.
    "RESERVATION_GRACE_SECONDS": ("ZIRI_RESERVATION_GRACE_SECONDS", 60.0, float),
    # Seconds a client has to take an answer (after the provider call's deadline, for a request that reserved),
    # then its connection is reset. Below the reservation grace, so a reservation outlives it; unset: half of it.
    "SEND_GRACE_SECONDS": ("ZIRI_SEND_GRACE_SECONDS", None, float),
    # Reverse proxies in front of the app whose X-Forwarded-* headers are trusted (0 = none).
    "TRUSTED_PROXIES": ("ZIRI_TRUSTED_PROXIES", 0, "count"),
    # /metrics is served only when this is set, to "Authorization: Bearer <token>".
    "METRICS_TOKEN": ("ZIRI_METRICS_TOKEN", "", str),
    # Label refusals and spend with the key id too (one series per key: mind the cardinality).
    "METRICS_KEY_LABELS": ("ZIRI_METRICS_KEY_LABELS", False, "bool"),
    # /admin/ (the spend dashboard) is served only when this is set.
    "ADMIN_TOKEN": ("ZIRI_ADMIN_TOKEN", "", str),
    # "text" (key=value lines) or "json" (one JSON object per line, for log drains).
    "LOG_FORMAT": ("ZIRI_LOG_FORMAT", "text", "log_format"),
    # The PostgreSQL store (see DATABASE_URL below): unset keeps the file ledger.
    "DATABASE_URL": ("ZIRI_DATABASE_URL", "", str),
    # Heroku's convention: heroku-postgresql sets DATABASE_URL; ZIRI_DATABASE_URL wins over it.
    "PLATFORM_DATABASE_URL": ("DATABASE_URL", "", str),
    # Connections per worker process: each request holds one for a few milliseconds, never during the
    # provider call, so a few serve ~1,000 concurrent requests; the server's max_connections caps the total.
    "DATABASE_POOL_SIZE": ("ZIRI_DATABASE_POOL_SIZE", 4, int),
    # Seconds to connect, and for any statement or row lock: beyond it a request is refused with 503
    # LEDGER_UNAVAILABLE before the provider is called. Also the wait for a pooled connection while
    # the database is failing (or has not answered yet): new requests are refused quickly then.
    "DATABASE_TIMEOUT": ("ZIRI_DATABASE_TIMEOUT", 5.0, float),
    # Seconds a request may queue for a pooled connection while the database answers: a busy pool is
    # not a fault (under Heroku's 30 s router limit).
    "DATABASE_QUEUE_SECONDS": ("ZIRI_DATABASE_QUEUE_SECONDS", 25.0, float),
    # A process's lease: when it is not renewed for this long, other processes settle its reservations.
    "DATABASE_LEASE_SECONDS": ("ZIRI_DATABASE_LEASE_SECONDS", 30.0, float),
    # Charges that could not reach the database wait here (fsynced) until it is back.
    "SPOOL_DIR": ("ZIRI_SPOOL_DIR", "var/spool", str),
}

LOG_FORMATS = ("text", "json")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name, env_name, raw, parser):
    if parser == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
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
    try:
        value = parser(raw)
    except ValueError:
        raise ConfigError(f"environment variable {env_name}: expected {parser.__name__}, got {raw!r}")
    # "nan" and "inf" parse as floats but are no usable timeout or size.
    if parser in (int, float) and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"environment variable {env_name}: must be positive and finite, got {raw!r}")
    return value


def load_settings(environ=None):
    """Return the settings dict read from ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    settings = {}
    for name, (env_name, default, parser) in _SETTINGS.items():
        raw = environ.get(env_name)
        settings[name] = default if raw is None else _parse(name, env_name, raw, parser)
    settings["DATABASE_URL"] = settings["DATABASE_URL"].strip() or settings["PLATFORM_DATABASE_URL"].strip()
    largest_edit = settings["EDIT_MAX_TOTAL_BYTES"] + EDIT_FORM_ROOM
    if settings["EDIT_WORKER_MAX_BYTES"] < largest_edit:
        raise ConfigError(f"environment variable ZIRI_EDIT_WORKER_MAX_BYTES: must be at least "
                          f"ZIRI_EDIT_MAX_TOTAL_BYTES plus {EDIT_FORM_ROOM} for the form ({largest_edit}), "
                          "or the largest edit allowed is never admitted")
    return settings


def load_json_file(path, label):
    """Return the parsed JSON document at ``path``, or raise ConfigError naming the ``label`` file."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{label} {path}: not found")
    except (OSError, ValueError) as error:
        raise ConfigError(f"{label} {path}: {error}")
