"""CPU per token of each wire format's encoder: ``uv run python -m bench.encoders``.

In-process: each encoder (the seed format, the AI SDK's UI message stream, AG-UI) turns the
same scripted turn into bytes, many times over; the CPU time (``time.process_time``) divided by
the tokens is the encoder's cost per token. The turn: a tool step (a server-side call with its
result), then a text answer of ``TOKENS`` deltas, then the end. ``python -m bench`` runs this
too. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

TOKENS = 256
TURNS = 200
REPEATS = 9
#: A call's arguments as a model streams them: a few characters a delta.
ARGUMENTS = ['{"', "expr", '":', ' "', "(1", "+2", ")*", "3", "-4", '"}']


def turns() -> dict[str, list[Any]]:
    """The scripted turns: a text answer, and the same answer after a server-side tool step."""
    from streaming.engine.events import (
        StepFinished,
        TextDelta,
        ToolCallArgsDelta,
        ToolCallReady,
        ToolCallStarted,
        ToolResult,
        TurnFinished,
    )

    usage = {"prompt_tokens": 40, "completion_tokens": TOKENS, "total_tokens": 40 + TOKENS}
    answer = [
        *(TextDelta(f"w{i} ") for i in range(TOKENS)),
        StepFinished(2, "stop", usage),
        TurnFinished("complete", "stop", usage),
    ]
    tool_step = [
        ToolCallStarted("call_1", "calculator"),
        *(ToolCallArgsDelta("call_1", part) for part in ARGUMENTS),
        ToolCallReady("call_1", "calculator", {"expr": "(1+2)*3-4"}, "server"),
        ToolResult("call_1", "calculator", result=5),
        StepFinished(1, "tool_calls", {}),
    ]
    return {"text": answer, "tool+text": tool_step + answer}


def encoders() -> dict[str, Callable[[AsyncIterator[Any]], AsyncIterator[bytes]]]:
    from streaming.protocols.ag_ui import ag_ui_stream
    from streaming.protocols.ai_sdk import ai_sdk_stream
    from streaming.protocols.seed import seed_stream
    from streaming.runs.resume import events_only
    from streaming.runs.run import numbered

    # As the views serve them: the seed format writes the run's event ids, the AI SDK's
    # stream drops them.
    return {
        "seed": lambda events: seed_stream(numbered(events)),
        "ai-sdk": lambda events: ai_sdk_stream(events_only(numbered(events))),
        "ag-ui": lambda events: ag_ui_stream(events, thread_id="bench", run_id="run-1"),
    }


async def _encode_turns(encode: Callable[..., AsyncIterator[bytes]], events: list[Any]) -> int:
    async def scripted() -> AsyncIterator[Any]:
        for event in events:
            yield event

    size = 0
    for _ in range(TURNS):
        async for frame in encode(scripted()):
            size += len(frame)
    return size


def measure() -> dict[str, dict[str, dict[str, float]]]:
    """Per turn kind and format: µs of CPU per token, the ratio to the seed format and the bytes
    of a turn. The formats take turns within each of ``REPEATS`` rounds, and the best round of
    each counts (as ``timeit`` does): other work on the machine only ever adds time."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    formats = encoders()
    for kind, events in turns().items():
        samples: dict[str, list[float]] = {name: [] for name in formats}
        sizes: dict[str, float] = {}
        for _ in range(REPEATS):
            for name, encode in formats.items():
                started = time.process_time()
                size = asyncio.run(_encode_turns(encode, events))
                samples[name].append((time.process_time() - started) / (TURNS * TOKENS) * 1e6)
                sizes[name] = size / TURNS
        best = {name: min(values) for name, values in samples.items()}
        results[kind] = {
            name: {
                "us_per_token": best[name],
                "vs_seed": best[name] / best["seed"],
                "bytes_per_turn": sizes[name],
            }
            for name in formats
        }
    return results


def render(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        f"Encoders: CPU per token, {TURNS} turns of {TOKENS} tokens, best of {REPEATS} rounds",
        f"{'turn':<10} {'format':<8} {'us/token':>9} {'vs seed':>8} {'bytes/turn':>11}",
    ]
    for kind, formats in results.items():
        for name, figures in formats.items():
            lines.append(
                f"{kind:<10} {name:<8} {figures['us_per_token']:>9.2f} "
                f"{figures['vs_seed']:>7.2f}x {figures['bytes_per_turn']:>11.0f}"
            )
    return "\n".join(lines)


def main() -> None:
    from bench import seed

    seed.setup_django("sqlite:///:memory:")
    print(render(measure()))


if __name__ == "__main__":
    main()
