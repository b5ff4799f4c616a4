"""Systematic studies: losses x backbones x post-training x seeds, one run directory per cell.

A cell without post-training trains; a cell with post-training starts from the trained model
of its ``none`` sibling (``cxrlt run --from-run``), so post-training alternatives are compared
on the very same weights and no model is trained twice. Finished cells are skipped, so a
sweep that stopped goes on where it was, and every cell is also a standalone ``cxrlt run``
command for a cluster scheduler. The results are the founding study's table: mean and spread
over seeds of mAP, mAUC, mF1, ECE and head / medium / tail mAP, with a mark on the rows whose
mAP, mAUC, mF1 or ECE differs significantly from the first row's (:func:`differences_from_first`).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlt.errors import CxrltError
from cxrlt.io import read_json, write_json
from cxrlt.options import PER_RUN_OPTIONS, RUN_OPTIONS, RunOptions, flag
from cxrlt.outputs.run_dir import CHECKPOINT, CONFIG, METRICS, RunDir
from cxrlt.outputs.run_schema import COMPLETE
from cxrlt.spec import is_parameter, parse_spec, parse_specs, split_top_level
from cxrlt.workflows.specs import check_options

NO_POST = "none"
MANIFEST = "sweep.json"
CELLS = "cells.csv"
SUMMARY = "summary"  # .csv and .md
PLOT = "map_by_loss_and_arch.png"
FACTORS = ("loss", "arch", "post")
SCORES = ("mAP", "mAUC", "mF1", "ECE", "mAP_head", "mAP_medium", "mAP_tail")
# What a cell's options take from the cell; the rest comes from the sweep's shared options.
PER_CELL = (*FACTORS, *PER_RUN_OPTIONS)


@dataclass(frozen=True)
class Cell:
    """One run of the grid. ``post`` is ``none`` or steps joined by ``+`` (``crt+tta``)."""

    loss: str
    arch: str
    post: str
    seed: int

    @property
    def name(self) -> str:
        """The cell's folder name: readable, safe on every file system, unique in a grid."""
        parts = (self.loss, self.arch, self.post)
        return "__".join(re.sub(r"[^A-Za-z0-9.=+-]+", "-", part) for part in parts) + (
            f"__seed{self.seed}"
        )

    @property
    def base(self) -> Cell | None:
        """The cell whose trained model this one post-trains; None for a cell that trains."""
        return None if self.post == NO_POST else dataclasses.replace(self, post=NO_POST)

    @property
    def run_post(self) -> str:
        """The cell's ``--post`` value."""
        return "" if self.post == NO_POST else ",".join(split_top_level(self.post, "+"))


def _alternatives(text: str, option: str) -> tuple[str, ...]:
    """A factor's comma-separated alternatives, each a spec with its parameters."""
    alternatives = tuple(str(spec) for spec in parse_specs(text))
    if len(set(alternatives)) < len(alternatives):
        raise CxrltError(f"--{option} {text!r} names an alternative twice: remove the repeat.")
    return alternatives


def _post_alternatives(text: str) -> tuple[str, ...]:
    """``--post``'s alternatives, each ``none`` or its steps joined by ``+``: commas separate
    alternatives and a step's parameters, ``+`` separates the steps of one alternative."""
    alternatives: list[list[str]] = []
    for token in split_top_level(text):
        first, *more = (part.strip() for part in split_top_level(token, "+"))
        if not all((first, *more)):
            stray = "+" if token.strip() else ","
            raise CxrltError(
                f"--post {text!r} has an empty step: remove the stray '{stray}' (the steps of "
                "one alternative are joined by '+', the alternatives by ',')."
            )
        if is_parameter(first) and alternatives:
            alternatives[-1][-1] += f",{first}"
        else:
            alternatives.append([first])
        alternatives[-1] += more
    labels = tuple(
        "+".join(str(parse_spec(step)) for step in steps) if steps != [NO_POST] else NO_POST
        for steps in alternatives
    )
    if len(set(labels)) < len(labels):
        raise CxrltError(f"--post {text!r} names an alternative twice: remove the repeat.")
    return labels


