"""OpenAI's model list: ``GET /v1/models`` and ``GET /v1/models/{id}``.

The image models the caller's key may use (``catalog.listing.allowed_models``); a model several
providers offer is listed under the provider ``/v1`` requests default to.
"""

from flask import Blueprint

from .access import authenticate
from .catalog.listing import allowed_models
from .errors import ApiError
from .gateway import current_gateway
from .schemas.request import OPENAI_COMPATIBLE_DEFAULT_PROVIDER

bp = Blueprint("models", __name__)


def models_for(key):
    """Return {model id: OpenAI model object} of the models ``key`` may use."""
    return allowed_models(key, current_gateway().prices, OPENAI_COMPATIBLE_DEFAULT_PROVIDER)


@bp.get("/v1/models")
def list_models():
    key = authenticate()
    return {"object": "list", "data": list(models_for(key).values())}


@bp.get("/v1/models/<model_id>")
def retrieve_model(model_id):
    key = authenticate()
    model = models_for(key).get(model_id)
    if model is None:
        raise ApiError(404, "MODEL_NOT_FOUND", f"The model '{model_id}' does not exist or this key may not use it.",
                       param="model")
    return model
