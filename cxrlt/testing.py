"""Conformance kit: the contract every registry entry of a kind must keep, as checkers.

``check_entry("losses", "focal:gamma=1")`` builds the entry with small made-up context and
checks the rules its kind promises to the rest of cxrlt; a broken rule raises an
``AssertionError`` naming the entry and the rule. Plugin authors can run the same checks on
their entries. Each ``check_<kind>(spec)`` takes a spec string, a :class:`Spec` or a
:class:`Resolved`; the ``check_<kind>_object`` functions check an object already built.

Not covered: post steps' ``fit`` (it needs a trained learner and data), backbones' pretrained
weights (offline: backbones are built with ``pretrained=False`` where they declare it), and
what a command does when it runs (only that it is one, with working ``--help``).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cxrlt.errors import CxrltError
from cxrlt.registry import KINDS, Resolved, resolve
from cxrlt.spec import Spec

SpecLike = str | Spec | Resolved

# Small long-tailed context: a head class, rare ones and one without any positive.
CLASS_COUNTS = (50, 12, 4, 1, 0)
N_ITEMS = 60
# Post steps get these classes; "Normal" is the class normal-gating looks for.
POST_CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Normal")


def _require(condition: Any, what: str, rule: str, detail: str = "") -> None:
    """Raise an AssertionError naming the entry (``what``) and the rule it breaks."""
    if not condition:
        raise AssertionError(f"{what} breaks the rule: {rule}" + (f" ({detail})" if detail else ""))


def _resolved(kind: str, spec: SpecLike) -> Resolved:
    resolved = spec if isinstance(spec, Resolved) else resolve(kind, spec)
    _require(
        resolved.entry.kind == kind,
        f"The entry {resolved.entry.name!r}",
        f"it must be a {KINDS[kind].singular}",
        f"it is a {KINDS[resolved.entry.kind].singular}",
    )
    return resolved


def _what(resolved: Resolved) -> str:
    return f"The {KINDS[resolved.entry.kind].singular} '{resolved.spec}'"


def check_rejects_unknown_parameter(resolved: Resolved) -> None:
    """The registry refuses a parameter the entry does not declare (no ``**kwargs`` target)."""
    spec = Spec(resolved.entry.name, {**resolved.params, "no_such_param": 1})
    try:
        resolve(resolved.entry.kind, spec)
    except CxrltError:
        return
    _require(
        False,
        _what(resolved),
        "the registry must reject an unknown parameter",
        "'no_such_param=1' was accepted: declare the parameters instead of **kwargs",
    )


def _torch_close(a: Any, b: Any, *, atol: float = 1e-6) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-5, atol=atol))


# ---- losses -------------------------------------------------------------------------------


def check_loss(spec: SpecLike) -> None:
    """Build the loss with :data:`CLASS_COUNTS` and check :func:`check_loss_object`'s rules."""
    resolved = _resolved("losses", spec)
    check_rejects_unknown_parameter(resolved)
    check_loss_object(
        resolved.build(class_counts=list(CLASS_COUNTS), n_items=N_ITEMS), _what(resolved)
    )


