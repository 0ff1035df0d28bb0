"""The one failure of a command: ``CliError``, printed by ``entry.main`` as one line with exit code 1.

Commands raise ``CliError`` for what they refuse themselves; the failures the libraries they
call raise (a file or setting that is unusable, a key-file edit refused, the operating system)
are turned into one here, so ``main`` knows a single type.
"""

from ..errors import ConfigError
from ..keys.keyfile import KeyFileError


class CliError(Exception):
    """A command that cannot be carried out; ``main`` prints ``ziri-images: error: <message>`` and exits 1."""


# What the libraries raise when an operator's file, setting or system refuses a command.
LIBRARY_FAILURES = (ConfigError, KeyFileError, OSError)


def as_cli_error(error):
    """Return the ``CliError`` one of ``LIBRARY_FAILURES`` means on the command line (an OSError names its file)."""
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return CliError(f"{where}{error.strerror or error}")
    return CliError(str(error))
