"""Validate the body of an image generation request.

The core fields are checked here; every other field is kept aside as a provider parameter
and checked against the model's catalog entry (``pricing.ImageModel.params_schema``), so a
parameter reaches the provider only when the catalog says the model accepts it.
"""

from dataclasses import dataclass

from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from .errors import ApiError

REQUIRED_FIELDS = ("provider", "model", "prompt")
# Fields the gateway interprets itself; they are never forwarded as-is.
GATEWAY_FIELDS = ("provider", "model", "prompt", "n", "size", "quality", "stream")


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


_schema = GenerationRequestSchema()


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
    if data["stream"]:
        raise ApiError(
            400, "STREAMING_NOT_SUPPORTED", "Streaming is not supported yet; omit 'stream' or set it to false."
        )
    params = {name: value for name, value in data.items() if name not in GATEWAY_FIELDS}
    return GenerationRequest(
        provider=data["provider"],
        model=data["model"],
        prompt=data["prompt"],
        n=data["n"],
        size=data["size"],
        quality=data["quality"],
        params=params,
    )


def check_model_params(image_model, params):
    """Return ``params`` validated against the model's catalog entry, or raise a 400."""
    unsupported = sorted(name for name in params if name not in image_model.param_names)
    if unsupported:
        raise ApiError(
            400,
            "PARAMETER_NOT_SUPPORTED",
            f"Model '{image_model.name}' does not accept: {', '.join(unsupported)}",
            unsupported=unsupported,
            accepted=sorted(image_model.param_names),
        )
    try:
        return image_model.params_schema.load(params)
    except ValidationError as error:
        raise _invalid(error.messages)