def check_loss_object(loss: Any, what: str = "The loss") -> None:
    """Finite scalar and gradients (also on extreme logits), mean reduction, deterministic,
    picklable; ``activation`` in [0, 1], same shape, monotone per class; ``decodes`` and
    ``callbacks`` usable."""
    import torch

    n_classes = len(CLASS_COUNTS)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, n_classes, generator=gen) * 3
    targets = (torch.rand(8, n_classes, generator=gen) < 0.3).float()
    targets[0] = 0  # an image without any positive
    for scale, name in ((1.0, "random"), (20.0, "extreme")):
        x = (logits * scale).requires_grad_()
        value = loss(x, targets)
        _require(
            isinstance(value, torch.Tensor) and value.ndim == 0,
            what,
            "forward(logits, targets) returns a scalar tensor",
            f"got {type(value).__name__} of shape {getattr(value, 'shape', None)}",
        )
        _require(torch.isfinite(value), what, f"the loss is finite on {name} logits", f"{value}")
        value.backward()
        _require(
            x.grad is not None and bool(torch.isfinite(x.grad).all()),
            what,
            f"backward gives finite gradients on {name} logits",
        )
    with torch.no_grad():
        value = loss(logits, targets)
        _require(
            _torch_close(loss(logits, targets), value), what, "the same input gives the same loss"
        )
        doubled = loss(torch.cat([logits, logits]), torch.cat([targets, targets]))
        _require(
            _torch_close(doubled, value),
            what,
            "mean reduction: repeating the batch leaves the loss unchanged",
            f"{float(value)} vs {float(doubled)} for the batch twice",
        )
        copy = pickle.loads(pickle.dumps(loss))
        _require(
            _torch_close(copy(logits, targets), value),
            what,
            "a pickled copy gives the same loss",
        )
        activation = getattr(loss, "activation", None)
        _require(callable(activation), what, "it has an activation(logits) method")
        ramp = torch.linspace(-10, 10, 41).unsqueeze(1).repeat(1, n_classes)
        probs = activation(ramp)
        _require(probs.shape == ramp.shape, what, "activation keeps the shape", f"{probs.shape}")
        _require(
            bool(((probs >= 0) & (probs <= 1)).all()),
            what,
            "activation gives probabilities in [0, 1]",
            f"range [{float(probs.min())}, {float(probs.max())}]",
        )
        _require(
            bool((probs.diff(dim=0) >= 0).all()),
            what,
            "activation is non-decreasing in each class's logit",
        )
        decoded = loss.decodes(probs)
        _require(decoded.shape == probs.shape, what, "decodes keeps the shape", f"{decoded.shape}")
    from fastai.callback.core import Callback

    callbacks = list(getattr(loss, "callbacks", list)())
    _require(
        all(isinstance(cb, Callback) for cb in callbacks),
        what,
        "callbacks() returns fastai Callbacks",
        f"got {[type(cb).__name__ for cb in callbacks]}",
    )


# ---- samplers -----------------------------------------------------------------------------


def sampler_labels() -> np.ndarray:
    """(40, 5) long-tailed 0/1 labels; every class has a positive, image 0 has none."""
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 5)) < [0.5, 0.2, 0.1, 0.05, 0.02]).astype(np.uint8)
    labels[np.arange(1, 6), np.arange(5)] = 1
    labels[0] = 0
    return labels


def check_sampler(spec: SpecLike) -> None:
    """Build the sampler on :func:`sampler_labels` and check :func:`check_sampler_object`."""
    resolved = _resolved("samplers", spec)
    check_rejects_unknown_parameter(resolved)
    labels = sampler_labels()
    check_sampler_object(resolved.build(labels=labels), len(labels), _what(resolved))


def check_sampler_object(sampler: Any, n_items: int, what: str = "The sampler") -> None:
    """``indices(rng)``: a 1-D int array within [0, n_items), the same for the same seed,
    different for another seed."""
    first = np.asarray(sampler.indices(np.random.default_rng(1)))
    _require(
        first.ndim == 1 and np.issubdtype(first.dtype, np.integer),
        what,
        "indices(rng) returns a 1-D integer array",
        f"got dtype {first.dtype}, shape {first.shape}",
    )
    _require(len(first) > 0, what, "an epoch draws at least one image")
    _require(
        bool(((first >= 0) & (first < n_items)).all()),
        what,
        f"indices lie in [0, {n_items})",
        f"range [{first.min()}, {first.max()}]",
    )
    again = np.asarray(sampler.indices(np.random.default_rng(1)))
    _require(np.array_equal(first, again), what, "the same seed gives the same indices")
    other = np.asarray(sampler.indices(np.random.default_rng(2)))
    _require(not np.array_equal(first, other), what, "another seed gives other indices")


# ---- backbones and heads ------------------------------------------------------------------


