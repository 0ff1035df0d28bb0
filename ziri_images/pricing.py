"""The catalog of models and their prices (pricing.json), and the quotes and charges made from it.

An image model entry says what a request may ask for and what it costs:

- ``price_dimensions`` names the request fields its price depends on (default
  ``["quality", "size"]``); ``prices`` nests one level per dimension, in that order, down to
  a price per image (no dimensions: ``prices`` is one flat price). Each dimension has a
  ``default_<name>``; ``auto`` lists the dimensions that accept ``auto``, reserved at the
  highest price they can reach. A ``size_rule`` prices arbitrary ``WxH`` sizes by tier.
- ``params`` are the other fields the model accepts. A field that is neither is refused, so
  a provider that rejects ``size`` (xAI) never receives one.
- ``token_prices`` (USD per 1M tokens) make the provider's reported ``usage`` the charge; the
  per-image figures then serve as the estimate and, with ``output_tokens_per_image``, the
  reservation's ceiling.

Anything not in the catalog is refused before the provider is called: a request is never
billed at another row's price.
"""

import json
import re
from dataclasses import dataclass
from decimal import Decimal

from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from .errors import ApiError
from .errors import ConfigError
from .settings import load_json_file
from .sizes import SizeRule
from .tokens import TokenPrices
from .tokens import to_amount

AUTO = "auto"
IMAGE_KIND = "image"
MODEL_KINDS = (IMAGE_KIND, "chat", "embedding", "audio", "moderation", "video")
DEFAULT_DIMENSIONS = ("quality", "size")
_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# A token-billed charge is at most this many times its reservation: the provider's usage is
# charged as reported up to there (the reported figure is kept beside it as tokenCost).
TOKEN_CHARGE_CAP = 2
# The longest reported dimension value kept in a charge record (usage: 64 times that, as JSON).
MAX_RECORDED_CHARS = 64
# A dimension's value is written into ledger records and error details under its own name.
_RESERVED_NAMES = {"provider", "model", "prompt", "n", "stream", "user", "status", "cost", "currency", "amount",
                   "type", "ts", "reason"}


@dataclass(frozen=True)
class Quote:
    """The price of one request, fixed before the provider is called."""

    choices: dict  # the request's value of each price dimension, defaults applied
    images: int
    price_per_image: float  # the highest per-image price the request can reach
    reserve_per_image: float  # >= price_per_image: also covers the image output tokens that can be billed
    prompt_reserve: Decimal  # the most the prompt's text tokens can cost (0 without token prices)
    currency: str

    @property
    def quality(self):
        return self.choices.get("quality")

    @property
    def size(self):
        return self.choices.get("size")

    @property
    def estimated(self):
        """Images requested x the highest per-image price."""
        return round(self.images * self.price_per_image, 6)

    @property
    def reserved(self):
        """What is held against the key's budgets: an upper bound of what can be charged."""
        return to_amount(self.images * Decimal(str(self.reserve_per_image)) + self.prompt_reserve)


@dataclass(frozen=True)
class Charge:
    """What a successful request costs, from what the provider reports it produced and used.

    ``images`` and ``choices`` are what is delivered and charged: never more images than were
    requested, never dearer dimension values than were reserved. ``provider_images`` and
    ``provider_choices`` are what the provider itself reported, kept for reconciliation.
    """

    images: int
    choices: dict  # the price dimensions charged (as the provider reports them, unless dearer than reserved)
    price_per_image: float
    estimated_cost: float  # images charged x the per-image price
    token_cost: float | None  # from the reported usage, when the model has token prices and it can be read
    usage: dict | None  # the provider's usage as reported (None when absent, not an object or too large)
    charged_by: str  # "per_image", "tokens", or "reservation" when a token-billed usage cannot be read
    cost: float
    provider_images: int
    provider_choices: dict

    def ledger_fields(self):
        """Return the charge record's fields describing this charge."""
        fields = {
            "imagesReturned": self.images, "providerImages": self.provider_images,
            "pricePerImage": self.price_per_image, "estimatedCost": self.estimated_cost,
            "tokenCost": self.token_cost, "chargedBy": self.charged_by, "usage": self.usage, "cost": self.cost,
        }
        if self.provider_choices:
            fields["providerChoices"] = self.provider_choices
        return fields


