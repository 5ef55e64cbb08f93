"""A turn opened for a request whose response is never iterated (the client left after the view
returned): the session is given back, and the run ends ``interrupted``."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from sessions.models import Message, Session
from streaming.engine.events import TextDelta, TurnFinished
from streaming.engine.start import UserInput, turn_open_events
from streaming.runs.resume import run_events
from streaming.runs.run import run_first_reader
from tests.streaming.engine import scripted_model
from tests.streaming.engine.scripted_model import text
from tests.streaming.engine.test_turn import scripted  # noqa: F401  (the scripted model, autouse)
from tests.streaming.runs.test_run import Script, collect, new_run

INTERRUPTED = TurnFinished("interrupted", "interrupted", {})


async def test_a_cancel_reader_never_started_gives_the_turn_up(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS = 0.05
    script = Script()
    abandoned: list[str] = []

    async def abandon() -> None:
        abandoned.append("session given back")

    run = new_run(script, in_task=False)
    run._abandon = abandon  # as run_events passes it
    reader = run_first_reader(run, on_disconnect="cancel")
    del reader  # what Django drops when it cancels the request before iterating
    await asyncio.sleep(0.2)
    assert abandoned == ["session given back"]
    assert run.ended
    assert run.log == [INTERRUPTED]
    # A reader that starts after all the same gets the end, and the turn never runs.
    late = run_first_reader(run, on_disconnect="cancel")
    script.queue.put_nowait(TextDelta("never"))
    assert [event for _, event in await collect(late)] == [INTERRUPTED]


async def test_a_reader_that_starts_in_time_is_not_given_up(settings) -> None:  # type: ignore[no-untyped-def]
    settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS = 0.05
    script = Script()
    run = new_run(script, in_task=False)
    run._abandon = None
    reader = run_first_reader(run, on_disconnect="cancel")
    script.queue.put_nowait(TextDelta("a"))
    assert await anext(reader) == (run.base + 1, TextDelta("a"))
    await asyncio.sleep(0.2)  # past the watch: the reader is driving
    script.queue.put_nowait(TurnFinished("complete", "stop"))
    script.queue.put_nowait(None)
    assert [event for _, event in await collect(reader)] == [TurnFinished("complete", "stop")]


@pytest.mark.django_db(transaction=True)
async def test_an_unread_turn_releases_its_lease_and_stores_it_interrupted(
    settings,  # type: ignore[no-untyped-def]
    scripted: scripted_model.Script,  # noqa: F811
) -> None:
    settings.STREAM_IDLE_WRITE_TIMEOUT_SECONDS = 0.1
    settings.TURN_LEASE_SECONDS = 600
    scripted.replies = [text("never sent")]
    opened = await turn_open_events(turn_input=UserInput("unread", "hi"))
    items = run_events(opened=opened, on_disconnect="cancel")
    await items.aclose()  # closing an unstarted generator runs none of its code
    del items

    @sync_to_async
    def state() -> tuple[object, list[tuple[str, str, str]]]:
        session = Session.objects.get(session_id="unread")
        messages = Message.objects.filter(session=session).order_by("seq")
        return session.active_turn_id, list(messages.values_list("role", "content", "status"))

    assert (await state())[0] is not None  # the lease is held meanwhile
    for _ in range(50):
        await asyncio.sleep(0.05)
        lease, messages = await state()
        if lease is None:
            break
    assert lease is None
    assert messages == [("user", "hi", "complete"), ("assistant", "", "interrupted")]
