"""The ``alerts`` command: ``alerts list``, the budget alerts the configured store recorded and where each stands."""

import sys
from dataclasses import replace

from ..alerts.events import STATUSES
from ..config import Config
from ..gateway import open_store
from ..ledger.money import format_ts
from .options import format_option
from .options import when
from .tables import write_rows

ALERT_COLUMNS = ("at", "scope", "holder", "period", "limitName", "threshold", "spent", "limit", "status", "attempts",
                 "lastError")


def add_commands(commands):
    """Add ``alerts list`` to the command line."""
    alerts = commands.add_parser("alerts", help="the budget alerts recorded and their delivery",
                                 description="Budget alerts: a key's or team's spend reaching a threshold "
                                             "(ZIRI_ALERT_THRESHOLDS) of a limit, posted to ZIRI_ALERT_WEBHOOK_URL.")
    actions = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the alerts, newest first",
                                 description="List the budget alerts of the configured store, newest first: "
                                             "pending (not sent yet, or to be retried), delivered or failed "
                                             "(given up after ZIRI_ALERT_RETRY_SECONDS), with the attempts made "
                                             "and the last error.")
    listing.add_argument("--since", type=when, metavar="WHEN", help="recorded from this ISO date/date-time (UTC)")
    listing.add_argument("--status", choices=STATUSES, help="only the alerts in this state")
    listing.add_argument("--ledger", help="the file store whose alerts to read: its JSONL ledger (alerts.jsonl "
                                          "beside it; default: the configured store)")
    format_option(listing)
    listing.set_defaults(handler=alerts_list)


def alerts_list(args):
    config = Config.from_environ(read_providers=False)
    if args.ledger is not None:
        config = replace(config, ledger_path=args.ledger, database_url="")
    store = open_store(config, create=False)
    try:
        found = store.alert_outbox().alerts(since=format_ts(args.since) if args.since else None, status=args.status)
    finally:
        store.close()
    rows = [alert.as_row() for alert in found]
    write_rows(sys.stdout, args.format, ALERT_COLUMNS, rows, document={"alerts": rows})

