"""Sweeps: the grid, its standalone commands, skipping finished cells, the tables, and
``cxrlt run --from-run`` that post-training cells start from."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import cxrlt.workflows.run
from cxrlt.cli import app
from cxrlt.errors import CxrltError
from cxrlt.executors import run_sweep
from cxrlt.options import RunOptions
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.sweep import (
    CELLS,
    MANIFEST,
    PLOT,
    SUMMARY,
    Cell,
    Sweep,
    cell_state,
    collect,
    summarise,
    with_sweep_cells,
    write_results,
)
from cxrlt.workflows.saved import from_run_options

SHARED = RunOptions(dataset=TINY_DATA, size=32, epochs=1, bs=32, device="cpu")


def flat(result) -> str:
    return " ".join(result.output.split())


def grid(folder, loss="bce,asl", arch="resnet18", post="none,tta", seeds=2) -> Sweep:
    return Sweep.from_text(folder, loss, arch, post, seeds, SHARED)


# ---- the grid ------------------------------------------------------------------------------


def test_alternatives_keep_their_parameters_and_post_steps_chain_with_plus(tmp_path):
    sweep = Sweep.from_text(
        tmp_path,
        "asl:gamma_neg=4,clip=0.05,bce",
        "resnet18",
        "none,crt:epochs=2,lr=0.01+tta:scales=[0.9,1.1],temp-scale",
        1,
        SHARED,
    )
    assert sweep.losses == ("asl:gamma_neg=4,clip=0.05", "bce")
    assert sweep.posts == ("none", "crt:epochs=2,lr=0.01+tta:scales=[0.9,1.1]", "temp-scale")
    cell = Cell("bce", "resnet18", sweep.posts[1], 0)
    assert cell.run_post == "crt:epochs=2,lr=0.01,tta:scales=[0.9,1.1]"
    assert sweep.cell_options(cell).post == cell.run_post
    sweep.check()  # every name and parameter resolves


def test_post_cells_start_from_a_trained_cell_that_runs_first(tmp_path):
    sweep = grid(tmp_path, loss="bce", post="crt,tta", seeds=1)
    base = Cell("bce", "resnet18", "none", 0)
    assert base not in sweep.cells  # not asked for, but needed
    assert sweep.runs == [
        base,
        Cell("bce", "resnet18", "crt", 0),
        Cell("bce", "resnet18", "tta", 0),
    ]
    options = sweep.cell_options(sweep.runs[2])
    assert (options.from_run, options.post, options.seed) == (str(tmp_path / base.name), "tta", 0)
    assert options.out == tmp_path / "bce__resnet18__tta__seed0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"loss": "bce,bce"}, "names an alternative twice"),
        ({"seeds": 0}, "--seeds is the number of seeds"),
        ({"loss": "bce:gama=2"}, "has no parameter 'gama'"),
        ({"post": "none,crt+focal"}, "'focal' is no post-training step"),
        ({"post": "none,temp-scale+crt"}, "give the post-training steps first"),
    ],
)
def test_a_bad_grid_is_refused_before_any_cell_runs(tmp_path, args, message):
    calls = []
    with pytest.raises(CxrltError, match=message):
        sweep = grid(tmp_path / "sweep", **args)
        run_sweep(sweep, Console(quiet=True), run=lambda *a: calls.append(a))
    assert calls == [] and not (tmp_path / "sweep").exists()


def test_a_trained_cells_command_gives_the_cells_options(tmp_path, monkeypatch):
    sweep = Sweep.from_text(
        tmp_path, "ldam-drw:start=1", "resnet18", "none", 2, dataclasses.replace(SHARED, lr=0.01)
    )
    seen: list[RunOptions] = []

    def fake_run(options: RunOptions, *args, **kwargs) -> tuple[None, None]:
        seen.append(options)
        return None, None

    monkeypatch.setattr(cxrlt.workflows.run, "run", fake_run)
    for cell in sweep.runs:
        command = shlex.split(sweep.command(cell))
        assert command[:2] == ["cxrlt", "run"]
        result = CliRunner().invoke(app, command[1:])
        assert result.exit_code == 0, result.output
    assert seen == [sweep.cell_options(cell) for cell in sweep.runs]


def fake_cell(calls: list, fail: set[str] = frozenset()):
    """A stand-in for a run: writes a complete run's marker files, or fails by name."""

    def run_cell(options: RunOptions, console: Console, resume: bool) -> None:
        calls.append((options.out.name, resume))
        if options.out.name in fail:
            raise CxrltError("loss became NaN")
        options.out.mkdir(parents=True, exist_ok=True)
        (options.out / "config.json").write_text(json.dumps({"status": "complete"}))
        (options.out / "metrics.json").write_text(json.dumps({"mAP": 0.5}))

    return run_cell


