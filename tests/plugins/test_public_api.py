"""``cxrlt.__all__``: the names scripts and plugins import, pinned so that a change to the
public API is a decision; importing the package stays free of torch; the template and the
bundled plugin use nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cxrlt

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_API = [
    "BCELoss",
    "Backbone",
    "Calibrator",
    "CellOutcome",
    "CxrltError",
    "Executor",
    "Head",
    "ID_COLUMN",
    "LINE_COLUMN",
    "LabelledImages",
    "PATH_COLUMN",
    "PATIENT_COLUMN",
    "PostStep",
    "Preprocessing",
    "Resolved",
    "Sampler",
    "Spec",
    "SubmissionFormat",
    "ThresholdPolicy",
    "TrackedRun",
    "Tracker",
    "__version__",
    "cxr_dataloaders",
    "cxr_learner",
    "hookimpl",
    "load_learner",
    "load_run",
    "locate_images",
    "read_csv",
    "registry",
    "resolve",
    "run_cell",
    "run_pipeline",
    "training_label_counts",
]
PLUGIN_SOURCES = sorted(
    [
        *(ROOT / "plugins/cxrlt-template/cxrlt_template").glob("*.py"),
        *(ROOT / "plugins/cxrlt-xrv/cxrlt_xrv").glob("*.py"),
        *(ROOT / "plugins/cxrlt-raddino/cxrlt_raddino").glob("*.py"),
    ]
)


def python(code: str) -> str:
    """What ``code`` prints in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return result.stdout.strip()


def test_the_public_api_is_the_pinned_list():
    assert sorted(cxrlt.__all__) == PUBLIC_API
    assert len(set(cxrlt.__all__)) == len(cxrlt.__all__)


def test_every_public_name_resolves_and_is_listed_by_dir():
    for name in cxrlt.__all__:
        assert getattr(cxrlt, name) is not None, name
    assert set(cxrlt.__all__) <= set(dir(cxrlt))
    with pytest.raises(AttributeError, match="no attribute 'cxr_lerner'"):
        cxrlt.cxr_lerner  # noqa: B018


def test_registry_is_the_function_whatever_was_imported_first():
    import cxrlt.registry  # the submodule of the same name

    assert cxrlt.registry("losses").kind.name == "losses"
    assert cxrlt.resolve("losses", "bce").entry.name == "bce"


@pytest.mark.slow
def test_a_public_learner_carries_the_post_training_methods():
    """cxrlt.post (a layer above training) adds them; the public names bring it along."""
    code = (
        "import sys, cxrlt.training.learner; "
        "before = 'cxrlt.post' in sys.modules; "
        "import cxrlt; cxrlt.cxr_learner; "
        "from fastai.learner import Learner; "
        "print(before, all(hasattr(Learner, m) for m in ('post', 'calibrate', 'thresholds')))"
    )
    assert python(code) == "False True"


def test_importing_cxrlt_imports_no_torch():
    code = (
        "import sys, cxrlt; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'fastai', 'timm'}); "
        "print(','.join(heavy))"
    )
    assert python(code) == ""


def cxrlt_imports(path: Path) -> list[str]:
    """The cxrlt modules a source file imports from (``from cxrlt import x`` gives "cxrlt")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.split(".")[0] == "cxrlt"]


def test_the_plugins_import_only_the_public_api():
    assert len(PLUGIN_SOURCES) > 5  # the template's modules and the bundled plugin's
    outside = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in PLUGIN_SOURCES
        for module in cxrlt_imports(path)
        if module != "cxrlt"
    }
    assert not outside, "plugins import cxrlt internals: " + ", ".join(sorted(outside))


def test_the_check_finds_an_internal_import(tmp_path):
    source = tmp_path / "plugin.py"
    source.write_text("from cxrlt import hookimpl\nfrom cxrlt.training.losses import BCELoss\n")
    assert cxrlt_imports(source) == ["cxrlt", "cxrlt.training.losses"]


def test_the_builtin_samplers_backbones_and_heads_follow_their_protocols():
    """The protocols state the contracts the built-ins meet (and a plugin's parts must)."""
    import numpy as np

    from cxrlt.registry import registry

    labels = np.eye(4, dtype=int)[np.arange(40) % 4]
    for entry in registry("samplers").entries:
        assert isinstance(cxrlt.resolve("samplers", entry.name).build(labels=labels), cxrlt.Sampler)
    backbone = cxrlt.resolve("backbones", "resnet18", pretrained=False).build(in_chans=1)
    assert isinstance(backbone, cxrlt.Backbone)
    for entry in registry("heads").entries:
        head = cxrlt.resolve("heads", entry.name).build(in_features=8, n_classes=4)
        assert isinstance(head, cxrlt.Head)
    assert not isinstance(object(), cxrlt.Sampler | cxrlt.Backbone | cxrlt.Head)
