"""Built-in defaults against the papers their entries cite: each default is the paper's value,
or the entry lists it among its deviations (with why), and `cxrlt show` prints both."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cxrlt.cli import app
from cxrlt.registry import registry

# The papers' values (/work/shared/domain.md and the papers themselves), per entry that cites
# one. An entry citing a paper must appear here, so a new one gets audited too.
PAPER_VALUES: dict[tuple[str, str], dict] = {
    ("losses", "focal"): {"gamma": 2.0, "alpha": 0.25},  # Lin et al. 2017, detection
    ("losses", "cb"): {"beta": 0.9999},
    ("losses", "asl"): {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05},
    ("losses", "ldam"): {"max_m": 0.5, "s": 30.0},
    ("losses", "drw"): {"beta": 0.9999, "start": None},  # None: 80% of training, as Cao et al.
    ("losses", "ldam-drw"): {"max_m": 0.5, "s": 30.0, "beta": 0.9999, "start": None},
    ("losses", "logit-adjusted"): {"tau": 1.0},
    ("losses", "db"): {
        "alpha": 0.1,
        "beta": 10.0,
        "mu": 0.2,
        "kappa": 0.05,
        "neg_scale": 2.0,
        "gamma": 2.0,
    },
    ("samplers", "class-aware"): {},
    ("samplers", "repeat-factor"): {"t": 0.001, "cap": None},  # LVIS: t = 0.001, no cap
    ("heads", "cosine"): {"scale": 1.0},  # Cao et al.'s normalised classifier; s is the loss's
    ("heads", "csra"): {"lam": 0.1, "heads": 1, "temperature": 1.0},  # the VOC recipe
    ("heads", "ml-decoder"): {
        "n_groups": 0,  # min(n_classes, 100)
        "dim": 768,
        "layers": 1,
        "heads": 8,
        "dropout": 0.1,
        "learn_queries": False,
    },
    ("post", "crt"): {"epochs": 10, "sampler": "class-aware"},
    ("post", "lws"): {"epochs": 10, "sampler": "class-aware"},
    ("post", "tau-norm"): {"bias": False, "metric": "accuracy"},
    ("post", "normal-gating"): {"alpha": 0.5},
    ("calibrators", "temp-scale"): {"per_class": False},
    ("calibrators", "temp-scale-per-class"): {"per_class": False},
    ("calibrators", "platt"): {},
    ("calibrators", "isotonic"): {},
    ("thresholds", "f1-per-class"): {"min_positives": 0, "shrinkage": 0.0},  # plain SCut
    ("thresholds", "f1-global"): {},
    ("thresholds", "prevalence"): {},
}
_CITATION = re.compile(r"et al\.|\b(19|20)\d\d\b")
# Kinds whose defaults are method settings (data sets and backbones cite sources, not recipes).
_METHOD_KINDS = ("losses", "samplers", "heads", "post", "calibrators", "thresholds")


def _builtins(kind: str) -> list:
    return [e for e in registry(kind).entries if e.plugin.startswith("cxrlt.builtins.")]


def _defaults(entry) -> dict:
    """What the entry runs with when the user gives nothing: defaults and bound values."""
    params = {name: p.default for name, p in entry.params().items() if not p.required}
    return {**params, **entry.bound}


@pytest.mark.parametrize(("kind", "name"), list(PAPER_VALUES))
def test_defaults_follow_the_paper_or_say_why_not(kind: str, name: str) -> None:
    entry = registry(kind).get(name)
    assert entry.paper, f"{kind} {name} cites no paper"
    defaults = _defaults(entry)
    for param, paper_value in PAPER_VALUES[kind, name].items():
        assert param in defaults, f"{name} has no parameter {param!r}"
        if defaults[param] == paper_value:
            assert param not in entry.deviations, f"{name}.{param} follows the paper now"
        else:
            assert param in entry.deviations, (
                f"{kind} {name}: {param}={defaults[param]!r}, the paper {paper_value!r}, and no "
                "deviation says why"
            )


def test_every_builtin_citing_a_paper_is_audited() -> None:
    citing = {
        (kind, e.name)
        for kind in _METHOD_KINDS
        for e in _builtins(kind)
        if e.paper or _CITATION.search(e.summary)
    }
    assert citing == set(PAPER_VALUES)
    for kind, name in citing:
        assert registry(kind).get(name).paper, f"{kind} {name} cites a paper in its summary only"


def test_show_prints_the_paper_and_the_defaults() -> None:
    result = CliRunner().invoke(app, ["show", "losses", "asl"])
    assert result.exit_code == 0, result.output
    assert "paper: Ridnik et al., ICCV 2021; defaults follow it." in result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert rows.keys() >= {"gamma_neg", "gamma_pos", "clip"}
    assert "0.0" in rows["gamma_pos"] and "4.0" in rows["gamma_neg"] and "0.05" in rows["clip"]


@pytest.mark.parametrize(
    ("kind", "name", "param"),
    [("loss", "focal", "alpha"), ("sampler", "repeat-factor", "t"), ("head", "ml-decoder", "dim")],
)
def test_show_lists_each_deviation_with_its_reason(kind: str, name: str, param: str) -> None:
    result = CliRunner().invoke(app, ["show", kind, name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["paper"] and data["deviations"][param]
    text = " ".join(CliRunner().invoke(app, ["show", kind, name]).output.split())  # unwrapped
    assert f"paper: {data['paper']}; defaults that differ from it:" in text
    assert f"{param}: {data['deviations'][param]}" in text
