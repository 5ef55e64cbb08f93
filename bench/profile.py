"""Profile the runtime under a benchmark load with py-spy (a dev dependency).

``uv run python -m bench.profile fixed|streams [--concurrency N] [--env NAME=VALUE]``
writes ``bench/results/profile-<scenario>-<timestamp>.{txt,svg}``: collapsed stacks and a
flame graph of the server process, plus the top functions by own and by total samples.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import seed
from bench.procs import BASE_DIR, BENCH_KEY, Pinning, migrate
from bench.run import PRIOR_MESSAGES, REPLY_TOKENS, Bench, Plan, loadgen


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: uv sync (it is a dev dependency)")
    return found


def top(collapsed: Path, n: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        k = int(count)
        samples += k
        own[frames[-1]] += k
        for frame in set(frames):
            total[frame] += k
    out = [f"{samples} samples", "", "own:"]
    out += [f"{100 * c / samples:5.1f}%  {f}" for f, c in own.most_common(n)]
    out += ["", "total:"]
    out += [f"{100 * c / samples:5.1f}%  {f}" for f, c in total.most_common(n * 2)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["fixed", "streams"])
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--uvicorn-args", default="")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread that is not idle, not only the one holding the GIL (C code "
        "that releases the GIL, such as SQLite's, then counts too)",
    )
    args = parser.parse_args()

    plan = Plan()
    plan.uvicorn_args = args.uvicorn_args.split()
    for item in args.env:
        name, _, value = item.partition("=")
        plan.runtime_env[f"AGENT_RUNTIME__{name}"] = value
    pinning = Pinning.detect()
    pinning.pin_self()
    scratch = Path(tempfile.mkdtemp(prefix="agent-runtime-profile-"))
    db_url = f"sqlite:///{scratch / 'bench.sqlite3'}"
    migrate(db_url, scratch / "migrate.log")
    seed.setup_django(db_url)
    bench = Bench(plan, scratch, db_url, pinning)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = BASE_DIR / "bench" / "results" / f"profile-{args.scenario}-{stamp}"
    out.parent.mkdir(exist_ok=True)
    tokens = 1 if args.scenario == "fixed" else REPLY_TOKENS
    devllm, runtime = bench.servers(tokens)
    try:
        if args.scenario == "fixed":
            warm = seed.seed_sessions("pw", 40, PRIOR_MESSAGES)
            sessions = seed.seed_sessions("p", args.turns, PRIOR_MESSAGES)
            spec = {
                "mode": "count",
                "kind": "relay",
                "host": "127.0.0.1",
                "port": runtime.port,
                "key": BENCH_KEY,
                "concurrency": 4,
                "warmup_sessions": warm,
                "sessions": sessions,
                "expected_tokens": 1,
                "pids": {"runtime": runtime.pid},
            }
        else:
            sessions = seed.seed_sessions("p", args.concurrency, PRIOR_MESSAGES)
        record = [
            py_spy(),
            "record",
            "--pid",
            str(runtime.pid),
            "--rate",
            "500",
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "-o",
            str(out) + ".txt",
        ] + (["--native"] if args.native else [])
        spy = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1)
        if args.scenario == "fixed":
            result = loadgen(spec)
        else:
            result = bench.closed(
                "relay",
                args.concurrency,
                devllm,
                runtime,
                sessions,
                warmup_s=2,
                window_s=args.seconds,
            )
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    finally:
        runtime.stop()
        devllm.stop()
    subprocess.run(
        [py_spy(), "--help"], capture_output=True, check=False
    )  # (py-spy writes the svg only in flamegraph format; the raw file is what we read)
    summary = top(Path(str(out) + ".txt"))
    Path(str(out) + "-top.txt").write_text(summary)
    print({k: v for k, v in result.items() if k in ("cpu_ms_per_turn", "cpu_us_per_token")})
    print(summary)
    print(f"\n{out}.txt (collapsed stacks), {out}-top.txt")


if __name__ == "__main__":
    main()
