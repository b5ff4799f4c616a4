"""The command line's conventions: ``--version``, ``-h``, shell completion, ``--json`` alone on
stdout, ``--quiet``; and ``cxrlt show`` read from the entries' source, without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cxrlt
from cxrlt.cli import app
from cxrlt.entry_docs import describe, loaded_description, static_description
from cxrlt.pytest_plugin import TINY_DATA
from cxrlt.registry import KINDS, Entry, registry
from tests.unit.outputs.test_report import make_run

runner = CliRunner()
CXRLT = Path(sys.executable).parent / "cxrlt"


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def test_version_is_the_installed_one():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"cxrlt {metadata.version('cxrlt')}\n"
    assert cxrlt.__version__ == metadata.version("cxrlt")


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_h_is_help_on_every_command(command):
    short, long = invoke(command, "-h"), invoke(command, "--help")
    assert short.exit_code == 0, short.output
    assert short.stdout == long.stdout and f"Usage: cxrlt {command}" in " ".join(
        short.stdout.split()
    )


def _completions(words: str) -> list[str]:
    """What the completion script gets from the program when TAB is pressed after ``words``."""
    env = {
        **os.environ,
        "_CXRLT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    return subprocess.run(
        [str(CXRLT)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()


def test_shell_completion_script_and_answers_offline():
    script = subprocess.run(
        [str(CXRLT), "--show-completion", "bash"], capture_output=True, text=True, check=True
    )
    assert "complete -o default -F _cxrlt_completion cxrlt" in script.stdout
    assert _completions("cxrlt sh") == ["show"]
    assert _completions("cxrlt show po") == ["post"]
    assert _completions("cxrlt show loss ldam") == ["ldam", "ldam-drw"]
    assert _completions("cxrlt show nonsense x") == []


def _show_in_a_fresh_process(*commands: list[str]) -> dict:
    """Each ``cxrlt show ... --json`` answer, and whether torch was imported by any of them."""
    code = (
        "import contextlib, io, json, sys\n"
        "from cxrlt.cli import main\n"
        "answers = []\n"
        f"for argv in {[[*c, '--json'] for c in commands]!r}:\n"
        "    sys.argv = ['cxrlt', *argv]\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n            main()\n        except SystemExit:\n            pass\n"
        "    answers.append(json.loads(out.getvalue()))\n"
        "print(json.dumps({'answers': answers, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_show_answers_from_source_without_importing_torch():
    """The parameters shown are those read from source, which the next test holds to the
    loaded targets' signatures."""
    commands = [["losses", "ldam-drw"], ["post", "crt"], ["backbones", "resnet18"]]
    shown = _show_in_a_fresh_process(*[["show", *c] for c in commands])
    assert shown["torch"] is False
    for (kind, name), answer in zip(commands, shown["answers"], strict=True):
        read = static_description(registry(kind).get(name))
        assert answer["name"] == name and list(answer["params"]) == list(read.params)
        for key, param in read.params.items():
            default = json.loads(json.dumps(param.default))  # a tuple comes back a list
            assert answer["params"][key] == {
                "default": default,
                "required": param.required,
                "type": param.type_name,
            }
    assert shown["answers"][0]["params"]["s"]["default"] == 30.0


def _every_entry() -> list[Entry]:
    """Every entry with a target to describe (a recipe is a file, shown from the file)."""
    return [entry for kind in KINDS if kind != "recipes" for entry in registry(kind).entries]


@pytest.mark.slow
@pytest.mark.parametrize("entry", _every_entry(), ids=lambda e: f"{e.kind}-{e.name}")
def test_the_source_is_read_as_the_loaded_target_says(entry):
    """What keeps the static reader honest: for every installed entry, the docstring and the
    parameters read from source are those of the imported target, defaults of the same type."""
    static, loaded = static_description(entry), loaded_description(entry)
    assert static is not None, f"{entry.target_path} is not read from its source"
    assert static.docstring == loaded.docstring
    assert list(static.params) == list(loaded.params)
    for name, param in loaded.params.items():
        read = static.params[name]
        assert read.required == param.required
        if not param.required:
            assert read.default == param.default and type(read.default) is type(param.default)
        assert bool(read.type_name) == bool(param.type_name)


