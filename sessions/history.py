"""The history sent upstream: the newest messages within the message and token budgets."""

from typing import Any

import orjson

from sessions import statements
from sessions.models import Message


def estimate_tokens(message: dict[str, Any]) -> int:
    """A cheap, model-agnostic token estimate: about four characters a token."""
    size = len(message.get("content") or "")
    if message.get("tool_calls"):
        size += len(orjson.dumps(message["tool_calls"]))
    return size // 4 + 4


_USER, _ASSISTANT, _TOOL = (
    Message.Role.USER.value,
    Message.Role.ASSISTANT.value,
    Message.Role.TOOL.value,
)


def message_history_for_upstream(
    *, session_pk: int, max_messages: int, max_tokens: int, system_prompt: str = ""
) -> list[dict[str, Any]]:
    """The history to send upstream, newest kept first, within the message and token budgets.

    Reads at most ``max_messages`` rows (never the whole session). Messages are grouped into
    units that must travel together (an assistant tool call with its results); the oldest units
    go first. The newest user message and the system prompt are always kept, and the history
    sent starts with a user message, which every chat template accepts.
    """
    rows = statements.history_rows(session_pk=session_pk, limit=max_messages)
    if rows and not any(row["role"] == _USER for row in rows):
        # A long tool loop pushed the turn's user message out of the window: keep it, in
        # place of the oldest row, so the model still sees what it was asked.
        user = (
            Message.objects.filter(session_id=session_pk, role=_USER)
            .order_by("-seq")
            .values("seq", "role", "content", "tool_calls", "tool_call_id")
            .first()
        )
        if user is not None:
            rows = [user, *rows[max(1, len(rows) - max_messages + 1) :]]

    # Chronological units with their estimated tokens (estimate_tokens, inlined: this runs
    # for up to max_messages rows every turn); a tool result whose call fell outside the
    # window is dropped.
    units: list[list[dict[str, Any]]] = []
    costs: list[int] = []
    newest_user: int | None = None
    open_calls: set[str] = set()
    for row in rows:
        role, content, calls = row["role"], row["content"] or "", row["tool_calls"]
        if role == _TOOL:
            call_id = row["tool_call_id"]
            if call_id in open_calls:
                units[-1].append({"role": "tool", "tool_call_id": call_id, "content": content})
                costs[-1] += len(content) // 4 + 4
                open_calls.discard(call_id)
            continue
        if role == _ASSISTANT and calls:
            # "" rather than null: llama.cpp's server rejects a null content.
            units.append([{"role": "assistant", "content": content, "tool_calls": calls}])
            costs.append((len(content) + len(orjson.dumps(calls))) // 4 + 4)
        elif role == _ASSISTANT and not content:
            continue  # a turn that failed or was stopped before its first token
        else:
            units.append([{"role": role, "content": content}])
            costs.append(len(content) // 4 + 4)
            if role == _USER:
                newest_user = len(units) - 1
        open_calls = {call["id"] for call in calls} if calls else set()

    budget = max_tokens - (estimate_tokens({"content": system_prompt}) if system_prompt else 0)
    if sum(costs) <= budget:
        kept = list(range(len(units)))
    else:
        kept = []
        used = 0
        for i in range(len(units) - 1, -1, -1):
            if used + costs[i] > budget and i != newest_user:
                if newest_user is not None and i > newest_user:
                    continue  # a unit after the newest user message that does not fit
                break
            kept.append(i)
            used += costs[i]
        kept.reverse()
    # Start at a user message.
    first_user = next((n for n, i in enumerate(kept) if units[i][0]["role"] == _USER), len(kept))

    history: list[dict[str, Any]] = (
        [{"role": "system", "content": system_prompt}] if system_prompt else []
    )
    for i in kept[first_user:]:
        history.extend(units[i])
    return history