@dataclass(frozen=True)
class Sweep:
    """A grid of cells in ``folder``; ``options`` are the training options every cell shares."""

    folder: Path
    losses: tuple[str, ...]
    archs: tuple[str, ...]
    posts: tuple[str, ...]
    seeds: tuple[int, ...]
    options: RunOptions = RunOptions()

    @classmethod
    def from_text(
        cls, folder: Path | str, loss: str, arch: str, post: str, seeds: int, options: RunOptions
    ) -> Sweep:
        """The grid as the command line gives it: comma-separated alternatives per factor."""
        if seeds < 1:
            raise CxrltError(f"--seeds is the number of seeds per cell, at least 1; got {seeds}.")
        return cls(
            Path(folder),
            _alternatives(loss, "loss"),
            _alternatives(arch, "arch"),
            _post_alternatives(post),
            tuple(range(seeds)),
            options,
        )

    @property
    def cells(self) -> list[Cell]:
        """The cells asked for, each trained cell before the cells that post-train it."""
        return [
            Cell(loss, arch, post, seed)
            for loss in self.losses
            for arch in self.archs
            for seed in self.seeds
            for post in self.posts
        ]

    @property
    def runs(self) -> list[Cell]:
        """Every cell to run, in order: the asked ones plus the ``none`` cells they start from."""
        ordered: dict[Cell, None] = {}
        for cell in self.cells:
            ordered.setdefault(cell.base or cell)
            ordered.setdefault(cell)
        return list(ordered)

    def path(self, cell: Cell) -> Path:
        return self.folder / cell.name

    def log_file(self, cell: Cell) -> Path:
        """Where the cell's console output is appended, across reruns."""
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs / f"{cell.name}.txt"

    def cell_options(self, cell: Cell) -> RunOptions:
        """The options of ``cell``'s run; a post-training cell's are its base's plus ``post``."""
        trained = dataclasses.replace(
            self.options,
            loss=cell.loss,
            arch=cell.arch,
            seed=cell.seed,
            post="",
            out=self.path(cell.base or cell),
            overwrite=False,
            from_run=None,
        )
        if cell.base is None:
            return trained
        return dataclasses.replace(
            trained, post=cell.run_post, out=self.path(cell), from_run=str(trained.out)
        )

    def check(self) -> None:
        """Every name and number of every cell, before any cell starts."""
        names = [cell.name for cell in self.runs]
        if len(set(names)) < len(names):
            raise CxrltError(
                "Two cells of the grid share a folder name (their specs differ only in "
                "characters a folder name cannot hold): spell them more differently."
            )
        for cell in self.runs:
            if cell.seed == self.seeds[0]:  # the seed changes no name or number
                check_options(self.cell_options(cell))

    def require_collectable(self) -> None:
        """Stop unless the folder holds a sweep with a complete cell of this grid: collecting
        runs nothing, so it must not leave empty tables (or a manifest) where no sweep ran."""
        read_manifest(self.folder)
        if not any(cell_state(self.path(cell)) == "complete" for cell in self.cells):
            raise CxrltError(
                f"The sweep {self.folder} has no complete cell of this grid yet, so --collect "
                "has nothing to tabulate: run the sweep first (the same command without "
                "--collect, or the commands of --print-commands), or give the grid it ran."
            )

    def command(self, cell: Cell) -> str:
        """The standalone ``cxrlt run`` command of ``cell``."""
        options = self.cell_options(cell)
        if cell.base is not None:
            args = ["--from-run", options.from_run, "--post", options.post]
            args += ["--out", str(options.out)]
            if options.device != RunOptions.device:
                args += ["--device", options.device]
            return shlex.join(["cxrlt", "run", *args])
        return shlex.join(["cxrlt", "run", *_option_args(options)])

    def save(self) -> Path:
        """Write the grid and its cells' commands, which ``cxrlt compare`` reads."""
        return write_json(self.folder / MANIFEST, self.manifest())

    def manifest(self) -> dict[str, Any]:
        shared = {k: v for k, v in dataclasses.asdict(self.options).items() if k not in PER_CELL}
        return {
            "grid": {
                "loss": list(self.losses),
                "arch": list(self.archs),
                "post": list(self.posts),
                "seeds": list(self.seeds),
            },
            "options": shared,
            "cells": [
                {
                    **dataclasses.asdict(cell),
                    "name": cell.name,
                    "asked": cell in self.cells,
                    "base": cell.base.name if cell.base else None,
                    "command": self.command(cell),
                }
                for cell in self.runs
            ],
        }


def _option_args(options: RunOptions) -> list[str]:
    """Command-line arguments that give ``options`` (defaults left out, except the grid's)."""
    args: list[str] = []
    for field in RUN_OPTIONS:
        value = getattr(options, field.name)
        if field.name in ("overwrite", "from_run"):
            continue
        if value == field.default and field.name not in ("loss", "arch", "seed", "out"):
            continue
        if isinstance(value, bool):
            args.append(flag(field.name) if value else f"--no-{flag(field.name)[2:]}")
        elif value is not None:
            args += [flag(field.name), str(value)]
    return args