def check_backbone(spec: SpecLike) -> None:
    """Built as an offline run builds it (cxrlt's ``pretrained=False`` reaches it only if it
    declares ``pretrained``, which then needs a default: cxrlt sets it on some runs only):
    greyscale (B, 1, H, W) images in, finite pooled (B, width) features out, the width a
    head is given (``head_input_width``)."""
    import torch

    from cxrlt.model.build import head_input_width

    resolved = _resolved("backbones", spec)
    what = _what(resolved)
    declared = resolved.entry.params().get("pretrained")
    _require(
        declared is None or not declared.required,
        what,
        "a declared 'pretrained' parameter has a default",
    )
    offline = resolve("backbones", resolved.spec, pretrained=False)
    torch.manual_seed(0)
    backbone = offline.build(in_chans=1).eval()
    with torch.no_grad():
        features = backbone(torch.rand(2, 1, 64, 64))
    width = head_input_width(backbone, spatial=False)
    _require(
        tuple(features.shape) == (2, width),
        what,
        "pooled features have shape (B, head_input_width)",
        f"got {tuple(features.shape)}, width {width}",
    )
    _require(bool(torch.isfinite(features).all()), what, "features are finite")


def check_head(spec: SpecLike) -> None:
    """Build the head (16 features, 5 classes) and check :func:`check_head_object`."""
    import torch

    resolved = _resolved("heads", spec)
    check_rejects_unknown_parameter(resolved)
    torch.manual_seed(0)
    head = resolved.build(in_features=16, n_classes=len(CLASS_COUNTS))
    check_head_object(head, 16, len(CLASS_COUNTS), _what(resolved))


def check_head_object(head: Any, in_features: int, n_classes: int, what: str = "The head") -> None:
    """(B, in_features) input, or (B, N, in_features) tokens if ``spatial``, gives
    (B, n_classes) logits; backward reaches the parameters; eval mode is deterministic and a
    pickled copy gives the same logits."""
    import torch

    gen = torch.Generator().manual_seed(0)
    spatial = getattr(head, "spatial", False)
    shape = (3, 7, in_features) if spatial else (3, in_features)
    features = torch.randn(*shape, generator=gen, requires_grad=True)
    head.train()
    logits = head(features)
    _require(
        tuple(logits.shape) == (3, n_classes),
        what,
        f"{'(B, N, C) tokens' if spatial else '(B, C) features'} give (B, n_classes) logits",
        f"got {tuple(logits.shape)}",
    )
    logits.sum().backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    _require(
        features.grad is not None and bool(torch.isfinite(features.grad).all()),
        what,
        "backward gives finite gradients for the features",
    )
    _require(
        all(g is not None and bool(torch.isfinite(g).all()) for g in grads),
        what,
        "backward gives finite gradients for every trainable parameter",
    )
    head.eval()
    with torch.no_grad():
        x = features.detach()
        first = head(x)
        _require(_torch_close(head(x), first), what, "eval mode is deterministic")
        _require(_torch_close(pickle.loads(pickle.dumps(head))(x), first), what, "picklable")


# ---- post steps ---------------------------------------------------------------------------


def tiny_classifier(n_classes: int) -> Any:
    """A small :class:`CXRClassifier` (one conv, linear head), the same for the same call."""
    import torch
    from torch import nn

    from cxrlt.model.heads import LinearHead
    from cxrlt.model.network import CXRClassifier

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return CXRClassifier(backbone, LinearHead(4, n_classes))


def check_post(spec: SpecLike) -> None:
    """Build the step and check :func:`check_post_object` (``fit`` is not run)."""
    resolved = _resolved("post", spec)
    check_rejects_unknown_parameter(resolved)
    check_post_object(resolved.build, _what(resolved))


def check_post_object(make_step: Callable[[], Any], what: str = "The post step") -> None:
    """``wrap`` is deterministic: two steps wrapping identical models give identical
    state_dicts; the wrapped model keeps (B, n_classes) logits and a CXRClassifier inside, and
    a fresh wrap loads the wrapped weights and gives the same logits (what prediction does)."""
    import torch

    from cxrlt.model.network import CXRClassifier

    n_classes = len(POST_CLASSES)
    wrapped = []
    for seed in (1, 2):  # a wrap drawing random values gets other ones each time
        model = tiny_classifier(n_classes)
        torch.manual_seed(seed)
        wrapped.append(make_step().wrap(model, POST_CLASSES).eval())
    first, second = wrapped
    state, other = first.state_dict(), second.state_dict()
    _require(list(state) == list(other), what, "two wraps give the same state_dict keys")
    _require(
        all(torch.equal(state[k], other[k]) for k in state),
        what,
        "wrap adds no random or learned values (two wraps give the same state_dict)",
    )
    _require(
        any(isinstance(m, CXRClassifier) for m in first.modules()),
        what,
        "the wrapped model keeps its CXRClassifier inside (later steps look for it)",
    )
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = first(images)
        _require(
            tuple(logits.shape) == (2, n_classes),
            what,
            "the wrapped model gives (B, n_classes) logits",
            f"got {tuple(logits.shape)}",
        )
        second.load_state_dict(state)
        _require(
            _torch_close(second(images), logits, atol=1e-5),
            what,
            "a fresh wrap with the saved weights gives the same logits",
        )


