"""Instructions per turn, counted by valgrind's callgrind: a fixed-cost figure that other work
on the machine does not move.

``uv run python -m bench.instructions [--turns 100] [--checkout DIR ...]`` starts the
development LLM (one-token replies) and the runtime under ``valgrind --tool=callgrind`` with
counting off, drives warm-up turns, counts the instructions of ``--turns`` one-token turns (4
at a time, each in a fresh session seeded with 20 messages: the ``fixed`` scenario's load),
and prints instructions per turn. Every thread of the server is counted. With ``--checkout``
each directory (a checkout with its own ``.venv``) is measured in turn, ``--rounds`` times,
interleaved; the load client and development LLM are this checkout's. ``--keep`` keeps the
callgrind files (``callgrind_annotate`` reads them) under ``bench/results/``.

The server runs 20 to 50 times slower under valgrind, so what it does by the clock would
weigh 20 to 50 times more per turn than in the ``fixed`` scenario: the cancel watcher's poll
(every ``CANCEL_POLL_SECONDS`` while a turn runs) is set to once a minute here, which leaves it
out. Compare figures of this tool with each other, not with CPU time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import (
    BASE_DIR,
    BENCH_KEY,
    Pinning,
    Server,
    _wait_up,
    free_port,
    runtime_env,
    start_devllm,
    uvicorn_command,
)
from bench.run import PRIOR_MESSAGES, loadgen

SEED = """
import json, sys
from bench import seed
seed.setup_django(sys.argv[1])
print(json.dumps(seed.seed_sessions(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
"""


def python_of(checkout: Path) -> str:
    found = checkout / ".venv" / "bin" / "python"
    return str(found) if checkout != BASE_DIR else sys.executable


def prepare(checkout: Path, db_url: str, log: Path) -> None:
    env = runtime_env(db_url, "http://127.0.0.1:1")
    with log.open("ab") as handle:
        subprocess.run(
            [python_of(checkout), "manage.py", "migrate", "--no-input"],
            env=env,
            cwd=checkout,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )


def seed_sessions(checkout: Path, db_url: str, prefix: str, count: int) -> list[str]:
    """Seeded by the checkout's own models (schemas differ between commits)."""
    out = subprocess.run(
        [python_of(checkout), "-c", SEED, db_url, prefix, str(count), str(PRIOR_MESSAGES)],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def total_instructions(out_file: Path) -> int:
    """The ``summary:`` lines of the dumps ``callgrind_control -d`` asked for (``<file>.N``;
    the one written at exit, counting off, is left out)."""
    total = 0
    for path in out_file.parent.glob(out_file.name + ".*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                total += int(line.split()[1])
                break
    return total


def measure(
    checkout: Path, devllm: Server, scratch: Path, turns: int, warmup: int, tag: str, keep: bool
) -> dict[str, float]:
    db_url = f"sqlite:///{scratch / f'{tag}.sqlite3'}"
    prepare(checkout, db_url, scratch / "migrate.log")
    warm = seed_sessions(checkout, db_url, f"{tag}-w", warmup)
    sessions = seed_sessions(checkout, db_url, f"{tag}-t", turns)
    port = free_port()
    out_file = scratch / f"callgrind-{tag}.out"
    command = callgrind_uvicorn(
        python_of(checkout), "agent_runtime.asgi:application", port, out_file
    )
    log = scratch / f"runtime-{tag}.log"
    env = runtime_env(db_url, devllm.url, {"AGENT_RUNTIME__CANCEL_POLL_SECONDS": "60"})
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, env=env, cwd=checkout, stdout=handle, stderr=subprocess.STDOUT
        )
    server = Server("runtime", f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_up(server, "/health", timeout=600)
        spec = {
            "mode": "count",
            "kind": "relay",
            "host": "127.0.0.1",
            "port": port,
            "key": BENCH_KEY,
            "concurrency": 4,
            "expected_tokens": 1,
            "pids": {},
        }
        loadgen({**spec, "sessions": warm})
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True)
        started = time.monotonic()
        result = loadgen({**spec, "sessions": sessions})
        wall = time.monotonic() - started
        subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True)
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True)
        if result["errors"]:
            raise RuntimeError(f"{tag}: {result['errors']} turns failed: {result['error_samples']}")
    finally:
        server.stop()
    count = total_instructions(out_file)
    if keep:
        target = BASE_DIR / "bench" / "results"
        target.mkdir(exist_ok=True)
        for path in out_file.parent.glob(out_file.name + "*"):
            shutil.copy(path, target / path.name)
    return {"instructions_per_turn": count / turns, "turns": turns, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--checkout", action="append", default=[], metavar="DIR")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind files")
    args = parser.parse_args()
    checkouts = [Path(c).resolve() for c in args.checkout] or [BASE_DIR]
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-instructions-"))
    devllm = start_devllm(scratch, Pinning(None, None), token_delay_ms=10, tokens=1)
    results: dict[str, list[float]] = {str(c): [] for c in checkouts}
    try:
        for round_ in range(args.rounds):
            for n, checkout in enumerate(checkouts):
                tag = f"{dt.datetime.now():%H%M%S}-r{round_}-c{n}"
                found = measure(checkout, devllm, scratch, args.turns, args.warmup, tag, args.keep)
                results[str(checkout)].append(found["instructions_per_turn"])
                print(
                    f"{checkout}: {found['instructions_per_turn'] / 1e6:.2f} M instructions "
                    f"per turn ({found['turns']} turns, {found['wall_s']:.0f} s)",
                    flush=True,
                )
    finally:
        devllm.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n| checkout | M instructions per turn (each round) |\n|---|---|")
    for checkout, values in results.items():
        print(f"| {checkout} | " + ", ".join(f"{v / 1e6:.2f}" for v in values) + " |")


def callgrind_uvicorn(python: str, app: str, port: int, out_file: Path) -> list[str]:
    """One uvicorn worker under callgrind, counting nothing until told (``callgrind_control``)."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out_file}",
        *uvicorn_command(python, app, port),
    ]


if __name__ == "__main__":
    main()
