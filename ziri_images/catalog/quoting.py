"""Price a validated request before anything is reserved or sent: the catalog's checks, then the Quote.

A size the model's size rule does not take is refused with INVALID_SIZE (``param: "size"``, the
rule's reason as the message); a size the rule takes but the catalog does not price keeps
IMAGE_CONFIG_NOT_FOUND.

A stream's reservation adds PARTIAL_IMAGE_TOKENS image output tokens per partial image.
An edit's reservation also bounds its image-input tokens, from each upload's dimensions
(``imageinfo``): OpenAI counts an input image in 512-pixel tiles after fitting it within
2048x2048 (85 tokens, plus 170 a tile), and high input fidelity is allowed
HIGH_FIDELITY_TOKENS more (an unverified allowance: no OpenAI figure for it was found).
The charge is the provider's usage, as for a generation.
"""

import dataclasses
import math

from ..errors import ApiError
from ..schemas import check_model_fields
from .image_model import AUTO

TILE_PIXELS = 512
FIT_PIXELS = 2048
BASE_TOKENS, TILE_TOKENS = 85, 170
# An allowance, not a published figure: no OpenAI number for high fidelity's extra image-input tokens
# was found, so it is not verified (pricing.json's gpt-image-1 source says so). The charge is the usage.
HIGH_FIDELITY_TOKENS = 6_000
# OpenAI bills each partial image of a stream as 100 more image output tokens.
PARTIAL_IMAGE_TOKENS = 100


def image_input_tokens(info, fidelity):
    """Return the most image-input tokens one uploaded image (an ImageInfo) can be billed."""
    scale = min(1.0, FIT_PIXELS / max(info.width, info.height))
    width, height = max(1, round(info.width * scale)), max(1, round(info.height * scale))
    tiles = math.ceil(width / TILE_PIXELS) * math.ceil(height / TILE_PIXELS)
    return BASE_TOKENS + TILE_TOKENS * tiles + (HIGH_FIDELITY_TOKENS if fidelity == "high" else 0)


def price_request(gateway, generation, uploads=()):
    """Return (image_model, quote, upstream payload) for a validated request (an edit's: with uploads), or raise."""
    book = gateway.prices  # read once: pricing.json may be reloaded while the request runs
    image_model = book.find_model(generation.provider, generation.model)
    if uploads and not image_model.edits:
        raise ApiError(400, "EDITS_NOT_SUPPORTED", f"Model '{generation.model}' of provider '{generation.provider}' "
                       "does not edit images.", param="model", provider=generation.provider, model=generation.model)
    check_streaming(image_model, generation)
    choices, params = check_model_fields(image_model, generation)
    check_size_rules(image_model, choices)
    if generation.n > image_model.max_images:
        raise ApiError(400, "IMAGE_REQUEST_TOO_LARGE",
                       f"Requested number of images ({generation.n}) exceeds maximum allowed "
                       f"({image_model.max_images})",
                       requested=generation.n, maximum=image_model.max_images)
    if len(generation.prompt) > image_model.max_prompt_chars:
        raise ApiError(400, "PROMPT_TOO_LONG",
                       f"Prompt is {len(generation.prompt)} characters; '{image_model.name}' accepts at most "
                       f"{image_model.max_prompt_chars}.", maximum=image_model.max_prompt_chars)
    quote = book.quote(image_model, choices, generation.n, generation.prompt)
    if uploads and image_model.token_prices is not None:
        tokens = sum(image_input_tokens(upload.info, params.get("input_fidelity")) for upload in uploads)
        image_input = tokens * image_model.token_prices.per_token("image_input")
        quote = dataclasses.replace(quote, prompt_reserve=quote.prompt_reserve + image_input)
    if generation.stream and image_model.token_prices is not None:
        partial = image_model.token_prices.output_bound(generation.partial_images * PARTIAL_IMAGE_TOKENS)
        quote = dataclasses.replace(quote, prompt_reserve=quote.prompt_reserve + partial)
    # The priced values are always sent, so what is generated is what was priced.
    payload = {"model": generation.model, "prompt": generation.prompt, "n": generation.n, **choices, **params}
    if generation.stream:
        payload.update(stream=True, partial_images=generation.partial_images)
    return image_model, quote, payload


def check_streaming(image_model, generation):
    """Refuse ``stream: true`` for a model whose catalog entry does not allow it, and for more than one image."""
    if not generation.stream:
        return
    if not image_model.streaming:
        raise ApiError(400, "STREAMING_NOT_SUPPORTED", f"Model '{generation.model}' of provider "
                       f"'{generation.provider}' does not stream; omit 'stream' or set it to false.", param="stream",
                       provider=generation.provider, model=generation.model)
    if generation.n > 1:
        # A stream carries one final image: its completed event's usage is the charge.
        raise ApiError(400, "IMAGE_REQUEST_TOO_LARGE", f"Requested number of images ({generation.n}) exceeds "
                       "maximum allowed (1) for a stream", param="n", requested=generation.n, maximum=1)




def check_size_rules(image_model, choices):
    """Refuse a size the model's size rule does not take (not ``WxH``, or past a limit), naming the limit.

    A size that meets the rule but that no tier prices is left to the quote: that is the
    catalog's gap (IMAGE_CONFIG_NOT_FOUND), not the client's mistake.
    """
    for dimension, rule in image_model.rules.items():
        value = choices[dimension]
        reason = None if value == AUTO and dimension in image_model.auto else rule.breach(value)
        if reason is not None:
            raise ApiError(400, "INVALID_SIZE", f"Size '{value}' is not accepted by model '{image_model.name}': "
                           f"{reason}.", param=dimension, provider=image_model.provider, model=image_model.name,
                           reason=f"{dimension} {value}: {reason}", **{dimension: value})
