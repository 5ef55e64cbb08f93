"""Tool calls of one model step: assembling streamed fragments, validating, running them."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from pydantic import ValidationError

from streaming import telemetry
from streaming.llm_client import ToolCallDelta
from streaming.tools.registry import Tool, ToolRegistry


@dataclass
class ToolCall:
    """One complete call the model made."""

    id: str
    name: str
    raw_arguments: str
    tool: Tool | None = None
    #: The validated arguments model, when the arguments were valid.
    arguments: Any = None
    #: Why the call cannot run, when it cannot (unknown tool, invalid arguments).
    problem: str | None = None

    @property
    def executor(self) -> str:
        return self.tool.executor if self.tool is not None else "server"

    def wire_arguments(self) -> Any:
        """The arguments for the ``tool_call`` event: parsed JSON when they parse."""
        try:
            return orjson.loads(self.raw_arguments or "{}")
        except orjson.JSONDecodeError:
            return self.raw_arguments

    def openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass
class ToolOutcome:
    call: ToolCall
    result: Any = None
    error: str | None = None
    error_code: str = ""

    def content(self) -> str:
        """What the model reads as the tool message."""
        if self.error is not None:
            return orjson.dumps({"error": self.error}).decode()
        if isinstance(self.result, str):
            return self.result
        return orjson.dumps(self.result, default=str).decode()


@dataclass
class ToolCallAssembler:
    """Joins ``ToolCallDelta`` fragments by index; several calls may come in one step."""

    _parts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, delta: ToolCallDelta) -> tuple[str, str] | None:
        """Add a fragment; for the first one of a call, its ``(call id, tool name)``."""
        part = self._parts.get(delta.index)
        if part is None:
            # The id comes with the first fragment; a server that sends none gets one made up.
            call_id = delta.id or f"call_{uuid.uuid4().hex[:24]}"
            part = {"id": call_id, "name": delta.name or "", "arguments": []}
            self._parts[delta.index] = part
            if delta.arguments:
                part["arguments"].append(delta.arguments)
            return call_id, part["name"]
        if delta.name:
            part["name"] += delta.name
        if delta.arguments:
            part["arguments"].append(delta.arguments)
        return None

    def call_id(self, index: int) -> str:
        return self._parts[index]["id"]

    def __bool__(self) -> bool:
        return bool(self._parts)

    def calls(self, registry: ToolRegistry) -> list[ToolCall]:
        calls = []
        for index in sorted(self._parts):
            part = self._parts[index]
            call = ToolCall(
                id=part["id"],
                name=part["name"],
                raw_arguments="".join(part["arguments"]),
            )
            _validate(call, registry)
            calls.append(call)
        return calls


def _validate(call: ToolCall, registry: ToolRegistry) -> None:
    call.tool = registry.get(call.name)
    if call.tool is None:
        call.problem = f"unknown tool {call.name!r}"
        return
    try:
        call.arguments = call.tool.arguments.model_validate_json(call.raw_arguments or "{}")
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        call.problem = f"invalid arguments: {details}"


async def tool_run(call: ToolCall) -> ToolOutcome:
    """Run one valid server-side call with its timeout; failures become error outcomes."""
    assert call.tool is not None
    assert call.tool.function is not None
    timeout = call.tool.timeout or settings.TOOL_TIMEOUT_SECONDS
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            outcome = ToolOutcome(call, result=await call.tool.function(call.arguments))
        status = "ok"
    except TimeoutError:
        outcome = ToolOutcome(call, error=f"timed out after {timeout:g}s", error_code="timeout")
        status = "timeout"
    except Exception as exc:  # a tool's failure is the model's to handle, not the turn's
        outcome = ToolOutcome(call, error=f"{type(exc).__name__}: {exc}", error_code="tool_error")
        status = "error"
    telemetry.tool_called(
        tool_name=call.name, outcome=status, duration_s=time.monotonic() - started
    )
    return outcome


def tool_rejected(call: ToolCall) -> ToolOutcome:
    """The outcome of a call that cannot run: its problem goes back to the model."""
    code = "unknown_tool" if call.tool is None else "invalid_arguments"
    telemetry.tool_called(tool_name=call.name, outcome=code, duration_s=0.0)
    return ToolOutcome(call, error=call.problem, error_code=code)


def tool_over_limit(call: ToolCall, limit: int) -> ToolOutcome:
    """The outcome of a call past ``TOOL_MAX_CALLS_PER_STEP``: it does not run."""
    telemetry.tool_called(tool_name=call.name, outcome="tool_call_limit", duration_s=0.0)
    return ToolOutcome(
        call,
        error=f"not executed: more than {limit} tool calls in one step",
        error_code="tool_call_limit",
    )
