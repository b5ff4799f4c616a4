"""``--executor ray``: the cells of a sweep in parallel on Ray, on this machine or a cluster.

Each cell is a Ray task running :func:`cxrlt.executors.run_cell`, so it keeps the sequential
semantics (skip, resume, failure, "not run"); a post-training cell's task takes its trained
cell's task as an argument, so Ray starts it only once that one has finished. Ray is an
optional extra: this module imports it only when a sweep runs, so listing and checking the
executor costs nothing without it.

On a cluster every node must import cxrlt (and the plugins the cells use) and reach the data
and the sweep folder under the same paths (a shared file system): the driver writes the grid
and the tables, the tasks write the cells.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrlt.errors import CxrltError, CxrltInterrupted
from cxrlt.executors import CellOutcome, RunCell, run_cell, run_pipeline
from cxrlt.sweep import Cell, Sweep, cell_state

INSTALL = "pip install 'cxrlt[ray]'"
_GB = 1024**3


def _cell_task(sweep: Sweep, cell: Cell, run: RunCell, *after: CellOutcome) -> CellOutcome:
    """What a Ray worker runs: one cell. ``after`` is the trained cell's outcome, which Ray
    hands over only once that task has finished: it orders the tasks and is not used."""
    import ray

    if not ray.get_gpu_ids():
        # A cell given no GPU trains on the CPU: recent Ray leaves CUDA_VISIBLE_DEVICES as it
        # is for such tasks, and `--device auto` would put every cell on the first GPU. The
        # worker is fresh (max_calls=1): torch has not looked at the GPUs yet.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    return run_cell(sweep, cell, run)


class RayExecutor:
    """Cells as Ray tasks: ``cpus``, ``gpus`` (fractions share a GPU: 0.5 runs two cells on
    each) and ``memory_gb`` reserved per cell. ``address`` None starts a Ray instance on this
    machine for the sweep (``local_cpus`` of its CPUs: all by default) and stops it after;
    ``'host:6379'``, ``'ray://host:10001'`` or ``'auto'`` (the cluster ``RAY_ADDRESS`` names
    or ``ray start`` runs here) joins a running cluster. A process that already called
    ``ray.init`` keeps its own Ray. ``retries``: how often a cell whose worker died (a
    lost node) is started again; a training cell resumes from its checkpoint."""

    def __init__(
        self,
        address: str | None = None,
        cpus: float = 1,
        gpus: float = 0,
        memory_gb: float | None = None,
        local_cpus: int | None = None,
        retries: int = 0,
    ) -> None:
        if importlib.util.find_spec("ray") is None:
            raise CxrltError(f"--executor ray needs Ray, which is not installed: {INSTALL}.")
        if cpus <= 0:
            raise ValueError(f"cpus={cpus}: give each cell more than 0 CPUs, e.g. cpus=1")
        if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise ValueError(
                f"gpus={gpus}: give each cell a share of one GPU (0 to 1, e.g. 0.5) or whole "
                "GPUs (1, 2, ...)"
            )
        if memory_gb is not None and memory_gb <= 0:
            raise ValueError(f"memory_gb={memory_gb}: give more than 0 GB, or leave it out")
        if local_cpus is not None and (local_cpus < 1 or address is not None):
            raise ValueError(
                f"local_cpus={local_cpus}: the CPUs of the Ray instance started here, at least "
                "1, and only without address= (a cluster has its own)"
            )
        if retries < 0:
            raise ValueError(f"retries={retries}: give 0 or more")
        if address not in (None, "auto"):
            _check_reachable(address)  # when the executor is built: before the sweep's folder
        self.address = address
        self.local_cpus = local_cpus
        self.retries = retries
        self.resources: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
        if memory_gb is not None:
            self.resources["memory"] = int(memory_gb * _GB)

    def run(
        self, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell = run_pipeline
    ) -> list[CellOutcome]:
        import ray

        # A cluster's workers start in their own folders: give them absolute paths.
        options = sweep.options
        if options.data:
            options = dataclasses.replace(options, data=str(Path(options.data).absolute()))
        sweep = dataclasses.replace(sweep, folder=sweep.folder.absolute(), options=options)
        started = not ray.is_initialized()
        if started:
            self._start(ray)
        try:
            self._check_fits(ray)
            return self._run(ray, sweep, report, run)
        finally:
            if started:
                ray.shutdown()  # stops a local instance; leaves a cluster running

    def _start(self, ray: Any) -> None:
        """Start a local Ray instance, or connect to the cluster at ``address``, quietly: no
        dashboard, no usage statistics, no worker output in the terminal (each cell's output
        is in its log file)."""
        if self.address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # The cells see this command's cxrlt settings (cache folder, plugins) on a cluster too.
        settings = {key: value for key, value in os.environ.items() if key.startswith("CXRLT_")}
        try:
            ray.init(
                address=self.address or "local",  # not a cluster RAY_ADDRESS names
                num_cpus=self.local_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,  # its warnings are about Ray, not the cells
                runtime_env={"env_vars": settings} if self.address and settings else None,
            )
        except ImportError as error:  # ray:// needs Ray Client (grpcio)
            raise CxrltError(
                f"--executor ray: address={self.address!r} goes through Ray Client, which "
                f"needs more packages ({error}): pip install 'ray[client]'."
            ) from None
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = (
                f"join the Ray cluster at {self.address!r}" if self.address else "start a local Ray"
            )
            raise CxrltError(
                f"--executor ray could not {where}: {str(error).rstrip('.')}. Check the address "
                "(address='auto' for a cluster started on this machine with `ray start "
                "--head`, 'ray://host:10001' for a remote one), or leave it out for a local one."
            ) from None

    def _check_fits(self, ray: Any) -> None:
        """A cell that needs more than the local instance has would wait forever: refuse it.
        A cluster may add nodes on demand, so there the cells wait."""
        if self.address is not None:
            return
        have = ray.cluster_resources()
        asked = {
            "cpus": (self.resources["num_cpus"], have.get("CPU", 0), "CPU(s)"),
            "gpus": (self.resources["num_gpus"], have.get("GPU", 0), "GPU(s)"),
            "memory_gb": (
                self.resources.get("memory", 0) / _GB,
                have.get("memory", 0) / _GB,
                "GB of memory",
            ),
        }
        for param, (wanted, there, unit) in asked.items():
            if wanted > there:
                raise CxrltError(
                    f"--executor ray: each cell asks for {wanted:g} {unit} but this machine's "
                    f"Ray instance has {there:g}: give a smaller {param}= (or a cluster's "
                    "address=)." + (" gpus=0 trains on the CPU." if param == "gpus" else "")
                )

    def _run(
        self, ray: Any, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell
    ) -> list[CellOutcome]:
        # One worker process per cell (max_calls=1): it sees the threads (OMP_NUM_THREADS) and
        # GPUs (CUDA_VISIBLE_DEVICES) Ray gives that cell, and frees its memory when it ends.
        task = ray.remote(max_calls=1)(_cell_task).options(
            **self.resources, max_retries=self.retries
        )
        refs: dict[Cell, Any] = {}
        outcomes: dict[Cell, CellOutcome] = {}
        for cell in sweep.runs:  # trained cells before the cells that post-train them
            if cell_state(sweep.path(cell)) == "complete":  # no worker to start for it
                outcomes[cell] = CellOutcome(cell, "skipped")
                report(outcomes[cell])
                continue
            after = [refs[cell.base]] if cell.base in refs else []
            refs[cell] = task.remote(sweep, cell, run, *after)

        def settle(cell: Cell) -> None:
            """Record and report a finished cell's outcome, its trained cell's first."""
            if cell in outcomes:
                return
            if cell.base is not None:
                settle(cell.base)  # finished too: the post cell waited for it
            outcomes[cell] = _outcome(ray, sweep, cell, refs[cell], outcomes)
            report(outcomes[cell])

        cell_of = {ref: cell for cell, ref in refs.items()}
        pending = list(cell_of)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                settle(cell_of[ready[0]])
                pending = [ref for ref in pending if cell_of[ref] not in outcomes]
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise CxrltInterrupted(
                "Interrupted: the cells still running were stopped. Run the same command "
                "again to go on: complete cells are skipped and interrupted training cells "
                "resume from their last checkpoint."
            ) from None
        return [outcomes[cell] for cell in sweep.runs]


def _check_reachable(address: str) -> None:
    """Stop at once when nothing answers at ``address`` (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit():
        raise CxrltError(
            f"--executor ray: address={address!r} names no port: give host:port (`ray start "
            "--head` prints it), 'ray://host:10001', 'auto', or no address for a local Ray."
        )
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        raise CxrltError(
            f"--executor ray: nothing answers at address={address!r} ({error}). Give the head "
            "node's host:port (`ray start --head` prints it; 'ray://host:10001' through Ray "
            "Client), 'auto' for a cluster started on this machine, or no address for a local "
            "Ray."
        ) from None


def _outcome(
    ray: Any, sweep: Sweep, cell: Cell, ref: Any, outcomes: dict[Cell, CellOutcome]
) -> CellOutcome:
    """The finished task's outcome. A task that raised (not a CxrltError: run_cell turns those
    into outcomes) or whose worker died is the cell's failure, with the details in its log
    file; a post cell whose trained cell's task failed so is "not run"."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        if cell.base is not None and outcomes[cell.base].failed:
            return CellOutcome(cell, "not run")
        log = sweep.log_file(cell)
        with open(log, "a", encoding="utf-8") as file:
            print(f"Ray: {error}", file=file)
        cause = getattr(error, "cause", None)
        if isinstance(error, ray.exceptions.RayTaskError) and cause is not None:
            reason = f"{type(cause).__name__}: {cause}"
        else:
            reason = f"its Ray worker died ({type(error).__name__})"
        return CellOutcome(cell, "failed", error=f"{reason}; details in {log}")
