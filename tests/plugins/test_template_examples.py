"""The template plugin's worked examples, one per hook, loaded in this process as an installed
plugin and checked by the conformance kit (its own tests, hand computations included, run in
tests/plugins/test_plugin_template.py); and the rules the examples rely on: a backbone gets
``pretrained`` only if it declares it, and ``cxrlt show`` prints only an entry's own docstring.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.registry import KINDS, registry, resolve
from cxrlt.testing import check_backbone, check_dataset, check_entry

TEMPLATE = Path(__file__).resolve().parents[2] / "plugins" / "cxrlt-template"
# The template's entry for each kind, with a spec that sets a parameter where it has one.
EXAMPLES = {
    "losses": "my-loss:epsilon=2.0",
    "samplers": "my-sampler:repeat=3",
    "backbones": "my-backbone:width=8,depth=2",
    "heads": "my-head:hidden=8",
    "post": "my-step:tau=0.5",
    "calibrators": "my-calibrator:temperatures=(1.0,2.0)",
    "thresholds": "my-threshold:fpr=0.2",
    "datasets": "my-dataset",
    "commands": "my-command",
    "recipes": "my-recipe",
    "image_text_models": "my-clip:width=8",
    "loggers": "my-logger:path=epochs.jsonl",
    "executors": "my-executor:pause=0",
}


@pytest.fixture
def template(cxrlt_fake_plugin, monkeypatch):
    """The template plugin, installed under the name ``template`` as pip would."""
    monkeypatch.syspath_prepend(str(TEMPLATE))
    cxrlt_fake_plugin("template", "from cxrlt_template.plugin import *  # noqa: F403\n")


def labelled_folder(folder: Path) -> Path:
    """Two images in the example data set's format (ChestX-ray14's 'Finding Labels')."""
    (folder / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (folder / "images" / name).touch()
    (folder / "labels.csv").write_text(
        "Image Index,Patient ID,Finding Labels\na.png,p1,Effusion\nb.png,p2,No Finding\n"
    )
    return folder


def test_the_template_has_an_example_for_every_kind(template):
    assert set(EXAMPLES) == set(KINDS)
    for kind, spec in EXAMPLES.items():
        assert registry(kind).get(spec.split(":")[0]).plugin == "template"


@pytest.mark.parametrize("kind", [kind for kind in EXAMPLES if kind != "datasets"])
def test_template_example_keeps_its_kinds_contract(template, kind):
    check_entry(kind, EXAMPLES[kind])


def test_template_dataset_keeps_the_dataset_contract(template, tmp_path):
    check_dataset(EXAMPLES["datasets"], path=str(labelled_folder(tmp_path)))


# ---- pretrained reaches only backbones that declare it ------------------------------------


def test_pretrained_override_reaches_only_a_backbone_that_declares_it(template):
    assert resolve("backbones", "my-backbone", pretrained=True).params == {"width": 16, "depth": 3}
    assert resolve("backbones", "resnet18:pretrained=False", pretrained=True).params["pretrained"]


def test_no_override_keeps_the_spec(template):
    assert resolve("backbones", "resnet18:pretrained=True", pretrained=None).params["pretrained"]
    assert not resolve("backbones", "resnet18").params["pretrained"]


def test_only_overridable_parameters_can_be_overridden():
    with pytest.raises(TypeError, match="take no override in_chans; overridable: pretrained"):
        resolve("backbones", "resnet18", in_chans=3)
    with pytest.raises(TypeError, match="overridable: none"):
        resolve("losses", "bce", pretrained=True)


NO_DEFAULT_BACKBONE = """
from torch import nn
from cxrlt.hookspecs import hookimpl


class Needy(nn.Module):
    def __init__(self, *, in_chans, pretrained):
        super().__init__()
        self.num_features = 4
        self.body = nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, images):
        return self.body(images)


@hookimpl
def register_backbones(register):
    register("needy", f"{__name__}:Needy")
"""


def test_the_kit_checks_backbones_with_and_without_pretrained(template, cxrlt_fake_plugin):
    check_backbone("my-backbone")  # declares no pretrained
    check_backbone("resnet18:pretrained=True")  # declares it: built offline, with False
    cxrlt_fake_plugin("needy", NO_DEFAULT_BACKBONE)
    with pytest.raises(AssertionError, match="a declared 'pretrained' parameter has a default"):
        check_backbone("needy:pretrained=False")


# ---- cxrlt show: the entry's own docstring only -------------------------------------------

UNDOCUMENTED = """
from torch import nn
from cxrlt.hookspecs import hookimpl


class Bare(nn.Module):
    def __init__(self, in_features, n_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, features):
        return self.fc(features)


class Described(Bare):
    '''A head with its own words.

    More detail that show leaves out.'''


@hookimpl
def register_heads(register):
    register("bare", f"{__name__}:Bare")
    register("described", f"{__name__}:Described")
"""


def show(kind: str, name: str) -> str:
    result = CliRunner().invoke(app, ["show", kind, name], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_show_never_prints_an_inherited_docstring(cxrlt_fake_plugin):
    cxrlt_fake_plugin("undocumented", UNDOCUMENTED)
    bare = show("head", "bare")
    assert "(no description)" in bare
    assert "Base class for all neural network modules" not in bare
    described = show("head", "described")
    assert "A head with its own words." in described
    assert "(no description)" not in described and "More detail" not in described


def test_show_prints_a_functions_docstring(template):
    assert "Print how many images each class of a data set has" in show("command", "my-command")
