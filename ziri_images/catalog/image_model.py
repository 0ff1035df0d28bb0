"""One image model of the catalog (pricing.json): what a request may ask of it and what it costs.

- ``price_dimensions`` names the request fields its price depends on (default
  ``["quality", "size"]``); ``prices`` nests one level per dimension, in that order, down to
  a price per image (no dimensions: ``prices`` is one flat price). Each dimension has a
  ``default_<name>``; ``auto`` lists the dimensions that accept ``auto``, reserved at the
  highest price they can reach. A ``size_rule`` prices arbitrary ``WxH`` sizes (sizes.py).
- ``params`` are the other fields the model accepts. A field that is neither is refused, so
  a provider that rejects ``size`` (xAI) never receives one.
- ``token_prices`` (USD per 1M tokens) make the provider's reported ``usage`` the charge; the
  per-image figures then serve as the estimate and, with ``output_tokens_per_image``, the
  reservation's ceiling.
- ``edits`` / ``streaming`` (booleans, default false): the model is served on the edits
  endpoint / with ``stream: true`` (and ``partial_images``).
- ``retired`` (``YYYY-MM-DD``): the day the provider retired the model (pricing.py refuses it
  from then on, except at a compatible endpoint).
- ``size_mapping``: the model takes an aspect ratio (and a resolution tier) rather than ``WxH``;
  a request's ``size`` is turned into them (``sizes.SizeMapping``).
- ``megapixel_prices``: the model is priced by the megapixels it makes and reads (Black Forest
  Labs' FLUX.2: ``megapixels.MegapixelPrices``), not by a table: ``size`` is its one price
  dimension and there is no ``prices``.
- ``charged_by: "provider"``: the charge is what the provider reports it billed
  (``ProviderResult.provider_billed``), in full, and the reservation when it reports nothing;
  the catalog's figures are the reservation and the estimate beside it.
- Bounds the gateway enforces for token-billed models whose text output it cannot predict
  (``limits.py``): ``max_text_output_tokens`` a call, ``input_image_tokens`` a reference image,
  ``token_charge_cap`` (times the reservation), ``masks`` (false: an edit takes no mask).
"""

from marshmallow import Schema

from ..errors import ConfigError
from .entry_fields import entry_charged_by_provider
from .entry_fields import entry_dimensions
from .entry_fields import entry_retired
from .limits import CallBounds
from .megapixels import MegapixelPrices
from .params import param_field
from .sizes import SizeMapping
from .sizes import SizeRule
from .tables import check_table
from .tables import is_price
from .tables import is_token_count
from .tables import leaves
from .tables import level_rows
from .tables import table_rows
from .tokens import TokenPrices
from .tokens import to_amount

AUTO = "auto"
DEFAULT_DIMENSIONS = ("quality", "size")


