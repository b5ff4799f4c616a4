"""``cxrlt sweep --executor slurm``: the cells as jobs through submitit. Jobs run for real with
submitit's local executor (``cluster=local``); the Slurm submissions (options, dependencies,
the array) go to a fake ``sbatch`` that records them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.executors import CellOutcome, Sequential, run_sweep
from cxrlt.executors.slurm import JOBS, CellJob, SlurmExecutor
from cxrlt.options import RunOptions
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.sweep import CELLS, SUMMARY, Cell, Sweep, cell_state, write_results

SHARED = RunOptions(dataset=TINY_DATA, size=32, epochs=1, bs=32, device="cpu")
GRID = ["--loss", "bce,asl", "--post", "none,temp-scale", "--dataset", TINY_DATA]
GRID += ["--size", "32", "--epochs", "1", "--bs", "32", "--device", "cpu"]


def grid(folder: Path) -> Sweep:
    """2 trained cells and a post-training cell on each."""
    return Sweep.from_text(folder, "bce,asl", "resnet18", "none,temp-scale", 1, SHARED)


def flat(result) -> str:
    return " ".join(result.output.split())


def fake_run(crash: str = "", preempted_once: bool = False):
    """A stand-in for a run, made here so that it travels to the jobs by value: it writes a
    complete run's marker files; or crashes (not a CxrltError: the job itself fails) for the
    cell ``crash``; or, with ``preempted_once``, a first call leaves a checkpoint and hangs
    until submitit's timeout signal."""

    def run(options: RunOptions, console: Console, resume: bool) -> None:
        if options.out.name == crash:
            raise RuntimeError("segfault in a data worker")
        options.out.mkdir(parents=True, exist_ok=True)
        if preempted_once and not resume:
            (options.out / "config.json").write_text(json.dumps({"status": "training"}))
            (options.out / "checkpoint.pt").write_bytes(b"")
            time.sleep(120)
        (options.out / "config.json").write_text(json.dumps({"status": "complete"}))
        (options.out / "metrics.json").write_text(json.dumps({"mAP": 0.5}))

    return run


def complete(sweep: Sweep, cell: Cell) -> None:
    fake_run()(sweep.cell_options(cell), Console(quiet=True), False)


# ---- jobs on this machine (submitit's local executor) --------------------------------------


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, Sweep]:
    """The same real grid run one cell after another here, and as local jobs."""
    folder = tmp_path_factory.mktemp("executors")
    sweeps = {}
    for name, executor in (("sequential", Sequential()), ("jobs", SlurmExecutor(cluster="local"))):
        sweeps[name] = grid(folder / name)
        assert run_sweep(sweeps[name], Console(quiet=True), executor=executor) == []
        write_results(sweeps[name].folder)
    return sweeps


@pytest.mark.slow
def test_jobs_give_the_sequential_sweeps_tables(both):
    jobs, sequential = both["jobs"].folder, both["sequential"].folder
    assert len(list((jobs / JOBS).glob("[0-9]*"))) == 4  # a job per cell, none here
    assert not (sequential / JOBS).exists()
    for table in (CELLS, f"{SUMMARY}.csv", f"{SUMMARY}.md"):
        assert (jobs / table).read_text() == (sequential / table).read_text(), table
    cells = pd.read_csv(jobs / CELLS)
    assert len(cells) == 4 and cells["mAP"].notna().all()
    post = json.loads((jobs / "bce__resnet18__temp-scale__seed0" / "config.json").read_text())
    assert post["training"]["from_run"] == str(jobs / "bce__resnet18__none__seed0")


@pytest.mark.slow
def test_a_rerun_skips_the_complete_cells_without_a_job(both):
    sweep = both["jobs"]
    before = sorted((sweep.folder / JOBS).iterdir())
    outcomes: list[CellOutcome] = []
    SlurmExecutor(cluster="local").run(sweep, outcomes.append)
    assert [(o.cell, o.status) for o in outcomes] == [(c, "skipped") for c in sweep.runs]
    assert sorted((sweep.folder / JOBS).iterdir()) == before


@pytest.mark.slow
def test_a_crashed_job_fails_its_cell_and_the_others_go_on(tmp_path):
    sweep = grid(tmp_path)
    crashed = "bce__resnet18__none__seed0"
    outcomes: list[CellOutcome] = []
    executor = SlurmExecutor(cluster="local")
    assert len(executor.run(sweep, outcomes.append, fake_run(crash=crashed))) == 4
    status = {outcome.cell.name: outcome for outcome in outcomes}
    assert status[crashed].status == "failed"
    assert status[crashed].error.startswith("RuntimeError: segfault in a data worker (job ")
    assert f"{JOBS}/" in status[crashed].error  # where its log is
    assert status["bce__resnet18__temp-scale__seed0"].status == "not run"
    assert status["asl__resnet18__none__seed0"].status == "done"
    assert status["asl__resnet18__temp-scale__seed0"].status == "done"
    assert cell_state(tmp_path / "asl__resnet18__temp-scale__seed0") == "complete"
    # jobs: the crashed one and asl's two; none for the post cell of the crashed cell
    assert len(list((tmp_path / JOBS).glob("[0-9]*"))) == 3


