"""The classifier head a model gets: the one asked for, else the head its loss declares, else
``linear``.

A loss may be designed for one head: LDAM's margins (up to 0.5) and scale s = 30 are meant
for a normalised classifier whose logits are cosines (Cao et al., NeurIPS 2019), so ``ldam``
registers ``head="cosine"``. ``cxrlt run``, ``cxrlt sweep`` and ``cxr_learner`` all ask
:func:`choose_head`, so a loss gets the same head whichever way it is trained.
"""

from __future__ import annotations

from cxrlt.registry import Resolved, resolve
from cxrlt.spec import Spec

DEFAULT_HEAD = "linear"


def choose_head(loss: Resolved, head: str | Spec | None = None) -> tuple[Resolved, str | None]:
    """The head for ``loss``: ``head`` when given (it wins), else the loss's declared head,
    else :data:`DEFAULT_HEAD`; with a one-line note when a given head is not the one the loss
    declares (None otherwise), for the run to print."""
    declared = loss.entry.head
    if head is None:
        return resolve("heads", declared or DEFAULT_HEAD), None
    chosen = resolve("heads", head)
    if declared is None:
        return chosen, None
    expected = resolve("heads", declared)
    if chosen.spec == expected.spec:
        return chosen, None
    return chosen, (
        f"Note: the loss '{loss.entry.name}' is designed for the head '{expected.spec}' "
        f"(`cxrlt show loss {loss.entry.name}`); using the head '{chosen.spec}' as asked."
    )
