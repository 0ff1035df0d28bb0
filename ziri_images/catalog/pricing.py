"""The catalog of models and their prices (pricing.json), and the quotes and charges made from it.

Each provider lists its models (read and checked in ``loading``): image models
(``image_model.ImageModel``: what a request may ask for and what it costs) and, by ``kind``
alone, others (chat, embedding, ...), so that a request for images from them gets
ACTION_NOT_SUPPORTED with the provider's ``image_model_suggestion``.

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

from ..errors import ApiError
from ..errors import ConfigError
from ..strict_json import load_json_file
from .image_model import ImageModel
from .loading import load_providers
from .tokens import to_amount


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
        self.providers, self.suggestions = load_providers(document["providers"], where)

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

    def route(self, provider, model, default_provider):
        """Return (provider, model) for a /v1 request, whose SDK may name no provider.

        ``google/gemini-3-pro-image`` names both; a model given without a provider goes to the
        default provider when it serves it, else to the one provider that does. A model several
        others serve needs a provider (400 PROVIDER_REQUIRED); one none serves is the default's
        to refuse.
        """
        prefix, _, rest = model.partition("/")
        if rest and prefix in self.providers and provider in (None, prefix):
            return prefix, rest
        if provider is not None:
            return provider, model
        serving = [name for name, catalog in self.providers.items() if isinstance(catalog.get(model), ImageModel)]
        if default_provider in serving or not serving:
            return default_provider, model
        if len(serving) > 1:
            raise ApiError(400, "PROVIDER_REQUIRED", f"Model '{model}' is served by {', '.join(serving)}: name one "
                           f"as 'provider' or as '{serving[0]}/{model}'.", param="model", providers=serving)
        return serving[0], model

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