# ---- running -------------------------------------------------------------------------------


def cell_state(path: Path) -> str:
    """``complete``, ``interrupted`` (a checkpoint to resume), ``started`` or ``absent``."""
    run_dir = RunDir(path, check=False)
    if not run_dir.file(CONFIG).is_file():
        return "absent"
    if run_dir.read_config().status == COMPLETE and run_dir.file(METRICS).is_file():
        return "complete"
    return "interrupted" if (path / CHECKPOINT).is_file() else "started"


# ---- results -------------------------------------------------------------------------------


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """The grid and cells a sweep folder's manifest holds; a folder without one stops."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CxrltError(
            f"{folder} holds no sweep: a sweep folder holds the manifest {MANIFEST} (written "
            "when `cxrlt sweep` starts or prints its commands) beside one folder per cell, and "
            f"{path} {'is missing' if not path.exists() else 'is not a file'}. Give the "
            "sweep's folder (the --out it ran with), or run the sweep first."
        )
    return read_json(path)


def cell_tags(path: Path | str) -> dict[str, str]:
    """Where the run in ``path`` sits in the sweep whose folder holds it (its grid position:
    ``sweep``, ``cell``, ``loss``, ``arch``, ``post``, ``seed``), for experiment trackers to
    tag it with, whether the sweep or the cell's own command runs it; none outside a sweep."""
    path = Path(path).resolve()
    if not (path.parent / MANIFEST).is_file():
        return {}
    for cell in read_manifest(path.parent)["cells"]:
        if cell["name"] == path.name:
            position = {factor: str(cell[factor]) for factor in (*FACTORS, "seed")}
            return {"sweep": str(path.parent), "cell": path.name, **position}
    return {}


def with_sweep_cells(paths: Sequence[Path]) -> list[Path]:
    """Run folders, with each sweep folder among them replaced by its complete cells."""
    expanded: list[Path] = []
    for path in paths:
        if not (Path(path) / MANIFEST).is_file():
            expanded.append(Path(path))
            continue
        cells = [Path(path) / c["name"] for c in read_manifest(path)["cells"] if c["asked"]]
        done = [cell for cell in cells if cell_state(cell) == "complete"]
        if not done:
            raise CxrltError(f"The sweep {path} has no complete cell yet: run `cxrlt sweep`.")
        expanded += done
    return expanded


