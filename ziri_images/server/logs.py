"""Keep secrets and forged lines out of every log: the gateway's and gunicorn's.

Two guarantees, applied to the log *record* before any formatter sees it:

- **Redaction.** Anything shaped like a gateway key (``ziri-<user>-<hex>``) or a provider key
  (``sk-...``), and the value of every provider key configured in providers.json, becomes
  ``[redacted]`` — wherever it starts (after a quote, a tab, a letter: no word boundary is
  needed), and also when a client percent-encoded it (``ziri%2Dalice%2D...``).
- **One record, one line.** Control characters (CR, LF, DEL, C1, Unicode line separators)
  in a message are escaped (``\\x0a``), so no client can start a line of its choice. A
  traceback keeps its lines, each after the first marked ``| `` (an exception's message may
  quote the client too).

``escape`` goes further for a single client-controlled value in a ``key=value`` field (path,
method, address): it escapes spaces, quotes and backslashes too, so a value can never end its
field and forge another one (``path=/x status=200 key=key_admin``). ``escape_quoted`` does the
same for a value between double quotes (spaces kept), as gunicorn's access-log fields are. Both
redact the value before they escape it: the record's filter then redacts the line once more.

``RedactingFilter`` is attached to the gateway's logger (``configure_gateway_logging``) and,
through ``Logger`` (gunicorn's ``logger_class``, made by ``gunicorn_logger``), to gunicorn's error
and access logs. Both are handed the provider keys to redact and the line format as values
(``Config.provider_secrets``, ``Config.log_format``): nothing here reads the environment or a file.
Every handler's format comes from ``log_formatter``: the one place the line format is chosen
for every log at once. ``ZIRI_LOG_FORMAT=json`` makes each line one JSON object (``JsonFormatter``),
for log drains; the record is redacted and escaped before either formatter sees it.
"""

import json
import logging
import re
import sys
import time
from urllib.parse import unquote

from gunicorn.glogging import Logger as GunicornLogger
from gunicorn.glogging import SafeAtoms

from ..redaction import redact

GATEWAY_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(message)s"
# C0 controls, DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# Inside a quoted field, also what would end it: the quote and the escape character (nginx's rule).
_QUOTED_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\"\\\\]")
# In a bare key=value field, the space too.
_FIELD_UNSAFE = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029\"'\\\\]")


def _escaped(match):
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape(value):
    """Return ``value`` as one bare field: keys redacted, no control character, space, quote or backslash left raw."""
    if value is None:
        return "-"
    return _FIELD_UNSAFE.sub(_escaped, redact_line(str(value)))


def escape_quoted(value):
    """Return ``value`` for a field between double quotes: keys redacted, spaces kept, quotes and controls escaped."""
    return _QUOTED_UNSAFE.sub(_escaped, redact_line(str(value)))


def escape_controls(text):
    """Return ``text`` on one line: control characters escaped, spaces and quotes kept."""
    return _CONTROL.sub(_escaped, text)


def redact_line(text, secrets=()):
    """Return ``text`` without key-shaped strings or ``secrets``, also when they were percent-encoded."""
    text = redact(text, secrets)
    if "%" in text:
        decoded = unquote(text)
        cleaned = redact(decoded, secrets)
        if cleaned != decoded:
            # Only a line that hid a key behind %-escapes is logged decoded (and redacted).
            text = cleaned
    return text


class RedactingFilter(logging.Filter):
    """Rewrite each record in place: secrets redacted, control characters escaped, on one line."""

    def __init__(self, secrets=()):
        super().__init__()
        self.secrets = tuple(secrets)
        self._traceback_formatter = logging.Formatter()

    def filter(self, record):
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not raise into the caller
            message = f"{record.msg} {record.args!r}"
        record.msg = escape_controls(redact_line(message, self.secrets))
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._continuation(record.exc_text)
        if record.stack_info:
            record.stack_info = self._continuation(record.stack_info)
        return True

    def _continuation(self, text):
        """Return a traceback redacted, each of its lines after the first marked as a continuation.

        A traceback keeps its lines, but an exception message quoting a client's ``\\n`` can then
        only start a line with ``| ``, never one that passes for a record.
        """
        lines = redact_line(text, self.secrets).split("\n")
        return "\n| ".join(_CONTROL_BUT_NEWLINE.sub(_escaped, line) for line in lines)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line: time, level, logger, pid, message (and exception)."""

    converter = time.gmtime

    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # ensure_ascii: line separators and every other control character leave as \uXXXX escapes.
        return json.dumps(entry, ensure_ascii=True)


def log_formatter(fmt, datefmt=None, line_format="text"):
    """Return the formatter of every log handler (the one slot for the line format, "text" or "json")."""
    if line_format == "json":
        return JsonFormatter()
    return logging.Formatter(fmt, datefmt)


def configure_gateway_logging(level, secrets=(), line_format="text"):
    """Redact and escape every line of the gateway's logger; log to stderr unless the host configured logging."""
    logger = logging.getLogger("ziri_images")
    logger.setLevel(level)
    for old in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
        logger.removeFilter(old)
    logger.addFilter(RedactingFilter(secrets))
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.name = "ziri_images"
        logger.addHandler(handler)
    for handler in logger.handlers:
        if handler.name == "ziri_images":  # ours: the latest app's format applies
            handler.setFormatter(log_formatter(GATEWAY_FORMAT, line_format=line_format))
    return logger


class EscapedAtoms(SafeAtoms):
    """gunicorn's access-log fields, each escaped as nginx does: a path or header cannot end its field or line.

    A field is escaped when the format reads it, not before: gunicorn offers every request and
    response header as a field, and a line uses a handful of them.
    """

    def __init__(self, atoms):
        dict.__init__(self, atoms)  # SafeAtoms' own quote escaping would be escaped again here

    def __getitem__(self, name):
        value = super().__getitem__(name)
        return "-" if value is None else escape_quoted(value) if isinstance(value, str) else value


class Logger(GunicornLogger):
    """gunicorn's logger (``logger_class``) with every error-log and access-log line redacted and escaped."""

    atoms_wrapper_class = EscapedAtoms
    secrets = ()  # the provider keys to redact besides key-shaped strings (``gunicorn_logger``)
    line_format = "text"

    def setup(self, cfg):
        super().setup(cfg)
        redacting = RedactingFilter(self.secrets)
        for log in (self.error_log, self.access_log):
            for old in [f for f in log.filters if isinstance(f, RedactingFilter)]:
                log.removeFilter(old)
            log.addFilter(redacting)

    def _set_handler(self, log, output, fmt, stream=None):
        if log is self.access_log:
            fmt = log_formatter(self.access_fmt, line_format=self.line_format)
        else:
            fmt = log_formatter(self.error_fmt, self.datefmt, self.line_format)
        super()._set_handler(log, output, fmt, stream)


def gunicorn_logger(secrets, line_format):
    """Return gunicorn's ``logger_class``: ``Logger`` redacting ``secrets``, its lines in ``line_format``."""
    return type("Logger", (Logger,), {"secrets": tuple(secrets), "line_format": line_format})
