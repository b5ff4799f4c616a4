"""``cxrlt sweep --executor ray``: cells in parallel on a local Ray with 2 CPUs, with the
sequential executor's tables and semantics (skip, resume, failures, post cells after their
trained cell). The stand-in runs are module-level functions, so Ray's workers import them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.executors import CellOutcome, run_sweep
from cxrlt.executors.ray import RayExecutor
from cxrlt.options import RunOptions
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.sweep import CELLS, SUMMARY, Cell, Sweep, cell_state
from cxrlt.testing import check_entry

TINY = ["--dataset", TINY_DATA, "--size", "32", "--epochs", "1", "--bs", "32", "--device", "cpu"]


def flat(result) -> str:
    return " ".join(result.output.split())


def grid(folder: Path, loss: str = "bce,asl", post: str = "none,tta") -> Sweep:
    return Sweep.from_text(folder, loss, "resnet18", post, 1, RunOptions())


def stand_in(options: RunOptions, console: Console, resume: bool) -> None:
    """A run in a Ray worker: does what ``behaviour.json`` beside the cells says for its cell
    ("nan": a CxrltError, "bug": another exception, "die": the worker exits, "barrier": waits
    until another cell has started, "hold": waits for a file ``release``), writes a complete
    run's files and notes its start and end in ``calls.jsonl``."""
    folder, name = options.out.parent, options.out.name
    behaviour = json.loads((folder / "behaviour.json").read_text()).get(name)
    note = {"cell": name, "resume": resume, "pid": os.getpid(), "start": time.time()}
    note.update(out=str(options.out), gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
    (folder / "started").mkdir(exist_ok=True)
    (folder / "started" / name).touch()
    if behaviour == "nan":
        raise CxrltError("loss became NaN")
    if behaviour == "bug":
        raise RuntimeError("a bug in a plugin")
    if behaviour == "die":
        os._exit(1)
    if behaviour == "barrier":
        _wait_until(lambda: len(list((folder / "started").iterdir())) >= 2, "another cell")
    if behaviour == "hold":
        _wait_until((folder / "release").exists, "the release")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "config.json").write_text(json.dumps({"status": "complete"}))
    (options.out / "metrics.json").write_text(json.dumps({"mAP": 0.5}))
    with open(folder / "calls.jsonl", "a", encoding="utf-8") as calls:
        calls.write(json.dumps({**note, "end": time.time()}) + "\n")


def _wait_until(condition, what: str) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.1)
    raise CxrltError(f"waited a minute for {what}")


def ray_sweep(sweep: Sweep, behaviour: dict[str, str] | None = None, **params):
    """Run ``sweep`` on Ray with :func:`stand_in`: its outcomes in the order reported, the
    failure lines, and the runs noted (by cell)."""
    sweep.folder.mkdir(parents=True, exist_ok=True)
    (sweep.folder / "behaviour.json").write_text(json.dumps(behaviour or {}))
    (sweep.folder / "calls.jsonl").unlink(missing_ok=True)
    reported: list[CellOutcome] = []
    executor = RayExecutor(**params)
    failed = run_sweep(sweep, Console(quiet=True), executor=_Reporting(executor, reported))
    calls_file = sweep.folder / "calls.jsonl"
    lines = calls_file.read_text().splitlines() if calls_file.exists() else []
    calls = {call["cell"]: call for call in map(json.loads, lines)}
    assert len(calls) == len(lines)  # each cell ran at most once
    return reported, failed, calls


class _Reporting:
    """An executor that also keeps what the wrapped one reported, in order."""

    def __init__(self, executor: RayExecutor, reported: list[CellOutcome]) -> None:
        self.executor, self.reported = executor, reported

    def run(self, sweep, report, run=None):
        def keep(outcome: CellOutcome) -> None:
            self.reported.append(outcome)
            report(outcome)

        return self.executor.run(sweep, keep, stand_in)


# ---- without Ray running -------------------------------------------------------------------


