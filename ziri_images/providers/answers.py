"""Read a provider's answer: a ProviderResult, or a ProviderError with one mapping for every provider.

Every ``requests`` exception becomes a ``ProviderError`` here and nowhere else (``failure``), and
every answer is read within its size cap (``read_capped``), whatever the provider; the body of an
answer in OpenAI's shape (OpenAI, Azure, xAI: ``interpret_answer``) is read here too, and an
adapter for another API reads its own beside it, with the same errors. ``may_have_billed`` tells
the caller whether the provider could have generated (and charged for) images anyway; an error
raised after a 2xx status ``charges_reservation``. Anything the provider sends back is redacted
first: it may repeat the credential it was sent, in any field. Error texts lose anything
key-shaped as well; an answer's body and its events lose the exact credential only
(``redact_document``), as key-shaped strings are theirs (xAI's image URLs hold one).
"""

import re

import requests
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import ReadTimeoutError

from ..redaction import REDACTED
from ..strict_json import parse_provider_body
from .base import ProviderError  # noqa: F401  also imported from here by streaming.py
from .base import ProviderResult

# Some providers (xAI) answer a wrong key with 400, not 401: the message tells.
_CREDENTIALS_REJECTED = re.compile(r"\b(incorrect|invalid) api key\b", re.IGNORECASE)
# The providers' codes for a prompt or image refused by their safety system.
CONTENT_POLICY_CODES = {"content_policy_violation", "contentFilter", "moderation_blocked", "content_moderation"}
# xAI reports a call's cost in ticks of 10^-10 dollars.
USD_TICKS = 10**10
# A shorter credential is no secret worth guarding (it is guessed at once), and replacing it in an
# answer would corrupt images: a short run of letters turns up in megabytes of base64 by chance.
MIN_SECRET_CHARS = 8


def answer_secret(credential):
    """Return the credential an answer must not repeat, or None when it is too short to guard."""
    return credential if credential and len(credential) >= MIN_SECRET_CHARS else None


def may_hold(raw, secret):
    """Return False when the JSON text ``raw`` shows that none of its strings can hold ``secret``.

    Without a backslash there is no escape (``\\u0073k-...`` is ``sk-...``): a string holds the
    secret only if the bytes do. Two scans of the bytes, at memory speed, so an answer without it
    is passed on as it is: its base64 images neither walked again nor copied nor re-encoded.
    """
    return secret is not None and (secret.encode("utf-8") in raw or b"\\" in raw)


def redact_document(document, raw, secret):
    """Return the decoded JSON ``document`` (read from ``raw``) with ``secret`` replaced in its strings, keys too.

    The same object when no string holds it, so a caller can tell whether anything changed.
    """
    if not may_hold(raw, secret) or not _holds(document, secret):
        return document
    return _without(document, secret)


def _holds(value, secret):
    if isinstance(value, str):
        return secret in value
    if isinstance(value, dict):
        return any(_holds(name, secret) or _holds(item, secret) for name, item in value.items())
    if isinstance(value, list):
        return any(_holds(item, secret) for item in value)
    return False


def _without(value, secret):
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, dict):
        return {_without(name, secret): _without(item, secret) for name, item in value.items()}
    if isinstance(value, list):
        return [_without(item, secret) for item in value]
    return value


