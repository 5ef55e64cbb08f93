from streaming.engine.events import StepFinished, TextDelta, ToolCallReady, TurnFinished
from streaming.runs.codec import events_decode, events_encode


def test_events_survive_the_redis_encoding() -> None:
    events = [TextDelta("héllo"), StepFinished(1, "stop", {"total_tokens": 3})]
    events.append(TurnFinished("complete", "stop", {"total_tokens": 3}))
    assert events_decode(events_encode(7, events)) == (7, events)


def test_every_event_type_round_trips() -> None:
    events = [
        TextDelta("a\nb"),
        ToolCallReady("c1", "calc", {"x": 1}, "server", approval_required=True),
        TurnFinished("complete", "tool_calls", {}, awaiting_approval=["c1"]),
    ]
    assert events_decode(events_encode(1, events)) == (1, events)


def test_text_deltas_are_written_bare() -> None:
    events = [
        TextDelta("a\nb"),
        TextDelta(""),
        ToolCallReady("c1", "calc", {"x": 1}, "server", approval_required=True),
        TurnFinished("complete", "tool_calls", {}, awaiting_approval=["c1"]),
    ]
    raw = events_encode(1, events)
    assert raw.startswith(b'[1,["a\\nb","",["ToolCallReady"')
    assert events_decode(raw) == (1, events)
