"""Log records as JSON lines (or plain text), each carrying the request it belongs to.

The request id and the session id live in context variables: the request middleware and
``streaming.telemetry`` set them, and every record logged later in the same request (the same
task, or a thread started from it by ``sync_to_async``) carries them, with no ``extra=`` at the
call site. This module imports nothing from Django, so uvicorn's own loggers can use it too.
"""

from __future__ import annotations

import logging
import re
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


class PlainFormatter(_Redacting):
    """``time level logger [request_id] message key=value...`` for people at a terminal."""

    def __init__(self, *, secrets: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", secrets=secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in _extra_fields(record).items() if v is not None}
        request_id = getattr(record, "request_id", None)
        head, sep, tail = text.partition("\n")
        if request_id:
            fields = {"request_id": request_id, **fields}
        if fields:
            head += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return self._redact(head + sep + tail)


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
