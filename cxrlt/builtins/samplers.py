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
        paper="Shen et al., ECCV 2016",
    )
    register(
        "repeat-factor",
        "cxrlt.data.samplers:RepeatFactorSampler",
        summary="Repeat images of rare classes max(1, sqrt(t/f_c)) times (LVIS).",
        paper="Gupta et al., CVPR 2019 (LVIS)",
        deviations={
            "t": "0.01, not LVIS's 0.001: LVIS's rare classes have 1-10 of ~100k images, "
            "CXR-LT's tail tens to hundreds of 128k; t = 0.001 would repeat only the two "
            "rarest CXR-LT 2026 classes, by at most 1.7x",
        },
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
