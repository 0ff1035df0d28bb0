"""WSGI entry point: ``gunicorn app:app``."""

import sys

from ziri_images import create_app
from ziri_images.errors import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # A broken key, pricing or ledger file stops start-up with one clear line, not a traceback.
    sys.exit(f"ziri-images: configuration error: {error}")