def test_a_failed_cell_is_reported_and_the_cells_that_start_from_it_skipped(tmp_path):
    sweep = grid(tmp_path, post="none,tta", seeds=1)
    calls: list = []
    failed = run_sweep(
        sweep, Console(quiet=True), run=fake_cell(calls, {"bce__resnet18__none__seed0"})
    )
    assert [name for name, _ in calls] == [
        "bce__resnet18__none__seed0",
        "asl__resnet18__none__seed0",
        "asl__resnet18__tta__seed0",
    ]
    assert failed == [
        "bce__resnet18__none__seed0: loss became NaN",
        "bce__resnet18__tta__seed0: not run, its trained cell bce__resnet18__none__seed0 failed",
    ]


def test_finished_cells_are_skipped_and_interrupted_ones_resumed(tmp_path):
    sweep = grid(tmp_path, loss="bce", post="none,tta", seeds=2)
    calls: list = []
    run_sweep(sweep, Console(quiet=True), run=fake_cell(calls))
    assert len(calls) == 4
    calls.clear()
    run_sweep(sweep, Console(quiet=True), run=fake_cell(calls))
    assert calls == []
    interrupted = tmp_path / "bce__resnet18__none__seed1"
    (interrupted / "metrics.json").unlink()
    (interrupted / "config.json").write_text(json.dumps({"status": "training"}))
    (interrupted / "checkpoint.pt").write_bytes(b"")
    assert cell_state(interrupted) == "interrupted"
    run_sweep(sweep, Console(quiet=True), run=fake_cell(calls))
    assert calls == [("bce__resnet18__none__seed1", True)]


def test_summary_is_mean_and_spread_over_seeds():
    cells = pd.DataFrame(
        {
            "loss": ["bce"] * 3 + ["asl"],
            "arch": ["r18"] * 4,
            "post": ["none"] * 4,
            "seed": [0, 1, 2, 0],
            **{m: [0.1, 0.2, 0.6, 0.4] for m in ("mAP", "mAUC", "mF1", "ECE")},
            **{f"mAP_{g}": [0.1, 0.2, 0.6, 0.4] for g in ("head", "medium", "tail")},
        }
    )
    summary = summarise(cells).set_index("loss")
    assert summary.loc["bce", "seeds"] == 3 and summary.loc["asl", "seeds"] == 1
    assert summary.loc["bce", "mAP_mean"] == pytest.approx(0.3)
    assert summary.loc["bce", "mAP_std"] == pytest.approx(np.std([0.1, 0.2, 0.6], ddof=1))
    assert np.isnan(summary.loc["asl", "mAP_std"])  # one seed: no spread


