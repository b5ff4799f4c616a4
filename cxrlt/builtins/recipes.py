"""Built-in recipes: the setups of the papers and challenge entries cxrlt follows, by name."""

from cxrlt.hookspecs import hookimpl

_RECIPES = (
    (
        "founding-paper",
        "ConvNeXt-Large, LDAM-DRW, cRT, TTA, temperature and thresholds (arXiv 2603.02294).",
        "arXiv 2603.02294 (CXR-LT 2026, 5th of 68 teams)",
    ),
    (
        "cxr-lt-2026-winner",
        "ConvNeXtV2-Base, CSRA, DB loss, repeat-factor sampling, EMA, TTA, normal gating.",
        "CXR-LT 2026 Task 1 development-phase winner",
    ),
)


@hookimpl
def register_recipes(register):
    for name, summary, paper in _RECIPES:
        register(name, f"cxrlt.recipes:{name}.toml", summary=summary, paper=paper)
