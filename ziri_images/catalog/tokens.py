"""Token prices, and the cost of the tokens a provider reports it used (``usage``).

GPT image models are billed by tokens: text input, image input and image output, each at its
own price per million tokens. Their responses carry ``usage``; the cost computed here from it
is what the gateway charges. Amounts are exact decimals, rounded once to the ledger's unit (a
millionth of a dollar), so hand-computed figures match to the last digit.

Before the call the gateway also needs an upper bound for the prompt's text tokens:
``prompt_bound`` counts one token per UTF-8 byte of the prompt. Byte-level BPE tokenizers
(OpenAI's among them) never produce a token shorter than one byte, so the prompt cannot use
more tokens than it has bytes; for ASCII text that is one token per character.
"""

from decimal import ROUND_HALF_UP
from decimal import Decimal

from ..errors import ConfigError

PER_TOKENS = Decimal(1_000_000)
LEDGER_UNIT = Decimal("0.000001")
REQUIRED_PRICES = ("text_input", "image_input", "image_output")
OPTIONAL_PRICES = ("text_output",)
# No image request uses a billion tokens (a 4K image is a few thousand): a larger count is not
# a count, and would overflow the exact decimal arithmetic below.
MAX_TOKENS = 10**9


def _count(value):
    """Return ``value`` if it is a token count (a whole number from 0 to MAX_TOKENS), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return None
    return value


def to_amount(total):
    """Round an exact Decimal amount to the ledger's unit and return it as a float."""
    return float(total.quantize(LEDGER_UNIT, rounding=ROUND_HALF_UP))


class TokenPrices:
    """USD per 1M tokens of each kind, from a model's ``token_prices`` in pricing.json."""

    def __init__(self, spec, where):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected an object")
        unknown = sorted(set(spec) - {*REQUIRED_PRICES, *OPTIONAL_PRICES})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
        self.prices = {}
        for name in (*REQUIRED_PRICES, *OPTIONAL_PRICES):
            value = spec.get(name)
            if value is None and name in OPTIONAL_PRICES:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}.{name}: price per 1M tokens must be a number >= 0")
            # str() keeps 2.5 as 2.5 rather than the nearest binary fraction.
            self.prices[name] = Decimal(str(value))

    def per_token(self, kind):
        return self.prices[kind] / PER_TOKENS

    def prompt_bound(self, prompt):
        """Return the most the prompt's text tokens can cost (one token per UTF-8 byte), exact."""
        return len(prompt.encode("utf-8")) * self.per_token("text_input")

    def output_bound(self, tokens):
        """Return the cost of ``tokens`` image output tokens, exact."""
        return tokens * self.per_token("image_output")

    def cost(self, usage):
        """Return the USD cost of a response's ``usage`` (rounded to the ledger's unit), or None.

        Every token a total counts is priced: the kinds its details itemise at their own rates,
        the rest at the dearest rate of that side (docs/pricing.md, *The charge*). None means
        the usage cannot be priced (not an object, no ``output_tokens``, counts that are not
        whole numbers up to MAX_TOKENS, or counts that contradict each other); the caller then
        charges the reservation instead.
        """
        if not isinstance(usage, dict) or "output_tokens" not in usage:
            return None
        output_rates = {"image_tokens": "image_output",
                        "text_tokens": "text_output" if "text_output" in self.prices else "image_output"}
        inputs = self._side_cost(usage, "input", {"text_tokens": "text_input", "image_tokens": "image_input"})
        outputs = self._side_cost(usage, "output", output_rates)
        return None if inputs is None or outputs is None else to_amount(inputs + outputs)

    def _side_cost(self, usage, side, rates):
        """Return the exact cost of one side's tokens (``input`` or ``output``), or None.

        ``rates`` maps each kind the side's details may itemise to its price. Without a total
        the side counts its items. Cached tokens are a subset of the input tokens, not more of
        them: the catalog has no cached rate, so they are priced at the full rate of their kind.
        """
        details = usage.get(f"{side}_tokens_details")
        details = details if isinstance(details, dict) else {}  # null or malformed: nothing itemised
        items = {kind: _count(details.get(kind, 0)) for kind in rates}
        cached = _count(details.get("cached_tokens", 0))
        if None in items.values() or cached is None:
            return None
        total = _count(usage.get(f"{side}_tokens", sum(items.values())))
        if total is None or sum(items.values()) > total or cached > total:
            return None  # counts that contradict each other cannot be trusted
        rest = total - sum(items.values())
        dearest = max(self.per_token(name) for name in rates.values())
        return sum(count * self.per_token(rates[kind]) for kind, count in items.items()) + rest * dearest
