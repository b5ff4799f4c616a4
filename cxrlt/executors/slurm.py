"""A sweep's cells as Slurm jobs through submitit (``cxrlt sweep --executor slurm``).

Each trained cell is one job (with ``array``, the trained cells are one job array); each
post-training cell is a job that starts once its trained cell's job has ended (``afterany``,
so that when the trained cell failed the job reports "not run" instead of pending forever).
Every job calls :func:`cxrlt.executors.run_cell`, so the sweep's semantics hold: a complete
cell is skipped (here, without a job), an interrupted one resumes, a failed one is reported
while the others go on; and a job that Slurm preempts or times out is requeued by submitit and
its cell resumes from the checkpoint. The jobs of a submission are recorded (``slurm/jobs.json``)
so that running the sweep again while some of them have not ended is refused instead of
submitting their cells a second time. ``cluster="local"`` runs the jobs as processes on this
machine with submitit's local executor, which has no dependencies: there this process submits
a post-training cell once its trained cell's job has ended. submitit is imported only when
the executor is built, so ``--executor`` is checked without it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from time import sleep
from typing import TYPE_CHECKING, Any, Literal

from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.executors import CellOutcome, RunCell, run_cell, run_pipeline
from cxrlt.io import read_json, write_json
from cxrlt.sweep import Cell, Sweep, cell_state

if TYPE_CHECKING:
    from submitit import AutoExecutor, Job

INSTALL = "pip install 'cxrlt[slurm]'"
JOBS = "slurm"  # submitit's folder inside the sweep folder, one subfolder per job
JOB_IDS = "jobs.json"  # in JOBS: {cell name: job id} of the latest submission
POLL_S = 2.0  # how often a waiting sweep looks at its jobs


@dataclass(frozen=True)
class CellJob:
    """What a job runs: one cell. Checkpointable: when Slurm preempts the job or its time runs
    out, submitit requeues the same call, which resumes the cell from its checkpoint."""

    sweep: Sweep
    cell: Cell
    run: RunCell = run_pipeline

    def __call__(self) -> CellOutcome:
        return run_cell(self.sweep, self.cell, self.run)

    def checkpoint(self) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)


class SlurmExecutor:
    """The cells as Slurm jobs of ``time`` minutes on ``partition`` with ``gpus``, ``cpus``
    and ``mem_gb`` each (``account``; ``setup``: shell lines run before the cell, e.g.
    ``['module load cuda']``; ``sbatch``: any other sbatch option, e.g.
    ``{'constraint': 'a100'}``); ``array``: the trained cells as one job array. ``wait``: wait
    for the jobs and report each cell as its job ends; else submit them and return (then
    ``cxrlt sweep ... --collect``). ``cluster="local"``: the jobs as processes on this
    machine (every trained cell at once; ``gpus`` GPUs visible to each)."""

    def __init__(
        self,
        partition: str | None = None,
        time: int = 60,
        gpus: int = 0,
        cpus: int = 4,
        mem_gb: float | None = None,
        account: str | None = None,
        array: bool = False,
        setup: list[str] | None = None,
        sbatch: dict[str, Any] | None = None,
        cluster: Literal["slurm", "local"] = "slurm",
        wait: bool = True,
    ) -> None:
        try:
            import submitit  # noqa: F401 - only to say early that it is missing
        except ImportError:
            raise CxrltError(
                f"--executor slurm runs the cells through submitit, which is not installed: "
                f"{INSTALL}"
            ) from None
        for name, value, least in (("time", time, 1), ("gpus", gpus, 0), ("cpus", cpus, 1)):
            if value < least:
                raise CxrltError(
                    f"The executor slurm's {name} must be at least {least}, got {value} (time: "
                    "minutes per job; gpus and cpus: per job)."
                )
        if not isinstance(sbatch, dict | None):
            raise CxrltError(
                f"The executor slurm's sbatch holds sbatch options by name, e.g. "
                f"sbatch={{'qos':'high'}}; got {sbatch!r}."
            )
        if mem_gb is not None and mem_gb <= 0:
            raise CxrltError(f"The executor slurm's mem_gb must be positive, got {mem_gb}.")
        if cluster == "local" and not wait:
            raise CxrltError(
                "slurm:cluster=local cannot submit and return (wait=False): on this machine the "
                "post-training cells are started by the sweep once their trained cell's job "
                "ends. Leave out wait=False, or submit to a Slurm cluster."
            )
        missing = [
            tool for tool in ("sbatch", "srun") if cluster == "slurm" and not shutil.which(tool)
        ]
        if missing:  # the local cluster needs neither
            raise CxrltError(
                f"--executor slurm submits jobs with sbatch, but {' and '.join(missing)} "
                "cannot be found on PATH: run the sweep on a machine of the Slurm cluster (its "
                "login node), or use slurm:cluster=local to run the jobs on this machine."
            )
        self.partition, self.time, self.gpus, self.cpus = partition, time, gpus, cpus
        self.mem_gb, self.account, self.array, self.setup = mem_gb, account, array, setup
        self.sbatch, self.cluster, self.wait = dict(sbatch or {}), cluster, wait

    def run(
        self, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell = run_pipeline
    ) -> list[CellOutcome]:
        """Submit the cells not complete; with ``wait``, return every cell's outcome, else
        the skipped cells' and the others as ``submitted`` (their results come with
        ``--collect``)."""
        outcomes: list[CellOutcome] = []

        def ended(outcome: CellOutcome) -> None:
            outcomes.append(outcome)
            report(outcome)

        todo = [cell for cell in sweep.runs if cell_state(sweep.path(cell)) != "complete"]
        if todo and self.cluster == "slurm":
            _refuse_unended(sweep, todo)
        for cell in sweep.runs:
            if cell not in todo:
                ended(CellOutcome(cell, "skipped"))
        if not todo:
            return outcomes
        executor = self._executor(sweep.folder / JOBS / "%j")
        jobs: dict[Cell, Job] = {}
        later: list[Cell] = []  # post-training cells this process submits (local cluster)
        try:
            trained = [cell for cell in todo if cell.base is None]
            jobs.update(self._submit_trained(executor, sweep, trained, run))
            for cell in todo:
                if cell.base is None:
                    continue
                after = jobs.get(cell.base)  # None: the trained cell is complete already
                if after is not None and self.cluster == "local":
                    later.append(cell)
                else:
                    jobs[cell] = self._submit(executor, sweep, cell, run, after)
            _record(sweep, jobs)
            self._print_submitted(sweep, jobs, later)
            if self.wait:
                self._wait(executor, sweep, run, jobs, later, ended)
            else:
                for cell, job in jobs.items():
                    ended(CellOutcome(cell, "submitted", job=job.job_id))
        except KeyboardInterrupt:
            _cancel(jobs.values())
            raise CxrltInterrupted(
                "Interrupted: the sweep's jobs not ended were cancelled. Run the same command "
                "again: the complete cells are skipped and the others resume."
            ) from None
        except BaseException:  # a submission refused: no sweep half submitted
            _cancel(jobs.values())
            raise
        return outcomes

    def _executor(self, folder: Path) -> AutoExecutor:
        import submitit

        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        executor.update_parameters(
            timeout_min=self.time,
            cpus_per_task=self.cpus,
            gpus_per_node=self.gpus or None,  # no GPU line rather than a GPU count of 0
            mem_gb=self.mem_gb,
            slurm_partition=self.partition,
            slurm_account=self.account,
            slurm_setup=self.setup,
            local_setup=self.setup,
        )
        return executor

    def _submit(
        self,
        executor: AutoExecutor,
        sweep: Sweep,
        cell: Cell,
        run: RunCell,
        after: Job | None = None,
    ) -> Job:
        """One cell's job; ``after``: the job it waits for (its trained cell's)."""
        dependency = {} if after is None else {"dependency": f"afterany:{after.job_id}"}
        executor.update_parameters(
            name=f"cxrlt-{cell.name}", slurm_additional_parameters={**self.sbatch, **dependency}
        )
        return _submitted(cell.name, lambda: executor.submit(CellJob(sweep, cell, run)))

    def _submit_trained(
        self, executor: AutoExecutor, sweep: Sweep, cells: list[Cell], run: RunCell
    ) -> dict[Cell, Job]:
        if not self.array or len(cells) < 2:
            return {cell: self._submit(executor, sweep, cell, run) for cell in cells}
        executor.update_parameters(
            name=f"cxrlt-{sweep.folder.name}", slurm_additional_parameters=dict(self.sbatch)
        )

        def submit_array() -> list[Job]:
            with executor.batch():
                jobs = [executor.submit(CellJob(sweep, cell, run)) for cell in cells]
            return jobs

        return dict(zip(cells, _submitted("the trained cells' array", submit_array), strict=True))

    def _wait(
        self,
        executor: AutoExecutor,
        sweep: Sweep,
        run: RunCell,
        jobs: dict[Cell, Job],
        later: list[Cell],
        ended: Callable[[CellOutcome], None],
    ) -> None:
        """Report each job's outcome as it ends; submit the post-training cells of ``later``
        once their trained cell's job has ended."""
        pending = dict(jobs)
        while pending:
            finished = [cell for cell, job in pending.items() if job.done()]
            if not finished:
                sleep(POLL_S)
            for cell in finished:
                ended(_outcome(cell, pending.pop(cell)))
                for post in [post for post in later if post.base == cell]:
                    later.remove(post)
                    if cell_state(sweep.path(cell)) == "complete":
                        pending[post] = jobs[post] = self._submit(executor, sweep, post, run)
                        _record(sweep, jobs)
                    else:
                        ended(CellOutcome(post, "not run"))

    def _print_submitted(self, sweep: Sweep, jobs: dict[Cell, Job], later: list[Cell]) -> None:
        """Where the jobs and their logs are; with ``wait``, the jobs (else the sweep reports
        each cell as submitted)."""
        where = "Slurm" if self.cluster == "slurm" else "this machine (submitit's local executor)"
        print(
            f"Submitted {len(jobs)} job{'s' if len(jobs) > 1 else ''} to {where}; their logs are "
            f"in {sweep.folder / JOBS}/<job id>/, each cell's output in {sweep.folder / 'logs'}/"
            + (":" if self.wait else ".")
        )
        if not self.wait:
            return
        for cell, job in jobs.items():
            after = jobs.get(cell.base) if cell.base is not None else None
            waits = "" if after is None else f" (after {after.job_id})"
            print(f"  {job.job_id:>12}  {cell.name}{waits}")
        for cell in later:
            print(f"  {'later':>12}  {cell.name} (once its trained cell's job has ended)")


