"""Read the providers of pricing.json into catalogs of models, checked once at start-up.

Each provider lists its models: image models (``image_model.ImageModel``) and, by ``kind``
alone, others (chat, embedding, ...). An entry may be ``based_on`` another model of the same
provider (dated snapshots, models priced alike): it reuses that entry's fields, its own win.
Every problem is a ConfigError naming where in the file it is.
"""

from ..errors import ConfigError
from .image_model import ImageModel

IMAGE_KIND = "image"
MODEL_KINDS = (IMAGE_KIND, "chat", "embedding", "audio", "moderation", "video")


def load_providers(document_providers, where):
    """Return ({provider: {model: ImageModel or kind}}, {provider: image_model_suggestion}) from pricing.json."""
    providers = {}
    suggestions = {}
    for provider, provider_entry in document_providers.items():
        models = provider_entry.get("models") if isinstance(provider_entry, dict) else None
        if not isinstance(models, dict):
            raise ConfigError(f"{where}: providers.{provider}: expected a 'models' object")
        providers[provider] = _model_catalog(provider, models, f"{where}: providers.{provider}.models")
        suggestion = provider_entry.get("image_model_suggestion")
        if suggestion is not None and not isinstance(providers[provider].get(suggestion), ImageModel):
            raise ConfigError(
                f"{where}: providers.{provider}.image_model_suggestion: '{suggestion}' is not an image model")
        suggestions[provider] = suggestion
    return providers, suggestions


def _based_on(models, entry, where):
    """Return ``entry`` with the fields of the model it is ``based_on`` filled in (its own win)."""
    if not isinstance(entry, dict) or "based_on" not in entry:
        return entry
    base = models.get(entry["based_on"])
    if not isinstance(base, dict) or base.get("kind") != IMAGE_KIND or "based_on" in base:
        raise ConfigError(f"{where}.based_on: {entry['based_on']!r} is not an image model of this provider "
                          "(that is not based on another)")
    # Provenance and retirement belong to each entry: a snapshot does not retire with its alias.
    inherited = {name: value for name, value in base.items() if name not in ("source", "as_of", "retired")}
    return {**inherited, **{name: value for name, value in entry.items() if name != "based_on"}}


def _model_catalog(provider, models, where):
    """Return one provider's ``models`` as {name: ImageModel, or the kind of a model of another kind}."""
    catalog = {}
    for name, entry in models.items():
        model_where = f"{where}.{name}"
        entry = _based_on(models, entry, model_where)
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in MODEL_KINDS:
            raise ConfigError(f"{model_where}.kind: expected one of {', '.join(MODEL_KINDS)}")
        catalog[name] = ImageModel(provider, name, entry, model_where) if kind == IMAGE_KIND else kind
    return catalog
