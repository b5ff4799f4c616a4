"""Built-in sweep executors (``cxrlt sweep --executor``)."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_executors(register):
    register(
        "sequential",
        "cxrlt.executors:Sequential",
        summary="One cell after another in this process (the default).",
    )
    register(
        "ray",
        "cxrlt.executors.ray:RayExecutor",
        summary="Cells in parallel on Ray: a local instance, or a cluster by address=; CPUs "
        "and (fractional) GPUs per cell. Needs pip install 'cxrlt[ray]'.",
    )
    register(
        "slurm",
        "cxrlt.executors.slurm:SlurmExecutor",
        summary="One Slurm job per trained cell through submitit, post-training cells as "
        "jobs that depend on them; partition, time and GPUs per job. Needs pip install "
        "'cxrlt[slurm]'.",
    )
