"""The ``LOGGING`` setting: one console handler, in JSON or plain lines, secrets removed."""

from typing import Any


def logging_config(*, log_format: str, level: str, secrets: list[str]) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "agent_runtime.logs.ContextFilter"},
            "disallowed_host": {"()": "agent_runtime.logs.DisallowedHostFilter"},
        },
        "formatters": {
            # Both remove these values from every line, whatever logged them.
            "json": {
                "()": "agent_runtime.logs.JsonFormatter",
                "secrets": secrets,
            },
            "plain": {
                "()": "agent_runtime.logs.PlainFormatter",
                "secrets": secrets,
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format if log_format in ("json", "plain") else "json",
                "filters": ["context"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            # 4xx answers are in our own request log already; keep Django's for 5xx only.
            "django.request": {"level": "ERROR"},
            # A Host outside ALLOWED_HOSTS: one WARNING line (at most one per 10 s), no traceback.
            "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
            # uvicorn's own lines in the same format (it configured them before Django started).
            "uvicorn": {"handlers": ["console"], "level": level, "propagate": False},
            # One line per request is the runtime's own (agent_runtime.requests). uvicorn writes
            # its access line whenever this logger has a handler, whatever --no-access-log said:
            # so none, and no propagation.
            "uvicorn.access": {"handlers": [], "propagate": False},
            # httpx logs every upstream request at INFO; that is noise at our request rate.
            "httpx": {"level": "WARNING"},
        },
    }
