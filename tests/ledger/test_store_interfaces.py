"""The stores' two interfaces (ledger/base.py), and what the ledger may import."""

import ast
from pathlib import Path

import pytest

from ziri_images.ledger.base import Archive
from ziri_images.ledger.base import Store
from ziri_images.ledger.file.store import FileStore
from ziri_images.ledger.postgres.store import PostgresStore

LEDGER = Path(__file__).resolve().parents[2] / "ziri_images" / "ledger"
# The layers above the ledger: it is handed what it needs from them, never imports them.
ABOVE = ("ops", "server", "api", "access", "gateway", "billing", "streaming", "providers", "cli")


def test_the_request_path_interface_holds_no_archive_operation():
    assert Store.__abstractmethods__ == {"start", "reserve", "settle", "key_usage", "rate_summary", "readiness"}
    assert Archive.__abstractmethods__ == {"records", "import_records", "report"}


@pytest.mark.parametrize("store", [FileStore, PostgresStore])
def test_every_store_implements_the_request_path_and_the_archive(store):
    assert issubclass(store, Store) and issubclass(store, Archive)
    assert not store.__abstractmethods__


def imported_packages(path):
    """Yield the first name under ziri_images of every relative import in ``path``."""
    depth = len(path.relative_to(LEDGER.parent).parts)  # ziri_images/ledger/x.py: 2 dots reach ziri_images
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= depth:
            yield (node.module or "").split(".")[0] or node.names[0].name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ziri_images."):
            yield node.module.split(".")[1]


@pytest.mark.parametrize("path", sorted(LEDGER.rglob("*.py")), ids=lambda path: str(path.relative_to(LEDGER)))
def test_the_ledger_imports_nothing_from_the_layers_above_it(path):
    assert not set(imported_packages(path)) & set(ABOVE)
