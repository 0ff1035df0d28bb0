"""The gateway keys: who may call and within which limits.

It owns keys.json: ``store.KeyStore`` reads it (hashed keys, statuses, limits, allow-lists),
``keyfile`` edits it for the command line under a lock, and ``reloading.ReloadingFile`` notices
when it (or another watched file) changed on disk and reloads it.
"""
