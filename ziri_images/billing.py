"""A request's money, from its reservation to its one settlement, and the key's limits over the store.

``Bill.open`` reserves the most a request can cost (its summary: ``ledger.records.request_summary``);
then exactly one outcome settles it, one ``charge`` record (``call(send, ...)`` settles a failed
provider call as ``fail`` or ``unknown``):

- ``charge(result)``: the provider answered; charged from its answer (``catalog.charges.charge_for``);
- ``fail(error)``: the provider refused or failed (``ProviderError.charge_fields``);
- ``unknown()``: the call's outcome is unknown: charged at the reservation;
- ``charge_reservation(why, ...)``: a stream that ended without its charge (``streaming.py``).

A settled bill stays settled, a charge the ledger refused too (its reservation then expires at
its amount): ``charge``, ``fail`` and ``unknown`` raise ``AlreadySettled``,
``charge_reservation`` (a stream's last resort) does nothing. The only second record is the
charge's own fallback: an answer whose charge could not be written is charged at its reservation.

``Limiter`` is the request path's view of the store: ``reserve`` and ``settle`` (each one
commit, told to its observers: ``ops/metrics.py`` registers with ``observe``), ``usage`` for
``GET /api/me/usage``, ``rate_headers`` for every authenticated response and ``hold_upload``
before an edit's body is read (``uploads/holds.py``). The decisions are ``ledger.checks.CHECKS``;
the store makes each one atomic with the record it writes.
"""

import logging
import math
import time

from .alerts.rules import watches
from .catalog.charges import charge_for
from .config import DEFAULT_EDIT_WORKER_MAX_BYTES
from .errors import ApiError
from .figures import usage_figures
from .keys.store import LIMIT_NAMES
from .keys.store import TEAM_LIMIT_NAMES
from .ledger.checks import RATE_WINDOW_SECONDS
from .ledger.money import to_micros
from .ledger.records import request_summary
from .providers.base import ProviderError
from .uploads.holds import UploadHolds

log = logging.getLogger("ziri_images")


class AlreadySettled(RuntimeError):
    """A bill was settled a second time: its request would be charged twice."""


class Bill:
    """One request's money: reserved when opened, then settled exactly once."""

    def __init__(self, limiter, request_id, generation, image_model, quote, summary, reservation, key=None):
        self.limiter = limiter
        self.key = key  # whose limits (and team's) its charge may set a budget alert off for
        self.request_id = request_id
        self.generation = generation
        self.image_model = image_model
        self.quote = quote
        self.summary = summary  # the fields its reservation and charge records open with
        self.reservation = reservation
        self.started = time.monotonic()
        self.settled = False

    @classmethod
    def open(cls, limiter, request_id, key, endpoint, generation, image_model, quote, idempotency_key):
        """Reserve the most the request can cost; return its Bill, or raise the limit's ApiError."""
        summary = request_summary(request_id, endpoint, key, generation, quote, idempotency_key)
        reservation = limiter.reserve(key, quote.reserved, summary)
        return cls(limiter, request_id, generation, image_model, quote, summary, reservation, key)

    def call(self, send, *args):
        """Return ``send(*args)``, the provider's answer; a call that fails settles the bill (fail or unknown)."""
        try:
            return send(*args)
        except ProviderError as error:
            self.fail(error)
            raise
        except BaseException:
            self.unknown()  # rather than risk an unrecorded generation
            raise

    def fail(self, error):
        """Settle a call the provider failed (a ProviderError): what it may have billed, or nothing."""
        self._close()
        fields = error.charge_fields(self.quote.reserved, self.image_model.token_prices, self.quote.price_per_image)
        self._write("provider_error", error.status, **fields)

    def unknown(self):
        """Settle a call whose outcome is unknown at the reservation: it may have generated images."""
        self._close()
        self._write("gateway_error", 500, imagesReturned=None, cost=self.quote.reserved)

    def charge(self, result):
        """Return the Charge for a provider's answer (a ProviderResult), settled whatever its body holds."""
        self._close()
        upstream = {"providerStatus": result.provider_status, "providerRequestId": result.provider_request_id}
        model, quote = self.image_model, self.quote
        try:
            charge = charge_for(model, quote, result.body, result.provider_billed, result.billed_undelivered)
            if charge.cost > quote.reserved:
                # Token bills (capped; the provider's own figure is kept as tokenCost) and provider bills (in full).
                log.warning("charge exceeds reservation requestId=%s model=%s/%s charged=%s reserved=%s tokenCost=%s "
                            "providerBilled=%s", self.request_id, model.provider, model.name, charge.cost,
                            quote.reserved, charge.token_cost, charge.provider_billed)
            self._write("succeeded", 200, **charge.ledger_fields(), **upstream)
        except ApiError:
            raise  # the ledger refused the charge: the reservation stays open and expires at its amount
        except Exception:
            # The provider answered, and may have billed: charge the reservation, and say so.
            log.exception("answer could not be charged requestId=%s model=%s/%s", self.request_id, model.provider,
                          model.name)
            self._write("gateway_error", 502, imagesReturned=None, cost=quote.reserved, mayHaveBilled=True,
                        **upstream)
            raise ProviderError(502, f"Provider '{model.provider}' answered, but its answer could not be charged; "
                                     "the reservation was charged instead.", provider=model.provider,
                                provider_status=result.provider_status,
                                provider_request_id=result.provider_request_id, may_have_billed=True)
        return charge

    def charge_reservation(self, why, upstream, status="provider_error", http_status=502):
        """Settle a stream that ended without its charge at the reservation, unless the bill is settled already."""
        if self.settled:
            return
        self._close()
        log.warning("stream charged its reservation requestId=%s streamEnd=%s reserved=%s", self.request_id, why,
                    self.quote.reserved)
        self._write(status, http_status, imagesReturned=None, cost=self.quote.reserved, chargedBy="reservation",
                    mayHaveBilled=True, streamEnd=why, providerStatus=upstream.provider_status,
                    providerRequestId=upstream.provider_request_id)

    def meta(self, result, charge):
        """Return the answer's ``_meta``: the request id, the provider's, and what was reserved and charged."""
        quote = self.quote
        return {
            "requestId": self.request_id,
            "provider": self.generation.provider,
            "model": self.generation.model,
            "providerRequestId": result.provider_request_id,
            "cost": {
                "estimated": quote.estimated,
                "reserved": quote.reserved,
                "actual": charge.cost,
                "pricePerImage": charge.price_per_image,
                "imagesRequested": quote.images,
                "imagesCharged": charge.images,
                **charge.choices,
                "currency": quote.currency,
                "chargedBy": charge.charged_by,
                "usage": charge.usage,
                **({"providerBilled": charge.provider_billed} if charge.provider_billed is not None else {}),
            },
        }

    def _close(self):
        # Before the write: a write the ledger refuses leaves the reservation to expire, never a second record.
        if self.settled:
            raise AlreadySettled(f"request {self.request_id} is settled already")
        self.settled = True

    def _write(self, status, http_status, **outcome):
        latency = round((time.monotonic() - self.started) * 1000)
        self.limiter.settle(self.reservation, {**self.summary, "status": status, "httpStatus": http_status,
                                               **outcome, "latencyMs": latency}, self.key)


