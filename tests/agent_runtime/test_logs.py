import json
import logging
import sys

import pytest
from django.test import Client

from agent_runtime.logs import (
    ContextFilter,
    DisallowedHostFilter,
    JsonFormatter,
    PlainFormatter,
    accepted_request_id,
    bind_request,
    bind_session,
)


def _record(
    message: str = "hello %s", args: tuple = ("world",), **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord("agent_runtime.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    ContextFilter().filter(record)
    return record


def test_json_lines_carry_the_standard_fields_the_context_and_the_extras() -> None:
    bind_request("req-1")
    bind_session("session-9")
    line = JsonFormatter().format(_record(duration_ms=12.5, outcome="complete"))
    assert "\n" not in line
    body = json.loads(line)
    assert body["level"] == "INFO"
    assert body["logger"] == "agent_runtime.test"
    assert body["message"] == "hello world"
    assert body["timestamp"].endswith("+00:00")
    assert body["request_id"] == "req-1"
    assert body["session_id"] == "session-9"
    assert (body["duration_ms"], body["outcome"]) == (12.5, "complete")


def test_a_new_request_forgets_the_previous_session() -> None:
    bind_request("req-1")
    bind_session("session-9")
    bind_request("req-2")
    body = json.loads(JsonFormatter().format(_record()))
    assert body["request_id"] == "req-2"
    assert "session_id" not in body


def test_an_explicit_session_id_wins_over_the_context() -> None:
    bind_request("req-3")
    bind_session("from-context")
    body = json.loads(JsonFormatter().format(_record(session_id="explicit")))
    assert body["session_id"] == "explicit"


def test_exceptions_stay_inside_the_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


@pytest.mark.parametrize("formatter_class", [JsonFormatter, PlainFormatter])
def test_configured_secrets_are_redacted_wherever_they_appear(formatter_class: type) -> None:
    secret = "sk-very-secret-value-123"
    formatter = formatter_class(secrets=[secret, "", "short"])
    try:
        raise RuntimeError(f"header was {secret}")
    except RuntimeError:
        record = _record("key=%s", (secret,), note=f"also {secret}")
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert secret not in text
    assert "[redacted]" in text


def test_short_values_are_not_treated_as_secrets() -> None:
    # They would blank out ordinary words; real secrets are long (agent_runtime.checks).
    assert "a short line" in JsonFormatter(secrets=["short"]).format(_record("a short line", ()))


def test_plain_lines_show_the_request_id_and_extras() -> None:
    bind_request("req-plain")
    line = PlainFormatter().format(_record(status=200))
    assert line.endswith("hello world request_id=req-plain status=200")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("trace:1.2_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        (None, False),
        ("has space", False),
        ('quote"', False),
        ("line\nbreak", False),
    ],
)
def test_incoming_request_ids_are_kept_only_when_plain(sent: str | None, kept: bool) -> None:
    result = accepted_request_id(sent)
    assert (result == sent) is kept
    assert 1 <= len(result) <= 128


FORGED = "2026-12-02 06:00:00,000 INFO agent_runtime.requests request status=200"


def test_plain_lines_escape_control_characters_so_no_client_value_forges_a_line() -> None:
    bind_request("req-crlf")
    path = f"/agent/x\r\n{FORGED}\x1b[2J\u2028"
    line = PlainFormatter().format(_record("got %s", (f"a\r\n{FORGED}\x1b",), path=path, status=4))
    for control in ("\n", "\r", "\x1b", "\u2028"):
        assert control not in line
    assert line.split(" request_id=")[0].endswith(f"got a\\r\\n{FORGED}\\x1b")
    # A value with spaces or "=" is quoted: it cannot pose as more key=value fields either.
    assert f' path="/agent/x\\r\\n{FORGED}\\u001b[2J\\u2028" status=4' in line


def test_plain_tracebacks_are_indented_so_only_records_start_a_line() -> None:
    try:
        raise ValueError(f"bad\n{FORGED}\r\n{FORGED}")
    except ValueError:
        record = _record("failed", ())
        record.exc_info = sys.exc_info()
    first, *rest = PlainFormatter().format(record).split("\n")
    assert "INFO agent_runtime.test failed" in first
    assert rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in rest)
    assert f"  {FORGED}\\r" in rest
    assert rest[-1] == f"  {FORGED}"


def test_disallowed_host_reports_are_configured_as_one_warning_line() -> None:
    filters = logging.getLogger("django.security.DisallowedHost").filters
    assert any(isinstance(f, DisallowedHostFilter) for f in filters)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.django_db
def test_a_bad_host_is_one_warning_line_without_traceback_rate_limited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger = logging.getLogger("django.security.DisallowedHost")
    clock = [1000.0]
    monkeypatch.setattr(logger, "filters", [DisallowedHostFilter(interval=10)])
    monkeypatch.setattr("agent_runtime.logs.time.monotonic", lambda: clock[0])
    captured = Captured()
    logger.addHandler(captured)
    try:
        client = Client()
        for _ in range(3):
            assert client.get("/health", HTTP_HOST="evil.example").status_code == 400
        clock[0] += 10
        assert client.get("/health", HTTP_HOST="evil.example").status_code == 400
    finally:
        logger.removeHandler(captured)
    first, second = captured.records
    assert (first.levelname, first.exc_info, first.exc_text) == ("WARNING", None, None)
    assert "evil.example" in first.getMessage()
    line = JsonFormatter().format(first)
    assert "\n" not in line
    assert "exception" not in json.loads(line)
    assert len(line) < 500
    assert second.suppressed == 2  # type: ignore[attr-defined]
