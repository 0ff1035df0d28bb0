"""Describe and check the catalog (pricing.json) for operators: ``ziri-images pricing check``."""

from datetime import date
from datetime import datetime
from datetime import timezone

CATALOG_COLUMNS = ("provider", "model", "quality", "size", "price", "charged_by", "max_images", "source", "as_of",
                   "retired")
# Price dimensions with a column of their own; any other (e.g. resolution) is shown in "other".
_OWN_COLUMNS = ("quality", "size")
# Prices change monthly: figures read longer ago than this are probably stale.
MAX_AGE_DAYS = 90


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
                # Token-priced models are charged from the usage the provider reports, others (Black Forest
                # Labs) what the provider reports billing; the price per image is then the estimate reserved.
                "charged_by": "provider" if model.charged_by_provider
                else "tokens" if model.token_prices is not None else "image",
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


def utc_today():
    """Return today's date in UTC, the day retirements and ages are counted in."""
    return datetime.now(timezone.utc).date()


def _age_in_days(as_of, today):
    """Return how many days before ``today`` the figures were read, or None if ``as_of`` is no date."""
    try:
        return (today - date.fromisoformat(str(as_of))).days
    except ValueError:
        return None


def catalog_warnings(book, today=None):
    """Return a warning for each thing an operator should fix before the catalog misleads.

    An image model without provenance, with figures older than MAX_AGE_DAYS (retired models
    excepted: their figures no longer change), due to be retired, or a provider whose
    image_model_suggestion is retired. ``pricing check --strict`` fails on any of them.
    """
    today = today or utc_today()
    warnings = []
    for model in book.image_models():
        name = f"{model.provider}/{model.name}"
        missing = [field for field, value in (("source", model.source), ("as_of", model.as_of)) if not value]
        if missing:
            warnings.append(f"{name}: no {' or '.join(missing)}: say where its prices come from and when")
        retired = model.is_retired(today.isoformat())
        age = _age_in_days(model.as_of, today) if model.as_of else 0
        if age is None:
            warnings.append(f"{name}: as_of {model.as_of!r} is not a YYYY-MM-DD date")
        elif age > MAX_AGE_DAYS and not retired:
            warnings.append(f"{name}: figures read {age} days ago ({model.as_of}): check them against the "
                            "provider's page, then update as_of")
        if model.retired and not retired:
            warnings.append(f"{name}: is to be retired by its provider on {model.retired}; from that day it is "
                            "refused with MODEL_RETIRED")
    for provider, suggestion in book.suggestions.items():
        if suggestion and book.providers[provider][suggestion].is_retired(today.isoformat()):
            warnings.append(f"{provider}: image_model_suggestion {suggestion} is retired: suggest a current model")
    return warnings


def catalog_notes(book, today=None):
    """Return one line per retired model: what the gateway does with it."""
    today = (today or utc_today()).isoformat()
    return [f"{model.provider}/{model.name}: retired by its provider on {model.retired}; refused with "
            "MODEL_RETIRED (except where the provider is reached at a compatible endpoint)"
            for model in book.image_models() if model.is_retired(today)]


def online_findings(book, lists, today=None):
    """Return (warnings, notes) from the providers' own model lists (``providers.model_lists``).

    A warning for each catalog model the provider no longer lists, or lists with a shutdown day
    the catalog does not carry as ``retired`` (set it: from that day the gateway refuses the model
    instead of sending it); a model the catalog already retires may be missing. A note for each
    provider not asked, or whose list could not be read.
    """
    today = (today or utc_today()).isoformat()
    warnings, notes = [], []
    for listing in lists:
        if listing.models is None:
            notes.append(f"{listing.provider}: {listing.note}")
            continue
        for model in book.image_models():
            if model.provider != listing.provider:
                continue
            name = f"{model.provider}/{model.name}"
            if model.name not in listing.models:
                if not model.is_retired(today):
                    warnings.append(f"{name}: not in {model.provider}'s model list: the provider no longer serves "
                                    "it; set its retired day")
                continue
            shutdown = listing.models[model.name]
            if shutdown and model.retired != shutdown:
                verb = "shut it down on" if shutdown <= today else "will shut it down on"
                warnings.append(f"{name}: {model.provider} {verb} {shutdown}; the catalog says "
                                f"{'retired ' + model.retired if model.retired else 'nothing'}: set retired to "
                                f"{shutdown}")
    return warnings, notes
