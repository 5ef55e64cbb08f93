"""A stand-in for the Codelab gateway and its IDE, speaking exactly their shapes over HTTP.

The gateway posts ``{"session_id"?, "message"}`` and forwards every ``data:`` object (null
fields dropped) to the IDE, skipping ``:`` and ``id:`` lines and stopping at ``[DONE]``; it
takes a new session's id from ``session_info``. The IDE runs every ``tool_call`` it receives
and answers with a ``tool_result``; it prints an error's ``content``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class CodelabIDE:
    client: httpx.Client
    session_id: str | None = None
    #: The IDE's tools: name -> function of the arguments.
    tools: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    #: Every object the gateway forwarded, in order, over all exchanges.
    received: list[dict[str, Any]] = field(default_factory=list)
    #: What the IDE printed for errors.
    printed: list[str] = field(default_factory=list)

    def post(self, message: dict[str, Any]) -> httpx.Response:
        """One gateway exchange: the runtime's answer (its events are in ``received``)."""
        payload: dict[str, Any] = {"message": message}
        if self.session_id is not None:
            payload["session_id"] = self.session_id
        with self.client.stream("POST", "/agent/message/stream", json=payload) as response:
            if response.status_code == 200:
                self._forward(response)
            else:
                response.read()
        return response

    def say(self, content: str) -> list[dict[str, Any]]:
        """The user types a message; the IDE runs the tool calls until the turn is done."""
        start = len(self.received)
        response = self.post({"type": "user_message", "content": content, "role": "user"})
        assert response.status_code == 200, response.text
        self._run_tool_calls(start)
        return self.received[start:]

    def _run_tool_calls(self, start: int) -> None:
        handled = start
        while True:
            calls = [e for e in self.received[handled:] if e.get("type") == "tool_call"]
            handled = len(self.received)
            if not calls:
                return
            for call in calls:
                result = self.tools[call["tool_name"]](call["arguments"])
                response = self.post(
                    {"type": "tool_result", "call_id": call["call_id"], "result": result}
                )
                assert response.status_code == 200, response.text

    def _forward(self, response: httpx.Response) -> None:
        for line in response.iter_lines():
            if not line or line.startswith(":") or line.startswith("id:"):
                continue
            assert line.startswith("data: "), line
            data = line[len("data: ") :]
            if data == "[DONE]":
                return
            event = {k: v for k, v in json.loads(data).items() if v is not None}
            self.received.append(event)
            if event["type"] == "session_info":
                self.session_id = event["session_id"]
            elif event["type"] == "error":
                self.printed.append(event["content"])
        raise AssertionError("the stream ended without [DONE]")


def answer(events: list[dict[str, Any]]) -> str:
    return "".join(e.get("token", "") for e in events if e["type"] == "assistant_message")
