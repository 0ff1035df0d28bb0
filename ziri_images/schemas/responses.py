"""Describe the gateway's response bodies for the OpenAPI document.

They validate nothing at run time: they describe the contract in the OpenAPI document
(openapi.py), and the tests check real responses against them. The request's own body is
validated in ``request.py``.
"""

from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate


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
                       "reserved), the reservation when that usage cannot be read; for models charged by the provider "
                       "(Black Forest Labs) what it reported billing, in full; else images charged x their "
                       "price (never more than reserved)."})
    chargedBy = fields.String(required=True, validate=validate.OneOf(
        ["tokens", "per_image", "provider", "reservation"]))
    providerBilled = fields.Float(metadata={
        "description": "What the provider reported it billed (USD), for models it charges (Black Forest Labs)."})
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
    url_expires_at = fields.Integer(metadata={
        "description": "Black Forest Labs with response_format url: when the image URLs stop working (Unix time, "
                       "10 minutes after the images were made)."})


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


class TeamUsageSchema(Schema):
    """The spend, limits and counts of the key's team: every key of the team together."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    daily = fields.Nested(BudgetSchema, required=True)
    monthly = fields.Nested(BudgetSchema, required=True)
    inFlight = fields.Integer(required=True)
    requestsLastMinute = fields.Integer(required=True)
    limits = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True), required=True)


class UsageSchema(Schema):
    """A key's current spend, limits and counts, and its team's beside them."""

    keyId = fields.String(required=True)
    user = fields.String(required=True)
    currency = fields.String(required=True)
    daily = fields.Nested(BudgetSchema, required=True)
    monthly = fields.Nested(BudgetSchema, required=True)
    inFlight = fields.Integer(required=True)
    requestsLastMinute = fields.Integer(required=True)
    limits = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True), required=True)
    expiresAt = fields.String(required=True, allow_none=True)
    team = fields.Nested(TeamUsageSchema, required=True, allow_none=True,
                         metadata={"description": "null for a key that belongs to no team."})


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
