"""Instructions per relayed token, counted by valgrind's callgrind, for the runtime and the floor.

``uv run python -m bench.pertoken [--streams 50] [--tokens 256] [--checkout DIR ...]``
starts the development LLM and, in turn, the floor (``bench.floor_relay``) and the runtime of
each checkout under ``valgrind --tool=callgrind`` with counting off. After ``--streams``
warm-up turns, it counts ``--streams`` concurrent one-token turns, then ``--streams``
concurrent turns of ``--tokens`` tokens (each turn in a fresh session seeded with 20
messages), and takes the difference over the tokens' difference: what a relayed token costs,
with every per-turn cost (request, database, upstream connection) subtracted out. Every
thread of the server is counted. ``--rounds`` interleaves the servers: floor, checkouts,
floor, ... Prints each server's instructions per token and the runtime's ratio to the floor.

The development LLM paces tokens ``--token-delay-ms`` apart. Under valgrind a server is 20
to 50 times slower; if it cannot keep up, several tokens reach it in one read and cost less
each, so the delay must leave it idle between tokens: a run whose long turns took much longer
than ``tokens * delay`` is flagged. The cancel watcher's poll is set to once a minute (as in
``bench.instructions``), so a per-second cost does not weigh 50 times more per token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.instructions import callgrind_uvicorn, prepare, python_of, seed_sessions
from bench.procs import (
    BASE_DIR,
    BENCH_KEY,
    Pinning,
    Server,
    _wait_up,
    free_port,
    runtime_env,
    start_devllm,
)
from bench.run import loadgen

FLOOR = "floor"
PRIOR = 20


def floor_body(llm_url: str) -> bytes:
    """A request body of a session with 20 prior messages (per-turn costs cancel out anyway)."""
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"seeded message {i}"}
        for i in range(PRIOR)
    ] + [{"role": "user", "content": "bench turn 0: go on."}]
    return json.dumps(
        {
            "model": "dev-llm",
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        separators=(",", ":"),
    ).encode()


def configure(devllm: Server, **changes: object) -> None:
    request = urllib.request.Request(
        devllm.url + "/__dev__/config", data=json.dumps(changes).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def dumps(out_file: Path) -> list[int]:
    """The ``summary:`` of each dump ``callgrind_control -d`` asked for, in order (each dump
    counts from the previous one; the one written at exit, counting off, is left out)."""
    found: list[tuple[int, int]] = []
    for path in out_file.parent.glob(out_file.name + ".*"):
        number = int(path.name.rsplit(".", 1)[1].split("-")[0])
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                found.append((number, int(line.split()[1])))
                break
    return [count for _, count in sorted(found)]


def start(target: str | Path, devllm: Server, scratch: Path, tag: str) -> tuple[Server, Path]:
    port = free_port()
    out_file = scratch / f"callgrind-{tag}.out"
    if target == FLOOR:
        python, app, cwd = sys.executable, "bench.floor_relay:app", BASE_DIR
        env = {
            **os.environ,
            "FLOOR_LLM_URL": devllm.url,
            "FLOOR_UPSTREAM_BODY": floor_body(devllm.url).decode(),
        }
    else:
        assert isinstance(target, Path)
        python, app, cwd = python_of(target), "agent_runtime.asgi:application", target
        db_url = f"sqlite:///{scratch / f'{tag}.sqlite3'}"
        env = runtime_env(db_url, devllm.url, {"AGENT_RUNTIME__CANCEL_POLL_SECONDS": "60"})
    command = callgrind_uvicorn(python, app, port, out_file)
    log = scratch / f"server-{tag}.log"
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT
        )
    server = Server(str(target), f"http://127.0.0.1:{port}", process, log)
    _wait_up(server, "/health", timeout=600)
    return server, out_file


def measure(
    target: str | Path, devllm: Server, scratch: Path, args: argparse.Namespace, tag: str
) -> dict[str, float]:
    streams, tokens = args.streams, args.tokens
    if target == FLOOR:
        warm, short, long = ([f"{tag}-{k}{i}" for i in range(streams)] for k in "wsl")
    else:
        assert isinstance(target, Path)
        db_url = f"sqlite:///{scratch / f'{tag}.sqlite3'}"
        prepare(target, db_url, scratch / "migrate.log")
        warm, short, long = (seed_sessions(target, db_url, f"{tag}-{k}", streams) for k in "wsl")
    server, out_file = start(target, devllm, scratch, tag)
    spec = {
        "mode": "count",
        "kind": "relay",
        "host": "127.0.0.1",
        "port": server.port,
        "key": BENCH_KEY,
        "concurrency": streams,
        "turn_limit_s": 1800,
        "pids": {},
    }
    walls = []
    try:
        configure(devllm, tokens=1)
        loadgen({**spec, "sessions": warm, "expected_tokens": 1})
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True)
        for sessions, count in ((short, 1), (long, tokens)):
            configure(devllm, tokens=count)
            started = time.monotonic()
            result = loadgen({**spec, "sessions": sessions, "expected_tokens": count})
            walls.append(time.monotonic() - started)
            subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
            if result["errors"]:
                failed = f"{result['errors']} turns failed: {result['error_samples']}"
                raise RuntimeError(f"{tag}: {failed}")
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True)
    finally:
        server.stop()
    one, many = dumps(out_file)[:2]
    if args.keep:
        target_dir = BASE_DIR / "bench" / "results"
        target_dir.mkdir(exist_ok=True)
        for path in out_file.parent.glob(out_file.name + "*"):
            shutil.copy(path, target_dir / path.name)
    return {
        "per_token": (many - one) / (streams * (tokens - 1)),
        "per_turn": one / streams,
        "long_wall_s": walls[1],
        "paced_s": tokens * args.token_delay_ms / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--token-delay-ms", type=float, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--checkout", action="append", default=[], metavar="DIR")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind files")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    targets: list[str | Path] = [] if args.no_floor else [FLOOR]
    targets += [Path(c).resolve() for c in args.checkout] or [BASE_DIR]
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-pertoken-"))
    devllm = start_devllm(
        scratch, Pinning(None, None), token_delay_ms=args.token_delay_ms, tokens=1
    )
    results: dict[str, list[float]] = {str(t): [] for t in targets}
    try:
        for round_ in range(args.rounds):
            for n, target in enumerate(targets):
                tag = f"{dt.datetime.now():%H%M%S}-r{round_}-c{n}"
                found = measure(target, devllm, scratch, args, tag)
                results[str(target)].append(found["per_token"])
                flag = (
                    " (LAGGED: tokens may have been batched)"
                    if (found["long_wall_s"] > 1.25 * found["paced_s"] + 10)
                    else ""
                )
                print(
                    f"{target}: {found['per_token']:,.0f} instructions per token, "
                    f"{found['per_turn'] / 1e6:.2f} M per one-token turn; {args.streams} streams "
                    f"x {args.tokens} tokens in {found['long_wall_s']:.0f} s "
                    f"(paced {found['paced_s']:.0f} s){flag}",
                    flush=True,
                )
    finally:
        devllm.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    floor = results.get(FLOOR, [])
    print("\n| server | instructions per token (each round) | vs floor |\n|---|---|---|")
    for target, values in results.items():
        ratios = (
            ", ".join(f"{v / f:.2f}x" for v, f in zip(values, floor, strict=False))
            if floor and target != FLOOR
            else ""
        )
        print(f"| {target} | " + ", ".join(f"{v:,.0f}" for v in values) + f" | {ratios} |")


if __name__ == "__main__":
    main()
