"""The development LLM's ASGI app: ``/v1/chat/completions`` plus ``/__dev__/`` controls.

Default reply: a deterministic sentence about the last user message, or, with ``tokens`` set,
exactly that many word tokens. Scripted replies (``POST /__dev__/script``) take precedence.
Every chat request is recorded (``GET /__dev__/requests``) with what happened to its stream
(``GET /__dev__/streams``), including when the client went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from devllm.script import Fault, Reply, ScriptBody, ScriptedToolCall

Scope = dict[str, Any]
_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class DevLLMConfig:
    model: str = "dev-llm"
    #: Pause before each token, in milliseconds.
    token_delay_ms: float = 0.0
    #: With a value, default replies are exactly this many tokens.
    tokens: int | None = None
    #: Keep this many requests in the log (the benchmark sends many).
    record_limit: int = 1000


@dataclass
class StreamRecord:
    index: int
    started_at: float
    tokens_sent: int = 0
    finished_at: float | None = None
    completed: bool = False
    disconnected_at: float | None = None
    fault: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class DevLLMState:
    config: DevLLMConfig
    script: deque[Reply] = field(default_factory=deque)
    requests: deque[dict[str, Any]] = field(default_factory=deque)
    streams: dict[int, StreamRecord] = field(default_factory=dict)
    count: int = 0

    def next_reply(self, last_user: str) -> Reply | None:
        for reply in self.script:
            if reply.match is None or reply.match in last_user:
                reply.times -= 1
                if reply.times == 0:
                    self.script.remove(reply)
                return reply
        return None

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> StreamRecord:
        self.count += 1
        self.requests.append({"index": self.count, "body": body, "headers": headers})
        stream = StreamRecord(index=self.count, started_at=time.time())
        self.streams[self.count] = stream
        while len(self.requests) > self.config.record_limit:
            dropped = self.requests.popleft()
            self.streams.pop(dropped["index"], None)
        return stream

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.streams.clear()


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def default_reply(messages: list[dict[str, Any]]) -> Reply:
    """Without a script: call a tool when the user writes ``/tool <name> <json>``, and read
    tool results back when the conversation ends with them; otherwise the default text."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        results = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.append(f"{message.get('tool_call_id')} returned {message.get('content')}")
        return Reply(content="Tool results: " + "; ".join(reversed(results)) + ".")
    said = _last_user(messages)
    if last.get("role") == "user" and said.startswith("/tool "):
        name, _, arguments = said[len("/tool ") :].strip().partition(" ")
        return Reply(tool_calls=[ScriptedToolCall(name=name, arguments=arguments.strip() or "{}")])
    return Reply()


