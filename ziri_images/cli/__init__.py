"""The ``ziri-images`` command line: keys, prices, the ledger, the database and local runs.

``entry`` wires every command into argparse and holds ``main`` (the console script
``ziri_images.cli:main``; ``python -m ziri_images.cli`` runs it too); ``commands`` runs the key,
pricing and ledger commands, ``db`` the PostgreSQL ones, ``launch`` starts the gateway, the
development setup and the local stub, and ``tables`` prints rows as a table, CSV or JSON.
"""

from .entry import main

__all__ = ["main"]
