"""The options of a run, declared once: type, default, help text and group of each.

``cxrlt run``, ``cxrlt sweep`` and ``cxrlt prepare`` generate their command-line options from
this declaration, a configuration file (``cxrlt run --config``) is checked against it, and the
documentation's reference lists it (:data:`RUN_OPTIONS`). Importing it stays cheap: no torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrlt.errors import CxrltError
from cxrlt.evaluation.selection import DEFAULT_SELECTION, SELECTIONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before the standard library had it
    import tomli as tomllib

DATA, MODEL, TRAINING, AFTER, RUN = "Data", "Model", "Training", "After training", "Run"


def _option(
    default: Any, help: str, group: str, *, data: bool = False, per_run: bool = False
) -> Any:
    """A declared option. ``data``: ``cxrlt prepare`` takes it too (it shapes the decoded
    images); ``per_run``: it names one run, so a sweep sets it per cell rather than sharing it."""
    metadata = {"help": help, "group": group, "data": data, "per_run": per_run}
    return dataclasses.field(default=default, metadata=metadata)


_SELECT_HELP = (
    "How the epoch (and tau) are chosen. "
    + "; ".join(f"'{name}': {text}" for name, text in SELECTIONS.items())
    + "."
)


@dataclass(frozen=True)
class RunOptions:
    """Everything ``cxrlt run`` takes; the defaults train on the embedded data in minutes."""

    dataset: str = _option(
        "synthetic", "Data set name (see `cxrlt list datasets`).", DATA, data=True
    )
    data: str | None = _option(
        None, "Folder of the data set on disk (default: the data set's own).", DATA, data=True
    )
    arch: str = _option("resnet18", "Backbone: a registered or any timm name.", MODEL)
    head: str | None = _option(
        None, "Classifier head (default: the one the loss declares, else linear).", MODEL
    )
    loss: str = _option("bce", "Loss, e.g. 'bce' or 'name:key=value'.", TRAINING)
    sampler: str = _option("uniform", "Training sampler (see `cxrlt list samplers`).", TRAINING)
    epochs: int = _option(8, "Training epochs.", TRAINING)
    bs: int = _option(64, "Batch size.", TRAINING)
    lr: float = _option(2e-3, "Peak learning rate (one-cycle).", TRAINING)
    backbone_lr: float | None = _option(
        None, "Peak learning rate of the backbone (default: the head's, --lr).", TRAINING
    )
    size: int = _option(64, "Training image size in pixels.", DATA, data=True)
    valid_frac: float = _option(0.2, "Share of images held out for validation, by patient.", DATA)
    skip_bad: bool = _option(
        False, "Leave out bad rows (listed in skipped.csv) instead of stopping.", DATA
    )
    letterbox: bool = _option(
        False, "Keep the aspect ratio and pad, instead of stretching.", DATA, data=True
    )
    augment: bool = _option(
        False, "Small affine and exposure changes in training (pays on long runs).", TRAINING
    )
    seed: int = _option(0, "Random seed (split, order, initialisation).", TRAINING, per_run=True)
    pretrained: bool | None = _option(
        None,
        "Start from pretrained backbone weights (default: on for real data sets, off for the "
        "embedded one).",
        MODEL,
    )
    precision: str = _option(
        "auto", "auto (bf16 or fp16 on a GPU, 32 on the CPU), 32, bf16 or fp16.", TRAINING
    )
    channels_last: bool | None = _option(
        None, "Channels-last memory format (default: on a GPU).", TRAINING
    )
    ema: float = _option(0.0, "Average the weights with this decay (e.g. 0.999); 0: off.", TRAINING)
    grad_clip: float = _option(0.0, "Clip the gradient norm to this value; 0: off.", TRAINING)
    select: str = _option(DEFAULT_SELECTION, _SELECT_HELP, AFTER)
    post: str = _option(
        "",
        "After training, in order: post-training steps, then a calibrator, then a threshold "
        "policy, e.g. 'crt,tta,temp-scale,f1-per-class'.",
        AFTER,
    )
    from_run: str | None = _option(
        None,
        "Skip training: apply --post to the model of this finished run (same data, split and "
        "options) and evaluate it as a new run.",
        AFTER,
        per_run=True,
    )
    device: str = _option("auto", "auto, cpu, cuda or cuda:N.", RUN)
    out: Path | None = _option(None, "Run directory (default: runs/DATE-TIME).", RUN, per_run=True)
    overwrite: bool = _option(False, "Replace a run already in --out.", RUN, per_run=True)
    log: str = _option(
        "",
        "Also record the run with these loggers, e.g. 'mlflow', 'tensorboard,csv' or "
        "'mlflow:uri=http://host:5000,experiment=NAME' (see `cxrlt list loggers`).",
        RUN,
    )


RUN_OPTIONS: tuple[dataclasses.Field, ...] = dataclasses.fields(RunOptions)
"""The declaration, in order: each field's ``name``, ``default`` and ``metadata`` (``help``,
``group``, ``data``, ``per_run``); :func:`option_type` gives its type."""

DATA_OPTIONS = tuple(field.name for field in RUN_OPTIONS if field.metadata["data"])
PER_RUN_OPTIONS = tuple(field.name for field in RUN_OPTIONS if field.metadata["per_run"])


def option_type(name: str) -> Any:
    """The declared type of option ``name`` (``int``, ``str | None``, ...)."""
    return typing.get_type_hints(RunOptions)[name]


def flag(name: str) -> str:
    """The command-line spelling of option ``name``: ``--valid-frac``."""
    return "--" + name.replace("_", "-")


def checked_options(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` (option names, ``-`` or ``_`` spelled, to plain values as TOML and JSON give
    them) checked against the declaration and converted to the declared types; ``source``
    names where they come from in the messages."""
    known = [field.name for field in RUN_OPTIONS]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"the options are {', '.join(known)}."
            )
            raise CxrltError(f"{source}: unknown option {key!r}; {hint}")
        checked[name] = _typed(name, value, source)
    return checked


