"""The benchmark's scratch database: prior messages bulk-inserted, and SQL counted per turn.

Runs Django in the orchestrator process against the same scratch database the server uses.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from bench.procs import runtime_env


def setup_django(db_url: str) -> None:
    os.environ.update(runtime_env(db_url, "http://127.0.0.1:1"))
    import django

    django.setup()


def prior_content(seq: int) -> str:
    """Deterministic text of about 120 characters, so histories have a realistic size."""
    role = "user" if seq % 2 else "assistant"
    return f"{role} message {seq}: " + "the quick brown fox jumps over the lazy dog. " * 2


def seed_sessions(prefix: str, count: int, prior: int) -> list[str]:
    """``count`` sessions with ``prior`` alternating user/assistant messages each."""
    from django.db import transaction
    from django.utils import timezone

    from sessions.models import Message, Session

    now = timezone.now()
    ids = [f"{prefix}-{i}" for i in range(count)]
    with transaction.atomic():
        sessions = Session.objects.bulk_create(
            [Session(session_id=sid, last_activity_at=now, last_seq=prior) for sid in ids]
        )
        if prior and not all(s.pk for s in sessions):
            sessions = list(Session.objects.filter(session_id__in=ids))
        rows = [
            Message(
                session=session,
                seq=seq,
                role=Message.Role.USER if seq % 2 else Message.Role.ASSISTANT,
                content=prior_content(seq),
                status=Message.Status.COMPLETE,
            )
            for session in sessions
            for seq in range(1, prior + 1)
        ]
        Message.objects.bulk_create(rows, batch_size=2000)
    return ids


def upstream_history(prior: int, content: str) -> list[dict[str, Any]]:
    """What the runtime sends upstream for a session seeded with ``prior`` messages.

    The same rule as ``sessions.history.message_history_for_upstream`` for plain text
    messages well under the token budget: the newest ``CONTEXT_MAX_MESSAGES`` rows, starting
    at a user message. ``count_queries`` checks this
    against the real selector on every run.
    """
    from django.conf import settings

    total = prior + 1
    first = max(1, total - settings.CONTEXT_MAX_MESSAGES + 1)
    if first <= prior and first % 2 == 0:  # starts with an assistant message: dropped
        first += 1
    history = [
        {"role": "user" if seq % 2 else "assistant", "content": prior_content(seq)}
        for seq in range(first, prior + 1)
    ]
    history.append({"role": "user", "content": content})
    return history


def count_queries() -> dict[str, Any]:
    """SQL statements per turn, by running the services a turn runs (``turn_open`` and
    ``turn_record``) under ``CaptureQueriesContext``, for several session shapes."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sessions import services
    from sessions.models import Message
    from sessions.records import NewMessage

    def one_turn(
        session_id: str, message_id: str | None = None, prior: int | None = None
    ) -> dict[str, Any]:
        turn_id = uuid.uuid4()
        with CaptureQueriesContext(connection) as opened:
            start = services.turn_open(
                session_id=session_id,
                turn_id=turn_id,
                content="How many queries?",
                client_message_id=message_id,
            )
        if prior is not None and start.history != upstream_history(prior, "How many queries?"):
            # The direct baseline must send upstream exactly what the runtime sends.
            raise AssertionError(f"bench.seed.upstream_history is out of date ({prior} prior)")
        answer = NewMessage(
            role=Message.Role.ASSISTANT,
            content="w0 ",
            model="dev-llm",
            usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            finish_reason="stop",
        )
        with CaptureQueriesContext(connection) as recorded:
            services.turn_record(
                session_pk=start.session_pk, turn_id=turn_id, messages=[answer], finished=True
            )
        statements = opened.captured_queries + recorded.captured_queries
        control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
        return {
            "turn_open": len(opened),
            "turn_record": len(recorded),
            "total": len(opened) + len(recorded),
            # Without transaction control (which SQLite's backend logs and PostgreSQL's does not).
            "queries": sum(1 for q in statements if not q["sql"].startswith(control)),
            "history_len": len(start.history),
            "sql": [q["sql"][:160] for q in opened.captured_queries + recorded.captured_queries],
        }

    prefix = f"q-{uuid.uuid4().hex[:8]}"
    new_session = one_turn(f"{prefix}-new")
    cases = {"new session": new_session}
    for prior in (10, 20, 10_000):
        (sid,) = seed_sessions(f"{prefix}-{prior}", 1, prior)
        cases[f"{prior} prior messages"] = one_turn(sid, prior=prior)
    (sid,) = seed_sessions(f"{prefix}-mid", 1, 20)
    cases["20 prior, with message_id"] = one_turn(sid, message_id="m-1")
    return cases