class Limiter:
    """Reserve and settle spend for requests, enforcing each key's limits, over one store."""

    def __init__(self, store, upload_bytes=DEFAULT_EDIT_WORKER_MAX_BYTES, alert_thresholds=()):
        self.store = store
        self.uploads = UploadHolds(upload_bytes)
        self.observers = []
        # Percents of a limit whose crossing records a budget alert (empty: alerts are off).
        self.alert_thresholds = alert_thresholds

    def observe(self, observer):
        """Tell ``observer`` of every commit: ``reserved(seconds)``, ``settled(record, seconds or None if refused)``."""
        self.observers.append(observer)

    def reserve(self, key, amount, details):
        """Check the key's limits and reserve ``amount`` (dollars); return the Reservation or raise."""
        started = time.perf_counter()
        reservation = self.store.reserve(key, to_micros(amount), details)
        # An edit's body held for this request is now counted by the store (rate window, in flight).
        self.uploads.admitted(details.get("requestId"))
        seconds = time.perf_counter() - started
        for observer in self.observers:
            observer.reserved(seconds)
        return reservation

    def hold_upload(self, key, size, request_id):
        """Hold ``size`` bytes of an edit's body for ``key`` before any is read; return the Hold, or raise.

        Refused as ``reserve`` would refuse it (the key's rate, concurrency, spent budgets: read from
        the store, with the bodies this process holds for the key counted in), or when the process
        holds as many upload bytes as it may.
        """
        limited = any(key.limit(name) for name in LIMIT_NAMES) or key.team is not None
        usage = self.store.key_usage(key) if limited else None
        return self.uploads.hold(key, size, request_id, usage, usage.now if limited else None)

    def settle(self, reservation, record, key=None):
        """Write the request's ``charge`` record (the outcome fields in ``record``), releasing its reservation.

        With the request's ``key``, the store also records the budget alerts the charge makes reached.
        """
        started, seconds = time.perf_counter(), None
        found = watches(key, self.alert_thresholds) if key is not None else ()
        try:
            result = self.store.settle(reservation, record, found)
            seconds = time.perf_counter() - started
            return result
        finally:
            for observer in self.observers:
                observer.settled(record, seconds)

    def rate_headers(self, key):
        """Return the X-RateLimit-* headers for ``key`` (none when it has no rate limit)."""
        rpm = key.limit("requests_per_minute")
        if not rpm:
            return {}
        admitted, oldest = self.store.rate_summary(key.id)
        reset = oldest + RATE_WINDOW_SECONDS if oldest is not None else self.store.clock().timestamp()
        return {
            "X-RateLimit-Limit": str(int(rpm)),
            "X-RateLimit-Remaining": str(max(0, int(rpm) - admitted)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    def usage(self, key):
        """Return the key's current spend, reservations, limits and counts, and its team's beside them."""
        usage = self.store.key_usage(key)
        report = {"keyId": key.id, "user": key.user, "currency": "USD", **usage_figures(key, usage, LIMIT_NAMES)}
        report["expiresAt"] = key.expires_at.isoformat() if key.expires_at else None
        team = key.team
        report["team"] = None if team is None or usage.team is None else {
            "id": team.id, "name": team.name, **usage_figures(team, usage.team, TEAM_LIMIT_NAMES)}
        return report

