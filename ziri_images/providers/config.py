"""Build the providers from providers.json, and check them against the catalog (pricing.json).

Providers are data: providers.json names each one's type, base URL, credential variable and
auth header, and ``build_providers`` turns it into ``OpenAIProvider`` objects at start-up.
Credentials come from the environment only (or config values named like the variables, for
tests), never from a file.
"""

import os
import re
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..config import load_json_file
from .openai import OpenAIProvider

PROVIDER_TYPES = {
    # Any OpenAI-compatible endpoint: POST {base_url}/images/generations, "Authorization: Bearer <key>".
    "openai": {"path": "/images/generations", "auth_header": "Authorization", "auth_scheme": "Bearer"},
    # Azure OpenAI: a deployment per model, the API version in the query string, "api-key: <key>".
    "azure": {"path": "/openai/deployments/{deployment}/images/generations", "auth_header": "api-key",
              "auth_scheme": None},
}
_ENTRY_FIELDS = {"type", "description", "base_url", "base_url_env", "api_key_env", "auth_header", "auth_scheme",
                 "api_version", "deployments"}
_AZURE_FIELDS = ("api_version", "deployments")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _is_http_url(text):
    parts = urlsplit(text) if isinstance(text, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _from_environment(name, settings, environ):
    """Return the value of variable ``name``: a config value of that name wins (tests), else the environment."""
    value = settings.get(name)
    if value is None:
        value = environ.get(name)
    return (value or "").strip()


def _check_entry(name, entry, where):
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
    for field in ("api_key_env", "base_url_env"):
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


def _provider(name, entry, where, settings, environ):
    """Return the OpenAIProvider for a checked providers.json entry."""
    kind = PROVIDER_TYPES[entry["type"]]
    base_url = entry.get("base_url")
    if entry.get("base_url_env"):
        override = _from_environment(entry["base_url_env"], settings, environ)
        if override and not _is_http_url(override):
            raise ConfigError(f"environment variable {entry['base_url_env']} (provider '{name}' in {where}): "
                              "expected an http(s) URL")
        base_url = override or base_url
    azure = entry["type"] == "azure"
    return OpenAIProvider(
        name,
        base_url,
        _from_environment(entry["api_key_env"], settings, environ),
        settings["UPSTREAM_CONNECT_TIMEOUT"],
        settings["UPSTREAM_READ_TIMEOUT"],
        entry["api_key_env"],
        auth_header=entry.get("auth_header", kind["auth_header"]),
        auth_scheme=entry.get("auth_scheme", kind["auth_scheme"]),
        path=kind["path"],
        query={"api-version": entry["api_version"]} if azure else None,
        deployments=entry["deployments"] if azure else None,
        base_url_env=entry.get("base_url_env"),
    )


def build_providers(settings, environ=None):
    """Return {name: provider} for the providers in the ``PROVIDERS_FILE``, or raise ConfigError naming it."""
    environ = os.environ if environ is None else environ
    path = settings.get("PROVIDERS_FILE", "providers.json")
    document = load_json_file(path, "providers file")
    if not isinstance(document, dict) or not isinstance(document.get("providers"), dict) or not document["providers"]:
        raise ConfigError(f"providers file {path}: expected an object with a non-empty 'providers' object")
    providers = {}
    for name, entry in document["providers"].items():
        where = f"providers file {path}: providers.{name}"
        _check_entry(name, entry, where)
        providers[name] = _provider(name, entry, f"providers file {path}", settings, environ)
    return providers


def check_catalog(providers, book, path):
    """Raise ConfigError unless providers.json and the catalog name the same providers and deployments."""
    where = f"providers file {path}"
    for name in book.providers:
        if name not in providers:
            raise ConfigError(f"{where}: provider '{name}' is in the catalog {book.path} but not configured here")
    for name, provider in providers.items():
        if name not in book.providers:
            raise ConfigError(f"{where}: providers.{name}: not in the catalog {book.path}; add its models there "
                              "or remove it here")
        if provider.deployments is None:
            continue
        models = {model.name for model in book.image_models() if model.provider == name}
        missing, extra = sorted(models - set(provider.deployments)), sorted(set(provider.deployments) - models)
        if missing:
            raise ConfigError(f"{where}: providers.{name}.deployments: no deployment for {', '.join(missing)}")
        if extra:
            raise ConfigError(f"{where}: providers.{name}.deployments: {', '.join(extra)} is not an image model "
                              f"of '{name}' in the catalog {book.path}")