# ---- calibrators and threshold policies ---------------------------------------------------


def _scores_and_targets() -> tuple[np.ndarray, np.ndarray]:
    """(60, 4) logits loosely tied to 0/1 targets; class 3 has no positive (a fallback)."""
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 4)) < [0.5, 0.2, 0.1, 0.0]).astype(float)
    targets[:2, :3] = [[1, 1, 1], [0, 0, 0]]
    return 2 * targets - 1 + rng.normal(size=targets.shape) * 1.5, targets


def _fallback_activation(logits: np.ndarray) -> np.ndarray:
    """The loss activation the kit's calibrators fall back on: sigmoid(2 z), as LDAM's scale."""
    return 1 / (1 + np.exp(-2 * logits))


def check_calibrator(spec: SpecLike) -> None:
    """Fit the calibrator and check :func:`check_calibrator_object`, reloading through
    :func:`calibrator_from_state` and the spec."""
    from cxrlt.calibration.calibrators import calibrator_from_state

    resolved = _resolved("calibrators", spec)
    check_rejects_unknown_parameter(resolved)

    def reload(state: Mapping[str, Any]) -> Any:
        return calibrator_from_state(str(resolved.spec), state, fallback=_fallback_activation)

    check_calibrator_object(resolved.build(), reload, _what(resolved))


def check_calibrator_object(
    calibrator: Any, reload: Callable[[Mapping[str, Any]], Any], what: str = "The calibrator"
) -> None:
    """Fitted on small random data, ``transform`` gives finite probabilities in [0, 1] of the
    logits' shape that rank each class's images as the logits do; ``state()`` survives JSON,
    and ``reload(state)`` (given :func:`_fallback_activation`) transforms identically."""
    logits, targets = _scores_and_targets()
    fitted = calibrator.fit(logits, targets, fallback=_fallback_activation)
    _require(fitted is calibrator, what, "fit returns the calibrator itself")
    probs = calibrator.transform(logits)
    _require(probs.shape == logits.shape, what, "transform keeps the shape", f"{probs.shape}")
    _require(
        bool(np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()),
        what,
        "transform gives probabilities in [0, 1]",
        f"range [{probs.min()}, {probs.max()}]",
    )
    order = np.argsort(logits, axis=0)
    _require(
        bool((np.diff(np.take_along_axis(probs, order, axis=0), axis=0) > 0).all()),
        what,
        "transform is strictly increasing in each class's logit (AP and AUC unchanged)",
    )
    state = json.loads(json.dumps(calibrator.state()))
    _require(
        np.array_equal(reload(state).transform(logits), probs),
        what,
        "state() through JSON and back transforms identically",
    )


def check_threshold(spec: SpecLike) -> None:
    """Fit the policy and check :func:`check_threshold_object`, reloading through
    :func:`threshold_policy_from_state` and the spec."""
    from cxrlt.calibration.thresholds import threshold_policy_from_state

    resolved = _resolved("thresholds", spec)
    check_rejects_unknown_parameter(resolved)

    def reload(state: Mapping[str, Any]) -> Any:
        return threshold_policy_from_state(str(resolved.spec), state)

    check_threshold_object(resolved.build(), reload, _what(resolved))


