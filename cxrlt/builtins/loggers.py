"""Built-in experiment trackers (``--log``)."""

from cxrlt.hookspecs import hookimpl

_MODULE = "cxrlt.training.tracking"


@hookimpl
def register_loggers(register):
    register(
        "mlflow",
        f"{_MODULE}:MLflowTracker",
        summary="An MLflow run: specs as parameters, per-epoch and final metrics, the run's "
        "files as artifacts; a local SQLite store (./mlflow.db) unless uri= or "
        "MLFLOW_TRACKING_URI names another.",
    )
    register(
        "tensorboard",
        f"{_MODULE}:TensorBoardTracker",
        summary="TensorBoard event files in the run directory: per-epoch scalars, final "
        "metrics with the specs as hparams.",
    )
    register(
        "csv",
        f"{_MODULE}:CsvTracker",
        summary="One long CSV table (run, kind, step, name, value) of parameters, per-epoch "
        "values and final metrics; an absolute path= gathers several runs.",
    )
