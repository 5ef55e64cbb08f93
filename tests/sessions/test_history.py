import pytest

from sessions.history import estimate_tokens, message_history_for_upstream
from sessions.models import Message, Session

pytestmark = pytest.mark.django_db


def build(*rows: dict) -> Session:
    session = Session.objects.create(session_id="h", last_activity_at="2026-01-01T00:00:00Z")
    for seq, row in enumerate(rows, start=1):
        Message.objects.create(session=session, seq=seq, **row)
    session.last_seq = len(rows)
    session.save()
    return session


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str = "", calls: list[str] | None = None) -> dict:
    tool_calls = [
        {"id": c, "type": "function", "function": {"name": "echo", "arguments": "{}"}}
        for c in calls or []
    ]
    return {"role": "assistant", "content": text, "tool_calls": tool_calls or None}


def tool(call_id: str, text: str = "ok") -> dict:
    return {"role": "tool", "content": text, "tool_call_id": call_id, "tool_name": "echo"}


def history(
    session: Session, *, max_messages: int = 100, max_tokens: int = 10_000, system: str = ""
) -> list[dict]:
    return message_history_for_upstream(
        session_pk=session.pk,
        max_messages=max_messages,
        max_tokens=max_tokens,
        system_prompt=system,
    )


def test_openai_format_with_tool_calls_and_system_prompt() -> None:
    session = build(user("q"), assistant(calls=["c1"]), tool("c1", "42"), assistant("It is 42."))
    assert history(session, system="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "echo", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": "It is 42."},
    ]


def test_message_limit_never_starts_with_an_orphan_tool_result() -> None:
    session = build(
        user("old"),
        assistant(calls=["c1", "c2"]),
        tool("c1"),
        tool("c2"),
        assistant("done"),
        user("new"),
    )
    # The newest 4 rows begin with a tool result whose call is outside the window.
    assert history(session, max_messages=4) == [{"role": "user", "content": "new"}]


def test_token_budget_drops_oldest_turns_first_and_keeps_the_newest_user_message() -> None:
    big = "x" * 400  # about 100 tokens each
    session = build(user(big), assistant(big), user(big), assistant(big), user("latest"))
    kept = history(session, max_tokens=250)
    assert kept == [
        {"role": "user", "content": big},
        {"role": "assistant", "content": big},
        {"role": "user", "content": "latest"},
    ]
    # By hand, at four characters a token plus four a message: 104 + 104 + 5 = 213 tokens
    # fit in 250; one more 104-token message would not.
    assert [estimate_tokens(m) for m in kept] == [104, 104, 5]


def test_newest_user_message_kept_even_over_budget() -> None:
    session = build(user("a"), assistant("b"), user("y" * 10_000))
    assert history(session, max_tokens=10) == [{"role": "user", "content": "y" * 10_000}]


def test_tool_call_units_stay_whole() -> None:
    big = "z" * 400
    session = build(
        user("q"), assistant(calls=["c1"]), tool("c1", big), assistant("answer"), user("next")
    )
    kept = history(session, max_tokens=60)
    # The call and its result are dropped together, never one without the other.
    assert kept == [{"role": "user", "content": "next"}]


def test_reads_only_the_window(django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    session = build(*[user(str(i)) if i % 2 == 0 else assistant(str(i)) for i in range(50)])
    with django_assert_num_queries(1) as captured:
        history(session, max_messages=10)
    assert "LIMIT 10" in captured.captured_queries[0]["sql"]


def test_an_answer_stopped_before_its_first_token_is_left_out() -> None:
    session = build(
        user("q1"),
        {"role": "assistant", "content": "", "status": "interrupted"},
        user("q2"),
        assistant("a2"),
    )
    assert history(session) == [
        {"role": "user", "content": "q1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]


def test_a_unit_after_the_newest_user_message_that_does_not_fit_is_skipped() -> None:
    big = "w" * 4000  # about 1,000 tokens
    session = build(user("early"), assistant("short"), user("latest"), assistant(big))
    # Over budget, the newest user message stays; the big answer after it cannot, but the
    # older, smaller units before it still can.
    assert history(session, max_tokens=40) == [
        {"role": "user", "content": "early"},
        {"role": "assistant", "content": "short"},
        {"role": "user", "content": "latest"},
    ]


def test_the_budget_counts_tool_calls_and_results_with_their_call() -> None:
    calls = assistant(calls=["c1"])
    session = build(user("q"), calls, tool("c1", "r" * 400), user("next"))
    # By hand, at four characters a token plus four a message: "q" is 0 + 4; the call is its
    # 75 characters of JSON, [{"id":"c1","type":"function","function":{"name":"echo",
    # "arguments":"{}"}}], so 18 + 4; the result is 100 + 4; "next" is 1 + 4.
    need = 4 + 22 + 104 + 5
    assert len(history(session, max_tokens=need)) == 4  # exactly fits
    assert history(session, max_tokens=need - 1) == [{"role": "user", "content": "next"}]