def check_threshold_object(
    policy: Any, reload: Callable[[Mapping[str, Any]], Any], what: str = "The threshold policy"
) -> None:
    """Fitted on small random probabilities (with a training prevalence), one threshold per
    class in [0, 1]; ``state()`` survives JSON, and ``reload(state)`` has the same thresholds."""
    from scipy.special import expit

    logits, targets = _scores_and_targets()
    probs = expit(logits)
    thresholds = np.asarray(policy.fit(probs, targets, train_prevalence=targets.mean(axis=0)))
    _require(
        thresholds.shape == (probs.shape[1],),
        what,
        "fit gives one threshold per class",
        f"shape {thresholds.shape}",
    )
    _require(
        bool(np.isfinite(thresholds).all() and ((thresholds >= 0) & (thresholds <= 1)).all()),
        what,
        "thresholds lie in [0, 1]",
        f"{thresholds.tolist()}",
    )
    state = json.loads(json.dumps(policy.state()))
    reloaded = np.asarray(reload(state).thresholds)
    _require(
        np.array_equal(reloaded, thresholds),
        what,
        "state() through JSON and back gives the same thresholds",
    )


# ---- datasets -----------------------------------------------------------------------------


def check_dataset(spec: SpecLike, path: str | None = None) -> None:
    """Build the data set from ``path`` (``--data``; a set that needs none, such as
    ``synthetic:n_images=40,size=32``, is built without) and check
    :func:`check_dataset_object`."""
    resolved = _resolved("datasets", spec)
    check_rejects_unknown_parameter(resolved)
    check_dataset_object(resolved.build(path=path), _what(resolved))


def check_dataset_object(data: Any, what: str = "The dataset") -> None:
    """A non-empty LabelledImages with classes, a frame with ImageID, PatientID and path, one
    0/1 column per class and unique image IDs."""
    from cxrlt.data.table import ID_COLUMN, PATH_COLUMN, PATIENT_COLUMN, LabelledImages

    _require(
        isinstance(data, LabelledImages),
        what,
        "it returns a LabelledImages",
        f"got {type(data).__name__}",
    )
    _require(len(data) > 0 and len(data.classes) > 0, what, "it has images and classes")
    missing = {ID_COLUMN, PATIENT_COLUMN, PATH_COLUMN, *data.classes} - set(data.frame.columns)
    _require(
        not missing, what, "the frame has ImageID, PatientID, path and each class", f"{missing}"
    )
    labels = data.frame[list(data.classes)].to_numpy()
    _require(np.isin(labels, (0, 1)).all(), what, "labels are 0 or 1")
    _require(data.frame[ID_COLUMN].is_unique, what, "image IDs are unique")


# ---- commands -----------------------------------------------------------------------------


def check_command(spec: SpecLike) -> None:
    """The target is a function that Typer turns into a command whose ``--help`` works (the
    command itself is not run: it may need data or do real work)."""
    import typer
    from typer.testing import CliRunner

    resolved = _resolved("commands", spec)
    what = _what(resolved)
    function = resolved.entry.load()
    _require(callable(function), what, "its target is a function", f"got {function!r}")
    app = typer.Typer()
    app.command(name=resolved.entry.name)(function)
    result = CliRunner().invoke(app, ["--help"])
    _require(
        result.exit_code == 0,
        what,
        "Typer makes a command of it whose --help works",
        f"exit code {result.exit_code}: {result.exception!r}",
    )


# ---- loggers ------------------------------------------------------------------------------


def check_logger(spec: SpecLike) -> None:
    """The target builds a ``cxrlt.Tracker`` (a fastai callback) that implements ``start``,
    ``log_epoch`` and ``finish``, and sits out post-training (its epochs are the main
    training's). Its store is not opened: that may need a server or write files."""
    from cxrlt.training.tracking import Tracker

    resolved = _resolved("loggers", spec)
    what = _what(resolved)
    tracker = resolved.build()
    _require(isinstance(tracker, Tracker), what, "it builds a cxrlt.Tracker", repr(tracker))
    for method in ("start", "log_epoch", "finish"):
        _require(
            getattr(type(tracker), method) is not getattr(Tracker, method),
            what,
            f"it implements {method}",
        )
    _require(
        not tracker.during_post_training,
        what,
        "it sits out post-training (during_post_training = False)",
    )
    check_rejects_unknown_parameter(resolved)


# ---- recipes ------------------------------------------------------------------------------


