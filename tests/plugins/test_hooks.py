"""Meta-tests of the hook points in cxrlt/hookspecs.py, found through pluggy.

Every hook's docstring gives its target's call signature after "Target:" (the documentation's
hooks page is generated from them, tests/docs/test_docs.py). Every hook has a case in ``CASES``: a
real plugin (an entry point, as pip installs one) registers a small entry through the hook,
and the case uses it as cxrlt does, then the conformance kit checks it. Adding a hook without
a case fails here.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pluggy
import pytest
import torch
import typer
from rich.console import Console
from scipy.special import expit
from torch import nn
from typer.testing import CliRunner

from cxrlt import hookspecs, plugins
from cxrlt.calibration.calibrators import Calibrator, calibrator_from_state
from cxrlt.calibration.thresholds import ThresholdPolicy, threshold_policy_from_state
from cxrlt.data.table import ID_COLUMN, LINE_COLUMN, PATH_COLUMN, PATIENT_COLUMN, LabelledImages
from cxrlt.errors import CxrltError
from cxrlt.executors import CellOutcome, RunCell, run_cell, run_pipeline, run_sweep
from cxrlt.options import RunOptions
from cxrlt.post import PostStep, rebuild
from cxrlt.registry import KINDS, registry, resolve
from cxrlt.spec import parse_spec
from cxrlt.sweep import Sweep
from cxrlt.testing import check_entry, tiny_classifier
from cxrlt.training.losses import BCELoss, bce_elementwise
from cxrlt.training.tracking import TrackedRun, Tracker, Tracking


def hook_docs() -> dict[str, str]:
    """Every hook pluggy finds in cxrlt.hookspecs, with its docstring."""
    pm = pluggy.PluginManager(plugins.ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    callers = {name: caller for name, caller in vars(pm.hook).items() if caller.has_spec()}
    return {name: inspect.getdoc(caller.spec.function) or "" for name, caller in callers.items()}


HOOKS = sorted(hook_docs())
# A recipe's target is a TOML file, read, not called: it has no call signature.
CALLED_HOOKS = [hook for hook in HOOKS if hook != "register_recipes"]


def target_signature(hook: str) -> str:
    """The target's call signature that a hook's docstring gives: "Target: ``f(...)...``"."""
    found = re.findall(r"Target:\s+``(f\([^`]*)``", hook_docs()[hook])
    assert len(found) == 1, f"{hook}'s docstring must give one 'Target: ``f(...)``', got {found}"
    return found[0]


def kind_of(hook: str) -> str:
    return hook.removeprefix("register_")


# ---- (a) every hook is documented, and the documents agree ---------------------------------


def test_there_is_one_hook_per_registry_kind():
    assert set(HOOKS) == {f"register_{kind}" for kind in KINDS}


@pytest.mark.parametrize("hook", CALLED_HOOKS)
def test_target_signature_names_what_cxrlt_supplies(hook):
    """The arguments before ``**params`` are the kind's context in cxrlt.registry.KINDS."""
    signature = target_signature(hook)
    arguments = signature[signature.index("(") + 1 : signature.index(")")].split(",")
    supplied = [a.strip() for a in arguments if a.strip() and not a.strip().startswith("*")]
    assert set(supplied) == set(KINDS[kind_of(hook)].context), signature


# ---- (b) every hook registers an entry that cxrlt uses -------------------------------------
# Targets: what a plugin would register, small and checkable.


