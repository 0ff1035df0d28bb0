"""gunicorn settings for ziri-images (``gunicorn --config gunicorn.conf.py app:app``).

gunicorn's own settings (HOST, PORT, WEB_CONCURRENCY, GUNICORN_*, FORWARDED_ALLOW_IPS) are read
here, in gunicorn's config file; the gateway's (ZIRI_*, providers.json) come from its one ``Config``.
"""

import os
import shutil
import tempfile

# Heroku and most platforms pass the port in $PORT; 3100 is the local default.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '3100')}"
# Image generation blocks on the provider for a minute or more: gevent holds each waiting request
# as a greenlet of a few KB, so one process keeps ~1,000 open (gthread: workers x threads, sync: 1).
# Pick the class with GUNICORN_WORKER_CLASS (gthread also works), not -k: the patch below follows it.
worker_class_name = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
if worker_class_name == "gevent" and __name__ == "__config__":
    # preload_app (below) imports the app in the master before the gevent worker would patch: patch
    # now, so requests' sockets, threading.local and the ledger's and key store's locks are gevent's
    # from the start. gunicorn reads this file as __config__; a test or tool importing it patches nothing.
    from gevent import monkey

    monkey.patch_all()

if __name__ == "__config__":
    # Prometheus metrics shared by every worker: each process writes its values to files in this
    # directory (read by /metrics), which must exist and be empty before prometheus-client is imported.
    # Set PROMETHEUS_MULTIPROC_DIR to choose it; by default a fresh temporary directory per start.
    metrics_dir_chosen = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    if not metrics_dir_chosen:  # mkdtemp only when needed: as setdefault's argument it left one behind per start
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ziri-metrics-")
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(metrics_dir, ignore_errors=True)  # a previous run's values are not this run's
    os.makedirs(metrics_dir, exist_ok=True)

from ziri_images.config import Config  # noqa: E402  (imported after gevent's patches)
from ziri_images.errors import ConfigError  # noqa: E402
from ziri_images.server.logs import gunicorn_logger  # noqa: E402
from ziri_images.server.send_deadline import SendDeadline  # noqa: E402
from ziri_images.server.send_deadline import send_grace_seconds  # noqa: E402
from ziri_images.server.workers import BodyDeadline  # noqa: E402
from ziri_images.server.workers import json_worker_class  # noqa: E402

# Processes: Heroku sets WEB_CONCURRENCY from the dyno size; gevent needs one per core.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Requests one gevent worker holds at once; further connections wait in the listen backlog.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# Threads per process, used only by the gthread worker (GUNICORN_WORKER_CLASS=gthread).
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
try:
    # The gateway's settings: the log's format and the provider keys it redacts, the body timeout below.
    gateway_config = Config.from_environ()
    # gunicorn's class with its own refusals (bad request line, headers over 8 KB...) answered as the JSON contract.
    worker_class = json_worker_class(worker_class_name, threads)
except ConfigError as error:
    raise SystemExit(f"ziri-images: configuration error: {error}")
# The heartbeat runs in its own greenlet (gthread: the main thread), so long upstream calls never trip this.
timeout = 30
# On SIGTERM give in-flight image requests time to finish (Heroku sends SIGKILL after 30 s).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
# Load the app once in the master: config errors stop start-up, and the ledger is replayed
# once instead of once per worker.
preload_app = True
# Access log to stdout, with the gateway's request id for correlation with the ledger.
accesslog = "-"
# The path without its query string: a key pasted into a URL (?api_key=...) must not reach the log.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms requestId=%({x-request-id}o)s'
errorlog = "-"
# Every error-log and access-log line redacted (keys) and escaped (no forged lines or fields).
logger_class = gunicorn_logger(gateway_config.provider_secrets, gateway_config.log_format)
# No runtime control socket: every instance on a host would share its one default path, its asyncio
# thread in the master would be a greenlet under gevent's patches, and signals do the same job.
control_socket_disable = True
# Trust X-Forwarded-* only from the local reverse proxy (nginx on the same host).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    # Each worker posts the budget alerts pending in the store (a restart resumes them), off the request path.
    from ziri_images.gateway import start_alert_sender

    start_alert_sender(worker.wsgi)
    # Bound the arrival of every request body (see body_timeout above), and the sending of every response:
    # a client that stops reading has ZIRI_SEND_GRACE_SECONDS (after the provider call's deadline, if any).
    # A request body has ZIRI_BODY_TIMEOUT_SECONDS to arrive after its headers: then 408, so stalled uploads free
    # their slot.
    bounded = BodyDeadline(worker.wsgi, gateway_config.body_timeout_seconds)
    worker.wsgi = SendDeadline(bounded, send_grace_seconds(gateway_config))


def child_exit(server, worker):
    # A dead worker's live gauges (reservations open) leave the sum; its counters stay counted.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    # The temporary metrics directory goes with the server (one the operator chose stays).
    if __name__ == "__config__" and not metrics_dir_chosen:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_exit(server, worker):
    # The refusals this worker counted since its last write (at most 10 s of them) are written as it exits.
    from ziri_images.ops.refusals import flush_refusals

    flush_refusals(worker.app.wsgi())
