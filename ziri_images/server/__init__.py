"""The server layer: what runs around the app under gunicorn (wired in gunicorn.conf.py).

``workers`` holds gunicorn's worker classes with their own refusals (a slow or oversized body,
a full server) answered in the JSON contract; ``logs`` redacts and escapes every log line, the
gateway's own and gunicorn's; ``send_deadline`` ends a response its client stopped reading.
"""
