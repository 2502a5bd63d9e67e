"""The configuration reference is generated from the settings' definitions, docs/configuration.md
holds it unchanged, and every key the code reads is defined, with the default the code uses."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from api.cli import cli
from api.config_reference import BEGIN, DOC, END, reference, update_doc
from core.config import CORE_SETTINGS, Setting
from core.plugins import collect, make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("api", "core", "handlers", "plugins")
READERS = {"get", "get_int", "get_float", "require"}


def _defined() -> dict[str, Setting]:
    manager = make_plugin_manager(entry_points=False)
    plugins = [setting for _plugin, setting in collect(manager, "balance_settings")]
    return {setting.key: setting for setting in (*CORE_SETTINGS, *plugins)}


def test_the_doc_holds_the_generated_reference() -> None:
    text = DOC.read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert block == f"\n{reference()}\n", (
        "docs/configuration.md is not what the definitions say: "
        "run `python -m api.config_reference` and review the diff"
    )


def test_update_doc_rewrites_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Before\n{BEGIN}\n| stale |\n{END}\nAfter\n")
    assert update_doc(doc)
    assert doc.read_text() == f"# Before\n{BEGIN}\n{reference()}\n{END}\nAfter\n"
    assert not update_doc(doc)


def test_balance_config_markdown_prints_the_reference() -> None:
    result = CliRunner().invoke(cli, ["config", "--markdown"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == reference(entry_points=True) + "\n"
    for variable in ("BALANCE_PORT", "BALANCE_HOST", "BALANCE_WORKERS", "BALANCE_LOG_LEVEL"):
        assert f"| `{variable}` |" in result.stdout
    for variable in ("BALANCE_ACCESS_LOG", "BALANCE_MAX_BODY_BYTES", "BALANCE_JWT_SECRET"):
        assert f"| `{variable}` |" in result.stdout


def _reads() -> Iterator[tuple[str, str, object, str]]:
    """(method, key, literal default or None, where) for each ``settings.<reader>("key", ...)``
    and each ``settings.get("key") or <literal>`` in the sources."""
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            fallbacks: dict[int, object] = {}
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.BoolOp)
                    and isinstance(node.op, ast.Or)
                    and isinstance(node.values[-1], ast.Constant)
                ):
                    for value in node.values[:-1]:
                        fallbacks[id(value)] = node.values[-1].value
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in READERS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "settings"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    continue
                key = node.args[0].value
                default: object = fallbacks.get(id(node))
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    default = node.args[1].value
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                yield node.func.attr, str(key), default, where


def test_every_key_the_code_reads_is_defined_with_the_default_it_uses() -> None:
    defined = _defined()
    reads = list(_reads())
    assert len(reads) > 40  # the scan finds the reads (a broken scan would pass vacuously)
    for method, key, default, where in reads:
        assert key in defined, f"{where}: settings.{method}({key!r}) is not defined"
        setting = defined[key]
        if method == "require":
            assert not setting.default, f"{where}: {key} is required but has a default"
        elif isinstance(default, int | float) and not isinstance(default, bool):
            assert float(setting.default) == default, f"{where}: {key} defaults to {default}"
        elif isinstance(default, str) and default:
            assert setting.default.lower() == default.lower(), f"{where}: {key}: {default!r}"


def test_every_definition_is_read_somewhere() -> None:
    read = {key for _method, key, _default, _where in _reads()}
    # Read through Settings' own fields or by name in load_settings, not settings.get().
    core_fields = {"config", "event_store", "read_model", "authenticator", "data_dir"}
    unused = set(_defined()) - read - core_fields - {"disabled_plugins", "writes_events"}
    assert not unused, f"defined but never read: {sorted(unused)}"