def test_without_ray_the_option_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as when not installed
    args = ["sweep", "--loss", "bce", "--out", str(tmp_path / "sweep"), *TINY]
    result = CliRunner().invoke(app, [*args, "--executor", "ray"])
    assert result.exit_code == 2
    assert "--executor ray needs Ray, which is not installed: pip install 'cxrlt[ray]'" in flat(
        result
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ray:gpus=-1", "gpus=-1: give each cell a share of one GPU (0 to 1, e.g. 0.5) or whole"),
        ("ray:gpus=1.5", "gpus=1.5: give each cell a share of one GPU"),
        ("ray:cpus=0", "cpus=0: give each cell more than 0 CPUs"),
        ("ray:memory_gb=0", "memory_gb=0: give more than 0 GB"),
        ("ray:address='auto',local_cpus=2", "local_cpus=2: the CPUs of the Ray instance started"),
        ("ray:gpu=1", "has no parameter 'gpu'"),
        ("ray:address='127.0.0.1:1'", "nothing answers at address='127.0.0.1:1'"),
        ("ray:cpus='two'", "Parameter 'cpus' of the executor 'ray' must be float"),
    ],
)
def test_a_bad_parameter_stops_the_sweep_before_any_cell(tmp_path, spec, message):
    args = ["sweep", "--loss", "bce", "--out", str(tmp_path / "sweep"), *TINY]
    result = CliRunner().invoke(app, [*args, "--executor", spec])
    assert result.exit_code == 2, result.output
    assert message in flat(result)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_the_documented_ray_command_is_a_valid_grid(tmp_path, monkeypatch):
    guide = Path(__file__).resolve().parents[2] / "docs" / "guides" / "studies.md"
    block = guide.read_text().split("<!-- ray command -->", 1)[1].split("```bash\n", 1)[1]
    command = shlex.split(block.split("```", 1)[0].replace("\\\n", " "))
    assert command[:2] == ["cxrlt", "sweep"] and "ray:cpus=1" in command
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [*command[1:], "--print-commands"])
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.startswith("cxrlt run")]) == 4


def test_sequential_executor_conforms():
    check_entry("executors", "sequential")


def test_the_conformance_check_catches_an_executor_that_ignores_the_order(
    cxrlt_fake_plugin,
):
    cxrlt_fake_plugin(
        "backwards",
        """
        from cxrlt.executors import run_cell
        from cxrlt.hookspecs import hookimpl

        class Backwards:
            def run(self, sweep, report, run):
                outcomes = [run_cell(sweep, cell, run) for cell in reversed(sweep.runs)]
                for outcome in outcomes:
                    report(outcome)
                return outcomes

        @hookimpl
        def register_executors(register):
            register("backwards", f"{__name__}:Backwards")
        """,
    )
    with pytest.raises(AssertionError, match="with run_cell's status"):
        check_entry("executors", "backwards")


# ---- real cells: the same tables as the sequential executor ------------------------------


@pytest.mark.slow
def test_ray_writes_the_tables_of_the_sequential_executor(tmp_path):
    """A real `cxrlt sweep` process on its own local Ray (2 trained + 2 temp-scale cells),
    then the same grid one cell after another: the same tables, and no Ray chatter."""
    grid_args = ["sweep", "--loss", "bce,asl", "--post", "none,temp-scale", *TINY]
    command = [sys.executable, "-m", "cxrlt", *grid_args, "--out", str(tmp_path / "ray")]
    finished = subprocess.run(
        [*command, "--executor", "ray:cpus=1,local_cpus=2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "Ray" not in finished.stderr and "raylet" not in finished.stderr, finished.stderr
    assert "[4/4]" in finished.stdout
    result = CliRunner().invoke(app, [*grid_args, "--out", str(tmp_path / "sequential")])
    assert result.exit_code == 0, result.output
    for table in (CELLS, f"{SUMMARY}.csv"):
        ray_table = (tmp_path / "ray" / table).read_text()
        assert ray_table == (tmp_path / "sequential" / table).read_text(), table
    assert len((tmp_path / "ray" / CELLS).read_text().splitlines()) == 1 + 4


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", "nothing answers at address='127.0.0.1:1'"),
        ("headnode", "address='headnode' names no port: give host:port"),
    ],
)
def test_a_cluster_that_does_not_answer_is_named_at_once(tmp_path, address, message):
    sweep = grid(tmp_path / "sweep")
    with pytest.raises(CxrltError, match=message):
        RayExecutor(address=address).run(sweep, lambda outcome: None)


# ---- on a local Ray with 2 CPUs, stand-in runs ---------------------------------------------