def _param_field(name, spec, where):
    """Return the marshmallow field for one catalog parameter spec."""
    if isinstance(spec, list) and spec and all(isinstance(item, str) for item in spec):
        return fields.String(required=False, validate=validate.OneOf(spec))
    if spec == "string":
        return fields.String(validate=validate.Length(min=1, max=256))
    if isinstance(spec, dict) and spec.get("type") in ("integer", "number"):
        bounds = {bound: spec.get(bound) for bound in ("min", "max")}
        for bound, value in bounds.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{where}.params.{name}.{bound}: expected a number")
        limits = validate.Range(min=bounds["min"], max=bounds["max"])
        if spec["type"] == "integer":
            return fields.Integer(strict=True, validate=limits)
        return fields.Float(allow_nan=False, validate=limits)
    if isinstance(spec, dict) and spec.get("type") == "boolean":
        return fields.Boolean(truthy={True}, falsy={False})
    raise ConfigError(f"{where}.params.{name}: expected a list of values, \"string\" or a {{\"type\": ...}} object")


def _shape(dimensions, leaf):
    """Describe a table nested by ``dimensions``, e.g. ``{quality: {size: price}}``."""
    text = leaf
    for dimension in reversed(dimensions):
        text = f"{{{dimension}: {text}}}"
    return text


