"""Validate the body of an image generation request.

The core fields are checked here; every other field is kept aside and checked against the
model's catalog entry (``catalog/quoting.check_model_fields``): a field is either one of the
model's price dimensions (``size`` and ``quality`` for most models, ``resolution`` for some) or
one of its ``params`` (``catalog.pricing.ImageModel.params_schema``). Anything else, ``size``
and ``quality`` included, is refused, so a field reaches the provider only when the catalog says
the model accepts it.
"""

import re
from dataclasses import dataclass

from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from .errors import ApiError

REQUIRED_FIELDS = ("provider", "model", "prompt")
# Fields the gateway interprets itself; they are never forwarded as-is.
GATEWAY_FIELDS = ("provider", "model", "prompt", "n", "size", "quality", "stream", "partial_images")
# OpenAI sends at most this many partial images before the final one.
MAX_PARTIAL_IMAGES = 3


class GenerationRequestSchema(Schema):
    """The gateway's own fields of ``POST /api/images/generations``."""

    class Meta:
        unknown = INCLUDE

    provider = fields.String(required=True, validate=validate.Length(min=1, max=64))
    model = fields.String(required=True, validate=validate.Length(min=1, max=128))
    prompt = fields.String(required=True, validate=validate.Length(min=1))
    n = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1))
    size = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    quality = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    stream = fields.Boolean(truthy={True}, falsy={False}, load_default=False)
    partial_images = fields.Integer(strict=True, load_default=None,
                                    validate=validate.Range(min=0, max=MAX_PARTIAL_IMAGES))


# OpenAI's SDKs know nothing of providers: on the OpenAI-compatible path (/v1/...) it is optional.
OPENAI_COMPATIBLE_DEFAULT_PROVIDER = "openai"


class OpenAIImagesRequestSchema(GenerationRequestSchema):
    """Describe the body of ``POST /v1/images/generations`` in the OpenAPI document: ``provider`` is optional.

    Only the document reads it (openapi.py); the gateway loads /v1 bodies with
    ``GenerationRequestSchema`` after ``api.with_default_provider`` has filled in the same default.
    """

    provider = fields.String(load_default=OPENAI_COMPATIBLE_DEFAULT_PROVIDER, validate=validate.Length(min=1, max=64))


@dataclass(frozen=True)
class GenerationRequest:
    """A validated request; ``size``/``quality`` are None until the model's defaults apply."""

    provider: str
    model: str
    prompt: str
    n: int
    size: str | None
    quality: str | None
    params: dict
    stream: bool = False  # answer with Server-Sent Events (streaming.py)
    partial_images: int = 0  # partial images the stream may carry before the final one


_schema = GenerationRequestSchema()
# A form field's integer, in ASCII digits as a JSON number is. str.isdigit() is also true of "²",
# which int() refuses, and int() reads Arabic-Indic or full-width digits and strings past its
# 4,300-digit limit differently again; 18 digits are more than any field's range allows.
_FORM_INTEGER = re.compile(r"-?[0-9]{1,18}\Z")


def form_integer(text):
    """Return the integer ``text`` spells in ASCII digits, else ``text`` itself (the schema then refuses it)."""
    return int(text.strip()) if _FORM_INTEGER.match(text.strip()) else text


def _invalid(messages):
    return ApiError(400, "VALIDATION_ERROR", "Invalid request body.", details=messages)


