"""The ``pricing check`` command: validate pricing.json as the gateway does at start-up, and print it."""

import sys

from ..catalog.pricing import PriceBook
from ..catalog.pricing_check import catalog_columns
from ..catalog.pricing_check import catalog_notes
from ..catalog.pricing_check import catalog_rows
from ..catalog.pricing_check import catalog_warnings
from ..catalog.pricing_check import online_findings
from ..config import Config
from ..providers.model_lists import fetch_model_lists
from .errors import CliError
from .options import format_option
from .options import pricing_file_option
from .options import setting
from .tables import note
from .tables import write_rows


def add_commands(commands):
    """Add ``pricing check`` to the command line."""
    pricing = commands.add_parser("pricing", help="check the catalog (pricing.json)")
    actions = pricing.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate pricing.json and print the catalog",
                               description="Validate the catalog as the gateway does at start-up and print "
                                           "every price. Exits 1 if the file is invalid.")
    format_option(check)
    pricing_file_option(check)
    check.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    check.add_argument("--online", action="store_true",
                       help="also ask each provider whose key is set for its model list, and warn of catalog models "
                            "it no longer serves or will shut down")
    check.set_defaults(handler=pricing_check)


def pricing_check(args):
    path = setting(args, "pricing_file", "PRICING_FILE")
    book = PriceBook.from_file(path)
    rows = catalog_rows(book)
    write_rows(sys.stdout, args.format, catalog_columns(rows), rows)
    for line in catalog_notes(book):
        note(f"note: {line}")
    warnings = catalog_warnings(book)
    if args.online:
        config = Config.from_environ()
        lists = fetch_model_lists(config.providers, (config.upstream_connect_timeout, config.upstream_read_timeout))
        online_warnings, online_notes = online_findings(book, lists)
        for line in online_notes:
            note(f"note: {line}")
        warnings += online_warnings
    for warning in warnings:
        note(f"warning: {warning}")
    note(f"{path}: valid, {len({(row['provider'], row['model']) for row in rows})} image models, "
         f"{len(rows)} prices, {len(warnings)} warning(s)")
    if warnings and args.strict:
        raise CliError("warnings are errors with --strict")
