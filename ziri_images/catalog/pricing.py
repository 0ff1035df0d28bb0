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

import json
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from decimal import Decimal

from ..config import load_json_file
from ..errors import ApiError
from ..errors import ConfigError
from ..ledger.records import charge_outcome
from .image_model import ImageModel
from .limits import DEFAULT_TOKEN_CHARGE_CAP
from .loading import load_providers
from .tokens import to_amount

# A token-billed charge is at most this many times its reservation (unless the model's entry sets
# its own cap, limits.py): the provider's usage is charged as reported up to there (the reported
# figure is kept beside it as tokenCost).
TOKEN_CHARGE_CAP = DEFAULT_TOKEN_CHARGE_CAP
# The longest reported dimension value kept in a charge record (usage: 64 times that, as JSON).
MAX_RECORDED_CHARS = 64


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
    charged_by: str  # "per_image", "tokens", "provider", or "reservation" when what was billed cannot be read
    cost: float
    provider_images: int
    provider_choices: dict
    provider_billed: float | None = None  # what the provider reported it billed (USD), when it did
    billed_undelivered: int = 0  # images billed but withheld by the provider (filtered), charged too

    def ledger_fields(self):
        """Return the charge record's fields describing this charge (``ledger.records`` names them)."""
        return charge_outcome(images=self.images, provider_images=self.provider_images,
                              price_per_image=self.price_per_image, estimated_cost=self.estimated_cost,
                              token_cost=self.token_cost, charged_by=self.charged_by, usage=self.usage,
                              cost=self.cost, provider_choices=self.provider_choices,
                              provider_billed=self.provider_billed, billed_undelivered=self.billed_undelivered)


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

    @staticmethod
    def charge(image_model, quote, body, provider_billed=None, billed_undelivered=0):
        """Return the Charge for a successful response ``body`` to a request priced at ``quote``.

        Per image: the images requested at most (those delivered, and ``billed_undelivered``: images
        the provider billed but withheld, e.g. filtered for safety), at the price of the dimension values the
        provider reports, or at the reserved price when those are unpriced or dearer; so the
        cost never exceeds the reservation. By tokens: the reported usage, capped at
        ``TOKEN_CHARGE_CAP`` times the reservation (or the model's own cap); a usage that cannot be read is charged the
        reservation. By the provider (``charged_by: "provider"``): ``provider_billed``, what it
        reported billing (USD), in full even above the reservation; the reservation when it reported nothing.
        """
        if image_model.charged_by_provider:
            return _provider_charge(image_model, quote, body, provider_billed)
        reported = {dimension: body[dimension] for dimension in quote.choices if isinstance(body.get(dimension), str)}
        produced = {**quote.choices, **reported}
        price = image_model.price_for(produced)
        if price is None or price > quote.price_per_image:
            produced, price = dict(quote.choices), quote.price_per_image
        images = min(len(body["data"]), quote.images)
        estimated_cost = round(min(images + billed_undelivered, quote.images) * price, 6)
        usage = body.get("usage")
        token_cost, charged_by, cost = None, "per_image", estimated_cost
        if image_model.token_prices is not None and usage is not None:
            token_cost = image_model.token_prices.cost(usage)
            if token_cost is None:
                charged_by, cost = "reservation", quote.reserved
            else:
                cap = to_amount(Decimal(str(quote.reserved)) * Decimal(str(image_model.bounds.token_charge_cap)))
                charged_by, cost = "tokens", min(token_cost, cap)
        return Charge(images=images, choices=produced, price_per_image=price, estimated_cost=estimated_cost,
                      token_cost=token_cost, usage=_recorded_usage(usage), charged_by=charged_by, cost=cost,
                      provider_images=len(body["data"]),
                      provider_choices={name: value[:MAX_RECORDED_CHARS] for name, value in reported.items()},
                      billed_undelivered=min(billed_undelivered, quote.images - images),
                      provider_billed=provider_billed)  # kept to reconcile (xAI's cost_in_usd_ticks), not charged


def _provider_charge(image_model, quote, body, provider_billed):
    """Return the Charge of a model the provider's own bill charges (see ``PriceBook.charge``).

    The estimate is the catalog's figure for the images delivered (a megapixel model's: its formula at the size and
    the reference images asked), kept beside what the provider billed.
    """
    images = min(len(body["data"]), quote.images)
    if provider_billed is not None:
        charged_by, cost = "provider", round(provider_billed, 6)
    else:
        charged_by, cost = "reservation", quote.reserved
    return Charge(images=images, choices=dict(quote.choices), price_per_image=quote.price_per_image,
                  estimated_cost=round(images * quote.price_per_image, 6), token_cost=None,
                  usage=_recorded_usage(body.get("usage")), charged_by=charged_by, cost=cost,
                  provider_images=len(body["data"]), provider_choices={}, provider_billed=provider_billed)


def _recorded_usage(usage):
    """Return ``usage`` to keep in the charge record: an object of bounded size, else None."""
    if not isinstance(usage, dict) or len(json.dumps(usage)) > MAX_RECORDED_CHARS * 64:
        return None
    return usage
