"""Size rules: price an arbitrary ``WxH`` by the pixel-count tier it falls in.

Most models accept a fixed list of sizes, the keys of their price table. A model that accepts
any ``WxH`` within limits (gpt-image-2) carries a ``size_rule`` in pricing.json instead: the
limits a size must meet, ``sizes`` the provider prices one by one (its standard sizes, with
published token counts) and tiers named by their largest size. A listed size is priced as
itself; any other size at the first tier with at least as many pixels. A size that is not
``WxH`` or breaks a limit is one the model does not take (the request is refused with
INVALID_SIZE, quoting.py); one larger than every tier is one the catalog does not price
(IMAGE_CONFIG_NOT_FOUND). Both are refused before the provider is called.
"""

import math
import re

from ..errors import ConfigError
from .tables import level_rows

_SIZE = re.compile(r"([1-9][0-9]{0,5})x([1-9][0-9]{0,5})\Z")
_RATIO = re.compile(r"([1-9][0-9]{0,2}):([1-9][0-9]{0,2})\Z")
_LIMITS = ("multiple_of", "max_edge", "min_pixels", "max_pixels")
NOT_WXH = "the size is not 'WxH'"


def parse_size(text):
    """Return (width, height) for a ``WxH`` string, or None."""
    match = _SIZE.match(text) if isinstance(text, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


class SizeRule:
    """The limits on ``WxH`` sizes and the pixel-count tiers they are priced by."""

    def __init__(self, spec, where):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected an object")
        unknown = sorted(set(spec) - {*_LIMITS, "max_aspect_ratio", "tiers", "sizes"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        for name in _LIMITS:
            value = spec.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{where}.{name}: expected a whole number >= 1")
        self.multiple_of = spec.get("multiple_of", 1)
        self.max_edge = spec.get("max_edge")
        self.min_pixels = spec.get("min_pixels")
        self.max_pixels = spec.get("max_pixels")
        ratio = spec.get("max_aspect_ratio")
        if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio < 1):
            raise ConfigError(f"{where}.max_aspect_ratio: expected a number >= 1 (3 means between 1:3 and 3:1)")
        self.max_aspect_ratio = ratio
        tiers = spec.get("tiers")
        if not isinstance(tiers, list) or not tiers or not all(parse_size(tier) for tier in tiers):
            raise ConfigError(f"{where}.tiers: expected a list of 'WxH' sizes, smallest first")
        pixels = [width * height for width, height in map(parse_size, tiers)]
        if pixels != sorted(set(pixels)):
            raise ConfigError(f"{where}.tiers: each tier must have more pixels than the one before it")
        self.tiers = tuple(zip(tiers, pixels))
        self.sizes = ()  # set before the check: it prices candidates by the tiers alone
        self.sizes = self._exact_sizes(spec.get("sizes", []), where)

    def _exact_sizes(self, sizes, where):
        """Return the sizes priced one by one, each checked against the limits and the tiers."""
        if not isinstance(sizes, list) or not all(parse_size(size) for size in sizes):
            raise ConfigError(f"{where}.sizes: expected a list of 'WxH' sizes")
        for size in sizes:
            problem = self.problem(*parse_size(size))
            if problem is not None:
                raise ConfigError(f"{where}.sizes: {size}: {problem}")
            if any(size == tier for tier, _ in self.tiers):
                raise ConfigError(f"{where}.sizes: {size} is also a tier; a tier is already priced as itself")
            if self.tier_for(size)[0] is None:
                raise ConfigError(f"{where}.sizes: {size} has more pixels than the largest tier")
        return tuple(sizes)

    @property
    def keys(self):
        """Return every price table key the rule can produce: the tiers and the listed sizes."""
        return {tier for tier, _ in self.tiers} | set(self.sizes)

    def problem(self, width, height):
        """Return why ``width`` x ``height`` breaks the limits, or None when it meets them."""
        long_edge, short_edge = max(width, height), min(width, height)
        if width % self.multiple_of or height % self.multiple_of:
            return f"width and height must be multiples of {self.multiple_of}"
        if self.max_edge is not None and long_edge > self.max_edge:
            return f"an edge is longer than {self.max_edge} pixels"
        if self.max_aspect_ratio is not None and long_edge > self.max_aspect_ratio * short_edge:
            return f"the aspect ratio is beyond {self.max_aspect_ratio:g}:1"
        if self.min_pixels is not None and width * height < self.min_pixels:
            return f"fewer than {self.min_pixels} pixels"
        if self.max_pixels is not None and width * height > self.max_pixels:
            return f"more than {self.max_pixels} pixels"
        return None

    def breach(self, size):
        """Return why ``size`` is not a size the rule takes (not ``WxH``, or past a limit), or None."""
        if any(size == tier for tier, _ in self.tiers) or size in self.sizes:
            return None
        parsed = parse_size(size)
        return NOT_WXH if parsed is None else self.problem(*parsed)

    def tier_for(self, size):
        """Return (price key, None) for a size the rule prices, else (None, the reason it does not)."""
        if any(size == tier for tier, _ in self.tiers) or size in self.sizes:
            return size, None
        problem = self.breach(size)
        if problem is not None:
            return None, problem
        width, height = parse_size(size)
        pixels = width * height
        for tier, tier_pixels in self.tiers:
            if pixels <= tier_pixels:
                return tier, None
        return None, f"more pixels than the largest tier ({self.tiers[-1][0]})"


class SizeMapping:
    """How a ``WxH`` size reaches a model that takes an aspect ratio (and a resolution tier) instead.

    ``aspect_ratio``: the ratios the model takes (``"16:9"``); a size gets the nearest one (by the
    logarithm of width / height, so 2:1 is as far from 1:1 as 1:2). ``image_size`` (optional):
    the model's tiers with their longest edge (``{"1K": 1024, "2K": 2048}``); a size gets the
    first tier whose edge is at least its longest edge.
    """

    def __init__(self, spec, where):
        if not isinstance(spec, dict) or set(spec) - {"aspect_ratio", "image_size"} or "aspect_ratio" not in spec:
            raise ConfigError(f"{where}: expected an object with 'aspect_ratio' (and optionally 'image_size')")
        ratios = spec["aspect_ratio"]
        if not isinstance(ratios, list) or not ratios or not all(_ratio(ratio) for ratio in ratios):
            raise ConfigError(f"{where}.aspect_ratio: expected a list of ratios such as \"16:9\"")
        self.ratios = tuple(ratios)
        tiers = spec.get("image_size", {})
        edges = list(tiers.values()) if isinstance(tiers, dict) else None
        if edges is None or not all(isinstance(edge, int) and not isinstance(edge, bool) and edge > 0
                                    for edge in edges) or edges != sorted(set(edges)):
            raise ConfigError(f"{where}.image_size: expected {{tier: longest edge}}, smallest first")
        self.tiers = tuple(tiers.items())

    @classmethod
    def read(cls, entry, dimensions, prices, where):
        """Return the checked mapping of a model's catalog ``entry``, or None when it has none."""
        if "size_mapping" not in entry:
            return None
        mapping = cls(entry["size_mapping"], where)
        mapping.check(dimensions, prices, entry.get("params", {}), where)
        return mapping

    def check(self, dimensions, prices, params, where):
        """Raise ConfigError unless the model prices every tier and takes every ratio the mapping can produce.

        ``prices`` is the model's price table (``dimensions`` its levels), ``params`` its catalog params.
        """
        if self.tiers and "image_size" in dimensions:
            for row in level_rows(prices, dimensions.index("image_size")):
                missing = sorted({name for name, _ in self.tiers} - set(row))
                if missing:
                    raise ConfigError(f"{where}.image_size: tier(s) {', '.join(missing)} without a price")
        elif self.tiers and "image_size" not in params:
            raise ConfigError(f"{where}.image_size: 'image_size' is neither a price dimension nor a param")
        ratios = params.get("aspect_ratio")
        if "aspect_ratio" in dimensions:
            return
        if not isinstance(ratios, list) or not set(self.ratios) <= set(ratios):
            raise ConfigError(f"{where}.aspect_ratio: every ratio must be one params.aspect_ratio lists")

    @property
    def fields(self):
        """Return the request fields a size is turned into."""
        return ("aspect_ratio", "image_size") if self.tiers else ("aspect_ratio",)

    def translate(self, size):
        """Return ({field: value} for ``size``, None), or (None, the reason the model cannot take it)."""
        parsed = parse_size(size)
        if parsed is None:
            return None, NOT_WXH
        width, height = parsed
        wanted = math.log(width / height)
        values = {"aspect_ratio": min(self.ratios, key=lambda ratio: abs(math.log(_ratio(ratio)) - wanted))}
        if self.tiers:
            tier = next((name for name, edge in self.tiers if max(width, height) <= edge), None)
            if tier is None:
                return None, f"an edge is longer than {self.tiers[-1][1]} pixels"
            values["image_size"] = tier
        return values, None


def _ratio(text):
    """Return width / height for a ratio such as ``"16:9"``, or None."""
    match = _RATIO.match(text) if isinstance(text, str) else None
    return int(match.group(1)) / int(match.group(2)) if match else None
