"""Read the plain fields of a model's catalog entry: its retirement day, its price dimensions, who charges."""

import re

from ..errors import ConfigError

_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_RETIRED_DATE = re.compile(r"20[0-9]{2}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?\Z")
# A dimension's value is written into ledger records and error details under its own name.
_RESERVED_NAMES = {"provider", "model", "prompt", "n", "stream", "user", "status", "cost", "currency", "amount",
                   "type", "ts", "reason"}


def entry_retired(entry, where):
    """Return the day (or month) the provider retired the model, or None."""
    retired = entry.get("retired")
    if retired is not None and not (isinstance(retired, str) and _RETIRED_DATE.match(retired)):
        raise ConfigError(f"{where}.retired: expected 'YYYY-MM-DD' (or 'YYYY-MM')")
    return retired


def entry_dimensions(dimensions, where):
    """Return the names of the request fields the price depends on, in the table's order."""
    if (not isinstance(dimensions, (list, tuple)) or len(set(dimensions)) != len(dimensions)
            or not all(isinstance(d, str) and _DIMENSION_NAME.match(d) for d in dimensions)):
        raise ConfigError(f"{where}.price_dimensions: expected a list of distinct lower-case field names")
    reserved = sorted(set(dimensions) & _RESERVED_NAMES)
    if reserved:
        raise ConfigError(f"{where}.price_dimensions: {', '.join(reserved)} cannot be a price dimension")
    return tuple(dimensions)


def entry_charged_by_provider(entry, where):
    """Return True when the charge is what the provider reports it billed (``charged_by: "provider"``)."""
    charged_by = entry.get("charged_by", "catalog")
    if charged_by not in ("catalog", "provider"):
        raise ConfigError(f"{where}.charged_by: expected \"provider\" (or \"catalog\", the default)")
    return charged_by == "provider"
