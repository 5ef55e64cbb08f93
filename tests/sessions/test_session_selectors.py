"""Reads behind the sessions API and the admin: ordering, keyset pages, query counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions import selectors
from sessions.models import Message, Session
from sessions.selectors import prune
from tests.sessions.factories import T0, add_messages, make_session, tool_conversation

pytestmark = pytest.mark.django_db


def walk_sessions(limit: int, between_pages=None) -> list[str]:  # type: ignore[no-untyped-def]
    """Every page of ``session_list``, calling ``between_pages(n)`` after page ``n``."""
    seen: list[str] = []
    after = None
    page_number = 0
    while True:
        page = selectors.session_list(limit=limit, after=after)
        seen += [s.session_id for s in page.sessions]
        page_number += 1
        if page.next_key is None:
            return seen
        if between_pages is not None:
            between_pages(page_number)
        after = page.next_key


def test_sessions_are_listed_most_recently_active_first_ties_by_newest_row() -> None:
    make_session("old", last_activity_at=T0)
    make_session("tie-a", last_activity_at=T0 + timedelta(minutes=1))
    make_session("tie-b", last_activity_at=T0 + timedelta(minutes=1))
    make_session("new", last_activity_at=T0 + timedelta(minutes=2))
    assert walk_sessions(limit=50) == ["new", "tie-b", "tie-a", "old"]
    # Ties on last_activity_at are split across pages without loss.
    assert walk_sessions(limit=1) == ["new", "tie-b", "tie-a", "old"]
    assert walk_sessions(limit=2) == ["new", "tie-b", "tie-a", "old"]


def test_session_pages_have_no_duplicates_or_gaps_while_sessions_are_created_and_active() -> None:
    # 12 sessions, several sharing a timestamp across page boundaries.
    for i in range(12):
        make_session(f"s{i:02}", last_activity_at=T0 + timedelta(minutes=i // 3))
    expected = walk_sessions(limit=50)

    def churn(page_number: int) -> None:
        make_session(f"created-after-page-{page_number}")  # active now: before every page read
        first_seen = Session.objects.get(session_id=expected[0])
        add_messages(first_seen, 2)  # an already-listed session becomes the most recent

    assert walk_sessions(limit=5, between_pages=churn) == expected
    # A new walk starts with what happened meanwhile.
    fresh = walk_sessions(limit=5)
    assert fresh[0] == expected[0]
    assert {s for s in fresh if s.startswith("created-after-page-")} == {
        "created-after-page-1",
        "created-after-page-2",
    }


def test_session_info_counts_messages_and_reports_a_running_turn() -> None:
    make_session("idle", messages=3, last_activity_at=T0)
    make_session("running", messages=1, running=True, last_activity_at=T0)
    make_session("crashed", messages=1, lease_expired=True, last_activity_at=T0)
    make_session("empty", last_activity_at=T0)
    info = {s.session_id: s for s in selectors.session_list(limit=50).sessions}
    assert {k: (v.message_count, v.turn_running) for k, v in info.items()} == {
        "idle": (3, False),
        "running": (1, True),
        "crashed": (1, False),  # the lease expired: its worker is gone
        "empty": (0, False),
    }
    assert selectors.session_get(session_id="running") == info["running"]
    assert selectors.session_get(session_id="nope") is None


def test_message_pages_follow_seq_and_never_repeat_or_skip_while_messages_arrive() -> None:
    session = make_session("chat", messages=7)
    seqs: list[int] = []
    after = 0
    appended = 0
    while True:
        page = selectors.message_list(session_id="chat", after_seq=after, limit=3)
        assert page is not None
        seqs += [m.seq for m in page.messages]
        if not page.has_more:
            break
        after = page.messages[-1].seq
        if appended < 3:  # a turn stores two messages between two page reads
            add_messages(session, 2)
            appended += 1
    assert seqs == list(range(1, 14))
    assert selectors.message_list(session_id="chat", after_seq=13, limit=3).messages == []  # type: ignore[union-attr]


def test_message_list_of_an_unknown_session_is_none() -> None:
    assert selectors.message_list(session_id="nope", after_seq=0, limit=10) is None


def test_message_info_has_tool_calls_and_usage() -> None:
    tool_conversation("tools")
    page = selectors.message_list(session_id="tools", after_seq=0, limit=10)
    assert page is not None
    user, call, result, answer = page.messages
    assert (user.role, user.usage, user.tool_calls) == ("user", None, None)
    assert call.tool_calls[0]["function"]["name"] == "calculator"  # type: ignore[index]
    assert call.usage == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert (call.finish_reason, call.model) == ("tool_calls", "dev-llm")
    assert (result.role, result.tool_call_id, result.tool_name) == ("tool", "call_7", "calculator")
    assert (answer.content, answer.status) == ("Six times seven is 42.", "complete")


@pytest.mark.parametrize("sessions", [2, 40])
def test_a_session_page_is_one_query_whatever_the_sizes(
    sessions: int, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for i in range(sessions):
        make_session(f"s{i}", messages=i % 5, last_activity_at=T0 + timedelta(seconds=i))
    with django_assert_num_queries(1):
        first = selectors.session_list(limit=10)
    with django_assert_num_queries(1):
        selectors.session_list(limit=10, after=first.next_key)
    with django_assert_num_queries(1):
        selectors.session_get(session_id="s1")


@pytest.mark.parametrize("messages", [3, 120])
def test_a_message_page_is_two_queries_whatever_the_sizes(
    messages: int, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    make_session("chat", messages=messages)
    with django_assert_num_queries(2):
        selectors.message_list(session_id="chat", after_seq=1, limit=50)
    with django_assert_num_queries(1):
        selectors.message_list(session_id="nope", after_seq=0, limit=50)


def test_admin_queryset_annotates_in_one_query(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    tool_conversation("tools")
    failed = make_session("failed", messages=1)
    add_messages(failed, 1, status=Message.Status.FAILED, error_code="upstream_timeout")
    cut = make_session("cut", messages=1)
    add_messages(cut, 1, status=Message.Status.CANCELLED)
    make_session("fine", messages=4)
    with django_assert_num_queries(1):
        rows = {
            row.session_id: (
                row.message_count,
                row.total_tokens,
                row.model,
                row.has_failed,
                row.has_interrupted,
            )
            for row in selectors.session_admin_queryset()
        }
    assert rows == {
        "tools": (4, 55, "dev-llm", False, False),
        "failed": (2, None, None, True, False),
        "cut": (2, None, None, False, True),
        "fine": (4, None, None, False, False),
    }


def test_transcript_pages_are_in_order_and_clamped() -> None:
    session = make_session("long", messages=250)
    page = selectors.message_transcript(session_pk=session.pk, page=2, per_page=100)
    assert [m.seq for m in page.messages] == list(range(101, 201))
    assert (page.number, page.num_pages, page.count) == (2, 3, 250)
    assert (page.start_index, page.end_index) == (101, 200)
    last = selectors.message_transcript(session_pk=session.pk, page="99", per_page=100)
    assert (last.number, [m.seq for m in last.messages][-1]) == (3, 250)
    assert selectors.message_transcript(session_pk=session.pk, page="x", per_page=100).number == 1


def test_prune_batches_are_oldest_first_and_skip_running_turns() -> None:
    cutoff = T0 + timedelta(days=1)
    make_session("old-1", last_activity_at=T0)
    make_session("old-2", last_activity_at=T0 + timedelta(hours=1))
    make_session("old-running", last_activity_at=T0, running=True)
    make_session("old-crashed", last_activity_at=T0 + timedelta(hours=2), lease_expired=True)
    make_session("recent", last_activity_at=cutoff + timedelta(seconds=1))
    names = dict(Session.objects.values_list("pk", "session_id"))
    now = timezone.now()

    first = prune.session_prune_batch(cutoff=cutoff, now=now, after=None, limit=2)
    assert [names[k.pk] for k in first] == ["old-1", "old-2"]
    rest = prune.session_prune_batch(cutoff=cutoff, now=now, after=first[-1], limit=2)
    assert [names[k.pk] for k in rest] == ["old-crashed"]
    assert prune.session_prune_batch(cutoff=cutoff, now=now, after=rest[-1], limit=2) == []
    assert prune.session_prune_counts(cutoff=cutoff, now=now) == (3, 0, 1)