class HookLoss(BCELoss):
    """BCE times ``scale``; keeps the context cxrlt passes, to check it arrives."""

    def __init__(self, *, class_counts: Sequence[int], n_items: int, scale: float = 1.0) -> None:
        super().__init__()
        self.class_counts, self.n_items, self.scale = list(class_counts), n_items, scale

    def elementwise(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.scale * bce_elementwise(logits, targets)


class HookSampler:
    """Every image ``repeats`` times per epoch, shuffled."""

    def __init__(self, labels: np.ndarray, *, repeats: int = 1) -> None:
        self.n_items, self.repeats = len(labels), repeats

    def indices(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(np.tile(np.arange(self.n_items), self.repeats))


class HookBackbone(nn.Module):
    """One convolution, pooled to ``width`` features."""

    def __init__(self, *, in_chans: int, width: int = 8) -> None:
        super().__init__()
        self.in_chans, self.num_features = in_chans, width
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class HookHead(nn.Module):
    """A two-layer MLP head."""

    def __init__(self, *, in_features: int, n_classes: int, hidden: int = 4) -> None:
        super().__init__()
        self.in_features = in_features
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class ScaledLogits(nn.Module):
    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images) * self.factor


class HookPostStep(PostStep):
    """Multiplies the logits by ``factor`` (a wrap with no learned values)."""

    def __init__(self, *, factor: float = 2.0) -> None:
        self.factor = factor

    def wrap(self, model: nn.Module, classes: Sequence[str]) -> nn.Module:
        return ScaledLogits(model, self.factor)


class HookCalibrator(Calibrator):
    """sigmoid(z - mean_c(z) + shift): centres each class's validation logits."""

    state_keys = ("offset",)

    def __init__(self, *, shift: float = 0.0) -> None:
        self.shift = shift

    def _fit(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        return {"offset": (self.shift - logits.mean(axis=0)).tolist()}

    def _transform(self, logits: np.ndarray) -> np.ndarray:
        return expit(logits + np.asarray(self._fitted["offset"]))


class HookThreshold(ThresholdPolicy):
    """Per class the ``quantile`` of the validation probabilities."""

    def __init__(self, *, quantile: float = 0.5) -> None:
        self.quantile = quantile

    def _fit(
        self, probs: np.ndarray, targets: np.ndarray, train_prevalence: np.ndarray | None
    ) -> np.ndarray:
        return np.quantile(probs, self.quantile, axis=0)


def hook_dataset(*, path: str | None, n_images: int = 12) -> LabelledImages:
    """``n_images`` images of two patients with classes A and B, files under ``path``."""
    folder = Path(path or "/nowhere")
    frame = pd.DataFrame(
        {
            ID_COLUMN: [f"img{i}" for i in range(n_images)],
            PATIENT_COLUMN: [f"p{i % 2}" for i in range(n_images)],
            PATH_COLUMN: [str(folder / f"img{i}.png") for i in range(n_images)],
            LINE_COLUMN: list(range(2, n_images + 2)),
            "A": [i % 2 for i in range(n_images)],
            "B": [int(i % 3 == 0) for i in range(n_images)],
        }
    )
    return LabelledImages(name="hooktest", classes=("A", "B"), frame=frame)


def hook_command(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello, {name}")


# Uses: each takes the case's spec and does what cxrlt does with such an entry.


def use_loss(spec: str) -> None:
    loss = resolve("losses", spec).build(class_counts=[3, 1], n_items=4)  # as cxr_learner does
    assert (type(loss), loss.class_counts, loss.n_items, loss.scale) == (HookLoss, [3, 1], 4, 2.0)
    logits, targets = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    bce = nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(loss(logits, targets), 2 * bce)


def use_sampler(spec: str) -> None:
    labels = np.eye(5, 3, dtype=np.uint8)
    sampler = resolve("samplers", spec).build(labels=labels)  # as cxr_dataloaders does
    indices = sampler.indices(np.random.default_rng(0))
    assert sorted(indices.tolist()) == sorted(list(range(5)) * 3)


def use_backbone(spec: str) -> None:
    from cxrlt.model.build import build_model

    model = build_model(resolve("backbones", spec), resolve("heads", "linear"), n_classes=3)
    assert (type(model.backbone), model.backbone.in_chans, model.head.fc.in_features) == (
        HookBackbone,
        1,
        6,
    )
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 3)


def use_head(spec: str) -> None:
    from cxrlt.model.build import build_model

    model = build_model(resolve("backbones", "resnet18"), resolve("heads", spec), n_classes=4)
    assert (type(model.head), model.head.in_features, model.head.mlp[0].out_features) == (
        HookHead,
        512,
        3,
    )
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 4)


def use_post(spec: str) -> None:
    classes = ("A", "B", "C")
    model = tiny_classifier(len(classes)).eval()
    wrapped = rebuild(tiny_classifier(len(classes)), spec, classes).eval()  # as prediction does
    images = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(wrapped(images), 3 * model(images))


def use_calibrator(spec: str) -> None:
    logits = np.array([[1.0, -2.0], [3.0, 0.0]])
    targets = np.array([[1, 0], [1, 1]])
    calibrator = resolve("calibrators", spec).build().fit(logits, targets, fallback=expit)
    # offsets: shift - class means = 1 - [2, -1] = [-1, 2]
    assert np.allclose(calibrator.transform(logits), expit([[0.0, 0.0], [2.0, 2.0]]))
    reloaded = calibrator_from_state(spec, calibrator.state(), fallback=expit)  # as predict does
    assert np.array_equal(reloaded.transform(logits), calibrator.transform(logits))


def use_threshold(spec: str) -> None:
    probs = np.array([[0.1, 0.2], [0.3, 0.6], [0.5, 1.0]])
    policy = resolve("thresholds", spec).build()
    assert np.allclose(policy.fit(probs, probs > 0.4), [0.2, 0.4])
    reloaded = threshold_policy_from_state(spec, policy.state())  # as prediction does
    assert np.array_equal(reloaded.thresholds, policy.thresholds)


def use_dataset(spec: str) -> None:
    data = resolve("datasets", spec).build(path="/data/x")  # as cxr_dataloaders does
    assert (len(data), data.classes, data.paths[0]) == (7, ("A", "B"), Path("/data/x/img0.png"))


def use_command(spec: str) -> None:
    from cxrlt.cli import add_plugin_commands, app

    add_plugin_commands()  # as the console script does
    name = parse_spec(spec).name
    assert name in {command.name for command in app.registered_commands}
    runner = CliRunner()
    assert name in runner.invoke(app, ["--help"], terminal_width=200).output
    result = runner.invoke(app, [name, "--name", "plugin"])
    assert (result.exit_code, result.output) == (0, "hello, plugin\n"), result.output


class HookImageTextModel:
    """Images embed by their brightness, texts by their length: enough to score."""

    image_size = 8
    logit_scale = 10.0

    def __init__(self, *, width: int = 2) -> None:
        self.width = width

    def to(self, device: object) -> HookImageTextModel:
        return self

    def _unit(self, first: torch.Tensor) -> torch.Tensor:
        features = torch.ones(len(first), self.width)
        features[:, 0] = first
        return torch.nn.functional.normalize(features, dim=-1)

    def encode_images(self, pixels: np.ndarray) -> torch.Tensor:
        return self._unit(torch.as_tensor(pixels, dtype=torch.float32).mean(dim=(1, 2)) / 255)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self._unit(torch.tensor([float(len(text)) for text in texts]))


def use_image_text_model(spec: str) -> None:
    from cxrlt.zero_shot.prompts import ClassPrompts
    from cxrlt.zero_shot.scoring import Scoring, score_images

    model = resolve("image_text_models", spec).build()
    assert model.width == 3
    pixels = np.stack([np.full((8, 8), value, np.uint8) for value in (0, 128, 255)])
    prompts = [ClassPrompts(("a.", "bb."), ()), ClassPrompts(("a long prompt.",), ())]
    probs = score_images(model, pixels, prompts, Scoring()).probs
    assert probs.shape == (3, 2) and ((probs > 0) & (probs < 1)).all()
    assert len(np.unique(probs.round(6))) > 1


class HookTracker(Tracker):
    """Keeps what it is told, each epoch under ``prefix``."""

    def __init__(self, *, prefix: str = "epoch") -> None:
        super().__init__()
        self.prefix = prefix
        self.records: list[tuple] = []

    def start(self, run: TrackedRun) -> None:
        self.records.append(("start", run.name))

    def log_epoch(self, epoch: int, values: dict) -> None:
        self.records.append((f"{self.prefix}{epoch}", dict(values)))

    def finish(self, metrics: dict, status: str) -> None:
        self.records.append((status, dict(metrics)))


def use_logger(spec: str) -> None:
    tracking = Tracking([resolve("loggers", spec).build()])  # as `cxrlt run --log` does
    [tracker] = tracking.trackers
    tracker.start(TrackedRun("r", Path("."), {}, {}))
    tracker.log_epoch(1, {"mAP": 0.5})
    tracker.finish({"mAP": 0.6}, "FINISHED")
    assert tracker.records == [("start", "r"), ("step1", {"mAP": 0.5}), ("FINISHED", {"mAP": 0.6})]


def use_recipe(spec: str) -> None:
    from cxrlt.cli.train import run_options

    options = run_options({"lr": 0.5}, None, None, spec)  # as `cxrlt run --recipe` does
    assert (options.epochs, options.lr) == (3, 0.5)


class HookExecutor:
    """The trained cells one after another, then the post-training ones; each group in reverse
    order when ``reverse``."""

    def __init__(self, *, reverse: bool = False) -> None:
        self.reverse = reverse

    def run(
        self, sweep: Sweep, report: Callable[[CellOutcome], None], run: RunCell = run_pipeline
    ) -> list[CellOutcome]:
        step = -1 if self.reverse else 1
        trained = [cell for cell in sweep.runs if cell.base is None][::step]
        post = [cell for cell in sweep.runs if cell.base is not None][::step]
        outcomes = []
        for cell in trained + post:
            outcomes.append(run_cell(sweep, cell, run))
            report(outcomes[-1])
        return outcomes


def use_executor(spec: str) -> None:
    ran = []

    def stand_in(options: RunOptions, console: object, resume: bool) -> None:
        """A complete run's files, without training."""
        ran.append(options.out.name)
        options.out.mkdir(parents=True)
        (options.out / "config.json").write_text(json.dumps({"status": "complete"}))
        (options.out / "metrics.json").write_text(json.dumps({"mAP": 0.5}))

    executor = resolve("executors", spec).build()  # as `cxrlt sweep --executor` does
    with tempfile.TemporaryDirectory() as folder:
        sweep = Sweep.from_text(folder, "bce,asl", "resnet18", "none,tta", 1, RunOptions())
        console = Console(file=io.StringIO())
        assert run_sweep(sweep, console, executor=executor, run=stand_in) == []
    bce, bce_tta, asl, asl_tta = (cell.name for cell in sweep.runs)
    assert ran == [asl, bce, asl_tta, bce_tta]
    assert "[1/4] " + bce in console.file.getvalue()


@dataclass(frozen=True)
class Case:
    """A hook's test: the entry's spec, its target (in this module) and how cxrlt uses it."""

    spec: str
    target: str
    use: Callable[[str], None]

    @property
    def name(self) -> str:
        return parse_spec(self.spec).name


CASES: dict[str, Case] = {
    "register_losses": Case("hooktest-loss:scale=2.0", f"{__name__}:HookLoss", use_loss),
    "register_samplers": Case("hooktest-sampler:repeats=3", f"{__name__}:HookSampler", use_sampler),
    "register_backbones": Case(
        "hooktest-backbone:width=6", f"{__name__}:HookBackbone", use_backbone
    ),
    "register_heads": Case("hooktest-head:hidden=3", f"{__name__}:HookHead", use_head),
    "register_post": Case("hooktest-post:factor=3.0", f"{__name__}:HookPostStep", use_post),
    "register_calibrators": Case(
        "hooktest-calibrator:shift=1.0", f"{__name__}:HookCalibrator", use_calibrator
    ),
    "register_thresholds": Case(
        "hooktest-threshold:quantile=0.25", f"{__name__}:HookThreshold", use_threshold
    ),
    "register_datasets": Case("hooktest-data:n_images=7", f"{__name__}:hook_dataset", use_dataset),
    "register_commands": Case("hooktest-hello", f"{__name__}:hook_command", use_command),
    "register_loggers": Case("hooktest-logger:prefix=step", f"{__name__}:HookTracker", use_logger),
    "register_recipes": Case("hooktest-recipe", "tests.plugins:hook_recipe.toml", use_recipe),
    "register_image_text_models": Case(
        "hooktest-clip:width=3", f"{__name__}:HookImageTextModel", use_image_text_model
    ),
    "register_executors": Case(
        "hooktest-executor:reverse=True", f"{__name__}:HookExecutor", use_executor
    ),
}


def plugin_source(hook: str, case: Case) -> str:
    """A plugin module implementing one hook, registering the case's entry lazily."""
    return f"""
    from cxrlt.hookspecs import hookimpl

    @hookimpl
    def {hook}(register):
        register({case.name!r}, {case.target!r}, summary="from the hook test")
    """


@pytest.fixture
def install_hook_plugin(cxrlt_fake_plugin):
    """Install (as an entry point) a plugin that implements one hook with its case's entry;
    returns the plugin's name."""

    def install(hook: str) -> str:
        name = f"hooktest-{kind_of(hook)}"
        sys.modules.pop(f"fake_{name.replace('-', '_')}", None)  # import this test's module
        cxrlt_fake_plugin(name, plugin_source(hook, CASES[hook]))
        return name

    return install


@pytest.fixture(autouse=True)
def _own_cli_commands(monkeypatch):
    """Commands a test adds to the CLI app are gone after it."""
    from cxrlt.cli import app

    monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))


def test_every_hook_has_a_case():
    assert set(CASES) == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_registers_an_entry_that_cxrlt_uses(hook, install_hook_plugin):
    case, kind = CASES[hook], kind_of(hook)
    plugin = install_hook_plugin(hook)
    [info] = [p for p in plugins.plugins() if p.name == plugin]
    assert (info.hooks, info.error) == ((hook,), None)
    entry = registry(kind).get(case.name)
    assert (entry.kind, entry.plugin, entry.target_path) == (kind, plugin, case.target)
    case.use(case.spec)
    check_entry(kind, case.spec)


@pytest.mark.parametrize("hook", HOOKS)
def test_a_case_fails_without_its_plugin(hook, install_hook_plugin, monkeypatch):
    """The control: with the plugin installed but blocked, the same use fails."""
    monkeypatch.setenv(plugins.BLOCK_ENV, install_hook_plugin(hook))
    plugins.reset()
    case = CASES[hook]
    with pytest.raises((CxrltError, AssertionError)):
        case.use(case.spec)
