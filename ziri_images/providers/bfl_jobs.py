"""One Black Forest Labs job: submit it, poll its polling URL until it is done, fetch its image.

BFL bills a job when it accepts it, and says how much (``cost``, credits of $0.01). From then on
every way the job can end carries that figure (``billed_amount``), so the request is charged what
BFL billed whatever happens next: the job fails (``Error``/``Failed``: 502), is moderated
(``Content Moderated``/``Request Moderated``: 400 CONTENT_POLICY_VIOLATION), its image URL has
expired (502), or the call's deadline passes while it is still pending (504: the job may still
finish, BFL billed it anyway). A job accepted without a readable ``cost`` is charged the reservation.

Any other status (``Pending``; ``Task not found`` just after the submit) is waited on. Polls
wait between them, from ``poll_seconds[0]`` doubling up to ``poll_seconds[1]``, with
``time.sleep`` (gevent's under the gevent worker: the worker serves other requests meanwhile). A
poll that fails on the way (a dropped connection, a 5xx, a 429) is tried again at the next
interval: the job is billed already, and only the deadline ends the wait. The request's greenlet
(or thread) keeps running when its client disconnects, so a job is polled and settled whether or
not anyone is still waiting for it.
"""

import base64
import time

from .._version import __version__
from ..strict_json import parse_provider_body
from .answers import answer_secret
from .answers import exchange
from .answers import redact_document
from .answers import refusal
from .base import ProviderError
from .base import ProviderResult
from .deadline import call_deadline

MAX_JOB_ANSWER_BYTES = 1024 * 1024  # a submit's or a poll's JSON; far beyond that is not an answer
MAX_IMAGE_BYTES = 64 * 1024 * 1024
URL_LIFETIME_SECONDS = 600  # BFL's signed result URLs expire 10 minutes after the job is ready
FAILED = {"Error", "Failed"}
MODERATED = {"Content Moderated", "Request Moderated"}
CREDIT_DOLLARS = 0.01


def _json(raw):
    try:
        return parse_provider_body(raw)
    except (ValueError, RecursionError):
        return None


def _detail(body):
    """Return BFL's error body (``{"detail": ...}``) in the shape ``answers.refusal`` reads."""
    if isinstance(body, dict) and "detail" in body and "error" not in body:
        detail = body["detail"]
        if isinstance(detail, list):
            detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
        return {"error": {"message": str(detail)[:500]}}
    return body