def _is_price(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0


def _is_token_count(value):
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def _check_table(table, dimensions, where, leaf, is_leaf, problem):
    """Return ``table`` validated as nested by ``dimensions`` down to leaves, or raise ConfigError."""
    if not dimensions:
        if not is_leaf(table):
            raise ConfigError(f"{where}: {problem}")
        return table
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: expected {_shape(dimensions, leaf)}")
    return {key: _check_table(value, dimensions[1:], f"{where}.{key}", leaf, is_leaf, problem)
            for key, value in table.items()}


def _leaves(table, keys):
    """Return the leaves of ``table`` reached by ``keys`` (one per level; None = any key)."""
    if not keys:
        return [table]
    key, rest = keys[0], keys[1:]
    if key is None:
        return [leaf for value in table.values() for leaf in _leaves(value, rest)]
    return _leaves(table[key], rest) if key in table else []


class ImageModel:
    """One priced image model of one provider."""

    def __init__(self, provider, name, entry, where):
        self.provider = provider
        self.name = name
        self.source = entry.get("source")
        self.as_of = entry.get("as_of")
        self.retired = entry.get("retired")
        try:
            self.max_images = int(entry["max_images"])
            self.max_prompt_chars = int(entry["max_prompt_chars"])
            prices = entry["prices"]
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{where}: missing or invalid {error}")
        self.price_dimensions = self._dimensions(entry.get("price_dimensions", DEFAULT_DIMENSIONS), where)
        try:
            self.defaults = {dimension: entry[f"default_{dimension}"] for dimension in self.price_dimensions}
        except KeyError as error:
            raise ConfigError(f"{where}: missing or invalid {error}")
        if not all(isinstance(value, str) for value in self.defaults.values()):
            raise ConfigError(f"{where}: every default_<dimension> must be a string")
        self.auto = tuple(entry.get("auto", ()))
        if not set(self.auto) <= set(self.price_dimensions):
            raise ConfigError(f"{where}.auto: only price dimensions ({', '.join(self.price_dimensions)}) can be auto")
        self.rules = {}
        if "size_rule" in entry:
            if "size" not in self.price_dimensions:
                raise ConfigError(f"{where}.size_rule: 'size' is not one of the price_dimensions")
            self.rules["size"] = SizeRule(entry["size_rule"], f"{where}.size_rule")
        self.prices = _check_table(prices, self.price_dimensions, f"{where}.prices", "price", _is_price,
                                   "price must be a number >= 0")
        self.output_tokens = None
        if "output_tokens_per_image" in entry:
            self.output_tokens = _check_table(entry["output_tokens_per_image"], self.price_dimensions,
                                              f"{where}.output_tokens_per_image", "tokens", _is_token_count,
                                              "expected a whole number of tokens >= 0")
        self.token_prices = None
        if "token_prices" in entry:
            self.token_prices = TokenPrices(entry["token_prices"], f"{where}.token_prices")
        if self.output_tokens is not None and self.token_prices is None:
            raise ConfigError(f"{where}.output_tokens_per_image: needs token_prices")
        self._check_rule_keys(where)
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params: expected an object")
        both = sorted(set(params) & set(self.price_dimensions))
        if both:
            raise ConfigError(f"{where}.params: {', '.join(both)} is a price dimension, not a parameter")
        self.param_names = tuple(params)
        self.params_schema = Schema.from_dict(
            {param: _param_field(param, spec, where) for param, spec in params.items()}, name=f"{name}Params"
        )()
        for level, (dimension, default) in enumerate(self.defaults.items()):
            if default != AUTO or dimension not in self.auto:
                keys = [None] * len(self.price_dimensions)
                keys[level] = self._key_for(dimension, default)
                if not _leaves(self.prices, keys):
                    raise ConfigError(f"{where}: default_{dimension} {default!r} has no price")

    @property
    def default_quality(self):
        return self.defaults.get("quality")

    @property
    def default_size(self):
        return self.defaults.get("size")

    @staticmethod
    def _dimensions(dimensions, where):
        if (not isinstance(dimensions, (list, tuple)) or len(set(dimensions)) != len(dimensions)
                or not all(isinstance(d, str) and _DIMENSION_NAME.match(d) for d in dimensions)):
            raise ConfigError(f"{where}.price_dimensions: expected a list of distinct lower-case field names")
        reserved = sorted(set(dimensions) & _RESERVED_NAMES)
        if reserved:
            raise ConfigError(f"{where}.price_dimensions: {', '.join(reserved)} cannot be a price dimension")
        return tuple(dimensions)

    def _check_rule_keys(self, where):
        """Refuse price table keys that a dimension's rule can never produce."""
        for level, dimension in enumerate(self.price_dimensions):
            rule = self.rules.get(dimension)
            if rule is None:
                continue
            tiers = {tier for tier, _ in rule.tiers}
            for table in (self.prices, self.output_tokens):
                keys = set(self._level_keys(table, level)) if table is not None else set()
                if not keys <= tiers:
                    raise ConfigError(f"{where}: {', '.join(sorted(keys - tiers))}: not a tier of size_rule")

    def _level_keys(self, table, level):
        if level == 0:
            yield from table
            return
        for value in table.values():
            yield from self._level_keys(value, level - 1)

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
        prices = _leaves(self.prices, self._keys(choices))
        return max(prices) if prices else None

    def price_per_image(self, *values):
        """Return ``price_for`` with the dimension values given in order, e.g. (quality, size)."""
        return self.price_for(dict(zip(self.price_dimensions, values)))

    def price_rows(self):
        """Yield ({dimension: key}, price) for every price in the table."""
        def walk(table, dimensions, path):
            if not dimensions:
                yield dict(path), table
                return
            for key, value in table.items():
                yield from walk(value, dimensions[1:], path + [(dimensions[0], key)])
        yield from walk(self.prices, self.price_dimensions, [])

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
        tokens = _leaves(self.output_tokens, self._keys(choices))
        if not tokens:
            return price
        return max(price, to_amount(self.token_prices.output_bound(max(tokens))))


class PriceBook:
    """All providers' models, loaded and validated once from pricing.json."""

    def __init__(self, document, path):
        self.path = path
        where = f"pricing file {path}"
        if not isinstance(document, dict) or not isinstance(document.get("providers"), dict):
            raise ConfigError(f"{where}: expected an object with a 'providers' object")
        self.currency = document.get("currency", "USD")
        self.providers = {}
        self.suggestions = {}
        for provider, provider_entry in document["providers"].items():
            models = provider_entry.get("models") if isinstance(provider_entry, dict) else None
            if not isinstance(models, dict):
                raise ConfigError(f"{where}: providers.{provider}: expected a 'models' object")
            catalog = {}
            for name, entry in models.items():
                model_where = f"{where}: providers.{provider}.models.{name}"
                kind = entry.get("kind") if isinstance(entry, dict) else None
                if kind not in MODEL_KINDS:
                    raise ConfigError(f"{model_where}.kind: expected one of {', '.join(MODEL_KINDS)}")
                catalog[name] = ImageModel(provider, name, entry, model_where) if kind == IMAGE_KIND else kind
            self.providers[provider] = catalog
            suggestion = provider_entry.get("image_model_suggestion")
            if suggestion is not None and not isinstance(catalog.get(suggestion), ImageModel):
                raise ConfigError(
                    f"{where}: providers.{provider}.image_model_suggestion: '{suggestion}' is not an image model")
            self.suggestions[provider] = suggestion

    @classmethod
    def from_file(cls, path):
        """Load and validate ``path``, or raise ConfigError naming it."""
        return cls(load_json_file(path, "pricing file"), path)

    def image_models(self):
        """Yield every ImageModel of every provider."""
        for catalog in self.providers.values():
            yield from (entry for entry in catalog.values() if isinstance(entry, ImageModel))

    def find_model(self, provider, model):
        """Return the ImageModel for (provider, model) or raise the catalog's error."""
        catalog = self.providers.get(provider)
        if catalog is None:
            raise ApiError(404, "PROVIDER_NOT_FOUND", f"Provider '{provider}' not found.",
                           availableProviders=sorted(self.providers))
        entry = catalog.get(model)
        if isinstance(entry, ImageModel):
            return entry
        if entry is not None:
            suggestion = self.suggestions.get(provider)
            hint = f" Use {suggestion} instead." if suggestion else ""
            raise ApiError(
                400,
                "ACTION_NOT_SUPPORTED",
                f"Model {model} does not support image_generation action.{hint}",
                suggestedModel=suggestion,
            )
        raise ApiError(400, "IMAGE_CONFIG_NOT_FOUND", f"Image pricing not configured for model '{model}'",
                       provider=provider, model=model)

    def quote(self, image_model, choices, images, prompt=""):
        """Return the Quote for a request, or raise IMAGE_CONFIG_NOT_FOUND if it has no price."""
        price = image_model.price_for(choices)
        if price is None:
            values = ", ".join(str(choices.get(dimension)) for dimension in image_model.price_dimensions)
            reason = image_model.why_unpriced(choices)
            raise ApiError(
                400,
                "IMAGE_CONFIG_NOT_FOUND",
                f"Image pricing not configured for model '{image_model.name}' ({values})",
                provider=image_model.provider,
                model=image_model.name,
                **choices,
                **({"reason": reason} if reason else {}),
            )
        tokens = image_model.token_prices
        return Quote(
            choices=dict(choices),
            images=images,
            price_per_image=price,
            reserve_per_image=image_model.reserve_per_image(choices, price),
            prompt_reserve=tokens.prompt_bound(prompt) if tokens else Decimal(0),
            currency=self.currency,
        )

    def charge(self, image_model, quote, body):
        """Return the Charge for a successful response ``body`` to a request priced at ``quote``.

        Per image: the images requested at most, at the price of the dimension values the
        provider reports, or at the reserved price when those are unpriced or dearer; so the
        cost never exceeds the reservation. By tokens: the reported usage, capped at
        ``TOKEN_CHARGE_CAP`` times the reservation; a usage that cannot be read is charged the
        reservation.
        """
        reported = {dimension: body[dimension] for dimension in quote.choices if isinstance(body.get(dimension), str)}
        produced = {**quote.choices, **reported}
        price = image_model.price_for(produced)
        if price is None or price > quote.price_per_image:
            produced, price = dict(quote.choices), quote.price_per_image
        images = min(len(body["data"]), quote.images)
        estimated_cost = round(images * price, 6)
        usage = body.get("usage")
        token_cost, charged_by, cost = None, "per_image", estimated_cost
        if image_model.token_prices is not None and usage is not None:
            token_cost = image_model.token_prices.cost(usage)
            if token_cost is None:
                charged_by, cost = "reservation", quote.reserved
            else:
                cap = to_amount(Decimal(str(quote.reserved)) * TOKEN_CHARGE_CAP)
                charged_by, cost = "tokens", min(token_cost, cap)
        return Charge(images=images, choices=produced, price_per_image=price, estimated_cost=estimated_cost,
                      token_cost=token_cost, usage=_recorded_usage(usage), charged_by=charged_by, cost=cost,
                      provider_images=len(body["data"]),
                      provider_choices={name: value[:MAX_RECORDED_CHARS] for name, value in reported.items()})


def _recorded_usage(usage):
    """Return ``usage`` to keep in the charge record: an object of bounded size, else None."""
    if not isinstance(usage, dict) or len(json.dumps(usage)) > MAX_RECORDED_CHARS * 64:
        return None
    return usage
