"""Describe and check the catalog (pricing.json) for operators: ``ziri-images pricing check``."""

from datetime import date

CATALOG_COLUMNS = ("provider", "model", "quality", "size", "price", "max_images", "source", "as_of", "retired")


def catalog_rows(book):
    """Return one row per (image model, quality, size) with its price and provenance."""
    rows = []
    for model in book.image_models():
        for quality, by_size in model.prices.items():
            for size, price in by_size.items():
                rows.append({
                    "provider": model.provider,
                    "model": model.name,
                    "quality": quality,
                    "size": size,
                    "price": price,
                    "max_images": model.max_images,
                    "source": model.source,
                    "as_of": model.as_of,
                    "retired": model.retired,
                })
    return rows


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
