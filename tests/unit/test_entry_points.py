"""A third-party plugin is found through its entry point and used: ``examples/audit_plugin``,
"installed" by writing its ``.dist-info`` into a directory on ``sys.path`` (no pip, no network).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import HandlerNotFoundError
from core.plugins import ENTRY_POINT_GROUP
from handlers.accounts.messages import OpenAccount
from tests.support import ctx, running, settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit_plugin"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The audit plugin's code and distribution metadata on ``sys.path``; its modules are
    forgotten afterwards so that no other test sees them."""
    site = tmp_path / "site-packages"
    dist_info = site / "balance_audit_plugin-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: balance-audit-plugin\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\naudit = balance_audit.plugin\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield tmp_path / "data"
    for name in [m for m in sys.modules if m == "balance_audit" or m.startswith("balance_audit.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_the_entry_point_is_visible(installed: Path) -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert found["audit"].value == "balance_audit.plugin"
    assert found["audit"].dist is not None
    assert found["audit"].dist.metadata["Name"] == "balance-audit-plugin"


async def test_the_plugin_is_loaded_and_its_behavior_and_handler_run(installed: Path) -> None:
    assert "balance_audit" not in sys.modules  # nothing imports it but the entry point
    async with running(settings_for("memory", installed)) as app:
        audit = app.plugins.get_plugin("audit")  # the module the entry point names
        assert audit is sys.modules["balance_audit.plugin"]
        for currency in ("EUR", "USD", "GBP"):
            await app.mediator.send(OpenAccount(currency, ctx()))
        count = await app.mediator.send(audit.CountRequests())
        seen = app.container.resolve(audit.AuditLog).seen

    # start() resumes pending transfers through the mediator; the count includes itself.
    assert seen == ["ResumeTransfers", "OpenAccount", "OpenAccount", "OpenAccount", "CountRequests"]
    assert count == len(seen)


async def test_the_plugin_writes_an_audit_line_per_projected_event(installed: Path) -> None:
    async with running(settings_for("memory", installed)) as app:
        audit = app.plugins.get_plugin("audit")
        opened = await app.mediator.send(OpenAccount("EUR", ctx(), initial_deposit="5.00"))
        await app.projector.catch_up()
        lines = app.container.resolve(audit.AuditLog).lines
    stream = f"account-{opened.id}"
    assert [line for line in lines if line.startswith(stream)] == [
        f"{stream} v1 AccountOpened by {ctx().actor.subject}",
        f"{stream} v2 MoneyDeposited by {ctx().actor.subject}",
    ]


async def test_a_disabled_entry_point_plugin_stays_out(installed: Path) -> None:
    audit = importlib.import_module("balance_audit.plugin")

    settings = replace(settings_for("memory", installed), disabled_plugins=frozenset({"audit"}))
    async with running(settings) as app:
        assert app.plugins.get_plugin("audit") is None
        with pytest.raises(HandlerNotFoundError, match=r"balance_audit\.plugin\.CountRequests"):
            await app.mediator.send(audit.CountRequests())


def test_the_module_is_forgotten_after_each_test() -> None:
    # Runs after the tests above (file order): their fixture removed what they imported.
    assert "balance_audit" not in sys.modules
    assert "balance_audit.plugin" not in sys.modules
