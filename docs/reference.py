"""The reference pages, generated from the code when the site is built (a MkDocs hook).

Nothing here is copied by hand: the registry entries come from ``cxrlt.registry``, the command
line from the Typer app, the hooks from ``cxrlt.hookspecs`` and the public API from
``cxrlt.__all__``, so the reference cannot drift from the code it describes.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

PAGES_DIR = "reference"
# Plugins whose entries the reference documents: cxrlt's own, not whatever else is installed.
BUILTIN_PREFIX = "cxrlt."


def _markdown(text: str) -> str:
    """reStructuredText's inline literals and roles, as markdown code; ``<`` and ``>`` outside
    code escaped, so help such as ``runs/<date-time>`` is not taken for an HTML tag."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    parts = re.split(r"(`+[^`]*`+)", text.replace("``", "`"))
    return "".join(part if part.startswith("`") else _escape_html(part) for part in parts)


def _escape_html(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """Text that fits in one cell of a markdown table."""
    return " ".join(_markdown(text).split()).replace("|", "\\|")


def _code_cell(text: str) -> str:
    """Text shown as code in one cell of a markdown table."""
    return _cell(f"`{text}`")


def registry_page(kind_name: str) -> str:
    """Every entry cxrlt ships for one kind, with what ``cxrlt show`` says about it."""
    from cxrlt.entry_docs import describe
    from cxrlt.registry import KINDS, registry

    kind = KINDS[kind_name]
    found = registry(kind_name)
    entries = [e for e in found.entries if e.plugin.startswith(BUILTIN_PREFIX)]
    lines = [f"# {kind.singular.capitalize()} entries (`{kind.name}`)", ""]
    if kind.context:
        supplied = ", ".join(f"`{name}`" for name in kind.context)
        lines += [f"cxrlt supplies {supplied} itself; the parameters below are the spec's.", ""]
    lines += [
        _markdown(s.note) + "\n" for s in found.sources if s.plugin.startswith(BUILTIN_PREFIX)
    ]
    lines += [
        f"The {kind.singular} entries cxrlt ships. Installed plugins add their own: "
        f"`cxrlt list {kind.name}`, and `cxrlt show {kind.name} NAME` for one.",
        "",
    ]
    if not entries:
        lines += ["cxrlt ships none.", ""]
    for entry in entries:
        if kind_name == "recipes":  # a file of run options, not a target with parameters
            lines += _recipe_section(entry)
        else:
            lines += _entry_section(entry, describe(entry))
    return "\n".join(lines)


def _recipe_section(entry: Any) -> list[str]:
    """A recipe: its description, then every option with its value and source."""
    from cxrlt.options import flag, read_recipe

    recipe = read_recipe(entry.name)
    lines = [f"## `{entry.name}`", "", _markdown(recipe.description), ""]
    if entry.paper:
        lines += [f"**Paper:** {_markdown(entry.paper)}", ""]
    lines += ["| option | value | source |", "|---|---|---|"]
    lines += [
        f"| `{flag(name)}` | {_code_cell(str(value))} | {_cell(recipe.sources[name])} |"
        for name, value in recipe.options.items()
    ]
    return [*lines, "", f"`cxrlt run --recipe {entry.name}`; file `{recipe.location}`.", ""]


def _entry_section(entry: Any, doc: Any) -> list[str]:
    lines = [f"## `{entry.name}`", ""]
    if entry.aliases:
        lines += ["Aliases: " + ", ".join(f"`{a}`" for a in entry.aliases) + ".", ""]
    if entry.summary:
        lines += [_markdown(entry.summary), ""]
    if doc.docstring:
        lines += [_markdown(doc.docstring.split("\n\n")[0]), ""]
    if entry.paper:
        lines += [f"**Paper:** {_markdown(entry.paper)}", ""]
    if entry.deviations:
        lines += ["**Defaults that differ from the paper:**", ""]
        lines += [f"- `{what}`: {_markdown(why)}" for what, why in entry.deviations.items()]
        lines += [""]
    if entry.head:
        lines += [f"**Head:** `{entry.head}`, the run's head unless `--head` says otherwise.", ""]
    if entry.trains_from_scratch:
        lines += ["**Trains from scratch** unless `--pretrained` is given.", ""]
    for fmt in entry.submissions:
        lines += [
            f"**Submission** `{fmt.name}`: `{fmt.id_column}` and {len(fmt.classes)} classes. "
            + _markdown(fmt.notes),
            "",
        ]
    if doc.params:
        lines += ["| parameter | type | default |", "|---|---|---|"]
        for p in doc.params.values():
            default = "(required)" if p.required else f"`{p.default!r}`"
            lines.append(f"| `{p.name}` | {_cell(p.type_name) or '-'} | {_cell(default)} |")
    else:
        lines.append("No parameters.")
    return [*lines, "", f"Target: `{entry.target_path}`", ""]


def registry_index() -> str:
    """The kinds, each with the hook that fills it and its page."""
    from cxrlt.registry import KINDS

    lines = [
        "# Registry",
        "",
        "Every choice is a named entry of one kind, written `name:key=value,...` on the command "
        "line. One page per kind lists the entries cxrlt ships with their parameters:",
        "",
        "| kind | entries | hook |",
        "|---|---|---|",
    ]
    for kind in KINDS.values():
        lines.append(
            f"| {kind.singular} | [{kind.name}]({kind.name}.md) | `register_{kind.name}` |"
        )
    return "\n".join(lines) + "\n"


def _click_command(command: Any, path: str, level: int) -> list[str]:
    import typer

    context = typer.Context(command, info_name=path)
    lines = [f"{'#' * level} `{path}`", "", _markdown(inspect.cleandoc(command.help or "")), ""]
    usage = " ".join(command.collect_usage_pieces(context))
    lines += ["```text", f"Usage: {path} {usage}", "```", ""]
    records = []
    for param in command.get_params(context):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(context)
        if record is None:  # an argument: typer gives its help separately
            record = (param.human_readable_name, getattr(param, "help", "") or "")
        records.append(record)
    if records:
        lines += ["| option | help |", "|---|---|"]
        lines += [f"| {_code_cell(names)} | {_cell(help_)} |" for names, help_ in records]
        lines.append("")
    return lines


def cli_page() -> str:
    """Every built-in command with its options, help and defaults, as ``--help`` gives them."""
    import typer.main

    from cxrlt.cli import app

    group = typer.main.get_command(app)
    lines = ["# Command line", "", *_click_command(group, "cxrlt", 2)]
    for name in sorted(group.commands):
        command = group.commands[name]
        if not command.callback.__module__.startswith(BUILTIN_PREFIX):
            continue  # a plugin's command: documented by its plugin
        lines += _click_command(command, f"cxrlt {name}", 2)
    return "\n".join(lines)


def run_options_page() -> str:
    """The run options as declared once (``cxrlt.options``): the keys of a ``--config`` file and
    the options of ``run``, ``sweep`` and ``prepare``."""
    from cxrlt.options import PER_RUN_OPTIONS, RUN_OPTIONS, flag, option_type

    per_run = ", ".join(f"`{flag(name)}`" for name in PER_RUN_OPTIONS)
    lines = [
        "# Run options",
        "",
        "Declared once in `cxrlt.options`: `cxrlt run` takes every one; `cxrlt sweep` every "
        f"one but those it sets per cell, marked *per run* ({per_run}), and takes comma lists "
        "of alternatives for `--loss`, `--arch` and `--post`; `cxrlt prepare` takes those "
        "marked *data*. A configuration file (`cxrlt run --config FILE`, TOML or JSON) uses "
        "the keys below; options given on the command line override it, and a run's own "
        "`config.json` replays the run.",
        "",
    ]
    groups: dict[str, list[Any]] = {}
    for field in RUN_OPTIONS:
        groups.setdefault(field.metadata["group"], []).append(field)
    for group, fields in groups.items():
        lines += [
            f"## {group}",
            "",
            "| key | option | type | default | help |",
            "|---|---|---|---|---|",
        ]
        for field in fields:
            kind = _type_text(option_type(field.name))
            marks = " *(data)*" if field.metadata["data"] else ""
            marks += " *(per run)*" if field.metadata["per_run"] else ""
            lines.append(
                f"| `{field.name}` | `{flag(field.name)}` | {_cell(kind)} | "
                f"`{field.default!r}` | {_cell(field.metadata['help'])}{marks} |"
            )
        lines.append("")
    return "\n".join(lines)


def _type_text(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def hooks_page() -> str:
    """The hook points: the register function, then each hook with its target's signature."""
    from cxrlt import hookspecs
    from cxrlt.registry import KINDS

    lines = ["# Hooks", "", _markdown(inspect.getdoc(hookspecs) or ""), ""]
    lines += ["| hook | kind | target's call signature |", "|---|---|---|"]
    docs = {}
    for kind in KINDS:
        hook = f"register_{kind}"
        docs[hook] = inspect.getdoc(getattr(hookspecs, hook)) or ""
        target = re.search(r"Target:\s+``(f\([^`]*)``", docs[hook])
        signature = f"`{target.group(1)}`" if target else ""
        lines.append(f"| [`{hook}(register)`](#{hook}) | {KINDS[kind].singular} | {signature} |")
    lines.append("")
    for hook, doc in docs.items():
        lines += [f"## {hook}", "", _markdown(doc), ""]
    return "\n".join(lines)


def api_page() -> str:
    """``cxrlt.__all__``, the names scripts and plugins import, each rendered by mkdocstrings."""
    import cxrlt

    lines = [
        "# Python API",
        "",
        "What scripts and plugins import from `cxrlt` (its `__all__`); everything else is "
        "internal and may change.",
        "",
    ]
    for name in cxrlt.__all__:  # the public path; mkdocstrings follows it to the definition
        lines += [f"::: cxrlt.{name}", "    options:", *_API_OPTIONS, ""]
    return "\n".join(lines)


# How mkdocstrings renders each public name: a class with its constructor's signature (a
# dataclass's fields included) and its public members, documented or not, in source order.
_API_OPTIONS = [
    "      heading_level: 2",
    "      show_signature: true",
    "      merge_init_into_class: true",
    "      show_if_no_docstring: true",
    "      members_order: source",
    "      filters: ['!^_']",
]


def synonyms_page() -> str:
    """The class-name synonyms ``cxrlt evaluate`` matches across data sets."""
    from cxrlt.data.synonyms import synonyms_markdown

    return "\n".join(
        [
            "# Class-name synonyms",
            "",
            "`cxrlt evaluate` matches a run's classes to another data set's by name (case, "
            "spaces, underscores and hyphens normalised), then by these synonyms; the second "
            "table lists related findings that are never matched. `cxrlt evaluate --synonyms` "
            "prints the same tables.",
            "",
            synonyms_markdown(),
            "",
        ]
    )


def recorded_benchmarks_page() -> str:
    """The figures the benchmarks recorded in ``bench/results/``, as they wrote them."""
    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    lines = [
        "# Recorded benchmark figures",
        "",
        "What each benchmark script wrote to `bench/results/` when it was last run; "
        "[Benchmarks](../benchmarks.md) explains them.",
        "",
    ]
    for table in sorted(results.glob("*.md")):
        lines += [f"## {table.stem}", "", table.read_text().strip(), ""]
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """Every generated page, by its path under ``docs/``."""
    from cxrlt.registry import KINDS

    generated = {f"{PAGES_DIR}/registry/{kind}.md": registry_page(kind) for kind in KINDS}
    generated[f"{PAGES_DIR}/registry/index.md"] = registry_index()
    generated[f"{PAGES_DIR}/cli.md"] = cli_page()
    generated[f"{PAGES_DIR}/run-options.md"] = run_options_page()
    generated[f"{PAGES_DIR}/hooks.md"] = hooks_page()
    generated[f"{PAGES_DIR}/api.md"] = api_page()
    generated[f"{PAGES_DIR}/synonyms.md"] = synonyms_page()
    generated[f"{PAGES_DIR}/benchmark-results.md"] = recorded_benchmarks_page()
    return generated


def on_config(config: Any) -> Any:
    """MkDocs hook: the navigation gets one page per registry kind, after the registry's
    index, so a new kind cannot be left out of it."""
    from cxrlt.registry import KINDS

    index = f"{PAGES_DIR}/registry/index.md"
    for section in config["nav"]:
        items = section.get("Reference") if isinstance(section, dict) else None
        if items:
            at = next(i for i, item in enumerate(items) if index in item.values()) + 1
            items[at:at] = [f"{PAGES_DIR}/registry/{kind}.md" for kind in KINDS]
    return config


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated pages to the site."""
    from mkdocs.structure.files import File

    for path, content in pages().items():
        files.append(File.generated(config, path, content=content))
    return files