# Targets the source alone cannot describe; describe() imports them instead.
INFINITY = float("inf")


def _computed_default(*, width: float = float("inf"), depth: int = 2) -> None:
    """A default that is a call, not a literal."""


def _decorated(function):
    def wrapper(*, scale: float = 3.0) -> None:
        return function()

    return wrapper


@_decorated
def _wrapped() -> None:
    """The decorator decides the signature."""


def _rebound(*, size: int = 1) -> None:
    """Replaced below by a wrapper with other parameters."""


_rebound = _decorated(_rebound)

if INFINITY > 0:

    def _conditional(*, steps: int = 4) -> None:
        """Bound inside an ``if``: which definition holds depends on the run."""


@pytest.mark.parametrize("attr", ["_computed_default", "_wrapped", "_rebound", "_conditional"])
def test_what_the_source_cannot_say_is_read_by_importing(attr):
    entry = Entry("post", attr, f"tests.unit.cli.test_cli_conventions:{attr}", "tests")
    assert static_description(entry) is None
    assert describe(entry) == loaded_description(entry)
    assert describe(entry).params == entry.params()


def test_a_constant_default_and_an_inherited_init_are_read_from_source():
    """``fixed`` defaults to a module constant; ``prevalence`` inherits its constructor
    through an abstract base class."""
    fixed = static_description(registry("thresholds").get("fixed"))
    assert fixed is not None and fixed.params["threshold"].default == 0.5
    prevalence = static_description(registry("thresholds").get("prevalence"))
    assert prevalence is not None and prevalence.params == {}


def test_report_and_compare_print_json_alone_on_stdout_with_intervals(tmp_path):
    first = make_run(tmp_path / "first", seed=0, metrics={})
    second = make_run(tmp_path / "second", seed=1, metrics={})
    result = invoke("report", first, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    low, high = report["metrics"]["mAP_ci"]
    assert low <= report["metrics"]["mAP"] <= high
    assert report["metrics"]["intervals"]["patients"] == 150
    rows = {row["class"]: row for row in report["per_class"]}
    assert rows["finding 0"]["AP_low"] <= rows["finding 0"]["AP"] <= rows["finding 0"]["AP_high"]
    assert rows["finding 7"]["AP"] is None  # no validation positive: NaN becomes null
    assert all(Path(path).is_file() for path in report["plots"])

    out = tmp_path / "comparison"
    result = invoke("compare", first, second, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert [row["run"] for row in compared["runs"]] == ["first", "second"]
    assert all(row["mAP_low"] <= row["mAP"] <= row["mAP_high"] for row in compared["runs"])
    assert compared["written"] == [f"{out}.csv", f"{out}.md"]


def test_quiet_prints_nothing_but_still_writes(tmp_path):
    run = make_run(tmp_path / "run")
    result = invoke("report", run, "--quiet")
    assert result.exit_code == 0 and result.output == ""
    assert (run / "plots" / "reliability.png").is_file()


@pytest.mark.slow
def test_evaluate_json_pipes_into_a_json_tool(tmp_path):
    env = {**os.environ, "CXRLT_CACHE_DIR": str(tmp_path / "cache")}
    run = tmp_path / "run"
    trained = subprocess.run(
        [str(CXRLT), "run", "--dataset", TINY_DATA, "--size", "32", "--epochs", "1",
         "--out", str(run), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    # Another synthetic set: the same classes, other images.
    evaluate = (
        f"{CXRLT} evaluate {run} --dataset synthetic:n_images=200,size=32 --out {tmp_path / 'e'}"
        f" --device cpu --json | {sys.executable} -m json.tool"
    )
    piped = subprocess.run(evaluate, shell=True, capture_output=True, text=True, env=env)
    assert piped.returncode == 0, piped.stderr
    result = json.loads(piped.stdout)
    assert result["run"] == str(tmp_path / "e")
    low, high = result["metrics"]["mAP_ci"]
    assert low <= result["metrics"]["mAP"] <= high
    assert "200 labelled images" in piped.stderr  # the messages went to stderr
