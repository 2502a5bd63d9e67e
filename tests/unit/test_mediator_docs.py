"""The usage example in docs/mediator.md runs, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "mediator.md"


def test_the_usage_example_runs() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1

    # A real module, so that dataclasses can resolve the example's annotations.
    module = types.ModuleType("mediator_doc_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]

    assert module.log == ["-> GetBalance", "<- 100", "-> GetBalance", "projected 25"]
