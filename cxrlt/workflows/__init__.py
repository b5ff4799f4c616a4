"""What the commands do, as named stages: ``cxrlt run`` is :func:`cxrlt.workflows.run.run`,
which sets up, loads the data, trains (or loads a trained model), post-trains, calibrates,
evaluates and writes, one module per stage."""
