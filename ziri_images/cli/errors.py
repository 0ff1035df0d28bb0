"""The failure of a command that ``entry.main`` prints as one line with exit code 1."""


class CliError(Exception):
    """A command that cannot be carried out; ``main`` prints ``ziri-images: error: <message>`` and exits 1."""