def check_recipe(spec: SpecLike) -> None:
    """The recipe's file reads, every option with its source, and every name in it resolves
    and builds on stand-in inputs, as ``cxrlt run`` checks before any work (offline: without
    pretrained weights)."""
    from cxrlt.options import RunOptions, read_recipe
    from cxrlt.workflows.specs import check_options

    name = spec.entry.name if isinstance(spec, Resolved) else str(spec)
    try:
        check_options(RunOptions(**{**read_recipe(name).options, "pretrained": False}))
    except CxrltError as error:
        _require(False, f"The recipe {name!r}", "its file reads and its specs resolve", str(error))


# ---- image-text models -------------------------------------------------------------------


def check_image_text_model(spec: SpecLike) -> None:
    """The entry builds a model that keeps the :class:`cxrlt.zero_shot.ImageTextModel`
    contract (its weights must be on disk or in the hub's cache: nothing is downloaded)."""
    resolved = _resolved("image_text_models", spec)
    check_rejects_unknown_parameter(resolved)
    check_image_text_model_object(resolved.build(), _what(resolved))


def check_image_text_model_object(model: Any, what: str = "The image-text model") -> None:
    """Images and texts embed as unit vectors of one width; the image size is usable."""
    from cxrlt.zero_shot import ImageTextModel

    _require(isinstance(model, ImageTextModel), what, "it is a cxrlt.zero_shot.ImageTextModel")
    size = model.image_size
    _require(isinstance(size, int) and size >= 8, what, "image_size is an int >= 8", f"{size!r}")
    _require(model.logit_scale > 0, what, "logit_scale is positive", f"{model.logit_scale!r}")
    model = model.to("cpu")
    pixels = np.random.default_rng(0).integers(0, 256, (2, size, size), dtype=np.uint8)
    images = np.asarray(model.encode_images(pixels).detach().cpu(), np.float64)
    texts = np.asarray(
        model.encode_texts(["a chest X-ray.", "a bulla."]).detach().cpu(), np.float64
    )
    _require(
        images.ndim == texts.ndim == 2 and len(images) == len(texts) == 2,
        what,
        "encode_images and encode_texts give one row per input",
        f"shapes {images.shape} and {texts.shape}",
    )
    _require(
        images.shape[1] == texts.shape[1],
        what,
        "images and texts embed in one space",
        f"widths {images.shape[1]} and {texts.shape[1]}",
    )
    norms = np.linalg.norm(np.concatenate([images, texts]), axis=1)
    _require(np.allclose(norms, 1, atol=1e-4), what, "embeddings have unit length", f"{norms}")


# ---- executors ----------------------------------------------------------------------------


def _executor_run(options: Any, console: Any, resume: bool) -> None:
    """The stand-in run of :func:`check_executor`'s cells (at module level, so that an
    executor can ship it to other processes): notes the call in ``calls.txt`` beside the
    cells, fails the cells that ``fail.txt`` there names, else writes a complete run's files."""
    folder = Path(options.out).parent
    with open(folder / "calls.txt", "a", encoding="utf-8") as calls:
        calls.write(f"{options.out.name}\n")
    failing = folder / "fail.txt"
    if failing.is_file() and options.out.name in failing.read_text().split():
        raise CxrltError("the cell fails on purpose")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "config.json").write_text(json.dumps({"status": "complete"}))
    (options.out / "metrics.json").write_text(json.dumps({"mAP": 0.5}))


