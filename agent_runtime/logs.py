"""Log records as JSON lines (or plain text), each carrying the request it belongs to.

The request id and the session id live in context variables: the request middleware and
``streaming.telemetry`` set them, and every record logged later in the same request (the same
task, or a thread started from it by ``sync_to_async``) carries them, with no ``extra=`` at the
call site. This module imports nothing from Django, so uvicorn's own loggers can use it too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)

# An incoming X-Request-ID is kept only when it is short and plain; anything else is replaced,
# so a client cannot forge log structure or flood a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "request_id", "session_id", "color_message"}
)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The client's ``X-Request-ID`` when it is acceptable, otherwise a fresh one."""
    if value and _REQUEST_ID.match(value):
        return value
    return new_request_id()


def bind_request(request_id: str) -> None:
    """Start a request's log context (the task's context: it ends with the request's task)."""
    request_id_var.set(request_id)
    session_id_var.set(None)


def bind_session(session_id: str) -> None:
    session_id_var.set(session_id)


class ContextFilter(logging.Filter):
    """Copies the request and session ids from the context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "session_id") or record.session_id is None:
            record.session_id = session_id_var.get()
        return True


class DisallowedHostFilter(logging.Filter):
    """Django's ``DisallowedHost`` report as one WARNING line, at most one per ``interval``.

    Django logs every request with a ``Host`` outside ``ALLOWED_HOSTS`` at ERROR with a
    traceback: kilobytes per request that any client without a key can send. The line kept
    says how many were dropped since the previous one (``suppressed``).
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._next_at = float("-inf")
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return False
        self._next_at = now + self.interval
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        # The request object: its id is on the line already (and in the request log).
        record.__dict__.pop("request", None)
        if self._suppressed:
            record.suppressed, self._suppressed = self._suppressed, 0
        return True


class _Redacting(logging.Formatter):
    """Removes configured secrets from the formatted text, whatever logged them."""

    def __init__(self, *args: Any, secrets: list[str] | tuple[str, ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Short values would blank out ordinary words; real secrets are long (checks.py).
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


# Characters that could end a log line, or move a terminal's cursor: C0, DEL, C1, and the
# Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Field values with these are quoted, so that a value cannot pose as another key=value.
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def escape_controls(text: str) -> str:
    """``text`` with each control character written as its Python escape (``\\r``, ``\\x1b``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _plain_value(value: Any) -> str:
    text = str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return orjson.dumps(text).decode()
    return text


class PlainFormatter(_Redacting):
    """``time level logger message request_id=... key=value...`` for people at a terminal.

    A record is one line; a traceback follows it on lines indented by two spaces. Control
    characters are escaped, so no value a client sent (a path with ``%0d%0a``) can start a
    line that looks like another record.
    """

    def __init__(self, *, secrets: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", secrets=secrets)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        head = self.formatMessage(record)
        fields = {k: v for k, v in _extra_fields(record).items() if v is not None}
        request_id = getattr(record, "request_id", None)
        if request_id:
            fields = {"request_id": request_id, **fields}
        if fields:
            head += " " + " ".join(f"{k}={_plain_value(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        tail = [record.exc_text] if record.exc_text else []
        if record.stack_info:
            tail.append(self.formatStack(record.stack_info))
        lines = [escape_controls(head)]
        lines += ["  " + escape_controls(line) for text in tail for line in text.split("\n")]
        return self._redact("\n".join(lines))


class JsonFormatter(_Redacting):
    """One JSON object per line: timestamp, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "session_id"):
            value = getattr(record, key, None)
            if value is not None:
                body[key] = value
        body.update(_extra_fields(record))
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exception"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        line = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return self._redact(line)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and k[0] != "_"}
