"""The stub's ``generateContent`` answers, in Google's shapes: an image sized as ``imageConfig`` asks, and its usage.

The figures are Google's, stated here again and not taken from the catalog (as ``stub_tokens``
does for OpenAI), so a mistake in the gateway's pricing shows against them: the image output
tokens of each resolution tier, the pixel sizes of each aspect ratio at 1K (2K and 4K are
twice and four times the edges), the tokens of a reference image. Text is counted at about four
characters a token; each call reports THOUGHT_TOKENS of thinking, as the models that think do.

The image is a real PNG of the served size (one colour, a few kilobytes even at 4K). Prompt
directives (see ``stub_google``) make the faults: ``[stub:blocked]`` (or ``=IMAGE_SAFETY`` and
the other finish reasons) a safety block billed its prompt, ``[stub:served=1K]`` an image of
another tier than the one asked (as Vertex AI serves some models), ``[stub:noimage]`` a 200
without an image, ``[stub:nousage]`` an answer without ``usageMetadata``.
"""

import base64
import functools
import hashlib
import math
import struct
import uuid
import zlib

# Output tokens of one image, by model family and tier (Google's pricing pages: 1,120 at 1K; Pro
# 2,000 at 4K; Flash 1,680 at 2K and 2,520 at 4K; Flash-Lite 1K only; the retired 2.5 Flash 1,290).
IMAGE_TOKENS = {
    "pro": {"1K": 1120, "2K": 1120, "4K": 2000},
    "flash-lite": {"1K": 1120},
    "flash": {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
    "2.5-flash": {"1K": 1290},
}
# A reference image's input tokens (Gemini 3's default media resolution; 2.5 Flash's 258).
INPUT_IMAGE_TOKENS = {"pro": 560, "flash-lite": 1120, "flash": 1120, "2.5-flash": 258}
THOUGHT_TOKENS = 196
TIER_SCALE = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}
# Google's published 1K sizes; the tall and wide ratios of the Flash model are computed alike.
SIZES_1K = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200), "4:3": (1200, 896),
            "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376), "16:9": (1376, 768), "21:9": (1584, 672)}
EXTRA_RATIOS = ("1:4", "4:1", "1:8", "8:1")
# ``[stub:blocked=REASON]``: these refuse the prompt (``promptFeedback``); any other reason (IMAGE_SAFETY,
# RECITATION...) ends the candidate without an image (its ``finishReason``).
PROMPT_BLOCKS = {"SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT"}


def family(model):
    """Return the model's family in the tables above (``pro``, ``flash-lite``, ``flash`` or ``2.5-flash``)."""
    if "-pro-" in model:
        return "pro"
    return "flash-lite" if "flash-lite" in model else "2.5-flash" if model.startswith("gemini-2.5") else "flash"


def aspect_ratios(model):
    return (*SIZES_1K, *(EXTRA_RATIOS if family(model) == "flash" else ()))


def pixel_size(ratio, tier):
    """Return (width, height) of an image of ``ratio`` ("W:H") at ``tier``."""
    scale = TIER_SCALE[tier]
    if ratio in SIZES_1K:
        width, height = SIZES_1K[ratio]
        return int(width * scale), int(height * scale)
    across, down = (int(part) for part in ratio.split(":"))
    edge = 1024 * scale  # the area of the square of the tier, in multiples of 16
    return (max(16, round(edge * math.sqrt(across / down) / 16) * 16),
            max(16, round(edge * math.sqrt(down / across) / 16) * 16))


@functools.lru_cache(maxsize=64)
def sized_png(width, height, colour):
    """Return a valid ``width``x``height`` PNG of one ``colour`` (fed a row at a time: 4K stays cheap)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row, packer = b"\x00" + colour * width, zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", pixels), chunk(b"IEND", b"")))


def text_tokens(text):
    return max(1, len(text) // 4)


def prompt_usage(prompt, images, model):
    """Return the prompt's ``usageMetadata`` fields: its text and reference images, by modality."""
    details = [{"modality": "TEXT", "tokenCount": text_tokens(prompt)}]
    if images:
        details.append({"modality": "IMAGE", "tokenCount": images * INPUT_IMAGE_TOKENS[family(model)]})
    return {"promptTokenCount": sum(item["tokenCount"] for item in details), "promptTokensDetails": details}


def answer(model, prompt, images, ratio, tier, directives):
    """Return the ``generateContent`` answer (a dict) for a request the routes have checked."""
    usage = prompt_usage(prompt, images, model)
    body = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    blocked = (directives.get("blocked") or "SAFETY") if "blocked" in directives else None
    if blocked in PROMPT_BLOCKS:
        usage["totalTokenCount"] = usage["promptTokenCount"]
        return {**body, "promptFeedback": {"blockReason": blocked}, "usageMetadata": usage}
    served = directives["served"] if directives.get("served") in TIER_SCALE else tier
    width, height = pixel_size(ratio, served)
    text = f"Here is {prompt.strip()[:200]}, drawn by the local stub."
    image_tokens = IMAGE_TOKENS[family(model)].get(served, IMAGE_TOKENS[family(model)]["1K"])
    parts = [{"text": text}]
    finish = "STOP"
    if blocked:
        parts, finish, image_tokens = [], blocked, 0
    elif "noimage" not in directives:
        colour = hashlib.sha256(prompt.encode("utf-8")).digest()[:3]
        data = base64.b64encode(sized_png(width, height, colour)).decode("ascii")
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
    output = [{"modality": "TEXT", "tokenCount": text_tokens(text) if parts else 0}]
    if image_tokens:
        output.insert(0, {"modality": "IMAGE", "tokenCount": image_tokens})
    candidates = sum(item["tokenCount"] for item in output)
    usage.update(candidatesTokenCount=candidates, candidatesTokensDetails=output, thoughtsTokenCount=THOUGHT_TOKENS,
                 totalTokenCount=usage["promptTokenCount"] + candidates + THOUGHT_TOKENS)
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
    if not parts:
        del candidate["content"]
    return {**body, "candidates": [candidate], **({} if "nousage" in directives else {"usageMetadata": usage})}
