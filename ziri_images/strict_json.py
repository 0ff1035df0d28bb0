"""Strict JSON (RFC 8259) in and out: what a provider sends is cleaned, what clients get is checked.

Python's ``json`` reads and writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON
(jq, JavaScript and most parsers refuse them), and turns ``1e999`` into ``inf``; it also
accepts ``"\\ud800"``, a lone surrogate, which cannot be encoded as UTF-8 (so it cannot be
written to the ledger) and which strict parsers refuse once escaped. ``parse_provider_body``
reads a provider's answer with each non-finite number replaced by ``null`` and each lone
surrogate by U+FFFD, so nothing downstream (the charge, the ledger, the client's answer) ever
holds one. ``StrictJSONProvider`` is the app's JSON provider: it refuses request bodies with
non-finite numbers, and refuses to write one rather than write invalid JSON.
"""

import json
import math

from flask.json.provider import DefaultJSONProvider

from .errors import ConfigError

# Deeper than any images answer: refusing deeper bodies keeps every walk over them bounded.
MAX_DEPTH = 64


def _finite_or_none(text):
    value = float(text)
    return value if math.isfinite(value) else None


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _refuse(name):
    raise ValueError(f"{name} is not a JSON value")


def _clean(value, depth=0):
    """Return ``value`` with lone surrogates replaced; raise ValueError if nested beyond MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if value.isascii():
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")  # one U+FFFD each
    if isinstance(value, dict):
        return {_clean(name, depth + 1): _clean(item, depth + 1) for name, item in value.items()}
    if isinstance(value, list):
        return [_clean(item, depth + 1) for item in value]
    return value


def parse_provider_body(raw):
    """Return the JSON document in ``raw`` made strict, or raise ValueError (RecursionError when too deep)."""
    return _clean(json.loads(raw, parse_constant=lambda name: None, parse_float=_finite_or_none))


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider for RFC 8259 JSON only, keeping keys in the order they were given.

    A request body holding ``NaN``, ``Infinity`` or a number too large for a float is not JSON
    (400 ``INVALID_JSON``), and a response can never hold one.
    """

    sort_keys = False  # provider responses keep the provider's order

    def dumps(self, obj, **kwargs):
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s, **kwargs):
        kwargs.setdefault("parse_constant", _refuse)
        kwargs.setdefault("parse_float", _finite)
        return super().loads(s, **kwargs)


def load_json_file(path, label):
    """Return the parsed JSON document at ``path``, or raise ConfigError naming the ``label`` file."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{label} {path}: not found")
    except (OSError, ValueError) as error:
        raise ConfigError(f"{label} {path}: {error}")
