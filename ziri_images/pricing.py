"""The catalog of models and their prices (pricing.json), and the quotes made from it.

An image model entry says what a request may ask for (sizes and qualities come from its
price table, ``auto`` only where listed, optional parameters from ``params``) and what each
(quality, size) costs per image. Anything not in the catalog is refused before the provider
is called: a request is never billed at another row's price.
"""

import json
from dataclasses import dataclass

from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from .errors import ApiError
from .errors import ConfigError

AUTO = "auto"
IMAGE_KIND = "image"
MODEL_KINDS = (IMAGE_KIND, "chat", "embedding", "audio", "moderation", "video")


@dataclass(frozen=True)
class Quote:
    """The price of one request, fixed before the provider is called."""

    quality: str
    size: str
    images: int
    price_per_image: float  # the highest price the request can reach (what is reserved)
    currency: str

    @property
    def estimated(self):
        return round(self.images * self.price_per_image, 6)


def _param_field(name, spec, where):
    """Return the marshmallow field for one catalog parameter spec."""
    if isinstance(spec, list) and spec and all(isinstance(item, str) for item in spec):
        return fields.String(required=False, validate=validate.OneOf(spec))
    if spec == "string":
        return fields.String(validate=validate.Length(min=1, max=256))
    if isinstance(spec, dict) and spec.get("type") in ("integer", "number"):
        field_class = fields.Integer if spec["type"] == "integer" else fields.Float
        return field_class(strict=True, validate=validate.Range(min=spec.get("min"), max=spec.get("max")))
    if isinstance(spec, dict) and spec.get("type") == "boolean":
        return fields.Boolean(truthy={True}, falsy={False})
    raise ConfigError(f"{where}.params.{name}: expected a list of values, \"string\" or a {{\"type\": ...}} object")


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
            self.default_size = entry["default_size"]
            self.default_quality = entry["default_quality"]
            prices = entry["prices"]
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{where}: missing or invalid {error}")
        self.auto = tuple(entry.get("auto", ()))
        if not isinstance(prices, dict) or not prices:
            raise ConfigError(f"{where}.prices: expected {{quality: {{size: price}}}}")
        self.prices = {}
        for quality, by_size in prices.items():
            if not isinstance(by_size, dict) or not by_size:
                raise ConfigError(f"{where}.prices.{quality}: expected {{size: price}}")
            for size, price in by_size.items():
                if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
                    raise ConfigError(f"{where}.prices.{quality}.{size}: price must be a number >= 0")
            self.prices[quality] = dict(by_size)
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{where}.params: expected an object")
        self.param_names = tuple(params)
        self.params_schema = Schema.from_dict(
            {name: _param_field(name, spec, where) for name, spec in params.items()}, name=f"{name}Params"
        )()
        for dimension, default in (("quality", self.default_quality), ("size", self.default_size)):
            if default != AUTO or dimension not in self.auto:
                if not self._known(dimension, default):
                    raise ConfigError(f"{where}: default_{dimension} {default!r} has no price")

    def _known(self, dimension, value):
        if dimension == "quality":
            return value in self.prices
        return any(value in by_size for by_size in self.prices.values())

    def price_per_image(self, quality, size):
        """Return the highest price per image for (quality, size), resolving ``auto``, or None."""
        qualities = list(self.prices) if quality == AUTO and "quality" in self.auto else [quality]
        candidates = []
        for each_quality in qualities:
            by_size = self.prices.get(each_quality, {})
            if size == AUTO and "size" in self.auto:
                candidates.extend(by_size.values())
            elif size in by_size:
                candidates.append(by_size[size])
        return max(candidates) if candidates else None


class PriceBook:
    """All providers' models, loaded and validated once from pricing.json."""

    def __init__(self, document, path):
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
                raise ConfigError(f"{where}: providers.{provider}.image_model_suggestion: '{suggestion}' is not an image model")
            self.suggestions[provider] = suggestion

    @classmethod
    def from_file(cls, path):
        """Load and validate ``path``, or raise ConfigError naming it."""
        try:
            with open(path, encoding="utf-8") as file:
                document = json.load(file)
        except FileNotFoundError:
            raise ConfigError(f"pricing file {path}: not found")
        except (OSError, ValueError) as error:
            raise ConfigError(f"pricing file {path}: {error}")
        return cls(document, path)

    def image_models(self):
        """Yield every ImageModel of every provider."""
        for catalog in self.providers.values():
            yield from (entry for entry in catalog.values() if isinstance(entry, ImageModel))

    def find_model(self, provider, model):
        """Return the ImageModel for (provider, model) or raise the catalog's error."""
        catalog = self.providers.get(provider)
        if catalog is None:
            raise ApiError(
                404, "PROVIDER_NOT_FOUND", f"Provider '{provider}' not found.", availableProviders=sorted(self.providers)
            )
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
        raise ApiError(
            400, "IMAGE_CONFIG_NOT_FOUND", f"Image pricing not configured for model '{model}'", provider=provider, model=model
        )

    def quote(self, image_model, quality, size, images):
        """Return the Quote for a request, or raise IMAGE_CONFIG_NOT_FOUND if it has no price."""
        price = image_model.price_per_image(quality, size)
        if price is None:
            raise ApiError(
                400,
                "IMAGE_CONFIG_NOT_FOUND",
                f"Image pricing not configured for model '{image_model.name}' ({quality}, {size})",
                provider=image_model.provider,
                model=image_model.name,
                quality=quality,
                size=size,
            )
        return Quote(quality=quality, size=size, images=images, price_per_image=price, currency=self.currency)
