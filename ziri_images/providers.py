"""All outbound HTTP: call a provider's images API and translate its failures.

Every call has explicit (connect, read) timeouts, each thread keeps its own
``requests.Session`` (sessions are not thread-safe), and every ``requests`` exception or bad
upstream answer becomes a ``ProviderError`` here and nowhere else. ``may_have_billed`` tells
the caller whether the provider could have generated (and charged for) images anyway.
"""

import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from . import __version__
from .errors import ApiError

# Ten large b64 images are ~40 MB; anything far beyond that is not an images response.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_SECRET_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_*\-]{6,}|ziri-[A-Za-z0-9_.-]+-[0-9a-f]{16,})")


def redact(text, secrets=()):
    """Return ``text`` with the given secrets and anything shaped like an API key removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERN.sub("[redacted]", text)


class ProviderError(ApiError):
    """A provider call that produced no usable images."""

    def __init__(self, status, message, *, provider_status=None, provider_request_id=None,
                 may_have_billed=False, should_retry=False, headers=None, **details):
        super().__init__(status, "LLM_PROVIDER_ERROR", message, headers=headers, should_retry=should_retry, **details)
        self.provider_status = provider_status
        self.provider_request_id = provider_request_id
        self.may_have_billed = may_have_billed


@dataclass(frozen=True)
class ProviderResult:
    """A successful images response."""

    body: dict
    provider_status: int
    provider_request_id: str | None


class OpenAIProvider:
    """An OpenAI-compatible ``POST {base_url}/images/generations`` endpoint."""

    def __init__(self, name, base_url, api_key, connect_timeout, read_timeout, api_key_env="OPENAI_API_KEY"):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.timeout = (connect_timeout, read_timeout)
        self._local = threading.local()

    @property
    def is_loopback(self):
        """True when the provider is a local process (the development stub), not a paid API."""
        return urlsplit(self.base_url).hostname in LOOPBACK_HOSTS

    def require_credentials(self):
        """Raise PROVIDER_KEY_MISSING unless a provider key is configured."""
        if not self.api_key:
            raise ApiError(
                500,
                "PROVIDER_KEY_MISSING",
                f"No API key configured for provider '{self.name}' (set {self.api_key_env}).",
            )

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _error(self, status, message, **kwargs):
        return ProviderError(status, redact(message, (self.api_key,)), provider=self.name, **kwargs)

    def generate(self, payload, request_id):
        """POST ``payload`` and return a ProviderResult, or raise ProviderError."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "User-Agent": f"ziri-images/{__version__}",
            "X-Client-Request-Id": request_id,
        }
        url = f"{self.base_url}/images/generations"
        try:
            response = self._session().post(url, json=payload, headers=headers, timeout=self.timeout, stream=True)
            provider_request_id = response.headers.get("x-request-id")
            raw = self._read_capped(response)
        except requests.exceptions.ConnectTimeout:
            raise self._error(504, f"Timed out connecting to provider '{self.name}'.", should_retry=True)
        except requests.exceptions.Timeout:
            raise self._error(
                504, f"Provider '{self.name}' did not answer in time; the images may still have been generated.",
                may_have_billed=True,
            )
        except requests.exceptions.ConnectionError as error:
            refused = _connection_refused(error)
            message = "could not be reached" if refused else "dropped the connection"
            raise self._error(502, f"Provider '{self.name}' {message}.", may_have_billed=not refused,
                              should_retry=refused)
        except requests.exceptions.RequestException as error:
            raise self._error(502, f"Provider '{self.name}' request failed: {type(error).__name__}.",
                              may_have_billed=True)
        return self._interpret(response.status_code, response.headers, raw, provider_request_id)

    def _read_capped(self, response):
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                response.close()
                raise self._error(502, f"Provider '{self.name}' response exceeds {MAX_RESPONSE_BYTES} bytes.",
                                  provider_status=response.status_code, may_have_billed=True)
            chunks.append(chunk)
        return b"".join(chunks)

    def _interpret(self, status, headers, raw, provider_request_id):
        context = {"provider_status": status, "provider_request_id": provider_request_id}
        try:
            body = requests.models.complexjson.loads(raw)
        except ValueError:
            body = None
        if 200 <= status < 300:
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise self._error(502, f"Provider '{self.name}' returned a response without image data.",
                                  may_have_billed=True, **context)
            return ProviderResult(body=body, provider_status=status, provider_request_id=provider_request_id)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or f"Provider '{self.name}' answered HTTP {status}.")
        upstream = {key: error.get(key) for key in ("type", "code", "param") if error.get(key) is not None}
        details = {"providerError": {"status": status, **upstream, "requestId": provider_request_id}}
        if status in (401, 403):
            # The provider refused *our* credentials: not the client's fault, and not its key.
            raise self._error(502, f"Provider '{self.name}' rejected the gateway's credentials: {message}",
                              **context, **details)
        if status == 429:
            retry_after = headers.get("retry-after")
            raise self._error(429, message, headers={"Retry-After": retry_after} if retry_after else None,
                              should_retry=upstream.get("code") != "insufficient_quota", **context, **details)
        if 400 <= status < 500:
            raise self._error(status, message, **context, **details)
        raise self._error(502, message, should_retry=True, **context, **details)


def _connection_refused(error):
    """Return True when nothing was sent (the connection was never established)."""
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


def build_providers(settings):
    """Return {name: provider} for the providers configured in ``settings``."""
    return {
        "openai": OpenAIProvider(
            "openai",
            settings["OPENAI_BASE_URL"],
            settings["OPENAI_API_KEY"],
            settings["UPSTREAM_CONNECT_TIMEOUT"],
            settings["UPSTREAM_READ_TIMEOUT"],
        )
    }
