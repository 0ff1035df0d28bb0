"""The ``ziri-images`` command line: keys, prices, the ledger, the database and local runs.

``entry`` is the one entry: it builds the parser and holds ``main`` (the console script
``ziri_images.cli:main``; ``python -m ziri_images.cli`` runs it too), which prints every failure,
one ``CliError`` (``errors``), as one line. Each command group wires and runs its own commands:
``keys``, ``ledger`` (report, export, import), ``db`` (migrate, and the import's work),
``pricing`` (check) and ``dev`` (serve, dev, stub). ``options`` holds what they share and
``tables`` prints rows as a table, CSV or JSON.
"""

from .entry import main

__all__ = ["main"]
