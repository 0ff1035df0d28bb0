"""Read providers.json's document into provider entries: what each provider is, where it is reached, its key.

Providers are data: providers.json names each one's type, base URL, credential variable and auth
header. ``provider_entries`` checks the document (``config.py`` reads the file, once) and resolves
each entry's credential and endpoint from the variables it is handed, the environment at start-up
(or test values named like the variables); credentials are never read from a file.
``providers/config.py`` builds the providers from the entries.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError

PROVIDER_TYPES = {
    # Any OpenAI-compatible endpoint: POST {base_url}/images/generations, "Authorization: Bearer <key>".
    "openai": {"path": "/images/generations", "auth_header": "Authorization", "auth_scheme": "Bearer"},
    # Azure OpenAI: a deployment per model, the API version in the query string, "api-key: <key>".
    "azure": {"path": "/openai/deployments/{deployment}/images/generations", "auth_header": "api-key",
              "auth_scheme": None},
    # Google's Gemini API: POST {base_url}/models/{model}:generateContent, "x-goog-api-key: <key>";
    # the key from api_key_env, else from the variable api_key_alt_env names.
    "google": {"path": "/models/{model}:generateContent", "auth_header": "x-goog-api-key", "auth_scheme": None,
               "settings": ("api_key_alt_env",)},
    # Black Forest Labs: POST {base_url}/{model} submits a job, "x-key: <key>"; polled at the URL it answers.
    "bfl": {"path": "/{model}", "auth_header": "x-key", "auth_scheme": None},
    # Vertex AI: a project and location in the path, an OAuth2 bearer from a service account's
    # credentials: their JSON in api_key_env's variable, or a file named by credentials_file_env's.
    "vertex": {"path": "/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent",
               "auth_header": "Authorization", "auth_scheme": "Bearer",
               "settings": ("credentials_file_env", "project_env", "location_env")},
    # Stability AI: POST {base_url}/v2beta/stable-image/generate/{ultra|core|sd3} as multipart form data,
    # "Authorization: Bearer <key>"; one image a call.
    "stability": {"path": "/v2beta/stable-image/generate/{endpoint}", "auth_header": "Authorization",
                  "auth_scheme": "Bearer"},
}
_ENTRY_FIELDS = {"type", "description", "base_url", "base_url_env", "api_key_env", "auth_header", "auth_scheme",
                 "api_version", "deployments", "api_key_alt_env", "credentials_file_env", "project_env",
                 "location_env"}
_AZURE_FIELDS = ("api_version", "deployments")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


@dataclass(frozen=True)
class ProviderEntry:
    """One provider of providers.json, with its credential and endpoint as the environment set them."""

    name: str
    type: str
    base_url: str | None  # where it is called: base_url_env's value, else the file's base_url
    published_url: str | None  # the file's base_url: the provider's own API ("" for none)
    api_key: str  # "" until api_key_env is set
    api_key_env: str
    base_url_env: str | None
    auth_header: str
    auth_scheme: str | None
    path: str
    query: dict
    deployments: dict | None
    # A type's other variables (PROVIDER_TYPES' "settings"): {field without "_env": (variable, value or "")}.
    settings: dict = None

    def setting(self, name):
        """Return the value of the type's variable ``name`` (e.g. "project"), "" when unset."""
        return (self.settings or {}).get(name, (None, ""))[1]


