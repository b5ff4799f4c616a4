"""The module the ``cxrlt`` entry point names. cxrlt imports it at start-up, so keep it cheap:
register lazy ``"package.module:attr"`` targets, imported only when an entry is used.

Other hooks (samplers, backbones, heads, post steps, calibrators, thresholds, data sets,
commands) work the same way: see cxrlt's ``cxrlt/hookspecs.py`` and its README, "Plugins".
"""

from cxrlt.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    register(
        "my-loss",  # rename: the name users write after --loss
        "cxrlt_template.loss:MyLoss",
        summary="Template example: Poly-1, BCE + epsilon * (1 - p_t) (Leng et al., ICLR 2022).",
    )
