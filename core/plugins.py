"""The plugin manager: every plugin is found through its entry point, the built-in ones through
the project's own (``pyproject.toml``), minus those that configuration disables."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pluggy

from core import hookspecs
from core.errors import BalanceError

__all__ = [
    "DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "PluginLoadError",
    "builtin_plugins",
    "collect",
    "make_plugin_manager",
]

# Plugins declare themselves under this entry-point group in their pyproject.toml, the built-in
# ones in this project's, third-party ones in their own:
#   [project.entry-points."account_balance.plugins"]
#   my_plugin = "my_package.plugin"
ENTRY_POINT_GROUP: Final = "account_balance.plugins"
# The distribution whose entry points are the built-in plugins.
DISTRIBUTION: Final = "account-balance"


class PluginLoadError(BalanceError):
    pass


def builtin_plugins() -> dict[str, str]:
    """The built-in plugins, name to module, in the order the project declares them."""
    try:
        found = importlib.metadata.distribution(DISTRIBUTION).entry_points
    except importlib.metadata.PackageNotFoundError:
        raise PluginLoadError(
            f"the {DISTRIBUTION} project is not installed (pip install -e .), so its built-in "
            "plugins cannot be found"
        ) from None
    return {ep.name: ep.value for ep in found if ep.group == ENTRY_POINT_GROUP}


def make_plugin_manager(
    builtins: Mapping[str, str] | None = None,
    disabled: Iterable[str] = (),
    extra: Mapping[str, object] | None = None,
    entry_points: bool = True,
) -> pluggy.PluginManager:
    """``builtins`` maps plugin names to module paths, imported only when enabled; by default
    the project's own entry points (``builtin_plugins``). ``extra`` adds plugin objects by name
    (tests use it). ``entry_points``: also the plugins other distributions install. Disabled
    names are blocked, entry points included. Registration order is the order of hook calls
    that ``collect`` keeps: built-ins first, in the project's order."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in disabled:
        manager.set_blocked(name)
    for name, module_path in (builtin_plugins() if builtins is None else builtins).items():
        if manager.is_blocked(name):
            continue
        try:
            module = importlib.import_module(module_path)
        except ImportError as error:
            raise PluginLoadError(
                f"built-in plugin {name!r} ({module_path}) failed to import: {error}"
            ) from error
        manager.register(module, name=name)
    for name, plugin in (extra or {}).items():
        if not manager.is_blocked(name):
            manager.register(plugin, name=name)
    if entry_points:
        # Skips the names registered above (the project's own entry points among them).
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    manager.check_pending()
    return manager


def collect(manager: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call ``hook`` on each plugin, in registration order, keeping who returned what, so that
    errors can name the plugin. Results that are sequences are flattened."""
    caller = getattr(manager.hook, hook)
    results: list[tuple[str, Any]] = []
    # get_hookimpls() lists in registration order; only pluggy's own hook call runs them in
    # reverse. Walking the list also gives each result's plugin name.
    for impl in caller.get_hookimpls():
        result = impl.function(*(kwargs[name] for name in impl.argnames))
        if result is None:
            continue
        if isinstance(result, list | tuple):
            results.extend((impl.plugin_name, item) for item in result)
        else:
            results.append((impl.plugin_name, result))
    return results
