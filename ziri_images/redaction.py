"""Remove secrets from text: the provider keys given, and anything shaped like an API key.

A leaf: the providers redact what they send back and the logs redact every line with the same
pattern, and neither has to load the other to do it.
"""

import re

# A key wherever it starts: no word boundary, which a log's escaping (a quote before a key becomes
# ``\x22``) or a letter before it would defeat. A word that merely looks like one ("task-specific")
# is redacted too: a false positive costs a word, a miss would leak a key.
_SECRET_PATTERN = re.compile(r"(?:sk|xai)-[A-Za-z0-9_*\-]{6,}|ziri-[A-Za-z0-9_.-]+-[0-9a-f]{16,}")
REDACTED = "[redacted]"


def redact(text, secrets=()):
    """Return ``text`` with the given secrets and anything shaped like an API key removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _SECRET_PATTERN.sub(REDACTED, text)
