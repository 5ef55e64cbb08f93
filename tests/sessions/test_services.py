import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from agent_runtime.errors import IdempotencyConflict, SessionBusy
from sessions import services
from sessions.models import Message, Session
from sessions.records import NewMessage

pytestmark = pytest.mark.django_db


def open_turn(session_id: str = "s", content: str = "hi", key: str | None = None):  # type: ignore[no-untyped-def]
    return services.turn_open(
        session_id=session_id, turn_id=uuid.uuid4(), content=content, client_message_id=key
    )


def finish(start, *messages: NewMessage) -> None:  # type: ignore[no-untyped-def]
    services.turn_record(
        session_pk=start.session_pk, turn_id=start.turn_id, messages=messages, finished=True
    )


def test_open_creates_the_session_stores_the_message_and_takes_the_lease() -> None:
    start = open_turn(content="hello")
    session = Session.objects.get(session_id="s")
    assert session.active_turn_id == start.turn_id
    assert session.active_turn_expires_at > timezone.now()
    assert start.history == [{"role": "user", "content": "hello"}]
    [message] = Message.objects.all()
    assert (message.seq, message.role, message.content, message.turn_id) == (
        1,
        "user",
        "hello",
        start.turn_id,
    )


def test_a_second_turn_while_one_runs_is_busy_and_writes_nothing() -> None:
    open_turn()
    with pytest.raises(SessionBusy):
        open_turn(content="again")
    assert Message.objects.count() == 1


def test_an_expired_lease_can_be_taken_over() -> None:
    open_turn()
    Session.objects.update(active_turn_expires_at=timezone.now() - timedelta(seconds=1))
    second = open_turn(content="after crash")
    assert Session.objects.get().active_turn_id == second.turn_id


def test_record_appends_in_order_and_releases_the_lease() -> None:
    start = open_turn()
    finish(
        start,
        NewMessage(
            role="assistant",
            content="answer",
            usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        ),
    )
    session = Session.objects.get()
    assert session.active_turn_id is None
    assert session.last_seq == 2
    assistant = Message.objects.get(seq=2)
    assert (assistant.role, assistant.content, assistant.total_tokens) == ("assistant", "answer", 3)
    open_turn(content="next")  # the session is free again
    assert list(Message.objects.values_list("seq", flat=True)) == [1, 2, 3]


def test_every_turn_that_takes_the_lease_gets_the_next_number() -> None:
    """New session (ORM path), idle session (statement path), message_id (ORM path), a
    regenerate and an expired lease taken over: each turn numbers one more, stored or not."""
    first = open_turn()
    finish(first)  # stores nothing
    second = open_turn(content="again")
    finish(second)
    keyed = open_turn(content="keyed", key="k1")
    finish(keyed)
    regenerated = services.turn_regenerate_open(session_id="s", turn_id=uuid.uuid4())
    Session.objects.update(active_turn_expires_at=timezone.now() - timedelta(seconds=1))
    taken_over = open_turn(content="after crash")
    numbers = [s.turn_number for s in (first, second, keyed, regenerated, taken_over)]
    assert numbers == [1, 2, 3, 4, 5]
    assert Session.objects.get().turns_opened == 5
    replayed = open_turn(content="keyed", key="k1")  # a replay is no turn
    assert replayed.replay is not None
    assert Session.objects.get().turns_opened == 5


def test_a_stale_turn_does_not_release_a_newer_lease() -> None:
    first = open_turn()
    Session.objects.update(active_turn_expires_at=timezone.now() - timedelta(seconds=1))
    second = open_turn(content="newer")
    finish(first, NewMessage(role="assistant", content="late", status="interrupted"))
    assert Session.objects.get().active_turn_id == second.turn_id


def test_repeated_message_id_replays_and_stores_nothing() -> None:
    start = open_turn(key="m-1")
    finish(start, NewMessage(role="assistant", content="the answer", finish_reason="stop"))
    again = open_turn(content="hi", key="m-1")
    assert again.replay is not None
    assert [(m.role, m.content) for m in again.replay] == [("assistant", "the answer")]
    assert Message.objects.count() == 2
    assert Session.objects.get().active_turn_id is None


def test_a_message_id_reused_with_another_content_is_a_conflict_and_stores_nothing() -> None:
    start = open_turn(content="pay Alice 10", key="m-1")
    finish(start, NewMessage(role="assistant", content="paid Alice", finish_reason="stop"))
    with pytest.raises(IdempotencyConflict):
        open_turn(content="pay Bob 10", key="m-1")
    assert Message.objects.count() == 2
    assert Session.objects.get().active_turn_id is None
    # The identical retry still replays.
    assert open_turn(content="pay Alice 10", key="m-1").replay is not None