@pytest.mark.slow
def test_a_timed_out_job_is_requeued_and_its_cell_resumes(tmp_path):
    from submitit import LocalExecutor

    sweep = grid(tmp_path)
    cell = Cell("bce", "resnet18", "none", 0)
    executor = LocalExecutor(tmp_path / JOBS / "%j", max_num_timeout=1)
    executor.update_parameters(timeout_min=10 / 60, signal_delay_s=3)  # a signal after 7 s
    job = executor.submit(CellJob(sweep, cell, fake_run(preempted_once=True)))
    outcome = job.result()
    assert (outcome.cell, outcome.status, outcome.mAP) == (cell, "resumed", 0.5)


# ---- Slurm submissions, recorded by a fake sbatch ------------------------------------------


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """Slurm's commands on PATH: sbatch copies each submission script to the folder returned
    as ``<job id>.sh`` (ids from 100) and answers as Slurm does; sacct knows the jobs written
    in ``sacct`` beside that folder as ``ID|STATE|``, no job else (so none has ended);
    scancel writes the job id to ``cancelled`` beside that folder."""
    from submitit import SlurmJob

    SlurmJob.watcher.clear()  # job states it cached from other tests' jobs of the same ids
    records, bin_dir = tmp_path / "sbatch", tmp_path / "bin"
    records.mkdir()
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        "#!/bin/sh\n"
        f'n=$((100 + $(ls "{records}" | wc -l)))\n'
        f'cp "$1" "{records}/$n.sh"\n'
        'echo "Submitted batch job $n"\n'
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sacct").write_text(
        f"#!/bin/sh\necho 'JobID|State|NodeList'\ncat '{tmp_path}/sacct' 2>/dev/null\nexit 0\n"
    )
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "$1" >> "{tmp_path}/cancelled"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return records


def sbatch_options(script: Path) -> dict[str, str]:
    """A submission script's ``#SBATCH --key=value`` lines."""
    lines = [line[len("#SBATCH --") :] for line in script.read_text().splitlines()]
    pairs = [line.partition("=") for line in lines if not line.startswith("#")]
    return {key: value for key, _, value in pairs}


def submitted_cell(sweep: Sweep, job_id: str) -> Cell:
    """The cell that the pickled job runs."""
    from submitit.core.utils import DelayedSubmission

    pickled = sweep.folder / JOBS / job_id / f"{job_id}_submitted.pkl"
    return DelayedSubmission.load(pickled).function.cell


def test_jobs_carry_the_options_and_post_cells_wait_for_their_trained_cells_job(
    tmp_path, fake_slurm
):
    sweep = grid(tmp_path / "sweep")
    skipped = Cell("asl", "resnet18", "none", 0)
    complete(sweep, skipped)
    executor = SlurmExecutor(
        partition="gpu",
        time=90,
        gpus=1,
        cpus=8,
        mem_gb=32,
        account="lab",
        setup=["module load cuda"],
        sbatch={"constraint": "a100"},
        wait=False,
    )
    outcomes: list[CellOutcome] = []
    assert executor.run(sweep, outcomes.append) == outcomes
    submitted = {o.job: o.cell for o in outcomes if o.status == "submitted"}
    assert [(o.cell, o.status) for o in outcomes if o.status != "submitted"] == [
        (skipped, "skipped")
    ]
    scripts = sorted(fake_slurm.iterdir())
    assert [script.stem for script in scripts] == ["100", "101", "102"]
    trained, post, post_of_skipped = (sbatch_options(script) for script in scripts)
    assert [submitted_cell(sweep, job) for job in ("100", "101", "102")] == [
        Cell("bce", "resnet18", "none", 0),
        Cell("bce", "resnet18", "temp-scale", 0),
        Cell("asl", "resnet18", "temp-scale", 0),
    ]
    assert submitted == {job: submitted_cell(sweep, job) for job in ("100", "101", "102")}
    expected = {"partition": "gpu", "time": "90", "gpus-per-node": "1", "cpus-per-task": "8"}
    expected |= {"mem": "32GB", "account": "lab", "constraint": "a100"}
    for options in (trained, post, post_of_skipped):
        assert options.items() >= expected.items()
    assert trained["job-name"] == "cxrlt-bce__resnet18__none__seed0"
    assert post["dependency"] == "afterany:100"
    assert "dependency" not in trained and "dependency" not in post_of_skipped
    assert "module load cuda" in scripts[0].read_text()
    assert str(sweep.folder / JOBS / "%j") in trained["output"]


