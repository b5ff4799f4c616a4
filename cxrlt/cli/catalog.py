"""``cxrlt list``, ``cxrlt show`` and ``cxrlt plugins``: what can be chosen, and from where."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from cxrlt.cli.app import app, console, friendly_errors
from cxrlt.entry_docs import describe
from cxrlt.errors import CxrltError
from cxrlt.options import flag, read_recipe
from cxrlt.outputs.tables import print_table
from cxrlt.registry import KINDS, Entry, kind_named, registry

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _complete_kind(incomplete: str) -> list[str]:
    return [kind for kind in KINDS if kind.startswith(incomplete)]


def _complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """The registered names and aliases of the kind already typed (none for an unknown one)."""
    try:
        entries = registry(ctx.params.get("kind") or "").entries
    except CxrltError:
        return []
    names = (name for entry in entries for name in (entry.name, *entry.aliases))
    return sorted(name for name in names if name.startswith(incomplete))


Kind = Annotated[
    str,
    typer.Argument(help=f"One of: {', '.join(KINDS)}.", autocompletion=_complete_kind),
]


@app.command("list")
@friendly_errors
def list_entries(
    kind: Annotated[
        str | None,
        typer.Argument(help=f"One of: {', '.join(KINDS)}.", autocompletion=_complete_kind),
    ] = None,
    pattern: Annotated[str, typer.Argument(help="Wildcard filter, e.g. 'ldam*'.")] = "*",
    as_json: JsonOption = False,
) -> None:
    """List the registered names of one kind, or of every kind."""
    kinds = [kind_named(kind)] if kind else list(KINDS.values())
    rows = [entry for k in kinds for entry in registry(k.name).match(pattern)]
    if as_json:
        typer.echo(json.dumps([entry.to_dict() for entry in rows], indent=2))
        return
    title = kinds[0].name if kind else "all kinds"
    table = Table(title=f"cxrlt {title}" + ("" if pattern == "*" else f" matching {pattern!r}"))
    if not kind:
        table.add_column("kind")
    for column in ("name", "aliases", "summary", "plugin"):
        table.add_column(column)
    for entry in rows:
        cells = [entry.name, ", ".join(entry.aliases), entry.summary, entry.plugin]
        # Text: a summary's brackets (pip install 'cxrlt[ray]') are not rich markup.
        table.add_row(*map(Text, [*([entry.kind] if not kind else []), *cells]))
    print_table(console, table)
    for k in kinds:
        for source in registry(k.name).sources:
            console.print(source.note, markup=False)


@app.command()
@friendly_errors
def show(
    kind: Kind,
    name: Annotated[
        str, typer.Argument(help="A registered name or alias.", autocompletion=_complete_name)
    ],
    as_json: JsonOption = False,
    read_input: Annotated[
        bool,
        typer.Option(
            "--input",
            help="Backbones: also the input pre-processing pinned for the model (range, mean, "
            "std, channels) and its weights' licence, read from the model built on the meta "
            "device (imports torch: a few seconds).",
        ),
    ] = False,
) -> None:
    """Describe one entry: summary, the paper it follows and where its defaults differ,
    parameters with defaults, and the plugin behind it. Read from the entry's source, so it
    answers without importing torch."""
    entry = registry(kind).get(name)
    if read_input and entry.kind != "backbones":
        raise CxrltError("--input describes a backbone's input: leave it out for other kinds.")
    if entry.kind == "recipes":  # a file of options, not a callable with parameters
        _show_recipe(entry, as_json)
        return
    doc = describe(entry)
    params = doc.params
    if as_json:
        data = entry.to_dict()
        data["params"] = {
            p.name: {
                "default": None if p.required else p.default,
                "required": p.required,
                "type": p.type_name,
            }
            for p in params.values()
        }
        typer.echo(json.dumps(data, indent=2, default=repr))
        return
    kind_word = kind_named(kind).singular
    console.print(f"[bold]{entry.name}[/bold] ({kind_word}, plugin {entry.plugin})")
    if entry.summary:
        console.print(entry.summary, markup=False)
    description = doc.docstring.split("\n\n")[0] or "(no description)"
    console.print(description, style="dim", markup=False)
    _print_paper(entry)
    table = Table(title="parameters")
    for column in ("name", "type", "default"):
        table.add_column(column)
    for p in params.values():
        table.add_row(p.name, p.type_name, "(required)" if p.required else repr(p.default))
    if params:
        print_table(console, table)
    else:
        console.print("No parameters.")
    console.print(f"target: {entry.target_path}")
    if entry.kind == "backbones":
        _print_input(name, read_input)


def _print_input(name: str, read: bool) -> None:
    """A backbone's pinned input pre-processing and licence, or how to see them."""
    if not read:
        console.print(f"input pre-processing and licence: cxrlt show backbone {name} --input")
        return
    from cxrlt.model.backbone import input_and_licence

    for line in input_and_licence(name):
        console.print(line, markup=False)


def _show_recipe(entry: Entry, as_json: bool) -> None:
    """Every option of a recipe with its value and where the value comes from."""
    recipe = read_recipe(entry.name)
    if as_json:
        data = entry.to_dict() | {"description": recipe.description, "file": recipe.location}
        data["options"] = {
            name: {"value": value, "source": recipe.sources[name]}
            for name, value in recipe.options.items()
        }
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    console.print(f"[bold]{entry.name}[/bold] (recipe, plugin {entry.plugin})")
    console.print(recipe.description or entry.summary, markup=False)
    if entry.paper:
        console.print(f"paper: {entry.paper}", markup=False)
    table = Table(title=f"options (cxrlt run --recipe {entry.name}; any option overrides)")
    for column in ("option", "value", "source"):
        table.add_column(column)
    for name, value in recipe.options.items():
        table.add_row(flag(name), str(value), recipe.sources[name])
    print_table(console, table)
    console.print(f"file: {recipe.location}", markup=False)


def _print_paper(entry: Entry) -> None:
    """The paper, each default that differs from it and why, a loss's declared head, and a
    data set's starting weights and submission formats."""
    if entry.paper:
        differ = "; defaults that differ from it:" if entry.deviations else "; defaults follow it."
        console.print(f"paper: {entry.paper}{differ}", markup=False)
    for what, why in entry.deviations.items():
        console.print(f"  {what}: {why}", markup=False)
    if entry.head:
        console.print(
            f"head: {entry.head} (the run's head with this loss unless --head says otherwise)",
            markup=False,
        )
    if entry.kind == "datasets":
        start = "from scratch" if entry.trains_from_scratch else "from pretrained weights"
        console.print(f"backbones start {start} unless --pretrained says otherwise", markup=False)
    for fmt in entry.submissions:
        notes = f": {fmt.notes}" if fmt.notes else ""
        console.print(
            f"submission format {fmt.name} (id column {fmt.id_column}){notes}", markup=False
        )


@app.command()
@friendly_errors
def plugins(as_json: JsonOption = False) -> None:
    """List the installed plugins, their versions and the hooks they implement."""
    from cxrlt.plugins import plugins as installed

    infos = installed()
    if as_json:
        typer.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    table = Table(title="cxrlt plugins")
    for column in ("name", "version", "source", "hooks", "status"):
        table.add_column(column)
    for info in infos:
        status = f"[red]failed: {info.error}[/red]" if info.error else "loaded"
        table.add_row(info.name, info.version, info.source, ", ".join(info.hooks), status)
    print_table(console, table)
