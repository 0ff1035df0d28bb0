"""Bounds the gateway enforces on a token-billed call, so that its reservation bounds its charge.

A model that writes text and thinks before it draws (Google's Gemini image models) is billed for
those tokens too, at the text-output rate, and nothing in the request says how many there will
be. The catalog entry names a bound, ``max_text_output_tokens`` a call: it is reserved (at the
text-output rate) and sent to the provider as the call's output limit with the image's own
tokens (``ImageModel.max_output_tokens``), so the provider stops there. ``input_image_tokens``
is what one reference image of an edit is reserved at (a flat count, where the provider
publishes one rather than OpenAI's tiles). ``token_charge_cap`` is how many times its
reservation a token-billed charge may be (default 2; 1 where the bounds above are enforced:
never above the reservation). ``masks: false`` says an edit of the model takes no mask;
``max_input_images`` how many reference images an edit of it may send (Black Forest Labs' models
take 1 to 8), refused with TOO_MANY_IMAGES before anything is reserved.
``prompt_billed_per_image: true`` says the provider makes one image a call, each sent (and
billed) the prompt and the reference images again: they are reserved once per image.
"""

from decimal import Decimal

from ..errors import ConfigError

DEFAULT_TOKEN_CHARGE_CAP = 2


def _whole(entry, name, where):
    value = entry.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"{where}.{name}: expected a whole number of tokens >= 0")
    return value


class CallBounds:
    """A model's enforced bounds (see the module's text), read from its catalog entry."""

    def __init__(self, entry, where, token_prices):
        self.max_text_output_tokens = _whole(entry, "max_text_output_tokens", where)
        self.input_image_tokens = _whole(entry, "input_image_tokens", where)
        cap = entry.get("token_charge_cap", DEFAULT_TOKEN_CHARGE_CAP)
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap < 1:
            raise ConfigError(f"{where}.token_charge_cap: expected a number >= 1")
        self.token_charge_cap = cap
        masks = entry.get("masks", True)
        if not isinstance(masks, bool):
            raise ConfigError(f"{where}.masks: expected true or false")
        self.masks = masks
        per_image = entry.get("prompt_billed_per_image", False)
        if not isinstance(per_image, bool):
            raise ConfigError(f"{where}.prompt_billed_per_image: expected true or false")
        self.prompt_billed_per_image = per_image
        self.max_input_images = entry.get("max_input_images")
        if self.max_input_images is not None and (isinstance(self.max_input_images, bool) or not isinstance(
                self.max_input_images, int) or self.max_input_images < 1):
            raise ConfigError(f"{where}.max_input_images: expected a whole number >= 1")
        if (self.max_text_output_tokens is not None or self.input_image_tokens is not None) and token_prices is None:
            raise ConfigError(f"{where}: max_text_output_tokens and input_image_tokens need token_prices")
        if self.max_text_output_tokens is not None and "text_output" not in token_prices.prices:
            raise ConfigError(f"{where}.max_text_output_tokens: needs token_prices.text_output")
        self._token_prices = token_prices

    def text_output_bound(self):
        """Return the most one call's text and thinking tokens can cost, exact (0 without a bound)."""
        if self.max_text_output_tokens is None:
            return Decimal(0)
        return self.max_text_output_tokens * self._token_prices.per_token("text_output")
