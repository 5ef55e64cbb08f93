"""The sessions API's request and response schemas (Pydantic), reusable by an OpenAPI generator.

Query parameters are strings on the wire; these models coerce and bound them. Responses are
built from the records in ``sessions.records`` (``from_attributes``).
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from sessions.records import ActivityKey

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

PageSize = Annotated[
    int, Field(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")
]


# --- Cursors -------------------------------------------------------------------------------------
# A sessions cursor is opaque to clients: base64url (unpadded) of the JSON
# ``{"at": <last_activity_at, ISO 8601>, "id": <internal pk>}`` of the last session of a page.


def cursor_encode(key: ActivityKey) -> str:
    raw = orjson.dumps({"at": key.last_activity_at.isoformat(), "id": key.pk})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _invalid_cursor() -> PydanticCustomError:
    return PydanticCustomError("invalid_cursor", "Not a cursor returned by this API.")


def cursor_decode(value: Any) -> Any:
    """The ``ActivityKey`` a cursor encodes; a validation error for anything else."""
    if not isinstance(value, str):
        return value  # left to the type check
    try:
        data = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        at = datetime.fromisoformat(data["at"])
        pk = data["id"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise _invalid_cursor() from None
    if at.tzinfo is None or not isinstance(pk, int) or isinstance(pk, bool) or pk < 1:
        raise _invalid_cursor()
    return ActivityKey(last_activity_at=at, pk=pk)


# On the wire (and so in the OpenAPI document) a cursor is an opaque string.
Cursor = Annotated[
    ActivityKey,
    BeforeValidator(cursor_decode),
    WithJsonSchema({"type": "string", "description": "An opaque cursor (`next_cursor`)."}),
]


# --- Requests ------------------------------------------------------------------------------------


class _Query(BaseModel):
    # Unknown parameters are ignored, as unknown body fields are.
    model_config = ConfigDict(extra="ignore", frozen=True, arbitrary_types_allowed=True)


class SessionListQuery(_Query):
    """``GET /agent/sessions?limit=&cursor=``"""

    limit: PageSize = DEFAULT_PAGE_SIZE
    cursor: Cursor | None = Field(
        default=None, description="`next_cursor` of the previous page; absent for the first."
    )


class MessageListQuery(_Query):
    """``GET /agent/sessions/{session_id}/messages?after=&limit=``"""

    after: int = Field(
        default=0, ge=0, description="Return messages with a `seq` greater than this."
    )
    limit: PageSize = DEFAULT_PAGE_SIZE


# --- Responses -----------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SessionOut(_Out):
    session_id: str
    created_at: datetime
    last_activity_at: datetime
    message_count: int
    turn_running: bool = Field(description="A turn is running: its lease is held, not expired.")


class RunningTurnOut(BaseModel):
    turn_id: str
    started_at: datetime
    last_event_id: int | None = Field(
        description="The id of the turn's last event so far (a resume cursor); null before one."
    )


class SessionDetailOut(SessionOut):
    running_turn: RunningTurnOut | None = Field(
        default=None,
        description="The turn running now, as the event broker knows it; null when none runs "
        "or the broker cannot be reached.",
    )


class SessionListOut(BaseModel):
    sessions: list[SessionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class UsageOut(BaseModel):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


OptionalText = Annotated[str | None, BeforeValidator(_none_if_empty)]


class MessageOut(_Out):
    seq: int
    role: str
    content: str
    tool_calls: list[dict[str, Any]] | None = Field(
        description="OpenAI-format tool calls of an assistant message."
    )
    tool_call_id: OptionalText = Field(description="For a tool message: the call it answers.")
    tool_name: OptionalText
    status: str = Field(description="`complete`, `interrupted`, `cancelled` or `failed`.")
    created_at: datetime
    model: OptionalText
    usage: UsageOut | None
    finish_reason: OptionalText
    error_code: OptionalText
    superseded: bool = Field(
        description="A regenerate replaced this answer: kept, never sent upstream again."
    )


class MessageListOut(BaseModel):
    session_id: str
    messages: list[MessageOut]
    has_more: bool = Field(description="More messages follow this page right now.")
    next_after: int = Field(
        description="Pass as `after` for the next page (or to poll for new messages)."
    )
