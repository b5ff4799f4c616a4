"""What every benchmark shares: timing, the machine's description, goals, and result files.

Every figure is a ratio against a baseline measured in the same invocation, and each
benchmark states its goal beside the figure (:class:`Goal`), so ``bench/suite.py`` shows which
goals hold on the machine at hand. Scripts run as ``python bench/<name>.py`` and import this
module as ``harness``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def best_time(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` calls (the least disturbed by other work), and its result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def machine() -> str:
    """One line naming the CPU, its cores, the memory, Python, torch and the GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB",
        f"Python {platform.python_version()}",
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            parts.append(f"{count} x {torch.cuda.get_device_name(0)}")
    except ImportError:
        pass
    return "; ".join(parts)


@dataclass(frozen=True)
class Goal:
    """A limit a figure must keep: ``value <op> limit`` (op is ``<=`` or ``>=``)."""

    figure: str
    op: str
    limit: float
    value: float

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def row(self) -> str:
        verdict = "met" if self.met else "**missed**"
        return f"| {self.figure} | {self.value:.3g} | {self.op} {self.limit:g} | {verdict} |"


def goals_table(goals: list[Goal]) -> str:
    return "\n".join(
        ["| figure | value | goal | |", "|---|---|---|---|", *(goal.row() for goal in goals)]
    )


def write_results(
    out: Path, name: str, figures: dict[str, Any], table: str, goals: list[Goal] = ()
) -> dict[str, Any]:
    """Write ``name.json`` (figures, goals, machine) and ``name.md`` (the table, the goals)."""
    text = table + (f"\n\n{goals_table(list(goals))}" if goals else "")
    record = {
        **figures,
        "machine": machine(),
        "goals": [{**asdict(goal), "met": goal.met} for goal in goals],
        "table": text,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{name}.md").write_text(f"{text}\n\nMachine: {record['machine']}\n")
    print(text)
    return record