def _record(sweep: Sweep, jobs: dict[Cell, Job]) -> None:
    """Write which job runs which cell, for :func:`_refuse_unended` on the next run."""
    record = {cell.name: job.job_id for cell, job in jobs.items()}
    write_json(sweep.folder / JOBS / JOB_IDS, record)


def _refuse_unended(sweep: Sweep, cells: list[Cell]) -> None:
    """Refuse to submit ``cells`` again while a job of the previous submission has not ended
    for one of them: both jobs would write the same cell folder."""
    import submitit

    path = sweep.folder / JOBS / JOB_IDS
    recorded = read_json(path) if path.exists() else {}
    jobs = {
        cell.name: submitit.SlurmJob(sweep.folder / JOBS / "%j", str(recorded[cell.name]))
        for cell in cells
        if cell.name in recorded
    }  # all made before the first done(): one sacct call asks for them all
    unended = {name: job.job_id for name, job in jobs.items() if not job.done()}
    if unended:
        listed = ", ".join(f"{name} (job {job_id})" for name, job_id in unended.items())
        raise CxrltError(
            f"Jobs of an earlier run of this sweep have not ended: {listed}. Submitting their "
            "cells again would run each twice into the same folder: wait for them (`squeue "
            f"--me`) or cancel them (`scancel {' '.join(unended.values())}`), then run the same "
            f"command again. If Slurm no longer knows them (purged from its accounting), delete "
            f"{sweep.folder / JOBS / JOB_IDS}."
        )