class Job:
    """One job of one request: ``run()`` returns its ProviderResult or raises its ProviderError."""

    def __init__(self, provider, url, body, request_id, as_url):
        self.provider = provider
        self.url, self.body, self.request_id, self.as_url = url, body, request_id, as_url
        self.billed = None  # dollars, once BFL accepted the job and said what it costs
        self.context = {"provider_status": None, "provider_request_id": None}

    def run(self):
        ends = time.monotonic() + self.provider.call_deadline
        with call_deadline(self.provider.call_deadline):
            polling_url = self.submit()
            sample = self.poll(polling_url, ends)
            if self.as_url:
                data = {"url": sample}
                extra = {"url_expires_at": int(time.time()) + URL_LIFETIME_SECONDS}
            else:
                data, extra = {"b64_json": base64.b64encode(self.fetch(sample)).decode("ascii")}, {}
        return ProviderResult(body={"created": int(time.time()), "data": [data], **extra},
                              provider_status=self.context["provider_status"],
                              provider_request_id=self.context["provider_request_id"], provider_billed=self.billed)

    def error(self, status, message, **kwargs):
        """Return the job's ProviderError, charged what BFL billed for it (the reservation if it did not say)."""
        return self.provider.error(status, message, billed_amount=self.billed, may_have_billed=True,
                                   **{**self.context, **kwargs})

    def _headers(self):
        return {"Content-Type": "application/json", "Accept": "application/json", "x-key": self.provider.api_key,
                "User-Agent": f"ziri-images/{__version__}", "X-Client-Request-Id": self.request_id}

    def _get(self, method, url, headers, limit, **body):
        """Return (status, headers, raw body) of one request within the deadline, or raise its ProviderError."""
        # Only the submit's URL is kept prepared: a polling or result URL is new for every job.
        return exchange(self.provider, method, url, headers, limit, cached=method == "POST", **body)

    def submit(self):
        """Submit the job; return its polling URL. BFL bills it from here on."""
        name = self.provider.name
        status, headers, raw = self._get("POST", self.url, self._headers(), MAX_JOB_ANSWER_BYTES, json=self.body)
        body = _json(raw)
        job_id = body.get("id") if isinstance(body, dict) else None
        self.context = {"provider_status": status,
                        "provider_request_id": self.provider.redacted(job_id) if isinstance(job_id, str) else None}
        if status == 402:  # BFL's account is out of credits: the gateway's problem, not the client's
            raise self.provider.error(502, f"Provider '{name}' refused the job: the gateway's account has no credits "
                                           "left.", **self.context)
        if not 200 <= status < 300:
            raise refusal(self.provider, status, headers, _detail(body), self.context)
        cost = body.get("cost") if isinstance(body, dict) else None
        if not isinstance(cost, bool) and isinstance(cost, (int, float)) and 0 <= cost < 1e6:
            self.billed = round(cost * CREDIT_DOLLARS, 6)
        polling_url = body.get("polling_url") if isinstance(body, dict) else None
        if not isinstance(polling_url, str):
            raise self.error(502, f"Provider '{name}' accepted the job without a polling URL.")
        if not self.provider.may_send_key(polling_url):
            raise self.error(502, f"Provider '{name}' gave a polling URL the key may not be sent to (neither https, "
                                  "nor loopback, nor the base URL's host).")
        return polling_url

    def poll(self, polling_url, ends):
        """Poll until the job is ready; return its result URL, or raise the ProviderError its end means."""
        name, delay, last = self.provider.name, self.provider.poll_seconds[0], "no answer yet"
        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise self.error(504, f"Provider '{name}' did not finish the job in time ({last}); it may still "
                                      "finish, and it is charged what the provider billed.", should_retry=False)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.provider.poll_seconds[1])
            try:
                status, _headers, raw = self._get("GET", polling_url, self._headers(), MAX_JOB_ANSWER_BYTES)
            except ProviderError as error:  # a connection dropped, an answer too slow: the job is billed, poll again
                last = f"the last poll failed: {error.message}"[:160]
                continue
            body = _json(raw)
            if status in (401, 403):
                raise self.error(502, f"Provider '{name}' rejected the gateway's credentials at the polling URL.")
            if status == 429 or status >= 500 or not isinstance(body, dict):
                last = f"the last poll answered HTTP {status}"
                continue
            if not 200 <= status < 300:
                raise self.error(502, f"Provider '{name}' answered HTTP {status} at the polling URL.")
            sample = self._settled(redact_document(body, raw, answer_secret(self.provider.api_key)))
            if sample is not None:
                return sample
            last = f"status {str(body.get('status'))[:40]}"

    def _settled(self, body):
        """Return the result URL of a ready job, None while it runs; raise the error a failed job means."""
        name, status = self.provider.name, body.get("status")
        if status == "Ready":
            result = body.get("result") if isinstance(body.get("result"), dict) else {}
            sample = result.get("sample")
            if not isinstance(sample, str) or not sample.startswith(("https://", "http://")):
                raise self.error(502, f"Provider '{name}' reported the job ready without an image URL.")
            return sample
        if status in MODERATED:
            raise self.error(400, f"Provider '{name}' refused the request for safety: {status}.",
                             code="CONTENT_POLICY_VIOLATION", reason=status)
        if status in FAILED:
            detail = body.get("details") or body.get("error")
            text = f": {self.provider.redacted(str(detail))[:200]}" if detail else "."
            raise self.error(502, f"Provider '{name}' reported the job {status}{text}")
        return None

    def fetch(self, sample):
        """Return the image's bytes from its signed URL (without the key); a URL expired or gone is a 502."""
        name = self.provider.name
        headers = {"Accept": "image/*", "User-Agent": f"ziri-images/{__version__}"}
        try:
            status, _headers, raw = self._get("GET", sample, headers, MAX_IMAGE_BYTES)
        except ProviderError as error:
            error.billed_amount, error.may_have_billed = self.billed, True
            error.provider_request_id = self.context["provider_request_id"]
            error.provider_status = self.context["provider_status"]
            raise
        if status in (403, 404, 410):
            raise self.error(502, f"Provider '{name}' job's image URL has expired or is gone (HTTP {status}); the "
                                  "job was billed.", reason="result_url_expired")
        if not 200 <= status < 300 or not raw:
            raise self.error(502, f"Provider '{name}' job's image could not be fetched (HTTP {status}).")
        return raw