@pytest.fixture(scope="module")
def local_ray(cxrlt_cache):
    """One local Ray for the module (started after the cache's environment variable is set,
    so that its workers see it); the executors use it and leave it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_executor_conforms(local_ray):
    check_entry("executors", "ray")


@pytest.mark.slow
def test_trained_cells_run_in_parallel_and_post_cells_after_them(local_ray, tmp_path):
    sweep = grid(tmp_path)
    behaviour = {cell.name: "barrier" for cell in sweep.runs if cell.base is None}
    reported, failed, calls = ray_sweep(sweep, behaviour, cpus=1)
    # each trained cell waited until the other had started: they ran at the same time
    assert failed == [] and set(calls) == {cell.name for cell in sweep.runs}
    assert {outcome.status for outcome in reported} == {"done"}
    for cell in sweep.runs:
        if cell.base is not None:
            assert calls[cell.name]["start"] >= calls[cell.base.name]["end"]
            assert reported.index(_of(reported, cell)) > reported.index(_of(reported, cell.base))
    assert len({call["pid"] for call in calls.values()}) == 4  # a fresh process per cell
    assert {call["gpus"] for call in calls.values()} == {""}  # gpus=0: the cells see no GPU


@pytest.mark.slow
def test_the_cells_get_absolute_paths(local_ray, tmp_path, monkeypatch):
    """A cluster's workers start in their own folders: a relative --out or --data would point
    elsewhere there."""
    monkeypatch.chdir(tmp_path)
    sweep = Sweep.from_text("rel", "bce", "resnet18", "none", 1, RunOptions(data="images"))
    _, failed, calls = ray_sweep(sweep)
    [call] = calls.values()
    assert failed == [] and call["out"] == str(tmp_path / "rel" / "bce__resnet18__none__seed0")


def _of(outcomes: list[CellOutcome], cell: Cell) -> CellOutcome:
    return next(outcome for outcome in outcomes if outcome.cell == cell)


@pytest.mark.slow
def test_a_cell_that_raises_or_dies_does_not_stop_the_others(local_ray, tmp_path):
    """run_cell makes a CxrltError the cell's failure (the conformance check covers it); an
    exception of another kind, or a worker that dies, fails the cell on Ray's side."""
    sweep = grid(tmp_path, loss="bce,asl,focal")
    buggy, dying, fine = (cell for cell in sweep.runs if cell.base is None)
    reported, failed, calls = ray_sweep(sweep, {buggy.name: "bug", dying.name: "die"})
    statuses = {outcome.cell.name: outcome.status for outcome in reported}
    assert len(reported) == len(sweep.runs)
    assert statuses == {
        "bce__resnet18__none__seed0": "failed",
        "bce__resnet18__tta__seed0": "not run",
        "asl__resnet18__none__seed0": "failed",
        "asl__resnet18__tta__seed0": "not run",
        "focal__resnet18__none__seed0": "done",
        "focal__resnet18__tta__seed0": "done",
    }
    log = sweep.log_file(buggy)
    assert failed[0] == f"{buggy.name}: RuntimeError: a bug in a plugin; details in {log}"
    assert 'raise RuntimeError("a bug in a plugin")' in log.read_text()  # the traceback
    assert failed[1] == f"bce__resnet18__tta__seed0: not run, its trained cell {buggy.name} failed"
    assert failed[2].startswith(f"{dying.name}: its Ray worker died (WorkerCrashedError)")
    assert failed[3] == f"asl__resnet18__tta__seed0: not run, its trained cell {dying.name} failed"
    assert set(calls) == {fine.name, "focal__resnet18__tta__seed0"}


@pytest.mark.slow
def test_a_rerun_skips_complete_cells_and_resumes_an_interrupted_one(local_ray, tmp_path):
    sweep = grid(tmp_path, loss="bce")
    ray_sweep(sweep)
    reported, failed, calls = ray_sweep(sweep)
    assert calls == {} and [outcome.status for outcome in reported] == ["skipped"] * 2
    interrupted = sweep.path(sweep.runs[0])
    (interrupted / "metrics.json").unlink()
    (interrupted / "config.json").write_text(json.dumps({"status": "training"}))
    (interrupted / "checkpoint.pt").write_bytes(b"")
    assert cell_state(interrupted) == "interrupted"
    reported, failed, calls = ray_sweep(sweep)
    assert list(calls) == [interrupted.name] and calls[interrupted.name]["resume"] is True
    assert [outcome.status for outcome in reported] == ["skipped", "resumed"]


@pytest.mark.slow
def test_ctrl_c_stops_the_running_cells_and_says_how_to_go_on(local_ray, tmp_path):
    sweep = grid(tmp_path, post="none")
    held, quick = sweep.runs
    (tmp_path / "behaviour.json").write_text(json.dumps({held.name: "hold"}))

    def interrupt(outcome: CellOutcome) -> None:
        raise KeyboardInterrupt  # Ctrl-C once the quick cell is done

    with pytest.raises(CxrltInterrupted, match="Run the same command again to go on"):
        RayExecutor().run(sweep, interrupt, stand_in)
    (tmp_path / "release").touch()  # the held cell would finish now, had it not been stopped
    time.sleep(1)
    assert cell_state(sweep.path(held)) == "absent"
    assert cell_state(sweep.path(quick)) == "complete"


@pytest.mark.slow
def test_a_cell_asking_for_more_than_the_local_ray_has_is_refused(local_ray, tmp_path):
    with pytest.raises(CxrltError, match=r"each cell asks for 1 GPU\(s\) but this machine's Ray"):
        run_sweep(grid(tmp_path), Console(quiet=True), executor=RayExecutor(gpus=1))
