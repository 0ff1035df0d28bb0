"""Ask each provider which models it serves: what ``pricing check --online`` compares the catalog with.

Only providers whose key is set are asked, each once, with the gateway's own credential header:
the OpenAI-compatible ones at ``GET {base_url}/models`` (OpenAI's answer gives an image model's
``shutdown_date``; xAI's and Recraft's have the same shape), Google's Gemini API at
``GET {base_url}/models`` (paged, names as ``models/<id>``). Azure (deployments, not models),
Vertex AI and Stability AI publish no list read here: they are reported as not asked. A failure
is reported by its kind and status only, never with the provider's text (it may repeat the key).
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone

import requests

from .._version import __version__

LISTED_TYPES = {"openai", "google"}
MAX_PAGES = 20  # Google's list is paged; a handful of pages holds every model


@dataclass(frozen=True)
class ModelList:
    """One provider's answer: ``models`` {id: shutdown day (YYYY-MM-DD) or None}, or None and why not."""

    provider: str
    models: dict | None
    note: str | None = None


def shutdown_day(value):
    """Return a ``shutdown_date`` (seconds since the epoch, or an ISO date) as YYYY-MM-DD, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, timezone.utc).date().isoformat()
    if isinstance(value, str) and len(value) >= 10:
        try:
            return datetime.fromisoformat(value[:10]).date().isoformat()
        except ValueError:
            return None
    return None


def fetch_model_lists(entries, timeout):
    """Return a ModelList for every providers.json entry (asked when its key is set and it has a list)."""
    lists = []
    for entry in entries:
        if not entry.api_key:
            lists.append(ModelList(entry.name, None, f"not asked: {entry.api_key_env} is not set"))
        elif entry.type not in LISTED_TYPES or not entry.base_url:
            lists.append(ModelList(entry.name, None, f"not asked: no model list is read for type {entry.type}"))
        else:
            lists.append(_ask(entry, timeout))
    return lists


def _ask(entry, timeout):
    """Return the provider's ModelList, or one that says why it could not be read."""
    try:
        models = _google_models(entry, timeout) if entry.type == "google" else _openai_models(entry, timeout)
    except requests.RequestException as error:
        return ModelList(entry.name, None, f"could not be read: {type(error).__name__}")
    except _Unreadable as error:
        return ModelList(entry.name, None, f"could not be read: {error}")
    return ModelList(entry.name, models)


class _Unreadable(Exception):
    """An answer that is not a model list (its status or shape, never its text)."""


def _get(url, headers, timeout, params=None):
    headers = {"Accept": "application/json", "User-Agent": f"ziri-images/{__version__}", **headers}
    response = requests.get(url, headers=headers, params=params, timeout=timeout)
    if response.status_code != 200:
        raise _Unreadable(f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise _Unreadable("not JSON") from None


def _openai_models(entry, timeout):
    credential = f"{entry.auth_scheme} {entry.api_key}" if entry.auth_scheme else entry.api_key
    body = _get(entry.base_url + "/models", {entry.auth_header: credential}, timeout)
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise _Unreadable("no 'data' list")
    return {item["id"]: shutdown_day(item.get("shutdown_date")) for item in items
            if isinstance(item, dict) and isinstance(item.get("id"), str)}


def _google_models(entry, timeout):
    models, params = {}, {"pageSize": 1000}
    for _ in range(MAX_PAGES):
        body = _get(entry.base_url + "/models", {"x-goog-api-key": entry.api_key}, timeout, params)
        items = body.get("models") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _Unreadable("no 'models' list")
        for item in items:
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                models[name.removeprefix("models/")] = None
        token = body.get("nextPageToken")
        if not token:
            break
        params = {"pageSize": 1000, "pageToken": token}
    return models
