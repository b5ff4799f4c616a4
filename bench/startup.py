"""Start-up benchmark: how long ``cxrlt --help``, the listing commands and ``cxrlt show`` take,
and proof that they import neither torch nor fastai nor timm.

Each command runs as a fresh process (what a user waits for at the shell), in rounds: every
round runs every command once, baselines included, so load from other work on the machine
falls on all of them alike; each figure is the best round. Baselines measured in the same
invocation:

- the bare interpreter (``python -c pass``): the floor no command can go below;
- ``python -c "import torch"``: for scale, what any command that touches torch pays.

Goals (issues 7 and 15): ``cxrlt --help``, ``cxrlt list losses`` and ``cxrlt show`` of a loss, a
post-training step and a backbone answer in under 0.5 s. ``show`` reads the entry's parameters
from its source (cxrlt/entry_docs.py); it imported the target, hence torch, before issue 15
(``cxrlt show loss bce``: 4.99 s, 2.7 times ``import torch``, in the record of issue 7).

The import check runs each command once more (the real console script, plugins from entry
points included) and records every heavy package left in its ``sys.modules``, with its
slowest imports by ``-X importtime``.

    python bench/startup.py              # 7 rounds
    python bench/startup.py --quick      # 1 round (a smoke check for the tests)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from harness import RESULTS, Goal, best_time, write_results

HEAVY = ("torch", "fastai", "timm", "torchvision")  # what no command here may import
PYTHON = sys.executable

# name -> argv after the console script (None: a baseline, argv given whole)
BASELINES = {
    "python -c pass": [PYTHON, "-c", "pass"],
    "python -c 'import torch'": [PYTHON, "-c", "import torch"],
}
COMMANDS = {
    "cxrlt --help": ["--help"],
    "cxrlt list losses": ["list", "losses"],
    "cxrlt list": ["list"],
    "cxrlt show loss bce": ["show", "loss", "bce"],
    "cxrlt show post crt": ["show", "post", "crt"],
    "cxrlt show backbone resnet18": ["show", "backbone", "resnet18"],
}
MUST_STAY_LIGHT = tuple(COMMANDS)
GOALS = dict.fromkeys(COMMANDS, 0.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds; each figure is the best")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="one round (a smoke check)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


def cxrlt_script() -> str:
    """The ``cxrlt`` console script of this interpreter's environment."""
    beside = Path(PYTHON).parent / "cxrlt"
    found = str(beside) if beside.exists() else shutil.which("cxrlt")
    if found is None:
        raise SystemExit("No `cxrlt` console script found: install the package (pip install -e .)")
    return found


def run_quietly(argv: list[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


# Runs the console script as the shell would, then writes every module left in sys.modules to
# the file named by argv[1]. sys.modules is the authority: ``-X importtime`` misses modules
# loaded through importlib.import_module (how plugins and registry targets are loaded).
_REPORT_MODULES = """
import atexit, json, runpy, sys
report, script = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(report, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def imported_modules(argv: list[str], report: Path) -> tuple[set[str], list[tuple[str, int]]]:
    """Every module ``argv`` (the console script and its arguments) left in ``sys.modules``,
    and (module, self µs) of those ``-X importtime`` saw, slowest first."""
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", _REPORT_MODULES, str(report), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    timed = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        timed.append((name.strip(), int(self_us)))
    return set(json.loads(report.read_text())), sorted(timed, key=lambda row: -row[1])


def import_check(script: str) -> dict[str, dict]:
    """For each command: the heavy packages it imported, and its slowest imports."""
    report, plugins = {}, metadata.entry_points(group="cxrlt")
    with tempfile.TemporaryDirectory(prefix="cxrlt-startup-") as folder:
        for name, args in COMMANDS.items():
            modules, timed = imported_modules([script, *args], Path(folder) / "modules.json")
            report[name] = {
                "modules": len(modules),
                "heavy_imports": sorted({m.split(".")[0] for m in modules} & set(HEAVY)),
                "plugins_loaded": sorted(p.value for p in plugins if p.module in modules),
                "slowest_imports_self_seconds": {m: us / 1e6 for m, us in timed[:5]},
            }
    return report


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    script = cxrlt_script()
    runs = {**BASELINES, **{name: [script, *rest] for name, rest in COMMANDS.items()}}
    for argv_ in runs.values():  # warm the file cache: every round then starts alike
        run_quietly(argv_)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved: each round runs every command once
        for name, argv_ in runs.items():
            times[name].append(best_time(lambda a=argv_: run_quietly(a), 1)[0])
    seconds = {name: min(values) for name, values in times.items()}
    bare, torch = seconds["python -c pass"], seconds["python -c 'import torch'"]

    imports = import_check(script)
    light = {name: not imports[name]["heavy_imports"] for name in MUST_STAY_LIGHT}
    goals = [Goal(f"{name} seconds", "<=", limit, seconds[name]) for name, limit in GOALS.items()]

    lines = [
        f"Best of {args.repeats} interleaved rounds, each command a fresh process.",
        "",
        "| command | seconds | vs bare python | vs import torch | heavy imports |",
        "|---|---|---|---|---|",
    ]
    for name, value in seconds.items():
        heavy = (", ".join(imports[name]["heavy_imports"]) or "none") if name in imports else ""
        lines.append(
            f"| `{name}` | {value:.3f} | {value / bare:.1f}x | {value / torch:.2f} | {heavy} |"
        )
    lines += [
        "",
        f"Commands free of {', '.join(HEAVY)}: "
        + ", ".join(f"`{name}` {'yes' if ok else '**no**'}" for name, ok in light.items()),
    ]
    figures = {
        "repeats": args.repeats,
        "seconds": seconds,
        "all_seconds": times,
        "baseline": "python -c pass",
        "ratio_to_bare": {name: value / bare for name, value in seconds.items()},
        "ratio_to_torch_import": {name: value / torch for name, value in seconds.items()},
        "imports": imports,
        "no_heavy_imports": light,
    }
    return write_results(args.out, "startup", figures, "\n".join(lines), goals)


if __name__ == "__main__":
    main()
