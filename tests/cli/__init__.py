"""Tests of ziri_images/cli/: the ziri-images command line."""