def _typed(name: str, value: Any, source: str) -> Any:
    """``value`` as option ``name``'s declared type, or an error naming what it expects."""
    declared = option_type(name)
    kinds = typing.get_args(declared) or (declared,)
    if value is None and types.NoneType in kinds:
        return None
    for kind in kinds:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind in (str, Path) and isinstance(value, str):
            return kind(value)
    expected = " or ".join("null" if k is types.NoneType else k.__name__ for k in kinds)
    raise CxrltError(
        f"{source}: option {name!r} is {value!r}, expected {expected} ({flag(name)}: "
        f"{RunOptions.__dataclass_fields__[name].metadata['help']})"
    )


CONFIG_SUFFIXES = {".toml": "TOML", ".json": "JSON"}
# The options a run's config.json replays as the specs they resolved to (every parameter).
_RESOLVED_PARTS = ("dataset", "sampler", "arch", "head", "loss")


def read_config_file(path: Path | str) -> dict[str, Any]:
    """The run options a TOML or JSON file gives, checked: at its top level, or in an
    ``[options]`` table (a recipe's file, whose other tables describe them). A run's own
    ``config.json`` gives the options it ran with, each part as the full spec it resolved to,
    so the file replays that run even after a default has changed."""
    path = Path(path)
    kind = CONFIG_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CxrltError(
            f"--config {path}: give a TOML (.toml) or JSON (.json) file of run options; "
            f"{path.suffix or 'a name without a suffix'} is neither."
        )
    if path.is_dir():
        raise CxrltError(f"--config {path} is a folder: give a TOML or JSON file in it.")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CxrltError(f"--config {path}: no such file; give a TOML or JSON file.") from None
    try:
        values = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise CxrltError(f"--config {path} is not valid {kind}: {error}") from None
    if isinstance(values, dict) and isinstance(values.get("options"), dict):
        values = _replayed(values, path)
    if not isinstance(values, dict):
        raise CxrltError(f"--config {path} must hold a table of option names and values.")
    if not values:
        raise CxrltError(
            f"--config {path} holds no options: name at least one (e.g. epochs = 8), or leave "
            "out --config to run with the defaults."
        )
    return checked_options(values, str(path))


