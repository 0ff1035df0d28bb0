"""Check and read a model's nested tables: prices and output tokens, one level per price dimension.

``{quality: {size: price}}`` for the default dimensions; no dimensions: the table is one leaf.
"""

from ..errors import ConfigError


def _shape(dimensions, leaf):
    """Describe a table nested by ``dimensions``, e.g. ``{quality: {size: price}}``."""
    text = leaf
    for dimension in reversed(dimensions):
        text = f"{{{dimension}: {text}}}"
    return text


def is_price(value):
    """Return whether ``value`` is a price: a number >= 0."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0


def is_token_count(value):
    """Return whether ``value`` is a token count: a whole number >= 0."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def check_table(table, dimensions, where, leaf, is_leaf, problem):
    """Return ``table`` validated as nested by ``dimensions`` down to leaves, or raise ConfigError."""
    if not dimensions:
        if not is_leaf(table):
            raise ConfigError(f"{where}: {problem}")
        return table
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: expected {_shape(dimensions, leaf)}")
    return {key: check_table(value, dimensions[1:], f"{where}.{key}", leaf, is_leaf, problem)
            for key, value in table.items()}


def leaves(table, keys):
    """Return the leaves of ``table`` reached by ``keys`` (one per level; None = any key)."""
    if not keys:
        return [table]
    key, rest = keys[0], keys[1:]
    if key is None:
        return [leaf for value in table.values() for leaf in leaves(value, rest)]
    return leaves(table[key], rest) if key in table else []


def level_rows(table, level):
    """Yield the tables nested ``level`` levels deep: the rows keyed by that dimension."""
    if level == 0:
        yield table
        return
    for value in table.values():
        yield from level_rows(value, level - 1)


def table_rows(table, dimensions, path=()):
    """Yield ({dimension: key}, leaf) for every leaf of ``table``."""
    if not dimensions:
        yield dict(path), table
        return
    for key, value in table.items():
        yield from table_rows(value, dimensions[1:], (*path, (dimensions[0], key)))
