"""The load client: raw HTTP/1.1 over asyncio protocols on uvloop, in a process of its own.

``python -m bench.loadgen`` reads a JSON spec on stdin and writes a JSON result on stdout.
It talks either to the runtime (``relay``) or straight to the development LLM (``direct``),
with keep-alive connections, and timestamps every token event as its bytes arrive. Parsing
is a few ``bytes`` searches per event, so the client costs a few microseconds per token; it
measures its own CPU time and reports it, so a reader can check it was not the bottleneck.

Modes:
- ``closed``: ``concurrency`` slots, each running turns back to back in its own session, for
  ``warmup_s`` and then a measurement window of ``window_s``; CPU times of the given pids
  are read at the window's edges and memory in its middle.
- ``count``: ``concurrency`` slots share a list of sessions, one turn each (fixed cost per
  turn); CPU is read before the first and after the last.
- ``sequential``: one request at a time from a list (time to first token).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.procs import cpu_times, rss_bytes

perf = time.perf_counter


def relay_payload(host: str, port: int, key: str, session_id: str, content: str) -> bytes:
    body = json.dumps({"session_id": session_id, "content": content}).encode()
    return (
        f"POST /agent/message/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"X-Internal-Auth: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def direct_payload(host: str, port: int, messages: list[dict[str, Any]]) -> bytes:
    """The request the runtime itself sends upstream (same body, same headers)."""
    body = json.dumps(
        {
            "model": "dev-llm",
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        separators=(",", ":"),
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class Outcome:
    started: float
    times: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.times[0] - self.started if self.times else None


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, kind: str) -> None:
        self.relay = kind == "relay"
        self.transport: asyncio.Transport | None = None
        self.future: asyncio.Future[Outcome] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.future is not None and not self.future.done():
            self.outcome.error = "connection lost"
            self.future.set_result(self.outcome)

    def request(self, payload: bytes) -> asyncio.Future[Outcome]:
        assert self.transport is not None
        self.future = asyncio.get_running_loop().create_future()
        self.head = b""
        self.in_body = False
        self.tail = b""
        self.done = False
        self.outcome = Outcome(started=perf())
        self.transport.write(payload)
        return self.future

    def _finish(self, error: str | None = None) -> None:
        if error and not self.outcome.error:
            self.outcome.error = error
        if self.future is not None and not self.future.done():
            self.future.set_result(self.outcome)

    def data_received(self, data: bytes) -> None:
        now = perf()
        if self.future is None or self.future.done():
            return
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(self.head[9:12])
            data = self.head[end + 4 :]
            if status != 200:
                self._finish(f"HTTP {status}")
                assert self.transport is not None
                self.transport.close()
                return
            self.in_body = True
        buf = self.tail + data if self.tail else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            self.tail = buf
            if self.done and buf.endswith(b"0\r\n\r\n"):
                self._finish()
            return
        self.tail = buf[end + 2 :]
        times = self.outcome.times
        for event in buf[:end].split(b"\n\n"):
            if self.relay:
                if b'"is_final":false' in event:
                    times.append(now)
                elif b'"type":"error"' in event:
                    self.outcome.error = "error event"
                elif b"[DONE]" in event:
                    self.done = True
            elif b'"content":"' in event and b'"content":""' not in event:
                times.append(now)
            elif b"[DONE]" in event:
                self.done = True
            elif b'"error"' in event:
                self.outcome.error = "error event"
        if self.done and self.tail.endswith(b"0\r\n\r\n"):
            self._finish()


async def connect(host: str, port: int, kind: str) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(
        lambda: Connection(kind), host, port
    )
    return protocol


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host = spec["host"]
        self.port = spec["port"]
        self.kind = spec["kind"]
        self.expected_tokens = spec.get("expected_tokens")
        self.errors: list[str] = []

    def payload(self, session_id: str, turn: int) -> bytes:
        if self.kind == "relay":
            return relay_payload(
                self.host, self.port, self.spec["key"], session_id, f"bench turn {turn}: go on."
            )
        return direct_payload(self.host, self.port, self.spec["messages"])

    async def turn(
        self, conn: Connection, payload: bytes, limit_s: float
    ) -> tuple[Connection, Outcome]:
        if conn.closed:
            conn = await connect(self.host, self.port, self.kind)
        try:
            outcome = await asyncio.wait_for(conn.request(payload), limit_s)
        except TimeoutError:
            outcome = conn.outcome
            outcome.error = "timeout"
            assert conn.transport is not None
            conn.transport.close()
        if (
            outcome.error is None
            and self.expected_tokens
            and len(outcome.times) != self.expected_tokens
        ):
            outcome.error = f"{len(outcome.times)} tokens, expected {self.expected_tokens}"
        if outcome.error:
            self.errors.append(outcome.error)
        return conn, outcome


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: list[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50 / p90 / p99 / max, in milliseconds by default."""

    def s(v: float | None) -> float | None:
        return None if v is None else round(v * scale, 4)

    return {
        "n": len(values),
        "p50": s(percentile(values, 50)),
        "p90": s(percentile(values, 90)),
        "p99": s(percentile(values, 99)),
        "max": s(max(values) if values else None),
    }


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of each process, plus the system part alone (``<name>_sys``)."""
    snap: dict[str, float] = {}
    for name, pid in pids.items():
        user, system = cpu_times(pid)
        snap[name], snap[f"{name}_sys"] = user + system, system
    times = os.times()
    snap["client"], snap["client_sys"] = times.user + times.system, times.system
    return snap


async def run_closed(client: Client, spec: dict[str, Any]) -> dict[str, Any]:
    concurrency = spec["concurrency"]
    warmup, window = spec["warmup_s"], spec["window_s"]
    stagger = spec.get("stagger_s", warmup * 0.8)
    sessions = spec.get("sessions") or [f"s{i}" for i in range(concurrency)]
    pids = spec.get("pids", {})
    start = perf()
    w0, w1 = start + warmup, start + warmup + window
    outcomes: list[Outcome] = []
    marks: dict[str, Any] = {}

    async def slot(i: int) -> None:
        await asyncio.sleep(stagger * i / concurrency)
        conn = await connect(client.host, client.port, client.kind)
        turn = 0
        while perf() < w1:
            conn, outcome = await client.turn(conn, client.payload(sessions[i], turn), 120)
            outcomes.append(outcome)
            turn += 1
            if outcome.error:
                await asyncio.sleep(0.05)
        if conn.transport is not None:
            conn.transport.close()

    async def sampler() -> None:
        await asyncio.sleep(max(0.0, w0 - perf()))
        marks["cpu0"], marks["t0"] = cpu_snapshot(pids), perf()
        await asyncio.sleep(window / 2)
        marks["rss"] = {name: rss_bytes(pid) for name, pid in pids.items()}
        await asyncio.sleep(max(0.0, w1 - perf()))
        marks["cpu1"], marks["t1"] = cpu_snapshot(pids), perf()

    await asyncio.gather(sampler(), *(slot(i) for i in range(concurrency)))
    t0, t1 = marks["t0"], marks["t1"]
    tokens = 0
    gaps: list[float] = []
    ttfts: list[float] = []
    for outcome in outcomes:
        times = outcome.times
        for k, t in enumerate(times):
            if t0 <= t <= t1:
                tokens += 1
                if k:
                    gaps.append(t - times[k - 1])
        if times and t0 <= times[0] <= t1:
            ttfts.append(times[0] - outcome.started)
    cpu = {name: marks["cpu1"][name] - marks["cpu0"][name] for name in marks["cpu0"]}
    return {
        "concurrency": concurrency,
        "window_s": t1 - t0,
        "tokens": tokens,
        "tokens_per_s": tokens / (t1 - t0),
        "turns": len(outcomes),
        "errors": len(client.errors),
        "error_samples": client.errors[:5],
        "cpu_s": cpu,
        "cpu_us_per_token": {name: v * 1e6 / tokens if tokens else None for name, v in cpu.items()},
        "cpu_share": {name: v / (t1 - t0) for name, v in cpu.items()},
        "rss_bytes": marks.get("rss", {}),
        "gap_ms": summarize(gaps),
        "ttft_ms": summarize(ttfts),
    }


async def run_count(client: Client, spec: dict[str, Any]) -> dict[str, Any]:
    concurrency = spec["concurrency"]
    warm = list(spec.get("warmup_sessions", []))
    queue = list(spec["sessions"])
    pids = spec.get("pids", {})
    outcomes: list[Outcome] = []
    limit_s = spec.get("turn_limit_s", 60)

    async def worker(pool: list[str], record: bool) -> None:
        conn = await connect(client.host, client.port, client.kind)
        while pool:
            conn, outcome = await client.turn(conn, client.payload(pool.pop(), 0), limit_s)
            if record:
                outcomes.append(outcome)
        if conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
    client.errors.clear()
    cpu0, t0 = cpu_snapshot(pids), perf()
    await asyncio.gather(*(worker(queue, True) for _ in range(concurrency)))
    cpu1, t1 = cpu_snapshot(pids), perf()
    turns = len(outcomes)
    cpu = {name: cpu1[name] - cpu0[name] for name in cpu0}
    return {
        "concurrency": concurrency,
        "turns": turns,
        "wall_s": t1 - t0,
        "errors": len(client.errors),
        "error_samples": client.errors[:5],
        "cpu_s": cpu,
        "cpu_ms_per_turn": {name: v * 1e3 / turns for name, v in cpu.items()},
        "ttft_ms": summarize([o.ttft for o in outcomes if o.ttft is not None]),
    }


async def run_sequential(spec: dict[str, Any]) -> dict[str, Any]:
    """Requests one at a time, alternating targets, each on its own keep-alive connection."""
    conns: dict[str, Connection] = {}
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for item in spec["requests"]:
        key = f"{item['host']}:{item['port']}"
        conn = conns.get(key)
        if conn is None or conn.closed:
            conn = conns[key] = await connect(item["host"], item["port"], item["kind"])
        outcome = await asyncio.wait_for(conn.request(item["payload"].encode("latin-1")), 60)
        if outcome.error:
            errors.append(outcome.error)
        results.append({"tag": item["tag"], "ttft": outcome.ttft, "tokens": len(outcome.times)})
        await asyncio.sleep(spec.get("pause_s", 0.01))
    for conn in conns.values():
        if conn.transport is not None:
            conn.transport.close()
    return {"results": results, "errors": len(errors), "error_samples": errors[:5]}


async def main_async(spec: dict[str, Any]) -> dict[str, Any]:
    mode = spec["mode"]
    if mode == "sequential":
        return await run_sequential(spec)
    client = Client(spec)
    if mode == "closed":
        return await run_closed(client, spec)
    if mode == "count":
        return await run_count(client, spec)
    raise ValueError(f"unknown mode {mode}")


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    result = runner(main_async(spec))
    times = os.times()
    result["client_cpu_total_s"] = times.user + times.system
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
