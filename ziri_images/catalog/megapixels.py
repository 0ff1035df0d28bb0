"""Megapixel pricing: a price for the first megapixel, and one for each further megapixel in and out.

Black Forest Labs prices its FLUX.2 models so: ``firstMP + (outputMP - 1) x mpPrice + inputMP x
mpPrice`` (its pricing page, in cents; the catalog keeps dollars). A model's ``megapixel_prices``
holds the two figures and the sizes the model takes (``multiple_of``, ``min_edge``,
``max_pixels``); it is the model's size rule too: any ``WxH`` within those limits is priced by
the formula, anything else refused (INVALID_SIZE) before anything is reserved.

How BFL counts megapixels is not published; the gateway reserves the dearer reading: a megapixel
is 1,000,000 pixels, and a part of one counts whole (1024x1024 is 2 MP here; one answer relayed by
a third party shows BFL billing it as 1: unverified). Each reference image of an edit is counted
so too. The reservation is then an upper bound, and the charge is what BFL reports it billed
(``charged_by: "provider"``), never this estimate.
"""

import math
from decimal import Decimal

from ..errors import ConfigError
from .sizes import NOT_WXH
from .sizes import parse_size
from .tables import is_price

PIXELS_PER_MP = 1_000_000
_LIMITS = ("multiple_of", "min_edge", "max_pixels")


def megapixels(width, height):
    """Return the megapixels ``width`` x ``height`` is reserved as: every started megapixel, at least one."""
    return max(1, math.ceil(width * height / PIXELS_PER_MP))


class MegapixelPrices:
    """A model's megapixel prices (dollars) and the ``WxH`` sizes it takes; also its size rule."""

    sizes = ()  # no size is priced one by one
    keys = frozenset()  # nor from a price table

    def __init__(self, spec, where):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected an object")
        unknown = sorted(set(spec) - {"first_mp", "mp", *_LIMITS})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        for name in ("first_mp", "mp"):
            if not is_price(spec.get(name)):
                raise ConfigError(f"{where}.{name}: expected a price in dollars >= 0")
        for name in _LIMITS:
            value = spec.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{name}: expected a whole number >= 1")
        self.first_mp = Decimal(str(spec["first_mp"]))
        self.mp = Decimal(str(spec["mp"]))
        self.multiple_of, self.min_edge, self.max_pixels = (spec[name] for name in _LIMITS)

    def problem(self, width, height):
        """Return why ``width`` x ``height`` is not a size the model takes, or None."""
        if width % self.multiple_of or height % self.multiple_of:
            return f"width and height must be multiples of {self.multiple_of}"
        if min(width, height) < self.min_edge:
            return f"an edge is shorter than {self.min_edge} pixels"
        if width * height > self.max_pixels:
            return f"more than {self.max_pixels} pixels ({self.max_pixels / PIXELS_PER_MP:.2f} MP)"
        return None

    def breach(self, size):
        """Return why ``size`` is not a size the model takes (not ``WxH``, or past a limit), or None."""
        parsed = parse_size(size)
        return NOT_WXH if parsed is None else self.problem(*parsed)

    def tier_for(self, size):
        """Return (``size``, None) for a size the model takes, else (None, the reason): as ``SizeRule`` does."""
        problem = self.breach(size)
        return (None, problem) if problem else (size, None)

    def output_price(self, size):
        """Return the price of one image of ``size`` (dollars), or None when the model does not take it."""
        if self.breach(size) is not None:
            return None
        output = megapixels(*parse_size(size))
        return float(self.first_mp + (output - 1) * self.mp)

    def input_price(self, infos):
        """Return what the reference images (ImageInfo: width, height) add to each image, in dollars."""
        return float(sum(megapixels(info.width, info.height) for info in infos) * self.mp)

    def rows(self):
        """Yield ({"size": size}, price) for the catalog's listing: the largest square of each megapixel count."""
        sides = [math.isqrt(count * PIXELS_PER_MP) // self.multiple_of * self.multiple_of
                 for count in range(1, math.ceil(self.max_pixels / PIXELS_PER_MP))]
        sides.append(math.isqrt(self.max_pixels) // self.multiple_of * self.multiple_of)
        for side in sorted(set(side for side in sides if side >= self.min_edge)):
            size = f"{side}x{side}"
            yield {"size": size}, self.output_price(size)