def _is_http_url(text):
    parts = urlsplit(text) if isinstance(text, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_entry(entry, where):
    """Raise ConfigError unless ``entry`` is a valid providers.json entry."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object")
    if "api_key" in entry or "key" in entry:
        raise ConfigError(f"{where}: credentials are never read from files; name the environment variable "
                          "that holds the key in 'api_key_env'")
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kind = entry.get("type")
    if kind not in PROVIDER_TYPES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(PROVIDER_TYPES)}")
    allowed = PROVIDER_TYPES[kind].get("settings", ())
    misplaced = sorted(field for field in entry if field.endswith("_env") and field not in (
        "api_key_env", "base_url_env", *allowed))
    if misplaced:
        raise ConfigError(f"{where}.{misplaced[0]}: not a setting of type {kind}")
    for field in ("api_key_env", "base_url_env", *allowed):
        value = entry.get(field)
        if (field == "api_key_env" or value is not None) and not (isinstance(value, str) and _ENV_NAME.match(value)):
            raise ConfigError(f"{where}.{field}: expected an environment variable name, e.g. XAI_API_KEY")
    if "base_url" in entry and not _is_http_url(entry["base_url"]):
        raise ConfigError(f"{where}.base_url: expected an http(s) URL")
    if "base_url" not in entry and "base_url_env" not in entry:
        raise ConfigError(f"{where}: needs base_url, base_url_env or both")
    header = entry.get("auth_header", PROVIDER_TYPES[kind]["auth_header"])
    if not (isinstance(header, str) and _HEADER_NAME.match(header)):
        raise ConfigError(f"{where}.auth_header: expected an HTTP header name")
    scheme = entry.get("auth_scheme", PROVIDER_TYPES[kind]["auth_scheme"])
    if scheme is not None and not (isinstance(scheme, str) and _HEADER_NAME.match(scheme)):
        raise ConfigError(f"{where}.auth_scheme: expected a word such as Bearer, or null for the key alone")
    if kind == "azure":
        if not isinstance(entry.get("api_version"), str) or not entry["api_version"]:
            raise ConfigError(f"{where}.api_version: required for type azure, e.g. \"2025-04-01-preview\"")
        deployments = entry.get("deployments")
        if (not isinstance(deployments, dict) or not deployments
                or not all(isinstance(value, str) and value for value in deployments.values())):
            raise ConfigError(f"{where}.deployments: required for type azure: {{model: deployment name}}")
    else:
        for field in _AZURE_FIELDS:
            if field in entry:
                raise ConfigError(f"{where}.{field}: only for type azure")


def _entry(name, entry, where, variables):
    """Return the ProviderEntry of a checked providers.json entry, its variables read from ``variables``."""
    kind = PROVIDER_TYPES[entry["type"]]
    base_url = entry.get("base_url")
    if entry.get("base_url_env"):
        override = (variables.get(entry["base_url_env"]) or "").strip()
        if override and not _is_http_url(override):
            raise ConfigError(f"environment variable {entry['base_url_env']} (provider '{name}' in {where}): "
                              "expected an http(s) URL")
        base_url = override or base_url
    azure = entry["type"] == "azure"
    settings = {field[:-len("_env")]: (entry[field], (variables.get(entry[field]) or "").strip())
                for field in kind.get("settings", ()) if entry.get(field)}
    api_key = (variables.get(entry["api_key_env"]) or "").strip() or settings.get("api_key_alt", (None, ""))[1]
    return ProviderEntry(
        name=name,
        type=entry["type"],
        base_url=base_url.rstrip("/") if base_url else None,
        published_url=(entry.get("base_url") or "").rstrip("/"),
        api_key=api_key,
        api_key_env=entry["api_key_env"],
        base_url_env=entry.get("base_url_env"),
        auth_header=entry.get("auth_header", kind["auth_header"]),
        auth_scheme=entry.get("auth_scheme", kind["auth_scheme"]),
        path=kind["path"],
        query={"api-version": entry["api_version"]} if azure else {},
        deployments=dict(entry["deployments"]) if azure else None,
        settings=settings,
    )


def provider_entries(document, path, variables):
    """Return the ProviderEntry of each provider in providers.json's ``document``, or raise ConfigError naming it.

    ``variables`` maps the credential and endpoint variables the entries name to their values.
    """
    if not isinstance(document, dict) or not isinstance(document.get("providers"), dict) or not document["providers"]:
        raise ConfigError(f"providers file {path}: expected an object with a non-empty 'providers' object")
    entries = []
    for name, entry in document["providers"].items():
        _check_entry(entry, f"providers file {path}: providers.{name}")
        entries.append(_entry(name, entry, f"providers file {path}", variables))
    return tuple(entries)
