"""Tests of ziri_images/catalog/: prices, model rules, sizes, tokens, the model list."""
