"""Prometheus metrics on ``/metrics``, shared by every gunicorn worker (prometheus-client's multiprocess mode).

What is measured, and where it is taken (the request path itself gains no line):

- requests by route, status and code, and refusals by code: ``after_request``;
- provider latency, spend (USD) and images by provider and model, reservations open and the
  store's write latency (reserve and settle, each one commit): ``Metrics.reserved`` and
  ``Metrics.settled``, an observer of the limiter (``billing.Limiter.observe``);
- key-file and catalog reloads and their failures: ``keys.reloading.reloaded`` (a blinker signal);
- budget alert deliveries by result (delivered, retry, failed): ``Metrics.alert_delivery``, an
  observer of the alert sender (``alerts.sender.AlertSender.observe``).

No key id, user or prompt is a label (cardinality, privacy) unless ``ZIRI_METRICS_KEY_LABELS``
is on: then refusals and spend also carry ``key``. ``/metrics`` exists only when
``ZIRI_METRICS_TOKEN`` is set, and answers only ``Authorization: Bearer <token>`` (compared in
constant time); anything else gets the contract's JSON error.

Under gunicorn, ``gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before prometheus-client is imported, and marks each dead worker's files (``child_exit``);
``/metrics`` then sums every worker's files. Without it (tests, ``ziri-images dev``) the app's
own registry is served.
"""

import hmac

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import g
from flask import request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess

from ..errors import ApiError
from ..keys.reloading import reloaded

bp = Blueprint("metrics", __name__)

#: Answers that refuse a request before it reaches a provider (the ones an operator alerts on).
REFUSAL_STATUSES = frozenset({402, 403, 409, 429})
REFUSAL_CODES = frozenset({"QUEUE_FULL", "UPLOAD_CAPACITY_FULL"})
# Provider calls take seconds to minutes; store commits take microseconds to tens of milliseconds.
PROVIDER_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 90, 120, 180, 300)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def is_refusal(status, code):
    """Return True if an answer with ``status`` and ``code`` refused the request (limit, access, queue)."""
    return status in REFUSAL_STATUSES or code in REFUSAL_CODES


class Metrics:
    """The gateway's metric families, registered in one registry per app."""

    def __init__(self, key_labels=False, multiprocess_dir=""):
        self.registry = CollectorRegistry()
        self.key_labels = key_labels
        self.multiprocess_dir = multiprocess_dir  # PROMETHEUS_MULTIPROC_DIR: every worker's values are there
        keyed = ("key",) if key_labels else ()
        registry = self.registry
        self.requests = Counter("ziri_requests", "HTTP requests answered, by route, status and error code.",
                                ("route", "status", "code"), registry=registry)
        self.refusals = Counter("ziri_refusals", "Requests refused before the provider (limits, access, queue).",
                                ("code", *keyed), registry=registry)
        self.provider_latency = Histogram("ziri_provider_latency_seconds", "Provider call time, reservation to charge.",
                                          ("provider", "model"), buckets=PROVIDER_BUCKETS, registry=registry)
        self.spend = Counter("ziri_spend_usd", "Spend charged, in USD.", ("provider", "model", *keyed),
                             registry=registry)
        self.images = Counter("ziri_images", "Images charged.", ("provider", "model"), registry=registry)
        self.reservations_open = Gauge("ziri_reservations_open", "Reservations open (requests at a provider).",
                                       registry=registry, multiprocess_mode="livesum")
        self.commit_latency = Histogram("ziri_ledger_commit_seconds", "Time to write one reservation or charge.",
                                        ("operation",), buckets=COMMIT_BUCKETS, registry=registry)
        self.reloads = Counter("ziri_config_reloads", "Key-file and catalog reloads, by file and result.",
                               ("file", "result"), registry=registry)
        self.alert_deliveries = Counter("ziri_alert_deliveries", "Budget alert webhook attempts, by result "
                                        "(delivered, retry, failed).", ("result",), registry=registry)
        self._children = {}  # (family, label values) -> the labelled child, made on first use

    def child(self, family, *labels):
        """Return ``family.labels(*labels)``, looked up once: labels() takes a lock and builds a key each call."""
        child = self._children.get((family, labels))
        if child is None:
            child = self._children[(family, labels)] = family.labels(*labels)
        return child

    def count_request(self, route, status, code, key_id):
        self.child(self.requests, route, str(status), code).inc()
        if is_refusal(status, code):
            self.child(self.refusals, code, *self._key(key_id)).inc()

    def count_charge(self, record):
        provider, model = record.get("provider") or "-", record.get("model") or "-"
        if record.get("latencyMs") is not None:
            self.child(self.provider_latency, provider, model).observe(record["latencyMs"] / 1000)
        self.child(self.spend, provider, model, *self._key(record.get("keyId"))).inc(max(record.get("cost") or 0, 0))
        self.child(self.images, provider, model).inc(record.get("imagesReturned") or 0)

    def reserved(self, seconds):
        """Count a reservation its store wrote in ``seconds`` (the limiter's observer: ``Limiter.observe``)."""
        self.child(self.commit_latency, "reserve").observe(seconds)
        self.reservations_open.inc()

    def settled(self, record, seconds):
        """Count a request settled: its charge ``record``, written in ``seconds`` (None: the store refused it)."""
        self.reservations_open.dec()
        if seconds is not None:
            self.child(self.commit_latency, "settle").observe(seconds)
            self.count_charge(record)

    def alert_delivery(self, result):
        """Count one webhook attempt of a budget alert (the alert sender's observer)."""
        self.child(self.alert_deliveries, result).inc()

    def _key(self, key_id):
        return (key_id or "-",) if self.key_labels else ()

    def exposition(self):
        """Return the text exposition: every worker's values under gunicorn, this app's otherwise."""
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def current_metrics():
    return current_app.extensions["ziri_images_metrics"]


def count_response(response):
    """Count every answer (``after_request``): its route template, never its path (bounded labels)."""
    rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    key = g.get("api_key")
    current_metrics().count_request(rule, response.status_code, g.get("error_code", "-"),
                                    key.id if key is not None else None)
    return response


@bp.get("/metrics")
def serve_metrics():
    token = current_app.config.get("METRICS_TOKEN") or ""
    if not token:
        raise ApiError(404, "NOT_FOUND", "No such endpoint.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "METRICS_TOKEN_INVALID", "Send the metrics token as 'Authorization: Bearer <token>'.",
                       headers={"WWW-Authenticate": "Bearer"})
    return Response(current_metrics().exposition(), mimetype=CONTENT_TYPE_LATEST)


def init_app(app):
    """Register the metrics, observe the limiter's commits, count answers and reloads; serve ``/metrics``."""
    metrics = Metrics(key_labels=app.config.get("METRICS_KEY_LABELS", False),
                      multiprocess_dir=app.config.get("PROMETHEUS_MULTIPROC_DIR", ""))
    app.extensions["ziri_images_metrics"] = metrics
    app.extensions["ziri_images"].limiter.observe(metrics)
    if app.extensions["ziri_images"].alerts is not None:
        app.extensions["ziri_images"].alerts.observe(metrics)
    app.after_request(count_response)

    watched = {str(app.config["KEYS_FILE"]), str(app.config["PRICING_FILE"])}

    def count_reload(sender, ok, **_):
        if str(sender.path) in watched:  # this app's files only: the signal is process-wide
            metrics.reloads.labels(sender.what, "ok" if ok else "failed").inc()

    # Held by the metrics (blinker keeps a weak reference): it lives as long as the app.
    metrics.count_reload = count_reload
    reloaded.connect(count_reload)
    app.register_blueprint(bp)
