"""The CPU benchmark suite: each benchmark in turn, then one table of every goal and whether
it holds on this machine.

    python bench/suite.py                  # full sizes, figures in bench/results/ (~15 min)
    python bench/suite.py --quick          # tiny sizes: checks that every benchmark runs
    python bench/suite.py --only startup,memory

Benchmarks run one after another in fresh processes, so none disturbs another's timing or
memory. The GPU benchmark is separate (``bash bench/gpu.sh`` on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from harness import RESULTS, machine

BENCHMARKS = ("startup", "loop_overhead", "evaluation", "bootstrap", "memory")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    return args


def run_benchmark(name: str, quick: bool, out: Path) -> list[dict]:
    """Run one benchmark script; its goals as written in its JSON."""
    command = [sys.executable, str(Path(__file__).parent / f"{name}.py"), "--out", str(out)]
    subprocess.run(command + (["--quick"] if quick else []), check=True)
    return json.loads((out / f"{name}.json").read_text())["goals"]


def summary(goals: dict[str, list[dict]], quick: bool) -> str:
    lines = [
        "| benchmark | figure | value | goal | |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {g['figure']} | {g['value']:.3g} | {g['op']} {g['limit']:g} | "
            f"{'met' if g['met'] else '**missed**'} |"
            for name, rows in goals.items()
            for g in rows
        ),
    ]
    size = "quick sizes (a smoke check, not figures)" if quick else "full sizes"
    return "\n".join([*lines, "", f"{size}; {machine()}"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    goals = {name: run_benchmark(name, args.quick, args.out) for name in args.only}
    text = summary(goals, args.quick)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)
    missed = [g["figure"] for rows in goals.values() for g in rows if not g["met"]]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
