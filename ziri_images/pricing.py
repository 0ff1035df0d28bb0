"""The catalog of models and their prices (pricing.json), and the quotes and charges made from it.

Each provider lists its models: image models (``image_model.ImageModel``: what a request may
ask for and what it costs) and, by ``kind`` alone, others (chat, embedding, ...), so that a
request for images from them gets ACTION_NOT_SUPPORTED with the provider's
``image_model_suggestion``. An entry may be ``based_on`` another model of the same provider
(dated snapshots, models priced alike): it reuses that entry's fields, its own win.

A model whose ``retired`` day has come is refused with 410 MODEL_RETIRED, naming the
provider's suggestion, before anything is reserved or sent; except on a provider reached at a
compatible endpoint rather than its own API (the local stub, an OpenAI-compatible server),
where the provider's retirements do not apply.

Anything not in the catalog is refused before the provider is called: a request is never
billed at another row's price.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from decimal import Decimal

from .errors import ApiError
from .errors import ConfigError
from .image_model import ImageModel
from .settings import load_json_file
from .tokens import to_amount

IMAGE_KIND = "image"
MODEL_KINDS = (IMAGE_KIND, "chat", "embedding", "audio", "moderation", "video")


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
    """What a successful request costs, from what the provider reports it produced and used."""

    images: int
    choices: dict  # the price dimensions as produced (reported by the provider, else requested)
    price_per_image: float
    estimated_cost: float  # images returned x the per-image price
    token_cost: float | None  # from the reported usage, when the model has token prices
    usage: dict | None

    @property
    def charged_by(self):
        return "per_image" if self.token_cost is None else "tokens"

    @property
    def cost(self):
        return self.estimated_cost if self.token_cost is None else self.token_cost


def _based_on(models, entry, where):
    """Return ``entry`` with the fields of the model it is ``based_on`` filled in (its own win)."""
    if not isinstance(entry, dict) or "based_on" not in entry:
        return entry
    base = models.get(entry["based_on"])
    if not isinstance(base, dict) or base.get("kind") != IMAGE_KIND or "based_on" in base:
        raise ConfigError(f"{where}.based_on: {entry['based_on']!r} is not an image model of this provider "
                          "(that is not based on another)")
    # Provenance and retirement belong to each entry: a snapshot does not retire with its alias.
    inherited = {name: value for name, value in base.items() if name not in ("source", "as_of", "retired")}
    return {**inherited, **{name: value for name, value in entry.items() if name != "based_on"}}


def _utc_now():
    return datetime.now(timezone.utc)


class PriceBook:
    """All providers' models, loaded and validated once from pricing.json.

    ``compatible_providers`` names the providers reached at an endpoint other than their own
    published API (an OpenAI-compatible server, the local stub): the provider's retirements do
    not apply there, so retired models stay usable on them. ``clock`` says what day it is.
    """

    def __init__(self, document, path, clock=_utc_now, compatible_providers=frozenset()):
        self.path = path
        self.clock = clock
        self.compatible_providers = frozenset(compatible_providers)
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
            self.providers[provider] = self._catalog(provider, models, f"{where}: providers.{provider}.models")
            suggestion = provider_entry.get("image_model_suggestion")
            if suggestion is not None and not isinstance(self.providers[provider].get(suggestion), ImageModel):
                raise ConfigError(
                    f"{where}: providers.{provider}.image_model_suggestion: '{suggestion}' is not an image model")
            self.suggestions[provider] = suggestion

    @staticmethod
    def _catalog(provider, models, where):
        catalog = {}
        for name, entry in models.items():
            model_where = f"{where}.{name}"
            entry = _based_on(models, entry, model_where)
            kind = entry.get("kind") if isinstance(entry, dict) else None
            if kind not in MODEL_KINDS:
                raise ConfigError(f"{model_where}.kind: expected one of {', '.join(MODEL_KINDS)}")
            catalog[name] = ImageModel(provider, name, entry, model_where) if kind == IMAGE_KIND else kind
        return catalog

    @classmethod
    def from_file(cls, path, **options):
        """Load and validate ``path``, or raise ConfigError naming it."""
        return cls(load_json_file(path, "pricing file"), path, **options)

    def today(self):
        """Return today's date (UTC) as an ISO string."""
        return self.clock().astimezone(timezone.utc).date().isoformat()

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
        suggestion = self.suggestions.get(provider)
        hint = f" Use {suggestion} instead." if suggestion else ""
        if isinstance(entry, ImageModel):
            if provider not in self.compatible_providers and entry.is_retired(self.today()):
                # Refused before anything is reserved or sent: the provider would only refuse it.
                raise ApiError(410, "MODEL_RETIRED", f"Model '{model}' was retired by {provider} on "
                               f"{entry.retired}.{hint}", provider=provider, model=model, retiredOn=entry.retired,
                               suggestedModel=suggestion)
            return entry
        if entry is not None:
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
        """Return the Charge for a successful response ``body`` to a request priced at ``quote``."""
        produced = {}
        for dimension, requested in quote.choices.items():
            reported = body.get(dimension)
            produced[dimension] = reported if isinstance(reported, str) else requested
        price = image_model.price_for(produced)
        price = quote.price_per_image if price is None else price
        images = len(body["data"])
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
        token_cost = None
        if image_model.token_prices is not None and usage is not None:
            token_cost = image_model.token_prices.cost(usage)
        return Charge(images=images, choices=produced, price_per_image=price,
                      estimated_cost=round(images * price, 6), token_cost=token_cost, usage=usage)
