"""Results side by side: ``uv run python -m bench.compare A.json B.json [...]``.

Prints a Markdown table of each full run's medians (columns labelled with ``--label``), the
form docs/benchmarks.md records experiments in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROWS = [
    ("CPU µs per relayed token @50", "cpu_us_per_token@50", "≤ 25", 1),
    ("CPU µs per relayed token @200", "cpu_us_per_token@200", "≤ 25", 1),
    ("added TTFT p50, ms", "added_ttft_p50@20", "≤ 1.5", 2),
    ("added TTFT p99, ms", "added_ttft_p99@20", "≤ 3", 2),
    ("added gap p99 @100, ms", "added_gap_p99@100", "≤ 2", 2),
    ("streams sustained (no gap > 100 ms)", "sustained_streams", "≥ 300", 0),
    ("direct baseline sustained", "direct_sustained_streams", "", 0),
    ("projected streams (CPU-bound)", "projected_streams", "≥ 300", 0),
    ("RSS per stream @200, KiB", "rss_per_stream_kib@200", "", 0),
    ("fixed CPU per turn, ms", "fixed_cpu_ms_per_turn", "≤ 1.5", 2),
    ("history scaling 10 → 10,000, %", "history_scaling_pct", "≤ 10", 0),
    ("history scaling 10 → 10,000, ms", "history_scaling_ms", "", 2),
]


def cell(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]]
    if not paths:
        raise SystemExit(__doc__)
    results = [json.loads(p.read_text()) for p in paths]
    labels = [r.get("label") or p.stem for r, p in zip(results, paths, strict=True)]
    print("| metric | target | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for title, key, target, digits in ROWS:
        values = [cell(r["summary"]["median"].get(key), digits) for r in results]
        print(f"| {title} | {target} | " + " | ".join(values) + " |")
    queries = [str(r["queries_per_turn"]["20 prior messages"].get("queries", "-")) for r in results]
    print("| SQL queries per turn | constant | " + " | ".join(queries) + " |")
    loads = []
    for r in results:
        seen = [
            run[k]["loadavg_1m"]
            for run in r["raw"]
            for k in ("contention_at_start", "contention_at_end")
        ]
        loads.append(f"{min(seen):.1f} to {max(seen):.1f}")
    print("| load average during the run | | " + " | ".join(loads) + " |")


if __name__ == "__main__":
    main()
