"""Interleaved before/after between checkouts.

``uv run python -m bench.ab NAME=DIR ... [--rounds 2]``:

Each ``DIR`` is a checkout with its own ``.venv`` (``git worktree add --detach DIR <commit>``,
then ``uv sync`` in it). Runs ``python -m bench --quick --only streams,ttft,fixed`` in each in
turn (A, B, C, A, B, C...), each with its own floor and direct baseline in the same run, and
prints the medians side by side with the ratio to the floor of the same run. Other work on the
machine moves every figure: the interleaving spreads it over all checkouts alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS = [
    ("CPU µs per relayed token @50", "cpu_us_per_token@50", 1),
    ("the floor @50, same run", "floor_us_per_token@50", 1),
    ("vs floor @50 (target ≤ 1.3x)", "ratio@50", 2),
    ("CPU µs per relayed token @200", "cpu_us_per_token@200", 1),
    ("the floor @200, same run", "floor_us_per_token@200", 1),
    ("vs floor @200 (target ≤ 1.3x)", "ratio@200", 2),
    ("added TTFT p50, ms", "added_ttft_p50@20", 2),
    ("added TTFT p99, ms", "added_ttft_p99@20", 2),
    ("fixed CPU per turn, ms (target ≤ 2)", "fixed_cpu_ms_per_turn", 2),
]


def run_once(name: str, checkout: Path, extra: list[str]) -> dict[str, Any]:
    python = checkout / ".venv" / "bin" / "python"
    command = [str(python), "-m", "bench", "--quick", "--only", "streams,ttft,fixed"]
    started = time.strftime("%H:%M:%S")
    proc = subprocess.run(
        [*command, "--label", name, *extra], cwd=checkout, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: bench failed\n{proc.stderr[-3000:]}")
    path = next(
        line.split("JSON:", 1)[1].strip()
        for line in reversed(proc.stdout.splitlines())
        if line.startswith("JSON:")
    )
    result = json.loads((checkout / path).read_text())
    metrics = result["summary"]["runs"][0]
    for level in (50, 200):
        floor = metrics.get(f"floor_us_per_token@{level}")
        value = metrics.get(f"cpu_us_per_token@{level}")
        metrics[f"ratio@{level}"] = value / floor if value and floor else None
    run = result["raw"][0]
    loads = [run[k]["loadavg_1m"] for k in ("contention_at_start", "contention_at_end")]
    metrics["load"] = f"{min(loads):.1f} to {max(loads):.1f}"
    metrics["started"] = started
    print(f"[{started}] {name}: {json.dumps({k: metrics.get(k) for _, k, _ in ROWS})}", flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkouts", nargs="+", metavar="NAME=DIR")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="write every run's metrics here (JSON)")
    args, extra = parser.parse_known_args()
    named = [(n, Path(d).resolve()) for n, _, d in (c.partition("=") for c in args.checkouts)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in named}
    for _ in range(args.rounds):
        for name, checkout in named:
            runs[name].append(run_once(name, checkout, extra))
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1))
    names = [name for name, _ in named]
    print("\n| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for title, key, digits in ROWS:
        cells = []
        for name in names:
            values = [r.get(key) for r in runs[name]]
            present = [v for v in values if v is not None]
            each = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
            med = f"**{statistics.median(present):.{digits}f}**" if present else "-"
            cells.append(f"{each} ({med})" if len(values) > 1 else med)
        print(f"| {title} | " + " | ".join(cells) + " |")
    loads = [", ".join(r["load"] for r in runs[name]) for name in names]
    print("| load average during the runs | " + " | ".join(loads) + " |")


if __name__ == "__main__":
    sys.exit(main())
