"""Describe and check the catalog (pricing.json) for operators: ``ziri-images pricing check``."""

from datetime import date

CATALOG_COLUMNS = ("provider", "model", "quality", "size", "price", "charged_by", "max_images", "source", "as_of",
                   "retired")
# Price dimensions with a column of their own; any other (e.g. resolution) is shown in "other".
_OWN_COLUMNS = ("quality", "size")


def catalog_rows(book):
    """Return one row per price of every image model, with the model's limits and provenance."""
    rows = []
    for model in book.image_models():
        for choices, price in model.price_rows():
            others = [f"{name}={value}" for name, value in choices.items() if name not in _OWN_COLUMNS]
            rows.append({
                "provider": model.provider,
                "model": model.name,
                "quality": choices.get("quality"),
                "size": choices.get("size"),
                "other": ", ".join(others) or None,
                "price": price,
                # Token-priced models are charged from the usage the provider reports; the price
                # per image is then the estimate that is reserved.
                "charged_by": "tokens" if model.token_prices is not None else "image",
                "max_images": model.max_images,
                "source": model.source,
                "as_of": model.as_of,
                "retired": model.retired,
            })
    return rows


def catalog_columns(rows):
    """Return the columns to show: 'other' only when some model is priced by another dimension."""
    if any(row["other"] for row in rows):
        index = CATALOG_COLUMNS.index("size") + 1
        return (*CATALOG_COLUMNS[:index], "other", *CATALOG_COLUMNS[index:])
    return CATALOG_COLUMNS


def catalog_warnings(book, today=None):
    """Return a warning for each image model without provenance or marked retired."""
    today = (today or date.today()).isoformat()
    warnings = []
    for model in book.image_models():
        name = f"{model.provider}/{model.name}"
        missing = [field for field, value in (("source", model.source), ("as_of", model.as_of)) if not value]
        if missing:
            warnings.append(f"{name}: no {' or '.join(missing)}: say where its prices come from and when")
        if model.retired:
            # A 'YYYY-MM' or 'YYYY-MM-DD' date compares correctly with today's ISO date as text.
            when = "was retired" if str(model.retired) <= today else "is to be retired"
            warnings.append(f"{name}: {when} by its provider ({model.retired}); the gateway still accepts it")
    return warnings