def parse_generation_request(body):
    """Return a GenerationRequest from the decoded JSON body, or raise the contract's 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_BODY", "Request body must be a JSON object.")
    missing = [name for name in REQUIRED_FIELDS if body.get(name) in (None, "")]
    if missing:
        raise ApiError(400, "MISSING_FIELDS", "provider, model, and prompt are required", missing=missing)
    try:
        data = _schema.load(body)
    except ValidationError as error:
        raise _invalid(error.messages)
    params = {name: value for name, value in data.items() if name not in GATEWAY_FIELDS}
    return GenerationRequest(
        provider=data["provider"],
        model=data["model"],
        prompt=data["prompt"],
        n=data["n"],
        size=data["size"],
        quality=data["quality"],
        params=params,
        stream=data["stream"],
        partial_images=(data["partial_images"] or 0) if data["stream"] else 0,  # without a stream: no partials
    )


# --- Response bodies. They validate nothing at run time: they describe the contract in the
# --- OpenAPI document (openapi.py), and the tests check real responses against them.

class ImageSchema(Schema):
    """One image, as the provider returned it: a URL or base64 data."""

    class Meta:
        unknown = INCLUDE

    url = fields.String(metadata={"description": "Where to download the image (DALL·E models, response_format=url)."})
    b64_json = fields.String(metadata={"description": "The image, base64-encoded."})
    revised_prompt = fields.String(metadata={"description": "The prompt the provider actually used (dall-e-3)."})


class CostSchema(Schema):
    """What the request was priced at and charged."""

    estimated = fields.Float(required=True, metadata={"description": "Images requested x the highest price per image."})
    reserved = fields.Float(required=True, metadata={
        "description": "Held before the call: the estimate, plus for token-billed models the prompt's text tokens "
                       "and any output tokens above the per-image price."})
    actual = fields.Float(required=True, metadata={
        "description": "Charged: the provider's reported token usage at the catalog's token prices (at most twice "
                       "reserved), the reservation when that usage cannot be read, else images charged x their "
                       "price (never more than reserved)."})
    chargedBy = fields.String(required=True, validate=validate.OneOf(["tokens", "per_image", "reservation"]))
    usage = fields.Dict(required=True, allow_none=True, metadata={"description": "The provider's token usage."})
    pricePerImage = fields.Float(required=True)
    imagesRequested = fields.Integer(required=True)
    imagesCharged = fields.Integer(required=True, metadata={
        "description": "Images delivered in data and charged: at most imagesRequested."})
    quality = fields.String(metadata={"description": "As produced; models priced by quality."})
    size = fields.String(metadata={"description": "As produced; models priced by size."})
    currency = fields.String(required=True)


class MetaSchema(Schema):
    """The gateway's addition to the provider's response."""

    requestId = fields.String(required=True)
    provider = fields.String(required=True)
    model = fields.String(required=True)
    providerRequestId = fields.String(required=True, allow_none=True)
    cost = fields.Nested(CostSchema, required=True)


class ImagesResponseSchema(Schema):
    """The provider's images response, passed through as is, plus ``_meta``."""

    class Meta:
        unknown = INCLUDE

    created = fields.Integer(required=True)
    data = fields.List(fields.Nested(ImageSchema), required=True)
    meta = fields.Nested(MetaSchema, required=True, data_key="_meta")
    background = fields.String(metadata={"description": "GPT image models."})
    output_format = fields.String(metadata={"description": "GPT image models."})
    size = fields.String(metadata={"description": "GPT image models: the size produced."})
    quality = fields.String(metadata={"description": "GPT image models: the quality produced."})
    usage = fields.Dict(metadata={"description": "GPT image models: the provider's token usage."})


class ErrorSchema(Schema):
    """Every error: a message, a stable code, the request id, and details that depend on the code."""

    class Meta:
        unknown = INCLUDE

    error = fields.String(required=True, metadata={"description": "A human-readable message."})
    code = fields.String(required=True, metadata={"description": "A stable code (see x-error-codes)."})
    requestId = fields.String(required=True)


class OpenAIErrorDetailSchema(Schema):
    """OpenAI's error object, with the gateway's stable code and request id."""

    class Meta:
        unknown = INCLUDE

    message = fields.String(required=True, metadata={"description": "A human-readable message."})
    type = fields.String(required=True, metadata={"description": "OpenAI's error type (see x-error-codes)."})
    param = fields.String(required=True, allow_none=True, metadata={"description": "The offending field, if any."})
    code = fields.String(required=True, metadata={"description": "A stable code (see x-error-codes)."})
    requestId = fields.String(required=True)


class OpenAIErrorSchema(Schema):
    """Every error on ``/v1``, in OpenAI's shape (its SDKs read ``code``, ``type`` and ``param``)."""

    error = fields.Nested(OpenAIErrorDetailSchema, required=True)


class ModelSchema(Schema):
    """One image model, as OpenAI lists it."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("model"))
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True, metadata={"description": "The provider that serves it."})


class ModelListSchema(Schema):
    """The image models the key may use."""

    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Nested(ModelSchema), required=True)


class BudgetSchema(Schema):
    """One spend period (the UTC day or month) of a key."""

    period = fields.String(required=True)
    spent = fields.Float(required=True)
    reserved = fields.Float(required=True)
    limit = fields.Float(required=True, allow_none=True, metadata={"description": "null = unlimited."})
    remaining = fields.Float(required=True, allow_none=True, metadata={"description": "null = unlimited."})
    requests = fields.Integer(required=True)
    resetsAt = fields.String(required=True)


class UsageSchema(Schema):
    """A key's current spend, limits and counts."""

    keyId = fields.String(required=True)
    user = fields.String(required=True)
    currency = fields.String(required=True)
    daily = fields.Nested(BudgetSchema, required=True)
    monthly = fields.Nested(BudgetSchema, required=True)
    inFlight = fields.Integer(required=True)
    requestsLastMinute = fields.Integer(required=True)
    limits = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True), required=True)
    expiresAt = fields.String(required=True, allow_none=True)


class HealthSchema(Schema):
    """Liveness."""

    status = fields.String(required=True, validate=validate.Equal("ok"))


class ReadinessCheckSchema(Schema):
    """One readiness check: ``reason`` only when it failed (never a path or a secret)."""

    ok = fields.Boolean(required=True)
    reason = fields.String()


class ProviderReadinessSchema(Schema):
    """Whether one provider has its key (and endpoint) set; ``missing`` names the variable to set."""

    usable = fields.Boolean(required=True)
    missing = fields.String()


class ReadinessSchema(Schema):
    """Whether the key file, the catalog, the ledger and at least one provider are usable."""

    status = fields.String(required=True, validate=validate.OneOf(["ready", "not_ready"]))
    checks = fields.Dict(keys=fields.String(), values=fields.Nested(ReadinessCheckSchema), required=True)
    providers = fields.Dict(keys=fields.String(), values=fields.Nested(ProviderReadinessSchema), required=True)
