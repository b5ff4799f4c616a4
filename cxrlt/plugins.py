"""The plugin manager: built-ins and third-party packages enter through the same door.

Built-in plugins are the modules in ``DEFAULT_PLUGINS``; others are found through the
``cxrlt`` entry-point group. ``CXRLT_LOAD_PLUGINS=a,b`` loads only the named third-party
plugins (empty: none), the rescue when one breaks start-up; ``CXRLT_BLOCK_PLUGINS=a,b``
blocks plugins by name, built-ins included.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata

import pluggy

from cxrlt import hookspecs

ENTRY_POINT_GROUP = "cxrlt"
LOAD_ENV = "CXRLT_LOAD_PLUGINS"
BLOCK_ENV = "CXRLT_BLOCK_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "cxrlt.builtins.losses",
    "cxrlt.builtins.samplers",
    "cxrlt.builtins.backbones",
    "cxrlt.builtins.heads",
    "cxrlt.builtins.post",
    "cxrlt.builtins.datasets",
    "cxrlt.builtins.calibrators",
    "cxrlt.builtins.thresholds",
    "cxrlt.builtins.recipes",
    "cxrlt.builtins.loggers",
    "cxrlt.builtins.image_text",
    "cxrlt.builtins.executors",
)


@dataclass(frozen=True)
class PluginInfo:
    """What ``cxrlt plugins`` shows about one plugin."""

    name: str
    version: str
    source: str  # "built-in" or the distribution that provides it
    hooks: tuple[str, ...] = field(default=())
    error: str | None = None


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _cxrlt_version() -> str:
    """The installed cxrlt's version, read from its metadata: ``cxrlt/__init__`` sits above
    the plugin manager."""
    try:
        return metadata.version("cxrlt")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "?"


@cache
def _manager() -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...]]:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    blocked = _names_from_env(BLOCK_ENV) or set()
    wanted = _names_from_env(LOAD_ENV)
    for name in blocked:
        pm.set_blocked(name)

    for module_path in DEFAULT_PLUGINS:
        if module_path in blocked:
            continue
        pm.register(importlib.import_module(module_path), name=module_path)
        infos.append(PluginInfo(module_path, _cxrlt_version(), "built-in"))

    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = entry_point.name
        if name in blocked or (wanted is not None and name not in wanted):
            continue
        dist = entry_point.dist
        version = dist.version if dist else "?"
        source = dist.metadata["Name"] if dist else "?"
        try:
            pm.register(entry_point.load(), name=name)
            _check_hook_names(pm, name)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not break the CLI
            if pm.get_plugin(name) is not None:
                pm.unregister(name=name)
            message = f"{type(error).__name__}: {error}"
            print(
                f"Warning: plugin {name!r} ({source} {version}) failed to load and is skipped: "
                f"{message}. Fix or uninstall it, or set {BLOCK_ENV}={name}.",
                file=sys.stderr,
            )
            infos.append(PluginInfo(name, version, source, error=message))
            continue
        infos.append(PluginInfo(name, version, source))
    return pm, tuple(infos)


def _check_hook_names(pm: pluggy.PluginManager, name: str) -> None:
    """Refuse a plugin that implements a hook cxrlt does not have (usually a typo)."""
    import difflib

    known = [n for n in dir(hookspecs) if n.startswith("register_")]
    for caller in pm.get_hookcallers(pm.get_plugin(name)) or ():
        if not caller.has_spec():
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"implements unknown hook {caller.name}{hint}")


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    return _manager()[0]


def plugins() -> list[PluginInfo]:
    """Every plugin that was found, with the hooks it implements and any load error."""
    pm, infos = _manager()
    result = []
    for info in infos:
        plugin = pm.get_plugin(info.name)
        hooks = () if plugin is None else tuple(c.name for c in pm.get_hookcallers(plugin) or ())
        result.append(PluginInfo(info.name, info.version, info.source, hooks, info.error))
    return result


def plugin_version(name: str) -> str:
    """The version of the package that provides a plugin."""
    for info in _manager()[1]:
        if info.name == name:
            return info.version
    return "?"


def failed_plugins() -> list[PluginInfo]:
    """Plugins that were found but could not be loaded."""
    return [info for info in _manager()[1] if info.error]


def reset() -> None:
    """Forget the plugin manager, hence the registries built from it (after installing a
    plugin, or in tests)."""
    _manager.cache_clear()
