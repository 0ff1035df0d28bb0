"""What a successful answer costs: the ``Charge``, from what the provider reports it produced, used or billed.

``charge_for`` prices an answer against the ``Quote`` it was reserved at (``pricing.py``): per image,
by tokens (the usage), or by the provider's own bill.
"""

import json
from dataclasses import dataclass
from decimal import Decimal

from ..ledger.records import charge_outcome
from .tokens import to_amount

# The longest reported dimension value kept in a charge record (usage: 64 times that, as JSON).
MAX_RECORDED_CHARS = 64


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


def charge_for(image_model, quote, body, provider_billed=None, billed_undelivered=0):
    """Return the Charge for a successful response ``body`` to a request priced at ``quote``.

    Per image: the images requested at most (those delivered, and ``billed_undelivered``: images
    the provider billed but withheld, e.g. filtered for safety), at the price of the dimension values the
    provider reports, or at the reserved price when those are unpriced or dearer; so the
    cost never exceeds the reservation. By tokens: the reported usage, capped at the model's
    ``token_charge_cap`` times the reservation (``limits.py``, default 2); a usage that cannot be read
    is charged the reservation. By the provider (``charged_by: "provider"``): ``provider_billed``, what it
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
    """Return the Charge of a model the provider's own bill charges (see ``charge_for``).

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
