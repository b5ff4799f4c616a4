"""The hook points of cxrlt: one ``register_<kind>(register)`` hook per registry kind.

Each hook receives ``register(name, target, *, summary="", aliases=(), bound=None,
paper="", deviations=None, head=None, submissions=(), trains_from_scratch=False)``:
``target`` is a lazy ``"package.module:attr"`` string (preferred: listing never imports it)
or the object itself; ``bound`` holds keyword arguments fixed for this entry; ``paper`` cites
what the entry implements and ``deviations`` maps each parameter (or ``"formula"``) whose
default differs from it to why, both shown by ``cxrlt show``; a loss's ``head`` is the head
spec it is designed for, used when ``--head`` is not given. A data set declares the challenge
files its test images can be written as (``submissions``, ``cxrlt.SubmissionFormat``
records; the one whose classes the model predicts is written) and whether backbones start
from random weights on it unless told otherwise (``trains_from_scratch``).

``register.source(claim, *, names=None, note)`` answers for names no entry has, as the
built-in backbones do for every timm model: ``claim(name)`` returns the ``register`` keywords
of a name the plugin owns (``target`` included) or None, ``names()`` gives candidates to
suggest for a misspelt name (both functions, or lazy ``"package.module:attr"`` strings), and
``note`` is one line that ``cxrlt list`` prints. Registered names come first.

A plugin implements only the hooks it needs, and may leave out arguments it does not use.

Each hook's docstring gives the target's call signature after "Target:", e.g.
``f(*, path, **params)``: cxrlt supplies the arguments before ``**params`` (to targets that
declare them), the user's spec gives the rest. The documentation's hooks page is generated
from these docstrings (docs/reference.py).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("cxrlt")
hookimpl = pluggy.HookimplMarker("cxrlt")


@hookspec
def register_losses(register):
    """Loss functions. Target: ``f(*, class_counts, n_items, **params) -> nn.Module``
    with ``activation`` and ``decodes`` as fastai expects. ``forward(logits, targets)`` is
    the mean over the batch; subclassing ``cxrlt.BCELoss`` and overriding
    ``elementwise(logits, targets)`` gives that, a sigmoid ``activation`` and ``callbacks()``,
    the fastai callbacks the loss needs during training (none by default). A callback runs
    during post-training steps too unless its class sets ``during_post_training = False`` (as
    one that acts on the main training's epochs does)."""


@hookspec
def register_samplers(register):
    """Training samplers. Target: ``f(*, labels, **params)`` returning a ``cxrlt.Sampler``,
    whose ``indices(rng)`` gives one epoch's item order as an int array; ``labels`` are the
    training labels, (N, C) 0/1, and ``rng`` a ``numpy.random.Generator`` that cxrlt seeds
    alike on every rank: draw from it alone, and every rank gets the same order."""


@hookspec
def register_backbones(register):
    """Feature extractors. Target: ``f(*, in_chans, **params) -> nn.Module`` with
    ``num_features``, the width of the pooled (B, width) features ``forward`` returns, and
    ``forward_features`` (the unpooled map) for spatial heads. ``pretrained`` reaches the
    target only if it declares it, with a default: cxrlt sets it from ``--pretrained`` or the
    data set, and a spec may set it too. Names not registered go to the name sources
    (``register.source``): the built-in backbones take any timm model name. The protocol
    ``cxrlt.Backbone`` states this contract."""


@hookspec
def register_heads(register):
    """Classifier heads. Target: ``f(*, in_features, n_classes, **params) -> nn.Module``
    taking pooled (B, in_features) features, or (B, N, in_features) tokens if its class sets
    ``spatial = True``, to (B, n_classes) logits (the protocol ``cxrlt.Head``)."""


@hookspec
def register_post(register):
    """Post-training steps (cRT, TTA, normal gating, ...), run in the order given.
    Target: ``f(**params) -> PostStep``, a ``cxrlt.PostStep``: ``check(learn)`` refuses
    a learner before anything changes, ``wrap(model, classes)`` gives the model's structure
    with no data, ``fit(learn)`` learns its values into the state_dict (so prediction can
    rebuild it), ``choices()`` reports what ``fit`` chose; ``chooses_on_validation`` marks a
    step that chooses by a validation score."""


@hookspec
def register_calibrators(register):
    """Probability calibrators, fitted on held-out validation logits.
    Target: ``f(**params) -> Calibrator``, a ``cxrlt.Calibrator``: implement
    ``_fit(logits, targets) -> dict`` (JSON-ready values named in ``state_keys``) and
    ``_transform(logits)``, strictly increasing per class; its state is saved as JSON."""


@hookspec
def register_thresholds(register):
    """Threshold policies that turn probabilities into binary predictions.
    Target: ``f(**params) -> ThresholdPolicy``, a ``cxrlt.ThresholdPolicy``:
    implement ``_fit(probs, targets, train_prevalence)``, one threshold per class in [0, 1];
    an image is positive for a class where its probability reaches the class's threshold."""


@hookspec
def register_datasets(register):
    """Labelled image sets. Target: ``f(*, path, **params) -> LabelledImages``, a
    ``cxrlt.LabelledImages``; ``path`` is ``--data`` (None when not given)."""


@hookspec
def register_commands(register):
    """Extra CLI commands. Target: ``f(**options)``, a function that Typer turns into a
    command (its parameters become the command's options); its module is imported when the
    CLI starts, so keep it light."""


@hookspec
def register_recipes(register):
    """Named bundles of run options (``cxrlt run --recipe NAME``). The target is not called:
    it is a TOML file, a ``pathlib.Path`` or ``"package:resource"`` (a file inside a package),
    holding a ``description``, the run options under ``[options]`` as ``--config`` reads them,
    and under ``[sources]`` where each option's value comes from, starting "assumed" where no
    public material states it."""


@hookspec
def register_loggers(register):
    """Experiment trackers for ``--log``. Target: ``f(**params) -> Tracker``, a
    ``cxrlt.Tracker`` (a fastai callback): ``start(run)`` opens its store before the data is
    read (an error there stops the run), ``log_epoch(epoch, values)`` records each epoch's
    values, ``finish(metrics, status)`` the final metrics and how the run ended. Only the
    process that writes the run directory tracks it."""


@hookspec
def register_image_text_models(register):
    """Image-text (vision-language) models for zero-shot classification (``cxrlt zero-shot``).
    Target: ``f(**params) -> ImageTextModel``, a ``cxrlt.zero_shot.ImageTextModel``:
    ``encode_images(pixels)`` takes greyscale (N, H, W) uint8 images at its ``image_size`` and
    applies the model's own preprocessing, ``encode_texts(texts)`` takes prompts; both return
    unit-length (N, D) embeddings. Names not registered go to the name sources: the built-in
    one takes any OpenCLIP model name, ``hf-hub:`` id or ``local-dir:`` folder."""


@hookspec
def register_executors(register):
    """Where a sweep's cells run (``cxrlt sweep --executor``). Target:
    ``f(**params) -> Executor``, a ``cxrlt.Executor``: ``run(sweep, report, run)`` calls
    ``cxrlt.run_cell(sweep, cell, run)`` for every cell of ``sweep.runs``, wherever
    it likes (a post-training cell after its trained cell), calls ``report`` with each outcome
    in the calling process, and returns the outcomes."""