def _submitted(what: str, submit: Callable[[], Any]) -> Any:
    """``submit()``, with sbatch's refusal (a partition or account that does not exist) as a
    :class:`CxrltError`."""
    from submitit.core.utils import FailedJobError

    try:
        return submit()
    except FailedJobError as error:
        raise CxrltError(
            f"Slurm refused the job of {what} (the jobs submitted before it are cancelled): "
            f"{str(error).strip()} Check the executor's partition, account and sbatch options."
        ) from None


def _outcome(cell: Cell, job: Job) -> CellOutcome:
    """The outcome the job returned, or "failed" with submitit's error when the job crashed,
    was killed or ran out of time."""
    try:
        return job.result()
    except Exception as error:  # noqa: BLE001 - any job failure is the cell's, not the sweep's
        return CellOutcome(cell, "failed", error=_job_error(job, error))


def _job_error(job: Job, error: Exception) -> str:
    """submitit's error in one line: the exception's last line (a crash) or why the job gave
    no result (killed, timed out), and where the job's log is."""
    from submitit.core.utils import FailedJobError

    text = str(error).strip()
    parts = text.split("-" * 22 + "\n")  # a crash's trace sits between two such lines
    if isinstance(error, FailedJobError) and len(parts) >= 3 and parts[1].strip():
        summary = parts[1].strip().splitlines()[-1]
    else:
        summary = " ".join(text.splitlines()[:2])
    return f"{summary} (job {job.job_id}, log {job.paths.stderr})"


def _cancel(jobs: Iterable[Job]) -> None:
    """Cancel the jobs not ended (the sweep stopped): a rerun submits their cells again, and
    they resume."""
    for job in jobs:
        if not job.done():
            job.cancel(check=False)