def test_a_message_id_reused_while_its_turn_runs_is_a_conflict_if_the_content_differs() -> None:
    open_turn(content="first", key="m-1")
    with pytest.raises(IdempotencyConflict):
        open_turn(content="second", key="m-1")
    assert Message.objects.count() == 1


def test_repeated_message_id_of_a_running_turn_is_busy() -> None:
    open_turn(key="m-1")
    with pytest.raises(SessionBusy):
        open_turn(key="m-1")
    assert Message.objects.count() == 1


def test_record_for_a_deleted_session_is_a_no_op() -> None:
    start = open_turn()
    Session.objects.all().delete()
    finish(start, NewMessage(role="assistant", content="x"))
    assert Message.objects.count() == 0


def test_a_tool_step_renews_the_lease_and_the_end_stores_the_pending_calls() -> None:
    start = open_turn()
    Session.objects.update(active_turn_expires_at=timezone.now() + timedelta(seconds=1))
    call = {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
    services.turn_record(
        session_pk=start.session_pk,
        turn_id=start.turn_id,
        messages=[NewMessage(role="assistant", tool_calls=[call])],
        finished=False,
    )
    session = Session.objects.get()
    assert session.active_turn_id == start.turn_id
    assert session.active_turn_expires_at > timezone.now() + timedelta(seconds=5)  # renewed
    services.turn_record(
        session_pk=start.session_pk,
        turn_id=start.turn_id,
        messages=[],
        finished=True,
        pending_tool_calls=[{"id": "c1", "name": "read_file"}],
    )
    session = Session.objects.get()
    assert (session.active_turn_id, session.pending_tool_calls) == (
        None,
        [{"id": "c1", "name": "read_file"}],
    )
    assert Message.objects.get(seq=2).tool_calls == [call]

    # The next user message closes the unanswered call before its own message.
    nxt = open_turn(content="never mind")
    assert [m["role"] for m in nxt.history] == ["user", "assistant", "tool", "user"]
    assert nxt.history[1]["tool_calls"] == [call]
    assert list(Message.objects.order_by("seq").values_list("role", "error_code")) == [
        ("user", ""),
        ("assistant", ""),
        ("tool", "not_executed"),
        ("user", ""),
    ]
    assert Session.objects.get().pending_tool_calls is None


def test_a_stale_turn_neither_renews_nor_ends_a_newer_lease() -> None:
    first = open_turn()
    Session.objects.update(active_turn_expires_at=timezone.now() - timedelta(seconds=1))
    second = open_turn(content="newer")
    expires = Session.objects.get().active_turn_expires_at
    services.turn_record(
        session_pk=first.session_pk,
        turn_id=first.turn_id,
        messages=[NewMessage(role="assistant", content="late")],
        finished=False,
    )
    session = Session.objects.get()
    assert (session.active_turn_id, session.active_turn_expires_at) == (second.turn_id, expires)
    assert session.last_seq == 3  # its message is still stored, after the newer one's


def test_a_lease_with_no_expiry_is_held() -> None:
    start = open_turn()
    Session.objects.update(active_turn_expires_at=None)
    with pytest.raises(SessionBusy):
        open_turn(content="again")
    assert Session.objects.get().active_turn_id == start.turn_id


def test_regenerate_supersedes_the_answer_and_its_tool_steps_and_leaves_them_out_of_history() -> (
    None
):
    first = open_turn(content="question")
    calls = [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]
    services.turn_record(
        session_pk=first.session_pk,
        turn_id=first.turn_id,
        messages=[NewMessage(role="assistant", tool_calls=calls)],
        finished=True,
        pending_tool_calls=[{"id": "c1", "name": "read_file"}],
    )
    start = services.turn_regenerate_open(session_id="s", turn_id=uuid.uuid4())
    assert start.history == [{"role": "user", "content": "question"}]
    session = Session.objects.get(session_id="s")
    assert session.pending_tool_calls is None  # the replaced call waits for nothing
    assert session.active_turn_id == start.turn_id
    finish(start, NewMessage(role="assistant", content="the new answer"))
    rows = list(Message.objects.order_by("seq").values_list("role", "superseded"))
    assert rows == [("user", False), ("assistant", True), ("assistant", False)]
    assert open_turn(content="next").history == [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "the new answer"},
        {"role": "user", "content": "next"},
    ]


def test_regenerate_needs_an_idle_session_with_a_user_message() -> None:
    from agent_runtime.errors import NotFound, NothingToRegenerate

    with pytest.raises(NotFound):
        services.turn_regenerate_open(session_id="nobody", turn_id=uuid.uuid4())
    open_turn()
    with pytest.raises(SessionBusy):
        services.turn_regenerate_open(session_id="s", turn_id=uuid.uuid4())
    Session.objects.create(session_id="empty", last_activity_at=timezone.now())
    with pytest.raises(NothingToRegenerate):
        services.turn_regenerate_open(session_id="empty", turn_id=uuid.uuid4())
