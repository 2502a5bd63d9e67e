"""The built-in plugins are the project's own entry points, and the shell names none of them."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from core.plugins import ENTRY_POINT_GROUP, builtin_plugins, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def test_the_builtin_plugins_are_the_entry_points_of_pyproject() -> None:
    # A mismatch means the installed metadata is stale: reinstall the project (pip install -e .).
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert builtin_plugins() == declared[ENTRY_POINT_GROUP]


def test_a_disabled_builtin_plugin_is_not_registered() -> None:
    manager = make_plugin_manager(disabled={"mongo", "kafka"}, entry_points=False)
    # Blocked names stay listed, without a plugin.
    names = {name for name, plugin in manager.list_name_plugin() if plugin is not None}
    assert {"accounts", "sqlite", "memory", "jwt"} <= names
    assert not names & {"mongo", "kafka"}


def test_the_shell_imports_no_handler_module() -> None:
    found: list[str] = []
    for path in sorted((ROOT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "handlers"
            ]
    assert found == []