def test_an_array_holds_the_trained_cells_and_the_command_says_how_to_collect(tmp_path, fake_slurm):
    out = tmp_path / "sweep"
    args = [*GRID, "--out", str(out), "--executor", "slurm:array=True,gpus=0,wait=False"]
    result = CliRunner().invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    array, *posts = (sbatch_options(script) for script in sorted(fake_slurm.iterdir()))
    assert array["array"] == "0-1%2" and "gpus-per-node" not in array
    assert [post["dependency"] for post in posts] == ["afterany:100_0", "afterany:100_1"]
    assert "Submitted 4 jobs to Slurm" in flat(result)
    assert "bce__resnet18__none__seed0: submitted as job 100_0" in flat(result)
    assert "asl__resnet18__temp-scale__seed0: submitted as job 102" in flat(result)
    assert "with --collect to write the tables" in flat(result)
    assert "Written" not in flat(result) and not (out / CELLS).exists()  # no empty tables
    assert not list(out.glob("*__seed0"))  # nothing ran here


def test_a_sweep_not_waited_for_gives_its_jobs_as_json(tmp_path, fake_slurm):
    out = tmp_path / "sweep"
    args = [*GRID, "--out", str(out), "--executor", "slurm:wait=False", "--json"]
    result = CliRunner().invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "sweep": str(out),
        "submitted": {
            "bce__resnet18__none__seed0": "100",
            "asl__resnet18__none__seed0": "101",
            "bce__resnet18__temp-scale__seed0": "102",
            "asl__resnet18__temp-scale__seed0": "103",
        },
        "failed": [],
    }


def test_a_rerun_while_the_jobs_have_not_ended_is_refused(tmp_path, fake_slurm):
    out = tmp_path / "sweep"
    args = ["sweep", *GRID, "--out", str(out), "--executor", "slurm:wait=False"]
    first = CliRunner().invoke(app, [*args, "--quiet"])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "100 bce__resnet18__none__seed0",  # the sweep's order; trained cells submitted first
        "102 bce__resnet18__temp-scale__seed0",
        "101 asl__resnet18__none__seed0",
        "103 asl__resnet18__temp-scale__seed0",
    ]
    complete(grid(out), Cell("bce", "resnet18", "none", 0))  # its job has ended, unknown here
    (tmp_path / "sacct").write_text("101|RUNNING|\n102|PENDING|\n103|CANCELLED|\n")
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert "have not ended: bce__resnet18__temp-scale__seed0 (job 102), asl__resnet18__none__" in (
        flat(again)
    )
    assert "wait for them (`squeue --me`) or cancel them (`scancel 102 101`)" in flat(again)
    assert "skipped" not in flat(again)  # refused before anything is reported
    assert len(list(fake_slurm.iterdir())) == 4  # nothing submitted again
    (tmp_path / "sacct").write_text("101|FAILED|\n102|CANCELLED|\n103|CANCELLED|\n")
    third = CliRunner().invoke(app, args)
    assert third.exit_code == 0, third.output
    assert json.loads((out / JOBS / "jobs.json").read_text()) == {
        "asl__resnet18__none__seed0": "104",
        "bce__resnet18__temp-scale__seed0": "105",
        "asl__resnet18__temp-scale__seed0": "106",
    }


def test_sbatch_refusing_a_job_stops_the_sweep_with_its_message(tmp_path, fake_slurm):
    (fake_slurm.parent / "bin" / "sbatch").write_text(
        "#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpux' >&2\nexit 1\n"
    )
    with pytest.raises(CxrltError, match="Slurm refused the job of .*invalid partition"):
        run_sweep(grid(tmp_path), Console(quiet=True), executor=SlurmExecutor(partition="gpux"))


def test_interrupting_a_waiting_sweep_cancels_its_jobs(tmp_path, fake_slurm, monkeypatch):
    import cxrlt.executors.slurm

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cxrlt.executors.slurm, "sleep", interrupt)
    with pytest.raises(CxrltInterrupted, match="jobs not ended were cancelled"):
        SlurmExecutor().run(grid(tmp_path / "sweep"), lambda outcome: None)
    assert (tmp_path / "cancelled").read_text().split() == ["100", "101", "102", "103"]


def test_without_submitit_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    out = tmp_path / "sweep"
    args = [*GRID, "--out", str(out), "--executor", "slurm:cluster=local"]
    result = CliRunner().invoke(app, ["sweep", *args])
    assert result.exit_code == 2
    assert "submitit, which is not installed: pip install 'cxrlt[slurm]'" in flat(result)
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("slurm:time=0", "slurm's time must be at least 1, got 0"),
        ("slurm:gpu=1", "has no parameter 'gpu'. Did you mean 'gpus'?"),
        ("slurm:cluster=pbs", "Parameter 'cluster' of the executor 'slurm' must be"),
        ("slurm:mem_gb=0", "mem_gb must be positive"),
        ("slurm:sbatch=3", "sbatch holds sbatch options by name"),
        ("slurm:cluster=local,wait=False", "cannot submit and return (wait=False)"),
        ("slurm", "but sbatch and srun cannot be found on PATH"),
    ],
)
def test_a_bad_executor_is_refused_before_anything_runs(tmp_path, monkeypatch, spec, message):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm here
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["sweep", *GRID, "--out", str(out), "--executor", spec])
    assert result.exit_code == 2, result.output
    assert message in flat(result)
    assert not out.exists()
