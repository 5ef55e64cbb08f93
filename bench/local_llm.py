"""Time to first token and tokens per second with a real model: through the runtime vs direct.

    bash scripts/local-llm install      # once
    uv run python bench/local_llm.py [--runs 5] [--max-tokens 128]

Starts llama.cpp's server on Gemma 3 270M (as ``scripts/local-llm llama`` does: one thread)
and the runtime under uvicorn in front of it (a scratch SQLite database), then alternates the
same request sent straight to llama.cpp and through the runtime, after one warm-up of each.
Greedy sampling (temperature 0) makes both produce the same tokens. The time to first token is
from sending the request to receiving the first content token; tokens per second count the
tokens after the first over the time from the first to the last. Prints each run and the
medians; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.servers import (  # noqa: E402
    local_llm_missing,
    start_llama_cpp,
    start_runtime,
)

MODEL = "gemma-3-270m"
KEY = "bench-internal-key-0123456789abcdef"
PROMPT = "Write a short story about a robot who learns to paint."


@dataclass
class Run:
    ttft: float  # seconds from the request to the first token
    tokens: int
    span: float  # seconds from the first token to the last

    @property
    def tokens_per_second(self) -> float:
        return (self.tokens - 1) / self.span if self.tokens > 1 and self.span > 0 else 0.0


def direct(client: httpx.Client, url: str, max_tokens: int) -> Run:
    """One streamed request straight to llama.cpp, as the runtime would send it."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    started = time.perf_counter()
    times = []
    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", ()):
                if choice["delta"].get("content"):
                    times.append(time.perf_counter())
    return Run(times[0] - started, len(times), times[-1] - times[0])


def through_runtime(client: httpx.Client, url: str, session_id: str) -> Run:
    """One user turn through the runtime (a new session, so the same prompt goes upstream)."""
    started = time.perf_counter()
    times = []
    with client.stream(
        "POST",
        url + "/agent/message/stream",
        json={"session_id": session_id, "content": PROMPT},
        headers={"X-Internal-Auth": KEY},
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event["type"] == "assistant_message" and event["token"]:
                times.append(time.perf_counter())
    return Run(times[0] - started, len(times), times[-1] - times[0])


def summary(name: str, runs: list[Run]) -> str:
    ttft = statistics.median(r.ttft for r in runs)
    tps = statistics.median(r.tokens_per_second for r in runs)
    return (
        f"{name:<15} TTFT median {ttft * 1000:6.0f} ms "
        f"({', '.join(f'{r.ttft * 1000:.0f}' for r in runs)}); "
        f"tokens/s median {tps:5.1f} ({', '.join(f'{r.tokens_per_second:.1f}' for r in runs)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each (>= 3)")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    missing = local_llm_missing()
    if missing:
        sys.exit(missing)

    with tempfile.TemporaryDirectory(prefix="bench-local-llm-") as tmp_name:
        tmp = Path(tmp_name)
        db_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
            cwd=BASE_DIR,
            check=True,
            env={**os.environ, "AGENT_RUNTIME__DATABASE_URL": db_url, "AGENT_RUNTIME__DEBUG": "1"},
        )
        llama = start_llama_cpp(tmp)
        runtime = start_runtime(
            tmp,
            db_url=db_url,
            llm_url=llama.url,
            key=KEY,
            llm_model=MODEL,
            llm_max_tokens=args.max_tokens,
            llm_temperature=0,
            log_level="WARNING",
        )
        try:
            with httpx.Client(timeout=120) as client:
                load = os.getloadavg()[0]
                print(
                    f"Gemma 3 270M Q4_K_M on llama.cpp (llama-cpp-python, 1 thread); "
                    f"{args.max_tokens} tokens a reply, greedy; load average {load:.1f}"
                )
                direct(client, llama.url, args.max_tokens)  # warm-up: page the model in
                through_runtime(client, runtime.url, "bench-warm-up")
                direct_runs, runtime_runs = [], []
                for i in range(args.runs):
                    direct_runs.append(direct(client, llama.url, args.max_tokens))
                    runtime_runs.append(through_runtime(client, runtime.url, f"bench-{i}"))
                    print(
                        f"  run {i + 1}: direct {direct_runs[-1].ttft * 1000:.0f} ms, "
                        f"{direct_runs[-1].tokens} tokens, "
                        f"{direct_runs[-1].tokens_per_second:.1f}/s; through the runtime "
                        f"{runtime_runs[-1].ttft * 1000:.0f} ms, {runtime_runs[-1].tokens} tokens, "
                        f"{runtime_runs[-1].tokens_per_second:.1f}/s"
                    )
            print(summary("direct", direct_runs))
            print(summary("through runtime", runtime_runs))
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
        finally:
            runtime.stop()
            llama.stop()


if __name__ == "__main__":
    main()
