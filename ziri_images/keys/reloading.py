"""Config files that apply without a restart: keys.json and pricing.json.

``ReloadingFile(path, load, what)`` holds what ``load(path)`` returned and loads the file again
when it changes on disk (its inode, modification time or size). The guarantee callers rely on:
once a file has been replaced (``keys create`` has returned, an operator has saved an edit),
every later ``current()`` returns what the new file holds, on every worker class.

That is why the file's signature is recorded only *after* the new content is in place: a
caller that sees the new signature while another is still loading waits for that load instead
of carrying on with the old content. A broken edit (one that does not load) keeps the previous
content in service; it is logged once, naming the file and the problem, and tried again when
the file changes once more. A broken file at start-up raises ConfigError (start-up stops).

Every reload sends ``reloaded`` (sender: the ReloadingFile, ``ok``: whether it loaded), for metrics.
"""

import logging
import os
import threading

from blinker import signal

from ..errors import ConfigError

log = logging.getLogger("ziri_images")
reloaded = signal("ziri-images-config-reloaded")


def file_signature(path):
    """Return what identifies one version of ``path`` on disk, or None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ReloadingFile:
    """The content loaded from one config file, kept current with the file on disk."""

    def __init__(self, path, load, what):
        self.path = path
        self.what = what  # e.g. "key file", for the log
        self._load = load
        self._lock = threading.Lock()
        signature = file_signature(path)
        self._content = load(path)
        self._signature = signature

    def current(self):
        """Return the content of the file as it is now on disk (or the last version that loaded)."""
        signature = file_signature(self.path)
        if signature is not None and signature != self._signature:
            with self._lock:
                # Another caller may have loaded this very version while we waited.
                if signature != self._signature:
                    self._reload(signature)
        return self._content

    def _reload(self, signature):
        try:
            content = self._load(self.path)
        except ConfigError as error:
            log.error("%s change ignored, keeping the previous version: %s", self.what, error)
            reloaded.send(self, ok=False)
        else:
            self._content = content
            log.info("%s reloaded: %s", self.what, self.path)
            reloaded.send(self, ok=True)
        # Recorded last: until now, every caller that saw the new signature waited on the lock.
        self._signature = signature
