"""Google's ``generateContent``, as the gateway speaks it: a request built from the priced payload, its
answer read into OpenAI's images shape.

The request: the prompt (and an edit's reference images as ``inlineData`` parts), text and image
output (``responseModalities``), the aspect ratio and resolution tier priced
(``imageConfig``), and the output limit the reservation counted (``maxOutputTokens``:
``catalog/limits.py``). One candidate a call: ``n`` images are ``n`` calls (``fanout.py``).

The answer: each ``inlineData`` image part of the candidates as ``b64_json`` (thoughts left
out), the text beside it as ``revised_prompt``, the size served as ``size`` and its tier as
``image_size`` (charged as served when it differs from the one asked), and ``usageMetadata``
as OpenAI's usage shape (``neutral_usage``) that ``catalog/tokens.py`` prices: image output
tokens at the image rate, text and thinking tokens at the text-output rate, the prompt at the
input rate. Google's own figures stay in ``usage.usageMetadata``.

A 200 without an image is billed by Google all the same: a prompt or an image refused for
safety (``promptFeedback.blockReason``, a safety ``finishReason``) is 400
CONTENT_POLICY_VIOLATION, anything else a 502; both charged what the usage says.
"""

import base64
import binascii
import io
import time

from ..strict_json import parse_provider_body
from ..uploads.imageinfo import NotAnImage
from ..uploads.imageinfo import image_info
from .answers import answer_secret
from .answers import redact_document
from .answers import refusal
from .base import ProviderResult

SAFETY_FINISHES = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "RECITATION",
                   "IMAGE_RECITATION", "BLOCKLIST", "SPII"}
# Google's resolution tiers by their longest edge at 1:1; a served image is of the first tier whose
# square it does not exceed by half (a 1K 21:9 image is 1584x672, a 1K square 1024x1024).
TIERS = (("512", 512), ("1K", 1024), ("2K", 2048), ("4K", 4096))
_COUNTS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")


def build_request(payload, files=None):
    """Return the ``generateContent`` body for the priced ``payload`` (an edit's ``files`` as inline images)."""
    parts = [{"text": payload["prompt"]}]
    for _field, (_name, content, mime_type) in files or ():
        parts.append({"inlineData": {"mimeType": mime_type, "data": base64.b64encode(content).decode("ascii")}})
    config = {"responseModalities": ["TEXT", "IMAGE"], "candidateCount": 1}
    image_config = {name: payload[field] for field, name in (("aspect_ratio", "aspectRatio"),
                                                              ("image_size", "imageSize")) if field in payload}
    if image_config:
        config["imageConfig"] = image_config
    if "max_output_tokens" in payload:
        config["maxOutputTokens"] = payload["max_output_tokens"]
    if "seed" in payload:
        config["seed"] = payload["seed"]
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def read_answer(provider, status, headers, raw):
    """Return the ProviderResult for a ``generateContent`` answer, or raise the ProviderError it means."""
    try:
        body = parse_provider_body(raw)
    except (ValueError, RecursionError):
        body = None
    request_id = body.get("responseId") if isinstance(body, dict) else None
    context = {"provider_status": status, "provider_request_id": provider.redacted(request_id)
               if isinstance(request_id, str) else None}
    if not 200 <= status < 300:
        raise refusal(provider, status, headers, body, context)
    if not isinstance(body, dict):
        raise provider.error(502, f"Provider '{provider.name}' returned a response that is not JSON.",
                             may_have_billed=True, **context)
    body = redact_document(body, raw, answer_secret(provider.sent_secret()))
    images, texts, finishes = _parts(body.get("candidates"))
    usage = neutral_usage(body.get("usageMetadata"), expect_output=bool(images))
    feedback = body.get("promptFeedback") if isinstance(body.get("promptFeedback"), dict) else {}
    blocked = feedback.get("blockReason") or next((reason for reason in finishes if reason in SAFETY_FINISHES), None)
    if not images and blocked:
        raise provider.error(400, f"Provider '{provider.name}' refused the request for safety: {blocked}.",
                             code="CONTENT_POLICY_VIOLATION", reason=str(blocked)[:64], billed_usage=usage,
                             may_have_billed=True, **context)
    if not images:
        reason = ", ".join(str(reason)[:32] for reason in finishes) or "none"
        raise provider.error(502, f"Provider '{provider.name}' answered without an image (finishReason {reason}).",
                             billed_usage=usage, may_have_billed=True, **context)
    text = " ".join(texts).strip()
    data = [{"b64_json": image, **({"revised_prompt": text} if text else {})} for image in images]
    answer = {"created": int(time.time()), "data": data, "usage": usage, **served_size(images[0])}
    return ProviderResult(body=answer, provider_status=status, provider_request_id=context["provider_request_id"])


def _parts(candidates):
    """Return (base64 images, texts, finish reasons) of the candidates; thoughts are left out."""
    images, texts, finishes = [], [], []
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, dict):
            continue
        if candidate.get("finishReason"):
            finishes.append(candidate["finishReason"])
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        for part in content.get("parts") if isinstance(content.get("parts"), list) else ():
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(inline, dict) and isinstance(inline.get("data"), str) and inline["data"]:
                images.append(inline["data"])
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    return images, texts, finishes


def served_size(image):
    """Return ``{"size": "WxH", "image_size": tier}`` of a base64 image, or {} when its header cannot be read."""
    try:
        info = image_info(io.BytesIO(base64.b64decode(image[:65536].encode("ascii")[:65536 // 4 * 4])))
    except (NotAnImage, binascii.Error, ValueError):
        return {}
    pixels = info.width * info.height
    tier = next((name for name, edge in TIERS if pixels <= edge * edge * 1.5), TIERS[-1][0])
    return {"size": f"{info.width}x{info.height}", "image_size": tier}


def _by_modality(details):
    """Return {modality: tokens} of a ``*TokensDetails`` list, or None when it is malformed."""
    counts = {}
    for item in details if isinstance(details, list) else ():
        count = item.get("tokenCount", 0) if isinstance(item, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return None
        counts[item.get("modality")] = counts.get(item.get("modality"), 0) + count
    return counts


def neutral_usage(metadata, expect_output=True):
    """Return Google's ``usageMetadata`` in OpenAI's usage shape (Google's kept in ``usageMetadata``).

    Thinking tokens are text output. Without a readable count of what was billed (no prompt count,
    no candidates count where an image came back) it has no ``output_tokens``: the reservation is charged.
    """
    if not isinstance(metadata, dict):
        return {}
    counts = {name: metadata.get(name, 0) for name in _COUNTS}
    given = ("promptTokenCount", "candidatesTokenCount") if expect_output else ("promptTokenCount",)
    inputs, outputs = _by_modality(metadata.get("promptTokensDetails")), _by_modality(
        metadata.get("candidatesTokensDetails"))
    if (any(name not in metadata for name in given) or inputs is None or outputs is None
            or any(isinstance(value, bool) or not isinstance(value, int) or value < 0 for value in counts.values())):
        return {"usageMetadata": [metadata]}
    prompt, candidates, thoughts = (counts[name] for name in _COUNTS)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"text_tokens": inputs.get("TEXT", 0), "image_tokens": inputs.get("IMAGE", 0)},
        "output_tokens": candidates + thoughts,
        "output_tokens_details": {"image_tokens": outputs.get("IMAGE", 0),
                                  "text_tokens": outputs.get("TEXT", 0) + thoughts},
        "total_tokens": prompt + candidates + thoughts,
        "usageMetadata": [metadata],
    }