def collect(folder: Path | str) -> tuple[pd.DataFrame, list[str]]:
    """One row per asked cell (its factors, seed and metrics), and notes on missing cells."""
    from cxrlt.outputs.report import compare_runs

    folder = Path(folder)
    cells = [c for c in read_manifest(folder)["cells"] if c["asked"]]
    done = [c for c in cells if cell_state(folder / c["name"]) == "complete"]
    notes = [f"{c['name']}: not complete" for c in cells if c not in done]
    if not done:
        return pd.DataFrame(columns=[*FACTORS, "seed", "run", *SCORES]), notes
    frame, compare_notes = compare_runs([folder / c["name"] for c in done], intervals=False)
    factors = pd.DataFrame([{k: c[k] for k in (*FACTORS, "seed")} for c in done])
    frame = pd.concat([factors, frame[["run", *SCORES]]], axis=1)
    return frame, notes + compare_notes


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every metric, one row per loss, arch, post."""
    grouped = cells.groupby(list(FACTORS), sort=False)[list(SCORES)]
    summary = grouped.agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]
    summary.insert(0, "seeds", grouped.size())
    return summary.reset_index()


def differences_from_first(
    folder: Path | str, cells: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """For every row (loss, arch, post) after the first: its mean difference over seeds from
    the first row in mAP, mAUC, mF1 and ECE, with a 95% interval and p-value; and notes.

    Cells with the same seed are scored on the same validation images (the split depends on
    the seed), so per seed the row's cell and the first row's are resampled with the same
    patients and draws (``cxrlt compare``'s paired difference; the bootstrap seed is the
    cell's seed, so the seeds' resamples are independent). Averaging the per-seed differences
    resample by resample gives the distribution of the mean difference over seeds. Columns:
    ``<metric>_diff``, ``_diff_low``, ``_diff_high``, ``_p`` and ``paired_seeds``.
    """
    from cxrlt.evaluation.bootstrap import Difference
    from cxrlt.outputs.report import PAIRED, paired_difference, read_run

    folder = Path(folder)
    rows = list(cells.groupby(list(FACTORS), sort=False))
    if len(rows) < 2:
        return pd.DataFrame(columns=list(FACTORS)), []
    (_, first_cells), *others = rows
    first_runs = dict(zip(first_cells["seed"], first_cells["run"], strict=True))
    firsts: dict[int, tuple[Any, Any]] = {}  # seed -> the first row's cell, read and scored
    table, notes = [], []
    for key, row_cells in others:
        per_seed = []
        for seed, run in zip(row_cells["seed"], row_cells["run"], strict=True):
            if seed not in first_runs:
                notes.append(f"{run}: no paired test, the first row has no seed {seed}")
                continue
            try:
                if seed not in firsts:
                    base = read_run(folder / first_runs[seed])
                    firsts[seed] = base, base.evaluate(base.final, seed=seed)
                base, base_report = firsts[seed]
                results = read_run(folder / run)
            except CxrltError as error:
                notes.append(f"{run}: no paired test ({error})")
                continue
            if not results.same_images(base):
                notes.append(f"{run}: no paired test, scored on other images than {base.path.name}")
                continue
            report = results.evaluate(results.final, patients=base.patients, seed=seed)
            per_seed.append(paired_difference(base_report, report))
        row = {**dict(zip(FACTORS, key, strict=True)), "paired_seeds": len(per_seed)}
        for metric in PAIRED if per_seed else ():
            difference = Difference.of(
                np.mean([seed[metric][0] for seed in per_seed]),
                np.mean([seed[metric][1] for seed in per_seed], axis=0),
            )
            row |= difference.columns(metric)
        table.append(row)
    return pd.DataFrame(table), notes


def _mean_sd(row: pd.Series, metric: str) -> str:
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_std"]
    if pd.isna(mean):
        return "—"
    text = f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"
    low, high = row.get(f"{metric}_diff_low", np.nan), row.get(f"{metric}_diff_high", np.nan)
    return f"{text} *" if low > 0 or high < 0 else text


SUMMARY_HEADER = (*FACTORS, "seeds", *SCORES[:4], "head mAP", "medium mAP", "tail mAP")


def _mark_note(summary: pd.DataFrame) -> str:
    first = summary.iloc[0]
    return (
        f"\\* after mAP, mAUC, mF1 or ECE: the row differs from the first row ({first.loss}, "
        f"{first.arch}, {first.post}) in that metric. Per seed, the two cells were scored on "
        "the same validation images; their difference was resampled by a paired bootstrap of "
        "the patients (1,000 resamples), the per-seed differences averaged over the seeds "
        "resample by resample; \\* when the 95% interval of that mean difference excludes 0. "
        "summary.csv holds each difference (`<metric>_diff`), its interval and p-value."
    )


def summary_markdown(summary: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    """The founding study's table: mean ± sd over seeds per loss, backbone and post step, with
    ``*`` where a row differs significantly from the first row (when the summary holds the
    differences of :func:`differences_from_first`)."""
    from cxrlt.outputs.report import markdown_table

    rows = [
        [row.loss, row.arch, row.post, str(row.seeds)] + [_mean_sd(row, m) for m in SCORES]
        for _, row in summary.iterrows()
    ]
    lines = markdown_table(SUMMARY_HEADER, rows)
    if "mAP_diff_low" in summary.columns:
        notes = [_mark_note(summary), *notes]
    extra = [f"- {note}" for note in notes]
    return "\n".join(lines + ([""] + extra if extra else [])) + "\n"


def write_results(folder: Path | str) -> tuple[pd.DataFrame, list[str], list[Path]]:
    """Write the cells' table, the summary (CSV and markdown) and the mAP plot."""
    from cxrlt.io import write_text, write_with
    from cxrlt.outputs.plots import map_by_loss_and_arch

    folder = Path(folder)
    cells, notes = collect(folder)
    summary = summarise(cells)
    differences, paired_notes = differences_from_first(folder, cells)
    if len(differences):
        summary = summary.merge(differences, on=list(FACTORS), how="left")
    notes += paired_notes
    written = [
        write_with(folder / CELLS, lambda f: cells.to_csv(f, index=False)),
        write_with(folder / f"{SUMMARY}.csv", lambda f: summary.to_csv(f, index=False)),
        write_text(folder / f"{SUMMARY}.md", summary_markdown(summary, notes)),
    ]
    if len(summary):
        written.append(map_by_loss_and_arch(summary, folder / PLOT))
    return summary, notes, written
