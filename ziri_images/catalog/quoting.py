"""Price a validated request before anything is reserved or sent: the catalog's checks, then the Quote.

The request's fields beyond the core ones are checked against the model's entry here
(``check_model_fields``): a price dimension or one of its ``params``, else PARAMETER_NOT_SUPPORTED.

A size the model's size rule does not take is refused with INVALID_SIZE (``param: "size"``, the
rule's reason as the message); a size the rule takes but the catalog does not price keeps
IMAGE_CONFIG_NOT_FOUND.

A stream's reservation adds PARTIAL_IMAGE_TOKENS image output tokens per partial image.
An edit's reservation also bounds its image-input tokens, from each upload's dimensions
(``imageinfo``): OpenAI counts an input image in 512-pixel tiles after fitting it within
2048x2048 (85 tokens, plus 170 a tile), and high input fidelity is allowed
HIGH_FIDELITY_TOKENS more (an unverified allowance: no OpenAI figure for it was found).
The charge is the provider's usage, as for a generation. A model priced by megapixels
(``megapixels.py``) reserves each image's reference images by their megapixels instead; an edit
with more reference images than the model's ``max_input_images`` is refused (TOO_MANY_IMAGES).
"""

import dataclasses
import math

from marshmallow import ValidationError

from ..errors import ApiError
from .image_model import AUTO
from .sizes import NOT_WXH
from .sizes import parse_size

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


def price_request(gateway, generation, images=(), mask=None):
    """Return (image_model, quote, upstream payload) for a validated request (an edit's: with uploads), or raise."""
    book = gateway.prices  # read once: pricing.json may be reloaded while the request runs
    image_model = book.find_model(generation.provider, generation.model)
    uploads = (*images, *([mask] if mask else []))
    if uploads and not image_model.edits:
        raise ApiError(400, "EDITS_NOT_SUPPORTED", f"Model '{generation.model}' of provider '{generation.provider}' "
                       "does not edit images.", param="model", provider=generation.provider, model=generation.model)
    if mask is not None and not image_model.bounds.masks:
        raise ApiError(400, "PARAMETER_NOT_SUPPORTED", f"Model '{image_model.name}' does not accept: mask",
                       param="mask", unsupported=["mask"])
    check_input_images(image_model, images)
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
        flat = image_model.bounds.input_image_tokens
        tokens = sum(image_input_tokens(upload.info, params.get("input_fidelity")) if flat is None else flat
                     for upload in uploads)
        image_input = tokens * image_model.token_prices.per_token("image_input")
        quote = dataclasses.replace(quote, prompt_reserve=quote.prompt_reserve + image_input)
    if image_model.bounds.prompt_billed_per_image:
        quote = dataclasses.replace(quote, prompt_reserve=quote.prompt_reserve * generation.n)
    if images and image_model.megapixels is not None:
        per_image = image_model.megapixels.input_price(image.info for image in images)
        quote = dataclasses.replace(quote, price_per_image=round(quote.price_per_image + per_image, 6),
                                    reserve_per_image=round(quote.reserve_per_image + per_image, 6))
    if generation.stream and image_model.token_prices is not None:
        partial = image_model.token_prices.output_bound(generation.partial_images * PARTIAL_IMAGE_TOKENS)
        quote = dataclasses.replace(quote, prompt_reserve=quote.prompt_reserve + partial)
    # The priced values are always sent, so what is generated is what was priced.
    payload = {"model": generation.model, "prompt": generation.prompt, "n": generation.n, **choices, **params}
    max_output_tokens = image_model.max_output_tokens(choices)
    if max_output_tokens is not None:
        payload["max_output_tokens"] = max_output_tokens  # the bound the reservation counted (limits.py)
    if generation.stream:
        payload.update(stream=True, partial_images=generation.partial_images)
    return image_model, quote, payload


def check_model_fields(image_model, generation):
    """Return (price dimension values with defaults applied, provider params) for the model, or raise a 400."""
    given = {"size": generation.size, "quality": generation.quality, **generation.params}
    given = {name: value for name, value in given.items() if value is not None}
    if image_model.size_mapping is not None and "size" in given:
        given = {**given, **mapped_size(image_model, given)}
        del given["size"]
    accepted = (*image_model.price_dimensions, *image_model.param_names)
    unsupported = sorted(name for name in given if name not in accepted)
    if unsupported:
        raise ApiError(
            400,
            "PARAMETER_NOT_SUPPORTED",
            f"Model '{image_model.name}' does not accept: {', '.join(unsupported)}",
            unsupported=unsupported,
            accepted=sorted(accepted),
        )
    choices = {name: given.get(name, default) for name, default in image_model.defaults.items()}
    not_text = {name: ["Not a valid string."] for name, value in choices.items()
                if not isinstance(value, str) or not 1 <= len(value) <= 32}
    if not_text:
        raise _invalid(not_text)
    params = {name: value for name, value in given.items() if name in image_model.param_names}
    try:
        return choices, image_model.params_schema.load(params)
    except ValidationError as error:
        raise _invalid(error.messages)


def mapped_size(image_model, given):
    """Return the fields a ``WxH`` size means to a model that takes an aspect ratio (and a tier), or raise a 400."""
    mapping = image_model.size_mapping
    both = [name for name in mapping.fields if name in given]
    if both:
        raise ApiError(400, "VALIDATION_ERROR", f"Give either size or {' and '.join(mapping.fields)}, not both.",
                       param="size", details={"size": [f"Not with {', '.join(both)}."]})
    values, reason = mapping.translate(given["size"])
    if values is None:
        raise ApiError(400, "INVALID_SIZE", f"Size '{given['size']}' is not accepted by model '{image_model.name}': "
                       f"{reason}.", param="size", provider=image_model.provider, model=image_model.name,
                       reason=f"size {given['size']}: {reason}", size=given["size"])
    return values


def _invalid(messages):
    return ApiError(400, "VALIDATION_ERROR", "Invalid request body.", details=messages)


def check_input_images(image_model, images):
    """Refuse an edit with more reference images than the model takes."""
    maximum = image_model.bounds.max_input_images
    if maximum is not None and len(images) > maximum:
        raise ApiError(413, "TOO_MANY_IMAGES", f"Model '{image_model.name}' takes at most {maximum} reference "
                       f"image(s); {len(images)} were sent.", param="image", maximum=maximum, received=len(images))


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
    for dimension, value in choices.items():
        rule = image_model.rules.get(dimension)
        if (value == AUTO and dimension in image_model.auto) or (rule is None and dimension != "size"):
            continue
        # Without a rule a size is a name from the price table, but one that is not even 'WxH' is malformed.
        reason = rule.breach(value) if rule is not None else (NOT_WXH if parse_size(value) is None else None)
        if reason is not None:
            raise ApiError(400, "INVALID_SIZE", f"Size '{value}' is not accepted by model '{image_model.name}': "
                           f"{reason}.", param=dimension, provider=image_model.provider, model=image_model.name,
                           reason=f"{dimension} {value}: {reason}", **{dimension: value})
