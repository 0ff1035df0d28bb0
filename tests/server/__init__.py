"""Tests of ziri_images/server/: the gateway's and gunicorn's log lines."""
