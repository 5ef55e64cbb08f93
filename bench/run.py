"""Benchmark the relay: ``uv run python -m bench [--quick] [--runs N] [--database ...]``.

Starts the development LLM (10 ms a token, 256 tokens a reply) and the runtime (one uvicorn
worker), each pinned to a core with taskset, measures each metric of ``docs/benchmarks.md``
against a baseline taken in the same run (the same client talking to the development LLM
directly), prints a table and writes ``bench/results/<timestamp>.json``. A speed figure is
never a pass/fail test: this prints figures, it does not assert them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import encoders, mcp_calls, seed
from bench.loadgen import direct_payload, relay_payload, summarize
from bench.procs import (
    BASE_DIR,
    BENCH_KEY,
    Pinning,
    Server,
    contention,
    migrate,
    rss_bytes,
    start_devllm,
    start_floor,
    start_runtime,
)

TOKEN_DELAY_MS = 10
REPLY_TOKENS = 256
PRIOR_MESSAGES = 20


@dataclass
class Plan:
    runs: int = 3
    cpu_levels: tuple[int, ...] = (50, 200)
    gap_level: int = 100
    ramp: tuple[int, ...] = (300, 400, 500, 600)
    warmup_s: float = 3.0
    window_s: float = 8.0
    ttft_samples: int = 60
    ttft_reply_tokens: int = 4
    fixed_turns: int = 400
    fixed_concurrency: int = 4
    mcp_calls: int = 300
    uvicorn_args: list[str] = field(default_factory=list)
    runtime_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            runs=1,
            ramp=(300,),
            warmup_s=1.5,
            window_s=3.0,
            ttft_samples=20,
            fixed_turns=100,
            mcp_calls=100,
        )


# --- helpers ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "commit": commit,
    }


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the load client in its own process (inherits this process's core pinning)."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def host_port(server: Server) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port}


def pids(runtime: Server | None, devllm: Server) -> dict[str, int]:
    found = {"devllm": devllm.pid}
    if runtime is not None:
        found["runtime"] = runtime.pid
    return found


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, plan: Plan, scratch: Path, db_url: str, pinning: Pinning) -> None:
        self.plan = plan
        self.scratch = scratch
        self.db_url = db_url
        self.pinning = pinning

    def servers(self, tokens: int) -> tuple[Server, Server]:
        devllm = start_devllm(
            self.scratch, self.pinning, token_delay_ms=TOKEN_DELAY_MS, tokens=tokens
        )
        try:
            runtime = start_runtime(
                self.scratch,
                self.pinning,
                db_url=self.db_url,
                llm_url=devllm.url,
                uvicorn_args=self.plan.uvicorn_args,
                extra_env=self.plan.runtime_env,
            )
        except Exception:
            devllm.stop()
            raise
        return devllm, runtime

    def closed(
        self,
        kind: str,
        concurrency: int,
        devllm: Server,
        runtime: Server,
        sessions: list[str] | None = None,
        warmup_s: float | None = None,
        window_s: float | None = None,
    ) -> dict[str, Any]:
        target = runtime if kind == "relay" else devllm
        spec = {
            "mode": "closed",
            "kind": kind,
            **host_port(target),
            "key": BENCH_KEY,
            "messages": seed.upstream_history(PRIOR_MESSAGES, "bench turn 0: go on."),
            "concurrency": concurrency,
            "sessions": sessions,
            "warmup_s": warmup_s if warmup_s is not None else self.plan.warmup_s,
            "window_s": window_s if window_s is not None else self.plan.window_s,
            # Spread the starts over one reply's duration, so turns open all the time.
            "stagger_s": min(REPLY_TOKENS * TOKEN_DELAY_MS / 1000, 0.8 * self.plan.warmup_s),
            "expected_tokens": REPLY_TOKENS,
            "pids": pids(runtime, devllm),
        }
        return loadgen(spec)

    # --- scenario 1: many concurrent streams -----------------------------------------------

    def streams(self, run: int) -> dict[str, Any]:
        plan = self.plan
        devllm, runtime = self.servers(REPLY_TOKENS)
        out: dict[str, Any] = {"levels": {}, "ramp": []}
        try:
            warm = seed.seed_sessions(f"r{run}-warm", 20, PRIOR_MESSAGES)
            self.closed("relay", 20, devllm, runtime, warm, warmup_s=1.0, window_s=1.0)
            out["idle_rss_bytes"] = rss_bytes(runtime.pid)
            levels = sorted({*plan.cpu_levels, plan.gap_level})
            for level in levels:
                sessions = seed.seed_sessions(f"r{run}-c{level}", level, PRIOR_MESSAGES)
                log(f"run {run + 1}: {level} streams, direct then relay")
                direct = self.closed("direct", level, devllm, runtime)
                relay = self.closed("relay", level, devllm, runtime, sessions)
                out["levels"][str(level)] = {"direct": direct, "relay": relay}
            out["floor"] = self.floor(run, devllm)
            for level in plan.ramp:
                sessions = seed.seed_sessions(f"r{run}-ramp{level}", level, PRIOR_MESSAGES)
                log(f"run {run + 1}: sustained? {level} streams, relay then direct")
                relay = self.closed("relay", level, devllm, runtime, sessions)
                direct = self.closed("direct", level, devllm, runtime)
                out["ramp"].append({"level": level, "relay": relay, "direct": direct})
                if not sustained_ok(relay):
                    break
        finally:
            runtime.stop()
            devllm.stop()
        return out

    def floor(self, run: int, devllm: Server) -> dict[str, Any]:
        """The bare relay (bench.floor_relay) at the CPU levels: the cost of relaying alone."""
        body = orjson.dumps(
            {
                "model": "dev-llm",
                "messages": seed.upstream_history(PRIOR_MESSAGES, "bench turn 0: go on."),
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        floor = start_floor(
            self.scratch,
            self.pinning,
            llm_url=devllm.url,
            upstream_body=body,
            uvicorn_args=self.plan.uvicorn_args,
        )
        out: dict[str, Any] = {}
        try:
            for level in self.plan.cpu_levels:
                log(f"run {run + 1}: {level} streams through the bare relay (the floor)")
                out[str(level)] = self.closed("relay", level, devllm, floor)
        finally:
            floor.stop()
        return out

    # --- scenario 2: time to first token, one request at a time ----------------------------

    def ttft(self, run: int) -> dict[str, Any]:
        plan = self.plan
        n = plan.ttft_samples
        devllm, runtime = self.servers(plan.ttft_reply_tokens)
        out: dict[str, Any] = {}
        try:
            requests: list[dict[str, Any]] = []

            def pair(tag: str, session_id: str, prior: int, i: int) -> None:
                content = f"ttft sample {i}: hello"
                requests.append(
                    {
                        "tag": f"{tag}/relay",
                        "kind": "relay",
                        **host_port(runtime),
                        "payload": relay_payload(
                            "127.0.0.1", runtime.port, BENCH_KEY, session_id, content
                        ).decode("latin-1"),
                    }
                )
                requests.append(
                    {
                        "tag": f"{tag}/direct",
                        "kind": "direct",
                        **host_port(devllm),
                        "payload": direct_payload(
                            "127.0.0.1", devllm.port, seed.upstream_history(prior, content)
                        ).decode("latin-1"),
                    }
                )

            for i, sid in enumerate(seed.seed_sessions(f"r{run}-tw", 10, PRIOR_MESSAGES)):
                pair("warmup", sid, PRIOR_MESSAGES, i)
            variants = {"20": PRIOR_MESSAGES, "10": 10}
            for tag, prior in variants.items():
                for i, sid in enumerate(seed.seed_sessions(f"r{run}-t{tag}", n, prior)):
                    pair(tag, sid, prior, i)
            # One long session, reused: each sample adds two messages to its 10,000.
            (long_sid,) = seed.seed_sessions(f"r{run}-t10000", 1, 10_000)
            for i in range(n):
                pair("10000", long_sid, 10_000, i)
            log(f"run {run + 1}: time to first token, {len(requests)} requests one at a time")
            result = loadgen({"mode": "sequential", "requests": requests, "pause_s": 0.01})
            out["errors"] = result["errors"]
            out["error_samples"] = result["error_samples"]
            for tag in ("20", "10", "10000"):
                relay = [r["ttft"] for r in result["results"] if r["tag"] == f"{tag}/relay"]
                direct = [r["ttft"] for r in result["results"] if r["tag"] == f"{tag}/direct"]
                relay = [v for v in relay if v is not None]
                direct = [v for v in direct if v is not None]
                paired = [r - d for r, d in zip(relay, direct, strict=False)]
                out[tag] = {
                    "relay_ms": summarize(relay),
                    "direct_ms": summarize(direct),
                    "paired_added_ms": summarize(paired),
                }
        finally:
            runtime.stop()
            devllm.stop()
        return out

    # --- scenario 3: fixed cost of a turn ---------------------------------------------------

    def fixed(self, run: int) -> dict[str, Any]:
        plan = self.plan
        devllm, runtime = self.servers(1)
        try:
            warm = seed.seed_sessions(f"r{run}-fw", 40, PRIOR_MESSAGES)
            sessions = seed.seed_sessions(f"r{run}-f", plan.fixed_turns, PRIOR_MESSAGES)
            log(f"run {run + 1}: fixed cost, {plan.fixed_turns} one-token turns")
            spec = {
                "mode": "count",
                "kind": "relay",
                **host_port(runtime),
                "key": BENCH_KEY,
                "concurrency": plan.fixed_concurrency,
                "warmup_sessions": warm,
                "sessions": sessions,
                "expected_tokens": 1,
                "pids": pids(runtime, devllm),
            }
            return loadgen(spec)
        finally:
            runtime.stop()
            devllm.stop()


def sustained_ok(result: dict[str, Any]) -> bool:
    """No error and no gap over 100 ms, at the paced 100 tokens/s per stream."""
    return result["errors"] == 0 and (result["gap_ms"]["max"] or 0) <= 100


# --- summary ----------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def per_run_metrics(run: dict[str, Any]) -> dict[str, Any]:
    streams, ttft, fixed = run["streams"], run["ttft"], run["fixed"]
    levels = streams["levels"]
    m: dict[str, Any] = {}
    for level in levels:
        relay, direct = levels[level]["relay"], levels[level]["direct"]
        m[f"cpu_us_per_token@{level}"] = relay["cpu_us_per_token"]["runtime"]
        m[f"devllm_us_per_token@{level}"] = direct["cpu_us_per_token"]["devllm"]
        m[f"client_us_per_token@{level}"] = direct["cpu_us_per_token"]["client"]
        m[f"relay_client_us_per_token@{level}"] = relay["cpu_us_per_token"]["client"]
        m[f"gap_p99_relay@{level}"] = relay["gap_ms"]["p99"]
        m[f"gap_p99_direct@{level}"] = direct["gap_ms"]["p99"]
        m[f"added_gap_p99@{level}"] = relay["gap_ms"]["p99"] - direct["gap_ms"]["p99"]
        m[f"errors@{level}"] = relay["errors"]
        floor = streams.get("floor", {}).get(level)
        if floor is not None:
            m[f"floor_us_per_token@{level}"] = floor["cpu_us_per_token"]["runtime"]
            m[f"floor_errors@{level}"] = floor["errors"]
        m[f"rss_per_stream_kib@{level}"] = (
            (relay["rss_bytes"]["runtime"] - streams["idle_rss_bytes"]) / int(level) / 1024
        )
    # Sustained: every level tried, in order, until the first that fails.
    tried = [(int(k), v["relay"], v["direct"]) for k, v in levels.items()]
    tried += [(r["level"], r["relay"], r["direct"]) for r in streams["ramp"]]
    tried.sort(key=lambda t: t[0])
    best, direct_best, limit_note = 0, 0, ""
    for level, relay, direct in tried:
        if not sustained_ok(relay):
            if not sustained_ok(direct):
                limit_note = f"direct baseline also failed at {level}"
            break
        best = level
        m["rss_per_stream_kib@sustained"] = (
            (relay["rss_bytes"]["runtime"] - streams["idle_rss_bytes"]) / level / 1024
        )
        m["devllm_cpu_share@sustained"] = relay["cpu_share"]["devllm"]
        m["runtime_cpu_share@sustained"] = relay["cpu_share"]["runtime"]
    for level, _, direct in tried:
        if not sustained_ok(direct):
            break
        direct_best = level
    top = max(int(k) for k in levels)
    per_token = m[f"cpu_us_per_token@{top}"]
    m["projected_streams"] = 1e6 / (per_token * 1000 / TOKEN_DELAY_MS) if per_token else None
    feeder = m[f"devllm_us_per_token@{top}"] + m[f"client_us_per_token@{top}"]
    m["feeder_streams"] = 1e6 / (feeder * 1000 / TOKEN_DELAY_MS) if feeder else None
    m["idle_rss_mib"] = streams["idle_rss_bytes"] / 2**20
    m["sustained_streams"] = best
    m["sustained_limit_note"] = limit_note
    m["direct_sustained_streams"] = direct_best
    for tag in ("20", "10", "10000"):
        m[f"ttft_p50_relay@{tag}"] = ttft[tag]["relay_ms"]["p50"]
        m[f"ttft_p50_direct@{tag}"] = ttft[tag]["direct_ms"]["p50"]
        m[f"added_ttft_p50@{tag}"] = ttft[tag]["relay_ms"]["p50"] - ttft[tag]["direct_ms"]["p50"]
        m[f"added_ttft_p99@{tag}"] = ttft[tag]["relay_ms"]["p99"] - ttft[tag]["direct_ms"]["p99"]
    a10, a10k = m["added_ttft_p50@10"], m["added_ttft_p50@10000"]
    m["history_scaling_pct"] = (a10k - a10) / a10 * 100 if a10 else None
    m["history_scaling_ms"] = a10k - a10
    m["fixed_cpu_ms_per_turn"] = fixed["cpu_ms_per_turn"]["runtime"]
    m["fixed_devllm_ms_per_turn"] = fixed["cpu_ms_per_turn"]["devllm"]
    m["fixed_errors"] = fixed["errors"]
    m["ttft_errors"] = ttft["errors"]
    if run.get("mcp"):
        m["tool_call_p50_ms_builtin"] = run["mcp"]["ms"]["builtin"]["p50"]
        for kind in ("stdio", "http"):
            m[f"mcp_added_p50_ms_{kind}"] = run["mcp"][f"added_p50_ms_{kind}"]
    return m


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(summary: dict[str, Any], queries: dict[str, Any], plan: Plan) -> list[list[str]]:
    med, runs = summary["median"], summary["runs"]

    def each(key: str, digits: int = 2) -> str:
        return " / ".join(fmt(r.get(key), digits) for r in runs)

    def met(value: float | None, target: float, higher: bool = False) -> str:
        if value is None:
            return "?"
        return "yes" if (value >= target if higher else value <= target) else "NO"

    rows = [["metric", "target", "median", "runs", "baseline (direct, median)", "met"]]
    for level in plan.cpu_levels:
        key = f"cpu_us_per_token@{level}"
        rows.append(
            [
                f"CPU µs per relayed token @{level} streams",
                "≤ 25",
                fmt(med[key], 1),
                each(key, 1),
                f"devllm {fmt(med[f'devllm_us_per_token@{level}'], 1)} µs/token, "
                f"client {fmt(med[f'client_us_per_token@{level}'], 1)} µs/token",
                met(med[key], 25),
            ]
        )
    for level in plan.cpu_levels:
        key = f"floor_us_per_token@{level}"
        rows.append(
            [
                f"  the floor: a bare ASGI + aiohttp relay @{level} streams (bench/floor_relay.py)",
                "-",
                fmt(med.get(key), 1),
                each(key, 1),
                "the same uvicorn, pinning and load; no Django, database or turn logic",
                "",
            ]
        )
    rows.append(
        [
            "added TTFT p50 (20 prior messages)",
            "≤ 1.5 ms",
            fmt(med["added_ttft_p50@20"]) + " ms",
            each("added_ttft_p50@20"),
            f"direct TTFT p50 {fmt(med['ttft_p50_direct@20'])} ms",
            met(med["added_ttft_p50@20"], 1.5),
        ]
    )
    rows.append(
        [
            "added TTFT p99 (20 prior messages)",
            "≤ 3 ms",
            fmt(med["added_ttft_p99@20"]) + " ms",
            each("added_ttft_p99@20"),
            "",
            met(med["added_ttft_p99@20"], 3),
        ]
    )
    gl = plan.gap_level
    rows.append(
        [
            f"added inter-token gap p99 @{gl} streams",
            "≤ 2 ms",
            fmt(med[f"added_gap_p99@{gl}"]) + " ms",
            each(f"added_gap_p99@{gl}"),
            f"direct gap p99 {fmt(med[f'gap_p99_direct@{gl}'])} ms, "
            f"relay {fmt(med[f'gap_p99_relay@{gl}'])} ms",
            met(med[f"added_gap_p99@{gl}"], 2),
        ]
    )
    note = "; ".join(sorted({r["sustained_limit_note"] for r in runs if r["sustained_limit_note"]}))
    rows.append(
        [
            "streams sustained per worker (no gap > 100 ms, no error)",
            "≥ 300",
            fmt(med["sustained_streams"], 0),
            each("sustained_streams", 0),
            f"direct sustained {fmt(med['direct_sustained_streams'], 0)}"
            + (f" ({note})" if note else "")
            + f"; ramp tried up to {max((*plan.ramp, *plan.cpu_levels))}",
            met(med["sustained_streams"], 300, higher=True),
        ]
    )
    top = max(plan.cpu_levels)
    rows.append(
        [
            f"RSS per open stream @{top} streams",
            "-",
            fmt(med.get(f"rss_per_stream_kib@{top}"), 0) + " KiB",
            each(f"rss_per_stream_kib@{top}", 0),
            f"idle RSS {fmt(med.get('idle_rss_mib'), 0)} MiB",
            "",
        ]
    )
    rows.append(
        [
            f"projected streams per worker, CPU-bound (1 core ÷ CPU per token @{top})",
            "≥ 300",
            fmt(med.get("projected_streams"), 0),
            each("projected_streams", 0),
            f"development LLM + client on their core: about "
            f"{fmt(med.get('feeder_streams'), 0)} streams",
            met(med.get("projected_streams"), 300, higher=True),
        ]
    )
    rows.append(
        [
            "fixed CPU per turn (1-token replies)",
            "≤ 1.5 ms",
            fmt(med["fixed_cpu_ms_per_turn"]) + " ms",
            each("fixed_cpu_ms_per_turn"),
            f"devllm {fmt(med['fixed_devllm_ms_per_turn'])} ms/turn",
            met(med["fixed_cpu_ms_per_turn"], 1.5),
        ]
    )
    scaling = med["history_scaling_pct"]
    rows.append(
        [
            "history scaling: added TTFT p50, 10 vs 10,000 prior",
            "within 10%",
            f"{fmt(med['history_scaling_pct'], 0)}% "
            f"({fmt(med['added_ttft_p50@10'])} → {fmt(med['added_ttft_p50@10000'])} ms)",
            each("history_scaling_pct", 0),
            "",
            met(None if scaling is None else abs(scaling), 10),
        ]
    )
    counts = {name: case["queries"] for name, case in queries.items()}
    statements = {name: case["total"] for name, case in queries.items()}
    constant = len({c for name, c in counts.items() if "prior messages" in name}) == 1
    rows.append(
        [
            "SQL queries per turn (turn_open + turn_record)",
            "constant, stated",
            f"{counts.get('20 prior messages')} "
            f"({statements.get('20 prior messages')} with BEGIN/COMMIT)",
            ", ".join(f"{k}: {v}" for k, v in counts.items()),
            "counted with CaptureQueriesContext around the two services",
            "yes" if constant else "NO",
        ]
    )
    for kind, label in (("stdio", "stdio"), ("http", "Streamable HTTP")):
        key = f"mcp_added_p50_ms_{kind}"
        if key in med:
            rows.append(
                [
                    f"added time of one MCP tool call over {label} (p50, bench/mcp_calls.py)",
                    "-",
                    fmt(med[key], 3) + " ms",
                    each(key, 3),
                    f"built-in echo {fmt(med['tool_call_p50_ms_builtin'], 3)} ms per call",
                    "",
                ]
            )
    return rows


def render(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(out)


# --- database ---------------------------------------------------------------------------------


def scratch_database(kind: str, scratch: Path) -> tuple[str, Any]:
    """A scratch database for this run, and how to drop it."""
    if kind == "sqlite":
        return f"sqlite:///{scratch / 'bench.sqlite3'}", lambda: None
    base = (
        "postgres://postgres@127.0.0.1:5432/postgres"
        if kind == "postgres"
        else kind.rsplit("/", 1)[0] + "/postgres"
    )
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(base.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return base.rsplit("/", 1)[0] + f"/{name}", drop


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 2 minutes")
    parser.add_argument("--runs", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="sqlite (a scratch file, default), postgres (a scratch database on "
        "127.0.0.1:5432) or a postgres:// server URL to create the scratch database on",
    )
    parser.add_argument(
        "--ramp",
        help="comma-separated concurrency levels for the sustained-streams search ('none': skip)",
    )
    parser.add_argument(
        "--uvicorn-args", default="", help="extra uvicorn flags, e.g. '--loop asyncio --http h11'"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra runtime setting, e.g. LLM_CLIENT=...",
    )
    parser.add_argument(
        "--only", help="comma-separated scenarios: streams,ttft,fixed,mcp,encoders (in-process)"
    )
    parser.add_argument(
        "--levels", help="comma-separated concurrency levels of the streams scenario (experiments)"
    )
    parser.add_argument("--label", default="", help="a note stored in the JSON (experiments)")
    args = parser.parse_args(argv)

    plan = Plan.quick() if args.quick else Plan()
    if args.runs:
        plan.runs = args.runs
    if args.ramp:
        plan.ramp = tuple(int(v) for v in args.ramp.split(",") if v.strip().isdigit())
    if args.levels:
        plan.cpu_levels = tuple(int(v) for v in args.levels.split(","))
        plan.gap_level = plan.cpu_levels[0]
    plan.uvicorn_args = args.uvicorn_args.split()
    for item in args.env:
        name, _, value = item.partition("=")
        plan.runtime_env[f"AGENT_RUNTIME__{name}"] = value
    only = set((args.only or "streams,ttft,fixed,mcp,encoders").split(","))
    if only == {"encoders"}:
        encoders.main()
        return

    pinning = Pinning.detect()
    info = machine()
    pinning.pin_self()
    info["pinning"] = asdict(pinning)
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-bench-"))
    db_url, drop_db = scratch_database(args.database, scratch)
    info["database"] = db_url.split("://")[0]
    log(f"scratch {scratch}; database {db_url}; pinning {pinning}")
    started = time.monotonic()
    try:
        migrate(db_url, scratch / "migrate.log")
        seed.setup_django(db_url)
        queries = seed.count_queries()
        bench = Bench(plan, scratch, db_url, pinning)
        runs: list[dict[str, Any]] = []
        for run in range(plan.runs):
            result: dict[str, Any] = {"contention_at_start": contention()}
            result["streams"] = bench.streams(run) if "streams" in only else None
            result["ttft"] = bench.ttft(run) if "ttft" in only else None
            result["fixed"] = bench.fixed(run) if "fixed" in only else None
            if "mcp" in only:
                log(f"run {run + 1}: one MCP tool call against a built-in one, stdio and HTTP")
                result["mcp"] = mcp_calls.run(scratch, pinning, calls=plan.mcp_calls)
            result["contention_at_end"] = contention()
            runs.append(result)
    finally:
        drop_db()
    elapsed = time.monotonic() - started

    complete = only >= {"streams", "ttft", "fixed"}
    encoder_costs = encoders.measure() if "encoders" in only else None
    metrics = [per_run_metrics(r) for r in runs] if complete else []
    summary: dict[str, Any] = {"runs": metrics, "median": {}}
    if metrics:
        for key in metrics[0]:
            values = [m.get(key) for m in metrics]
            if all(isinstance(v, int | float) or v is None for v in values):
                summary["median"][key] = median(values)
    out = {
        "label": args.label,
        "machine": info,
        "plan": asdict(plan),
        "elapsed_s": elapsed,
        "queries_per_turn": queries,
        "summary": summary,
        "encoders": encoder_costs,
        "raw": runs,
    }
    results_dir = BASE_DIR / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"{stamp}.json"
    path.write_text(json.dumps(out, indent=1))
    shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"\nAgent Runtime relay benchmark: {plan.runs} run(s), {elapsed:.0f} s, "
        f"{info['nproc']} cores ({info['cpu_model']}), Python {info['python']}, "
        f"database {info['database']}, pinning server={pinning.server} others={pinning.others}"
    )
    loads = [r[k]["loadavg_1m"] for r in runs for k in ("contention_at_start", "contention_at_end")]
    print(
        f"machine load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f} "
        f"on {info['nproc']} cores (latency figures are skewed by other users' work)"
    )
    print(
        f"devllm: {TOKEN_DELAY_MS} ms/token, {REPLY_TOKENS} tokens/reply; figures are medians "
        "over the runs, each run with its own direct baseline.\n"
    )
    if complete:
        rows = table(summary, queries, plan)
        print(render(rows))
        print("\nMarkdown:\n" + markdown(rows))
    else:
        print(json.dumps(runs, indent=1)[:20000])
        for run in runs:
            if run.get("mcp"):
                added = {k: round(v, 3) for k, v in run["mcp"].items() if k.startswith("added")}
                print(f"MCP tool call, added over the built-in echo (ms): {added}")
    if encoder_costs is not None:
        print("\n" + encoders.render(encoder_costs))
    print(f"\nJSON: {path.relative_to(BASE_DIR)}")