class ImageModel:
    """One priced image model of one provider."""

    def __init__(self, provider, name, entry, where):
        self.provider = provider
        self.name = name
        self.source = entry.get("source")
        self.as_of = entry.get("as_of")
        self.retired = entry_retired(entry, where)
        self.megapixels = MegapixelPrices(entry["megapixel_prices"], f"{where}.megapixel_prices") \
            if "megapixel_prices" in entry else None
        prices = self._read_served(entry, where)
        self.price_dimensions = entry_dimensions(entry.get("price_dimensions", DEFAULT_DIMENSIONS), where)
        self.defaults = self._defaults(entry, where)
        self.auto = self._auto(entry, where)
        self.rules = self._rules(entry, where)
        self.charged_by_provider = entry_charged_by_provider(entry, where)
        self.prices = None if self.megapixels else check_table(
            prices, self.price_dimensions, f"{where}.prices", "price", is_price, "price must be a number >= 0")
        self.output_tokens, self.token_prices = self._token_figures(entry, where)
        self.size_mapping = SizeMapping.read(entry, self.price_dimensions, self.prices, f"{where}.size_mapping")
        self.bounds = CallBounds(entry, where, self.token_prices)
        self._check_rule_keys(where)
        self.param_names, self.params_schema = self._params(entry, name, where)
        self._check_defaults_are_priced(where)

    def _read_served(self, entry, where):
        """Set what the model serves (images, prompt length, edits, streaming); return its prices, unchecked."""
        try:
            self.max_images = int(entry["max_images"])
            self.edits = entry.get("edits", False) is True  # POST /images/edits is served for it
            self.streaming = entry.get("streaming", False) is True  # stream: true (Server-Sent Events) is served
            self.max_prompt_chars = int(entry["max_prompt_chars"])
            if self.megapixels is not None:
                if "prices" in entry or "size_rule" in entry:
                    raise ConfigError(f"{where}: a model with megapixel_prices has no prices and no size_rule")
                return None
            return entry["prices"]
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{where}: missing or invalid {error}")

    def _defaults(self, entry, where):
        """Return each price dimension's ``default_<name>``, all strings."""
        try:
            defaults = {dimension: entry[f"default_{dimension}"] for dimension in self.price_dimensions}
        except KeyError as error:
            raise ConfigError(f"{where}: missing or invalid {error}")
        if not all(isinstance(value, str) for value in defaults.values()):
            raise ConfigError(f"{where}: every default_<dimension> must be a string")
        return defaults

    def _auto(self, entry, where):
        """Return the price dimensions that accept ``auto``."""
        auto = tuple(entry.get("auto", ()))
        if not set(auto) <= set(self.price_dimensions):
            raise ConfigError(f"{where}.auto: only price dimensions ({', '.join(self.price_dimensions)}) can be auto")
        return auto

    def _rules(self, entry, where):
        """Return {dimension: rule} for the dimensions priced by a rule (``size_rule``, ``megapixel_prices``)."""
        if self.megapixels is not None:
            if self.price_dimensions != ("size",):
                raise ConfigError(f"{where}.price_dimensions: a model with megapixel_prices is priced by size alone")
            return {"size": self.megapixels}
        rules = {}
        if "size_rule" in entry:
            if "size" not in self.price_dimensions:
                raise ConfigError(f"{where}.size_rule: 'size' is not one of the price_dimensions")
            rules["size"] = SizeRule(entry["size_rule"], f"{where}.size_rule")
        return rules

    def _token_figures(self, entry, where):
        """Return (output tokens per image, TokenPrices), each None when the model has none."""
        output_tokens = None
        if "output_tokens_per_image" in entry:
            output_tokens = check_table(entry["output_tokens_per_image"], self.price_dimensions,
                                        f"{where}.output_tokens_per_image", "tokens", is_token_count,
                                        "expected a whole number of tokens >= 0")
        token_prices = None
        if "token_prices" in entry:
            token_prices = TokenPrices(entry["token_prices"], f"{where}.token_prices")
        if output_tokens is not None and token_prices is None:
            raise ConfigError(f"{where}.output_tokens_per_image: needs token_prices")
        return output_tokens, token_prices

    def _params(self, entry, name, where):
        """Return (the names of the model's other fields, the marshmallow schema that loads them)."""
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params: expected an object")
        both = sorted(set(params) & set(self.price_dimensions))
        if both:
            raise ConfigError(f"{where}.params: {', '.join(both)} is a price dimension, not a parameter")
        schema = Schema.from_dict(
            {param: param_field(param, spec, where) for param, spec in params.items()}, name=f"{name}Params"
        )()
        return tuple(params), schema

    def _check_defaults_are_priced(self, where):
        """Refuse a default dimension value that no price in the table matches (``auto`` aside)."""
        if self.megapixels is not None:
            if self.megapixels.output_price(self.defaults["size"]) is None:
                raise ConfigError(f"{where}: default_size {self.defaults['size']!r}: "
                                  f"{self.megapixels.breach(self.defaults['size'])}")
            return
        for level, (dimension, default) in enumerate(self.defaults.items()):
            if default != AUTO or dimension not in self.auto:
                keys = [None] * len(self.price_dimensions)
                keys[level] = self._key_for(dimension, default)
                if not leaves(self.prices, keys):
                    raise ConfigError(f"{where}: default_{dimension} {default!r} has no price")

    def is_retired(self, today):
        """Return whether the provider has retired the model by ``today`` (an ISO date string).

        A date compares correctly with today's as text; a month alone counts from its first day.
        """
        return self.retired is not None and self.retired[:10] <= today

    @property
    def default_quality(self):
        return self.defaults.get("quality")

    @property
    def default_size(self):
        return self.defaults.get("size")

    def _check_rule_keys(self, where):
        """Refuse price table keys that a dimension's rule can never produce."""
        for level, dimension in enumerate(self.price_dimensions):
            rule = self.rules.get(dimension)
            if rule is None:
                continue
            for table in (self.prices, self.output_tokens):
                for row in level_rows(table, level) if table is not None else ():
                    unknown = set(row) - rule.keys
                    if unknown:
                        raise ConfigError(f"{where}: {', '.join(sorted(unknown))}: not a tier or size of size_rule")
                    # A listed size missing from a row would be refused rather than priced by its tier.
                    missing = set(rule.sizes) - set(row)
                    if missing:
                        raise ConfigError(f"{where}: {', '.join(sorted(missing))}: a size of size_rule without a "
                                          "figure in every row")

    def _key_for(self, dimension, value):
        """Return the table key for one dimension's value: None for ``auto`` (any key), False for none."""
        if value == AUTO and dimension in self.auto:
            return None
        if dimension in self.rules:
            return self.rules[dimension].tier_for(value)[0] or False
        return value if isinstance(value, str) else False

    def _keys(self, choices):
        return [self._key_for(dimension, choices.get(dimension)) for dimension in self.price_dimensions]

    def price_for(self, choices):
        """Return the highest price per image for these dimension values (``auto`` resolved), or None."""
        if self.megapixels is not None:
            return self.megapixels.output_price(choices.get("size"))
        prices = leaves(self.prices, self._keys(choices))
        return max(prices) if prices else None

    def price_per_image(self, *values):
        """Return ``price_for`` with the dimension values given in order, e.g. (quality, size)."""
        return self.price_for(dict(zip(self.price_dimensions, values)))

    def price_rows(self):
        """Yield ({dimension: key}, price) for every price in the table (a megapixel model: its two figures)."""
        if self.megapixels is not None:
            yield from self.megapixels.rows()
            return
        yield from table_rows(self.prices, self.price_dimensions)

    def why_unpriced(self, choices):
        """Return the reason a size rule refuses one of ``choices``, or None."""
        for dimension, rule in self.rules.items():
            value = choices.get(dimension)
            if not (value == AUTO and dimension in self.auto):
                tier, reason = rule.tier_for(value)
                if tier is None:
                    return f"{dimension} {value}: {reason}"
        return None

    def reserve_per_image(self, choices, price):
        """Return the most one image can be charged: its price, or its output tokens' cost if higher."""
        if self.output_tokens is None:
            return price
        tokens = leaves(self.output_tokens, self._keys(choices))
        if not tokens:
            return price
        output = self.token_prices.output_bound(max(tokens)) + self.bounds.text_output_bound()
        return max(price, to_amount(output))

    def max_output_tokens(self, choices):
        """Return the output tokens one call may use (its image's, plus the text bound), or None if unbounded."""
        tokens = leaves(self.output_tokens, self._keys(choices)) if self.output_tokens is not None else []
        if self.bounds.max_text_output_tokens is None or not tokens:
            return None
        return max(tokens) + self.bounds.max_text_output_tokens
