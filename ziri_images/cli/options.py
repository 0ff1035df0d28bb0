"""What the commands share: their common options and argument types, and the settings they default to."""

import argparse
from datetime import datetime
from datetime import timezone

from ..config import Config
from .tables import FORMATS

# Words that clear a limit, an expiry or an allow-list.
UNSET_WORDS = {"none", "unlimited", "never", "any"}


def setting(args, option, name):
    """Return the path given with ``option``, else the server's setting ``name``."""
    value = getattr(args, option)
    return value if value is not None else Config.from_environ(read_providers=False)[name]


def when(text):
    """Parse an ISO date or date-time (UTC when no offset is given) into an aware datetime."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date (2026-12-01) or date-time "
                                         f"(2026-12-01T09:00:00Z), got {text!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def keys_file_option(parser):
    parser.add_argument("--keys-file", help="the key file (default: $ZIRI_KEYS_FILE or keys.json)")


def pricing_file_option(parser):
    parser.add_argument("--pricing-file", help="the catalog (default: $ZIRI_PRICING_FILE or pricing.json)")


def format_option(parser, default="table", choices=FORMATS):
    parser.add_argument("--format", choices=choices, default=default, help=f"output format (default {default})")


def database_url_option(parser):
    parser.add_argument("--database-url", help="the database (default: $ZIRI_DATABASE_URL, else $DATABASE_URL)")
