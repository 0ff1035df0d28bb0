"""Tests of ziri_images/keys/: the key store, key-file edits, reloading."""
