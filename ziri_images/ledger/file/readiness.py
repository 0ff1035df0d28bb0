"""The file store's readiness: whether the ledger's file and disk can take a write right now.

Checked by ``/ready`` on every probe, so it writes nothing to the ledger itself.
"""

import logging
import os
import tempfile

log = logging.getLogger("ziri_images")

# Below this much free space a ledger write (and so every paid request) is about to fail.
MIN_FREE_BYTES = 1024 * 1024


def ledger_readiness(path):
    """Return (ok, reason): can a record be appended to the ledger at ``path`` right now?"""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        # A real write, not os.access: root passes os.access even on a read-only mount.
        with tempfile.TemporaryFile(dir=directory):
            pass
        # No O_CREAT: the file was created at start-up, so a missing one was moved or deleted.
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        disk = os.statvfs(directory)
    except OSError as error:
        log.warning("readiness: ledger %s is not writable: %s", path, error.strerror or error)
        return False, "the ledger is not writable"
    if disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES:
        log.warning("readiness: ledger %s: less than %d bytes free", path, MIN_FREE_BYTES)
        return False, "the ledger's disk is full"
    return True, "ok"