def check_executor(spec: SpecLike) -> None:
    """The target builds an executor that runs each cell of a sweep (2 trained cells, each
    post-trained once) once with stand-in runs: a failed cell does not stop the others and
    the cell post-training it is "not run"; a post cell runs after its trained cell (else it
    too is "not run"); every outcome is reported once and returned; a rerun runs only what
    is not complete."""
    import tempfile
    from collections import Counter

    from cxrlt.options import RunOptions
    from cxrlt.sweep import Sweep

    resolved = _resolved("executors", spec)
    what = _what(resolved)
    executor = resolved.build()
    with tempfile.TemporaryDirectory() as folder:
        sweep = Sweep.from_text(folder, "bce,asl", "resnet18", "none,tta", 1, RunOptions())
        failing, its_post, other, other_post = sweep.runs
        (Path(folder) / "fail.txt").write_text(failing.name)
        rounds = [
            ({failing: "failed", its_post: "not run", other: "done", other_post: "done"}, 3),
            ({failing: "done", its_post: "done", other: "skipped", other_post: "skipped"}, 2),
        ]
        for expected, n_calls in rounds:
            reported: list[Any] = []
            outcomes = executor.run(sweep, reported.append, _executor_run)
            statuses = {outcome.cell: outcome.status for outcome in outcomes}
            _require(
                len(outcomes) == len(statuses) and statuses == expected,
                what,
                "it returns one outcome per cell, with run_cell's status",
                f"expected {expected}, got {statuses}",
            )
            _require(
                Counter(reported) == Counter(outcomes),
                what,
                "it reports each outcome once",
                f"reported {reported}",
            )
            calls = (Path(folder) / "calls.txt").read_text().split()
            _require(
                len(calls) == len(set(calls)) == n_calls,
                what,
                "it runs each cell not yet complete once",
                f"runs {calls}",
            )
            (Path(folder) / "calls.txt").unlink()
            (Path(folder) / "fail.txt").unlink(missing_ok=True)
    check_rejects_unknown_parameter(resolved)


# ---- dispatch -----------------------------------------------------------------------------

CHECKERS: dict[str, Callable[[SpecLike], None]] = {
    "losses": check_loss,
    "samplers": check_sampler,
    "backbones": check_backbone,
    "heads": check_head,
    "post": check_post,
    "calibrators": check_calibrator,
    "thresholds": check_threshold,
    "datasets": check_dataset,
    "commands": check_command,
    "recipes": check_recipe,
    "loggers": check_logger,
    "image_text_models": check_image_text_model,
    "executors": check_executor,
}


def check_metadata(resolved: Resolved) -> None:
    """Each deviation from the paper names a parameter of the entry (or ``formula``), a
    loss's declared head is a head that resolves, and a data set's submission formats name
    their classes once each, apart from the id column."""
    entry = resolved.entry
    known = {*entry.params(), *entry.bound, "formula"}
    for key in entry.deviations:
        _require(
            key in known,
            _what(resolved),
            "each deviation names one of its parameters, or 'formula'",
            f"{key!r} is none of {sorted(known)}",
        )
    if entry.head is not None:
        try:
            resolve("heads", entry.head)
        except CxrltError as error:
            _require(False, _what(resolved), "its declared head resolves", str(error))
    for fmt in entry.submissions:
        try:
            classes = fmt.classes
        except CxrltError as error:
            _require(False, _what(resolved), "its submission formats' classes load", str(error))
        _require(
            classes
            and all(isinstance(name, str) and name for name in classes)
            and len(set(classes)) == len(classes)
            and fmt.id_column not in classes,
            _what(resolved),
            "each submission format names its classes once each, apart from the id column",
            f"{fmt.name}: {fmt.id_column!r}, {classes!r}",
        )


def check_run_reloads(run_dir: Path | str, dataset: str, size: int) -> None:
    """A finished run rebuilt with ``cxrlt.load_run`` gives the logits it wrote for its
    validation images (``dataset`` and ``size`` as it ran): what a backbone plugin's weights
    and pre-processing must survive."""
    from cxrlt.data.loaders import cxr_dataloaders
    from cxrlt.outputs.run_dir import RunDir
    from cxrlt.prediction import load_run

    trained = load_run(run_dir)
    valid = cxr_dataloaders(dataset, size=size, bs=32, device="cpu").valid.dataset
    images = np.stack([valid[i][0].numpy() for i in range(len(valid))])
    saved = RunDir(run_dir, check=False).read_predictions(trained.classes)
    _require(
        np.allclose(trained.logits(images), saved.logits, atol=1e-5),
        f"The run {run_dir}",
        "rebuilt from its folder, it gives the logits it wrote",
    )


def check_entry(kind: str, spec: SpecLike) -> None:
    """Run the checker of ``kind`` (singular or plural word) on one entry, after
    :func:`check_metadata`."""
    from cxrlt.registry import kind_named

    name = kind_named(kind).name
    if name != "recipes":  # a recipe is a file of run options: nothing to resolve or build
        check_metadata(_resolved(name, spec))
    CHECKERS[name](spec)