def test_summary_marks_rows_that_differ_from_the_first_by_a_paired_bootstrap(tmp_path):
    """Cells written by hand: asl's logits separate the labels better than bce's on the same
    images (per seed), focal's are bce's own; only asl is marked."""
    from cxrlt.outputs.report import read_run
    from cxrlt.outputs.run_dir import RunDir
    from tests.unit.outputs.test_report import make_run

    signals = {"bce": 2.0, "asl": 5.0, "focal": 2.0}
    cells = []
    for loss, signal in signals.items():
        for seed in (0, 1):
            cell = Cell(loss, "resnet18", "none", seed)
            run = make_run(tmp_path / cell.name, seed=seed, signal=signal, loss=loss)
            RunDir(run, check=False).write_metrics(read_run(run).evaluate(intervals=False))
            cells.append({**dataclasses.asdict(cell), "name": cell.name, "asked": True})
    (tmp_path / MANIFEST).write_text(json.dumps({"cells": cells}))
    summary, notes, _ = write_results(tmp_path)
    rows = summary.set_index("loss")
    assert rows.loc["asl", "mAP_diff_low"] > 0 and rows.loc["asl", "paired_seeds"] == 2
    assert rows.loc["focal", ["mAP_diff", "mAP_diff_low", "mAP_diff_high"]].tolist() == [0, 0, 0]
    assert np.isnan(rows.loc["bce", "mAP_diff"])
    expected = rows.loc["asl", "mAP_mean"] - rows.loc["bce", "mAP_mean"]  # mean of differences
    assert rows.loc["asl", "mAP_diff"] == pytest.approx(expected)
    markdown = (tmp_path / f"{SUMMARY}.md").read_text()
    lines = {line.split(" | ")[0][2:]: line for line in markdown.splitlines() if line[:2] == "| "}
    mean, sd = rows.loc["asl", ["mAP_mean", "mAP_std"]]
    assert f"| {mean:.3f} ± {sd:.3f} * |" in lines["asl"]
    assert "*" not in lines["bce"] and "*" not in lines["focal"]
    assert "differs from the first row (bce, resnet18, none)" in markdown
    assert "averaged over the seeds" in markdown and not notes


# ---- real runs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep: 2 losses x 1 backbone x (none, tta) x 2 seeds, tiny sizes."""
    folder = tmp_path_factory.mktemp("sweep")
    sweep = grid(folder)
    assert run_sweep(sweep, Console(quiet=True)) == []
    write_results(folder)
    return sweep


@pytest.mark.slow
def test_sweep_writes_every_cell_and_the_founding_studys_table(swept):
    folder = swept.folder
    cells = pd.read_csv(folder / CELLS)
    assert len(cells) == 8 and set(cells["post"]) == {"none", "tta"}
    for row in cells.itertuples():
        metrics = json.loads((folder / row.run / "metrics.json").read_text())
        assert row.mAP == pytest.approx(metrics["mAP"]) and row.loss in row.run
    summary = pd.read_csv(folder / f"{SUMMARY}.csv")
    assert len(summary) == 4 and (summary["seeds"] == 2).all()
    bce_tta = cells[(cells["loss"] == "bce") & (cells["post"] == "tta")]["mAP_tail"]
    row = summary[(summary["loss"] == "bce") & (summary["post"] == "tta")].iloc[0]
    assert row["mAP_tail_mean"] == pytest.approx(bce_tta.mean())
    markdown = (folder / f"{SUMMARY}.md").read_text()
    assert "| loss | arch | post | seeds | mAP |" in markdown and " ± " in markdown
    assert (folder / PLOT).read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert len(manifest["cells"]) == 8 and all(c["asked"] for c in manifest["cells"])


@pytest.mark.slow
def test_post_cells_reuse_the_trained_weights(swept):
    base = swept.path(Cell("bce", "resnet18", "none", 0))
    tta = swept.path(Cell("bce", "resnet18", "tta", 0))
    config = json.loads((tta / "config.json").read_text())
    assert config["training"]["from_run"] == str(base)
    assert [step["name"] for step in config["post"]] == ["tta"]
    assert not (tta / "log.csv").exists()  # nothing was trained
    # the standalone command of the cell gives the options the sweep ran it with
    assert from_run_options(base, post="tta", out=tta) == swept.cell_options(
        Cell("bce", "resnet18", "tta", 0)
    )


