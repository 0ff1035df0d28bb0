"""A small Python client for the gateway, mirroring the JavaScript SDK's ``UserSDK``.

    from ziri_images.sdk import UserSDK, ZiriError

    sdk = UserSDK(api_key="ziri-alice-...", proxy_url="http://localhost:3100")
    result = sdk.images(provider="openai", model="dall-e-3", prompt="A white cat")
    print(result["data"][0]["url"], result["_meta"]["cost"]["actual"])

Every failure is a ``ZiriError`` with ``status``, ``code``, ``message`` and ``request_id``
(also readable as ``requestId``). Nothing is ever retried here: an image request that timed
out or lost its connection may still have been generated and billed, so the decision to
send it again belongs to the caller (``error.may_have_billed`` and ``error.retryable`` help).

A client imports nothing of the server: the key's shape and what counts as a refused connection
are stated here again (tests hold them to ``keys/store.py`` and ``providers/answers.py``).
"""

import re
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

# The shape of a gateway key, as the gateway's key store checks it.
KEY_PATTERN = re.compile(r"^ziri-([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{16,128})\Z")
DEFAULT_PROXY_URL = "http://localhost:3100"
# The gateway waits up to 180 s for the provider (ZIRI_UPSTREAM_READ_TIMEOUT): wait longer than
# that, or the client gives up on requests that are still being generated and billed.
DEFAULT_TIMEOUT = (10.0, 240.0)


class ZiriError(Exception):
    """A request the gateway refused or that did not complete.

    ``status`` is the HTTP status (None when no answer came), ``code`` the gateway's error code
    (or ``HTTP_ERROR``, ``TIMEOUT``, ``CONNECTION_ERROR``), ``body`` the decoded error body.
    """

    def __init__(self, message, status=None, code=None, request_id=None, body=None, retryable=False,
                 may_have_billed=False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.body = body if body is not None else {}
        self.retryable = retryable  # the gateway's x-should-retry: sending it again cannot double-bill
        self.may_have_billed = may_have_billed

    @property
    def requestId(self):  # noqa: N802 - the JavaScript SDK's name
        return self.request_id

    def __str__(self):
        where = f" (HTTP {self.status}, requestId {self.request_id})" if self.status else ""
        return f"{self.code}: {self.message}{where}"


class UserSDK:
    """Call the gateway with one API key. Not shared between threads (it keeps a requests.Session)."""

    def __init__(self, api_key, proxy_url=DEFAULT_PROXY_URL, timeout=DEFAULT_TIMEOUT, session=None):
        if not isinstance(api_key, str) or not KEY_PATTERN.match(api_key):
            raise ValueError("api_key must look like ziri-{userId}-{hex secret}")
        parts = urlsplit(proxy_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"proxy_url must be an http(s) URL, got {proxy_url!r}")
        self.proxy_url = proxy_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._session = session or requests.Session()

    def __repr__(self):
        return f"UserSDK(proxy_url={self.proxy_url!r})"  # never the key

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._session.close()

    def images(self, provider, model, prompt, n=None, size=None, quality=None, response_format=None, **extra):
        """Generate images; return the gateway's response (the provider's body plus ``_meta``)."""
        body = {"provider": provider, "model": model, "prompt": prompt, "n": n, "size": size, "quality": quality,
                "response_format": response_format, **extra}
        body = {name: value for name, value in body.items() if value is not None}
        return self._request("POST", "/api/images/generations", json=body)

    def usage(self):
        """Return the key's current spend, limits and counts (``GET /api/me/usage``)."""
        return self._request("GET", "/api/me/usage")

    def _request(self, method, path, **kwargs):
        headers = {"X-API-Key": self._api_key, "Accept": "application/json"}
        try:
            response = self._session.request(method, self.proxy_url + path, headers=headers,
                                             timeout=self.timeout, **kwargs)
        except requests.exceptions.ConnectTimeout as error:
            raise ZiriError(f"could not connect to {self.proxy_url} in time", code="CONNECTION_ERROR",
                            retryable=True) from error
        except requests.exceptions.Timeout as error:
            raise ZiriError("the gateway did not answer in time; the request may still have been carried out "
                            "and billed", code="TIMEOUT", may_have_billed=method != "GET") from error
        except requests.exceptions.ConnectionError as error:
            # Refused: nothing was sent. Dropped: the gateway may have been working on it.
            refused = connection_refused(error)
            raise ZiriError(f"could not reach the gateway at {self.proxy_url}: "
                            f"{'connection refused' if refused else 'connection lost'}", code="CONNECTION_ERROR",
                            retryable=refused, may_have_billed=not refused and method != "GET") from error
        except requests.exceptions.RequestException as error:
            raise ZiriError(f"request failed: {type(error).__name__}", code="CONNECTION_ERROR",
                            may_have_billed=method != "GET") from error
        return self._decode(response)

    @staticmethod
    def _decode(response):
        request_id = response.headers.get("X-Request-Id")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok and isinstance(body, dict):
            return body
        retryable = response.headers.get("x-should-retry") == "true"
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            raise ZiriError(body["error"], status=response.status_code, code=body.get("code", "HTTP_ERROR"),
                            request_id=body.get("requestId", request_id), body=body, retryable=retryable)
        # Not the gateway's JSON: a proxy's error page, a truncated answer...
        text = " ".join(response.text.split())[:200] or response.reason or "no body"
        raise ZiriError(f"unexpected answer from the gateway: {text}", status=response.status_code,
                        code="HTTP_ERROR", request_id=request_id, retryable=retryable, may_have_billed=response.ok)


def connection_refused(error):
    """Return True when nothing was sent: ``error``'s chain of causes holds a refused connection."""
    seen, pending = set(), [error]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, (ConnectionRefusedError, NewConnectionError)):
            return True
        pending.extend([cause.__cause__, cause.__context__, getattr(cause, "reason", None)])
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
    return False
