"""The sessions JSON API: parse the query with ``sessions.schemas``, call one selector or
service in one ``sync_to_async`` hop, format the answer with ``sessions.schemas``."""

from typing import TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ValidationError

from agent_runtime.errors import InvalidRequest, MethodNotAllowed, NotFound
from agent_runtime.json_body import validation_errors
from sessions import selectors, services
from sessions.schemas import (
    MessageListOut,
    MessageListQuery,
    MessageOut,
    RunningTurnOut,
    SessionDetailOut,
    SessionListOut,
    SessionListQuery,
    SessionOut,
    cursor_encode,
)
from streaming.runs.resume import run_current

Query = TypeVar("Query", bound=BaseModel)

_READ = ("GET", "HEAD")


def _query(request: HttpRequest, schema: type[Query]) -> Query:
    """The query string as ``schema``; an empty parameter counts as absent."""
    params = {name: value for name, value in request.GET.items() if value != ""}
    try:
        return schema.model_validate(params)
    except ValidationError as exc:
        raise InvalidRequest("Invalid query parameters.", errors=validation_errors(exc)) from None


def _json(model: BaseModel, status: int = 200) -> HttpResponse:
    return HttpResponse(model.model_dump_json(), content_type="application/json", status=status)


def _unknown(session_id: str) -> NotFound:
    return NotFound(f"No session {session_id!r}.")


# Authenticated by X-Internal-Auth, not by a browser cookie: no CSRF token.
@csrf_exempt
async def session_list(request: HttpRequest) -> HttpResponse:
    if request.method not in _READ:
        raise MethodNotAllowed()
    query = _query(request, SessionListQuery)
    page = await sync_to_async(selectors.session_list)(limit=query.limit, after=query.cursor)
    return _json(
        SessionListOut(
            sessions=[SessionOut.model_validate(s) for s in page.sessions],
            next_cursor=cursor_encode(page.next_key) if page.next_key else None,
        )
    )


@csrf_exempt
async def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method in _READ:
        session = await sync_to_async(selectors.session_get)(session_id=session_id)
        if session is None:
            raise _unknown(session_id)
        run = await run_current(session_id=session_id)
        running_turn = None
        if run is not None:
            running_turn = RunningTurnOut(
                turn_id=run.turn_id, started_at=run.started_at, last_event_id=run.last_event_id
            )
        detail = SessionDetailOut.model_validate(session)
        return _json(detail.model_copy(update={"running_turn": running_turn}))
    if request.method == "DELETE":
        if not await sync_to_async(services.session_delete)(session_id=session_id):
            raise _unknown(session_id)
        return HttpResponse(status=204)
    raise MethodNotAllowed()


@csrf_exempt
async def message_list(request: HttpRequest, session_id: str) -> HttpResponse:
    if request.method not in _READ:
        raise MethodNotAllowed()
    query = _query(request, MessageListQuery)
    page = await sync_to_async(selectors.message_list)(
        session_id=session_id, after_seq=query.after, limit=query.limit
    )
    if page is None:
        raise _unknown(session_id)
    return _json(
        MessageListOut(
            session_id=page.session_id,
            messages=[MessageOut.model_validate(m) for m in page.messages],
            has_more=page.has_more,
            next_after=page.messages[-1].seq if page.messages else query.after,
        )
    )
