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
    register(
        "class-aware",
        "cxrlt.data.samplers:ClassAwareSampler",
        summary="A class uniformly, then one of its positive images (Shen et al. 2016).",
    )
    register(
        "repeat-factor",
        "cxrlt.data.samplers:RepeatFactorSampler",
        summary="Repeat images of rare classes max(1, sqrt(t/f_c)) times, capped (LVIS).",
    )
    register(
        "sqrt",
        "cxrlt.data.samplers:SquareRootSampler",
        summary="Draw images ∝ 1/sqrt(count) of their rarest positive class.",
    )
    register(
        "inverse-rarest",
        "cxrlt.data.samplers:InverseRarestSampler",
        summary="Draw images ∝ 1/count of their rarest positive class.",
    )