def _replayed(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The options of the training run whose ``config.json`` this is, its parts (and
    post-training steps) as the specs they resolved to."""
    if "cells" in config or "grid" in config:
        raise CxrltError(f"--config {path} is a sweep's manifest: run it with `cxrlt sweep`.")
    for section, command in (("ensemble", "ensemble"), ("evaluation", "evaluate")):
        if section in config:
            raise CxrltError(
                f"--config {path} was written by `cxrlt {command}`, not by a training run: "
                "give the config.json of a run it read."
            )
    options = dict(config["options"])
    specs = config.get("specs")
    if not isinstance(specs, dict):
        return options
    for part in _RESOLVED_PARTS:
        if isinstance(specs.get(part), dict) and "spec" in specs[part]:
            options[part] = specs[part]["spec"]
    post = [*config.get("post", ()), specs.get("calibrator"), specs.get("thresholds")]
    if all(isinstance(step, dict) and "spec" in step for step in post if step is not None):
        options["post"] = ",".join(step["spec"] for step in post if step is not None)
    return options


@dataclass(frozen=True)
class Recipe:
    """A named bundle of run options (``cxrlt run --recipe``), each option with where its value
    comes from, so a user sees what a paper states and what had to be assumed."""

    name: str
    description: str
    options: dict[str, Any]
    sources: dict[str, str]
    location: str


_RECIPE_TABLES = ("description", "options", "sources")


def read_recipe(name: str) -> Recipe:
    """The recipe registered as ``name`` (see :func:`cxrlt.hookspecs.register_recipes`), its
    options checked as a ``--config`` file's are and every option's source required."""
    from cxrlt.registry import registry

    entry = registry("recipes").get(name)
    location, text = _recipe_text(entry.target, entry.plugin)
    where = f"recipe {entry.name!r} ({location})"
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CxrltError(f"The {where} is not valid TOML: {error}") from None
    unknown = sorted(set(values) - set(_RECIPE_TABLES))
    options, sources = values.get("options"), values.get("sources")
    if unknown or not isinstance(options, dict) or not options or not isinstance(sources, dict):
        raise CxrltError(
            f"The {where} must hold a description, an [options] table of run options and a "
            f"[sources] table saying where each value comes from"
            + (f"; {', '.join(map(repr, unknown))} is none of them." if unknown else ".")
        )
    checked = checked_options(options, f"The {where}")
    sourced = {str(key).replace("-", "_"): str(text) for key, text in sources.items()}
    unsourced = [key for key in checked if not sourced.get(key, "").strip()]
    if unsourced or set(sourced) - set(checked):
        raise CxrltError(
            f"The {where}: give [sources] one entry per option, no more (missing: "
            f"{', '.join(unsourced) or 'none'}; extra: "
            f"{', '.join(sorted(set(sourced) - set(checked))) or 'none'}). Write 'assumed: why' "
            "where no public material states the value."
        )
    description = str(values.get("description", "")).strip()
    return Recipe(entry.name, description, checked, sourced, location)


def _recipe_text(target: Any, plugin: str) -> tuple[str, str]:
    """Where a recipe entry's TOML file is, and its text: ``target`` is a path, or a
    ``"package:resource"`` string naming a file inside an installed package."""
    from importlib import resources

    try:
        if isinstance(target, str):
            package, _, resource = target.partition(":")
            return target, resources.files(package).joinpath(resource).read_text("utf-8")
        return str(target), Path(target).read_text(encoding="utf-8")
    except (ImportError, OSError, TypeError) as error:
        raise CxrltError(
            f"The recipe file {target!r} of plugin {plugin!r} cannot be read ({error}). "
            f"Reinstall the plugin, or block it with CXRLT_BLOCK_PLUGINS={plugin}."
        ) from None
