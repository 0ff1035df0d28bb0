"""Build the providers from providers.json's entries, and check them against the catalog (pricing.json).

``config.py`` reads providers.json once into ``ProviderEntry`` values (``entries.py``), each with its
credential and endpoint from the environment; ``build_providers`` turns each into the adapter its
type names (``ADAPTERS``) at start-up, handed every value it needs.
"""

from ..errors import ConfigError
from .bfl import BflProvider
from .google import GeminiProvider
from .google import VertexProvider
from .openai import OpenAIProvider
from .stability import StabilityProvider

# providers.json's types (entries.PROVIDER_TYPES) and the adapter class that serves each.
ADAPTERS = {
    "openai": OpenAIProvider,
    "azure": OpenAIProvider,
    "google": GeminiProvider,
    "vertex": VertexProvider,
    "stability": StabilityProvider,
    "bfl": BflProvider,
}


def build_providers(entries, connect_timeout, read_timeout, ca_bundle=None):
    """Return {name: provider} for providers.json's ``entries``, each calling within the timeouts given."""
    return {entry.name: ADAPTERS[entry.type].from_entry(entry, connect_timeout, read_timeout, ca_bundle)
            for entry in entries}


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
