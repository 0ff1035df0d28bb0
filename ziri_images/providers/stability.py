"""Stability AI's Stable Image API: ``POST {base_url}/v2beta/stable-image/generate/{ultra|core|sd3}``.

The request is multipart/form-data (no file: every field a form field), sent with ``Accept:
application/json`` so the image comes back as base64 in ``{"image", "finish_reason", "seed"}``
rather than as raw bytes. The catalog's model picks the endpoint (``ENDPOINTS``); the SD 3.5
models share ``sd3`` and are named in its ``model`` field. A ``WxH`` size reached here as the
nearest of the nine aspect ratios Stability takes (the catalog's ``size_mapping``); the other
priced fields (``negative_prompt``, ``seed``, ``output_format``) go as they are.

One image a call: ``n`` images are ``n`` calls at once under the one reservation (``fanout.py``).
Stability bills every call it answers with an image, a filtered one too: ``finish_reason:
CONTENT_FILTERED`` (a blurred image) is a 400 CONTENT_POLICY_VIOLATION charged one image at the
request's price per image (``billed_images``; the quote knows the price). Its error bodies
(``{"id", "name", "errors"}``) are read by ``answers.upstream_error`` and mapped as every
provider's are; a prompt its moderation refuses (403 ``content_moderation``, nothing generated)
is a 400 CONTENT_POLICY_VIOLATION, not a credential failure.
"""

import time
from urllib.parse import quote

from .._version import __version__
from ..strict_json import parse_provider_body
from .answers import answer_secret
from .answers import exchange
from .answers import redact_document
from .answers import refusal
from .answers import upstream_error
from .base import HttpProvider
from .base import ProviderResult
from .deadline import call_deadline
from .fanout import fan_out
from .fanout import merge

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # one image as base64 is a few MB; far beyond that is not an answer
# The catalog's model -> Stability's endpoint; any other model is an SD 3.5 model sent to sd3 as ``model``.
ENDPOINTS = {"stable-image-ultra": "ultra", "stable-image-core": "core"}
SD3_ENDPOINT = "sd3"
# The payload's fields that are the gateway's, not Stability's form fields.
NOT_SENT = {"model", "n", "response_format"}
FILTERED = "CONTENT_FILTERED"


def build_form(payload):
    """Return (endpoint, [(field, (None, text))]) for the priced ``payload``: one image's multipart form."""
    model = payload["model"]
    endpoint = ENDPOINTS.get(model, SD3_ENDPOINT)
    fields = [(name, value) for name, value in payload.items() if name not in NOT_SENT and value is not None]
    if endpoint == SD3_ENDPOINT:
        fields.append(("model", model))
    return endpoint, [(name, (None, str(value))) for name, value in fields]


class StabilityProvider(HttpProvider):
    """Stability AI: ``POST {base_url}/v2beta/stable-image/generate/{endpoint}`` with ``Authorization: Bearer``."""

    path = "/v2beta/stable-image/generate/{endpoint}"
    api_key_env = "STABILITY_API_KEY"

    def send(self, call):
        """Make ``n`` calls at once; return one ProviderResult of their images, or raise ProviderError."""
        if call.operation != "generations" or call.stream:
            # The catalog refuses both first (edits and streaming are false for every Stability model).
            raise self.error(400, f"Provider '{self.name}' only generates images here (no edits, no streams).",
                             code="EDITS_NOT_SUPPORTED" if call.operation != "generations" else
                             "STREAMING_NOT_SUPPORTED")
        endpoint, form = build_form(call.payload)
        url = self.base_url + self.path.format(endpoint=quote(endpoint, safe=""))
        return merge(fan_out(lambda index: self._call(url, form, call.request_id), call.payload["n"]))

    def _call(self, url, form, request_id):
        """POST one generation within the call's deadline; return its ProviderResult or raise."""
        with call_deadline(self.call_deadline):
            headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate",
                       "User-Agent": f"ziri-images/{__version__}", "X-Client-Request-Id": request_id,
                       "Authorization": f"Bearer {self.api_key}"}
            status, answer_headers, raw = exchange(self, "POST", url, headers, MAX_RESPONSE_BYTES, files=form)
        return read_answer(self, status, answer_headers, raw)


def read_answer(provider, status, headers, raw):
    """Return the ProviderResult for one Stability answer, or raise the ProviderError it means."""
    try:
        body = parse_provider_body(raw)
    except (ValueError, RecursionError):
        body = None
    request_id = body.get("id") if isinstance(body, dict) else None
    request_id = request_id if isinstance(request_id, str) else headers.get("x-request-id")
    context = {"provider_status": status, "provider_request_id": provider.redacted(request_id)[:128]
               if isinstance(request_id, str) else None}
    if not 200 <= status < 300:
        message, upstream = upstream_error(body)
        if status == 403 and upstream.get("code") == "content_moderation":
            # Refused before anything was generated: the client's prompt, not the gateway's key.
            raise provider.error(400, f"Provider '{provider.name}' refused the request for safety: "
                                      f"{provider.redacted(message or 'content moderation')}",
                                 code="CONTENT_POLICY_VIOLATION", reason="content_moderation", **context)
        raise refusal(provider, status, headers, body, context)
    if not isinstance(body, dict):
        raise provider.error(502, f"Provider '{provider.name}' returned a response that is not JSON.",
                             may_have_billed=True, **context)
    body = redact_document(body, raw, answer_secret(provider.api_key))
    finish = body.get("finish_reason")
    if finish == FILTERED:
        raise provider.error(400, f"Provider '{provider.name}' filtered the generated image for safety "
                                  f"(finish_reason {FILTERED}); it bills the call.",
                             code="CONTENT_POLICY_VIOLATION", reason=FILTERED, billed_images=1,
                             may_have_billed=True, **context)
    image = body.get("image")
    if not isinstance(image, str) or not image or finish not in (None, "SUCCESS"):
        reason = str(finish)[:32] if finish is not None else "none"
        raise provider.error(502, f"Provider '{provider.name}' answered without an image (finish_reason {reason}).",
                             may_have_billed=True, **context)
    item = {"b64_json": image}
    if isinstance(body.get("seed"), int) and not isinstance(body.get("seed"), bool):
        item["seed"] = body["seed"]  # the seed that reproduces it
    answer = {"created": int(time.time()), "data": [item]}
    return ProviderResult(body=answer, provider_status=status, provider_request_id=context["provider_request_id"])
