"""Built-in training samplers."""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    register(
        "uniform",
        "cxrlt.data.samplers:UniformSampler",
        summary="Every image once per epoch, in a random order.",
        aliases=("random",),
    )
