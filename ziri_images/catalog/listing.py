"""OpenAI's model list: ``GET /v1/models`` and ``GET /v1/models/{id}``.

Only the image models the caller's key may use: its provider and model allow-lists apply, and a
model its provider has retired is left out (unless the provider is served at another endpoint,
where the catalog does not apply retirements either). A model offered by several providers is
listed once, under the provider ``/v1`` requests default to when it has it.
"""

from flask import Blueprint

from ..access import authenticate
from ..errors import ApiError
from ..gateway import current_gateway
from ..schemas import OPENAI_COMPATIBLE_DEFAULT_PROVIDER

bp = Blueprint("models", __name__)


def allowed_models(key, book):
    """Return {model id: OpenAI model object} for the image models ``key`` may use, sorted by id."""
    today = book.today()
    found = {}
    # The default provider first, so its entry wins a name several providers share.
    ordered = sorted(book.image_models(), key=lambda entry: entry.provider != OPENAI_COMPATIBLE_DEFAULT_PROVIDER)
    for entry in ordered:
        if key.allowed_providers is not None and entry.provider not in key.allowed_providers:
            continue
        if key.allowed_models is not None and entry.name not in key.allowed_models:
            continue
        if entry.provider not in book.compatible_providers and entry.is_retired(today):
            continue
        found.setdefault(entry.name, {"id": entry.name, "object": "model", "created": 0, "owned_by": entry.provider})
    return dict(sorted(found.items()))


@bp.get("/v1/models")
def list_models():
    key = authenticate()
    return {"object": "list", "data": list(allowed_models(key, current_gateway().prices).values())}


@bp.get("/v1/models/<model_id>")
def retrieve_model(model_id):
    key = authenticate()
    model = allowed_models(key, current_gateway().prices).get(model_id)
    if model is None:
        raise ApiError(404, "MODEL_NOT_FOUND", f"The model '{model_id}' does not exist or this key may not use it.",
                       param="model")
    return model
