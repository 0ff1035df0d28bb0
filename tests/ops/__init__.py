"""Tests of ziri_images/ops/: metrics, refusal counts, the dashboard, readiness."""