def default_tokens(config: DevLLMConfig, messages: list[dict[str, Any]]) -> list[str]:
    if config.tokens is not None:
        return [f"w{i} " for i in range(config.tokens)]
    said = _last_user(messages)
    text = (
        f"Hello! This is the development LLM, a stand-in for a real model. "
        f"You said: {said[:200]!r}. I can see {len(messages)} messages of this conversation."
    )
    return _WORDS.findall(text)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Any, status: int, body: Any, headers: list | None = None) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class DevLLMApp:
    def __init__(self, config: DevLLMConfig | None = None) -> None:
        self.state = DevLLMState(config or DevLLMConfig())
        #: Set by ``devllm.__main__`` so the refuse control can close the listening sockets.
        self.listener: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path, method = scope["path"], scope["method"]
        if path.endswith("/chat/completions") and method == "POST":
            await self.chat(scope, receive, send)
        elif path.endswith("/models"):
            await _send_json(
                send,
                200,
                {"object": "list", "data": [{"id": self.state.config.model, "object": "model"}]},
            )
        elif path == "/__dev__/script" and method == "POST":
            try:
                body = ScriptBody.model_validate_json(await _read_body(receive))
            except ValidationError as exc:
                await _send_json(send, 422, {"detail": exc.errors(include_url=False)})
                return
            self.state.script.extend(body.replies)
            await _send_json(send, 200, {"queued": len(self.state.script)})
        elif path == "/__dev__/config" and method == "POST":
            changes = orjson.loads(await _read_body(receive) or b"{}")
            for key, value in changes.items():
                setattr(self.state.config, key, value)
            await _send_json(send, 200, self.state.config.__dict__)
        elif path == "/__dev__/requests":
            await _send_json(send, 200, list(self.state.requests))
        elif path == "/__dev__/streams":
            await _send_json(send, 200, [s.as_dict() for s in self.state.streams.values()])
        elif path == "/__dev__/reset" and method == "POST":
            self.state.reset()
            await _send_json(send, 200, {"reset": True})
        elif path == "/__dev__/refuse" and method == "POST":
            body = orjson.loads(await _read_body(receive) or b"{}")
            await _send_json(send, 200, {"refusing_ms": body.get("duration_ms", 1000)})
            if self.listener is not None:
                await self.listener.refuse(body.get("duration_ms", 1000) / 1000)
        elif path in ("/health", "/"):
            await _send_json(send, 200, {"status": "ok", "service": "devllm"})
        else:
            await _send_json(send, 404, {"error": {"message": f"no route {method} {path}"}})

    async def chat(self, scope: Scope, receive: Any, send: Any) -> None:
        raw = await _read_body(receive)
        try:
            body = orjson.loads(raw)
            messages = body["messages"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await _send_json(send, 400, {"error": {"message": "invalid request body"}})
            return
        headers = {
            k.decode(): v.decode()
            for k, v in scope["headers"]
            if k in (b"authorization", b"x-internal-auth")
        }
        stream = self.state.record(body, headers)
        reply = self.state.next_reply(_last_user(messages)) or default_reply(messages)
        if reply.first_byte_delay_ms:
            await asyncio.sleep(reply.first_byte_delay_ms / 1000)
        fault = reply.fault
        if fault is not None and fault.kind == "status":
            stream.fault = "status"
            extra = [(b"retry-after", fault.retry_after.encode())] if fault.retry_after else []
            await _send_json(
                send, fault.status, {"error": {"message": f"scripted HTTP {fault.status}"}}, extra
            )
            stream.finished_at = time.time()
            return
        if not body.get("stream"):
            await self._complete(send, body, reply, stream)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        # Notice the client going away at once, even while we sleep between tokens.
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    stream.disconnected_at = time.time()
                    gone.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            await self._stream(send, body, reply, stream, gone)
        finally:
            watcher.cancel()
            stream.finished_at = time.time()

    def _tokens(self, body: dict[str, Any], reply: Reply) -> list[str]:
        if reply.tokens is not None:
            return reply.tokens
        if reply.content is not None:
            return _WORDS.findall(reply.content)
        if reply.tool_calls:
            return []
        return default_tokens(self.state.config, body["messages"])

    async def _stream(
        self,
        send: Any,
        body: dict[str, Any],
        reply: Reply,
        stream: StreamRecord,
        gone: asyncio.Event,
    ) -> None:
        config = self.state.config
        delay = (
            reply.token_delay_ms if reply.token_delay_ms is not None else config.token_delay_ms
        ) / 1000
        model = body.get("model") or config.model
        created = int(time.time())
        head = {
            "id": f"chatcmpl-dev-{stream.index}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        fault: Fault | None = reply.fault

        async def emit(payload: bytes) -> bool:
            if gone.is_set():
                return False
            await send({"type": "http.response.body", "body": payload, "more_body": True})
            return True

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(data) + b"\n\n"

        if not await emit(chunk({"role": "assistant", "content": ""})):
            return
        for token in self._tokens(body, reply):
            if fault is not None and stream.tokens_sent >= fault.after_tokens:
                await self._act_out(fault, emit, stream, gone)
                return
            if delay:
                try:
                    await asyncio.wait_for(gone.wait(), delay)
                    return
                except TimeoutError:
                    pass
            if not await emit(chunk({"content": token})):
                return
            stream.tokens_sent += 1
        if fault is not None:
            await self._act_out(fault, emit, stream, gone)
            return
        for i, call in enumerate(reply.tool_calls):
            arguments = (
                call.arguments
                if isinstance(call.arguments, str)
                else orjson.dumps(call.arguments).decode()
            )
            call_id = call.id or f"call_{uuid.uuid4().hex[:16]}"
            opening = {
                "index": i,
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            if not await emit(chunk({"tool_calls": [opening]})):
                return
            size = -(-len(arguments) // call.fragments) if arguments else 1
            for start in range(0, len(arguments), size):
                piece = {"index": i, "function": {"arguments": arguments[start : start + size]}}
                if not await emit(chunk({"tool_calls": [piece]})):
                    return
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        if not await emit(chunk({}, finish)):
            return
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = _usage(body, stream.tokens_sent)
            if not await emit(
                b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n"
            ):
                return
        if await emit(b"data: [DONE]\n\n"):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            stream.completed = True

    async def _complete(
        self, send: Any, body: dict[str, Any], reply: Reply, stream: StreamRecord
    ) -> None:
        """A non-streamed answer (``stream: false``), for completeness."""
        tokens = self._tokens(body, reply)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
        await _send_json(
            send,
            200,
            {
                "id": f"chatcmpl-dev-{stream.index}",
                "object": "chat.completion",
                "model": body.get("model") or self.state.config.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": _usage(body, len(tokens)),
            },
        )
        stream.tokens_sent = len(tokens)
        stream.completed = True

    async def _act_out(
        self, fault: Fault, emit: Any, stream: StreamRecord, gone: asyncio.Event
    ) -> None:
        stream.fault = fault.kind
        if fault.kind == "malformed":
            await emit(b"data: {this is not json\n\n")
            # Keep the connection open: the client must notice the bad chunk by itself.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), 30)
        elif fault.kind == "stall":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), fault.stall_ms / 1000)
        elif fault.kind == "drop":
            # Raising makes the server abort the connection mid-body (no terminating chunk).
            raise ConnectionAbortedError("devllm: scripted drop")


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "")) // 4 + 4 for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
