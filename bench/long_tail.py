"""Long-tail benchmark: losses compared on overall and head / medium / tail mAP over seeds.

A long-tail method earns its place by raising tail mAP without sinking the head, and a
single seed cannot tell that from noise on small data. So each loss is trained with every
seed on the same data and backbone (``cxrlt run``, one run directory each), and the table
gives mean ± sample standard deviation over the seeds.

Groups are equal thirds by training frequency (``cxrlt.evaluation.groups``), taken from each
run's own training counts: the patient split, hence the counts, follows the seed. The bounds
used are written under the table.

    python bench/long_tail.py                  # bce, asl, ldam-drw x seeds 0, 1, 2
    python bench/long_tail.py --quick          # tiny data, 1 epoch, 1 seed: a smoke check

Writes ``long_tail.md``, ``long_tail.json`` and ``long_tail_runs.csv`` (one row a run) to
``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cxrlt.errors import CxrltError
from cxrlt.evaluation.groups import GROUPS, frequency_groups, group_means
from cxrlt.outputs.run_dir import CONFIG
from cxrlt.pipeline import RunOptions, check_specs, run
from cxrlt.spec import Spec, parse_specs

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = ("mAP", *(f"mAP_{g}" for g in GROUPS), "mAUC")
HEADERS = ("mAP", *(f"{g} mAP" for g in GROUPS), "mAUC")
SPREAD = "sample standard deviation (n - 1)"

FULL = {
    "losses": "bce,asl,ldam-drw",
    "seeds": "0,1,2",
    "epochs": RunOptions.epochs,
    "data": RunOptions.dataset,
    "size": RunOptions.size,
    "out": RESULTS,
}
QUICK = {
    "losses": "bce,asl",
    "seeds": "0",
    "epochs": 1,
    "data": "synthetic:n_images=160,size=32",
    "size": 32,
    "out": Path(tempfile.gettempdir()) / "cxrlt-long-tail-quick",  # keeps the real results
}


def parse_losses(text: str) -> list[Spec]:
    """Loss specs as ``cxrlt run --loss`` takes them; ``asl:gamma_neg=2,clip=0.1`` is one."""
    losses = parse_specs(text)
    names = [str(loss) for loss in losses]
    if len(set(names)) != len(names):
        raise CxrltError(f"--losses names a loss twice: {text!r}.")
    return losses


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise CxrltError(
            f"--seeds must be whole numbers separated by commas, got {text!r}."
        ) from None
    if len(set(seeds)) != len(seeds):
        raise CxrltError(f"--seeds names a seed twice: {text!r}.")
    return seeds


def run_one(options: RunOptions) -> dict:
    """Train and evaluate one (loss, seed); the groups come from this run's training counts."""
    start = time.perf_counter()
    run_dir, report = run(options, Console(quiet=True))
    config = json.loads(run_dir.file(CONFIG).read_text())
    groups = frequency_groups(config["data"]["train_counts"], config["data"]["classes"])
    by_group = group_means(report.per_class, groups, "AP")
    return {
        "loss": options.loss,
        "seed": options.seed,
        "mAP": report.overall["mAP"],
        **{f"mAP_{g}": by_group[g] for g in GROUPS},
        "mAUC": report.overall["mAUC"],
        "mF1": report.overall["mF1"],
        "n_classes_scored": report.overall["n_classes_scored"],
        "groups": groups.description,
        "device": config["environment"]["device"],
        "seconds": round(time.perf_counter() - start, 1),
        "run_dir": str(run_dir.path),
    }


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per loss, in the order given: mean and sample std of each metric, and the seed count."""
    by_loss = runs.groupby("loss", sort=False)[list(METRICS)]
    summary = by_loss.mean().add_suffix("_mean").join(by_loss.std(ddof=1).add_suffix("_std"))
    summary.insert(0, "n_seeds", runs.groupby("loss", sort=False).size())
    return summary


def cell(mean: float, std: float) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def rows(summary: pd.DataFrame) -> list[list[str]]:
    return [
        [loss, str(int(row.n_seeds)), *(cell(row[f"{m}_mean"], row[f"{m}_std"]) for m in METRICS)]
        for loss, row in summary.iterrows()
    ]


def group_lines(runs: pd.DataFrame) -> list[str]:
    """The bounds used, once per distinct split (seeds sharing one share the line)."""
    lines = []
    for description, seeds in runs.groupby("groups", sort=False)["seed"]:
        listed = ", ".join(map(str, sorted(set(seeds))))
        lines.append(f"- seed{'s' if seeds.nunique() > 1 else ''} {listed}: {description}")
    return lines


def markdown(runs: pd.DataFrame, summary: pd.DataFrame, settings: dict) -> str:
    seeds = ", ".join(map(str, sorted(set(runs["seed"]))))
    devices = ", ".join(sorted(set(runs["device"])))
    epochs = f"{settings['epochs']} epoch{'s' if settings['epochs'] > 1 else ''}"
    header = ("loss", "seeds", *HEADERS)
    return "\n".join(
        [
            "# Long-tail benchmark",
            "",
            f"Data `{settings['data']}`, backbone `{settings['arch']}`, {epochs} at "
            f"{settings['size']} px, on {devices}; seeds {seeds}. "
            f"Cells: mean ± {SPREAD} over seeds (a mean alone for one seed). "
            "mAP and mAUC are macro means over classes with validation positives; head, medium "
            "and tail mAP are the same within each group.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows(summary)),
            "",
            "Groups: equal thirds of the classes by training positives (ties by class order, "
            "the remainder to the head), from each run's training split:",
            "",
            *group_lines(runs),
            "",
        ]
    )


def print_table(console: Console, summary: pd.DataFrame, runs: pd.DataFrame) -> None:
    table = Table(title=f"Long-tail benchmark: mean ± {SPREAD} over seeds")
    for column in ("loss", "seeds", *HEADERS):
        table.add_column(column, justify="left" if column == "loss" else "right")
    for row in rows(summary):
        table.add_row(*row)
    console.print(table)
    console.print("Groups:\n" + "\n".join(group_lines(runs)))


def slug(text: str) -> str:
    return re.sub(r"[^\w.=-]+", "_", text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", help=f"comma list of loss specs (default {FULL['losses']})")
    parser.add_argument("--seeds", help=f"comma list of seeds (default {FULL['seeds']})")
    parser.add_argument("--epochs", type=int, help=f"per run (default {FULL['epochs']})")
    parser.add_argument("--data", help=f"dataset spec (default {FULL['data']})")
    parser.add_argument("--data-path", help="the data set's folder, where it needs one")
    parser.add_argument("--arch", default=RunOptions.arch, help="backbone spec, for every run")
    parser.add_argument("--size", type=int, help=f"image side in pixels (default {FULL['size']})")
    parser.add_argument("--out", type=Path, help=f"results folder (default {FULL['out']})")
    parser.add_argument("--work", type=Path, help="keep the run directories here (replaced)")
    parser.add_argument("--quick", action="store_true", help="tiny settings for a smoke check")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    losses, seeds = parse_losses(args.losses), parse_seeds(args.seeds)
    base = RunOptions(
        dataset=args.data,
        data=args.data_path,
        arch=args.arch,
        epochs=args.epochs,
        size=args.size,
        select="last",  # choosing the best epoch on the split it reports would flatter
        overwrite=True,
    )
    for loss in losses:  # every name checked before hours of training
        check_specs(dataclasses.replace(base, loss=str(loss)))  # raises on a bad name

    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for i, loss in enumerate(losses):
            for seed in seeds:
                options = dataclasses.replace(
                    base, loss=str(loss), seed=seed, out=work / f"{i}-{slug(str(loss))}-s{seed}"
                )
                records.append(run_one(options))
                r = records[-1]
                console.print(
                    f"{r['loss']} seed {seed}: mAP {r['mAP']:.3f} (head {r['mAP_head']:.3f}, "
                    f"medium {r['mAP_medium']:.3f}, tail {r['mAP_tail']:.3f}) in {r['seconds']} s"
                )
                pd.DataFrame(records).to_csv(out / "long_tail_runs.csv", index=False)

    runs = pd.DataFrame(records)
    summary = summarise(runs)
    settings = {
        "data": args.data,
        "arch": args.arch,
        "epochs": args.epochs,
        "size": args.size,
        "losses": [str(loss) for loss in losses],
        "seeds": seeds,
    }
    (out / "long_tail.md").write_text(markdown(runs, summary, settings))
    result = {
        "settings": settings,
        "spread": SPREAD,
        "summary": json.loads(summary.reset_index().to_json(orient="records")),
        "runs": json.loads(runs.to_json(orient="records")),
    }
    (out / "long_tail.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(console, summary, runs)
    console.print(f"Results written to [bold]{out}[/bold]")


if __name__ == "__main__":
    try:
        main()
    except CxrltError as error:
        sys.exit(f"Error: {error}")