def read_capped(provider, response, limit):
    """Return the answer's whole body; raise ProviderError (it may have billed) past ``limit`` bytes."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        size += len(chunk)
        if size > limit:
            response.close()
            raise provider.error(502, f"Provider '{provider.name}' response exceeds {limit} bytes.",
                                 provider_status=response.status_code, may_have_billed=True)
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(provider, method, url, headers, limit, cached=True, **body):
    """Send one request on the provider's transport and read its whole answer within ``limit`` bytes.

    Return (status, headers, raw body); a failure on the way is raised as its ProviderError
    (``failure``). The caller holds the call's deadline (``deadline.call_deadline``).
    """
    response = None
    try:
        response = provider.transport.send(method, url, headers, cached=cached, **body)
        return response.status_code, response.headers, read_capped(provider, response, limit)
    except BaseException as error:
        raise failure(provider, response, error)


def failure(provider, response, error):
    """Close an answer not passed on; return what to raise for ``error`` (requests' own errors translated).

    Whatever the failure, an interrupted call (its greenlet killed) included, the answer's
    connection goes back to the pool, closed if its body was not read.
    """
    if response is not None:
        response.close()
    if not isinstance(error, requests.exceptions.RequestException):
        return error
    translated = translate_failure(provider, error)
    if response is not None:  # its status arrived: a 2xx whose body broke charges the reservation
        translated.provider_status = response.status_code
    return translated


def translate_failure(provider, error):
    """Return the ProviderError for a ``requests`` exception raised while calling ``provider``."""
    name = provider.name
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return provider.error(504, f"Timed out connecting to provider '{name}'.", should_retry=True)
    if isinstance(error, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
        # A body that stalls after the headers times out too, but requests reports it as a ConnectionError.
        if isinstance(error, requests.exceptions.Timeout) or caused_by(error, ReadTimeoutError):
            return provider.error(504, f"Provider '{name}' did not answer in time; the images may still have been "
                                       "generated.", may_have_billed=True)
        refused = connection_refused(error)
        message = "could not be reached" if refused else "dropped the connection"
        return provider.error(502, f"Provider '{name}' {message}.", may_have_billed=not refused,
                              should_retry=refused)
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return provider.error(502, f"Provider '{name}' dropped the connection in the middle of its answer.",
                              may_have_billed=True)
    return provider.error(502, f"Provider '{name}' request failed: {type(error).__name__}.", may_have_billed=True)


def interpret_answer(provider, status, headers, raw, provider_request_id):
    """Return the ProviderResult for a 2xx images body, or raise the ProviderError its answer means."""
    context = {"provider_status": status, "provider_request_id": provider_request_id}
    try:
        # NaN, Infinity and lone surrogates are not JSON: they never go further than here.
        body = parse_provider_body(raw)
    except (ValueError, RecursionError):  # json gives up on deeply nested arrays with RecursionError
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise provider.error(502, f"Provider '{provider.name}' returned a response without image data.",
                                 may_have_billed=True, **context)
        body = redact_document(body, raw, answer_secret(provider.api_key))
        return ProviderResult(body=body, provider_status=status, provider_request_id=provider_request_id,
                              provider_billed=reported_cost(body.get("usage")))
    raise refusal(provider, status, headers, body, context)


def reported_cost(usage):
    """Return the USD cost an answer's usage reports (xAI's ``cost_in_usd_ticks``, 10^10 a dollar), or None.

    Kept beside the charge for reconciliation (``providerBilled``); the charge stays the catalog's.
    """
    ticks = usage.get("cost_in_usd_ticks") if isinstance(usage, dict) else None
    if isinstance(ticks, bool) or not isinstance(ticks, int) or not 0 <= ticks <= 10**19:
        return None
    return round(ticks / USD_TICKS, 6)


def refusal(provider, status, headers, body, context):
    """Return the ProviderError for a non-2xx answer whose decoded ``body`` is ``body``."""
    message, upstream = upstream_error(body)
    upstream = {name: provider.redacted(value) for name, value in upstream.items()}
    message = message or f"Provider '{provider.name}' answered HTTP {status}."
    details = {"providerError": {"status": status, **upstream, "requestId": context["provider_request_id"]}}
    if upstream.get("code") in CONTENT_POLICY_CODES:
        details["reason"] = "content_policy"
    if status in (401, 403) or (400 <= status < 500 and _CREDENTIALS_REJECTED.search(message)):
        # The provider refused *our* credentials: not the client's fault, and not its key.
        return provider.error(502, f"Provider '{provider.name}' rejected the gateway's credentials: {message}",
                              **context, **details)
    if status == 429:
        retry_after = provider.redacted(headers.get("retry-after"))
        return provider.error(429, message, headers={"Retry-After": retry_after} if retry_after else None,
                              should_retry=upstream.get("code") != "insufficient_quota", **context, **details)
    if 400 <= status < 500:
        return provider.error(status, message, **context, **details)
    return provider.error(502, message, should_retry=True, **context, **details)


def upstream_error(body):
    """Return (message, {type, code, param}) from an error body of any supported shape.

    OpenAI and Azure: ``{"error": {"message", "type", "code", "param"}}``; xAI:
    ``{"code": "...", "error": "<message>"}``; Google: ``{"error": {"code", "message", "status"}}``;
    Stability: ``{"id", "name", "errors": ["<message>", ...]}`` or ``{"id", "name", "message"}``.
    """
    if not isinstance(body, dict):
        return None, {}
    if "error" not in body and isinstance(body.get("name"), str):
        errors = body.get("errors") if isinstance(body.get("errors"), list) else [body.get("message")]
        message = "; ".join(str(item) for item in errors if isinstance(item, str)) or None
        return message, {"code": body["name"]}
    error = body.get("error")
    if isinstance(error, str):
        code = body.get("code")
        return error, ({"code": code} if isinstance(code, (str, int)) else {})
    error = error if isinstance(error, dict) else {}
    upstream = {key: error.get(key) for key in ("type", "code", "param", "status") if error.get(key) is not None}
    message = error.get("message")
    return (str(message) if message else None), upstream


def connection_refused(error):
    """Return True when nothing was sent (the connection was never established)."""
    return caused_by(error, ConnectionRefusedError, NewConnectionError)


def caused_by(error, *types):
    """Return True when ``error`` or any exception in its chain of causes is one of ``types``."""
    seen, pending = set(), [error]
    while pending:
        cause = pending.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, types):
            return True
        pending.extend([cause.__cause__, cause.__context__, getattr(cause, "reason", None)])
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
    return False
