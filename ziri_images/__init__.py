"""ziri-images: an authenticated, priced and metered gateway for AI image generation."""

from ._version import __version__

__all__ = ["__version__", "create_app"]


def create_app(config=None):
    """Build the Flask app from ``config`` (default: the environment's), load its files, then register the API.

    ``config`` is a ``Config``, or a mapping of test values: settings by their Flask names
    (``KEYS_FILE``), provider variables by their names (``OPENAI_API_KEY``), ``TESTING``, ``CLOCK``.
    Raises ``ConfigError`` (naming the variable or the file, and the problem) when one is unusable.
    """
    from flask import Flask

    from . import api
    from . import errors
    from . import gateway
    from . import models
    from . import openapi
    from .admin import api as admin_api
    from .config import Config
    from .ops import dashboard
    from .ops import metrics
    from .ops import readiness
    from .ops import refusals
    from .strict_json import StrictJSONProvider
    from .uploads.form import InMemoryRequest

    app = Flask(__name__, static_folder=None)
    app.request_class = InMemoryRequest  # an upload is never written to a temporary file
    overrides = {}
    if not isinstance(config, Config):
        overrides = dict(config or {})
        config = Config.from_environ(overrides=overrides)
    app.config.update(overrides)  # Flask's own values (TESTING) and a test's clock stay beside the settings
    app.config.update(config)
    # Only strict JSON (no NaN or Infinity), with provider responses in the order the provider wrote them.
    app.json = StrictJSONProvider(app)
    _configure_logging(config)
    errors.init_app(app)
    gateway.init_app(app, config)
    metrics.init_app(app)
    refusals.init_app(app)
    dashboard.init_app(app)
    admin_api.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(readiness.bp)
    app.register_blueprint(openapi.bp)
    hops = config.trusted_proxies
    if hops > 0:
        # Only behind that many proxies is X-Forwarded-For the client's address; never trust it otherwise.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app


def _configure_logging(config):
    """Send the gateway's log lines to stderr unless the host application configured logging.

    Every line is redacted (key-shaped strings and the configured provider keys) and kept on one line.
    """
    from .server.logs import configure_gateway_logging

    configure_gateway_logging(config.log_level, config.provider_secrets, config.log_format)