@pytest.mark.slow
def test_from_run_without_steps_reproduces_the_trained_run(swept, tmp_path):
    base = swept.path(Cell("asl", "resnet18", "none", 1))
    again = tmp_path / "again"
    cxrlt.workflows.run.run(from_run_options(base, out=again), Console(quiet=True))
    first = pd.read_csv(base / "valid_predictions.csv")
    second = pd.read_csv(again / "valid_predictions.csv")
    pd.testing.assert_frame_equal(first, second, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_post_cell_reloads_with_its_steps_and_predicts_what_it_evaluated(swept):
    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.prediction import load_run

    tta = swept.path(Cell("bce", "resnet18", "tta", 1))
    run = load_run(tta)
    dls = cxr_dataloaders(TINY_DATA, size=32, bs=32, seed=1, device="cpu")
    images = np.stack([dls.valid.dataset[i][0].numpy() for i in range(len(dls.valid.dataset))])
    saved = pd.read_csv(tta / "valid_predictions.csv")
    expected = saved[[f"logit:{c}" for c in run.classes]].to_numpy()
    assert np.allclose(run.logits(images), expected, atol=1e-5)


@pytest.mark.slow
def test_from_run_refuses_training_options_and_unfinished_runs(swept, tmp_path):
    base = swept.path(Cell("bce", "resnet18", "none", 0))
    result = CliRunner().invoke(app, ["run", "--from-run", str(base), "--epochs", "3"])
    assert result.exit_code == 2
    assert "--from-run takes the trained run's own options; leave out --epochs" in flat(result)
    (tmp_path / "config.json").write_text(json.dumps({"status": "training", "options": {}}))
    result = CliRunner().invoke(app, ["run", "--from-run", str(tmp_path), "--post", "tta"])
    assert result.exit_code == 2 and "is not a complete run" in flat(result)


@pytest.mark.slow
def test_compare_takes_the_sweep_folder(swept, tmp_path):
    assert len(with_sweep_cells([swept.folder])) == 8
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(swept.folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    compared = pd.read_csv(out.with_suffix(".csv"))
    frame, _ = collect(swept.folder)
    assert list(compared["run"]) == list(frame["run"])
    assert np.allclose(compared["mAP"], frame["mAP"])


@pytest.mark.slow
def test_collect_with_json_prints_the_summary_rows(swept):
    args = ["sweep", "--loss", "bce,asl", "--post", "none,tta", "--seeds", "2"]
    args += ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32"]
    args += ["--device", "cpu", "--out", str(swept.folder), "--collect", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    summary = pd.read_csv(swept.folder / f"{SUMMARY}.csv")
    assert printed["sweep"] == str(swept.folder) and printed["failed"] == []
    assert [row["loss"] for row in printed["rows"]] == list(summary["loss"])
    assert np.allclose([row["mAP_mean"] for row in printed["rows"]], summary["mAP_mean"])


def test_sweep_command_prints_standalone_commands(tmp_path):
    args = ["sweep", "--loss", "bce", "--post", "none,crt", "--seeds", "2", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--dataset", TINY_DATA, "--print-commands"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    trained = [line for line in lines if line.startswith("cxrlt run --dataset")]
    derived = [line for line in lines if line.startswith("cxrlt run --from-run")]
    assert len(trained) == 2 and len(derived) == 2
    assert lines.index(derived[0]) > lines.index(trained[-1])  # after what they start from
    assert (tmp_path / MANIFEST).is_file()


@pytest.mark.slow
def test_the_documented_sweep_command_is_a_valid_grid(tmp_path, monkeypatch):
    """The studies guide's table comes from this command: it must stay runnable as written."""
    guide = Path(__file__).resolve().parents[2] / "docs" / "guides" / "studies.md"
    text = guide.read_text()
    block = text.split("<!-- sweep command -->", 1)[1].split("```bash\n", 1)[1]
    command = shlex.split(block.split("```", 1)[0].replace("\\\n", " "))
    assert command[:2] == ["cxrlt", "sweep"]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command[1:], "--print-commands"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("cxrlt run")]
    assert len(lines) == 3 * 2 * 3 * 3  # losses x backbones x post x seeds
