"""Tests of ziri_images/dev/: the local stub of the providers."""
