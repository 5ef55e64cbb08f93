"""Reads of sessions and messages."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson

from sessions.models import Message, Session
from sessions.records import StoredMessage

_HISTORY_FIELDS = ("seq", "role", "content", "tool_calls", "tool_call_id")


def estimate_tokens(message: dict[str, Any]) -> int:
    """A cheap, model-agnostic token estimate: about four characters a token."""
    size = len(message.get("content") or "")
    if message.get("tool_calls"):
        size += len(orjson.dumps(message["tool_calls"]))
    return size // 4 + 4


def _upstream_message(row: dict[str, Any]) -> dict[str, Any]:
    role = row["role"]
    if role == Message.Role.TOOL:
        return {"role": "tool", "tool_call_id": row["tool_call_id"], "content": row["content"]}
    if role == Message.Role.ASSISTANT and row["tool_calls"]:
        # "" rather than null: llama.cpp's server rejects a null content.
        return {"role": "assistant", "content": row["content"], "tool_calls": row["tool_calls"]}
    return {"role": role, "content": row["content"]}


def message_history_for_upstream(
    *, session_pk: int, max_messages: int, max_tokens: int, system_prompt: str = ""
) -> list[dict[str, Any]]:
    """The history to send upstream, newest kept first, within the message and token budgets.

    Reads at most ``max_messages`` rows (never the whole session). Messages are grouped into
    units that must travel together (an assistant tool call with its results); the oldest units
    go first. The newest user message and the system prompt are always kept, and the history
    sent starts with a user message, which every chat template accepts.
    """
    rows = list(
        Message.objects.filter(session_id=session_pk)
        .order_by("-seq")
        .values(*_HISTORY_FIELDS)[:max_messages]
    )
    rows.reverse()

    # Chronological units; a tool result whose call fell outside the window is dropped.
    units: list[list[dict[str, Any]]] = []
    open_calls: set[str] = set()
    for row in rows:
        message = _upstream_message(row)
        if row["role"] == Message.Role.ASSISTANT and not row["content"] and not row["tool_calls"]:
            continue  # a turn that failed or was stopped before its first token
        if row["role"] == Message.Role.TOOL:
            if row["tool_call_id"] in open_calls:
                units[-1].append(message)
                open_calls.discard(row["tool_call_id"])
            continue
        units.append([message])
        open_calls = {call["id"] for call in row["tool_calls"] or ()}

    newest_user = max(
        (i for i, unit in enumerate(units) if unit[0]["role"] == "user"), default=None
    )
    budget = max_tokens - (estimate_tokens({"content": system_prompt}) if system_prompt else 0)
    kept: list[int] = []
    used = 0
    for i in range(len(units) - 1, -1, -1):
        cost = sum(estimate_tokens(m) for m in units[i])
        if used + cost > budget and i != newest_user:
            if newest_user is not None and i > newest_user:
                continue  # a unit after the newest user message that does not fit
            break
        kept.append(i)
        used += cost
    kept.reverse()
    # Start at a user message.
    while kept and units[kept[0]][0]["role"] != "user":
        kept.pop(0)

    history: list[dict[str, Any]] = (
        [{"role": "system", "content": system_prompt}] if system_prompt else []
    )
    for i in kept:
        history.extend(units[i])
    return history


def message_turn_replay(*, session_pk: int, turn_id: Any, after_seq: int) -> list[StoredMessage]:
    """The messages a finished turn stored after its user message, in order."""
    return [
        StoredMessage(
            seq=m.seq,
            role=m.role,
            content=m.content,
            status=m.status,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
            tool_name=m.tool_name,
            finish_reason=m.finish_reason,
            error_code=m.error_code,
            usage=_usage(m),
        )
        for m in Message.objects.filter(
            session_id=session_pk, turn_id=turn_id, seq__gt=after_seq
        ).order_by("seq")
    ]


def _usage(message: Message) -> dict[str, int]:
    usage = {
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "total_tokens": message.total_tokens,
    }
    return {k: v for k, v in usage.items() if v is not None}


def turn_cancels_requested(*, turn_ids: Sequence[UUID]) -> list[UUID]:
    """Which of these running turns someone asked to cancel."""
    return list(
        Session.objects.filter(cancel_turn_id__in=turn_ids).values_list("cancel_turn_id", flat=True)
    )
