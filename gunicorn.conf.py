"""gunicorn settings for ziri-images (``gunicorn --config gunicorn.conf.py app:app``)."""

import os

# Heroku and most platforms pass the port in $PORT; 3100 is the local default.
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '3100')}"
# Processes: Heroku sets WEB_CONCURRENCY from the dyno size; two per core is a good start.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Image generation blocks on the provider for up to a minute or more: a thread per in-flight
# request (gthread) keeps many requests open per process; the sync worker would hold one.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# gthread's heartbeat comes from the main thread, so long upstream calls do not trip this.
timeout = 30
# On SIGTERM give in-flight image requests time to finish (Heroku sends SIGKILL after 30 s).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))
# Load the app once in the master: config errors stop start-up, and the ledger is replayed
# once instead of once per worker.
preload_app = True
# Access log to stdout, with the gateway's request id for correlation with the ledger.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms requestId=%({x-request-id}o)s'
errorlog = "-"
# Trust X-Forwarded-* only from the local reverse proxy (nginx on the same host).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
