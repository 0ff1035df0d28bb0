"""An OAuth2 access token for Vertex AI, from a service account's key, cached until shortly before it expires.

google-auth signs the service account's assertion and exchanges it at the credentials'
``token_uri`` (so a test points it at a local server). A token is used until ``REFRESH_AHEAD``
seconds before it expires; from then on one request refreshes it while the others go on with
the current one, and only when no usable token is left do requests wait for the refresh. A
refresh that fails is a 502 naming the token endpoint's host, never a credential.
"""

import logging
import threading
import time
from datetime import datetime
from datetime import timezone
from urllib.parse import urlsplit

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import service_account

log = logging.getLogger("ziri_images")

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_AHEAD = 300  # seconds before expiry a token is refreshed (Google's tokens last an hour)
MIN_LIFE = 30  # a token closer than this to its expiry is not sent: requests wait for the new one


class _Request(google.auth.transport.requests.Request):
    """google-auth's transport with the provider's timeouts (its own default is two minutes)."""

    def __init__(self, timeout, verify):
        session = requests.Session()
        session.verify = verify
        super().__init__(session)
        self.timeout = timeout

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        return super().__call__(url, method=method, body=body, headers=headers, timeout=self.timeout, **kwargs)


class TokenSource:
    """The current access token for one service account, refreshed ahead of its expiry."""

    def __init__(self, info, timeout, ca_bundle=None):
        self._credentials = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        self.token_host = urlsplit(info["token_uri"]).hostname
        self._request = _Request(timeout, ca_bundle or True)
        self._lock = threading.Lock()
        self._token, self._expires = None, 0.0  # the token and its expiry (time.monotonic())

    def current(self):
        """Return the token in use (for redaction), or None."""
        return self._token

    def token(self, provider):
        """Return a usable access token; raise the provider's 502 if none can be had."""
        left = self._expires - time.monotonic()
        if self._token and left > REFRESH_AHEAD:
            return self._token
        if self._token and left > MIN_LIFE:
            if self._lock.acquire(blocking=False):  # one refreshes; the others use the current token
                try:
                    self._refresh(provider)
                except Exception:
                    log.warning("provider %s: access token refresh failed; the current one is used until it "
                                "expires", provider.name)
                finally:
                    self._lock.release()
            return self._token
        with self._lock:
            if not self._token or self._expires - time.monotonic() <= REFRESH_AHEAD:
                self._refresh(provider)
            return self._token

    def _refresh(self, provider):
        """Get a new token from the token endpoint (under the lock)."""
        started = time.monotonic()
        try:
            self._credentials.refresh(self._request)
        except (google.auth.exceptions.GoogleAuthError, requests.RequestException, ValueError) as error:
            raise provider.error(502, f"Provider '{provider.name}' could not get an access token from "
                                      f"{self.token_host}: {type(error).__name__}.", should_retry=True)
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        seconds = (expiry.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds() if expiry \
            else 3600
        self._token, self._expires = self._credentials.token, started + seconds
