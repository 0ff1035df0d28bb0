"""The fields and token counts the stub's GPT image answers report, as the real models would."""

# Output tokens per image as OpenAI documents them for gpt-image-1 (quality -> size -> tokens).
GPT_IMAGE_1_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}
# gpt-image-2's per-quality factor in OpenAI's cost calculator (see docs/pricing.md); the 2.5 and
# 2.6 models (and the dated snapshots) answer with the same counts here.
GPT_IMAGE_2_PREFIX = "gpt-image-2"
GPT_IMAGE_2_FACTORS = {"low": 16, "medium": 48, "high": 96}


def output_tokens(model, quality, size):
    """Return the image output tokens of one image, as the real models would report them."""
    if model.startswith(GPT_IMAGE_2_PREFIX):
        width, height = (int(edge) for edge in size.split("x"))
        factor = GPT_IMAGE_2_FACTORS.get(quality, GPT_IMAGE_2_FACTORS["medium"])
        short_factor = (2 * factor * min(width, height) + max(width, height)) // (2 * max(width, height))
        return -(-factor * short_factor * (2_000_000 + width * height) // 4_000_000)
    return GPT_IMAGE_1_TOKENS.get(quality, {}).get(size, 1056)


def gpt_image_fields(body, model, count, image_input):
    """Return the fields a GPT image model adds to its answer: what it produced and its token ``usage``."""
    quality = body.get("quality", "auto")
    quality = "medium" if quality == "auto" else quality
    size = body.get("size", "auto")
    size = "1024x1024" if size == "auto" else size
    # About four characters per text token, as for English with OpenAI's tokenizers.
    text_tokens = max(1, len(body["prompt"]) // 4)
    image_tokens = output_tokens(model, quality, size) * count
    return {
        "background": "opaque" if body.get("background", "auto") == "auto" else body["background"],
        "output_format": body.get("output_format", "png"),
        "size": size,
        "quality": quality,
        "usage": {
            "input_tokens": text_tokens + image_input, "output_tokens": image_tokens,
            "total_tokens": text_tokens + image_input + image_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_input},
            "output_tokens_details": {"image_tokens": image_tokens, "text_tokens": 0},
        },
    }
