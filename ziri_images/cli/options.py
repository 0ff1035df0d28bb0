"""What the commands share: their common options and argument types, and the settings they default to."""

import argparse
from datetime import datetime
from datetime import timezone

from ..config import Config
from ..keys.store import LIMIT_MAXIMUMS
from ..keys.store import limit_problem
from ..keys.store import limit_rule
from .tables import FORMATS

# Words that clear a limit, an expiry or an allow-list.
UNSET_WORDS = {"none", "unlimited", "never", "any"}
# (record name, number type, metavar, help) of each limit option, for keys and teams alike.
LIMIT_OPTIONS = (
    ("daily_spend_limit", float, "USD", "spend per UTC day"),
    ("monthly_spend_limit", float, "USD", "spend per calendar month (UTC)"),
    ("requests_per_minute", int, "N", "requests admitted in any 60 seconds"),
    ("max_concurrent_requests", int, "N", "requests in flight at once"),
    ("end_user_daily_spend_limit", float, "USD", "spend per UTC day of each end user (the request's 'user')"),
    ("soft_daily_spend_limit", float, "USD", "alert only: budget alerts at its thresholds, never a refusal"),
    ("soft_monthly_spend_limit", float, "USD", "alert only, per calendar month"),
)


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


def expiry(text):
    """Parse ``--expires-at``: a date or date-time as a record's time, or None for 'never'."""
    if text.strip().lower() in UNSET_WORDS:
        return None
    return when(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_list(text):
    """Parse an allow-list: comma-separated names, or None for 'any'."""
    if text.strip().lower() in UNSET_WORDS:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, or 'any' to allow all")
    return names


def _limit_type(name, number_type):
    def parse(text):
        if text.strip().lower() in UNSET_WORDS:
            return None
        try:
            value = number_type(text)
        except ValueError:
            value = None
        if value is None or limit_problem(name, value) is not None:
            # NaN, infinities and values past the largest limit could never be enforced: refused here.
            raise argparse.ArgumentTypeError(f"expected {limit_rule(name)}, or 0 / 'none' for unlimited; "
                                             f"got {text!r}") from None
        return value or None  # 0 means unlimited, as in keys.json: store it as no limit at all
    return parse


def limit_options(parser, names):
    """Add ``--daily-spend-limit``... for the limits ``names``; an option not given is absent from ``args``."""
    group = parser.add_argument_group("limits (0 or 'none' = unlimited)")
    for name, number_type, metavar, help_text in LIMIT_OPTIONS:
        if name in names:
            group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_limit_type(name, number_type),
                               metavar=metavar, default=argparse.SUPPRESS,
                               help=f"{help_text} (at most {LIMIT_MAXIMUMS[name]:,})")


def given_limits(args, names):
    """Return {limit: value} of the limit options given on the command line (None: remove the limit)."""
    given = vars(args)  # options left out are absent (argparse.SUPPRESS), not None
    return {name: given[name] for name in names if name in given}


def keys_file_option(parser):
    parser.add_argument("--keys-file", help="edit this key file (default: the database when one is configured, "
                                            "else $ZIRI_KEYS_FILE or keys.json)")


def pricing_file_option(parser):
    parser.add_argument("--pricing-file", help="the catalog (default: $ZIRI_PRICING_FILE or pricing.json)")


def format_option(parser, default="table", choices=FORMATS):
    parser.add_argument("--format", choices=choices, default=default, help=f"output format (default {default})")


def database_url_option(parser):
    parser.add_argument("--database-url", help="the database (default: $ZIRI_DATABASE_URL, else $DATABASE_URL)")
