"""Validate the body of an image generation request.

The core fields are checked here; every other field is kept aside and checked against the
model's catalog entry (``catalog/quoting.check_model_fields``): a field is either one of the
model's price dimensions (``size`` and ``quality`` for most models, ``resolution`` for some) or
one of its ``params`` (``catalog.image_model.ImageModel.params_schema``). Anything else, ``size``
and ``quality`` included, is refused, so a field reaches the provider only when the catalog says
the model accepts it. The response bodies are described in ``responses.py``.
"""

import re
from dataclasses import dataclass

from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from ..errors import ApiError

REQUIRED_FIELDS = ("provider", "model", "prompt")
# Fields the gateway interprets itself; they are never forwarded as-is.
GATEWAY_FIELDS = ("provider", "model", "prompt", "n", "size", "quality", "stream", "partial_images")
# OpenAI sends at most this many partial images before the final one.
MAX_PARTIAL_IMAGES = 3
# The end user (OpenAI's ``user``) is recorded in the ledger, reported and counted against a key's
# end_user_daily_spend_limit: bounded, and without control characters or line breaks (a terminal's
# escape sequences, a forged log line). A pattern, so the OpenAPI document states it too.
END_USER_MAX_CHARS = 256
END_USER_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


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
    # Read by the gateway (the ledger, the end user's limit), and forwarded only to a model whose params take it.
    user = fields.String(allow_none=True, validate=[
        validate.Length(min=1, max=END_USER_MAX_CHARS),
        validate.Regexp(END_USER_PATTERN, error="Must not hold control characters or line breaks.")])


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

    @property
    def end_user(self):
        """Return the client's end user (OpenAI's ``user``), or None when the request names none."""
        return self.params.get("user")


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


