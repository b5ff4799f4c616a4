"""Every name a run uses, resolved once into :class:`RunSpecs` before any work starts, so a
typo costs a second and every later stage receives checked, typed specs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxrlt.model.head_choice import choose_head
from cxrlt.registry import Resolved, resolve
from cxrlt.spec import parse_spec, parse_specs
from cxrlt.workflows.preflight import check_numbers, rehearse

if TYPE_CHECKING:
    from cxrlt.options import RunOptions

DEFAULT_THRESHOLDS = "fixed"  # 0.5: mF1 as the challenges compute it


@dataclass(frozen=True)
class RunSpecs:
    """The resolved specs of one run, by role; ``post`` are the post-training steps in order.
    ``head_note`` says when a given head is not the one the loss declares."""

    dataset: Resolved
    sampler: Resolved
    arch: Resolved
    head: Resolved
    loss: Resolved
    thresholds: Resolved
    calibrator: Resolved | None = None
    post: tuple[Resolved, ...] = ()
    head_note: str | None = None
    loggers: tuple[Resolved, ...] = ()  # --log

    def by_role(self) -> dict[str, Resolved]:
        """The single specs by role (no post steps), as config.json records them."""
        roles = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {role: value for role, value in roles.items() if isinstance(value, Resolved)}


def check_specs(options: RunOptions) -> RunSpecs:
    """Resolve every name of ``options``.

    Backbones that declare ``pretrained`` start from pretrained weights unless told otherwise
    or the data set declares that it trains from scratch (the embedded one, so that the first
    run works offline). Without ``--head`` the loss's declared head is used
    (:func:`cxrlt.model.head_choice.choose_head`).
    """
    from cxrlt.post import split_post

    dataset = resolve("datasets", options.dataset)
    arch = parse_spec(options.arch)
    pretrained = options.pretrained
    if pretrained is None and "pretrained" not in arch.params:
        pretrained = not dataset.entry.trains_from_scratch
    loss = resolve("losses", options.loss)
    head, head_note = choose_head(loss, options.head)
    steps, calibrator, thresholds = split_post(options.post)
    loggers = parse_specs(options.log) if options.log.strip() else []
    return RunSpecs(
        dataset=dataset,
        sampler=resolve("samplers", options.sampler),
        arch=resolve("backbones", arch, pretrained=pretrained),
        head=head,
        loss=loss,
        thresholds=thresholds or resolve("thresholds", DEFAULT_THRESHOLDS),
        calibrator=calibrator,
        post=tuple(steps),
        head_note=head_note,
        loggers=tuple(resolve("loggers", spec) for spec in loggers),
    )


def rehearsed_specs(options: RunOptions) -> RunSpecs:
    """As :func:`check_specs`, every part then built once on stand-in inputs."""
    specs = check_specs(options)
    rehearse(specs, options.epochs)
    return specs


def check_options(options: RunOptions) -> RunSpecs:
    """Every number and name of ``options``, and every part of the run built once on stand-in
    inputs (:mod:`cxrlt.workflows.preflight`), before any work."""
    check_numbers(options)
    return rehearsed_specs(options)
