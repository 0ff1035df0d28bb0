"""Tests of ziri_images/providers/: what is sent to each provider and how its answers map."""
