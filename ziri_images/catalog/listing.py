"""The catalog as one key sees it: the image models it may use, in OpenAI's model shape.

Only the image models the key may use: its provider and model allow-lists apply, and a model
its provider has retired is left out (unless the provider is served at another endpoint, where
the catalog does not apply retirements either). A model offered by several providers is listed
once, under ``default_provider`` when it has it. The routes (``GET /v1/models``) are ``models.py``'s.
"""


def allowed_models(key, book, default_provider):
    """Return {model id: OpenAI model object} for the image models ``key`` may use, sorted by id."""
    today = book.today()
    found = {}
    # The default provider first, so its entry wins a name several providers share.
    ordered = sorted(book.image_models(), key=lambda entry: entry.provider != default_provider)
    for entry in ordered:
        if key.allowed_providers is not None and entry.provider not in key.allowed_providers:
            continue
        if key.allowed_models is not None and entry.name not in key.allowed_models:
            continue
        if entry.provider not in book.compatible_providers and entry.is_retired(today):
            continue
        found.setdefault(entry.name, {"id": entry.name, "object": "model", "created": 0, "owned_by": entry.provider})
    return dict(sorted(found.items()))
